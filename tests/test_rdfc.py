"""RDFC-1.0: the W3C rdf-canon test suite (every eval, map and negative test), plus our own edge cases."""
import json
import time
from pathlib import Path

import pytest

from verifier import rdfc
from verifier.results import CeadError

SUITE = Path(__file__).parent / "vectors" / "rdf-canon"
ENTRIES = json.loads((SUITE / "manifest.jsonld").read_text(encoding="utf-8"))["entries"]


def _entries(kind):
    return [pytest.param(e, id=e["id"].lstrip("#")) for e in ENTRIES if e["type"] == kind]


def _read(name):
    return (SUITE / name).read_text(encoding="utf-8")


def test_manifest_has_the_expected_shape():
    kinds = [e["type"] for e in ENTRIES]
    assert kinds.count("rdfc:RDFC10EvalTest") == 64
    assert kinds.count("rdfc:RDFC10MapTest") == 21
    assert kinds.count("rdfc:RDFC10NegativeEvalTest") == 1


@pytest.mark.parametrize("entry", _entries("rdfc:RDFC10EvalTest"))
def test_eval(entry):
    out = rdfc.canonicalize_nquads(_read(entry["action"]), entry.get("hashAlgorithm", "SHA256"))
    assert out == _read(entry["result"])


@pytest.mark.parametrize("entry", _entries("rdfc:RDFC10MapTest"))
def test_issued_identifier_map(entry):
    _, issued = rdfc.canonicalize_dataset_with_map(rdfc.parse_nquads(_read(entry["action"])),
                                                   entry.get("hashAlgorithm", "SHA256"))
    assert issued == json.loads(_read(entry["result"]))


@pytest.mark.parametrize("entry", _entries("rdfc:RDFC10NegativeEvalTest"))
def test_poison_graph_is_refused_quickly(entry):
    start = time.monotonic()
    with pytest.raises(CeadError) as info:
        rdfc.canonicalize_nquads(_read(entry["action"]))
    assert info.value.code == "rdfc.too_complex"
    assert time.monotonic() - start < 6  # the call limit trips well before the 5 s deadline


def test_deadline_alone_stops_the_poison_graph():
    poison = next(e for e in ENTRIES if e["type"] == "rdfc:RDFC10NegativeEvalTest")
    start = time.monotonic()
    with pytest.raises(CeadError) as info:
        rdfc.canonicalize_nquads(_read(poison["action"]), max_calls=10**9, max_seconds=0.3)
    assert info.value.code == "rdfc.too_complex"
    assert time.monotonic() - start < 3


def test_sha384_accepts_the_hyphenated_spelling():
    entry = next(e for e in ENTRIES if e.get("hashAlgorithm") == "SHA384" and e["type"] == "rdfc:RDFC10EvalTest")
    assert rdfc.canonicalize_nquads(_read(entry["action"]), "sha-384") == _read(entry["result"])


def test_unknown_hash_is_refused():
    with pytest.raises(CeadError) as info:
        rdfc.canonicalize_nquads("<urn:a> <urn:b> <urn:c> .\n", "md5")
    assert info.value.code == "rdfc.hash_unsupported"


# ---- parser and serializer details ---------------------------------------------------------------------------
def test_parser_unescapes_uchar_and_echar():
    dataset = rdfc.parse_nquads('<urn:ex:\\u0061> <urn:p> "\\u00e9\\U0001F303\\b\\f\\\'\\"" .\n')
    (quad,) = dataset["@default"]
    assert quad["subject"]["value"] == "urn:ex:a"
    assert quad["object"]["value"] == "\u00e9\U0001F303\b\f'\""


def test_serializer_escapes_controls_as_rdfc_requires():
    out = rdfc.canonicalize_nquads('<urn:s> <urn:p> "\\u0000\\u0008\\u0009\\u000B\\u000C\\u001F\\u007F\\u00A0é" .\n')
    assert out == '<urn:s> <urn:p> "\\u0000\\b\\t\\u000B\\f\\u001F\\u007F\u00a0é" .\n'


def test_duplicate_quads_collapse_and_named_graphs_are_kept():
    text = ('_:x <urn:p> "v"@en-GB _:g .\n'
            '_:x <urn:p> "v"@en-GB _:g .\n'
            '<urn:s> <urn:p> "1"^^<http://www.w3.org/2001/XMLSchema#integer> <urn:g> .\n')
    out = rdfc.canonicalize_nquads(text)
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0] == '<urn:s> <urn:p> "1"^^<http://www.w3.org/2001/XMLSchema#integer> <urn:g> .'
    assert sorted(lines[1].split()[0:4:3]) == ["_:c14n0", "_:c14n1"]  # subject and graph get distinct labels
    assert lines[1].split()[1:3] == ["<urn:p>", '"v"@en-GB']


def test_input_labels_that_look_canonical_are_still_relabelled():
    out = rdfc.canonicalize_nquads("_:c14n5 <urn:p> <urn:o> .\n_:c14n0 <urn:q> <urn:o> .\n")
    assert "_:c14n5" not in out and out.count("_:c14n") == 2


@pytest.mark.parametrize("line", [
    "<urn:s> <urn:p> .",                       # missing object
    "<urn:s> <urn:p> <urn:o>",                 # missing dot
    "<urn:s> <urn:p> \"unterminated .",
    "<urn:s> <urn:p> \"bad \\q escape\" .",
    "<urn:s> <urn:p> <has space> .",
    "<urn:s> <urn:p> \"\\uD800\" .",           # a lone surrogate is not a character
    "\"literal\" <urn:p> <urn:o> .",           # literal subject
])
def test_malformed_nquads_give_parse_error(line):
    with pytest.raises(CeadError) as info:
        rdfc.canonicalize_nquads(line + "\n")
    assert info.value.code == "rdfc.parse_error"
    assert "line 1" in info.value.message


def test_iri_that_would_break_the_canonical_form_is_refused():
    # e.g. from JSON-LD, where an IRI may contain anything: "urn:a> <urn:evil" must not forge a second term
    dataset = {"@default": [{"subject": {"type": "IRI", "value": "urn:a> <urn:evil"},
                             "predicate": {"type": "IRI", "value": "urn:p"},
                             "object": {"type": "literal", "value": "x",
                                        "datatype": "http://www.w3.org/2001/XMLSchema#string"}}]}
    with pytest.raises(CeadError) as info:
        rdfc.canonicalize_dataset(dataset)
    assert info.value.code == "rdfc.invalid_iri"


def test_comments_and_blank_lines_are_ignored():
    assert rdfc.canonicalize_nquads("# c\n\n<urn:s> <urn:p> <urn:o> . # trailing\n") == "<urn:s> <urn:p> <urn:o> .\n"


def test_one_request_shares_one_work_budget():
    """The per-run limit cannot be multiplied by packing many documents into one request."""
    from verifier.rdfc import canonicalize_nquads, work_budget
    heavy = (Path(__file__).parent / "vectors" / "rdf-canon" / "rdfc10" / "test044-in.nq").read_text()
    canonicalize_nquads(heavy)                       # alone, well inside the per-run limit
    with work_budget(max_calls=700):
        canonicalize_nquads(heavy)                   # the first one fits the shared budget ...
        with work_budget(max_calls=10**6):           # (a nested budget does not reset the outer one)
            with pytest.raises(CeadError) as info:
                canonicalize_nquads(heavy)           # ... the second one does not
    assert info.value.code == "rdfc.too_complex"
    canonicalize_nquads(heavy)                       # outside the block, the per-run limit alone applies again
