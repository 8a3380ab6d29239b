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
    return _walk(document, _parse_path(path))


def _walk(document: Any, segments: list[str | int | None]) -> list[Any]:
    values = [document]
    for seg in segments:
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
_COUNT = re.compile(r"\{([0-9]*)(,?)([0-9]*)\}")
_FLAGS = re.compile(r"[A-Za-z0-9-]*")   # what follows "(?" in an inline flag group: (?i), (?V1x), (?i-x:...)


def _invalid(message: str) -> CeadError:
    return CeadError("pex.definition_invalid", message)


def _too_long() -> CeadError:
    return _invalid("The definition's filters take too long to evaluate (refused).")


@functools.lru_cache(maxsize=256)
def _check_pattern(pattern: str) -> None:
    """Refuse a pattern whose compiled form would be huge, before the regex engine compiles it: longer than
    MAX_PATTERN, a count above MAX_REPEAT, or more than MAX_EXPANSION atoms once counted repetitions (nested ones
    multiply) are unrolled. A conservative scan: alternatives add up, ``*``/``+``/``?`` loops count once.

    The scan reads the pattern as the engine does, so whatever would make the two read it differently is refused
    rather than guessed at: inline comments ``(?#...)`` and the verbose flag ``x`` in any inline flag group
    (``(?x)``, ``(?ix)``, ``(?x:...)``: its ``#`` comments and ignored whitespace), and an unescaped ``[`` inside a
    character class (a POSIX class ``[:alpha:]``, a nested set under ``(?V1)``), where a ``[`` or ``]`` the
    engine reads as text would hide what follows from the scan. An escape is one atom, and braces after it are a
    repetition when they read as one (``\\N{1,5}`` and ``\\g{5}`` repeat a letter on this engine)."""
    if len(pattern) > MAX_PATTERN:
        raise _invalid(f"A filter pattern is at most {MAX_PATTERN} characters.")
    stack = [[0, 0]]        # per open group: [size of its finished alternatives, size of the current one]
    last, i, n = 0, 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            i, last = i + 2, 1
        elif c == "[":                                   # a character class is one atom; '{' inside is literal
            j = i + 1
            j += pattern[j:j + 1] == "^"
            j += pattern[j:j + 1] == "]"
            while j < n and pattern[j] != "]":
                if pattern[j] == "[":
                    raise _invalid(f"Filter pattern {pattern[:80]!r} has '[' inside a character class; escape it "
                                   "(\\[). POSIX classes and nested sets are not accepted.")
                j += 2 if pattern[j] == "\\" else 1
            i, last = j + 1, 1
        elif c == "(":
            if pattern.startswith("(?#", i):
                raise _invalid(f"Filter pattern {pattern[:80]!r} has an inline comment (?#...); comments are not "
                               "accepted in filter patterns.")
            if pattern.startswith("(?", i) and "x" in _FLAGS.match(pattern, i + 2).group():
                raise _invalid(f"Filter pattern {pattern[:80]!r} sets the verbose flag x; it is not accepted in "
                               "filter patterns.")
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


@dataclass
class _Field:
    """A constraints field, read once per selection: its paths parsed, its filter's validator built."""
    paths: list[list[str | int | None]]
    validator: Any = None
    optional: bool = False

    def values(self, document: dict) -> Iterable[Any]:
        for segments in self.paths:
            yield from _walk(document, segments)

    def matches(self, document: dict) -> bool:
        return any(self.validator is None or _is_valid(self.validator, value) for value in self.values(document))


def _compile_field(spec: Any, validators: dict[str, Any]) -> _Field:
    """``validators``: the selection's validators by their filter's canonical JSON, so each distinct filter is
    checked and built once however many fields and candidates it meets (building is most of the cost)."""
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
        key = json.dumps(schema, sort_keys=True, separators=(",", ":"))
        validator = validators.get(key)
        if validator is None:
            try:
                cls = _validator_class(schema)
            except jsonschema.SchemaError as exc:
                raise CeadError("pex.definition_invalid", f"Invalid filter: {exc.message}.") from None
            validator = validators[key] = cls(schema)
    return _Field([_parse_path(path) for path in paths], validator, spec.get("optional", False))


@dataclass
class _Descriptor:
    """An input descriptor, read once per selection."""
    id: str
    label: str
    fields: list[_Field]
    holder_fields: list[_Field]     # the fields ``is_holder`` (directive "required") says identify the holder

    def matches(self, document: dict, holder: str | None) -> bool:
        return all(spec.optional or spec.matches(document) for spec in self.fields) \
            and all(holder is not None and holder in list(spec.values(document)) for spec in self.holder_fields)


def _compile_descriptor(descriptor: Any, validators: dict[str, Any]) -> _Descriptor:
    if not isinstance(descriptor, dict) or not isinstance(descriptor.get("id"), str):
        raise CeadError("pex.definition_invalid", "Every input descriptor needs a string 'id'.")
    constraints = descriptor.get("constraints") or {}
    if not isinstance(constraints, dict):
        raise CeadError("pex.definition_invalid",
                        f"Descriptor {descriptor.get('id')!r}: 'constraints' must be a JSON object.")
    specs = constraints.get("fields") or []
    if not isinstance(specs, list):
        raise CeadError("pex.definition_invalid", f"Descriptor {descriptor.get('id')!r}: 'fields' must be a list.")
    if not all(isinstance(spec, dict) and isinstance(spec.get("optional", False), bool) for spec in specs):
        raise CeadError("pex.definition_invalid", f"Descriptor {descriptor.get('id')!r}: every field must be a "
                        "JSON object, and its 'optional' true or false.")
    fields = [_compile_field(spec, validators) for spec in specs]
    # PEX is_holder with directive "required": the named fields must identify the presenting holder
    rules = constraints.get("is_holder") or []
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise CeadError("pex.definition_invalid", "'is_holder' must be a list of objects.")
    by_id = {spec.get("id"): compiled for spec, compiled in zip(specs, fields) if isinstance(spec.get("id"), str)}
    holder_fields = []
    for rule in rules:
        if rule.get("directive", "required") != "required":
            continue                                    # "preferred": a wish, not a condition
        field_ids = rule.get("field_id") or []
        if not isinstance(field_ids, list):
            raise CeadError("pex.definition_invalid", "An 'is_holder' rule's 'field_id' must be a list.")
        for field_id in field_ids:
            if not isinstance(field_id, str) or field_id not in by_id:
                raise CeadError("pex.definition_invalid", f"'is_holder' names an unknown field id {field_id!r}.")
            holder_fields.append(by_id[field_id])
    label = descriptor["id"] + (f" ({descriptor['name']})" if descriptor.get("name") else "")
    return _Descriptor(descriptor["id"], label, fields, holder_fields)


def descriptor_matches(descriptor: dict, document: dict, holder: str | None = None) -> bool:
    """Whether one document satisfies one input descriptor (:func:`select` reads each descriptor once for all)."""
    return _compile_descriptor(descriptor, {}).matches(document, holder)


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
    validators: dict[str, Any] = {}
    descriptors = [_compile_descriptor(d, validators) for d in definition["input_descriptors"]]
    chosen: list[Any] = []
    descriptor_map: list[dict] = []
    missing: list[str] = []
    for descriptor in descriptors:
        match = next((i for i, (_, doc) in enumerate(candidates) if descriptor.matches(doc, holder)), None)
        if match is None:
            missing.append(descriptor.label)
            continue
        credential = candidates[match][0]
        if not any(credential is c for c in chosen):
            chosen.append(credential)
        index = next(i for i, c in enumerate(chosen) if c is credential)
        descriptor_map.append({"id": descriptor.id,
                               "format": "jwt_vc_json" if isinstance(credential, str) else "ldp_vc",
                               "path": f"$.verifiableCredential[{index}]"})
    if missing:
        raise CeadError("pex.unsatisfied",
                        "The wallet holds no valid credential for: " + "; ".join(missing) + ".",
                        missing=missing, definition=definition.get("id"))
    submission = {"id": str(uuid.uuid4()), "definition_id": definition.get("id"), "descriptor_map": descriptor_map}
    return Selection(chosen, submission)
