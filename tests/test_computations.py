"""Computations that really run: PSI cardinality between two processes over HTTPS (openmined-psi), secure
aggregation across three processes (MPyC), each party checking its own approval first, and the run attestation a
gateway checks (verifier.attestation) instead of a manifest's word."""
from __future__ import annotations

import copy
import math
import ssl

import httpx
import pytest

from schemas.attestation import commitment, opens, output_digest
from schemas.errors import CeadError
from verifier.attestation import check_attestation, organisations
from verifier.credential import Verifier
from wallet.computations.aggregation import run_secure_aggregation
from wallet.computations.attest import Signer, combine, new_run_id, now_utc, sign, unsigned_attestation
from wallet.computations import psi as psi_module
from wallet.computations.psi import PsiRefused, decoy_offset, discrete_laplace, run_psi_cardinality

from computations_world import (aggregation_inputs, aggregation_protocol, approval, lawful, psi_holder,
                                psi_protocol)
from transfer_world import Party


def codes(problems) -> set[str]:
    return {p.code for p in problems}


# ---- the pieces -------------------------------------------------------------------------------------------------

def test_commitments_hide_and_open():
    first, salt = commitment({"a": 1})
    again, other_salt = commitment({"a": 1})
    assert first != again and salt != other_salt            # salted: equal inputs do not give equal commitments
    assert opens(first, {"a": 1}, salt) and not opens(first, {"a": 2}, salt) and not opens(first, {"a": 1}, "zz")
    assert commitment({"x", "y"}, b"s")[0] == commitment({"y", "x"}, b"s")[0]     # a set commits sorted


def test_decoy_noise_is_bounded_and_centred():
    t = decoy_offset(1.0, 1e-6)
    assert 2 * math.exp(-1.0 * (t + 1)) / (1 + math.exp(-1.0)) <= 1e-6 < 2 * math.exp(-1.0 * t) / (1 + math.exp(-1))
    draws = [discrete_laplace(1.0, t) for _ in range(4000)]
    assert all(-t <= d <= t for d in draws)
    assert abs(sum(draws) / len(draws)) < 0.2                # mean 0, variance 2e/(e-1)^2 ~ 1.84
    assert len(set(draws)) > 5
    with pytest.raises(CeadError) as err:
        decoy_offset(1e-6, 1e-9)
    assert err.value.problem.code == "computation.mechanism_unsupported"


def test_organisations_fold_subdomains():
    orgs = organisations(["did:web:fife.example", "did:web:mpc.fife.example", "did:web:fife.example:housing",
                          "did:web:dundeecity.example", "did:web:127.0.0.1%3A8443:a", "did:web:127.0.0.1%3A8444",
                          "did:key:z6Mkexample"])
    assert orgs["did:web:mpc.fife.example"] == orgs["did:web:fife.example"] == "fife.example"
    assert orgs["did:web:fife.example:housing"] == "fife.example"
    assert orgs["did:web:dundeecity.example"] == "dundeecity.example"
    assert orgs["did:web:127.0.0.1%3A8443:a"] != orgs["did:web:127.0.0.1%3A8444"]
    assert orgs["did:key:z6Mkexample"] == "did:key:z6Mkexample"


# ---- PSI cardinality --------------------------------------------------------------------------------------------

HOLDER_ITEMS = [f"person-{i}" for i in range(300)]
LEARNER_ITEMS = [f"person-{i}" for i in range(180, 480)]        # 120 in common
PLAIN = len(set(HOLDER_ITEMS) & set(LEARNER_ITEMS))


@pytest.fixture(scope="module")
def psi(w, tmp_path_factory):
    sss, glasgow = Party("sss"), Party("glasgow")
    protocol = psi_protocol(sss.did, glasgow.did, max_releases=4)
    credential = approval(w, sss, recipients=[glasgow.did], protocol=protocol)
    with psi_holder(sss, HOLDER_ITEMS, credential, tmp_path_factory.mktemp("psi"), network=w.network) \
            as (url, ca):
        def run(items=LEARNER_ITEMS, *, epsilon=50.0, learner=glasgow, approval_=credential, url_=url):
            return run_psi_cardinality(url_, Signer(learner.did, learner.key, learner.kid), items, approval_,
                                       holder=sss.did, epsilon=epsilon, delta=1e-6, verifier=Verifier(),
                                       ca_bundle=ca)
        yield {"sss": sss, "glasgow": glasgow, "protocol": protocol, "approval": credential, "run": run,
               "url": url, "ca": ca}


def test_psi_refusals_before_anything_is_charged(w, psi):
    # the learner's node refuses to take part under an approval that does not name it as learner
    stranger = Party("intruder")
    with pytest.raises(PsiRefused) as err:
        psi["run"](learner=stranger)
    assert err.value.problem.code == "computation.not_authorised" and "learner" in err.value.problem.message
    # an approval for the holder's data signed by someone else authorises nothing
    forged = w.make_approval(stranger, fmt="ldp", discloser=psi["sss"].did, recipients=[stranger.did],
                             lawfulBases=lawful(psi["sss"].did, stranger.did),
                             privacyProtocol=psi_protocol(psi["sss"].did, stranger.did))
    with pytest.raises(PsiRefused) as err:
        psi["run"](learner=stranger, approval_=forged)
    assert err.value.problem.code == "computation.not_authorised" and "own organisation" in err.value.problem.message
    # the holder's node refuses a learner its own approval does not name, whatever the learner's node thought
    psi_run = {"kind": "psiCardinality", "parties": [psi["sss"].did, stranger.did], "learners": [stranger.did]}
    client = psi_module._psi().client.CreateWithNewKey(False)
    body = {"runId": new_run_id(), "protocol": [psi_run, {"kind": "differentialPrivacy", "epsilon": 50.0,
                                                          "delta": 1e-6}],
            "request": psi_module._b64(client.CreateRequest(LEARNER_ITEMS).SerializeToString()),
            "learnerCommitment": commitment(set(LEARNER_ITEMS))[0]}
    with httpx.Client(verify=ssl.create_default_context(cafile=psi["ca"])) as http, pytest.raises(PsiRefused) as err:
        psi_module._post(http, psi["url"] + "/computations/psi/query", body,
                         Signer(stranger.did, stranger.key, stranger.kid), psi["url"])
    assert err.value.problem.code == "computation.not_authorised" and stranger.did in err.value.problem.message
    # a request without the learner's presentation
    answer = httpx.post(psi["url"] + "/computations/psi/query", json=body,
                        verify=ssl.create_default_context(cafile=psi["ca"]))
    assert answer.status_code == 401 and answer.json()["problems"][0]["code"] == "computation.unauthenticated"
    # minimum set sizes
    with pytest.raises(PsiRefused) as err:
        psi["run"](items=LEARNER_ITEMS[:20])
    assert err.value.problem.code == "computation.set_too_small"


def test_psi_cardinality_is_the_plain_answer_and_its_attestation_is_checked(psi):
    result = psi["run"](epsilon=50.0)            # T = 0 decoys at this epsilon: the count is exact
    assert result.cardinality == PLAIN
    approved = psi["protocol"]
    assert check_attestation(result.attestation, result.output, approved, verifier=Verifier(),
                             approvals=[psi["approval"]]) == []
    # another output, a tampered attestation, a missing contributor approval
    other = result.output.replace(b'"intersectionCardinality": 120', b'"intersectionCardinality": 121')
    assert other != result.output
    assert "attestation.output_mismatch" in codes(check_attestation(result.attestation, other, approved,
                                                                    verifier=Verifier(),
                                                                    approvals=[psi["approval"]]))
    tampered = copy.deepcopy(result.attestation)
    tampered["credentialSubject"]["outputDigest"] = output_digest(other)
    assert codes(check_attestation(tampered, other, approved, verifier=Verifier(),
                                   approvals=[psi["approval"]])) == {"attestation.invalid"}
    assert codes(check_attestation(result.attestation, result.output, approved, verifier=Verifier())) == \
        {"attestation.contributor_not_approved"}
    # the holder co-signs once, and only what it recorded
    learner = psi["glasgow"]
    issued = combine(result.attestation, [result.attestation["proof"][0]])
    origin = psi["url"]
    with httpx.Client(verify=ssl.create_default_context(cafile=psi["ca"])) as http:
        signer = Signer(learner.did, learner.key, learner.kid)
        with pytest.raises(PsiRefused) as err:
            psi_module._post(http, origin + "/computations/psi/attest", {"attestation": issued}, signer, origin)
        assert err.value.problem.code == "computation.attestation_refused" and "already" in err.value.problem.message
        altered = copy.deepcopy({k: v for k, v in issued.items() if k != "proof"})
        altered["credentialSubject"]["inputs"][1]["commitment"] = commitment(["someone else"])[0]
        with pytest.raises(PsiRefused) as err:
            psi_module._post(http, origin + "/computations/psi/attest",
                             {"attestation": combine(altered, [sign(altered, signer)])}, signer, origin)
        assert err.value.problem.code == "computation.attestation_refused" and "inputs" in err.value.problem.message
    # an approval that needs a stricter run (a smaller epsilon) refuses this one
    stricter = copy.deepcopy(approved)
    stricter[1]["epsilon"] = 1.0
    assert "attestation.weaker_than_approved" in codes(check_attestation(
        result.attestation, result.output, stricter, verifier=Verifier(), approvals=[psi["approval"]]))


def test_psi_noise_and_the_query_budget_against_membership_inference(psi):
    noisy = psi["run"](epsilon=1.0)
    assert abs(noisy.cardinality - PLAIN) <= decoy_offset(1.0, 1e-6)
    # queries with sets differing by one member (is person-5 in the holder's set? person-6?) are releases like any
    # other: with the exact query above, these use the approval's four releases ...
    psi["run"](LEARNER_ITEMS + ["person-5"])
    psi["run"](LEARNER_ITEMS + ["person-6"])
    # ... and the next one is refused by the holder's ledger, whatever the learner says
    with pytest.raises(PsiRefused) as err:
        psi["run"](LEARNER_ITEMS + ["person-7"])
    assert err.value.problem.code == "computation.query_budget_exhausted"


# ---- secure aggregation ---------------------------------------------------------------------------------------

TABLES = [{"2026Q3|single": 41, "2026Q3|family": 17, "2026Q3|other": 3},
          {"2026Q3|single": 12, "2026Q3|family": 30},
          {"2026Q3|single": 8, "2026Q3|family": 9, "2026Q3|other": 2}]
CELLS = ["2026Q3|single", "2026Q3|family", "2026Q3|other"]


@pytest.fixture(scope="module")
def mpc(w, tmp_path_factory):
    sg = Party("sg")
    councils = [Party("fife"), Party("dundee"), Party("pkc")]
    protocol = aggregation_protocol(councils, sg.did)
    approvals = [approval(w, c, recipients=[sg.did], protocol=[protocol]) for c in councils]
    folder = tmp_path_factory.mktemp("mpc")
    inputs = aggregation_inputs(councils, TABLES, approvals, folder)
    result = run_secure_aggregation(inputs, cells=CELLS, output_parties=[sg.did], network=w.network)
    return {"sg": sg, "councils": councils, "protocol": protocol, "approvals": approvals, "inputs": inputs,
            "result": result, "folder": folder}


def test_secure_aggregation_is_the_plain_sum_and_attested(mpc):
    result = mpc["result"]
    plain = {cell: sum(t.get(cell, 0) for t in TABLES) for cell in CELLS}
    assert result.refused == [] and result.table == plain
    subject = result.attestation["credentialSubject"]
    assert subject["computeParties"] == [c.did for c in mpc["councils"]]
    assert len(result.attestation["proof"]) == 3
    assert check_attestation(result.attestation, result.output, [mpc["protocol"]], verifier=Verifier(),
                             approvals=mpc["approvals"]) == []


def test_attestation_refusals(mpc):
    result, protocol, approvals = mpc["result"], [mpc["protocol"]], mpc["approvals"]

    def check(att=result.attestation, output=result.output, approved=protocol, presented=approvals, **kw):
        return codes(check_attestation(att, output, approved, verifier=Verifier(), approvals=presented, **kw))

    assert check(output=result.output + b"x") == {"attestation.output_mismatch"}
    tampered = copy.deepcopy(result.attestation)
    tampered["credentialSubject"]["inputs"][1]["commitment"] = commitment([1])[0]
    assert check(tampered) == {"attestation.invalid"}
    # one organisation's compute parties: counted in organisations, not DIDs
    one_org = {c.did: "fife.example" for c in mpc["councils"]}
    assert "attestation.too_few_organisations" in check(organisation_of=lambda d: one_org.get(d, d))
    # a compute party of the output party's own organisation counts as colluding already
    with_sg = {mpc["councils"][0].did: "gov.scot.example", mpc["sg"].did: "gov.scot.example"}
    assert "attestation.too_few_organisations" in check(organisation_of=lambda d: with_sg.get(d, d))
    # a contributor whose approval is not presented
    assert check(presented=approvals[:2]) == {"attestation.contributor_not_approved"}
    # an approval requiring a higher collusion threshold than the run had
    stricter = dict(mpc["protocol"], collusionThreshold=3)
    assert "attestation.weaker_than_approved" in check(approved=[stricter])
    # no attestation at all; an approval of another kind
    assert codes(check_attestation(None, result.output, protocol, verifier=Verifier())) == {"attestation.missing"}
    assert "attestation.protocol_not_approved" in check(approved=[{"kind": "threshold", "minCellCount": 10}])
    # only one of the compute parties signed
    one_proof = dict(result.attestation, proof=result.attestation["proof"][0])
    assert check(one_proof) == {"attestation.unsigned"}


def test_one_council_withholding_stops_the_pooled_release(w, mpc):
    councils, sg = mpc["councils"], mpc["sg"]
    # Dundee's approval allows the aggregation only with a higher collusion threshold than this run has
    withholding = approval(w, councils[1], recipients=[sg.did],
                           protocol=[dict(mpc["protocol"], collusionThreshold=3)])
    inputs = aggregation_inputs(councils, TABLES, [mpc["approvals"][0], withholding, mpc["approvals"][2]],
                                mpc["folder"] / "withholding")
    result = run_secure_aggregation(inputs, cells=CELLS, output_parties=[sg.did], network=w.network)
    assert result.output is None and result.attestation is None
    assert [r["party"] for r in result.refused] == [councils[1].did]
    assert "weaker" in result.refused[0]["reason"]
    # Perth & Kinross's approval is revoked: its node checks the status list before taking part
    revoked = approval(w, councils[2], recipients=[sg.did], protocol=[mpc["protocol"]])
    w.status.set(w.doc(revoked), "revocation")
    inputs = aggregation_inputs(councils, TABLES, [mpc["approvals"][0], mpc["approvals"][1], revoked],
                                mpc["folder"] / "revoked")
    result = run_secure_aggregation(inputs, cells=CELLS, output_parties=[sg.did], network=w.network)
    assert result.output is None and [r["party"] for r in result.refused] == [councils[2].did]
    assert "status.revoked" in result.refused[0]["reason"]


def test_too_few_input_parties(w, mpc):
    councils, sg = mpc["councils"], mpc["sg"]
    with pytest.raises(CeadError) as err:
        run_secure_aggregation(mpc["inputs"][:2], cells=CELLS, output_parties=[sg.did])
    assert err.value.problem.code == "computation.too_few_parties"
    # an attestation of a two-party aggregation (signed by both) is refused by the gateway
    two = councils[:2]
    # an approval's own model refuses a secure aggregation of fewer than 3 input parties unless it states a lower
    # minInputParties; even with one stated, the gateway's attestation check still needs three organisations
    protocol = {**aggregation_protocol(two, sg.did), "minInputParties": 2}
    approvals = [approval(w, c, recipients=[sg.did], protocol=[protocol]) for c in two]
    from schemas.models import credential_digest
    output = b"cell,count\na,3\n"
    document = unsigned_attestation(
        two[0].did, id=new_run_id(), protocol_kind="secureAggregation", implementation="mpyc",
        implementation_version="0.11", run_parameters={"kind": "secureAggregation", "protocol": [protocol]},
        inputs=[{"party": c.did, "commitment": commitment([1])[0],
                 "approval": {"id": "urn:x:" + str(i), "digest": credential_digest(a)}}
                for i, (c, a) in enumerate(zip(two, approvals))],
        compute_parties=[c.did for c in two], output_parties=[sg.did], output_digest=output_digest(output),
        started_at=now_utc(), completed_at=now_utc())
    signed = combine(document, [sign(document, Signer(c.did, c.key, c.kid)) for c in two])
    assert codes(check_attestation(signed, output, [protocol], verifier=Verifier(), approvals=approvals)) == \
        {"attestation.too_few_input_parties"}
    # a signer that is not a compute party
    stranger = Party("intruder")
    extra = combine(document, [sign(document, Signer(c.did, c.key, c.kid)) for c in (*two, stranger)])
    assert "attestation.signer_not_compute_party" in codes(check_attestation(
        extra, output, [protocol], verifier=Verifier(), approvals=approvals))


# ---- the credential and the ledger ------------------------------------------------------------------------------

def test_attestation_terms_are_all_defined_and_schema_checked(mpc):
    import json

    from verifier import jsonld
    unsigned = {k: v for k, v in mpc["result"].attestation.items() if k != "proof"}
    expanded = json.dumps(jsonld.expand(unsigned))
    assert "credentials/issuer-dependent#" not in expanded          # no term falls to the VC context's @vocab
    assert "https://w3id.org/cead/vocab#outputDigest" in expanded
    # a subject the JSON Schema refuses is refused by the verifier before any signature matters
    bad = copy.deepcopy(unsigned)
    bad["credentialSubject"]["outputDigest"] = "md5:abc"
    assert "credential.schema_invalid" in codes(Verifier().check_document(bad))


def test_psi_budget_race_for_the_last_slot(tmp_path):
    import threading
    from datetime import datetime, timezone

    from wallet.computations.budget import QueryBudget
    budget = QueryBudget(tmp_path / "ledger.sqlite")
    anchor = datetime(2026, 4, 1, tzinfo=timezone.utc)
    now = datetime.now(timezone.utc)
    args = dict(approval="sha256-a", anchor=anchor, period="P1Y", epsilon=0.5, max_epsilon=2.0, max_queries=4,
                learner="did:example:l", now=now, record="{}")
    for i in range(3):
        assert budget.charge(run_id=f"urn:cead:run:seed-{i}", **args) is None
    barrier, outcomes = threading.Barrier(8), []

    def race(i: int) -> None:
        barrier.wait()
        outcomes.append(budget.charge(run_id=f"urn:cead:run:race-{i}", **args))

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(o is None for o in outcomes) == 1
    assert {o.code for o in outcomes if o is not None} == {"computation.query_budget_exhausted"}
    # the same run id is never charged twice; a new period starts afresh
    assert budget.charge(run_id="urn:cead:run:seed-0", **{**args, "max_queries": 99, "max_epsilon": 99}).code == \
        "computation.run_replayed"
    later = now.replace(year=now.year + 1)
    assert budget.charge(run_id="urn:cead:run:next-year", **{**args, "now": later}) is None


def test_transfer_check_hook(mpc):
    from verifier.attestation import transfer_check
    result, protocol, approvals = mpc["result"], [mpc["protocol"]], mpc["approvals"]
    manifest = {"runAttestation": result.attestation}
    assert transfer_check(protocol, manifest, result.output, approvals, verifier=Verifier()) == []
    assert codes(transfer_check(protocol, manifest, b"cell,count\n", approvals, verifier=Verifier())) == \
        {"attestation.output_mismatch"}
    # no attestation: refused only where the trust policy requires one; nothing to do for other protocols
    assert transfer_check(protocol, {}, result.output, approvals, verifier=Verifier()) == []
    assert codes(transfer_check(protocol, {}, result.output, approvals, verifier=Verifier(), required=True)) == \
        {"attestation.missing"}
    assert transfer_check([{"kind": "threshold", "minCellCount": 10}], {}, None, [], verifier=Verifier(),
                          required=True) == []
    # the output is not in the request: later (the response), or refused
    assert transfer_check(protocol, manifest, None, approvals, verifier=Verifier(), output_later=True) == []
    assert codes(transfer_check(protocol, manifest, None, approvals, verifier=Verifier())) == \
        {"attestation.output_missing"}


# ---- in the transfer decision -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def released(w, tmp_path_factory):
    """A secure aggregation whose first council is the world's controller (so its approval is the one the gateway
    decides on) and whose output goes to the world's recipient."""
    councils = [w.controller, Party("dundee-released"), Party("pkc-released")]  # status lists by name
    protocol = aggregation_protocol(councils, w.recipient.did)
    approvals = [w.make_approval(c, fmt="ldp", discloser=c.did, lawfulBases=lawful(c.did, w.recipient.did),
                                 privacyProtocol=[protocol]) for c in councils]
    inputs = aggregation_inputs(councils, TABLES, approvals, tmp_path_factory.mktemp("released"))
    result = run_secure_aggregation(inputs, cells=CELLS, output_parties=[w.recipient.did], network=w.network)
    assert result.output is not None
    return {"protocol": protocol, "approvals": approvals, "result": result}


def _decide_push(w, released, body, *, credentials=None, policy=None, **manifest):
    request = w.request("POST", body=body, protocolRun=[released["protocol"]], **manifest)
    credentials = [*released["approvals"], w.cert] if credentials is None else credentials
    return w.decider(**(policy or {})).decide(w.present(request, credentials), request)


def test_decision_checks_the_attestation_instead_of_the_protocol_run(w, released):
    result = released["result"]
    allowed = _decide_push(w, released, result.output, runAttestation=result.attestation)
    assert allowed.allowed, allowed.to_dict()
    other = _decide_push(w, released, result.output + b"x,1\n", runAttestation=result.attestation)
    assert not other.allowed and "attestation.output_mismatch" in {p.code for p in other.reasons}
    alone = _decide_push(w, released, result.output, runAttestation=result.attestation,
                         credentials=[released["approvals"][0], w.cert])
    assert not alone.allowed and "attestation.contributor_not_approved" in {p.code for p in alone.reasons}
    # a manifest's protocolRun alone is no evidence: refused by default (run_attestations: required) ...
    declared = _decide_push(w, released, result.output)
    assert not declared.allowed and "attestation.missing" in {p.code for p in declared.reasons}
    # ... and accepted only by a gateway that explicitly opts for the weaker "when_given"
    assert _decide_push(w, released, result.output, policy={"run_attestations": "when_given"}).allowed


def test_middleware_releases_only_the_attested_output_on_a_pull(w, released):
    import requests
    from flask import Flask

    from helpers_https import https_server
    from transfer_world import DATASET
    from verifier.binding import MANIFEST_HEADER, PRESENTATION_HEADER, encode_manifest, encode_presentation
    from verifier.decision import TransferRequest
    from verifier.middleware import CeadMiddleware

    result = released["result"]
    served = {"body": result.output}
    app = Flask("pooled-output")

    @app.get("/pooled")
    def pooled():
        return served["body"], 200, {"Content-Type": "text/csv"}

    app.wsgi_app = CeadMiddleware(app.wsgi_app, w.decider(), dataset_for=lambda environ: DATASET)
    with https_server(app) as (base_url, ca_bundle):
        def pull():
            manifest = w.manifest(protocolRun=[released["protocol"]], runAttestation=result.attestation)
            transfer = TransferRequest("GET", base_url + "/pooled", manifest=manifest)
            headers = {MANIFEST_HEADER: encode_manifest(manifest), PRESENTATION_HEADER: encode_presentation(
                w.present(transfer, [*released["approvals"], w.cert]))}
            return requests.get(base_url + "/pooled", headers=headers, verify=ca_bundle, timeout=30)

        response = pull()
        assert response.status_code == 200 and response.content == result.output, response.text
        served["body"] = result.output.replace(b",", b";")       # the app serves other bytes than were attested
        response = pull()
        assert response.status_code != 200 and b"attestation.output_mismatch" in response.content
