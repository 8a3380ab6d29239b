"""The pipeline client (requests and httpx auth, fetch) against a Flask data API behind the verifier middleware."""
from __future__ import annotations

import ssl

import httpx
import pytest
import requests
from flask import Flask, jsonify, request

from helpers_https import https_server
from verifier.decision import Decider
from verifier.middleware import CeadMiddleware
from verifier.policy import parse_policy
from verifier.results import CeadError
from wallet.client import CeadAuth, CeadHttpxAuth, TransferDenied, check_response, fetch
from wallet.store import make_verifier

from test_wallet_support import (CYBER_ESSENTIALS, DS_CLOTHING, DS_MEALS, P_MEALS, StaticFetcher, StatusListFixture,
                                 approval_subject, certification_subject, identity, make_wallet, vc)


@pytest.fixture
def world(tmp_path):
    """A council (controller of DS_MEALS) that approved the recipient; a certification body; a data API."""
    council, recipient, cert_body = identity(), identity(), identity()
    fetcher = StaticFetcher()
    lists = StatusListFixture(council, fetcher)
    wallet = make_wallet(tmp_path, recipient, fetcher)
    approval = vc(council, "DataSharingApprovalCredential",
                  approval_subject(council.did, recipient.did, requirements=[CYBER_ESSENTIALS]),
                  status=lists.entry(5))
    assert wallet.import_credential(approval).ok
    assert wallet.import_credential(vc(cert_body, "OrganisationCertificationCredential",
                                       certification_subject(recipient.did, CYBER_ESSENTIALS))).ok
    policy = parse_policy({"controllers": [{"prefix": "https://data.example.gov.scot/", "controller": council.did}],
                           "certification_bodies": {CYBER_ESSENTIALS: [cert_body.did]}})
    decider = Decider(policy, make_verifier(fetcher))
    seen: list[str] = []
    app = Flask("data-api")

    @app.route("/meals", methods=["GET", "POST"])
    def meals():
        seen.append(request.headers["Cead-Presentation"])
        return jsonify({"month": request.args.get("month"), "rows": [1, 2, 3], "received": len(request.data)})

    @app.get("/clothing")
    def clothing():
        return jsonify({"rows": []})

    datasets = {"/meals": DS_MEALS, "/clothing": DS_CLOTHING}
    app.wsgi_app = CeadMiddleware(app.wsgi_app, decider, dataset_for=lambda env: datasets.get(env["PATH_INFO"]))
    with https_server(app) as (base, ca):
        yield dict(wallet=wallet, base=base, ca=ca, seen=seen, lists=lists, decider=decider)


def test_requests_auth_pulls_monthly_updates_with_fresh_presentations(world):
    session = requests.Session()
    session.auth = CeadAuth(world["wallet"], dataset=DS_MEALS, purpose=P_MEALS)
    for month in ("2025-01", "2025-02", "2025-03"):
        response = session.get(f"{world['base']}/meals", params={"month": month}, verify=world["ca"])
        assert response.status_code == 200, response.text
        assert response.json()["month"] == month
    assert len(set(world["seen"])) == 3


def test_httpx_auth_get_and_post(world):
    auth = CeadHttpxAuth(world["wallet"], dataset=DS_MEALS, purpose=P_MEALS)
    with httpx.Client(verify=ssl.create_default_context(cafile=world["ca"]), auth=auth) as client:
        assert client.get(f"{world['base']}/meals?month=2025-04").json()["month"] == "2025-04"
        posted = client.post(f"{world['base']}/meals", content=b"x" * 1000)
        assert posted.status_code == 200 and posted.json()["received"] == 1000


def test_replayed_presentation_is_denied(world):
    url = f"{world['base']}/meals?month=2025-05"
    first = requests.get(url, auth=CeadAuth(world["wallet"], dataset=DS_MEALS, purpose=P_MEALS), verify=world["ca"])
    assert first.status_code == 200
    replay = requests.get(url, headers={"Cead-Presentation": world["seen"][-1],
                                        "Cead-Transfer-Manifest": first.request.headers["Cead-Transfer-Manifest"]},
                          verify=world["ca"])
    assert replay.status_code == 403


def test_denial_raises_with_the_verifiers_reasons(world):
    # the endpoint serves another dataset than the one the approval (and the manifest) covers
    with pytest.raises(TransferDenied) as err:
        requests.get(f"{world['base']}/clothing", auth=CeadAuth(world["wallet"], dataset=DS_MEALS, purpose=P_MEALS),
                     verify=world["ca"])
    assert err.value.status == 403 and err.value.code == "transfer.denied"
    assert err.value.reasons and all(p.code for p in err.value.reasons)
    assert err.value.reasons[0].code in err.value.message


def test_fetch_helper_and_revocation(world, tmp_path):
    url = f"{world['base']}/meals?month=2025-06"
    response = fetch(world["wallet"], url, dataset=DS_MEALS, purpose=P_MEALS, verify=world["ca"])
    assert response.json()["rows"] == [1, 2, 3]
    world["lists"].revoke(5)
    world["decider"].status.clear()
    with pytest.raises(TransferDenied) as err:
        fetch(world["wallet"], url, dataset=DS_MEALS, purpose=P_MEALS, verify=world["ca"])
    assert "status.revoked" in [p.code for p in err.value.reasons]


def test_fetch_reports_unreachable_and_unselectable(world):
    with pytest.raises(CeadError) as err:
        fetch(world["wallet"], "https://127.0.0.1:1/nothing", dataset=DS_MEALS, verify=world["ca"], timeout=2)
    assert err.value.code == "transfer.failed"
    with pytest.raises(CeadError) as err:
        fetch(world["wallet"], f"{world['base']}/clothing", dataset=DS_CLOTHING, verify=world["ca"])
    assert err.value.code == "wallet.no_approval"


@pytest.mark.parametrize("body, codes", [
    (b'{"allowed": false, "reasons": [{"code": "status.revoked", "message": "revoked"}]}', ["status.revoked"]),
    (b'{"problems": [{"code": "presentation.expired", "message": "old"}]}', ["presentation.expired"]),
    (b'{"error": {"code": "auth.missing", "message": "no"}}', ["auth.missing"]),
    (b"plain text refusal", ["transfer.denied"]),
    (b"", []),
    (b"[1, 2]", []),
])
def test_denial_bodies_are_parsed(body, codes):
    with pytest.raises(TransferDenied) as err:
        check_response(403, body, "https://x.example/")
    assert [p.code for p in err.value.reasons] == codes
    check_response(200, body, "https://x.example/")  # not a denial: nothing raised


def test_streamed_body_is_refused(world):
    auth = CeadAuth(world["wallet"], dataset=DS_MEALS)
    with pytest.raises(CeadError) as err:
        requests.post(f"{world['base']}/meals", data=iter([b"a", b"b"]), auth=auth, verify=world["ca"])
    assert err.value.code == "request.body_unsupported"


def test_a_redirect_is_not_followed_with_the_presentation_attached(world):
    """requests would carry the Cead-Presentation header (and the credentials in it) to wherever a redirect
    points; the auth refuses to follow instead, and the target never sees the presentation."""
    seen_elsewhere: list[str] = []
    elsewhere = Flask("elsewhere")

    @elsewhere.get("/grab")
    def grab():
        seen_elsewhere.append(request.headers.get("Cead-Presentation", ""))
        return "thanks"

    with https_server(elsewhere, tls=False) as (other, _):
        mover = Flask("mover")

        @mover.get("/moved")
        def moved():
            return "", 302, {"Location": f"{other}/grab"}

        with https_server(mover) as (base, ca):
            with pytest.raises(CeadError) as info:
                requests.get(f"{base}/moved", auth=CeadAuth(world["wallet"], dataset=DS_MEALS, purpose=P_MEALS),
                             verify=ca)
    assert info.value.code == "transfer.redirected"
    assert seen_elsewhere == []
