"""The pipeline client (requests and httpx auth, fetch) against a Flask data API behind the verifier middleware."""
from __future__ import annotations

import json
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
        if request.args.get("month") == "garbage":     # allowed by the gateway, refused by the API itself
            return jsonify({"problems": [{"code": "provider.time_invalid", "message": "since 'garbage' is not an "
                                          "ISO 8601 date."}]}), 400
        return jsonify({"month": request.args.get("month"), "rows": [1, 2, 3], "received": len(request.data)})

    manifests: list[str] = []

    @app.get("/clothing")
    def clothing():
        manifests.append(request.headers.get("Cead-Transfer-Manifest"))
        return jsonify({"rows": []})

    datasets = {"/meals": DS_MEALS, "/clothing": DS_CLOTHING}
    app.wsgi_app = CeadMiddleware(app.wsgi_app, decider, dataset_for=lambda env: datasets.get(env["PATH_INFO"]))
    with https_server(app) as (base, ca):
        yield dict(wallet=wallet, base=base, ca=ca, seen=seen, lists=lists, decider=decider, council=council,
                   manifests=manifests)


# a pushed table of the approval's data items (the gateway counts a push's columns from its body)
PUSHED = b"pupil_id,entitlement\n" + b"".join(b"P%04d,yes\n" % n for n in range(100))


def _elsewhere(seen: list[str]) -> Flask:
    """A server a redirect points at: it records any presentation it is handed (there must be none)."""
    app = Flask("elsewhere")

    @app.route("/grab", methods=["GET", "POST"])
    def grab():
        seen.append(request.headers.get("Cead-Presentation", ""))
        return "thanks"

    return app


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
        posted = client.post(f"{world['base']}/meals", content=PUSHED)
        assert posted.status_code == 200 and posted.json()["received"] == len(PUSHED)


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


def test_an_api_error_after_the_gateway_allowed_says_what_the_api_said(world):
    """`cead fetch .../releases?since=garbage` said only "answered HTTP 400.": the provider's
    provider.time_invalid and its message were in detail.body, a JSON string inside the JSON error."""
    with pytest.raises(CeadError) as err:
        fetch(world["wallet"], f"{world['base']}/meals?month=garbage", dataset=DS_MEALS, verify=world["ca"])
    assert err.value.code == "transfer.failed" and err.value.detail["status"] == 400
    assert err.value.message.endswith("answered HTTP 400: provider.time_invalid: since 'garbage' is not an ISO 8601 "
                                      "date."), err.value.message


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
    elsewhere = _elsewhere(seen_elsewhere)

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


# ---- review: httpx following redirects; discovery limited to the dataset ---------------------------------------
@pytest.mark.parametrize("method, status", [("GET", 302), ("POST", 307), ("POST", 303)])
def test_httpx_following_redirects_never_hands_the_presentation_on(world, method, status):
    """httpx (follow_redirects=True) follows a redirect without asking the auth again and copies the
    Cead-Presentation header into the redirected request: the presentation (and the credentials in it) went to
    wherever the redirect pointed. The presented request now goes out once only: transfer.redirected, as for
    requests, and the target never sees the presentation (real HTTPS servers, httpx's own transport)."""
    seen_elsewhere: list[str] = []
    elsewhere = _elsewhere(seen_elsewhere)

    with https_server(elsewhere, tls=False) as (other, _):
        mover = Flask("mover")

        @mover.route("/moved", methods=["GET", "POST"])
        def moved():
            return "", status, {"Location": f"{other}/grab"}

        with https_server(mover) as (base, ca):
            auth = CeadHttpxAuth(world["wallet"], dataset=DS_MEALS, purpose=P_MEALS)
            with httpx.Client(verify=ssl.create_default_context(cafile=ca), auth=auth, follow_redirects=True) as client:
                with pytest.raises(CeadError) as info:
                    client.request(method, f"{base}/moved", content=b"x" * 10 if method == "POST" else None)
            # without following: the 3xx itself is refused, as CeadAuth does
            with httpx.Client(verify=ssl.create_default_context(cafile=ca), auth=auth) as client:
                with pytest.raises(CeadError) as unfollowed:
                    client.request(method, f"{base}/moved")
    assert info.value.code == "transfer.redirected" and unfollowed.value.code == "transfer.redirected"
    assert seen_elsewhere == []


def test_httpx_redirects_are_refused_through_a_mock_transport_too(world):
    got: list[tuple[str, bool]] = []

    def handler(req: httpx.Request) -> httpx.Response:
        got.append((req.url.host, "cead-presentation" in req.headers))
        if req.url.host == "gw.example":
            return httpx.Response(302, headers={"location": "https://evil.example/steal"})
        return httpx.Response(200, json={})

    client = httpx.Client(transport=httpx.MockTransport(handler), follow_redirects=True)
    with pytest.raises(CeadError) as info:
        client.get("https://gw.example/meals", auth=CeadHttpxAuth(world["wallet"], dataset=DS_MEALS, purpose=P_MEALS))
    assert info.value.code == "transfer.redirected"
    assert got == [("gw.example", True)]


def _presented_datasets(header: str) -> list[list[str]]:
    from verifier.binding import decode_presentation
    from wallet.store import jwt_payload
    vp = decode_presentation(header)
    claims = jwt_payload(vp) if isinstance(vp, str) else vp
    out = []
    for item in claims["verifiableCredential"]:
        document = jwt_payload(item["id"].split(",", 1)[1]) if isinstance(item.get("id"), str) \
            and item["id"].startswith("data:") else item
        out.append(document["credentialSubject"].get("datasets"))
    return out


@pytest.mark.parametrize("named", [True, False])
def test_discovery_presents_only_what_is_held_for_the_dataset(tmp_path, named):
    """The gateway's 401 labels the definition with the dataset, but the definition itself chose: one asking for
    the approval of another dataset got it presented. Now the definition only chooses among what the wallet holds
    for that dataset (approvals covering it, what they pin, the holder's certifications): pex.unsatisfied, and
    nothing is presented. A definition asking for the dataset's own approval still gets it, and only it."""
    holder, council, other = identity(), identity(), identity()
    w = make_wallet(tmp_path, holder)
    meals = vc(council, "DataSharingApprovalCredential", approval_subject(council.did, holder.did, datasets=[DS_MEALS]))
    clothing = vc(other, "DataSharingApprovalCredential",
                  approval_subject(other.did, holder.did, datasets=[DS_CLOTHING]))
    assert w.import_credential(meals).ok and w.import_credential(clothing).ok

    def asking_for(dataset: str) -> dict:
        return {"id": "d", "input_descriptors": [{"id": "approval", "constraints": {"fields": [
            {"path": ["$.credentialSubject.datasets"], "filter": {"type": "array", "contains": {"const": dataset}}}]}}]}

    def gateway(definition: dict, seen: list):
        def handler(req: httpx.Request) -> httpx.Response:
            if "cead-presentation" not in req.headers:
                return httpx.Response(401, json={"presentation_definition": definition, "dataset": DS_MEALS})
            seen.append(req.headers["cead-presentation"])
            return httpx.Response(200, json={"ok": True})
        return httpx.Client(transport=httpx.MockTransport(handler))

    seen: list[str] = []
    auth = CeadHttpxAuth(w, dataset=DS_MEALS if named else None, discover=True)
    with pytest.raises(CeadError) as info:
        gateway(asking_for(DS_CLOTHING), seen).get("https://gw.example/meals", auth=auth)
    assert info.value.code == "pex.unsatisfied" and seen == []
    with pytest.raises(CeadError) as info:
        requests_session = requests.Session()
        requests_session.mount("https://", _MockAdapter(asking_for(DS_CLOTHING), seen))
        requests_session.get("https://gw.example/meals", auth=CeadAuth(w, dataset=DS_MEALS if named else None,
                                                                        discover=True))
    assert info.value.code == "pex.unsatisfied" and seen == []

    response = gateway(asking_for(DS_MEALS), seen).get("https://gw.example/meals", auth=CeadHttpxAuth(
        w, dataset=DS_MEALS if named else None, discover=True))
    assert response.status_code == 200 and _presented_datasets(seen[-1]) == [[DS_MEALS]]


class _MockAdapter(requests.adapters.HTTPAdapter):
    """A requests transport answering like a gateway: 401 with the definition, then 200."""

    def __init__(self, definition: dict, seen: list):
        super().__init__()
        self.definition, self.seen = definition, seen

    def send(self, request, **kwargs):
        import json as _json
        response = requests.Response()
        response.request, response.url = request, request.url
        if "Cead-Presentation" not in request.headers:
            response.status_code = 401
            response._content = _json.dumps({"presentation_definition": self.definition,
                                             "dataset": DS_MEALS}).encode()
        else:
            self.seen.append(request.headers["Cead-Presentation"])
            response.status_code, response._content = 200, b"{}"
        response.connection = self
        return response


def test_httpx_async_client_presents_and_refuses_redirects(world):
    """The same guard with httpx.AsyncClient (its trace hook must be a coroutine function there)."""
    import asyncio
    seen_elsewhere: list[str] = []
    elsewhere = _elsewhere(seen_elsewhere)

    async def run(base: str, ca: str):
        auth = CeadHttpxAuth(world["wallet"], dataset=DS_MEALS, purpose=P_MEALS)
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=ca), auth=auth,
                                     follow_redirects=True) as client:
            posted = await client.post(f"{world['base']}/meals", content=PUSHED[:41])
            with pytest.raises(CeadError) as info:
                await client.get(f"{base}/moved")
        return posted, info.value

    with https_server(elsewhere, tls=False) as (other, _):
        mover = Flask("mover")
        mover.get("/moved")(lambda: ("", 302, {"Location": f"{other}/grab"}))
        with https_server(mover) as (base, ca):
            bundle = world["ca"] + ".both"
            with open(bundle, "w") as out:
                out.write(open(world["ca"]).read() + open(ca).read())
            posted, error = asyncio.run(run(base, bundle))
    assert posted.status_code == 200 and posted.json()["received"] == 41
    assert error.code == "transfer.redirected" and seen_elsewhere == []



# ---- review: the same httpx Request sent again (a retry) presents afresh ----------------------------------------
def test_httpx_the_same_request_sent_twice_presents_afresh_each_time(world):
    """``req = client.build_request(...); client.send(req, auth=auth)`` twice (a common retry) raised
    transfer.redirected: the second sending chained the first one's guard, which had already let its request go.
    Each sending now presents afresh and guards only itself; the caller's own trace hook still sees both."""
    import asyncio
    events: list[str] = []

    def own_trace(name: str, info: dict) -> None:
        events.append(name)

    async def own_async_trace(name: str, info: dict) -> None:
        events.append(name)

    auth = CeadHttpxAuth(world["wallet"], dataset=DS_MEALS, purpose=P_MEALS)
    with httpx.Client(verify=ssl.create_default_context(cafile=world["ca"])) as client:
        request = client.build_request("POST", f"{world['base']}/meals", content=PUSHED[:31],
                                       extensions={"trace": own_trace})
        answers = [client.send(request, auth=auth) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200] and answers[1].json()["received"] == 31
    assert len(world["seen"]) == 2 == len(set(world["seen"]))
    assert sum(e.endswith(".send_request_headers.started") for e in events) == 2

    async def run() -> list[int]:
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=world["ca"])) as client:
            request = client.build_request("GET", f"{world['base']}/meals", extensions={"trace": own_async_trace})
            return [(await client.send(request, auth=auth)).status_code for _ in range(2)]

    assert asyncio.run(run()) == [200, 200] and len(set(world["seen"])) == 4
    assert sum(e.endswith(".send_request_headers.started") for e in events) == 4


def test_httpx_a_request_sent_again_with_discovery_asks_without_the_old_presentation(world):
    """A Request sent once with a presentation, then through an auth that first asks the gateway what to present:
    the question goes without the earlier presentation (and its guard), and the answer is presented to."""
    presented: list[bool] = []     # per request that went out: did it carry a presentation?

    def own_trace(name: str, info: dict) -> None:
        if name.endswith(".send_request_headers.started"):
            presented.append(any(k.lower() == b"cead-presentation" for k, _ in info["request"].headers))

    with httpx.Client(verify=ssl.create_default_context(cafile=world["ca"])) as client:
        request = client.build_request("GET", f"{world['base']}/meals", extensions={"trace": own_trace})
        assert client.send(request, auth=CeadHttpxAuth(world["wallet"], dataset=DS_MEALS)).status_code == 200
        answer = client.send(request, auth=CeadHttpxAuth(world["wallet"], discover=True))
    assert answer.status_code == 200 and [r.status_code for r in answer.history] == [401]
    assert presented == [True, False, True] and len(world["seen"]) == 2 == len(set(world["seen"]))


def test_httpx_a_redirect_is_still_refused_when_the_same_request_is_sent_again(world):
    import asyncio
    seen_elsewhere: list[str] = []
    elsewhere = _elsewhere(seen_elsewhere)

    async def run_async(base: str, ca: str, auth) -> list[str]:
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=ca), follow_redirects=True) as client:
            moved = client.build_request("GET", f"{base}/moved")
            codes = []
            for _ in range(2):
                with pytest.raises(CeadError) as info:
                    await client.send(moved, auth=auth)
                codes.append(info.value.code)
            return codes

    with https_server(elsewhere, tls=False) as (other, _):
        mover = Flask("mover")
        mover.get("/moved")(lambda: ("", 302, {"Location": f"{other}/grab"}))
        with https_server(mover) as (base, ca):
            auth = CeadHttpxAuth(world["wallet"], dataset=DS_MEALS, purpose=P_MEALS)
            with httpx.Client(verify=ssl.create_default_context(cafile=ca), follow_redirects=True) as client:
                moved = client.build_request("GET", f"{base}/moved")
                for _ in range(2):
                    with pytest.raises(CeadError) as info:
                        client.send(moved, auth=auth)
                    assert info.value.code == "transfer.redirected"
            assert asyncio.run(run_async(base, ca, auth)) == ["transfer.redirected"] * 2
    assert seen_elsewhere == []


# ---- a pull under an approval that limits rows states rowCount -------------------------------------------------
@pytest.fixture
def row_limited(world, monkeypatch):
    """The recipient also holds an approval for DS_CLOTHING limited to 1000 rows per transfer (as the police example
    approval is to 200,000); `cead fetch` opens this wallet."""
    import wallet.cli
    subject = {**approval_subject(world["council"].did, world["wallet"].holder, datasets=[DS_CLOTHING],
                                  requirements=[CYBER_ESSENTIALS]), "maxRowsPerTransfer": 1000}
    assert world["wallet"].import_credential(vc(world["council"], "DataSharingApprovalCredential", subject)).ok
    monkeypatch.setattr(wallet.cli, "_wallet", lambda home: world["wallet"])
    return world


def cead_fetch(world, *args):
    from click.testing import CliRunner
    from wallet.cli import fetch as fetch_command
    return CliRunner().invoke(fetch_command, [f"{world['base']}/clothing", "--dataset", DS_CLOTHING,
                                              "--ca-bundle", world["ca"], *args])


def test_cead_fetch_states_the_row_count_an_approval_with_max_rows_requires(row_limited, tmp_path):
    """`cead fetch` could not state a manifest, so a pull under an approval with maxRowsPerTransfer was always
    denied (transfer.row_count_missing); --row-count and --manifest now state it."""
    w = row_limited
    denied = cead_fetch(w)
    assert denied.exit_code == 1 and "transfer.row_count_missing" in denied.output
    assert "--row-count" in json.loads(denied.output)["error"]["message"]          # what to do about it
    allowed = cead_fetch(w, "--row-count", "1000")
    assert allowed.exit_code == 0, allowed.output
    assert json.loads(allowed.output) == {"rows": []}
    too_many = cead_fetch(w, "--row-count", "1001")
    assert too_many.exit_code == 1 and "transfer.volume_exceeded" in too_many.output

    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"rowCount": 10, "columns": ["pupil_id"]}))
    fewer = cead_fetch(w, "--manifest", str(manifest))
    assert fewer.exit_code == 0, fewer.output
    from verifier.binding import decode_manifest
    assert decode_manifest(w["manifests"][-1]) == {"dataset": DS_CLOTHING, "recipient": w["wallet"].holder,
                                                   "columns": ["pupil_id"], "rowCount": 10}
    manifest.write_text(json.dumps({"columns": ["pupil_id", "home_address"]}))
    wider = cead_fetch(w, "--manifest", str(manifest), "--row-count", "5")
    assert wider.exit_code == 1 and "transfer.column_not_approved" in wider.output


def test_the_pipeline_client_lays_a_row_count_over_the_manifest_it_makes(row_limited):
    w = row_limited
    url = f"{w['base']}/clothing"
    with pytest.raises(TransferDenied) as denied:
        requests.get(url, auth=CeadAuth(w["wallet"], dataset=DS_CLOTHING), verify=w["ca"])
    assert [r.code for r in denied.value.reasons] == ["transfer.row_count_missing"]
    response = requests.get(url, auth=CeadAuth(w["wallet"], dataset=DS_CLOTHING, row_count=500), verify=w["ca"])
    assert response.status_code == 200
    from verifier.binding import decode_manifest
    sent = decode_manifest(response.request.headers["Cead-Transfer-Manifest"])
    assert sent == {"dataset": DS_CLOTHING, "recipient": w["wallet"].holder, "columns": ["pupil_id", "entitlement"],
                    "rowCount": 500}
    auth = CeadHttpxAuth(w["wallet"], dataset=DS_CLOTHING, manifest_fields={"rowCount": 2, "columns": ["pupil_id"]})
    with httpx.Client(verify=ssl.create_default_context(cafile=w["ca"]), auth=auth) as client:
        answer = client.get(url)
    assert answer.status_code == 200
    assert decode_manifest(answer.request.headers["Cead-Transfer-Manifest"])["columns"] == ["pupil_id"]
    assert fetch(w["wallet"], url, dataset=DS_CLOTHING, row_count=1000, verify=w["ca"]).status_code == 200
    for bad in (dict(row_count=-1), dict(row_count=True), dict(manifest_fields=[1]),
                dict(manifest_fields={"rowCount": "many"}), dict(row_count=3, manifest_fields={"rowCount": 4})):
        with pytest.raises(CeadError) as err:
            CeadAuth(w["wallet"], dataset=DS_CLOTHING, **bad)
        assert err.value.code == "manifest.invalid", bad


def test_cead_fetch_discover_checks_the_manifests_dataset_against_the_gateways(row_limited, tmp_path):
    """Review: `cead fetch --dataset D --manifest FILE` refused a manifest naming another dataset, but with
    --discover the manifest's dataset was never compared with the one the gateway asks for. It is now, as a dataset
    named with --dataset is: pex.definition_mismatch, nothing presented."""
    from click.testing import CliRunner
    from wallet.cli import fetch as fetch_command
    w = row_limited
    manifest = tmp_path / "manifest.json"

    def discover(dataset: str):
        manifest.write_text(json.dumps({"dataset": dataset}))
        return CliRunner().invoke(fetch_command, [f"{w['base']}/meals", "--discover", "--manifest", str(manifest),
                                                  "--ca-bundle", w["ca"]])

    other = discover(DS_CLOTHING)
    assert other.exit_code == 2 and json.loads(other.output)["error"]["code"] == "pex.definition_mismatch"
    assert "the transfer manifest names" in other.output and w["seen"] == []
    with pytest.raises(CeadError) as info:         # the Python client the same
        httpx.Client(verify=ssl.create_default_context(cafile=w["ca"])).get(
            f"{w['base']}/meals", auth=CeadHttpxAuth(w["wallet"], discover=True, manifest_fields={"dataset": DS_CLOTHING}))
    assert info.value.code == "pex.definition_mismatch" and w["seen"] == []
    same = discover(DS_MEALS)
    assert same.exit_code == 0, same.output
    assert json.loads(same.output)["rows"] == [1, 2, 3] and len(w["seen"]) == 1
