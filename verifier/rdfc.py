"""RDF Dataset Canonicalization (RDFC-1.0, https://www.w3.org/TR/rdf-canon/) on top of pyld's URDNA2015.

pyld implements the blank-node labelling algorithm; this module closes the gaps that matter for signatures:

* a strict N-Quads parser (pyld's does not unescape ``\\uXXXX``/``\\UXXXXXXXX`` or ``\\b``, ``\\f``, ``\\'``);
* canonical N-Quads serialization (pyld escapes only ``\\ \\t \\n \\r \\"``; RDFC-1.0 also writes ``\\b``
  and ``\\f`` and every other control character as ``\\uXXXX``), used for hashing *and* for the output;
* SHA-384 as an alternative hash;
* a work limit, so a hostile "poison" graph (e.g. a clique of blank nodes) aborts with ``rdfc.too_complex``
  instead of running for hours;
* refusal of terms that canonical N-Quads cannot represent unambiguously (an IRI containing ``>`` or a space,
  a malformed language tag), which could otherwise make two different datasets serialize to the same text.

A dataset here is pyld's representation: ``{graph_name_or_"@default": [ {"subject": {...}, "predicate": {...},
"object": {...}} ]}`` with terms ``{"type": "IRI" | "blank node" | "literal", "value": ...,
"datatype": ..., "language": ...}``.
"""
from __future__ import annotations

import contextlib
import contextvars
import copy
import hashlib
import re
import time

from pyld.canon import URDNA2015

from .results import CeadError

XSD_STRING = "http://www.w3.org/2001/XMLSchema#string"
RDF_LANGSTRING = "http://www.w3.org/1999/02/22-rdf-syntax-ns#langString"

HASH_ALGORITHMS = {"sha256": "sha256", "sha-256": "sha256", "sha384": "sha384", "sha-384": "sha384"}

# Work limit on Hash N-Degree Quads calls (each permutation tried makes at least one). Real credentials need
# none or a handful; the worst W3C suite entries (test044-046) need 468; the 10-node clique poison graph
# (test074) needs millions. The deadline is a second guard on slow machines.
DEFAULT_MAX_CALLS = 2000
DEFAULT_MAX_SECONDS = 5.0
# One request (a presentation with many credentials, each canonicalized twice) shares one budget, so the limit
# above cannot be multiplied by the number of documents an attacker packs into it. See ``work_budget``.
REQUEST_MAX_CALLS = 4000
REQUEST_MAX_SECONDS = 10.0


class _Budget:
    def __init__(self, max_calls: int, max_seconds: float):
        self.calls_left = max_calls
        self.deadline = time.monotonic() + max_seconds

    def spend(self) -> bool:
        self.calls_left -= 1
        return self.calls_left >= 0 and time.monotonic() <= self.deadline


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("cead_rdfc_budget", default=None)


@contextlib.contextmanager
def work_budget(max_calls: int | None = None, max_seconds: float | None = None):
    """Every canonicalization inside the ``with`` block draws on one shared work limit (per thread / context).

    Nested blocks keep the outer budget: the whole request is bounded, not each part of it.
    """
    if _budget.get() is not None:
        yield
        return
    token = _budget.set(_Budget(REQUEST_MAX_CALLS if max_calls is None else max_calls,
                                REQUEST_MAX_SECONDS if max_seconds is None else max_seconds))
    try:
        yield
    finally:
        _budget.reset(token)

# ---- N-Quads grammar (RDF 1.1 N-Quads, https://www.w3.org/TR/n-quads/#sec-grammar) ----------------------------
_PN_CHARS_BASE = ("A-Za-z\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u02FF\u0370-\u037D\u037F-\u1FFF\u200C-\u200D"
                  "\u2070-\u218F\u2C00-\u2FEF\u3001-\uD7FF\uF900-\uFDCF\uFDF0-\uFFFD\U00010000-\U000EFFFF")
_PN_CHARS_U = _PN_CHARS_BASE + "_"
_PN_CHARS = _PN_CHARS_U + "\\-0-9\u00B7\u0300-\u036F\u203F-\u2040"
_UCHAR = r"\\u[0-9A-Fa-f]{4}|\\U[0-9A-Fa-f]{8}"
_IRIREF = r"<((?:[^\x00-\x20<>\"{}|^`\\]|" + _UCHAR + r")*)>"
_BNODE = rf"(_:[{_PN_CHARS_U}0-9](?:[{_PN_CHARS}.]*[{_PN_CHARS}])?)"
_STRING = r'"((?:[^"\\\n\r]|\\[tbnrf"\'\\]|' + _UCHAR + r')*)"'
_LANGTAG = r"@([a-zA-Z]+(?:-[a-zA-Z0-9]+)*)"
_WS = r"[ \t]*"
_QUAD = re.compile(
    "^" + _WS
    + f"(?:{_IRIREF}|{_BNODE})" + _WS                                       # subject: 1, 2
    + _IRIREF + _WS                                                         # predicate: 3
    + f"(?:{_IRIREF}|{_BNODE}|{_STRING}(?:\\^\\^{_WS}{_IRIREF}|{_LANGTAG})?)" + _WS  # object: 4, 5, 6, 7, 8
    + f"(?:(?:{_IRIREF}|{_BNODE}){_WS})?"                                   # graph: 9, 10
    + r"\." + _WS + r"(?:#.*)?$"
)
_BLANK_LINE = re.compile(_WS + r"(?:#.*)?$")
_ESCAPE = re.compile(r"\\(?:u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|([tbnrf\"'\\]))")
_ECHAR = {"t": "\t", "b": "\b", "n": "\n", "r": "\r", "f": "\f", '"': '"', "'": "'", "\\": "\\"}

# What canonical N-Quads can carry without ambiguity.
_IRI_OK = re.compile(r"[^\x00-\x20<>\"{}|^`\\]*\Z")
_BNODE_OK = re.compile(_BNODE + r"\Z")
_LANG_OK = re.compile(r"[a-zA-Z]+(?:-[a-zA-Z0-9]+)*\Z")


def _unescape(text: str, line_no: int) -> str:
    def replace(match: re.Match) -> str:
        if match.group(3):
            return _ECHAR[match.group(3)]
        code = int(match.group(1) or match.group(2), 16)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise CeadError("rdfc.parse_error", f"N-Quads line {line_no}: escape {match.group(0)!r} is not a "
                            "Unicode scalar value.", line=line_no)
        return chr(code)
    return _ESCAPE.sub(replace, text)


def parse_nquads(text: str) -> dict:
    """Parse N-Quads into a pyld dataset (duplicate quads removed). Raises ``rdfc.parse_error``."""
    if not isinstance(text, str):
        raise CeadError("rdfc.parse_error", "N-Quads input must be a string.")
    dataset: dict[str, list] = {}
    seen: set[tuple] = set()
    for line_no, line in enumerate(re.split(r"\r\n|\r|\n", text), 1):
        if _BLANK_LINE.match(line):
            continue
        m = _QUAD.match(line)
        if m is None:
            raise CeadError("rdfc.parse_error", f"N-Quads line {line_no} is not a valid quad: {line[:200]!r}",
                            line=line_no)
        g = m.groups()

        def iri(value: str) -> dict:
            return {"type": "IRI", "value": _unescape(value, line_no)}

        subject = iri(g[0]) if g[0] is not None else {"type": "blank node", "value": g[1]}
        predicate = iri(g[2])
        if g[3] is not None:
            obj = iri(g[3])
        elif g[4] is not None:
            obj = {"type": "blank node", "value": g[4]}
        else:
            obj = {"type": "literal", "value": _unescape(g[5], line_no)}
            if g[6] is not None:
                obj["datatype"] = _unescape(g[6], line_no)
            elif g[7] is not None:
                obj["datatype"] = RDF_LANGSTRING
                obj["language"] = g[7]
            else:
                obj["datatype"] = XSD_STRING
        if g[8] is not None:
            name = _unescape(g[8], line_no)
        else:
            name = g[9] if g[9] is not None else "@default"
        quad = {"subject": subject, "predicate": predicate, "object": obj}
        key = (name, _serialize_quad(quad, None))
        if key in seen:
            continue
        seen.add(key)
        dataset.setdefault(name, []).append(quad)
    return dataset


# ---- canonical N-Quads serialization ------------------------------------------------------------------------
_LITERAL_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_NEEDS_ESCAPE = re.compile(r'[\x00-\x1F\x7F"\\]')


def _escape_literal(value: str) -> str:
    return _NEEDS_ESCAPE.sub(lambda m: _LITERAL_ESCAPES.get(m.group(0)) or f"\\u{ord(m.group(0)):04X}", value)


def _term(term: dict) -> str:
    kind, value = term.get("type"), term.get("value")
    if not isinstance(value, str):
        raise CeadError("rdfc.invalid_term", "An RDF term has no string value.")
    if kind == "IRI":
        if not _IRI_OK.match(value):
            raise CeadError("rdfc.invalid_iri", f"IRI {value[:200]!r} contains characters that N-Quads cannot "
                            "carry (space, <, >, \", {, }, |, ^, `, \\ or a control character).", iri=value[:200])
        return f"<{value}>"
    if kind == "blank node":
        if not _BNODE_OK.match(value):
            raise CeadError("rdfc.invalid_term", f"Invalid blank node label {value[:200]!r}.")
        return value
    if kind == "literal":
        out = f'"{_escape_literal(value)}"'
        datatype, language = term.get("datatype") or XSD_STRING, term.get("language")
        if language:
            if not isinstance(language, str) or not _LANG_OK.match(language):
                raise CeadError("rdfc.invalid_term", f"Invalid language tag {str(language)[:50]!r}.")
            return f"{out}@{language}"
        if datatype == XSD_STRING:
            return out
        return out + "^^" + _term({"type": "IRI", "value": datatype})
    raise CeadError("rdfc.invalid_term", f"Unknown RDF term type {kind!r}.")


def _serialize_quad(quad: dict, graph: str | None) -> str:
    """One canonical N-Quads line. ``graph`` is the graph name (IRI or ``_:label``) or None for the default."""
    parts = [_term(quad["subject"]), _term(quad["predicate"]), _term(quad["object"])]
    if graph is not None:
        parts.append(_term({"type": "blank node" if graph.startswith("_:") else "IRI", "value": graph}))
    return " ".join(parts) + " .\n"


def _graph_of(quad: dict) -> str | None:
    name = quad.get("name")
    return name["value"] if name else None


class _RDFC10(URDNA2015):
    """pyld's URDNA2015 with RDFC-1.0 serialization, a choice of hash and a work limit."""

    def __init__(self, hash_algorithm: str, max_calls: int, max_seconds: float):
        super().__init__()
        self._hash_name = hash_algorithm
        self._calls_left = max_calls
        self._deadline = time.monotonic() + max_seconds

    def create_hash(self):
        return hashlib.new(self._hash_name)

    def hash_first_degree_quads(self, id_):
        # Same as pyld's, but serializing with RDFC-1.0 canonical escaping (pyld calls its own serializer here).
        info = self.blank_node_info[id_]
        if "hash" not in info:
            lines = []
            for quad in info["quads"]:
                relabelled = {key: self.modify_first_degree_component(id_, component, key)
                              for key, component in quad.items()}
                lines.append(_serialize_quad(relabelled, _graph_of(relabelled)))
            info["hash"] = self.hash_nquads(sorted(lines))
        return info["hash"]

    def hash_n_degree_quads(self, id_, issuer):
        self._calls_left -= 1
        shared = _budget.get()
        if self._calls_left < 0 or time.monotonic() > self._deadline or (shared is not None and not shared.spend()):
            raise CeadError("rdfc.too_complex", "The RDF dataset is too complex to canonicalize (blank node "
                            "structure exceeds the work limit); refusing it.")
        return super().hash_n_degree_quads(id_, issuer)


def _normalize_hash(hash_algorithm: str) -> str:
    name = HASH_ALGORITHMS.get(str(hash_algorithm).lower())
    if name is None:
        raise CeadError("rdfc.hash_unsupported", f"Unsupported RDFC-1.0 hash algorithm {hash_algorithm!r} "
                        "(use SHA-256 or SHA-384).")
    return name


def canonicalize_dataset_with_map(dataset: dict, hash_algorithm: str = "sha256",
                                  max_calls: int = DEFAULT_MAX_CALLS,
                                  max_seconds: float = DEFAULT_MAX_SECONDS) -> tuple[str, dict[str, str]]:
    """RDFC-1.0 of a pyld dataset: (canonical N-Quads, issued identifiers map ``{"b0": "c14n0", ...}``)."""
    algorithm = _normalize_hash(hash_algorithm)
    if not isinstance(dataset, dict):
        raise CeadError("rdfc.invalid_term", "An RDF dataset must be a mapping of graph names to quads.")
    # Validate every term and drop duplicates up front (an RDF dataset is a set of quads).
    quads: list[tuple[dict, str | None]] = []
    seen: set[str] = set()
    for graph_name, triples in dataset.items():
        graph = None if graph_name == "@default" else graph_name
        for triple in triples:
            line = _serialize_quad(triple, graph)
            if line not in seen:
                seen.add(line)
                quads.append((triple, graph))
    canon = _RDFC10(algorithm, max_calls, max_seconds)
    # pyld mutates the quads it is given and relabels only in its own output, so hand it a copy, then
    # relabel our copy from its canonical issuer (this also avoids pyld skipping input labels that happen to
    # start with "_:c14n").
    work: dict[str, list] = {}
    for triple, graph in quads:
        work.setdefault("@default" if graph is None else graph, []).append(copy.deepcopy(triple))
    canon.main(work, {"format": "application/n-quads"})
    issued = canon.canonical_issuer.existing

    def relabel(term: dict) -> dict:
        if term.get("type") == "blank node":
            return {**term, "value": issued[term["value"]]}
        return term

    lines = set()
    for triple, graph in quads:
        relabelled = {key: relabel(value) for key, value in triple.items()}
        if graph is not None and graph.startswith("_:"):
            graph = issued[graph]
        lines.add(_serialize_quad(relabelled, graph))
    return "".join(sorted(lines)), {old[2:]: new[2:] for old, new in issued.items()}


def canonicalize_dataset(dataset: dict, hash_algorithm: str = "sha256", max_calls: int = DEFAULT_MAX_CALLS,
                         max_seconds: float = DEFAULT_MAX_SECONDS) -> str:
    """RDFC-1.0 canonical N-Quads of a pyld dataset."""
    return canonicalize_dataset_with_map(dataset, hash_algorithm, max_calls, max_seconds)[0]


def canonicalize_nquads(nquads: str, hash_algorithm: str = "sha256", max_calls: int = DEFAULT_MAX_CALLS,
                        max_seconds: float = DEFAULT_MAX_SECONDS) -> str:
    """RDFC-1.0 canonical N-Quads of an N-Quads document."""
    return canonicalize_dataset(parse_nquads(nquads), hash_algorithm, max_calls, max_seconds)
