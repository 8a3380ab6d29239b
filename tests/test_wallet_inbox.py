"""The node's inbox: deliveries are signed presentations from the issuer, bound to the inbox URL."""
from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from flask import Flask

from helpers_https import https_server
from issuer.signing import add_proof
from schemas.models import credential_digest
from schemas.values import id_of as _id
from verifier.binding import origin, request_binding
from verifier.results import CeadError
from wallet import inbox
from wallet.client import deliver
from wallet.present import build_presentation, select_for_transfer
from wallet.store import jwt_payload

from test_wallet_support import (DS_CLOTHING, DS_MEALS, approval_subject, delegation_subject, identity, make_wallet,
                                 now, vc)


def id_of(credential) -> str:
    return _id(jwt_payload(credential) if isinstance(credential, str) else credential)


@pytest.fixture
def node(tmp_path):
    me = identity()
    wallet = make_wallet(tmp_path, me)
    app = Flask("inbox-test")
    app.register_blueprint(inbox.blueprint(wallet, max_bytes=64 * 1024))
    with https_server(app) as (base, ca):
        yield dict(me=me, wallet=wallet, url=f"{base}/inbox", ca=ca)


def test_delivery_is_verified_and_stored(node):
    issuer = identity()
    approval = vc(issuer, "DataSharingApprovalCredential", approval_subject(issuer.did, node["me"].did))
    answer = deliver(issuer.did, issuer.key, issuer.kid, [approval], node["url"], verify=node["ca"])
    assert len(answer["stored"]) == 1 and answer["stored"][0]["duplicate"] is False
    record = node["wallet"].get(answer["stored"][0]["id"])
    assert record.raw == approval and record.source == f"inbox:{issuer.did}"
    again = deliver(issuer.did, issuer.key, issuer.kid, [approval], node["url"], verify=node["ca"], format="ldp")
    assert again["stored"][0]["duplicate"] is True


def _post(node, body: bytes, ctype="application/vp+jwt"):
    return requests.post(node["url"], data=body, headers={"Content-Type": ctype}, verify=node["ca"], timeout=10)


def test_presentation_bound_elsewhere_is_refused(node):
    issuer = identity()
    cred = vc(issuer, "VerifiableCredential", {"id": node["me"].did})
    other = node["url"].replace("/inbox", "/elsewhere")
    vp = build_presentation(issuer.did, issuer.key, issuer.kid, [cred], audience=origin(node["url"]),
                            nonce=request_binding("POST", other))
    response = _post(node, vp.encode())
    assert response.status_code == 401
    assert "presentation.nonce_mismatch" in [p["code"] for p in response.json()["problems"]]
    assert node["wallet"].search() == []


def test_only_the_issuer_may_deliver(node):
    issuer, intruder = identity(), identity()
    cred = vc(issuer, "VerifiableCredential", {"id": node["me"].did})
    with pytest.raises(CeadError) as err:
        deliver(intruder.did, intruder.key, intruder.kid, [cred], node["url"], verify=node["ca"])
    assert err.value.code == "inbox.refused" and err.value.detail["status"] == 403
    assert [p["code"] for p in err.value.detail["reasons"]] == ["inbox.sender_not_issuer"]
    assert node["wallet"].search() == []


def test_credentials_for_someone_else_are_refused(node):
    issuer, stranger = identity(), identity()
    cred = vc(issuer, "VerifiableCredential", {"id": stranger.did})
    with pytest.raises(CeadError) as err:
        deliver(issuer.did, issuer.key, issuer.kid, [cred], node["url"], verify=node["ca"])
    assert [p["code"] for p in err.value.detail["reasons"]] == ["inbox.not_for_us"]


def test_invalid_credential_in_delivery_is_refused_with_reason(node):
    issuer = identity()
    expired = vc(issuer, "VerifiableCredential", {"id": node["me"].did}, valid_from=now() - timedelta(days=10),
                 valid_for=timedelta(days=1))
    with pytest.raises(CeadError) as err:
        deliver(issuer.did, issuer.key, issuer.kid, [expired], node["url"], verify=node["ca"])
    reasons = err.value.detail["reasons"]
    assert err.value.detail["status"] == 401
    assert reasons[0]["code"] == "presentation.credential_invalid"
    assert "credential.expired" in reasons[0]["detail"]["codes"]


@pytest.mark.parametrize("body, status", [(b"hello", 400), (b"{not json", 400), (b"[]", 400), (b"", 400),
                                          (b"x" * (65 * 1024), 413)])
def test_malformed_deliveries(node, body, status):
    response = _post(node, body, "application/json")
    assert response.status_code == status
    assert response.json()["problems"][0]["code"]


def test_empty_delivery_is_refused(node):
    issuer = identity()
    vp = build_presentation(issuer.did, issuer.key, issuer.kid, [], audience=origin(node["url"]),
                            nonce=request_binding("POST", node["url"]))
    response = _post(node, vp.encode())
    assert response.status_code == 400 and response.json()["problems"][0]["code"] == "inbox.empty"


# ---- supporting credentials: what a delivered approval pins by digest ----------------------------------------
def _chain(me):
    """A controller's delegation to an approver, and the approver's approval for ``me`` pinning it."""
    controller, approver = identity(), identity()
    delegation = vc(controller, "DelegatedAuthorityCredential", delegation_subject(approver.did, controller.did))
    approval = vc(approver, "DataSharingApprovalCredential", approval_subject(controller.did, me.did, chain=[delegation]))
    return controller, approver, delegation, approval


def test_approval_may_carry_the_delegations_it_pins(node):
    controller, approver, delegation, approval = _chain(node["me"])
    answer = deliver(approver.did, approver.key, approver.kid, [approval, delegation], node["url"], verify=node["ca"])
    stored = {node["wallet"].get(s["id"]).raw for s in answer["stored"]}
    assert stored == {approval, delegation}
    assert [r.credential for r in select_for_transfer(node["wallet"], DS_MEALS)] == [approval, delegation]


def test_upstream_approvals_and_their_chains_may_be_carried(node):
    """A derived approval pins its upstream approval (for the deriving organisation), which pins its delegation."""
    deriver = identity()
    controller, approver, delegation, upstream = _chain(deriver)
    derived = vc(deriver, "DataSharingApprovalCredential",
                 {**approval_subject(deriver.did, node["me"].did, datasets=[DS_CLOTHING]),
                  "upstream": [{"id": id_of(upstream), "digest": credential_digest(upstream)}]})
    answer = deliver(deriver.did, deriver.key, deriver.kid, [derived, upstream, delegation], node["url"],
                     verify=node["ca"])
    assert len(answer["stored"]) == 3


def test_unpinned_or_altered_supporting_credentials_are_refused(node):
    controller, approver, delegation, approval = _chain(node["me"])
    unrelated = vc(controller, "DelegatedAuthorityCredential", delegation_subject(identity().did, controller.did))
    with pytest.raises(CeadError) as err:
        deliver(approver.did, approver.key, approver.kid, [approval, delegation, unrelated], node["url"],
                verify=node["ca"])
    assert err.value.detail["status"] == 403
    [reason] = err.value.detail["reasons"]
    assert reason["code"] == "inbox.sender_not_issuer" and reason["detail"]["id"] == id_of(unrelated)
    assert node["wallet"].search() == []            # nothing of a refused delivery is stored

    # the same delegation (same id) signed again as Data Integrity: not the credential the approval pins
    document = jwt_payload(delegation)
    document["@context"] = [*document["@context"], "https://w3id.org/cead/v1"]
    resigned = add_proof(document, controller.key, controller.kid)
    with pytest.raises(CeadError) as err:
        deliver(approver.did, approver.key, approver.kid, [approval, resigned], node["url"], verify=node["ca"])
    [reason] = err.value.detail["reasons"]
    assert reason["code"] == "inbox.digest_mismatch"
    assert reason["detail"] == {"id": id_of(delegation), "pinned": credential_digest(delegation),
                                "delivered": credential_digest(resigned)}

    # pins count only from an approval for this node: not from one for someone else, nor from a delegation
    stranger = identity()
    other_approval = vc(approver, "DataSharingApprovalCredential",
                        approval_subject(controller.did, stranger.did, chain=[delegation]))
    with pytest.raises(CeadError) as err:
        deliver(approver.did, approver.key, approver.kid, [other_approval, delegation], node["url"], verify=node["ca"])
    assert sorted(r["code"] for r in err.value.detail["reasons"]) == ["inbox.not_for_us", "inbox.sender_not_issuer"]
    child = vc(approver, "DelegatedAuthorityCredential",
               delegation_subject(node["me"].did, controller.did, parent=delegation))
    with pytest.raises(CeadError) as err:
        deliver(approver.did, approver.key, approver.kid, [child, delegation], node["url"], verify=node["ca"])
    assert [r["code"] for r in err.value.detail["reasons"]] == ["inbox.sender_not_issuer"]
    assert node["wallet"].search() == []


def test_the_inbox_takes_deliveries_larger_than_the_issuing_api_limit_and_refuses_past_its_own(tmp_path):
    """A delivery (approval + chain + upstream) may exceed the issuing API's 256 KiB; past 1 MiB it is refused with
    the inbox's own problem shape, never the issuing API's error."""
    from issuer.app import MAX_BODY
    from issuer.node import Node
    from wallet.app import create_node_app
    from wallet.inbox import MAX_BYTES
    node, _ = Node.init(tmp_path / "n", "Fife Council", b"pass", domain="fife.example")
    client = create_node_app(node).test_client()
    between = client.post("/inbox", data=b"x" * (MAX_BODY + 1), content_type="application/vp+jwt")
    assert between.status_code != 413                          # read and judged by the inbox itself
    too_big = client.post("/inbox", data=b"x" * (MAX_BYTES + 1), content_type="application/vp+jwt")
    assert too_big.status_code == 413
    assert [p["code"] for p in too_big.get_json()["problems"]] == ["inbox.too_large"]


def test_delivering_to_something_that_is_not_an_inbox_is_a_clear_error():
    impostor = Flask("not-an-inbox")

    @impostor.post("/inbox")
    def accept_anything():
        return "<html>thanks</html>", 200

    issuer = identity()
    with https_server(impostor) as (base, ca):
        with pytest.raises(CeadError) as info:
            deliver(issuer.did, issuer.key, issuer.kid, [vc(issuer, "DataSharingApprovalCredential",
                    approval_subject(issuer.did, issuer.did))], f"{base}/inbox", verify=ca)
    assert info.value.code == "inbox.unreachable" and "not as a Cead inbox" in info.value.message


# ---- review: what an approval pins must come with it; a delivery is stored whole or not at all ------------------
def test_an_approval_delivered_without_what_it_pins_is_refused(node):
    """An approval delivered without the delegation chain it pins was stored, though it could never be presented.
    Now each missing pin is named (422 inbox.pin_missing) and nothing is stored; a pin already held is enough."""
    controller, approver, delegation, approval = _chain(node["me"])
    with pytest.raises(CeadError) as err:
        deliver(approver.did, approver.key, approver.kid, [approval], node["url"], verify=node["ca"])
    assert err.value.detail["status"] == 422
    [reason] = err.value.detail["reasons"]
    assert reason["code"] == "inbox.pin_missing" and reason["detail"]["id"] == id_of(approval)
    assert reason["detail"]["reference"] == {"id": id_of(delegation), "digest": credential_digest(delegation)}
    assert node["wallet"].search() == []
    # a derived approval whose upstream approval comes without the upstream's own chain: named too
    deriver = identity()
    _, _, upstream_delegation, upstream = _chain(deriver)
    derived = vc(deriver, "DataSharingApprovalCredential",
                 {**approval_subject(deriver.did, node["me"].did, datasets=[DS_CLOTHING]),
                  "upstream": [{"id": id_of(upstream), "digest": credential_digest(upstream)}]})
    with pytest.raises(CeadError) as err:
        deliver(deriver.did, deriver.key, deriver.kid, [derived, upstream], node["url"], verify=node["ca"])
    assert [r["detail"]["reference"]["id"] for r in err.value.detail["reasons"]] == [id_of(upstream_delegation)]
    assert node["wallet"].search() == []
    # the delegation held already (delivered before, or imported): the approval alone is taken
    assert node["wallet"].import_credential(delegation).ok
    answer = deliver(approver.did, approver.key, approver.kid, [approval], node["url"], verify=node["ca"])
    assert len(answer["stored"]) == 1
    assert [r.credential for r in select_for_transfer(node["wallet"], DS_MEALS)] == [approval, delegation]


def test_a_delivery_is_stored_whole_or_not_at_all(node, monkeypatch):
    """The approval was stored even when the delegation delivered with it was refused on import (here: revoked
    between the presentation's check and the import's), leaving an approval whose chain is missing. Now the whole
    delivery is refused (422) and nothing is stored."""
    from verifier.results import Problem, VerificationResult
    controller, approver, delegation, approval = _chain(node["me"])
    verifier = node["wallet"].verifier
    real = verifier.verify_credential

    def revoked_meanwhile(credential, *args, **kwargs):
        if credential == delegation:
            return VerificationResult.failed(Problem("status.revoked", "Revoked a moment ago."))
        return real(credential, *args, **kwargs)

    monkeypatch.setattr(verifier, "verify_credential", revoked_meanwhile)
    with pytest.raises(CeadError) as err:
        deliver(approver.did, approver.key, approver.kid, [approval, delegation], node["url"], verify=node["ca"])
    assert err.value.detail["status"] == 422
    assert [r["code"] for r in err.value.detail["reasons"]] == ["status.revoked"]
    assert node["wallet"].search() == []


def test_importing_several_credentials_is_all_or_nothing(tmp_path):
    me, issuer = identity(), identity()
    wallet = make_wallet(tmp_path, me)
    good = vc(issuer, "DataSharingApprovalCredential", approval_subject(issuer.did, me.did))
    expired = vc(issuer, "VerifiableCredential", {"id": me.did}, valid_from=now() - timedelta(days=10),
                 valid_for=timedelta(days=1))
    refused = wallet.import_credentials([good, expired])
    assert [r.ok for r in refused] == [False, False] and refused[0].problems == [] and refused[1].problems
    assert wallet.search() == []
    stored = wallet.import_credentials([good, good])
    assert [(r.ok, r.duplicate) for r in stored] == [(True, False), (True, True)]
    assert stored[0].record.id == stored[1].record.id and len(wallet.search()) == 1


@pytest.mark.parametrize("path, code, limit", [("/inbox", "inbox.too_large", "wallet.inbox:MAX_BYTES"),
                                               ("/requests", "sharing.too_large", "wallet.sharing:MAX_BYTES")])
def test_an_oversize_chunked_body_is_too_large_not_truncated(tmp_path, path, code, limit):
    """Sent in chunks (no Content-Length, a server that terminates the stream), an oversize body was cut at the
    limit by Werkzeug and judged as if that were all of it (400 malformed). Now one byte past the limit is read:
    413 with the documented code; a chunked body within the limit is read whole."""
    import importlib
    import io
    from issuer.node import Node
    from wallet.app import create_node_app
    module, name = limit.split(":")
    max_bytes = getattr(importlib.import_module(module), name)
    node, _ = Node.init(tmp_path / "n", "Chunked", b"pass phrase", domain="chunked.example")
    client = create_node_app(node).test_client()

    def chunked(size: int):
        return client.post(path, input_stream=io.BytesIO(b"x" * size),
                           headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
                           environ_overrides={"wsgi.input_terminated": True})

    too_big = chunked(max_bytes + 1)
    assert too_big.status_code == 413
    assert [p["code"] for p in too_big.get_json()["problems"]] == [code]
    within = chunked(max_bytes)
    assert within.status_code == 400 and within.get_json()["problems"][0]["code"] != code
