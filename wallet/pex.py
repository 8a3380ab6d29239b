"""DIF Presentation Exchange 2.0: choose the credentials a verifier's presentation definition asks for.

Supported: ``input_descriptors`` whose ``constraints.fields`` give JSONPath ``path`` lists (the common subset:
``$.a.b``, ``$['a']``, ``$.a[0]``, ``$.a[*]``) and an optional JSON Schema ``filter`` (any keyword the
``jsonschema`` library knows: const, enum, pattern, contains, ...), and ``optional`` fields. Every descriptor is
treated as required (``submission_requirements`` asking for fewer are satisfied by submitting all). A field is
satisfied when one of its paths yields a value the filter accepts; a descriptor when all its non-optional fields
are. Paths are evaluated on the credential's JSON (the JWT payload for VC-JOSE, so ``$.vc...`` paths of VC 1.1
peers work too).

The definition comes from the data provider, so nothing in it may take the wallet down: ``pattern`` and
``patternProperties`` run on the ``regex`` engine with a time limit (per search), a pattern is bounded before it is
compiled (length, counted repetitions; compiling ``a{4294967294}`` alone takes gigabytes), the whole selection has a
deadline checked on every filter keyword (a filter whose ``$ref``/``allOf`` fan out exponentially is stopped, not
run for ever) and a definition has a maximum size. Any of these makes the definition invalid
(``pex.definition_invalid``) instead of hanging the pipeline or exhausting its memory.
"""
from __future__ import annotations

import contextvars
import functools
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable

import jsonschema
import referencing.exceptions
import regex

from verifier.results import CeadError

_SEGMENT = re.compile(r"""\.(?P<name>[A-Za-z_@$][\w@$-]*)|\[(?P<index>\d+|\*)\]|\[(?P<q>['"])(?P<key>.*?)(?P=q)\]""")


def _parse_path(path: str) -> list[str | int | None]:
    """JSONPath (subset) -> segments: str key, int index, None for a wildcard."""
    if not isinstance(path, str) or not path.startswith("$"):
        raise CeadError("pex.definition_invalid", f"Unsupported JSONPath {path!r} (must start with '$').")
    segments: list[str | int | None] = []
    pos = 1
    while pos < len(path):
        match = _SEGMENT.match(path, pos)
        if not match:
            raise CeadError("pex.definition_invalid", f"Unsupported JSONPath {path!r} at position {pos}.")
        if match["name"] is not None:
            segments.append(match["name"])
        elif match["key"] is not None:
            segments.append(match["key"])
        else:
            segments.append(None if match["index"] == "*" else int(match["index"]))
        pos = match.end()
    return segments


def json_path(document: Any, path: str) -> list[Any]:
    """All values ``path`` selects in ``document``."""
    values = [document]
    for seg in _parse_path(path):
        nxt: list[Any] = []
        for value in values:
            if seg is None:
                if isinstance(value, list):
                    nxt.extend(value)
                elif isinstance(value, dict):
                    nxt.extend(value.values())
            elif isinstance(seg, int):
                if isinstance(value, list) and seg < len(value):
                    nxt.append(value[seg])
            elif isinstance(value, dict) and seg in value:
                nxt.append(value[seg])
        values = nxt
    return values


SEARCH_SECONDS = 0.1      # one pattern against one value
SELECTION_SECONDS = 2.0   # all filters of one selection together (every keyword, every pattern search)
MAX_DEFINITION_BYTES = 256 * 1024   # a definition, as JSON
MAX_PATTERN = 1000        # characters in one pattern
MAX_REPEAT = 1000         # the largest count in a counted repetition: a{n}, a{n,m}, a{n,}
MAX_EXPANSION = 100_000   # atoms a pattern stands for once its counted repetitions are unrolled ((a{1000}){1000})
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("pex_pattern_deadline", default=None)
_COUNT = re.compile(r"\{(\d*)(,?)(\d*)\}")


def _invalid(message: str) -> CeadError:
    return CeadError("pex.definition_invalid", message)


def _too_long() -> CeadError:
    return _invalid("The definition's filters take too long to evaluate (refused).")


@functools.lru_cache(maxsize=256)
def _check_pattern(pattern: str) -> None:
    """Refuse a pattern whose compiled form would be huge, before the regex engine compiles it: longer than
    MAX_PATTERN, a count above MAX_REPEAT, or more than MAX_EXPANSION atoms once counted repetitions (nested ones
    multiply) are unrolled. A conservative scan: alternatives add up, ``*``/``+``/``?`` loops count once."""
    if len(pattern) > MAX_PATTERN:
        raise _invalid(f"A filter pattern is at most {MAX_PATTERN} characters.")
    stack = [[0, 0]]        # per open group: [size of its finished alternatives, size of the current one]
    last, i, n = 0, 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            i += 2
            if pattern[i - 1:i] in ("p", "P", "N", "x", "o", "g", "k", "u", "U") and pattern[i:i + 1] == "{":
                close = pattern.find("}", i)
                i = n if close < 0 else close + 1
            last = 1
        elif c == "[":                                   # a character class is one atom; '{' inside is literal
            j = i + 1
            j += pattern[j:j + 1] == "^"
            j += pattern[j:j + 1] == "]"
            while j < n and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            i, last = j + 1, 1
        elif c == "(":
            stack.append([0, 0])
            i, last = i + 1, 0
            continue
        elif c == ")":
            done = stack.pop() if len(stack) > 1 else [0, 0]
            i, last = i + 1, done[0] + done[1]
        elif c == "|":
            stack[-1][0] += stack[-1][1]
            stack[-1][1] = 0
            i, last = i + 1, 0
            continue
        elif c == "{" and (count := _COUNT.match(pattern, i)) and (count[1] or count[3]):
            low, high = int(count[1] or 0), int(count[3] or 0)
            times = max(low, high)
            if times > MAX_REPEAT:
                raise _invalid(f"Filter pattern {pattern[:80]!r} repeats {times} times; at most {MAX_REPEAT}.")
            stack[-1][1] += last * (times - 1)          # the atom was counted once already
            last *= times
            i = count.end()
            if sum(stack[-1]) > MAX_EXPANSION:
                raise _invalid(f"Filter pattern {pattern[:80]!r} is too large once its repetitions are unrolled.")
            continue
        else:
            i, last = i + 1, 1
        stack[-1][1] += last
        if sum(stack[-1]) > MAX_EXPANSION:
            raise _invalid(f"Filter pattern {pattern[:80]!r} is too large once its repetitions are unrolled.")


def _search(pattern: str, text: str) -> bool:
    deadline = _deadline.get()
    budget = SEARCH_SECONDS if deadline is None else min(SEARCH_SECONDS, deadline - time.monotonic())
    if budget <= 0:
        raise _too_long()
    _check_pattern(pattern)
    try:
        return regex.search(pattern, text, timeout=budget) is not None
    except TimeoutError:
        raise CeadError("pex.definition_invalid",
                        f"Filter pattern {pattern[:80]!r} takes too long to evaluate (refused).") from None
    except (regex.error, ValueError, OverflowError, MemoryError, RecursionError) as exc:
        raise CeadError("pex.definition_invalid", f"Filter pattern {pattern[:80]!r} is not valid: "
                        f"{str(exc)[:200] or type(exc).__name__}.") from None


def _pattern(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator, patterns, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _on_time(keyword):
    """A keyword's validation function that first checks the selection's deadline: every keyword of every
    (sub)schema the filter reaches goes through here, so no filter, however it fans out, runs past it."""
    def check(validator, value, instance, schema):
        deadline = _deadline.get()
        if deadline is not None and time.monotonic() > deadline:
            raise _too_long()
        return keyword(validator, value, instance, schema)
    return check


def _validator_class(schema: dict):
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    try:
        cls.check_schema(schema)
    except (OverflowError, MemoryError, RecursionError) as exc:   # e.g. a repetition count past re's maximum
        raise _invalid(f"Invalid filter: {str(exc)[:200] or type(exc).__name__}.") from None
    keywords = {**cls.VALIDATORS, "pattern": _pattern, "patternProperties": _pattern_properties}
    return jsonschema.validators.extend(cls, {name: _on_time(fn) for name, fn in keywords.items()})


def _field_matches(spec: dict, document: dict) -> bool:
    if not isinstance(spec, dict):
        raise CeadError("pex.definition_invalid", "Every constraints field must be a JSON object.")
    paths = spec.get("path")
    if not isinstance(paths, list) or not paths:
        raise CeadError("pex.definition_invalid", "Every constraints field needs a non-empty 'path' list.")
    schema = spec.get("filter")
    validator = None
    if schema is not None:
        if not isinstance(schema, dict):
            raise CeadError("pex.definition_invalid", "A field's 'filter' must be a JSON Schema object.")
        try:
            cls = _validator_class(schema)
        except jsonschema.SchemaError as exc:
            raise CeadError("pex.definition_invalid", f"Invalid filter: {exc.message}.") from None
        validator = cls(schema)
    for path in paths:
        for value in json_path(document, path):
            if validator is None or _is_valid(validator, value):
                return True
    return False


def _is_valid(validator, value: Any) -> bool:
    """Whether ``value`` passes a definition's filter. A filter that cannot be evaluated (a ``$ref`` to a schema it
    does not include: schemas are never fetched) makes the definition invalid, not the wallet crash."""
    try:
        return validator.is_valid(value)
    except (jsonschema.exceptions.SchemaError, referencing.exceptions.Unresolvable) as exc:
        raise CeadError("pex.definition_invalid", f"Invalid filter: {str(exc)[:200]}.") from None
    except RecursionError:
        raise CeadError("pex.definition_invalid", "Invalid filter: it refers to itself without end.") from None
    except MemoryError:
        raise CeadError("pex.definition_invalid", "Invalid filter: it needs too much memory to evaluate.") from None


def _holder_matches(constraints: dict, fields: list[dict], document: dict, holder: str | None) -> bool:
    """PEX ``is_holder`` with directive "required": the named fields must identify the presenting holder."""
    rules = constraints.get("is_holder") or []
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise CeadError("pex.definition_invalid", "'is_holder' must be a list of objects.")
    by_id = {spec.get("id"): spec for spec in fields if isinstance(spec.get("id"), str)}
    for rule in rules:
        if rule.get("directive", "required") != "required":
            continue                                    # "preferred": a wish, not a condition
        for field_id in rule.get("field_id") or []:
            spec = by_id.get(field_id)
            if spec is None:
                raise CeadError("pex.definition_invalid", f"'is_holder' names an unknown field id {field_id!r}.")
            values = [v for path in spec.get("path") or [] for v in json_path(document, path)]
            if holder is None or holder not in values:
                return False
    return True


def descriptor_matches(descriptor: dict, document: dict, holder: str | None = None) -> bool:
    constraints = descriptor.get("constraints") or {}
    if not isinstance(constraints, dict):
        raise CeadError("pex.definition_invalid",
                        f"Descriptor {descriptor.get('id')!r}: 'constraints' must be a JSON object.")
    fields = constraints.get("fields") or []
    if not isinstance(fields, list):
        raise CeadError("pex.definition_invalid", f"Descriptor {descriptor.get('id')!r}: 'fields' must be a list.")
    if not all(isinstance(spec, dict) and isinstance(spec.get("optional", False), bool) for spec in fields):
        raise CeadError("pex.definition_invalid", f"Descriptor {descriptor.get('id')!r}: every field must be a "
                        "JSON object, and its 'optional' true or false.")
    return all(spec.get("optional") or _field_matches(spec, document) for spec in fields) \
        and _holder_matches(constraints, fields, document, holder)


@dataclass
class Selection:
    """Chosen credentials (in descriptor order, each once) and the matching presentation_submission."""
    credentials: list[Any] = field(default_factory=list)
    submission: dict = field(default_factory=dict)


def select(definition: dict, candidates: Iterable[tuple[Any, dict]], holder: str | None = None) -> Selection:
    """For each input descriptor, the first candidate whose JSON matches it.

    ``candidates``: ``(credential, json_document)`` pairs in order of preference (e.g. newest first); ``holder``:
    the presenting DID, for descriptors that require it (``is_holder``). Raises
    ``CeadError("pex.unsatisfied")`` naming every descriptor no candidate satisfies.
    """
    if not isinstance(definition, dict) or not isinstance(definition.get("input_descriptors"), list):
        raise CeadError("pex.definition_invalid", "A presentation definition needs an 'input_descriptors' list.")
    try:
        size = len(json.dumps(definition, separators=(",", ":")).encode())
    except (TypeError, ValueError, RecursionError):
        raise CeadError("pex.definition_invalid", "A presentation definition must be plain JSON.") from None
    if size > MAX_DEFINITION_BYTES:
        raise CeadError("pex.definition_invalid", f"A presentation definition is at most {MAX_DEFINITION_BYTES} "
                        f"bytes of JSON; this one is {size}.")
    token = _deadline.set(time.monotonic() + SELECTION_SECONDS)
    try:
        return _select(definition, list(candidates), holder)
    finally:
        _deadline.reset(token)


def _select(definition: dict, candidates: list[tuple[Any, dict]], holder: str | None) -> Selection:
    chosen: list[Any] = []
    descriptor_map: list[dict] = []
    missing: list[str] = []
    for descriptor in definition["input_descriptors"]:
        if not isinstance(descriptor, dict) or not isinstance(descriptor.get("id"), str):
            raise CeadError("pex.definition_invalid", "Every input descriptor needs a string 'id'.")
        match = next((i for i, (_, doc) in enumerate(candidates) if descriptor_matches(descriptor, doc, holder)), None)
        if match is None:
            label = descriptor["id"] + (f" ({descriptor['name']})" if descriptor.get("name") else "")
            missing.append(label)
            continue
        credential = candidates[match][0]
        if not any(credential is c for c in chosen):
            chosen.append(credential)
        index = next(i for i, c in enumerate(chosen) if c is credential)
        descriptor_map.append({"id": descriptor["id"],
                               "format": "jwt_vc_json" if isinstance(credential, str) else "ldp_vc",
                               "path": f"$.verifiableCredential[{index}]"})
    if missing:
        raise CeadError("pex.unsatisfied",
                        "The wallet holds no valid credential for: " + "; ".join(missing) + ".",
                        missing=missing, definition=definition.get("id"))
    submission = {"id": str(uuid.uuid4()), "definition_id": definition.get("id"), "descriptor_map": descriptor_map}
    return Selection(chosen, submission)

