"""The transfer decision: the allow path and every denial of issue 5, each with its own reason code."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from issuer.keys import PrivateKey
from issuer.signing import sign_jwt
from schemas import models
from verifier.decision import Decider, TransferRequest
from verifier.http import Fetcher
from verifier.keys import b64url_decode
from verifier.policy import load_policy, parse_policy
from verifier.receipts import ReceiptSigner, relied_on, verify_receipt
from verifier.results import CeadError
from verifier.status import StatusLists
from transfer_world import API, CEAD, DATASET, DPV, OTHER_DATASET, Party, codes


def decide(w, credentials=None, decider=None, request=None, **present):
    request = request or w.request()
    vp = w.present(request, credentials, **present)
    return (decider or w.decider()).decide(vp, request)


def denied(decision, code):
    assert not decision.allowed
    assert code in codes(decision), decision.to_dict()["reasons"]


# ---- allow ----------------------------------------------------------------------------------------------------

def test_allow_with_two_link_chain_and_certification(w):
    decision = decide(w)
    assert decision.allowed, decision.to_dict()
    assert decision.reasons == []
    assert decision.holder == w.recipient.did
    assert decision.approval_id == w.doc(w.approval)["id"]
    digests = {entry.split(" ")[1] for entry in decision.relied_on}
    assert digests == {models.credential_digest(c) for c in w.bundle()}
    assert decision.receipt is None
    body = decision.to_dict()
    assert body["decision"] == "allow" and body["reliedOn"] == decision.relied_on


def test_allow_approval_issued_by_controller_itself(w):
    approval = w.make_approval(w.controller)
    assert decide(w, [approval, w.cert]).allowed


def test_allow_data_integrity_presentation_and_credential(w):
    approval = w.make_approval(w.controller, fmt="ldp")
    request = w.request()
    decision = decide(w, [approval, w.cert], request=request, fmt="ldp")
    assert decision.allowed, decision.to_dict()


def test_signed_receipt(w, tmp_path):
    key = PrivateKey.generate()
    path = tmp_path / "receipt.pem"
    path.write_bytes(key.to_pem(None))
    decider = w.decider(receipts={"key": str(path), "kid": "did:web:gateway.example#receipt"})
    decision = decide(w, decider=decider)
    claims = verify_receipt(decision.receipt, key.public)
    assert claims["decision"] == "allow" and relied_on(claims) == decision.relied_on and "reliedOn" not in claims
    assert claims["url"] == decision.url
    with pytest.raises(CeadError) as err:
        verify_receipt(decision.receipt, PrivateKey.generate().public)
    assert err.value.code == "receipt.invalid"
    assert "PRIVATE" not in repr(ReceiptSigner.from_file(path))


# ---- step 1: the presentation ------------------------------------------------------------------------------------

def test_an_enveloped_presentation_is_decided_as_its_jwt(w):
    """The Cead-Presentation header may carry a VC 2.0 EnvelopedVerifiablePresentation (base64url JSON)."""
    import json
    from verifier.keys import b64url
    decider, request = w.decider(), w.request()
    vp = w.present(request)
    envelope = {"@context": "https://www.w3.org/ns/credentials/v2", "type": "EnvelopedVerifiablePresentation",
                "id": "data:application/vp+jwt," + vp}
    decision = decider.decide(b64url(json.dumps(envelope).encode()), request)
    assert decision.allowed, decision.to_dict()
    assert decision.holder == w.recipient.did
    denied(decider.decide(envelope, request), "presentation.replayed")     # the same presentation, unwrapped


def test_replayed_presentation(w):
    decider, request = w.decider(), w.request()
    vp = w.present(request)
    assert decider.decide(vp, request).allowed
    denied(decider.decide(vp, request), "presentation.replayed")


def test_strangers_cannot_fill_the_replay_guard(w):
    """Only allowed transfers are remembered: presentations from parties without an approval are denied and not
    recorded, so they cannot fill the guard and lock the approved recipient out; a full guard still refuses."""
    from transfer_world import Party
    decider = w.decider(caches={"status_lists": {"size": 64, "ttl": 0}, "replay": {"size": 2, "ttl": 600}})
    for n in range(5):
        request = w.request()
        denied(decider.decide(w.present(request, [], holder=Party(f"stranger-{n}")), request), "approval.missing")
    for _ in range(2):
        request = w.request()
        assert decider.decide(w.present(request), request).allowed
    request = w.request()
    denied(decider.decide(w.present(request), request), "presentation.replay_guard_full")


def test_the_same_presentation_decided_at_once_from_many_threads_is_allowed_once(w):
    from concurrent.futures import ThreadPoolExecutor
    decider, request = w.decider(), w.request()
    vp = w.present(request)
    with ThreadPoolExecutor(8) as pool:
        decisions = list(pool.map(lambda _: decider.decide(vp, request), range(8)))
    assert sum(d.allowed for d in decisions) == 1
    assert all(codes(d) == {"presentation.replayed"} for d in decisions if not d.allowed)


@pytest.mark.parametrize("manifest", [{"rowCount": 2 ** 60}, {"rowCount": float("nan")}, {"note": 2 ** 60}])
def test_a_manifest_that_cannot_be_bound_is_a_clear_denial(w, manifest):
    """NaN or an integer beyond I-JSON cannot be canonicalised with JCS: manifest.invalid, not an internal error,
    on the verifier's side and on the wallet's (request_binding)."""
    import json
    from verifier.binding import decode_manifest, request_binding
    from verifier.keys import b64url
    header = b64url(json.dumps({**w.manifest(), **manifest}).encode())
    with pytest.raises(CeadError) as err:
        decode_manifest(header)
    assert err.value.code == "manifest.invalid"
    with pytest.raises(CeadError) as err:
        request_binding("GET", w.request().url, None, {**w.manifest(), **manifest})
    assert err.value.code == "manifest.invalid"
    # through the gateway, which leaves the JCS check to the binding it computes at once: the same clear denial
    from verifier.binding import MANIFEST_HEADER, PRESENTATION_HEADER
    from verifier.gateway import decide_from_headers
    status, decision = decide_from_headers(Decider(parse_policy(w.policy_data())),
                                           {PRESENTATION_HEADER: "a.b.c", MANIFEST_HEADER: header}, "GET",
                                           w.request().url, None)
    assert status == 403 and codes(decision) == {"manifest.invalid"}


def test_a_credential_with_two_cead_types_is_named_not_an_internal_error(w):
    import uuid
    from schemas import models as m
    subject = m.DelegatedAuthority.model_validate({
        "id": w.stranger.did, "role": "X", "onBehalfOf": w.stranger.did, "allowedActions": ["ApproveDisclosure"],
        "scope": {"datasets": [w.request().manifest["dataset"]]}})
    doc = subject.to_credential(w.stranger.did, id=f"urn:uuid:{uuid.uuid4()}")
    doc["type"] = ["VerifiableCredential", "DelegatedAuthorityCredential", "DataSharingApprovalCredential"]
    odd = sign_jwt(doc, w.stranger.key, w.stranger.kid)
    request = w.request()
    decision = w.decider().decide(w.present(request, [odd, *w.bundle()]), request)
    assert not decision.allowed and codes(decision) == {"schema.invalid"}, decision.to_dict()
    assert "one Cead type" in decision.reasons[0].message


def test_presentation_for_another_audience(w):
    denied(decide(w, audience="https://elsewhere.example:443"), "presentation.audience_mismatch")


def test_presentation_for_another_request(w):
    request = w.request()
    vp = w.present(w.request(url=f"{API}/datasets/other"))
    denied(w.decider().decide(vp, request), "presentation.binding_mismatch")
    other_manifest = w.request(columns=["ageBand"])
    denied(w.decider().decide(w.present(other_manifest), request), "presentation.binding_mismatch")


def test_presentation_too_old_or_too_long_lived(w):
    request = w.request()
    vp = w.present(request)
    later = datetime.now(timezone.utc) + timedelta(minutes=20)
    denied(w.decider().decide(vp, request, now=later), "presentation.expired")
    long_lived = w.present(request, lifetime=300)
    denied(w.decider(presentation_max_age=60).decide(long_lived, request), "presentation.lifetime_invalid")


def test_presentation_signed_by_someone_else(w):
    request = w.request()
    vp = w.present(request)
    claims = json.loads(b64url_decode(vp.split(".")[1]))      # the recipient's claims, signed by a stranger
    forged = sign_jwt(claims, w.stranger.key, w.stranger.kid, typ="vp+jwt")
    denied(w.decider().decide(forged, request), "presentation.holder_mismatch")


def test_garbage_presentation_is_a_denial_not_an_exception(w):
    for junk, code in (("", "presentation.malformed"), ("a.b.c", "jose.malformed"),
                       ("not base64 !!", "presentation.malformed"),
                       ({"type": "VerifiablePresentation"}, "presentation.context_invalid")):
        denied(w.decider().decide(junk, w.request()), code)


def test_proofless_presentation_with_more_than_64_credentials_is_not_verified(w):
    """VC-API proofless presentations: every credential is checked, or the presentation is refused."""
    decider = w.decider()
    good = {"type": ["VerifiablePresentation"], "verifiableCredential": [w.cert]}
    assert decider.verify_proofless(good).verified
    # 64 good credentials and a forged 65th: before the fix only the first 64 were looked at
    crowded = {"type": ["VerifiablePresentation"], "verifiableCredential": [w.cert] * 64 + ["forged.jwt.value"]}
    result = decider.verify_proofless(crowded)
    assert not result.verified
    assert "presentation.malformed" in {p.code for p in result.problems}


# ---- step 2 and 3: credentials, approval and delegation ---------------------------------------------------------

def test_holder_is_not_the_recipient(w):
    denied(decide(w, holder=w.stranger), "holder.not_recipient")


def test_revoked_approval(w):
    approval = w.make_approval(w.deputy, chain=[w.d1, w.d2])
    decider = w.decider()
    assert decide(w, [approval, w.d1, w.d2, w.cert], decider=decider).allowed
    w.status.set(w.doc(approval), "revocation")
    decision = decide(w, [approval, w.d1, w.d2, w.cert], decider=decider)  # proof result now cached
    denied(decision, "status.revoked")
    denied(decision, "approval.revoked")


def test_suspended_delegation(w):
    d2 = w.delegation(w.iao, w.deputy, parent=w.d1, max_depth=0)
    approval = w.make_approval(w.deputy, chain=[w.d1, d2])
    w.status.set(w.doc(d2), "suspension")
    decision = decide(w, [approval, w.d1, d2, w.cert])
    denied(decision, "delegation.suspended")
    denied(decision, "status.suspended")
    w.status.set(w.doc(d2), "suspension", False)   # reinstated: allowed again
    assert decide(w, [approval, w.d1, d2, w.cert]).allowed


def test_delegation_that_widens_its_parent(w):
    wide = w.delegation(w.iao, w.deputy, parent=w.d1, max_depth=0,
                        datasets=[DATASET, "https://data.elsewhere.example/dataset/pupils"])
    approval = w.make_approval(w.deputy, chain=[w.d1, wide])
    denied(decide(w, [approval, w.d1, wide, w.cert]), "delegation.widens_parent")


def test_approval_signed_by_someone_with_no_delegation(w):
    approval = w.make_approval(w.stranger)
    denied(decide(w, [approval, w.cert]), "delegation.no_chain")


def test_delegation_chain_not_presented(w):
    denied(decide(w, [w.approval, w.d2, w.cert]), "delegation.missing")


def test_approval_wider_than_delegation(w):
    approval = w.make_approval(w.deputy, chain=[w.d1, w.d2], purposes=[DPV + "ScientificResearch"])
    denied(decide(w, [approval, w.d1, w.d2, w.cert]), "approval.exceeds_delegation")


def test_unknown_controller(w):
    decider = w.decider(controllers=[])
    denied(decide(w, decider=decider), "approval.controller_unknown")


def test_no_approval(w):
    denied(decide(w, [w.cert]), "approval.missing")


def test_manifest_missing(w):
    request = TransferRequest("GET", f"{API}/datasets/homelessness")
    denied(w.decider().decide(w.present(request), request), "manifest.missing")


# ---- step 4: certifications -------------------------------------------------------------------------------------

def test_certification_expired(w):
    cert = w.certification(w.body, w.recipient, expiry=(w.now - timedelta(days=1)).date().isoformat())
    denied(decide(w, [w.approval, w.d1, w.d2, cert]), "certification.expired")


def test_certification_from_untrusted_body(w):
    cert = w.certification(w.rogue_body, w.recipient)
    denied(decide(w, [w.approval, w.d1, w.d2, cert]), "certification.untrusted_issuer")


def test_certification_missing_for_policy_requirement(w):
    decider = w.decider(required_certifications=[CEAD + "ISO27001"])
    denied(decide(w, decider=decider), "certification.missing")


# ---- step 5: the transfer -----------------------------------------------------------------------------------------

def test_dataset_not_approved(w):
    denied(decide(w, request=w.request(dataset=OTHER_DATASET)), "transfer.dataset_not_approved")


def test_column_not_approved(w):
    denied(decide(w, request=w.request(columns=["ageBand", "name"])), "transfer.column_not_approved")


def test_purpose_not_approved(w):
    denied(decide(w, request=w.request(purpose=DPV + "ScientificResearch")), "transfer.purpose_not_approved")


def test_volume_exceeded(w):
    limited = [w.make_approval(w.controller, maxRowsPerTransfer=1000), w.cert]
    # a pull whose response the gateway checks (middleware, checking proxy): asking for more than the limit is
    # refused before anything is sent, and so is not saying how many rows
    checked = {"response_checked": True}
    assert decide(w, limited, request=w.request(rowCount=12, **checked)).allowed
    denied(decide(w, limited, request=w.request(rowCount=5000, **checked)), "transfer.volume_exceeded")
    missing = decide(w, limited, request=w.request(rowCount=None, **checked))   # not "exceeded": not stated at all
    assert codes(missing) == {"transfer.row_count_missing"}, missing.to_dict()


def test_a_pull_under_a_row_limit_whose_response_is_not_checked_is_denied(w):
    """Its rows could only be the manifest's rowCount, the requester's word: refused, naming the fix."""
    limited = [w.make_approval(w.controller, maxRowsPerTransfer=1000), w.cert]
    decision = decide(w, limited, request=w.request(rowCount=12))
    assert codes(decision) == {"transfer.rows_uncounted"}, decision.to_dict()
    reason = decision.reasons[0]
    assert reason.detail["limit"] == 1000 and "checking proxy" in reason.message and "middleware" in reason.message
    # the same approval, a push: its rows are counted in the body it carries
    table = b"ageBand,localAuthority,outcome,count\n16-24,Fife,housed,12\n"
    assert decide(w, limited, request=w.request("POST", body=table, rowCount=1)).allowed
    # no row limit: nothing to count, the unchecked pull is allowed
    assert decide(w, [w.make_approval(w.controller), w.cert], request=w.request(rowCount=12)).allowed


def test_outside_cadence_window(w):
    start = (w.now - timedelta(days=90)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    approval = w.make_approval(w.deputy, chain=[w.d1, w.d2], cadence=f"R2/{start}/P1M")
    denied(decide(w, [approval, w.d1, w.d2, w.cert]), "transfer.outside_cadence")


def test_protocol_check_on_pushed_table(w):
    approval = w.make_approval(w.controller, privacyProtocol={"kind": "threshold", "minCellCount": 10})
    good = b"ageBand,localAuthority,outcome,count\n16-24,Fife,housed,12\n25-34,Fife,housed,40\n"
    bad = b"ageBand,localAuthority,outcome,count\n16-24,Fife,housed,3\n25-34,Fife,housed,40\n"
    ok = w.request("POST", body=good, rowCount=2)
    assert decide(w, [approval, w.cert], request=ok).allowed
    denied(decide(w, [approval, w.cert], request=w.request("POST", body=bad, rowCount=2)),
           "protocol.cell_below_threshold")
    # a pull whose table is not going to be checked on the way out is denied, not waved through
    denied(decide(w, [approval, w.cert]), "protocol.payload_missing")


def _lawful(party):
    return {"party": party.did, "regime": "UKGDPR",
            "legalBases": ["https://www.legislation.gov.uk/eur/2016/679/article/6/1/e"]}


def _secure_aggregation_approval(w):
    """Two approved recipients, but only the stranger may learn the secure aggregation's output."""
    # three input parties at least, compute parties independent of the output party (issue 14)
    protocol = {"kind": "secureAggregation",
                "inputParties": [w.controller.did, "did:web:dundeecity.example", "did:web:pkc.example"],
                "computeParties": ["did:web:mpc.ed.ac.uk.example", "did:web:mpc.strath.ac.uk.example"],
                "outputParties": [w.stranger.did], "collusionThreshold": 1}
    return w.make_approval(w.controller, recipients=[w.recipient.did, w.stranger.did],
                           lawfulBases=[_lawful(w.controller), _lawful(w.recipient), _lawful(w.stranger)],
                           privacyProtocol=protocol), protocol


def test_holder_outside_output_parties_is_denied_even_without_a_manifest_recipient(w):
    approval, protocol = _secure_aggregation_approval(w)
    request = w.request(protocolRun=[protocol])           # the manifest names no recipient
    decision = decide(w, [approval, w.cert], request=request)
    assert not decision.allowed
    assert "protocol.output_party_not_allowed" in codes(decision)


def test_manifest_naming_another_recipient_than_the_holder_is_denied(w):
    approval, protocol = _secure_aggregation_approval(w)
    # the holder (w.recipient) claims to send to the stranger, who is an allowed output party
    request = w.request(protocolRun=[protocol], recipient=w.stranger.did)
    decision = decide(w, [approval, w.cert], request=request)
    assert not decision.allowed
    assert "transfer.recipient_mismatch" in codes(decision)


def test_output_party_holder_is_allowed(w):
    approval, protocol = _secure_aggregation_approval(w)
    request = w.request(protocolRun=[protocol])
    # the stranger holds no certification: require none for this check
    approval2 = w.make_approval(w.controller, recipients=[w.recipient.did, w.stranger.did],
                                lawfulBases=[_lawful(w.controller), _lawful(w.recipient), _lawful(w.stranger)],
                                privacyProtocol=protocol, recipientRequirements=[])
    vp = w.present(request, [approval2], holder=w.stranger)
    # the output-party rule alone: the run's evidence is required by default (attestation.missing, the run's own
    # tests are in test_computations), so this gateway explicitly accepts the weaker declared protocolRun
    decision = w.decider(run_attestations="when_given").decide(vp, request)
    assert decision.allowed, decision.to_dict()
    assert "attestation.missing" in codes(w.decider().decide(vp, request))


# ---- status and DID failures ------------------------------------------------------------------------------------

def test_stale_status_list(w):
    clock = [1000.0]
    fetcher = Fetcher(allow_private=True, ca_bundle=w.ca_bundle)
    status = StatusLists(fetcher, ttl=10, max_staleness=timedelta(seconds=60), clock=lambda: clock[0])
    decider = Decider(parse_policy(w.policy_data()), status=status)
    assert decide(w, decider=decider).allowed
    w.status.up = False
    try:
        clock[0] += 30      # refresh fails, copy still within max staleness
        assert decide(w, decider=decider).allowed
        clock[0] += 60      # past max staleness: deny rather than trust an old list
        denied(decide(w, decider=decider), "status.stale")
    finally:
        w.status.up = True


def test_unreachable_did_web_host(w):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    host = Party("webhost")
    host.did = f"did:web:127.0.0.1%3A{port}"
    host.kid = host.did + "#key-1"
    approval = w.issue(host, models.DataSharingApproval.model_validate(
        w.approval_subject(discloser=host.did, lawfulBases=[
            {"party": host.did, "regime": "UKGDPR",
             "legalBases": ["https://www.legislation.gov.uk/eur/2016/679/article/6/1/e"]},
            {"party": w.recipient.did, "regime": "UKGDPR",
             "legalBases": ["https://www.legislation.gov.uk/eur/2016/679/article/6/1/e"]}])), status=False)
    decider = w.decider(controllers=[{"dataset": DATASET, "controller": host.did}])
    decision = decide(w, [approval, w.cert], decider=decider)
    denied(decision, "did.unreachable")
    denied(decision, "approval.issuer_unreachable")


# ---- caches, failures, metrics ------------------------------------------------------------------------------------

def test_proof_cache_is_used_and_status_still_checked(w):
    decider = w.decider(caches={"status_lists": {"size": 64, "ttl": 60}})
    assert decide(w, decider=decider).allowed
    assert decider.metrics.cache_hit_rate("proofs") == 0
    assert decide(w, decider=decider).allowed            # the four credentials again: proofs from the cache
    text = decider.metrics.render()
    assert 'cead_cache_requests_total{cache="proofs",result="hit"} 4' in text
    assert 'cead_decisions_total{outcome="allow",reason="none"} 2' in text
    assert 'cead_cache_requests_total{cache="status_lists",result="miss"}' in text
    # the status lists (ttl 60 s) and the issuers' DID documents were fetched once and then served from the caches
    assert decider.metrics.cache_hit_rate("status_lists") > 0
    assert 'cead_cache_requests_total{cache="status_lists",result="hit"}' in text


def test_internal_error_fails_closed(w, monkeypatch):
    decider = w.decider()

    def boom(*a, **k):
        raise RuntimeError("bug")
    monkeypatch.setattr(decider.verifier, "verify_presentation", boom)
    decision = decide(w, decider=decider)
    denied(decision, "verifier.internal_error")


def test_derived_dataset_needs_its_upstream_approvals(w):
    # a source organisation's approval admitted the input to the controller, who now discloses the derived dataset
    source, source_dataset = Party("source"), "https://data.source.example/dataset/input"
    basis = ["https://www.legislation.gov.uk/eur/2016/679/article/6/1/e"]
    # (onward sharing permitted: a Prohibited upstream allows only anonymised outputs, see tests/test_lawful.py)
    upstream = w.make_approval(source, discloser=source.did, recipients=[w.controller.did], datasets=[source_dataset],
                               lawfulBases=[{"party": p.did, "regime": "UKGDPR", "legalBases": basis}
                                            for p in (source, w.controller)], onwardSharing="Permitted")
    derived = w.make_approval(w.controller, upstream=[w.ref(upstream)])
    decider = w.decider(controllers=[*w.policy_data()["controllers"],
                                     {"dataset": source_dataset, "controller": source.did}])
    assert decide(w, [derived, upstream, w.cert], decider=decider).allowed
    denied(decide(w, [derived, w.cert], decider=decider), "provenance.upstream_missing")


# ---- the trust policy ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("data, where", [
    ({"clock_skew": -5}, "clock_skew"),
    ({"caches": {"proofs": {"sise": 10}}}, "caches.proofs.sise"),
    ({"controllers": [{"controller": "did:web:x.example"}]}, "controllers.0"),
    ({"controllers": [{"dataset": "https://d.example/1", "controller": "not-a-did"}]}, "controllers.0.controller"),
    ({"certification_bodies": {CEAD + "ISO27001": ["nobody"]}}, "certification_bodies"),
    ({"surprise": 1}, "surprise"),
    ({"version": 2}, "version"),
])
def test_policy_errors_name_the_key(data, where):
    with pytest.raises(CeadError) as err:
        parse_policy(data)
    assert err.value.code == "policy.invalid"
    assert where in err.value.message


def test_policy_files(tmp_path):
    with pytest.raises(CeadError) as err:
        load_policy(tmp_path / "missing.yaml")
    assert err.value.code == "policy.unreadable"
    bad = tmp_path / "bad.yaml"
    bad.write_text("controllers: [unclosed\n")
    with pytest.raises(CeadError) as err:
        load_policy(bad)
    assert err.value.code == "policy.invalid"
    catalogue = tmp_path / "catalogue.jsonld"
    catalogue.write_text(json.dumps({"@id": "https://fife.example/catalogue", "dct:publisher": "did:web:fife.example",
                                     "dcat:dataset": [{"@id": "https://d.example/a"},
                                                      {"@id": "https://d.example/b",
                                                       "dct:publisher": {"@id": "did:web:other.example"}}]}))
    good = tmp_path / "policy.yaml"
    good.write_text("catalogues: [catalogue.jsonld]\ncontrollers:\n"
                    "  - {prefix: 'https://d.example/', controller: 'did:web:prefix.example'}\n"
                    "  - {dataset: 'https://d.example/exact', controller: 'did:web:exact.example'}\n")
    policy = load_policy(good)
    assert policy.controller_of("https://d.example/exact") == "did:web:exact.example"
    assert policy.controller_of("https://d.example/zzz") == "did:web:prefix.example"
    assert parse_policy({"catalogues": [str(catalogue)]}).controller_of("https://d.example/b") == \
        "did:web:other.example"
    assert parse_policy({"catalogues": [str(catalogue)]}).controller_of("https://d.example/a") == \
        "did:web:fife.example"
    assert parse_policy({}).controller_of("https://d.example/a") is None


def test_a_delegation_over_a_catalogue_covers_its_datasets_when_the_gateway_knows_the_catalogue(w, tmp_path):
    """A gateway started from a policy file must know which datasets lie within a catalogue: from a `vocabulary`
    file (the format of `cead init --vocabulary`) or from the DCAT catalogues it already reads for controllers."""
    catalogue_iri = "https://data.fife.example/catalogue/housing"
    delegation = w.delegation(w.controller, w.iao, datasets=[catalogue_iri])
    approval = w.make_approval(w.iao, chain=[delegation])
    bundle = [approval, delegation, w.cert]

    def decided(**policy):
        request = w.request()
        return w.decider(**policy).decide(w.present(request, bundle), request)

    denied(decided(), "approval.exceeds_delegation")                      # the gateway cannot know the catalogue
    vocabulary = tmp_path / "vocabulary.yaml"
    vocabulary.write_text(f"isPartOf:\n  '{DATASET}': ['{catalogue_iri}']\n")
    assert decided(vocabulary=[str(vocabulary)]).allowed
    dcat = tmp_path / "housing.jsonld"
    dcat.write_text(json.dumps({"@id": catalogue_iri, "dct:publisher": w.controller.did,
                                "dcat:dataset": [{"@id": DATASET}]}))
    assert decided(catalogues=[str(dcat)]).allowed
    broken = tmp_path / "broken.yaml"
    broken.write_text("isPartOf: [1, 2]\n")
    with pytest.raises(CeadError) as err:
        parse_policy({"vocabulary": [str(broken)]})
    assert err.value.code == "policy.invalid" and "broken.yaml" in err.value.message
    with pytest.raises(CeadError) as err:
        parse_policy({"vocabulary": [str(tmp_path / "absent.yaml")]})
    assert err.value.code == "policy.invalid" and "no such file" in err.value.message


def test_parts_of_an_approved_dataset_draw_on_its_one_privacy_budget(w, tmp_path):
    """The data owner's books are kept under the approved dataset: a manifest naming a part of it (DCAT isPartOf)
    does not open an account of its own, so the approval's privacy budget cannot be spent again part by part."""
    from issuer import db
    from issuer.ledger import SqlLedger
    parts = [DATASET + "/2025", DATASET + "/2026"]
    vocabulary = tmp_path / "vocabulary.yaml"
    vocabulary.write_text("isPartOf:\n" + "".join(f"  '{p}': ['{DATASET}']\n" for p in parts))
    start = (w.now - timedelta(days=10)).isoformat().replace("+00:00", "Z")
    dp = {"kind": "differentialPrivacy", "epsilon": 1.0, "mechanism": "laplace", "unitOfPrivacy": "person",
          "maxContributions": 1, "budget": {"period": "P1Y", "epsilon": 1.0, "maxReleases": 1, "start": start}}
    approval = w.make_approval(w.deputy, chain=[w.d1, w.d2], privacyProtocol=[dp])
    ledger = SqlLedger(db.migrate(f"sqlite:///{tmp_path / 'owner.db'}"))
    decider = Decider(parse_policy(w.policy_data(vocabulary=[str(vocabulary)])), ledger=ledger)

    def release(dataset):
        request = TransferRequest("GET", f"{API}/datasets/homelessness", manifest=w.manifest(
            dataset=dataset, protocolRun=[{"kind": "differentialPrivacy", "epsilon": 1.0}]), response_checked=True)
        return decider.decide(w.present(request, [approval, w.d1, w.d2, w.cert]), request)

    first = release(parts[0])
    assert first.allowed, first.to_dict()["reasons"]
    assert first.dataset == parts[0] and first.ledger_dataset == DATASET
    denied(release(parts[1]), "protocol.release_limit")       # the other part: the same, spent, budget
    denied(release(DATASET), "protocol.release_limit")        # and the whole
    booked = ledger.releases(DATASET)
    assert len(booked) == 1 and booked[0]["approval"] == first.approval_id
    assert ledger.releases(parts[0]) == [] and ledger.releases(parts[1]) == []


def test_example_policy_in_docs_loads():
    from pathlib import Path
    policy = load_policy(Path(__file__).parent.parent / "docs" / "examples" / "policy.yaml")
    assert policy.certification_bodies and policy.controllers


# ---- the refused examples in schemas/examples -------------------------------------------------------------------

@pytest.mark.parametrize("name, manifest_file, payload_file, code", [
    ("police", "police-transfer-refused-new-column.json", None, "transfer.column_not_approved"),
    ("homelessness", "homelessness-transfer-refused-small-cell.json", "homelessness-payload-refused-small-cell.csv",
     "protocol.cell_below_threshold"),
    ("fsm", "fsm-transfer-refused-purpose.json", None, "transfer.purpose_not_approved"),
])
def test_example_refusals(examples, name, manifest_file, payload_file, code):
    from transfer_world import EXAMPLES
    scenario = examples[name]
    manifest = json.loads((EXAMPLES / manifest_file).read_text())
    payload = (EXAMPLES / payload_file).read_bytes() if payload_file else None
    request = TransferRequest("POST" if payload else "GET", "https://data.example.org/x", body=payload,
                              manifest=manifest)
    decision = scenario.decider().decide(scenario.present(request), request)
    denied(decision, code)


def test_the_fifth_dp_release_is_refused_by_the_owners_ledger(examples, tmp_path):
    """Social Security Scotland's gateway keeps the books: four releases of the year go, the fifth is refused,
    although Glasgow's manifest says releasesInPeriod 0 and epsilonSpent 0; without a ledger nothing goes."""
    from issuer import db
    from issuer.ledger import SqlLedger
    from transfer_world import EXAMPLES
    scenario = examples["child-poverty"]
    manifest = json.loads((EXAMPLES / "child-poverty-transfer-refused-fifth-release.json").read_text())
    assert manifest["releasesInPeriod"] == 0 and manifest["epsilonSpent"] == 0
    manifest = scenario.attested(manifest)    # the PSI's run attestation: evidence, not the manifest's word
    ledger = SqlLedger(db.migrate(f"sqlite:///{tmp_path / 'sss.db'}"))
    decider = scenario.decider(ledger=ledger)

    def attempt():   # the noised count travels in the response, compared there with the attestation
        request = TransferRequest("GET", "https://data.example.org/x", manifest=manifest, response_checked=True)
        return decider.decide(scenario.present(request), request)

    for _ in range(4):
        assert attempt().allowed
    decision = attempt()
    denied(decision, "protocol.release_limit")
    assert "protocol.budget_exhausted" in codes(decision)
    assert len(ledger.releases(manifest["dataset"])) == 4
    request = TransferRequest("GET", "https://data.example.org/x", manifest=manifest, response_checked=True)
    denied(scenario.decider().decide(scenario.present(request), request), "protocol.ledger_unavailable")


def test_the_examples_declared_protocol_run_alone_is_refused_by_default(examples):
    """Evidence, not declarations: the child-poverty manifest's protocolRun without its run attestation is refused
    under the default trust policy (run_attestations: required), and accepted only by a gateway that explicitly
    opts for the weaker when_given; with the attestation, the output must be the attested bytes."""
    from transfer_world import EXAMPLES
    from verifier.decision.protocol import check_response
    scenario = examples["child-poverty"]
    declared = json.loads((EXAMPLES / "child-poverty-transfer-allowed.json").read_text())
    assert "runAttestation" not in declared and declared["protocolRun"]
    assert parse_policy(scenario.policy).run_attestations == "required"
    request = TransferRequest("GET", "https://data.example.org/x", body=scenario.payload, manifest=declared,
                              push=True)
    denied(scenario.decider().decide(scenario.present(request), request), "attestation.missing")
    weaker = Decider(parse_policy({**scenario.policy, "run_attestations": "when_given"}), fetcher=scenario.fetcher,
                     clock=lambda: scenario.at)
    decision = weaker.decide(scenario.present(request), request)
    assert "attestation.missing" not in codes(decision), decision.to_dict()
    # the attested run: the pulled response must be the attested output, byte for byte
    attested = scenario.attested(declared)
    approval = models.DataSharingApproval.from_credential(scenario.approval)
    assert check_response(approval, attested, scenario.payload) == []
    assert [p.code for p in check_response(approval, attested, scenario.payload.replace(b"}", b" }"))] \
        == ["attestation.output_mismatch"]


def test_policy_audience_accepts_the_origin_with_or_without_default_port(w):
    decider = w.decider(audience=["https://api.fife.example:8443"])
    assert decide(w, decider=decider).allowed
    assert parse_policy({"audience": ["https://gw.example"]}).audience == ["https://gw.example:443"]
    denied(decide(w, decider=w.decider(audience=["https://gw.example"])), "presentation.audience_mismatch")
