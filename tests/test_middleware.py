"""CeadMiddleware in front of a real Flask data API served over HTTPS on 127.0.0.1."""
from __future__ import annotations

import pytest
import requests
from flask import Flask, request as flask_request

from verifier.binding import MANIFEST_HEADER, PRESENTATION_HEADER, encode_manifest, encode_presentation
from verifier.decision import TransferRequest
from verifier.middleware import ENVIRON_KEY, CeadMiddleware
from helpers_https import https_server
from transfer_world import DATASET, world

TABLE_OK = "ageBand,localAuthority,outcome,count\n16-24,Fife,housed,12\n25-34,Fife,housed,40\n"
TABLE_SMALL_CELL = "ageBand,localAuthority,outcome,count\n16-24,Fife,housed,3\n25-34,Fife,housed,40\n"


def data_api(decisions: list, table: dict):
    app = Flask("data-api")

    @app.route("/datasets/homelessness", methods=["GET", "POST"])
    def homelessness():
        decision = flask_request.environ[ENVIRON_KEY]
        decisions.append(decision)
        if flask_request.method == "POST":
            return {"received": len(flask_request.get_data())}
        return table["body"], 200, {"Content-Type": "text/csv", "X-Approval": decision.approval_id}

    return app


@pytest.fixture(scope="module")
def env():
    with world() as w:
        decisions: list = []
        table = {"body": TABLE_OK}
        app = data_api(decisions, table)
        app.wsgi_app = CeadMiddleware(app.wsgi_app, w.decider(), dataset_for=lambda environ: DATASET)
        with https_server(app) as (base_url, ca_bundle):
            yield w, base_url, ca_bundle, decisions, table, app


def send(env, credentials=None, *, method="GET", path="/datasets/homelessness", body=None, manifest=None,
         presentation=True, **present):
    w, base_url, ca_bundle, *_ = env
    url = base_url + path
    manifest = manifest if manifest is not None else w.manifest()
    transfer = TransferRequest(method, url, body=body, manifest=manifest)
    headers = {MANIFEST_HEADER: encode_manifest(manifest)}
    if presentation:
        headers[PRESENTATION_HEADER] = encode_presentation(w.present(transfer, credentials, **present))
    return requests.request(method, url, data=body, headers=headers, verify=ca_bundle, timeout=10)


def test_allowed_pull_reaches_the_app_with_the_decision(env):
    w, *_, decisions, table, app = env
    response = send(env)
    assert response.status_code == 200, response.text
    assert response.text == TABLE_OK
    assert response.headers["X-Approval"] == w.doc(w.approval)["id"]
    assert decisions[-1].allowed and decisions[-1].holder == w.recipient.did


def test_allowed_push_with_body_bound_to_the_presentation(env):
    response = send(env, method="POST", body=TABLE_OK.encode(), manifest=env[0].manifest(rowCount=2))
    assert response.status_code == 200, response.text
    assert response.json() == {"received": len(TABLE_OK)}


def test_data_integrity_presentation_in_header(env):
    w = env[0]
    approval = w.make_approval(w.controller, fmt="ldp")
    response = send(env, [approval, w.cert], fmt="ldp")
    assert response.status_code == 200, response.text


def test_missing_presentation_is_401_before_the_app_runs(env):
    decisions = env[3]
    before = len(decisions)
    response = send(env, presentation=False)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("VP")
    assert [r["code"] for r in response.json()["reasons"]] == ["presentation.missing"]
    assert len(decisions) == before


def test_denial_is_403_with_every_reason(env):
    w, *_, decisions, _, _ = env
    before = len(decisions)
    response = send(env, holder=w.stranger)
    assert response.status_code == 403
    body = response.json()
    assert body["allowed"] is False
    reasons = {r["code"] for r in body["reasons"]}
    assert {"holder.not_recipient", "certification.missing"} <= reasons
    assert "holder.not_recipient" in response.headers["Cead-Decision-Reasons"]
    assert len(decisions) == before


def test_manifest_for_another_dataset_than_the_endpoint_serves(env):
    w = env[0]
    response = send(env, manifest=w.manifest(dataset="https://data.fife.example/dataset/council-tax"))
    assert response.status_code == 403
    assert "transfer.dataset_mismatch" in response.headers["Cead-Decision-Reasons"]


def test_tampered_body_breaks_the_binding(env):
    w, base_url, ca_bundle, *_ = env
    url = base_url + "/datasets/homelessness"
    manifest = w.manifest(rowCount=2)
    vp = w.present(TransferRequest("POST", url, body=TABLE_OK.encode(), manifest=manifest))
    response = requests.post(url, data=TABLE_SMALL_CELL.encode(), verify=ca_bundle, timeout=10,
                             headers={PRESENTATION_HEADER: vp, MANIFEST_HEADER: encode_manifest(manifest)})
    assert response.status_code == 403
    assert "presentation.binding_mismatch" in response.headers["Cead-Decision-Reasons"]


def test_authorization_header_is_accepted(env):
    w, base_url, ca_bundle, *_ = env
    url = base_url + "/datasets/homelessness"
    manifest = w.manifest()
    vp = w.present(TransferRequest("GET", url, manifest=manifest))
    response = requests.get(url, verify=ca_bundle, timeout=10,
                            headers={"Authorization": f"VP {vp}", MANIFEST_HEADER: encode_manifest(manifest)})
    assert response.status_code == 200, response.text


def test_aggregate_output_checked_before_it_leaves(env):
    w, *_, table, _ = env
    approval = w.make_approval(w.controller, privacyProtocol={"kind": "threshold", "minCellCount": 10})
    assert send(env, [approval, w.cert], manifest=w.manifest(rowCount=2)).status_code == 200
    table["body"] = TABLE_SMALL_CELL
    try:
        response = send(env, [approval, w.cert], manifest=w.manifest(rowCount=2))
    finally:
        table["body"] = TABLE_OK
    assert response.status_code == 403
    assert "16-24" not in response.text          # the table never left
    assert "protocol.cell_below_threshold" in {r["code"] for r in response.json()["reasons"]}


def test_a_pushed_table_is_checked_in_the_request_and_the_apps_answer_is_not_read_as_one(env):
    """Under a threshold, a push carries the table: it is checked when the transfer is decided, and the app's own
    reply ({"received": n}) passes untouched; a pushed table with a small cell never reaches the app."""
    w, *_, decisions, _, _ = env
    approval = w.make_approval(w.controller, privacyProtocol={"kind": "threshold", "minCellCount": 10})
    response = send(env, [approval, w.cert], method="POST", body=TABLE_OK.encode(), manifest=w.manifest(rowCount=2))
    assert response.status_code == 200, response.text
    assert response.json() == {"received": len(TABLE_OK)}
    seen = len(decisions)
    refused = send(env, [approval, w.cert], method="POST", body=TABLE_SMALL_CELL.encode(),
                   manifest=w.manifest(rowCount=2))
    assert refused.status_code == 403 and len(decisions) == seen
    assert "protocol.cell_below_threshold" in {r["code"] for r in refused.json()["reasons"]}


def test_a_decoy_body_on_a_pull_does_not_spare_the_response_its_check(env):
    """A pull's table is in the response: a compliant table sent along with a GET must not be taken for it (the
    small-cell table would then leave unchecked). Only a push (POST/PUT/PATCH, or what push_for says) is checked in
    the request."""
    w, *_, table, _ = env
    approval = w.make_approval(w.controller, privacyProtocol={"kind": "threshold", "minCellCount": 10})
    table["body"] = TABLE_SMALL_CELL
    try:
        plain = send(env, [approval, w.cert], manifest=w.manifest(rowCount=2))
        decoy = send(env, [approval, w.cert], method="GET", body=TABLE_OK.encode(), manifest=w.manifest(rowCount=2))
    finally:
        table["body"] = TABLE_OK
    for response in (plain, decoy):
        assert response.status_code == 403 and "16-24,Fife,housed,3" not in response.text
        assert "protocol.cell_below_threshold" in {r["code"] for r in response.json()["reasons"]}


def test_an_endpoint_that_answers_a_post_with_a_table_says_so_with_push_for():
    from werkzeug.test import Client
    with world() as w:
        decisions: list = []
        app = data_api(decisions, {"body": TABLE_SMALL_CELL})
        app.add_url_rule("/query", "query", lambda: (TABLE_SMALL_CELL, 200, {"Content-Type": "text/csv"}),
                         methods=["POST"])
        app.wsgi_app = CeadMiddleware(app.wsgi_app, w.decider(), dataset_for=lambda environ: DATASET,
                                      push_for=lambda environ: environ["PATH_INFO"] != "/query")
        approval = w.make_approval(w.controller, privacyProtocol={"kind": "threshold", "minCellCount": 10})
        url, manifest = "http://localhost/query", w.manifest(rowCount=2)
        transfer = TransferRequest("POST", url, body=TABLE_OK.encode(), manifest=manifest)
        headers = {MANIFEST_HEADER: encode_manifest(manifest),
                   PRESENTATION_HEADER: encode_presentation(w.present(transfer, [approval, w.cert]))}
        response = Client(app).post(url, data=TABLE_OK.encode(), headers=headers)
        assert response.status_code == 403 and b"housed,3" not in response.data


def test_an_endpoint_declared_to_carry_no_records_is_not_held_to_a_row_count(env):
    """A release listing or an event stream (``check_response_payload=False``: the data owner's word about its own
    endpoint) carries no rows, so a row-limited approval lets it answer; the same pull to a table endpoint has its
    response counted, and decided with no response to count it is denied (``transfer.rows_uncounted``)."""
    from werkzeug.test import Client
    w = env[0]
    approval = w.make_approval(w.controller, maxRowsPerTransfer=1)
    url, manifest = "http://localhost/datasets/homelessness", w.manifest(rowCount=1)

    def pull(middleware_options):
        app = data_api([], {"body": TABLE_OK})
        app.wsgi_app = CeadMiddleware(app.wsgi_app, w.decider(), dataset_for=lambda environ: DATASET,
                                      **middleware_options)
        transfer = TransferRequest("GET", url, manifest=manifest)
        headers = {MANIFEST_HEADER: encode_manifest(manifest),
                   PRESENTATION_HEADER: encode_presentation(w.present(transfer, [approval, w.cert]))}
        return Client(app).get(url, headers=headers)

    listing = pull({"check_response_payload": False})
    assert listing.status_code == 200, listing.get_data(as_text=True)
    counted = pull({})                            # a table endpoint: its 2 rows counted against the ceiling of 1
    assert counted.status_code == 403 and b"transfer.volume_exceeded" in counted.data
    assert b"housed,12" not in counted.data
    bare = w.decider().decide(w.present(TransferRequest("GET", url, manifest=manifest), [approval, w.cert]),
                              TransferRequest("GET", url, manifest=manifest))
    assert not bare.allowed and [p.code for p in bare.reasons] == ["transfer.rows_uncounted"]


def test_malformed_headers_are_denied_cleanly(env):
    w, base_url, ca_bundle, *_ = env
    url = base_url + "/datasets/homelessness"
    bad = requests.get(url, verify=ca_bundle, timeout=10, headers={PRESENTATION_HEADER: "%%%not-a-vp%%%"})
    assert bad.status_code == 401 and bad.json()["reasons"][0]["code"] == "presentation.malformed"
    vp = w.present(TransferRequest("GET", url, manifest=w.manifest()))
    bad = requests.get(url, verify=ca_bundle, timeout=10, headers={PRESENTATION_HEADER: vp,
                                                                   MANIFEST_HEADER: "!!"})
    assert bad.status_code == 403 and bad.json()["reasons"][0]["code"] == "manifest.invalid"


def test_chunked_body_is_not_waved_through_as_no_body(w):
    """A chunked body (no Content-Length) must be bound and checked like any other."""
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


# ---- every worked example in schemas/examples, end to end ---------------------------------------------------------

@pytest.mark.parametrize("name", ["police", "homelessness", "fsm", "child-poverty"])
def test_example_scenarios_allowed_through_middleware(examples, name, tmp_path):
    from issuer import db
    from issuer.ledger import SqlLedger
    scenario = examples[name]
    ledger = SqlLedger(db.migrate(f"sqlite:///{tmp_path / 'node.db'}"))   # the provider's books (DP budgets)
    app = Flask(f"data-api-{name}")
    served = scenario.payload or b"id\n1\n"

    @app.get("/data")
    def data():
        assert flask_request.environ[ENVIRON_KEY].allowed
        return served, 200, {"Content-Type": "text/csv"}

    app.wsgi_app = CeadMiddleware(app.wsgi_app, scenario.decider(ledger=ledger),
                                  dataset_for=lambda environ: scenario.manifest["dataset"])
    with https_server(app) as (base_url, ca_bundle):
        url = base_url + "/data"
        vp = scenario.present(TransferRequest("GET", url, manifest=scenario.manifest))
        response = requests.get(url, verify=ca_bundle, timeout=10, headers={
            PRESENTATION_HEADER: vp, MANIFEST_HEADER: encode_manifest(scenario.manifest)})
    assert response.status_code == 200, response.text
    assert response.content == served


def test_the_bound_url_keeps_the_query_exactly_as_sent():
    """A pull with an encoded query (``since=2026-01-01T00%3A00%3A00Z``) is bound to that exact text by the client;
    the middleware's default URL must be the same text, not a re-encoded one (else a binding mismatch)."""
    from werkzeug.test import EnvironBuilder
    from verifier.middleware import request_url
    environ = EnvironBuilder(base_url="https://api.example:8443",
                             path="/series/returns/releases", query_string="since=2026-01-01T00%3A00%3A00Z&limit=5"
                             ).get_environ()
    assert request_url(environ) == \
        "https://api.example:8443/series/returns/releases?since=2026-01-01T00%3A00%3A00Z&limit=5"
    environ = EnvironBuilder(base_url="https://api.example:8443", path="/datasets/x").get_environ()
    assert request_url(environ) == "https://api.example:8443/datasets/x"
