"""The compiled JSON Schema validator (jsonschema-rs) answers "is it valid?" before the reference validator
(jsonschema) runs, so it must give the same answer: here both judge the shipped credentials of every Cead type and
hundreds of broken variants of them (members removed, wrong types, bad dates and IRIs, stray members), and must
agree on every one; and a credential the schema refuses is still reported with the reference's path and message."""
from __future__ import annotations

import copy
import itertools

import jsonschema
import pytest

from transfer_world import world
from verifier.credential import Verifier, _fast_validator, _schema_registry, _validator

BAD_VALUES = [None, 0, -1, 1.5, True, "", "x y", "not-a-date", "2026-13-45", "2026-01-01T00:00:00",
              "urn:x", [], [1], {}, {"id": 1}]


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, member in value.items():
            yield from _paths(member, prefix + (key,))
    elif isinstance(value, list):
        for index, member in enumerate(value[:2]):
            yield from _paths(member, prefix + (index,))


def _variants(doc):
    """Broken copies of ``doc``: each member removed, or replaced by each bad value; a stray member added."""
    for path in itertools.islice(_paths(doc), 1, None):
        parent_path, last = path[:-1], path[-1]
        for replacement in [KeyError, *BAD_VALUES]:
            broken = copy.deepcopy(doc)
            parent = broken
            for step in parent_path:
                parent = parent[step]
            if replacement is KeyError:
                if isinstance(parent, dict):
                    del parent[last]
                else:
                    parent.pop(last)
            else:
                parent[last] = replacement
            yield broken
    extra = copy.deepcopy(doc)
    extra["credentialSubject"]["unexpectedMember"] = "x"
    yield extra


@pytest.fixture(scope="module")
def documents():
    with world() as w:
        docs = [w.doc(w.approval), w.doc(w.d1), w.doc(w.cert),
                w.doc(w.make_approval(w.controller, privacyProtocol={"kind": "threshold", "minCellCount": 10}))]
    return docs


def test_the_compiled_and_reference_validators_agree(documents):
    by_id, registry = _schema_registry()
    checked = invalid = 0
    for doc in documents:
        schema_id = doc["credentialSchema"]["id"] if isinstance(doc["credentialSchema"], dict) else \
            doc["credentialSchema"][0]["id"]
        fast, reference = _fast_validator(schema_id, by_id), _validator(schema_id, by_id[schema_id], registry)
        assert fast is not None, "jsonschema-rs is a dependency; the fast path must be in use"
        for variant in [doc, *_variants(doc)]:
            expected = not any(True for _ in reference.iter_errors(variant))
            assert fast.is_valid(variant) == expected, (schema_id, variant.get("credentialSubject"))
            checked += 1
            invalid += not expected
    assert checked > 500 and invalid > 100      # the test saw both answers, many times


def test_a_refused_credential_is_reported_by_the_reference_validator(documents):
    doc = copy.deepcopy(documents[0])
    doc["credentialSubject"]["maxRowsPerTransfer"] = "many"
    result = Verifier()._guard("credential", Verifier()._check_unsigned, doc)
    invalid = [p for p in result.problems if p.code == "credential.schema_invalid"]
    assert invalid and invalid[0].detail["path"] == "credentialSubject/maxRowsPerTransfer"
    assert "'many' is not valid under any of the given schemas" in invalid[0].message


def test_when_the_two_disagree_the_credential_is_refused(documents, monkeypatch):
    """Fail closed: a compiled validator stricter than the reference (here one that refuses everything) refuses."""
    import jsonschema_rs
    import verifier.credential as credential_module
    doc = documents[2]
    assert not Verifier()._check_unsigned(doc).problems
    monkeypatch.setitem(credential_module._FAST, doc["credentialSchema"]["id"],
                        jsonschema_rs.Draft202012Validator({"not": {}}))
    problems = Verifier()._check_unsigned(doc).problems
    assert [p.code for p in problems] == ["credential.schema_invalid"]


def test_formats_are_checked_as_the_reference_checks_them():
    """jsonschema checks "date" (and not "date-time" or "iri" without optional packages): so does the fast path."""
    by_id, _ = _schema_registry()
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    assert checker.conforms("2026-01-01", "date") and not checker.conforms("2026-02-30", "date")
    schema_id = "https://w3id.org/cead/schemas/organisation-certification.json"
    fast = _fast_validator(schema_id, by_id)
    with world() as w:
        doc = w.doc(w.cert)
    bad = copy.deepcopy(doc)
    bad["credentialSubject"]["expiryDate"] = "2026-02-30"
    assert fast.is_valid(doc) and not fast.is_valid(bad)
