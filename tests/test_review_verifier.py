"""Review of the verifier: defects found and fixed, each shown by a test that failed before the fix."""
from __future__ import annotations

import pytest

from transfer_world import codes, world


@pytest.fixture(scope="module")
def w():
    with world() as w:
        yield w


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


def _decide(w, credentials, request):
    vp = w.present(request, credentials)
    return w.decider().decide(vp, request)


def test_holder_outside_output_parties_is_denied_even_without_a_manifest_recipient(w):
    approval, protocol = _secure_aggregation_approval(w)
    request = w.request(protocolRun=[protocol])           # the manifest names no recipient
    decision = _decide(w, [approval, w.cert], request)
    assert not decision.allowed
    assert "protocol.output_party_not_allowed" in codes(decision)


def test_manifest_naming_another_recipient_than_the_holder_is_denied(w):
    approval, protocol = _secure_aggregation_approval(w)
    # the holder (w.recipient) claims to send to the stranger, who is an allowed output party
    request = w.request(protocolRun=[protocol], recipient=w.stranger.did)
    decision = _decide(w, [approval, w.cert], request)
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


# ---- middleware: a chunked body (no Content-Length) must be bound and checked like any other --------------------

def test_chunked_body_is_not_waved_through_as_no_body(w):
    import requests
    from flask import Flask, request as flask_request

    from helpers_https import https_server
    from transfer_world import DATASET
    from verifier.binding import MANIFEST_HEADER, PRESENTATION_HEADER, encode_manifest, encode_presentation
    from verifier.decision import TransferRequest
    from verifier.middleware import CeadMiddleware

    received: list[bytes] = []
    app = Flask("data-api")

    @app.post("/datasets/homelessness")
    def push():
        received.append(flask_request.get_data())
        return {"received": len(received[-1])}

    app.wsgi_app = CeadMiddleware(app.wsgi_app, w.decider(), dataset_for=lambda environ: DATASET)
    with https_server(app) as (base_url, ca_bundle):
        url = base_url + "/datasets/homelessness"
        manifest = w.manifest()
        bound_to_no_body = TransferRequest("POST", url, body=None, manifest=manifest)
        headers = {MANIFEST_HEADER: encode_manifest(manifest),
                   PRESENTATION_HEADER: encode_presentation(w.present(bound_to_no_body))}
        payload = b"ageBand,localAuthority,outcome,count\n16-24,Fife,housed,3\n"
        response = requests.post(url, data=iter([payload]), headers=headers, verify=ca_bundle, timeout=10)
        assert response.status_code == 403, response.text
        assert "presentation.binding_mismatch" in response.headers["Cead-Decision-Reasons"]
        assert received == []
        # the same chunked body, with a presentation bound to it, is decided on that body and reaches the app
        bound = TransferRequest("POST", url, body=payload, manifest=manifest)
        headers[PRESENTATION_HEADER] = encode_presentation(w.present(bound))
        response = requests.post(url, data=iter([payload[:10], payload[10:]]), headers=headers, verify=ca_bundle,
                                 timeout=10)
        assert response.status_code == 200, response.text
        assert received == [payload]


# ---- VC-API proofless presentations: every credential is checked, or the presentation is refused -----------------

def test_proofless_presentation_with_more_than_64_credentials_is_not_verified(w):
    decider = w.decider()
    good = {"type": ["VerifiablePresentation"], "verifiableCredential": [w.cert]}
    assert decider.verify_proofless(good).verified
    # 64 good credentials and a forged 65th: before the fix only the first 64 were looked at
    crowded = {"type": ["VerifiablePresentation"], "verifiableCredential": [w.cert] * 64 + ["forged.jwt.value"]}
    result = decider.verify_proofless(crowded)
    assert not result.verified
    assert "presentation.malformed" in {p.code for p in result.problems}


# ---- status entries: an absurd index is a bad entry, never an exception (a 500 on /credentials/verify) ----------

def _self_signed_with_index(index: str) -> str:
    from issuer.keys import PrivateKey
    from issuer.signing import sign_jwt
    from verifier.did import did_key

    key = PrivateKey.generate()
    did = did_key(key.public)
    doc = {"@context": ["https://www.w3.org/ns/credentials/v2"], "id": "urn:uuid:1", "type": ["VerifiableCredential"],
           "issuer": did, "credentialSubject": {"id": did},
           "credentialStatus": {"type": "BitstringStatusListEntry", "statusPurpose": "revocation",
                                "statusListIndex": index, "statusListCredential": "https://status.example/1"}}
    return sign_jwt(doc, key, f"{did}#{key.public.to_multikey()}")


def test_status_index_too_long_for_int_is_an_invalid_entry():
    from verifier.status import StatusLists

    lists = StatusLists(fetcher=None)
    doc = {"issuer": "did:key:z6Mk", "credentialStatus": {
        "type": "BitstringStatusListEntry", "statusPurpose": "revocation", "statusListIndex": "1" * 5000,
        "statusListCredential": "https://status.example/1"}}
    assert [p.code for p in lists.check(doc)] == ["status.entry_invalid"]


def test_vc_api_credential_with_absurd_status_index_is_a_400_not_a_500(w):
    from verifier.app import create_app

    client = create_app(w.decider()).test_client()
    token = _self_signed_with_index("9" * 5000)
    response = client.post("/credentials/verify", json={"verifiableCredential": {
        "@context": "https://www.w3.org/ns/credentials/v2", "type": "EnvelopedVerifiableCredential",
        "id": f"data:application/vc+jwt,{token}"}})
    assert response.status_code == 400, response.data[:300]
    assert "status.entry_invalid" in {e["code"] for e in response.get_json()["errors"]}


# ---- status lists: a cache TTL longer than the maximum staleness must not keep an old list in use ---------------

def test_status_list_not_relied_on_past_max_staleness_even_within_ttl():
    from datetime import timedelta

    from test_status import Clock, FakeFetcher, FakeVerifier, URL, credential, publish
    from verifier.status import StatusLists, make_entry

    fetcher, clock = FakeFetcher(), Clock()
    checker = StatusLists(fetcher, FakeVerifier(), ttl=3600, max_staleness=timedelta(seconds=60), clock=clock)
    publish(fetcher)
    entry = credential(make_entry(URL, 5, "revocation"))
    assert checker.check(entry) == []
    publish(fetcher, set_indexes=[5])          # revoked at the source
    clock.t += 30
    assert checker.check(entry) == []          # within max_staleness: the cached copy may be used
    clock.t += 100                             # older than max_staleness (though within ttl): refetch
    assert [p.code for p in checker.check(entry)] == ["status.revoked"]


# ---- threshold: the recipient's manifest cannot steer the check away from the count column ---------------------

def test_count_column_is_checked_even_when_the_manifest_names_other_count_columns():
    from schemas.models import Threshold
    from verifier.protocols import check_transfer

    table = b"localAuthority,count,total\nFife,3,140\nGlasgow,40,140\n"
    protocol = [Threshold(min_cell_count=10)]
    honest = {"columns": ["localAuthority", "count", "total"], "countColumns": ["count"]}
    steered = {"columns": ["localAuthority", "count", "total"], "countColumns": ["total"]}
    assert "protocol.cell_below_threshold" in {p.code for p in check_transfer(protocol, honest, table)}
    assert "protocol.cell_below_threshold" in {p.code for p in check_transfer(protocol, steered, table)}
