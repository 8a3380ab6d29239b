"""Bad input at every HTTP door, thrown mechanically (hypothesis): the node app (issuing API, status lists, DID
document, inbox, the DPO's and the wallet's pages, verification links), the verifier service and the WSGI
middleware.

The rule checked: bad input gets a clear error with a stable code (JSON from the APIs, a friendly HTML page from
the pages), never a stack trace or a 5xx; the verifier never allows; a refused request stores nothing.
"""
from __future__ import annotations

import base64
import json
import re

import pytest
import sqlalchemy as sa
from flask import Flask
from hypothesis import HealthCheck, given, settings, strategies as st

from verifier.binding import MANIFEST_HEADER, PRESENTATION_HEADER
from verifier.decision import Decider
from verifier.middleware import CeadMiddleware
from verifier.policy import parse_policy
from verifier.results import CeadError
from verifier.app import create_app as create_verifier_app
from wallet.app import create_node_app
from wallet.store import Wallet, make_verifier

from issuer_fixtures import certification, counts, ready_node, token
from test_wallet_support import StaticFetcher

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
DATASET = "https://data.fife.example/dataset/homelessness"
CODE = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")

# ---- strategies ------------------------------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | \
    st.text(max_size=40)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
deep = st.tuples(st.sampled_from([("[", "]"), ('{"a":', "}")]), st.integers(2_000, 60_000)).map(
    lambda pair_n: pair_n[0][0] * pair_n[1] + "1" + pair_n[0][1] * pair_n[1])   # JSON nested n deep
raw_bodies = st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()) | deep.map(str.encode) | \
    st.sampled_from([b"NaN", b'{"credential": NaN}', b'{"a": Infinity}', b"\xff\xfe{}", b"{" * 5, b"", b"null",
                     b'{"credential": {}}' * 3])
content_types = st.sampled_from(["application/json", "application/json; charset=latin-1", "text/plain",
                                 "application/x-www-form-urlencoded", "multipart/form-data", "application/vp+jwt",
                                 "application/vp+ld+json", ""])
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                      max_size=120)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


header_values = header_text | json_values.map(lambda v: b64(json.dumps(v).encode())) | \
    deep.map(lambda text: b64(text.encode())) | \
    st.tuples(json_values, json_values).map(lambda hp: ".".join(b64(json.dumps(x).encode()) for x in (*hp, "s"))) | \
    st.sampled_from(["VP", "VP ", "vp e30", "Bearer x", "a.b.c", "..", "=", b64(b'{"a": NaN}'),
                     b64(b'{"type": "VerifiablePresentation", "verifiableCredential": [1, null, {}]}')])
methods = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "PROPFIND"])
path_parts = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="?#"), max_size=30)


def mutations(base: dict):
    """``base`` with one key's value replaced by any JSON value (type confusion at every key), or deleted."""
    def change(key_value):
        key, value = key_value
        out = dict(base)
        if value is _DELETE:
            out.pop(key, None)
        else:
            out[key] = value
        return out
    return st.tuples(st.sampled_from(sorted(base)), json_values | st.just(_DELETE)).map(change)


_DELETE = object()


# ---- assertions ---------------------------------------------------------------------------------------------------

def api_error(response, key: str = "error") -> dict:
    """A 4xx JSON error with a stable code (issuer API shape ``{"error": {...}}``)."""
    assert 400 <= response.status_code < 500, (response.status_code, response.get_data()[:300])
    assert response.mimetype == "application/json", response.get_data()[:300]
    body = response.get_json()
    problems = body[key] if key == "problems" else [body[key]]
    assert problems and all(CODE.match(p["code"]) and p["message"] for p in problems), body
    return body


def no_crash(response) -> None:
    assert response.status_code < 500, (response.status_code, response.get_data()[:300])
    assert b"Traceback" not in response.get_data()
    if response.status_code >= 400 and response.get_data():   # (a HEAD answer has no body)
        if response.mimetype == "text/html":
            assert re.search(rb"<code>[a-z_]+(\.[a-z_]+)+</code>", response.get_data()), response.get_data()[:300]
        else:
            assert response.mimetype == "application/json", response.get_data()[:300]


# ---- the node app: issuing API, status lists, DID document, inbox ---------------------------------------------

@pytest.fixture(scope="module")
def node_env(tmp_path_factory):
    node = ready_node(tmp_path_factory.mktemp("fuzz") / "h")
    wallet = Wallet.from_node(node, verifier=make_verifier(StaticFetcher()))
    app = create_node_app(node, wallet=wallet)
    secret = token(node)
    client = app.test_client()
    issued = client.post("/credentials/issue", json={"credential": certification(node.did)},
                         headers={"Authorization": f"Bearer {secret}"})
    assert issued.status_code == 201
    return dict(node=node, wallet=wallet, app=app, client=client, auth={"Authorization": f"Bearer {secret}"},
                credential=certification(node.did))


def wallet_rows(node) -> int:
    with node.engine.connect() as conn:
        return conn.execute(sa.text("select count(*) from wallet_credential")).scalar_one()


def status_log(node) -> list:
    with node.engine.connect() as conn:
        return list(conn.execute(sa.text("select id, status, updated_at from issuer_credential order by id")))


@FUZZ
@given(body=raw_bodies, content_type=content_types)
def test_issue_api_refuses_any_malformed_body_with_a_json_error(node_env, body, content_type):
    before = counts(node_env["node"])
    response = node_env["client"].post("/credentials/issue", data=body, content_type=content_type,
                                       headers=node_env["auth"])
    api_error(response)
    assert counts(node_env["node"]) == before


@FUZZ
@given(data=st.data())
def test_issue_api_type_confusion_at_every_key(node_env, data):
    credential = data.draw(mutations(node_env["credential"]))
    if data.draw(st.booleans()):
        subject = data.draw(mutations(node_env["credential"]["credentialSubject"]))
        credential = {**credential, "credentialSubject": subject}
    body = data.draw(st.sampled_from(["credential", "options", "top"]))
    if body == "credential":
        request = {"credential": credential}
    elif body == "options":
        request = {"credential": node_env["credential"],
                   "options": data.draw(json_values | mutations({"cryptosuite": "eddsa-rdfc-2022", "format": "vc+jwt",
                                                                 "alg": "EdDSA", "delegation": "x",
                                                                 "credentialStatus": {}}))}
    else:
        request = data.draw(mutations({"credential": node_env["credential"], "options": {}}))
    before = counts(node_env["node"])
    response = node_env["client"].post("/credentials/issue", json=request, headers=node_env["auth"])
    if response.status_code == 201:   # a change the node may accept (e.g. a name): then it stored one credential
        assert counts(node_env["node"])[0] == before[0] + 1
        return
    api_error(response)
    assert counts(node_env["node"]) == before


@FUZZ
@given(body=raw_bodies | json_values.map(lambda v: json.dumps({"credentialId": v, "credentialStatus": {
    "type": "BitstringStatusListCredential", "status": "revoked"}}).encode()) | scalars.map(
    lambda v: json.dumps({"credentialId": "urn:uuid:x", "credentialStatus": [{"status": v}]}).encode()))
def test_status_api_refuses_malformed_changes_and_changes_nothing(node_env, body):
    before = status_log(node_env["node"])
    response = node_env["client"].post("/credentials/status", data=body, content_type="application/json",
                                       headers=node_env["auth"])
    api_error(response)
    assert status_log(node_env["node"]) == before


@pytest.mark.parametrize("status", [["revoked"], {"a": 1}])
def test_status_api_with_a_list_or_object_status_is_a_400(node_env, status):
    """An unhashable status was a TypeError (500) in issuer/issuing.py parse_status_request."""
    response = node_env["client"].post("/credentials/status", headers=node_env["auth"], json={
        "credentialId": "urn:uuid:x", "credentialStatus": {"type": "BitstringStatusListCredential", "status": status}})
    api_error(response)


@FUZZ
@given(authorization=header_text)
def test_issue_api_with_any_authorization_header_is_401(node_env, authorization):
    before = counts(node_env["node"])
    response = node_env["client"].post("/credentials/issue", json={"credential": node_env["credential"]},
                                       headers={"Authorization": authorization})
    assert response.status_code == 401
    assert api_error(response)["error"]["code"] in ("auth.missing", "auth.invalid")
    assert counts(node_env["node"]) == before


@FUZZ
@given(method=methods, path=st.sampled_from(["/", "/.well-known/did.json", "/status/1", "/status/", "/inbox",
                                             "/credentials/issue", "/credentials/status", "/dpo/sign-in",
                                             "/dpo/register", "/dpo/issue", "/dpo/status", "/wallet/",
                                             "/verify/x", "/nowhere"]) | path_parts.map(lambda p: "/" + p),
       body=st.binary(max_size=64))
def test_any_method_on_any_path_never_crashes(node_env, method, path, body):
    before = counts(node_env["node"]), wallet_rows(node_env["node"])
    response = node_env["client"].open(path, method=method, data=body)
    no_crash(response)
    if response.status_code >= 400 and response.mimetype == "application/json" and method != "HEAD":
        body = response.get_json()   # the issuing API's {"error": {...}}, the inbox's {"problems": [...]}
        assert all(CODE.match(p["code"]) for p in body["problems"] if "problems" in body) if "problems" in body \
            else CODE.match(body["error"]["code"])
    assert (counts(node_env["node"]), wallet_rows(node_env["node"])) == before


@FUZZ
@given(list_id=st.integers(-10, 2**80).map(str) | path_parts, etag=header_text)
def test_status_list_and_did_document_with_odd_ids_and_etags(node_env, list_id, etag):
    no_crash(node_env["client"].get(f"/status/{list_id}", headers={"If-None-Match": etag}))
    response = node_env["client"].get("/.well-known/did.json", headers={"If-None-Match": etag})
    assert response.status_code == 200 and response.get_json()["id"] == node_env["node"].did


@FUZZ
@given(body=raw_bodies | header_values.map(str.encode), content_type=content_types)
def test_inbox_refuses_garbage_with_problems_and_stores_nothing(node_env, body, content_type):
    before = wallet_rows(node_env["node"])
    response = node_env["client"].post("/inbox", data=body, content_type=content_type)
    api_error(response, "problems")
    assert wallet_rows(node_env["node"]) == before


# ---- the pages (signed in) -------------------------------------------------------------------------------------

def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


@pytest.fixture(scope="module")
def pages(node_env):
    client = node_env["app"].test_client()
    secret = token(node_env["node"], name="fuzz-dpo")
    page = client.get("/dpo/sign-in")
    assert client.post("/dpo/sign-in", data={"token": secret, "csrf": csrf_of(page.text)}).status_code == 302
    return client, csrf_of(client.get("/dpo/issue").text)


form_text = st.text(max_size=80) | deep | json_values.map(json.dumps) | st.sampled_from([
    "a: &a [x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]", "{a: .nan}", "!!python/object:os.system ls", "- 1", "~"])


@FUZZ
@given(fields=st.fixed_dictionaries({}, optional={
    "kind": st.sampled_from(["certification", "delegation", "approval"]) | st.text(max_size=10),
    "format": st.sampled_from(["eddsa-rdfc-2022", "vc+jwt", "vc+jwt-es256"]) | st.text(max_size=10),
    "body": form_text, "delegation": form_text, "valid_until": st.text(max_size=30), "suspendable": st.text(max_size=3)}))
def test_issue_form_shows_a_friendly_page_for_any_input(node_env, pages, fields):
    client, csrf = pages
    before = counts(node_env["node"])
    response = client.post("/dpo/issue", data={**fields, "csrf": csrf})
    no_crash(response)
    assert response.mimetype == "text/html"
    if response.status_code != 201:
        assert counts(node_env["node"]) == before


@FUZZ
@given(fields=st.fixed_dictionaries({}, optional={
    "credential_id": st.text(max_size=60), "action": st.sampled_from(["revoke", "suspend", "reinstate"])
    | st.text(max_size=10), "reason": st.text(max_size=60), "confirm": st.sampled_from(["yes", "no", ""])}),
    csrf_ok=st.booleans())
def test_status_form_never_crashes_and_changes_nothing_it_should_not(node_env, pages, fields, csrf_ok):
    client, csrf = pages
    before = status_log(node_env["node"])
    response = client.post("/dpo/status", data={**fields, "csrf": csrf if csrf_ok else "forged"})
    no_crash(response)
    if not csrf_ok:
        assert response.status_code == 403 and status_log(node_env["node"]) == before


@FUZZ
@given(token_value=st.text(max_size=80), next_=st.text(max_size=80), csrf=st.text(max_size=40))
def test_sign_in_with_anything_is_refused_cleanly_and_never_redirects_off_site(node_env, token_value, next_, csrf):
    client = node_env["app"].test_client()
    page = client.get("/dpo/sign-in", query_string={"next": next_})
    no_crash(page)
    response = client.post("/dpo/sign-in", query_string={"next": next_},
                           data={"token": token_value, "csrf": csrf or csrf_of(page.text)})
    no_crash(response)
    assert response.status_code in (401, 403)


@pytest.mark.parametrize("csrf", ["\x80", "é" * 43, "☃"])
def test_a_non_ascii_csrf_field_is_a_403_not_a_500(node_env, csrf):
    """hmac.compare_digest raised TypeError on non-ASCII str: every POST page answered 500."""
    client = node_env["app"].test_client()
    client.get("/dpo/sign-in")
    response = client.post("/dpo/sign-in", data={"token": "x", "csrf": csrf})
    assert response.status_code == 403 and b"web.csrf_invalid" in response.get_data()


@FUZZ
@given(ident=path_parts, ext=path_parts, type_=st.text(max_size=30), link=path_parts)
def test_wallet_pages_and_verification_links_with_odd_ids(node_env, pages, ident, ext, type_, link):
    client, _ = pages
    for path in (f"/wallet/{ident}", f"/wallet/{ident}/credential", f"/wallet/{ident}/summary",
                 f"/wallet/{ident}/summary.{ext}", f"/verify/{link}", f"/verify/{link}/credential"):
        no_crash(client.get(path))
    no_crash(client.get("/wallet/", query_string={"type": type_}))


# ---- the verifier service ------------------------------------------------------------------------------------------

class NoNetwork:
    def get(self, url, *args, **kwargs):
        raise CeadError("http.unreachable", f"no network in this test ({url})")


def decider() -> Decider:
    return Decider(parse_policy({"controllers": [{"dataset": DATASET, "controller": "did:web:fife.example"}]}),
                   fetcher=NoNetwork())


@pytest.fixture(scope="module")
def verifier_client():
    app = create_verifier_app(decider())
    return app.test_client()


def denied(response) -> dict:
    assert response.status_code in (401, 403), (response.status_code, response.get_data()[:300])
    assert response.mimetype == "application/json"
    assert response.headers["Cead-Decision"] == "deny"
    if response.request.method == "HEAD":   # no body to read
        return {}
    body = response.get_json()
    assert body["allowed"] is False and body["decision"] == "deny" and body["reasons"]
    assert all(CODE.match(p["code"]) for p in body["reasons"])
    return body


vc_api_bodies = raw_bodies | json_values.map(lambda v: json.dumps(v).encode()) | st.tuples(
    st.sampled_from(["verifiableCredential", "verifiablePresentation", "presentation"]),
    json_values | header_values, json_values).map(
    lambda kvo: json.dumps({kvo[0]: kvo[1], "options": kvo[2]}).encode())


@FUZZ
@given(path=st.sampled_from(["/credentials/verify", "/presentations/verify"]), body=vc_api_bodies,
       content_type=content_types)
def test_vc_api_never_verifies_garbage_and_answers_json(verifier_client, path, body, content_type):
    response = verifier_client.post(path, data=body, content_type=content_type)
    assert response.status_code == 400, (response.status_code, response.get_data()[:300])
    assert response.mimetype == "application/json"
    result = response.get_json()
    assert result["verified"] is False and result["errors"]
    assert all(CODE.match(e["code"]) for e in result["errors"])


gateway_headers = st.fixed_dictionaries({}, optional={
    PRESENTATION_HEADER: header_values, MANIFEST_HEADER: header_values,
    "Authorization": header_values.map(lambda v: "VP " + v), "X-Original-URI": header_text | path_parts.map(
        lambda p: "/" + p), "X-Original-Method": header_text, "X-Original-Host": header_text,
    "X-Original-Proto": header_text, "X-Forwarded-Proto": header_text, "Host": header_text})


served = st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])


@FUZZ
@given(headers=gateway_headers, method=served)
def test_nginx_authz_never_allows_garbage(verifier_client, headers, method):
    denied(verifier_client.open("/authz", method=method, headers=headers))


@FUZZ
@given(headers=gateway_headers, method=served, path=path_parts.filter(lambda p: not p.startswith("/")),
       body=st.binary(max_size=64))
def test_envoy_authz_never_allows_garbage(verifier_client, headers, method, path, body):
    denied(verifier_client.open(f"/envoy/{path}", method=method, headers=headers, data=body))


def test_envoy_never_answers_with_a_redirect_to_the_verifier_itself(verifier_client):
    """werkzeug merged "//" in /envoy//x with a 308 to the service's own /envoy/x: not a decision on the path."""
    response = verifier_client.get("/envoy//x", headers={PRESENTATION_HEADER: "e30"})
    assert response.status_code in (401, 403, 404) and "Location" not in response.headers
    assert response.mimetype == "application/json"


@pytest.mark.parametrize("method, path", [("GET", "/nowhere"), ("DELETE", "/healthz"), ("TRACE", "/authz")])
def test_verifier_errors_are_json_with_a_code(verifier_client, method, path):
    """404 and 405 were werkzeug's HTML pages."""
    response = verifier_client.open(path, method=method)
    assert response.status_code in (404, 405) and response.mimetype == "application/json"
    assert response.get_json()["problems"][0]["code"] in ("request.not_found", "request.method_not_allowed")


@pytest.mark.parametrize("headers, code", [
    ({PRESENTATION_HEADER: b64(("[" * 50_000 + "]" * 50_000).encode())}, "presentation.malformed"),
    ({PRESENTATION_HEADER: "e30", MANIFEST_HEADER: b64(('{"a":' * 50_000 + "1" + "}" * 50_000).encode())},
     "manifest.invalid"),
    ({PRESENTATION_HEADER: "e30", "X-Original-Host": "[::1"}, "request.url_invalid"),
])
def test_authz_denies_input_the_decoders_do_not_survive(verifier_client, headers, code):
    """Deeply nested JSON in a header and a Host urlsplit refuses were 500s (RecursionError, ValueError); each is
    now named by the decoder that refuses it."""
    body = denied(verifier_client.get("/authz", headers={"X-Original-URI": "/x", **headers}))
    assert body["reasons"][0]["code"] == code
    denied(verifier_client.get("/envoy/x", headers=headers))


def test_vc_api_deeply_nested_body_is_a_400(verifier_client):
    response = verifier_client.post("/credentials/verify", data="[" * 100_000, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["code"] == "request.invalid"


@FUZZ
@given(method=methods, path=st.sampled_from(["/metrics", "/healthz", "/presentation-definition",
                                             "/credentials/verify", "/nowhere"]) | path_parts.map(lambda p: "/" + p))
def test_verifier_answers_any_path_and_method_with_json(verifier_client, method, path):
    response = verifier_client.open(path, method=method)
    assert response.status_code < 500
    if path.startswith("/envoy") or path == "/authz" or method == "HEAD":
        return
    if response.status_code >= 400:
        assert response.mimetype == "application/json", (path, method, response.get_data()[:200])
        body = response.get_json()
        codes = [p["code"] for p in body.get("problems", body.get("errors", []))]
        assert codes and all(CODE.match(c) for c in codes), body


@FUZZ
@given(query=st.lists(st.tuples(st.sampled_from(["dataset", "purpose", "x"]), header_text | st.just(DATASET)),
                      max_size=4))
def test_presentation_definition_with_any_query(verifier_client, query):
    response = verifier_client.get("/presentation-definition", query_string=query)
    assert response.status_code in (200, 400, 404) and response.mimetype == "application/json"
    if response.status_code != 200:
        assert all(CODE.match(p["code"]) for p in response.get_json()["problems"])


# ---- the WSGI middleware in front of a tiny app --------------------------------------------------------------------

@pytest.fixture(scope="module")
def guarded():
    reached: list = []
    app = Flask("tiny")

    @app.route("/data", methods=["GET", "POST", "PUT", "DELETE"])
    def data():
        reached.append(True)
        return "secret rows"

    app.wsgi_app = CeadMiddleware(app.wsgi_app, decider(), dataset_for=lambda environ: DATASET)
    return app.test_client(), reached


@FUZZ
@given(headers=gateway_headers, method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]), body=st.binary(max_size=64))
def test_middleware_never_lets_garbage_reach_the_app(guarded, headers, method, body):
    client, reached = guarded
    response = client.open("/data", method=method, headers=headers, data=body)
    body_json = denied(response)
    assert not reached and b"secret rows" not in response.get_data()
    if response.status_code == 401:
        assert response.headers["WWW-Authenticate"].startswith("VP")
    assert "presentation_definition" in body_json or response.status_code == 403


def test_middleware_denies_a_deeply_nested_presentation_header(guarded):
    client, reached = guarded
    for headers in ({PRESENTATION_HEADER: b64(("[" * 50_000 + "]" * 50_000).encode())},
                    {PRESENTATION_HEADER: "e30", "Host": "[::1"}):
        denied(client.get("/data", headers=headers))
    assert not reached
