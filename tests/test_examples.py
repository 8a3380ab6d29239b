"""The Scottish examples in schemas/examples/: each credential validates against its JSON Schema, its typed model
and its JSON-LD contexts; references between them are pinned by digest; and every case in expected.json (allowed
or refused, with its reasons) comes out of within()/check_transfer()/derived_within() as stated."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

import schemas
from schemas import models, vocab
from verifier.protocols import check_transfer
from verifier.scope import approval_within, delegation_within, derived_within, transfer_within

EXAMPLES = Path(str(schemas.data_path("examples")))
SCHEMAS = {s["$id"]: s for s in (json.loads(p.read_text("utf-8"))
                                 for p in Path(str(schemas.data_path("jsonschema"))).glob("*.json"))}
EXPECTED = json.loads((EXAMPLES / "expected.json").read_text("utf-8"))
VOC = vocab.builtin().load(json.loads((EXAMPLES / EXPECTED["vocabulary"]).read_text("utf-8")))


def load(name: str):
    return json.loads((EXAMPLES / name).read_text("utf-8"))


CREDENTIALS = sorted(p.name for p in EXAMPLES.glob("*.json") if "credentialSubject" in load(p.name))


def test_every_type_and_scenario_is_present():
    types = {models.model_for(load(n)) for n in CREDENTIALS}
    assert types == set(models.CREDENTIAL_MODELS.values())
    for scenario in ("police", "homelessness", "fsm", "child-poverty"):
        assert any(n.startswith(scenario) for n in CREDENTIALS)
        assert any(c["subject"].startswith(scenario) and not c["allowed"] for c in EXPECTED["cases"])


@pytest.mark.parametrize("name", CREDENTIALS)
def test_credential_validates_against_schema_and_model(name):
    cred = load(name)
    schema = SCHEMAS[cred["credentialSchema"]["id"]]
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    assert [e.message for e in validator.iter_errors(cred)] == []
    model = models.model_for(cred)
    subject = model.from_credential(cred)
    assert subject.to_json() == cred["credentialSubject"]       # the wire form round-trips exactly


@pytest.mark.parametrize("name", CREDENTIALS)
def test_credential_expands_with_no_dropped_or_guessed_terms(name):
    from verifier import jsonld
    expanded = json.dumps(jsonld.expand(load(name)))
    # the VC 2.0 context's @vocab would catch undefined terms as issuer-dependent IRIs: none may appear
    assert "credentials/issuer-dependent#" not in expanded
    assert "https://w3id.org/cead/vocab#" in expanded


def test_schema_rejects_a_broken_example():
    cred = load("police-approval.json")
    cred["credentialSubject"]["onwardSharing"] = "Sometimes"
    del cred["credentialSubject"]["purposes"]
    validator = Draft202012Validator(SCHEMAS[cred["credentialSchema"]["id"]])
    assert len(list(validator.iter_errors(cred))) == 2


def test_references_are_pinned_by_digest():
    by_id = {load(n)["id"]: load(n) for n in CREDENTIALS}
    refs = 0
    for name in CREDENTIALS:
        subject = load(name)["credentialSubject"]
        for ref in [subject.get("parentDelegation"), *subject.get("delegationChain", []),
                    *subject.get("upstream", [])]:
            if ref:
                refs += 1
                assert ref["digest"] == models.credential_digest(by_id[ref["id"]]), (name, ref["id"])
    assert refs >= 8


def _run(case: dict) -> list:
    check, at = case["check"], case.get("at")
    subject = load(case["subject"])
    if check == "approval_within":
        return approval_within(models.DataSharingApproval.from_credential(subject),
                               models.DelegatedAuthority.from_credential(load(case["against"])), at=at,
                               vocabulary=VOC)
    if check == "delegation_within":
        return delegation_within(models.DelegatedAuthority.from_credential(subject), load(case["against"]),
                                 at=at, vocabulary=VOC)
    if check == "derived_within":
        return derived_within(models.DataSharingApproval.from_credential(subject),
                              [load(n) for n in case["against"]], vocabulary=VOC)
    assert check == "transfer"
    approval = models.DataSharingApproval.from_credential(load(case["against"]))
    payload = (EXAMPLES / case["payload"]).read_bytes() if case.get("payload") else None
    got = ([v.to_problem() for v in transfer_within(subject, approval, at=at, vocabulary=VOC)]
           + check_transfer(approval.privacy_protocol, subject, payload, approved_columns=approval.data_items))
    if "ledger" in case:
        # the data owner's books (a real SQLite ledger), never the manifest's figures
        import tempfile
        from datetime import datetime
        from issuer import db
        from issuer.ledger import SqlLedger
        from verifier.protocols import ReleaseContext, charge
        with tempfile.TemporaryDirectory() as tmp:
            ledger = SqlLedger(db.migrate(f"sqlite:///{tmp}/node.db"))
            ctx = ReleaseContext(recipient=subject["recipient"], ledger=ledger, dataset=subject["dataset"],
                                 approval=load(case["against"])["id"], subjects=tuple(approval.data_subjects),
                                 anchor=vocab.RepeatingInterval.parse(approval.cadence).start,
                                 now=datetime.fromisoformat(at.replace("Z", "+00:00")))
            for _ in range(case["ledger"]["earlierReleases"]):
                assert charge(approval.privacy_protocol, ctx) == []
            got += charge(approval.privacy_protocol, ctx)
            ledger.engine.dispose()
    return got


def _matches(got, want: dict) -> bool:
    problem = got.to_problem() if hasattr(got, "to_problem") else got
    return (problem.code == want["code"]
            and ("dimension" not in want or problem.detail.get("dimension") == want["dimension"])
            and ("offending" not in want or problem.detail.get("offending") == want["offending"])
            and all(problem.detail.get(k) == v for k, v in want.get("detail", {}).items()))


@pytest.mark.parametrize("case", EXPECTED["cases"], ids=[c["case"] for c in EXPECTED["cases"]])
def test_expected_outcome(case):
    got = _run(case)
    assert (not got) == case["allowed"], [str(g) for g in got]
    assert len(got) == len(case["reasons"]), [str(g) for g in got]
    for want in case["reasons"]:
        assert any(_matches(g, want) for g in got), (want, [str(g) for g in got])


def test_transfer_manifests_parse_and_name_approved_datasets():
    for path in EXAMPLES.glob("*-transfer-*.json"):
        manifest = json.loads(path.read_text("utf-8"))
        assert isinstance(manifest["dataset"], str) and manifest["columns"]
