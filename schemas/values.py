"""Reading values in credential JSON: one value or a list, an IRI or an object with an id, types, timestamps.

One definition for every layer (schemas, verifier, issuer, wallet), so they all read a document the same way.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any


# An absolute IRI or URL (RFC 3986/3987): a scheme, ":" and the rest, with no white space, control characters or the
# characters RFC 3986 never allows ("https ://x" has a space in its scheme, so it is none). Compiled once: a
# first-seen credential checks a few dozen.
IRI_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s\x00-\x1f\x7f<>\"{}|\\^`]+")


def is_url(value: Any) -> bool:
    """Whether ``value`` is a single absolute URL (VC Data Model 2.0 section 4.4): a DID, a ``urn:``, an http(s)
    URL with a host...; not a list, not relative, no white space."""
    if not isinstance(value, str) or not IRI_RE.fullmatch(value):
        return False
    scheme, rest = value.split(":", 1)
    if scheme.lower() in ("http", "https"):
        return rest.startswith("//") and len(rest) > 2 and rest[2] not in "/?#"
    return True


def as_list(value: Any) -> list:
    """A JSON-LD value that may be one item or a list, as a list (``None`` -> ``[]``)."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def id_of(value: Any) -> str | None:
    """An IRI-valued property: a non-empty string, or an object with an ``id`` (or ``@id``); else ``None``."""
    if isinstance(value, dict):
        value = value.get("id", value.get("@id"))
    return value if isinstance(value, str) and value else None


def types_of(document: Any) -> list[str]:
    """The ``type`` values of a JSON object (strings only)."""
    if not isinstance(document, dict):
        return []
    return [t for t in as_list(document.get("type")) if isinstance(t, str)]


def parse_datetime(value: Any, *, assume_utc: bool = False) -> datetime:
    """An XML Schema dateTime (``Z`` or an offset; a bare date reads as midnight UTC) as an aware datetime.

    Without a time zone it is refused, unless ``assume_utc`` (older VC 1.1 peers). Raises ``ValueError`` with a
    sentence naming the value; callers turn it into their own error code.
    """
    if not isinstance(value, str):
        raise ValueError(f"{str(value)[:60]!r} is not a date-time string")
    text = value.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        text += "T00:00:00Z"
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value[:60]!r} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        if not assume_utc:
            raise ValueError(f"{value[:60]!r} has no time zone (add Z or an offset)")
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def xsd_datetime(moment: datetime | float | int) -> str:
    """An aware datetime (or POSIX seconds) as ``YYYY-MM-DDThh:mm:ssZ`` (UTC, whole seconds)."""
    if isinstance(moment, (int, float)):
        moment = datetime.fromtimestamp(moment, timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class _SafeYaml:
    """YAML for documents people write (policies, vocabularies, credential bodies): the safe loader without
    aliases (no "billion laughs") and without timestamp conversion (dates stay strings, as in JSON)."""

    loader = None

    @classmethod
    def get(cls):
        if cls.loader is None:
            import yaml

            class Loader(yaml.SafeLoader):
                def compose_node(self, parent, index):
                    if self.check_event(yaml.AliasEvent):
                        raise yaml.YAMLError("YAML aliases (*name) are not accepted")
                    return super().compose_node(parent, index)

            Loader.yaml_implicit_resolvers = {
                key: [(tag, rx) for tag, rx in value if tag != "tag:yaml.org,2002:timestamp"]
                for key, value in yaml.SafeLoader.yaml_implicit_resolvers.items()}
            cls.loader = Loader
        return cls.loader


def utf8_text(data: bytes, what: str) -> str:
    """``data`` (a file's bytes) as UTF-8 text, or a ``ValueError`` naming ``what`` and what to do: a person who
    gives a binary file, or text saved in another encoding, is told so, not shown Python's codec message."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start} is not "
                         "UTF-8); give a text file saved as UTF-8") from None


def read_text(path, what: str | None = None) -> str:
    """The text of a file a person named, read as UTF-8 (:func:`utf8_text`). ``OSError`` as ``open`` raises it
    (a missing file, a directory); ``ValueError`` naming ``what`` (default: the path) for a file that is not UTF-8
    text."""
    from pathlib import Path

    return utf8_text(Path(path).read_bytes(), what or repr(str(path)))


def load_document(text: str, what: str, *, yaml_allowed: bool = True) -> dict:
    """A JSON (or, when allowed, YAML) object written by a person, as plain JSON values.

    Raises ``ValueError`` with a sentence naming ``what`` (a file name or a form field); callers turn it into
    their own error code.
    """
    import json

    try:
        data = strict_json(text, what, constants=True)   # (NaN/Infinity: refused below, never read as YAML)
    except DuplicateMember as exc:   # (this function's contract: a ValueError naming ``what``)
        raise ValueError(exc.message) from None
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply") from None
    except ValueError as json_error:
        if not yaml_allowed:
            raise ValueError(f"{what} is not valid JSON: {json_error}") from None
        import yaml
        try:
            data = yaml.load(text, Loader=_SafeYaml.get())  # noqa: S506 (a SafeLoader subclass)
        except RecursionError:
            raise ValueError(f"{what} is nested too deeply") from None
        except yaml.YAMLError as exc:
            raise ValueError(f"{what} is neither JSON nor YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what} must hold a JSON or YAML object")
    try:
        return json.loads(json.dumps(data, allow_nan=False))   # only plain JSON values go further
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} holds a value JSON cannot carry: {exc}") from None


# ---- strict JSON: one reading for every reader ------------------------------------------------------------------

from .errors import CeadError  # noqa: E402


class DuplicateMember(CeadError):
    """A JSON object names the same member twice (``json.duplicate_member``).

    JSON parsers disagree on such objects: Python's keeps the last value, others keep the first or refuse. A
    credential, presentation or manifest read two ways could be checked under one meaning and acted on under the
    other, so Cead refuses them wherever it parses JSON from outside (RFC 8259 section 4 says names SHOULD be
    unique; RFC 7493 (I-JSON) section 2.3 says MUST NOT; RFC 8725 section 3.1 asks JWT readers to refuse)."""

    def __init__(self, name: str, what: str = "the JSON"):
        shown = name if len(name) <= 80 else name[:77] + "..."
        super().__init__("json.duplicate_member", f"{what[:1].upper()}{what[1:]} names the member {shown!r} more "
                         "than once; readers disagree on which value counts, so it is refused. Send each member "
                         "once.", member=shown)

    def about(self, what: str) -> "DuplicateMember":
        """The same error, naming where the JSON came from (``the JWT payload``, ``the request body``)."""
        return DuplicateMember(self.detail["member"], what)


def _unique_members(pairs: list) -> dict:
    result = dict(pairs)
    if len(result) != len(pairs):   # (the dict is built in C; only an object with a repeated name is walked)
        seen: set = set()
        for name, _ in pairs:
            if name in seen:
                raise DuplicateMember(name)
            seen.add(name)
    return result


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


_DECODERS: dict = {}


def _decoder(constants: bool):
    """The strict decoder, built once (``json.loads`` with arguments builds a decoder and its scanner per call)."""
    decoder = _DECODERS.get(constants)
    if decoder is None:
        import json
        decoder = _DECODERS[constants] = json.JSONDecoder(
            object_pairs_hook=_unique_members, **({} if constants else {"parse_constant": _no_constant}))
    return decoder


def strict_json(text: str | bytes | bytearray, what: str = "the JSON", *, constants: bool = False) -> Any:
    """Parse JSON text as every reader reads it the same way: an object naming a member twice raises
    ``DuplicateMember`` (a ``CeadError``, code ``json.duplicate_member``, naming ``what``); NaN and Infinity (not
    JSON, RFC 8259) and malformed text raise ``ValueError``; nesting too deep raises ``RecursionError``.
    ``constants=True`` reads NaN and Infinity (for a caller that refuses them itself, with its own words)."""
    import json
    try:
        # what json.loads does with its arguments, with the decoder made once
        if isinstance(text, str):
            if text.startswith("\ufeff"):
                raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        elif isinstance(text, (bytes, bytearray)):
            text = text.decode(json.detect_encoding(text), "surrogatepass")
        else:
            raise TypeError(f"the JSON object must be str, bytes or bytearray, not {text.__class__.__name__}")
        return _decoder(constants).decode(text)
    except DuplicateMember as exc:
        raise exc.about(what) from None
