"""The verifier HTTP service over HTTPS on 127.0.0.1: VC-API, nginx auth_request, Envoy ext_authz, metrics."""
from __future__ import annotations

import pytest
import requests

from verifier.binding import MANIFEST_HEADER, PRESENTATION_HEADER, encode_manifest, encode_presentation
from verifier.decision import TransferRequest
from verifier.app import create_app
from helpers_https import https_server
from transfer_world import API, OTHER_DATASET, world


@pytest.fixture(scope="module")
def env():
    with world() as w:
        with https_server(create_app(w.decider())) as (base_url, ca_bundle):
            yield w, base_url, ca_bundle


def enveloped(token: str) -> dict:
    """VC-API takes a credential as a JSON object: a vc+jwt travels as an EnvelopedVerifiableCredential."""
    return {"@context": "https://www.w3.org/ns/credentials/v2", "type": "EnvelopedVerifiableCredential",
            "id": f"data:application/vc+jwt,{token}"}


def post(env, path, json_body=None, **kw):
    _, base_url, ca_bundle = env
    return requests.post(base_url + path, json=json_body, verify=ca_bundle, timeout=10, **kw)


# ---- VC-API ------------------------------------------------------------------------------------------------------

def test_verify_credential_jwt_and_enveloped(env):
    w = env[0]
    response = post(env, "/credentials/verify", {"verifiableCredential": enveloped(w.cert)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["verified"] is True and body["errors"] == [] and {"proof", "status"} <= set(body["checks"])
    assert post(env, "/credentials/verify", {"verifiableCredential": enveloped(w.cert), "options": {}}).status_code \
        == 200
    # a bare JWT string is not a VC-API credential (a JSON object): refused as input, with the fix
    bare = post(env, "/credentials/verify", {"verifiableCredential": w.cert})
    assert bare.status_code == 400 and "EnvelopedVerifiableCredential" in bare.json()["errors"][0]["message"]


def test_verify_credential_data_integrity(env):
    w = env[0]
    credential = w.make_approval(w.controller, fmt="ldp")
    response = post(env, "/credentials/verify", {"verifiableCredential": credential})
    assert response.status_code == 200, response.text


def test_verify_credential_failures_are_400_with_errors(env):
    w = env[0]
    head, payload, sig = w.cert.split(".")
    tampered = f"{head}.{payload}.{sig[:-4]}{'AAAA' if sig[-4:] != 'AAAA' else 'AAAQ'}"
    response = post(env, "/credentials/verify", {"verifiableCredential": enveloped(tampered)})
    assert response.status_code == 400
    body = response.json()
    assert body["verified"] is False and body["errors"] and body["problemDetails"][0]["title"]
    revoked = w.certification(w.body, w.recipient)
    w.status.set(w.doc(revoked), "revocation")
    response = post(env, "/credentials/verify", {"verifiableCredential": revoked if isinstance(revoked, dict)
                                                  else enveloped(revoked)})
    assert response.status_code == 400
    assert "status.revoked" in {e["code"] for e in response.json()["errors"]}


@pytest.mark.parametrize("body", [None, [], {"nothing": 1}, {"verifiableCredential": 5},
                                  {"verifiableCredential": {}, "options": "x"}])
def test_verify_credential_bad_requests(env, body):
    _, base_url, ca_bundle = env
    response = requests.post(base_url + "/credentials/verify", data=b"{not json" if body is None else None,
                             json=body, verify=ca_bundle, timeout=10)
    assert response.status_code == 400
    assert response.json()["verified"] is False and response.json()["errors"]


def test_verify_presentation_with_challenge_and_domain(env):
    w = env[0]
    vp = w.present(w.request(), audience="https://relying-party.example:443", nonce="challenge-123")
    ok = post(env, "/presentations/verify", {"verifiablePresentation": vp,
                                             "options": {"challenge": "challenge-123",
                                                         "domain": "https://relying-party.example:443"}})
    assert ok.status_code == 200, ok.text
    assert {"challenge", "domain"} <= set(ok.json()["checks"])
    wrong = post(env, "/presentations/verify", {"verifiablePresentation": vp, "options": {"challenge": "other"}})
    # VC-API: the verification ran, so 200, and the result says it failed
    assert wrong.status_code == 200 and wrong.json()["verified"] is False
    assert isinstance(vp, str)   # VC-JOSE: the same presentation enveloped (VC 2.0)
    enveloped = {"@context": "https://www.w3.org/ns/credentials/v2", "type": "EnvelopedVerifiablePresentation",
                 "id": f"data:application/vp+jwt,{vp}"}
    answer = post(env, "/presentations/verify", {"verifiablePresentation": enveloped, "options": {
        "challenge": "challenge-123", "domain": "https://relying-party.example:443"}})
    assert answer.status_code == 200, answer.text
    mislabelled = dict(enveloped, id=f"data:application/vc+jwt,{vp}")
    answer = post(env, "/presentations/verify", {"verifiablePresentation": mislabelled})
    assert answer.status_code == 400 and answer.json()["errors"][0]["code"] == "presentation.malformed"
    assert "presentation.nonce_mismatch" in {e["code"] for e in wrong.json()["errors"]}


def test_verify_proofless_presentation(env):
    w = env[0]
    response = post(env, "/presentations/verify", {"presentation": {
        "@context": ["https://www.w3.org/ns/credentials/v2"], "type": ["VerifiablePresentation"],
        "verifiableCredential": [w.make_approval(w.controller, fmt="ldp")]}})
    assert response.status_code == 200, response.text


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


def test_vc_api_credential_with_absurd_status_index_is_a_400_not_a_500(w):
    """An absurd status index is a bad entry, never an exception (a 500 on /credentials/verify)."""
    client = create_app(w.decider()).test_client()
    token = _self_signed_with_index("9" * 5000)
    response = client.post("/credentials/verify", json={"verifiableCredential": {
        "@context": "https://www.w3.org/ns/credentials/v2", "type": "EnvelopedVerifiableCredential",
        "id": f"data:application/vc+jwt,{token}"}})
    assert response.status_code == 400, response.data[:300]
    assert "status.entry_invalid" in {e["code"] for e in response.get_json()["errors"]}


# ---- nginx auth_request ------------------------------------------------------------------------------------------

def authz_headers(w, request: TransferRequest, vp=None) -> dict:
    proto, rest = request.url.split("://", 1)
    host, _, path = rest.partition("/")
    headers = {"X-Original-Method": request.method, "X-Original-URI": "/" + path, "X-Original-Host": host,
               "X-Original-Proto": proto, MANIFEST_HEADER: encode_manifest(request.manifest)}
    if vp is not False:
        headers[PRESENTATION_HEADER] = encode_presentation(vp or w.present(request))
    return headers


def test_nginx_authz_allow_deny_and_missing(env):
    w, base_url, ca_bundle = env
    request = w.request()
    allow = requests.get(base_url + "/authz", headers=authz_headers(w, request), verify=ca_bundle, timeout=10)
    assert allow.status_code == 200, allow.text
    assert allow.headers["Cead-Decision"] == "allow"
    missing = requests.get(base_url + "/authz", headers=authz_headers(w, request, vp=False), verify=ca_bundle,
                           timeout=10)
    assert missing.status_code == 401
    assert missing.headers["Cead-Decision-Reasons"] == "presentation.missing"
    other = w.request(dataset=OTHER_DATASET)
    deny = requests.get(base_url + "/authz", headers=authz_headers(w, other), verify=ca_bundle, timeout=10)
    assert deny.status_code == 403
    assert "transfer.dataset_not_approved" in deny.headers["Cead-Decision-Reasons"]


def test_nginx_authz_never_decides_a_body_it_cannot_see(env):
    """nginx forwards the real body upstream after auth_request: a presentation bound to "no body" must not let a
    push through. POST/PUT/PATCH, or any request nginx says has a body, are denied with request.body_unbound."""
    w, base_url, ca_bundle = env
    for method, extra in (("POST", {}), ("PUT", {}), ("PATCH", {}),
                          ("GET", {"X-Original-Content-Length": "42"}),
                          ("GET", {"X-Original-Transfer-Encoding": "chunked"}),
                          # present but empty says nothing either way (nginx drops empty headers; a value with a
                          # byte outside ASCII reaches the app empty): never read as "no body"
                          ("GET", {"X-Original-Content-Length": ""}), ("GET", {"X-Original-Transfer-Encoding": ""}),
                          ("GET", {"X-Original-Content-Length": "4\u00e92".encode().decode("latin-1")}),
                          ("GET", {"X-Original-Transfer-Encoding": "ch\u00fcnked".encode().decode("latin-1")})):
        request = TransferRequest(method, w.request().url, body=None, manifest=w.request().manifest)
        headers = {**authz_headers(w, request), **extra}
        answer = requests.get(base_url + "/authz", headers=headers, verify=ca_bundle, timeout=10)
        assert answer.status_code == 403, (method, extra, answer.text)
        assert answer.headers["Cead-Decision-Reasons"] == "request.body_unbound", (method, extra)
    for quiet in ({}, {"X-Original-Content-Length": "0"}):   # no body: the headers absent, or a length of 0
        request = w.request()
        headers = {**authz_headers(w, request), **quiet}
        assert requests.get(base_url + "/authz", headers=headers, verify=ca_bundle, timeout=10).status_code == 200


def test_nginx_authz_without_original_uri(env):
    w, base_url, ca_bundle = env
    response = requests.get(base_url + "/authz", verify=ca_bundle, timeout=10)
    assert response.status_code == 403 and response.headers["Cead-Decision-Reasons"] == "request.invalid"


def test_nginx_authz_query_string_is_part_of_the_binding(env):
    w, base_url, ca_bundle = env
    request = w.request(url=f"{API}/datasets/homelessness?month=2026-10")
    headers = authz_headers(w, request)
    assert requests.get(base_url + "/authz", headers=headers, verify=ca_bundle, timeout=10).status_code == 200
    headers2 = authz_headers(w, request)
    headers2["X-Original-URI"] = "/datasets/homelessness?month=2026-11"
    replayed = requests.get(base_url + "/authz", headers=headers2, verify=ca_bundle, timeout=10)
    assert replayed.status_code == 403
    assert "presentation.binding_mismatch" in replayed.headers["Cead-Decision-Reasons"]


# ---- Envoy ext_authz (HTTP mode) -------------------------------------------------------------------------------

def test_authz_answered_before_flask_as_flask_answers_it(env):
    """/authz is answered from the WSGI environ in front of Flask (verifier.app.AuthzEndpoint): over HTTPS, each
    kind of answer (allow, deny, no presentation, no original URI, an unbound body, HEAD, OPTIONS) has the status,
    decision headers, content type and JSON body that Flask's own /authz route gives for the same request, and the
    methods /authz does not serve still get Flask's 405 with Allow."""
    from werkzeug.test import Client

    from verifier.app import AuthzEndpoint
    w, base_url, ca_bundle = env
    app = create_app(w.decider())
    flask_route = app.wsgi_app.app.app   # CheckingProxy -> AuthzEndpoint -> Flask's own dispatch
    assert isinstance(app.wsgi_app.app, AuthzEndpoint)
    flask = Client(flask_route)

    def cases():
        yield "GET", lambda: authz_headers(w, w.request())
        yield "GET", lambda: authz_headers(w, w.request(dataset=OTHER_DATASET))
        yield "GET", lambda: authz_headers(w, w.request(), vp=False)
        yield "GET", lambda: {k: v for k, v in authz_headers(w, w.request()).items() if k != "X-Original-URI"}
        yield "GET", lambda: {**authz_headers(w, w.request()), "X-Original-Method": "POST"}
        yield "HEAD", lambda: authz_headers(w, w.request())
        yield "OPTIONS", lambda: authz_headers(w, w.request())
        yield "POST", lambda: authz_headers(w, w.request())

    def comparable(status, headers, body):
        decision = {k: v for k, v in body.items() if k != "decidedAt"} if body else body
        return (status, headers.get("Content-Type"), headers.get("Cead-Decision"),
                headers.get("Cead-Decision-Reasons"), decision)

    seen = set()
    for method, make in cases():
        served = requests.request(method, base_url + "/authz", headers=make(), verify=ca_bundle, timeout=10)
        direct = flask.open("/authz", method=method, headers=make(), base_url=base_url)
        ours = comparable(served.status_code, served.headers, served.json() if served.content else None)
        theirs = comparable(direct.status_code, direct.headers, direct.get_json() if direct.data else None)
        assert ours == theirs, (method, ours, theirs)
        if method == "HEAD":
            assert served.content == b"" and int(served.headers["Content-Length"]) > 0
        seen.add((served.status_code, served.headers.get("Cead-Decision-Reasons", "")))
    assert {s for s, _ in seen} == {200, 401, 403}   # the cases cover allow, no presentation and denials
    assert any("request.body_unbound" in r for _, r in seen) and any("request.invalid" in r for _, r in seen)
    for method in ("TRACE", "CONNECT"):   # not served at /authz: Flask's 405, in JSON, with Allow
        answer = requests.request(method, base_url + "/authz", verify=ca_bundle, timeout=10)
        assert answer.status_code == 405, (method, answer.text)
        assert answer.json()["problems"][0]["code"] == "request.method_not_allowed"
        assert "GET" in answer.headers["Allow"]


def test_authz_unexpected_error_is_a_json_500(env):
    """A bug while answering /authz, outside the decision's own guard, is a 500 with a JSON problem (as the
    service's error handler answers), never a stack trace and never an allow."""
    from werkzeug.test import Client

    w = env[0]
    decider = w.decider()
    app = create_app(decider)
    decider.metrics = None   # a broken part: a denial cannot be counted
    headers = {k: v for k, v in authz_headers(w, w.request()).items() if k != "X-Original-URI"}
    answer = Client(app).get("/authz", headers=headers, base_url="https://localhost:8443")
    assert answer.status_code == 500, answer.data
    assert "Cead-Decision" not in answer.headers
    assert answer.get_json() == {"problems": [{"code": "verifier.internal_error",
                                               "message": "Unexpected error in the verifier; see its log."}]}


def test_envoy_ext_authz(env):
    w, base_url, ca_bundle = env
    host = API.split("://")[1]
    body = b"ageBand,localAuthority,outcome,count\n16-24,Fife,housed,12\n"
    request = w.request("POST", body=body, rowCount=1)
    headers = {"Host": host, "X-Forwarded-Proto": "https", PRESENTATION_HEADER: w.present(request),
               MANIFEST_HEADER: encode_manifest(request.manifest)}
    allow = requests.post(base_url + "/envoy/datasets/homelessness", data=body, headers=headers,
                          verify=ca_bundle, timeout=10)
    assert allow.status_code == 200, allow.text
    assert allow.headers["Cead-Decision"] == "allow"
    again = requests.post(base_url + "/envoy/datasets/homelessness", data=body, headers=headers,
                          verify=ca_bundle, timeout=10)
    assert again.status_code == 403 and "presentation.replayed" in again.headers["Cead-Decision-Reasons"]


def test_envoy_never_takes_a_pulls_decoy_body_for_the_table(env):
    """Behind Envoy the response cannot be checked: a GET under a threshold approval is denied for want of the
    table (protocol.payload_missing), even when the client sends a compliant table along as a decoy."""
    w, base_url, ca_bundle = env
    host = API.split("://")[1]
    approval = w.make_approval(w.controller, privacyProtocol={"kind": "threshold", "minCellCount": 10})
    body = b"ageBand,localAuthority,outcome,count\n16-24,Fife,housed,12\n"
    request = w.request("GET", body=body, rowCount=1)
    headers = {"Host": host, "X-Forwarded-Proto": "https", PRESENTATION_HEADER: w.present(request, [approval, w.cert]),
               MANIFEST_HEADER: encode_manifest(request.manifest)}
    answer = requests.get(base_url + "/envoy/datasets/homelessness", data=body, headers=headers, verify=ca_bundle,
                          timeout=10)
    assert answer.status_code == 403 and "protocol.payload_missing" in answer.headers["Cead-Decision-Reasons"]


def test_a_pull_under_a_row_limit_is_denied_where_its_rows_cannot_be_counted(env):
    """/authz and /envoy never see a pull's response, so under maxRowsPerTransfer its rows could only be the
    manifest's rowCount (the requester's word): denied transfer.rows_uncounted, the fix named. A push under the same
    approval is counted in its body and allowed; a pull under an approval without a row limit is allowed."""
    w, base_url, ca_bundle = env
    host = API.split("://")[1]
    limited = w.make_approval(w.controller, maxRowsPerTransfer=5)
    pull = w.request(rowCount=2)
    authz = requests.get(base_url + "/authz", headers=authz_headers(w, pull, w.present(pull, [limited, w.cert])),
                         verify=ca_bundle, timeout=10)
    assert authz.status_code == 403 and authz.headers["Cead-Decision-Reasons"] == "transfer.rows_uncounted"
    reason = authz.json()["reasons"][0]
    assert reason["detail"] == {"limit": 5} and "checking proxy" in reason["message"]
    pull = w.request(rowCount=2)
    envoy = requests.get(base_url + "/envoy/datasets/homelessness", verify=ca_bundle, timeout=10, headers={
        "Host": host, "X-Forwarded-Proto": "https", PRESENTATION_HEADER: w.present(pull, [limited, w.cert]),
        MANIFEST_HEADER: encode_manifest(pull.manifest)})
    assert envoy.status_code == 403 and envoy.headers["Cead-Decision-Reasons"] == "transfer.rows_uncounted"
    body = b"ageBand,localAuthority,outcome,count\n16-24,Fife,housed,12\n"
    push = w.request("POST", body=body, rowCount=1)
    pushed = requests.post(base_url + "/envoy/datasets/homelessness", data=body, verify=ca_bundle, timeout=10,
                           headers={"Host": host, "X-Forwarded-Proto": "https",
                                    PRESENTATION_HEADER: w.present(push, [limited, w.cert]),
                                    MANIFEST_HEADER: encode_manifest(push.manifest)})
    assert pushed.status_code == 200, pushed.text
    pull = w.request(rowCount=2)
    unlimited = [w.make_approval(w.controller), w.cert]
    allowed = requests.get(base_url + "/authz", headers=authz_headers(w, pull, w.present(pull, unlimited)),
                           verify=ca_bundle, timeout=10)
    assert allowed.status_code == 200, allowed.text


# ---- metrics and health ------------------------------------------------------------------------------------------

def test_metrics_and_healthz(env):
    _, base_url, ca_bundle = env
    assert requests.get(base_url + "/healthz", verify=ca_bundle, timeout=10).json()["status"] == "ok"
    requests.get(base_url + "/authz", verify=ca_bundle, timeout=10)  # at least one denial
    metrics = requests.get(base_url + "/metrics", verify=ca_bundle, timeout=10)
    assert metrics.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = metrics.text
    assert "# TYPE cead_decisions_total counter" in text
    assert 'cead_decisions_total{outcome="deny",reason="request.invalid"}' in text
    assert 'cead_decision_seconds_bucket{le="+Inf"}' in text
    assert "cead_cache_requests_total" in text


# ---- `cead verifier serve` ---------------------------------------------------------------------------------------

def test_cead_verifier_serve_over_tls(tmp_path):
    import subprocess
    import sys
    import time

    import trustme

    from cead.processes import free_port

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    (tmp_path / "policy.yaml").write_text("clock_skew: 60\n")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cead.cli", "verifier", "serve", "--policy",
                             str(tmp_path / "policy.yaml"), "--port", str(port), "--tls-cert",
                             str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60   # generous: a loaded CI machine starts gunicorn's workers slowly
        while True:
            try:
                response = requests.get(f"https://localhost:{port}/healthz", verify=str(tmp_path / "ca.pem"),
                                        timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        assert response.status_code == 200 and response.json()["status"] == "ok"
    finally:
        proc.terminate()
        proc.wait(timeout=40)   # gunicorn's graceful stop (30 s at most) with room for a loaded machine


# ---- every worked example in schemas/examples, through Envoy ext_authz ------------------------------------------

@pytest.mark.parametrize("name", ["police", "homelessness", "fsm", "child-poverty"])
def test_example_scenarios_allowed_through_the_service(examples, name, tmp_path):
    """Through Envoy: the verifier service reaches the data owner's node ledger over its authenticated local
    endpoint (HTTPS on 127.0.0.1), which charges the child-poverty DP release."""
    from issuer import tokens
    from issuer.app import create_app as node_app
    from issuer.ledger import SqlLedger
    from tests.issuer_fixtures import ready_node
    from verifier.ledger import HttpLedger
    scenario = examples[name]
    node = ready_node(tmp_path / "owner")
    with https_server(node_app(node)) as (node_url, node_ca), \
            https_server(create_app(scenario.decider(ledger=HttpLedger(
                node_url, tokens.create_token(node.engine, "gateway", "ledger"), verify=node_ca)))) \
            as (base_url, ca_bundle):
        method = "POST" if scenario.payload else "GET"
        request = TransferRequest(method, "https://data.example.org/data", body=scenario.payload,
                                  manifest=scenario.manifest)
        response = requests.request(method, base_url + "/envoy/data", data=scenario.payload, verify=ca_bundle,
                                    timeout=10, headers={"Host": "data.example.org", "X-Forwarded-Proto": "https",
                                                         PRESENTATION_HEADER: scenario.present(request),
                                                         MANIFEST_HEADER: encode_manifest(scenario.manifest)})
    assert response.status_code == 200, response.text
    assert response.headers["Cead-Decision"] == "allow"
    assert len(SqlLedger(node.engine).releases(scenario.manifest["dataset"])) == (name == "child-poverty")
