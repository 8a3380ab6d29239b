"""The node's inbox: deliveries are signed presentations from the issuer, bound to the inbox URL."""
from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from flask import Flask

from helpers_https import https_server
from verifier.binding import origin, request_binding
from verifier.results import CeadError
from wallet import inbox
from wallet.client import deliver
from wallet.present import build_presentation

from test_wallet_support import approval_subject, identity, make_wallet, now, vc


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
