"""Co-signing: a Data Integrity proof set on an approval, the credential checks that report its co-signers, the
decision that requires every named and every delegation-required co-signer, and `cead cosign`."""
from __future__ import annotations

import copy
import json

import pytest
from click.testing import CliRunner

from cead.cli import main
from issuer import issuing
from issuer.node import Node
from issuer.signing import add_proof
from verifier.credential import Verifier
from transfer_world import Party, codes, world

from issuer_fixtures import PASS


@pytest.fixture(scope="module")
def w():
    with world() as w:
        w.dpo = Party("dpo")   # the controller's DPO: a DID of its own, the co-signer
        yield w


def decide(w, credentials, decider=None):
    request = w.request()
    return (decider or w.decider()).decide(w.present(request, credentials), request)


def cosigner_problem(decision):
    return next(p for p in decision.reasons if p.code == "approval.cosigner_missing")


def ldp_approval(w, issuer=None, **changes):
    return w.make_approval(issuer or w.controller, fmt="ldp", **changes)


# ---- the credential checks ---------------------------------------------------------------------------------------

def test_add_proof_on_a_signed_credential_adds_to_the_proof_set(w):
    approval = ldp_approval(w, coSigners=[w.dpo.did])
    cosigned = add_proof(approval, w.dpo.key, w.dpo.kid)
    assert isinstance(cosigned["proof"], list) and len(cosigned["proof"]) == 2
    assert cosigned["proof"][0] == approval["proof"]          # the issuer's proof is kept as it was
    assert "proof" in approval and not isinstance(approval["proof"], list)   # the input is not modified
    result = Verifier().verify_credential(cosigned)
    assert result.verified, result.to_dict()
    assert result.co_signers == [w.dpo.did]
    assert result.verification_method == w.controller.kid
    assert result.to_dict()["coSigners"] == [w.dpo.did]


def test_proof_order_does_not_matter_but_the_issuer_must_sign(w):
    approval = ldp_approval(w, coSigners=[w.dpo.did])
    cosigned = add_proof(approval, w.dpo.key, w.dpo.kid)
    reordered = {**cosigned, "proof": list(reversed(cosigned["proof"]))}
    result = Verifier().verify_credential(reordered)
    assert result.verified and result.verification_method == w.controller.kid
    assert result.co_signers == [w.dpo.did]
    only_cosigner = {**cosigned, "proof": [cosigned["proof"][1]]}
    result = Verifier().verify_credential(only_cosigner)
    assert not result.verified
    assert "credential.issuer_mismatch" in {p.code for p in result.problems}


def test_every_proof_of_the_set_must_verify(w):
    approval = ldp_approval(w, coSigners=[w.dpo.did])
    cosigned = add_proof(approval, w.dpo.key, w.dpo.kid)
    tampered = copy.deepcopy(cosigned)
    value = tampered["proof"][1]["proofValue"]
    tampered["proof"][1]["proofValue"] = value[:-2] + ("1" if value[-2] != "1" else "2") + value[-1]
    result = Verifier().verify_credential(tampered)
    assert not result.verified and result.co_signers == []
    assert {p.code for p in result.problems} & {"proof.signature_invalid", "proof.malformed"}


# ---- the decision ------------------------------------------------------------------------------------------------

def test_cosigned_approval_is_allowed_also_from_the_proof_cache(w):
    cosigned = add_proof(ldp_approval(w, coSigners=[w.dpo.did]), w.dpo.key, w.dpo.kid)
    decider = w.decider()
    first = decide(w, [cosigned, w.cert], decider)
    assert first.allowed, first.to_dict()
    second = decide(w, [cosigned, w.cert], decider)   # the proof result now comes from the cache
    assert second.allowed, second.to_dict()
    assert decider.metrics.cache_hit_rate("proofs") > 0


def test_missing_cosignature_is_denied(w):
    decision = decide(w, [ldp_approval(w, coSigners=[w.dpo.did]), w.cert])
    assert not decision.allowed
    problem = cosigner_problem(decision)
    assert problem.detail["missing"] == [w.dpo.did]
    assert w.dpo.did in problem.message


def test_cosignature_by_the_wrong_did_is_denied(w):
    signed_by_stranger = add_proof(ldp_approval(w, coSigners=[w.dpo.did]), w.stranger.key, w.stranger.kid)
    assert Verifier().verify_credential(signed_by_stranger).co_signers == [w.stranger.did]
    decision = decide(w, [signed_by_stranger, w.cert])
    assert not decision.allowed
    assert cosigner_problem(decision).detail["missing"] == [w.dpo.did]


def test_tampered_cosignature_is_denied(w):
    approval = ldp_approval(w, coSigners=[w.dpo.did])
    cosigned = add_proof(approval, w.dpo.key, w.dpo.kid)
    # a co-signature lifted from another credential (the DPO signed a different approval)
    other = add_proof(ldp_approval(w, coSigners=[w.dpo.did], maxRowsPerTransfer=999), w.dpo.key, w.dpo.kid)
    lifted = {**approval, "proof": [approval["proof"], other["proof"][1]]}
    # a co-signature whose signature bytes were changed
    flipped = copy.deepcopy(cosigned)
    flipped["proof"][1]["proofValue"] = cosigned["proof"][0]["proofValue"]
    for bad in (lifted, flipped):
        decision = decide(w, [bad, w.cert])
        assert not decision.allowed
        assert {"proof.signature_invalid", "approval.invalid", "approval.cosigner_missing"} <= codes(decision), \
            decision.to_dict()


def test_issuer_cannot_cosign_its_own_approval(w):
    twice = add_proof(ldp_approval(w, coSigners=[w.controller.did]), w.controller.key, w.controller.kid)
    decision = decide(w, [twice, w.cert])
    assert not decision.allowed
    assert cosigner_problem(decision).detail["missing"] == [w.controller.did]


def test_jwt_approval_with_cosigners_is_denied(w):
    approval = w.make_approval(w.controller, coSigners=[w.dpo.did])     # vc+jwt: one signature only
    decision = decide(w, [approval, w.cert])
    assert not decision.allowed
    problem = cosigner_problem(decision)
    assert problem.detail["missing"] == [w.dpo.did] and "vc+jwt" in problem.message


def test_delegation_required_cosigners_must_have_signed(w):
    delegation = w.delegation(w.controller, w.iao, requiredCoSigners=[w.dpo.did])
    approval = ldp_approval(w, w.iao, chain=[delegation], coSigners=[w.dpo.did])
    cosigned = add_proof(approval, w.dpo.key, w.dpo.kid)
    allowed = decide(w, [cosigned, delegation, w.cert])
    assert allowed.allowed, allowed.to_dict()
    denied = decide(w, [approval, delegation, w.cert])
    assert cosigner_problem(denied).detail["missing"] == [w.dpo.did]
    # an approval that drops the delegation's requirement is too wide, and still needs the co-signature
    dropped = ldp_approval(w, w.iao, chain=[delegation], coSigners=[])
    decision = decide(w, [dropped, delegation, w.cert])
    assert {"approval.exceeds_delegation", "approval.cosigner_missing"} <= codes(decision)
    assert cosigner_problem(decision).detail["missing"] == [w.dpo.did]


def test_upstream_approval_cosigners_are_checked_too(w):
    source, source_dataset = Party("cosign-source"), "https://data.source.example/dataset/cosigned"
    basis = ["https://www.legislation.gov.uk/eur/2016/679/article/6/1/e"]
    upstream = w.make_approval(source, fmt="ldp", discloser=source.did, recipients=[w.controller.did],
                               datasets=[source_dataset], coSigners=[w.dpo.did], onwardSharing="Permitted",
                               lawfulBases=[{"party": p.did, "regime": "UKGDPR", "legalBases": basis}
                                            for p in (source, w.controller)])
    decider = w.decider(controllers=[*w.policy_data()["controllers"],
                                     {"dataset": source_dataset, "controller": source.did}])
    unsigned = w.make_approval(w.controller, upstream=[w.ref(upstream)])
    decision = decide(w, [unsigned, upstream, w.cert], decider)
    assert cosigner_problem(decision).detail["approval"] == upstream["id"]
    cosigned = add_proof(upstream, w.dpo.key, w.dpo.kid)
    w.docs[cosigned["id"]] = w.doc(upstream)
    derived = w.make_approval(w.controller, upstream=[w.ref(cosigned)])   # the reference pins the co-signed copy
    decision = decide(w, [derived, cosigned, w.cert], decider)
    assert decision.allowed, decision.to_dict()


# ---- cead cosign ----------------------------------------------------------------------------------------------------

APPROVAL_SUBJECT = {
    "agreement": {"id": "https://fife.example/agreements/dsa-9", "digest": "sha256-" + "A" * 43},
    "recipients": ["did:web:gov.scot.example"],
    "datasets": ["https://data.fife.example/dataset/homelessness-applications"],
    "dataItems": ["ageBand", "count"], "dataCategories": ["cead:HousingSituation"],
    "purposes": ["cead:HomelessnessStatistics"], "dpia": {"outcome": "LowRisk"}, "sensitivity": "Personal",
    "cadence": "R/2026-01-01T00:00:00Z/P1M", "retention": {"receivedData": "P1Y"}, "onwardSharing": "Prohibited",
    "notBefore": "2026-01-01T00:00:00Z", "notAfter": "2030-12-31T23:59:59Z",
}


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    base = tmp_path_factory.mktemp("cosign")
    issuer, _ = Node.init(base / "issuer", "Fife Council", PASS, did_method="key", public_url="https://fife.example")
    dpo, _ = Node.init(base / "dpo", "Fife Council DPO", PASS, did_method="key", public_url="https://dpo.example")
    basis = ["https://www.legislation.gov.uk/eur/2016/679/article/6/1/e"]
    subject = {**APPROVAL_SUBJECT, "discloser": issuer.did, "coSigners": [dpo.did],
               "lawfulBases": [{"party": p, "regime": "UKGDPR", "legalBases": basis}
                               for p in (issuer.did, "did:web:gov.scot.example")]}
    files = {}
    for name, options in (("ldp", {}), ("jcs", {"cryptosuite": "eddsa-jcs-2022"}), ("jwt", {"format": "vc+jwt"})):
        credential = issuing.build_credential(issuer, "DataSharingApprovalCredential", subject)
        issued = issuing.issue(issuer, credential, options)
        files[name] = base / f"{name}.json"
        files[name].write_text(issued.credential if isinstance(issued.credential, str)
                               else json.dumps(issued.credential))
        if name == "jwt":
            files["enveloped"] = base / "enveloped.json"
            files["enveloped"].write_text(json.dumps(issued.verifiable_credential))
    return issuer, dpo, files, base


def run(*argv):
    return CliRunner().invoke(main, list(argv), env={"CEAD_PASSPHRASE": PASS.decode()})


@pytest.mark.parametrize("name, suite", [("ldp", "eddsa-rdfc-2022"), ("jcs", "eddsa-jcs-2022")])
def test_cead_cosign_adds_the_nodes_proof(nodes, name, suite):
    issuer, dpo, files, base = nodes
    out = base / f"{name}-cosigned.json"
    result = run("cosign", str(files[name]), "--home", str(dpo.home), "--out", str(out))
    assert result.exit_code == 0, result.output
    cosigned = json.loads(out.read_text())
    assert [p["cryptosuite"] for p in cosigned["proof"]] == [suite, suite]
    verified = Verifier().verify_credential(cosigned)
    assert verified.verified, verified.to_dict()
    assert verified.issuer == issuer.did and verified.co_signers == [dpo.did]
    # stdout without --out; the same node cannot sign twice, nor the issuer co-sign its own credential
    assert json.loads(run("cosign", str(files[name]), "--home", str(dpo.home)).output)["proof"][1][
        "verificationMethod"].startswith(dpo.did)
    again = run("cosign", str(out), "--home", str(dpo.home))
    assert again.exit_code == 1 and "credential.already_signed" in again.output
    own = run("cosign", str(files[name]), "--home", str(issuer.home))
    assert own.exit_code == 1 and "credential.already_signed" in own.output


@pytest.mark.parametrize("name", ["jwt", "enveloped"])
def test_cead_cosign_refuses_a_jwt(nodes, name):
    _issuer, dpo, files, _base = nodes
    result = run("cosign", str(files[name]), "--home", str(dpo.home))
    assert result.exit_code == 1
    assert "credential.not_cosignable" in result.output and "vc+jwt" in result.output
    assert "Traceback" not in result.output


def test_cead_cosign_refuses_what_does_not_verify(nodes):
    _issuer, dpo, files, base = nodes
    doc = json.loads(files["ldp"].read_text())
    doc["credentialSubject"]["maxRowsPerTransfer"] = 10**6          # changed after the issuer signed it
    tampered = base / "tampered.json"
    tampered.write_text(json.dumps(doc))
    result = run("cosign", str(tampered), "--home", str(dpo.home))
    assert result.exit_code == 1 and "credential.unverified" in result.output
    unsigned = base / "unsigned.json"
    unsigned.write_text(json.dumps({k: v for k, v in doc.items() if k != "proof"}))
    result = run("cosign", str(unsigned), "--home", str(dpo.home))
    assert result.exit_code == 1 and "credential.not_cosignable" in result.output
    garbage = base / "garbage.json"
    garbage.write_text("{not json")
    result = run("cosign", str(garbage), "--home", str(dpo.home))
    assert result.exit_code == 1 and "request.invalid" in result.output
