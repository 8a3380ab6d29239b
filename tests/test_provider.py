"""`cead provider serve`: dataset series served behind the gateway, pushed to recipients, streamed to near-time
consumers. Real nodes (did:web over HTTPS on 127.0.0.1 with a test CA), real wallets, real HTTPS servers.

The estate: a council (the provider; controller of its returns), the Scottish Government (collects the council's
quarterly return at its ingest endpoint, behind its own gateway) and a regulator (a second authorised recipient,
pulling the same return and the monthly series). A small upstream REST API with cursor paging and an API key stands
in for a health data API the provider fronts.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from flask import Flask, jsonify, request as flask_request
from jwcrypto import jwk

from helpers_https import https_server
from issuer import issuing
from issuer.evidence import receipts as receipt_store
from issuer.node import Node
from verifier.decision import Decider
from verifier.keys import PublicKey
from verifier.policy import load_policy, parse_policy
from verifier.receipts import verify_receipt
from verifier.results import CeadError
from wallet.app import create_node_app
from wallet.client import CeadAuth
from wallet.provider import Provider, load_config, parse_config
from wallet.provider.ingest import ingest_app
from wallet.store import Wallet

from test_wallet_support import P_STATS, approval_subject

PASSPHRASE = b"provider test passphrase"
V2 = ["https://www.w3.org/ns/credentials/v2", "https://w3id.org/cead/v1"]
MONTHLY = "https://data.fife.example/dataset/homelessness-monthly"
QUARTERLY = "https://data.fife.example/dataset/housing-quarterly-return"
MONTHLY_DB = "https://data.fife.example/dataset/homelessness-monthly-db"
WAITING = "https://data.fife.example/dataset/waiting-times"
COLLECTION = "https://data.gov.scot/dataset/housing-returns-collection"
SMALL_AREAS = "https://data.fife.example/dataset/small-area-counts"
COLUMNS = ["localAuthority", "period", "applications"]
API_KEY = "upstream-secret-" + uuid.uuid4().hex


def csv_for(period: str, count: int = 40) -> str:
    return f"localAuthority,period,applications\nFife,{period},{count}\n"


class Late:
    app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


def _approval(discloser, recipient, datasets) -> dict:
    subject = approval_subject(discloser, recipient, datasets=datasets, purposes=[P_STATS])
    subject.update(dataItems=COLUMNS, dataCategories=["cead:HousingSituation"])
    return {"@context": V2, "type": ["VerifiableCredential", "DataSharingApprovalCredential"],
            "credentialSubject": subject}


def upstream_api(seen: list):
    """A health data API: GET /releases?cursor=C (two per page) and GET /releases/<id>, both needing the key."""
    api = Flask("upstream")
    items = [{"id": f"wt-2026-0{m}", "issued": f"2026-0{m}-05T09:00:00Z", "mediaType": "text/csv"}
             for m in range(1, 6)]

    @api.before_request
    def key():
        seen.append(dict(flask_request.headers))
        if flask_request.headers.get("X-API-Key") != API_KEY:
            return jsonify({"error": "bad key"}), 401

    @api.get("/releases")
    def listing():
        start = int(flask_request.args.get("cursor", 0))
        following = start + 2 if start + 2 < len(items) else None
        return jsonify({"items": items[start:start + 2], "next": str(following) if following else None})

    @api.get("/releases/<rid>")
    def one(rid):
        if rid not in {i["id"] for i in items}:
            return jsonify({"error": "none"}), 404
        return csv_for(rid[3:], 7), 200, {"Content-Type": "text/csv"}

    return api


@pytest.fixture(scope="module")
def estate(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("provider")
    os.environ["CEAD_TEST_UPSTREAM_KEY"] = API_KEY
    with ExitStack() as stack:
        stack.callback(os.environ.pop, "CEAD_TEST_UPSTREAM_KEY", None)
        names = ("council", "sg", "regulator", "provider", "ingest", "upstream")
        servers = {}
        for name in names:
            late = Late()
            base, ca = stack.enter_context(https_server(late))
            servers[name] = (late, base, ca)
        bundle = tmp / "ca-bundle.pem"
        bundle.write_text("".join(open(s[2]).read() for s in servers.values()))
        network = {"allow_private": True, "ca_bundle": str(bundle)}
        w: dict = {"bundle": str(bundle), "tmp": tmp, "url": {n: servers[n][1] for n in names}}
        for name in ("council", "sg", "regulator"):
            late, base, _ = servers[name]
            node, _ = Node.init(tmp / name, name.title(), PASSPHRASE, domain=urlsplit(base).netloc,
                                public_url=base, network=network)
            wallet = Wallet.from_node(node)
            late.app = create_node_app(node, wallet=wallet)
            w[name] = node
            w[name + "_wallet"] = wallet
        council, sg, regulator = w["council"], w["sg"], w["regulator"]
        # the Scottish Government approves the council to push its returns to the collection
        push = issuing.issue(sg, _approval(sg.did, council.did, [COLLECTION]))
        assert w["council_wallet"].import_credential(push.credential).ok
        w["push_approval"] = push
        # the council approves the regulator to pull its series
        pull = issuing.issue(council, _approval(council.did, regulator.did, [MONTHLY, QUARTERLY, MONTHLY_DB, WAITING]))
        assert w["regulator_wallet"].import_credential(pull.credential).ok
        # ... and small-area counts under a minimum cell count of 10
        small = _approval(council.did, regulator.did, [SMALL_AREAS])
        small["credentialSubject"]["privacyProtocol"] = {"kind": "threshold", "minCellCount": 10}
        assert w["regulator_wallet"].import_credential(issuing.issue(council, small).credential).ok

        # the Scottish Government's collection endpoint, behind its own gateway with a receipt key
        key = jwk.JWK.generate(kty="OKP", crv="Ed25519")
        (tmp / "receipt.jwk").write_text(key.export_private())
        w["receipt_public"] = PublicKey.from_jwk(key.export_public(as_dict=True))
        sg_policy = parse_policy({"controllers": [{"dataset": COLLECTION, "controller": sg.did}],
                                  "network": network, "caches": {"status_lists": {"size": 16, "ttl": 0}},
                                  "receipts": {"key": str(tmp / "receipt.jwk")}})
        servers["ingest"][0].app = ingest_app(Decider(sg_policy), {"housing-returns": COLLECTION}, tmp / "sg-store")
        w["sg_store"] = tmp / "sg-store" / "housing-returns"

        seen: list = []
        servers["upstream"][0].app = upstream_api(seen)
        w["upstream_seen"] = seen

        # the provider's sources: 12 monthly files, a quarterly return folder, a SQLite table
        monthly = tmp / "monthly"
        monthly.mkdir()
        for m in range(1, 13):
            (monthly / f"2025-{m:02d}.csv").write_text(csv_for(f"2025-{m:02d}", 30 + m))
        (tmp / "quarterly").mkdir()
        (tmp / "small").mkdir()
        (tmp / "small" / "2026-01.csv").write_text(csv_for("2026-01", 3))
        (tmp / "small" / "2026-02.csv").write_text(csv_for("2026-02", 40))
        db = tmp / "releases.db"
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE releases (release_id TEXT PRIMARY KEY, issued TEXT, media_type TEXT, "
                         "body TEXT)")
            conn.executemany("INSERT INTO releases VALUES (?, ?, 'text/csv', ?)",
                             [(f"m{m:02d}", f"2025-{m:02d}-01T09:00:00Z", csv_for(f"2025-{m:02d}"))
                              for m in range(1, 13)])
        w["db"] = db
        # the provider's gateway signs a receipt of every decision (issue 15), streams included
        provider_key = jwk.JWK.generate(kty="OKP", crv="Ed25519")
        (tmp / "provider-receipt.jwk").write_text(provider_key.export_private())
        w["provider_receipt_public"] = PublicKey.from_jwk(provider_key.export_public(as_dict=True))
        (tmp / "policy.yaml").write_text(yaml.safe_dump({
            "controllers": [{"prefix": "https://data.fife.example/", "controller": council.did}],
            "network": network, "caches": {"status_lists": {"size": 16, "ttl": 0}},
            "receipts": {"key": str(tmp / "provider-receipt.jwk")}}))
        config = {
            "policy": "policy.yaml", "node": "council", "ca_bundle": "ca-bundle.pem", "state": "state",
            "public_url": servers["provider"][1], "poll_seconds": 0.25,
            "stream": {"heartbeat_seconds": 0.5, "max_seconds": 60, "max_clients": 3},
            "page": {"default_limit": 5, "max_limit": 50},
            "series": {
                "homelessness-monthly": {"dataset": MONTHLY, "source": {"files": "monthly"}},
                "housing-quarterly": {"dataset": QUARTERLY, "source": {"files": "quarterly"},
                                      "push": [{"url": servers["ingest"][1] + "/ingest/housing-returns",
                                                "dataset": COLLECTION, "purpose": P_STATS}]},
                "small-areas": {"dataset": SMALL_AREAS, "source": {"files": "small"}},
                "homelessness-monthly-db": {"dataset": MONTHLY_DB, "source": {
                    "database": "sqlite:///releases.db", "table": "releases"}},
                "waiting-times": {"dataset": WAITING, "source": {
                    "api": servers["upstream"][1] + "/releases", "api_key_env": "CEAD_TEST_UPSTREAM_KEY"}},
            }}
        (tmp / "provider.yaml").write_text(yaml.safe_dump(config))
        w["config"] = config
        cfg = load_config(tmp / "provider.yaml")
        provider = Provider(cfg, Decider(load_policy(cfg.policy)), w["council_wallet"])
        servers["provider"][0].app = provider
        provider.start()
        stack.callback(provider.stop)
        w["provider"] = provider
        yield w


def pull(w, path, dataset, **params):
    auth = CeadAuth(w["regulator_wallet"], dataset=dataset, purpose=P_STATS)
    return requests.get(w["url"]["provider"] + path, params=params or None, auth=auth, verify=w["bundle"],
                        timeout=30)


def test_twelve_monthly_releases_pulled_in_pages_and_incrementally_with_since(estate):
    w = estate
    got, cursor, pages = [], None, 0
    while True:
        answer = pull(w, "/series/homelessness-monthly/releases", MONTHLY, **({"cursor": cursor} if cursor else {}))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["dataset"] == MONTHLY and len(body["releases"]) <= 5
        got += body["releases"]
        pages += 1
        cursor = body["next"]
        if cursor is None:
            break
    assert pages == 3
    assert [r["id"] for r in got] == [f"2025-{m:02d}" for m in range(1, 13)]
    # an incremental update: only what was issued after the last one the consumer has
    later = pull(w, "/series/homelessness-monthly/releases", MONTHLY, since=got[5]["issued"], limit=50).json()
    assert [r["id"] for r in later["releases"]] == [f"2025-{m:02d}" for m in range(7, 13)]
    assert pull(w, "/series/homelessness-monthly/releases", MONTHLY, since=got[-1]["issued"]).json()["releases"] == []
    one = pull(w, "/series/homelessness-monthly/releases/2025-03", MONTHLY)
    assert one.status_code == 200 and one.text == csv_for("2025-03", 33)
    assert one.headers["Content-Type"].startswith("text/csv")
    assert pull(w, "/series/homelessness-monthly/releases/2031-01", MONTHLY).status_code == 404
    bad = pull(w, "/series/homelessness-monthly/releases", MONTHLY, since="last tuesday")
    assert bad.status_code == 400 and bad.json()["problems"][0]["code"] == "provider.time_invalid"
    bad = pull(w, "/series/homelessness-monthly/releases", MONTHLY, cursor="nonsense")
    assert bad.status_code == 400 and bad.json()["problems"][0]["code"] == "provider.cursor_invalid"


def test_every_data_response_is_decided_by_the_gateway_first(estate):
    w = estate
    base = w["url"]["provider"]
    for path in ("/series/homelessness-monthly/releases", "/series/homelessness-monthly/releases/2025-03",
                 "/series/homelessness-monthly/events"):
        bare = requests.get(base + path, verify=w["bundle"], timeout=30)
        assert bare.status_code == 401 and "presentation.missing" in bare.text
        assert "applications" not in bare.text
    # the council's wallet holds no approval for the monthly series: a presentation of what it has is refused
    wrong = requests.get(base + "/series/homelessness-monthly/releases/2025-03", verify=w["bundle"], timeout=30,
                         auth=CeadAuth(w["council_wallet"], dataset=COLLECTION, purpose=P_STATS,
                                       raise_on_denial=False))
    assert wrong.status_code == 403 and "transfer.dataset_mismatch" in wrong.headers["Cead-Decision-Reasons"]
    assert "Fife,2025-03" not in wrong.text
    assert requests.get(base + "/healthz", verify=w["bundle"], timeout=30).json() == {"status": "ok"}
    listed = requests.get(base + "/series", verify=w["bundle"], timeout=30).json()["series"]
    assert {s["dataset"] for s in listed} == {MONTHLY, QUARTERLY, MONTHLY_DB, WAITING, SMALL_AREAS}
    assert requests.get(base + "/series/nope/releases", verify=w["bundle"], timeout=30).status_code == 404


def test_sse_subscribers_are_told_of_a_new_release(estate):
    w = estate
    auth = CeadAuth(w["regulator_wallet"], dataset=MONTHLY, purpose=P_STATS)
    streams = [requests.get(w["url"]["provider"] + "/series/homelessness-monthly/events", auth=auth, stream=True,
                            verify=w["bundle"], timeout=30) for _ in range(2)]
    try:
        # both subscribers are answered while their streams stay open (the wallet keeps each stream's receipt
        # without reading the stream to its end)
        for s in streams:
            assert s.status_code == 200 and s.headers["Content-Type"].startswith("text/event-stream")
            claims = verify_receipt(s.headers["Cead-Receipt"], w["provider_receipt_public"])
            assert claims["decision"] == "allow" and claims["payload"]["sha256"] is None   # a stream has no end
        copies = receipt_store.listing(w["regulator_wallet"].engine, side=receipt_store.RECIPIENT)
        kept = {r.token for r in copies}
        assert {s.headers["Cead-Receipt"] for s in streams} <= kept
        # this gateway's receipt key is named by its thumbprint, not a DID URL: nothing to check it against as it
        # arrives, nor later (a gateway that names its key in its DID document gets "verified":
        # test_receipt_batch.py; one whose DID document cannot be fetched "unverified": test_receipts_list.py)
        assert all(r.signature_check == "uncheckable" for r in copies if r.token in {s.headers["Cead-Receipt"]
                                                                                    for s in streams})
        (w["tmp"] / "monthly" / "2026-01.csv").write_text(csv_for("2026-01", 50))
        for s in streams:
            event = read_event(s, deadline=time.monotonic() + 20)
            assert event["id"] == "2026-01" and event["url"].endswith("/series/homelessness-monthly/releases/2026-01")
    finally:
        for s in streams:
            s.close()
    # the new release is there for an incremental pull too
    newest = pull(w, "/series/homelessness-monthly/releases", MONTHLY, since="2025-12-01T00:00:00Z").json()
    assert [r["id"] for r in newest["releases"]] == ["2026-01"]


def test_an_httpx_stream_is_answered_while_it_stays_open(estate):
    # CeadHttpxAuth reads an answer's body only when it needs it (a denial, a pull receipt's payload hash): reading
    # an allowed event stream would hold client.stream(...) until the provider closed the stream
    import ssl

    import httpx

    from wallet.client import CeadHttpxAuth
    w = estate
    wait_for_no_streams(w["provider"])
    auth = CeadHttpxAuth(w["regulator_wallet"], dataset=MONTHLY, purpose=P_STATS)
    with httpx.Client(verify=ssl.create_default_context(cafile=w["bundle"]), timeout=30) as client:
        with client.stream("GET", w["url"]["provider"] + "/series/homelessness-monthly/events", auth=auth) as s:
            assert s.status_code == 200 and s.headers["Content-Type"].startswith("text/event-stream")
            claims = verify_receipt(s.headers["Cead-Receipt"], w["provider_receipt_public"])
            assert claims["decision"] == "allow" and claims["payload"]["sha256"] is None
            kept = {r.token for r in receipt_store.listing(w["regulator_wallet"].engine, side=receipt_store.RECIPIENT)}
            assert s.headers["Cead-Receipt"] in kept
            (w["tmp"] / "monthly" / "2026-02.csv").write_text(csv_for("2026-02", 50))
            kind, deadline = None, time.monotonic() + 20
            for line in s.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "release":
                    assert json.loads(line[6:])["id"] == "2026-02"
                    break
                assert time.monotonic() < deadline, "no release event arrived"
            else:
                raise AssertionError("the stream ended without the release event")


def read_event(stream, deadline: float) -> dict:
    kind = None
    for line in stream.iter_lines(chunk_size=1, decode_unicode=True):
        if time.monotonic() > deadline:
            break
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: ") and kind == "release":
            return json.loads(line[6:])
    raise AssertionError("no release event arrived")


def test_streams_are_bounded(estate):
    w = estate
    auth = CeadAuth(w["regulator_wallet"], dataset=MONTHLY, purpose=P_STATS)
    url = w["url"]["provider"] + "/series/homelessness-monthly/events"
    wait_for_no_streams(w["provider"])     # streams of earlier tests close at their next heartbeat
    held = [requests.get(url, auth=auth, stream=True, verify=w["bundle"], timeout=30) for _ in range(3)]
    try:
        assert all(s.status_code == 200 for s in held)
        busy = requests.get(url, auth=auth, verify=w["bundle"], timeout=30)
        assert busy.status_code == 503 and busy.json()["problems"][0]["code"] == "provider.stream_busy"
        # a heartbeat comment keeps an idle stream alive
        lines = held[0].iter_lines(chunk_size=1, decode_unicode=True)
        assert any(line.startswith(": heartbeat") for _, line in zip(range(10), lines))
    finally:
        for s in held:
            s.close()
    # places come back when the streams close
    wait_for_no_streams(w["provider"])
    again = requests.get(url, auth=auth, stream=True, verify=w["bundle"], timeout=30)
    again.close()
    assert again.status_code == 200


def wait_for_no_streams(provider) -> None:
    deadline = time.monotonic() + 20
    while provider.open_streams and time.monotonic() < deadline:
        time.sleep(0.1)
    assert provider.open_streams == 0


def test_stream_ends_after_its_maximum_duration(estate):
    import dataclasses
    w = estate
    short = dataclasses.replace(w["provider"].config, stream_max_seconds=1, state=w["tmp"] / "state-short")
    provider = Provider(short, w["provider"].decider)
    with https_server(provider) as (base, ca):
        bundle = w["tmp"] / "bundle-short.pem"
        bundle.write_text(Path(w["bundle"]).read_text() + Path(ca).read_text())
        short.public_url = None
        answer = requests.get(base + "/series/homelessness-monthly/events", verify=str(bundle), timeout=30,
                              auth=CeadAuth(w["regulator_wallet"], dataset=MONTHLY, purpose=P_STATS))
        assert answer.status_code == 200
        assert answer.text.endswith('event: end\ndata: {"reason": "maximum stream duration"}\n\n'), answer.text


def test_a_quarterly_return_is_pushed_checked_by_the_recipients_gateway_and_pulled_by_a_second_recipient(estate):
    w = estate
    provider, quarterly = w["provider"], w["tmp"] / "quarterly"
    (quarterly / "2026-03-31-q4.csv").write_text(csv_for("2025-26 Q4", 120))
    deliveries = delivered_now(provider, "2026-03-31-q4")
    assert [(d.release, d.outcome) for d in deliveries] == [("2026-03-31-q4", "delivered")], deliveries
    delivered = deliveries[0]
    assert (w["sg_store"] / "2026-03-31-q4.csv").read_text() == csv_for("2025-26 Q4", 120)
    # the delivery is recorded with the gateway's signed receipt of its decision
    claims = verify_receipt(delivered.receipt, w["receipt_public"])
    assert claims and delivered.decision == "allow"
    assert provider.poll_once() == []                    # never delivered twice
    # the same return, pulled by a second authorised recipient
    same = pull(w, "/series/housing-quarterly/releases/2026-03-31-q4", QUARTERLY)
    assert same.status_code == 200 and same.text == csv_for("2025-26 Q4", 120)

    # the Scottish Government revokes the council's approval: the next return is refused by its gateway
    issuing.change_status(w["sg"], w["push_approval"].id, "revoke")
    (quarterly / "2026-06-30-q1.csv").write_text(csv_for("2026-27 Q1", 99))
    deliveries = delivered_now(provider, "2026-06-30-q1")
    assert len(deliveries) == 1 and deliveries[0].outcome == "refused", deliveries
    refused = deliveries[0]
    assert refused.status == 403 and "approval.revoked" in {r["code"] for r in refused.reasons}
    assert verify_receipt(refused.receipt, w["receipt_public"])     # the refusal has its receipt too
    assert not (w["sg_store"] / "2026-06-30-q1.csv").exists()
    assert provider.poll_once() == []                    # a refusal is a decision: not retried
    log = [json.loads(line) for line in (w["tmp"] / "state" / "deliveries.jsonl").read_text().splitlines()]
    assert [(d["release"], d["outcome"]) for d in log] == [("2026-03-31-q4", "delivered"),
                                                          ("2026-06-30-q1", "refused")]
    # a restarted provider reads the log and delivers nothing again
    again = Provider(provider.config, provider.decider, w["council_wallet"])
    assert again.poll_once() == []


def test_under_a_minimum_cell_count_each_release_is_checked_before_it_leaves(estate):
    """The release is checked as a table; the list (not a table) cannot be checked, so the gateway fails closed."""
    w = estate
    auth = CeadAuth(w["regulator_wallet"], dataset=SMALL_AREAS, purpose=P_STATS, raise_on_denial=False)
    listed = requests.get(w["url"]["provider"] + "/series/small-areas/releases", auth=auth, verify=w["bundle"],
                          timeout=30)
    assert listed.status_code == 403 and "protocol.payload_missing" in listed.headers["Cead-Decision-Reasons"]
    assert pull(w, "/series/small-areas/releases/2026-02", SMALL_AREAS).text == csv_for("2026-02", 40)
    small = requests.get(w["url"]["provider"] + "/series/small-areas/releases/2026-01", auth=auth,
                         verify=w["bundle"], timeout=30)
    assert small.status_code == 403 and "Fife,2026-01" not in small.text
    assert "protocol.cell_below_threshold" in {r["code"] for r in small.json()["reasons"]}


def delivered_now(provider, release: str) -> list:
    """The deliveries of ``release`` (polling now; the watcher thread may have been first)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        provider.poll_once()
        found = [d for d in provider.deliveries.records if d.release == release]
        if found:
            return found
        time.sleep(0.1)
    return []


def test_the_database_source_sqlite(estate):
    w = estate
    listed = pull(w, "/series/homelessness-monthly-db/releases", MONTHLY_DB, limit=50).json()
    assert [r["id"] for r in listed["releases"]] == [f"m{m:02d}" for m in range(1, 13)]
    since = pull(w, "/series/homelessness-monthly-db/releases", MONTHLY_DB, since="2025-10-01T09:00:00Z").json()
    assert [r["id"] for r in since["releases"]] == ["m11", "m12"]
    assert pull(w, "/series/homelessness-monthly-db/releases/m04", MONTHLY_DB).text == csv_for("2025-04")


def test_the_provider_in_front_of_an_upstream_api_with_cursor_paging_and_an_api_key(estate):
    w = estate
    seen = w["upstream_seen"]
    before = len(seen)
    assert requests.get(w["url"]["provider"] + "/series/waiting-times/releases", verify=w["bundle"],
                        timeout=30).status_code == 401
    listed = pull(w, "/series/waiting-times/releases", WAITING, limit=50)
    assert listed.status_code == 200
    assert [r["id"] for r in listed.json()["releases"]] == [f"wt-2026-0{m}" for m in range(1, 6)]
    assert API_KEY not in listed.text and API_KEY not in str(listed.headers)
    one = pull(w, "/series/waiting-times/releases/wt-2026-02", WAITING)
    assert one.status_code == 200 and one.text == csv_for("2026-02", 7)
    assert all(h.get("X-Api-Key") == API_KEY for h in seen[before:]) and len(seen) > before
    assert not any("Cead-Presentation" in h for h in seen)   # the client's credentials stay at the gateway


@pytest.mark.skipif(not os.environ.get("CEAD_TEST_DATABASE_URL"), reason="set CEAD_TEST_DATABASE_URL for PostgreSQL")
def test_the_database_source_postgresql(estate):
    import sqlalchemy as sa
    from datetime import datetime, timezone
    w = estate
    url = os.environ["CEAD_TEST_DATABASE_URL"]
    schema = f"provider_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        conn.execute(sa.text(f'CREATE TABLE "{schema}".returns (rid text PRIMARY KEY, issued_at timestamptz, '
                             'mtype text, payload bytea)'))
        for m in range(1, 13):
            conn.execute(sa.text(f'INSERT INTO "{schema}".returns VALUES (:r, :t, \'text/csv\', :b)'),
                         {"r": f"pg{m:02d}", "t": datetime(2025, m, 1, 9, tzinfo=timezone.utc),
                          "b": csv_for(f"2025-{m:02d}").encode()})
    try:
        config = {**w["config"], "state": "state-pg", "series": {"pg": {"dataset": MONTHLY_DB, "source": {
            "database": url, "schema": schema, "table": "returns",
            "columns": {"id": "rid", "issued": "issued_at", "media_type": "mtype", "body": "payload"}}}}}
        provider = Provider(parse_config(config, w["tmp"] / "provider.yaml"), w["provider"].decider)
        with https_server(provider) as (base, ca):
            bundle = w["tmp"] / "bundle-pg.pem"
            bundle.write_text(Path(w["bundle"]).read_text() + Path(ca).read_text())
            provider.config.public_url = None
            auth = CeadAuth(w["regulator_wallet"], dataset=MONTHLY_DB, purpose=P_STATS)
            got = requests.get(base + "/series/pg/releases", params={"since": "2025-09-01T09:00:00Z"}, auth=auth,
                               verify=str(bundle), timeout=30)
            assert [r["id"] for r in got.json()["releases"]] == ["pg10", "pg11", "pg12"]
            body = requests.get(base + "/series/pg/releases/pg10", auth=auth, verify=str(bundle), timeout=30)
            assert body.text == csv_for("2025-10")
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.mark.parametrize("change, key", [
    ({"series": {}}, "series"),
    ({"policy": "missing.yaml"}, "policy"),
    ({"colour": "blue"}, "colour"),
    ({"series": {"Bad Name": {"dataset": MONTHLY, "source": {"files": "monthly"}}}}, "series.Bad Name"),
    ({"series": {"m": {"source": {"files": "monthly"}}}}, "series.m.dataset"),
    ({"series": {"m": {"dataset": MONTHLY, "source": {"files": "monthly", "database": "sqlite:///x.db"}}}},
     "series.m.source"),
    ({"series": {"m": {"dataset": MONTHLY, "source": {"files": "no-such-dir"}}}}, "series.m.source.files"),
    ({"series": {"m": {"dataset": MONTHLY, "source": {"database": "mysql://x/y", "table": "t"}}}},
     "series.m.source.database"),
    ({"series": {"m": {"dataset": MONTHLY, "source": {"database": "sqlite:///x.db", "table": "t; drop"}}}},
     "series.m.source.table"),
    ({"series": {"m": {"dataset": MONTHLY, "source": {"api": "https://api.example/r"}}}},
     "series.m.source.api_key_env"),
    ({"series": {"m": {"dataset": MONTHLY, "source": {"files": "monthly"},
                       "push": [{"url": "http://collect.example/in", "dataset": COLLECTION}]}}}, "series.m.push[0].url"),
    ({"stream": {"max_clients": 0}}, "stream.max_clients"),
    ({"poll_seconds": "often"}, "poll_seconds"),
])
def test_bad_config_names_the_key(estate, change, key):
    config = {**estate["config"], **change}
    with pytest.raises(CeadError) as err:
        parse_config(config, estate["tmp"] / "provider.yaml")
    assert err.value.code == "provider.config_invalid" and err.value.detail["key"] == key
    assert err.value.message.startswith(key + ":")


def test_names_and_release_ids_admit_no_trailing_newline():
    """`$` matches before a final newline: a standing approval's name, a provider series name or a release id
    with one would pass as valid and reach file names and URLs."""
    from wallet.provider.config import NAME as SERIES
    from wallet.provider.sources import RELEASE_ID
    from wallet.standing import NAME
    for pattern, good in ((NAME, "school-meals"), (SERIES, "homelessness-monthly"), (RELEASE_ID, "2026-01")):
        assert pattern.match(good) and not pattern.match(good + "\n")


def test_cli_says_a_bad_config_in_one_line(estate, tmp_path):
    from click.testing import CliRunner
    from cead.cli import main
    bad = tmp_path / "provider.yaml"
    bad.write_text(yaml.safe_dump({"policy": str(estate["tmp"] / "policy.yaml"), "series": {"m": {
        "dataset": MONTHLY, "source": {"database": "sqlite:///r.db"}}}}))
    result = CliRunner().invoke(main, ["provider", "serve", "--config", str(bad)])
    assert result.exit_code == 2
    assert "provider.config_invalid: series.m.source.table:" in result.output and "Traceback" not in result.output
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"policy": str(estate["tmp"] / "policy.yaml"), "series": {"m": {
        "dataset": MONTHLY, "source": {"files": str(estate["tmp"] / "monthly")}}}}))
    checked = CliRunner().invoke(main, ["provider", "serve", "--config", str(good), "--check"])
    assert checked.exit_code == 0 and json.loads(checked.output)["series"] == {"m": MONTHLY}


def test_cli_refuses_a_port_out_of_range_and_a_sqlite_file_that_is_not_there(estate, tmp_path):
    """`--port 70000` served on port 4464 (70000 - 65536), and `--check` of a config naming a SQLite file that did
    not exist created it (an empty database) before reporting "no such table", though the provider only reads."""
    from click.testing import CliRunner
    from cead.cli import main
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"policy": str(estate["tmp"] / "policy.yaml"), "series": {"m": {
        "dataset": MONTHLY, "source": {"files": str(estate["tmp"] / "monthly")}}}}))
    result = CliRunner().invoke(main, ["provider", "serve", "--config", str(good), "--port", "70000", "--check"])
    assert result.exit_code == 2 and "70000 is not in the range 0<=x<=65535" in result.output, result.output
    missing = tmp_path / "missing.yaml"
    missing.write_text(yaml.safe_dump({"policy": str(estate["tmp"] / "policy.yaml"), "series": {"m": {
        "dataset": MONTHLY, "source": {"database": "sqlite:///nothing.db", "table": "releases"}}}}))
    result = CliRunner().invoke(main, ["provider", "serve", "--config", str(missing), "--check"])
    assert result.exit_code == 2 and "provider.config_invalid: series.m.source.database: no SQLite database file " \
        f"{tmp_path / 'nothing.db'}; the provider reads an existing one" in result.output, result.output
    assert not (tmp_path / "nothing.db").exists()


def test_cead_provider_serve_runs_as_its_own_process(estate, tmp_path):
    """The command itself: started as a separate process, it serves and its gateway answers."""
    import subprocess
    import sys
    config = tmp_path / "provider.yaml"
    config.write_text(yaml.safe_dump({"policy": str(estate["tmp"] / "policy.yaml"), "state": str(tmp_path / "s"),
                                      "series": {"m": {"dataset": MONTHLY,
                                                       "source": {"files": str(estate["tmp"] / "monthly")}}}}))
    process = subprocess.Popen([sys.executable, "-m", "cead.cli", "provider", "serve", "--config", str(config),
                                "--port", "0"], stderr=subprocess.PIPE, text=True)
    try:
        line = process.stderr.readline()
        assert line.startswith("Serving 1 series (m) at http://127.0.0.1:"), line
        base = line.split(" at ", 1)[1].split(",", 1)[0]
        assert requests.get(base + "/healthz", timeout=30).json() == {"status": "ok"}
        denied = requests.get(base + "/series/m/releases", timeout=30)
        assert denied.status_code == 401 and denied.json()["dataset"] == MONTHLY
        assert "presentation_definition" in denied.json()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_push_that_cannot_reach_the_recipient_is_recorded_and_retried(estate, tmp_path):
    w = estate
    returns = tmp_path / "returns"
    returns.mkdir()
    (returns / "2026-09-30-q2.csv").write_text(csv_for("2026-27 Q2", 80))
    config = {**w["config"], "state": str(tmp_path / "state"), "series": {"q": {
        "dataset": QUARTERLY, "source": {"files": str(returns)},
        "push": [{"url": "https://127.0.0.1:1/ingest/housing-returns", "dataset": COLLECTION,
                  "purpose": P_STATS}]}}}
    provider = Provider(parse_config(config, w["tmp"] / "provider.yaml"), w["provider"].decider,
                        w["council_wallet"])
    first = provider.poll_once()
    assert [(d.outcome, d.reasons[0]["code"]) for d in first] == [("failed", "provider.push_failed")]
    assert "the connection was refused" in first[0].reasons[0]["message"]
    assert first[0].receipt is None
    # not final: tried again after poll_seconds (0.25 s here), then after twice as long each time (not a line in the
    # log at every poll while a recipient is down)
    assert provider.poll_once() == []
    time.sleep(0.3)
    second = provider.poll_once()
    assert [d.outcome for d in second] == ["failed"]
    time.sleep(0.3)
    assert provider.poll_once() == []                 # now waiting 0.5 s
    time.sleep(0.45)
    assert [d.outcome for d in provider.poll_once()] == ["failed"]
    assert len(provider.deliveries.records) == 3


# ---- following docs/provider.md as a gateway operator: `cead provider serve` as its own process ----------------------
# The three integrations a review found never run end to end: the push to a recipient's ingest endpoint, the event
# stream read by a real client, and a PostgreSQL table as the source, each through the command itself (its server
# forks a worker, which the in-process tests above never do), on 127.0.0.1 with real HTTPS.

WALK_COLLECTION = "https://data.gov.scot/dataset/housing-returns-walk"


def sha256(data: bytes) -> str:
    import hashlib
    return hashlib.sha256(data).hexdigest()


class Served:
    """``cead provider serve`` in its own process: its URL, and its stderr as it comes (read in a thread, so that
    the pipe never fills)."""

    def __init__(self, config: Path, tls: Path, env: dict | None = None):
        import subprocess
        import sys
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cead.cli", "provider", "serve", "--config", str(config), "--port", "0",
             "--tls-cert", str(tls / "server.pem"), "--tls-key", str(tls / "server-key.pem")],
            stderr=subprocess.PIPE, text=True, env={**os.environ, "CEAD_PASSPHRASE": PASSPHRASE.decode(),
                                                    **(env or {})})
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        line = self.wait_for("Serving ")
        self.url = line.split(" at ", 1)[1].split(",", 1)[0]

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.lines if text in line]
            if found:
                return found[0]
            assert self.process.poll() is None, "\n".join(self.lines)
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not in the provider's stderr:\n" + "\n".join(self.lines))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.reader.join(timeout=5)


@pytest.fixture(scope="module")
def walk(estate, tmp_path_factory):
    """A recipient's ingest endpoint for one more collection (behind its own gateway, with a receipt key), the
    council approved to push to it, and `cead dev-ca`'s certificate for the command's own HTTPS. Every CA is in
    the council node's network.ca_bundle, as docs/quickstart.md sets it up."""
    import subprocess
    import sys
    w = estate
    tmp = tmp_path_factory.mktemp("walk")
    subprocess.run([sys.executable, "-m", "cead.cli", "dev-ca", "--out", str(tmp / "dev-ca")], check=True,
                   capture_output=True)
    approval = issuing.issue(w["sg"], _approval(w["sg"].did, w["council"].did, [WALK_COLLECTION]))
    assert w["council_wallet"].import_credential(approval.credential).ok
    key = jwk.JWK.generate(kty="OKP", crv="Ed25519")
    (tmp / "receipt.jwk").write_text(key.export_private())
    policy = parse_policy({"controllers": [{"dataset": WALK_COLLECTION, "controller": w["sg"].did}],
                           "network": {"allow_private": True, "ca_bundle": w["bundle"]},
                           "caches": {"status_lists": {"size": 16, "ttl": 0}},
                           "receipts": {"key": str(tmp / "receipt.jwk")}})
    with https_server(ingest_app(Decider(policy), {"walk": WALK_COLLECTION}, tmp / "collections")) as (base, ca):
        with open(w["bundle"], "a") as bundle:       # the node's ca_bundle file: the dev CA and the recipient's
            bundle.write(Path(ca).read_text() + (tmp / "dev-ca" / "ca.pem").read_text())
        yield {**w, "walk_tmp": tmp, "ingest": base + "/ingest/walk", "store": tmp / "collections" / "walk",
               "walk_receipt_public": PublicKey.from_jwk(key.export_public(as_dict=True)), "tls": tmp / "dev-ca"}


def events_of(stream, deadline: float):
    """(event, id, data) of each server-sent event, as it arrives."""
    kind = ident = None
    for line in stream.iter_lines(chunk_size=None, decode_unicode=True):
        assert time.monotonic() < deadline, "no event in time"
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("id: "):
            ident = line[4:]
        elif line.startswith("data: "):
            yield kind, ident, json.loads(line[6:])
            kind = ident = None


def test_walk_push_and_event_stream_through_the_command(walk):
    """docs/provider.md, followed literally: the worked configuration (files, a push with `from`, no `ca_bundle`:
    the node's is used), run as `cead provider serve`. Before: the watcher thread ran in the process that holds
    the port while the forked worker served the streams, so a subscriber never heard of a new release; a push
    trusted only the configuration's ca_bundle (the node's was ignored: "Could not reach ...: SSLError" every
    second, and nothing said on stderr)."""
    w = walk
    tmp = w["walk_tmp"]
    returns = tmp / "returns"
    returns.mkdir()
    before_from = csv_for("2025-26 Q3", 70).encode()
    first = csv_for("2025-26 Q4", 120).encode() + b"Fife,2025-26 Q4,7\n"
    (returns / "2025-12-31-q3.csv").write_bytes(before_from)
    (returns / "2026-03-31-q4.csv").write_bytes(first)
    (tmp / "provider.yaml").write_text(yaml.safe_dump({
        "policy": str(w["tmp"] / "policy.yaml"), "node": str(w["tmp"] / "council"), "state": "state",
        "poll_seconds": 0.2, "stream": {"heartbeat_seconds": 0.5},
        "series": {"housing-quarterly": {
            "dataset": QUARTERLY, "title": "Quarterly housing return", "source": {"files": "returns"},
            "push": [{"url": w["ingest"], "dataset": WALK_COLLECTION, "purpose": P_STATS, "from": "2026-01-01"}]}}}))
    served = Served(tmp / "provider.yaml", w["tls"])
    try:
        # the release there at the start is pushed at once (and the one before `from` never)
        served.wait_for("push housing-quarterly 2026-03-31-q4 to")
        auth = CeadAuth(w["regulator_wallet"], dataset=QUARTERLY, purpose=P_STATS)
        stream = requests.get(served.url + "/series/housing-quarterly/events", auth=auth, stream=True,
                              verify=w["bundle"], timeout=30)
        try:
            assert stream.status_code == 200 and stream.headers["Content-Type"].startswith("text/event-stream")
            assert verify_receipt(stream.headers["Cead-Receipt"], w["provider_receipt_public"])["decision"] == "allow"
            second = csv_for("2026-27 Q1", 99).encode()
            (returns / ".2026-06-30-q1.csv.tmp").write_bytes(second)          # written, then renamed (the docs)
            os.replace(returns / ".2026-06-30-q1.csv.tmp", returns / "2026-06-30-q1.csv")
            kind, ident, data = next(e for e in events_of(stream, time.monotonic() + 20) if e[0] == "release")
            assert (kind, ident, data["id"]) == ("release", "2026-06-30-q1", "2026-06-30-q1")
            assert data["url"] == served.url + "/series/housing-quarterly/releases/2026-06-30-q1"
        finally:
            stream.close()
        fetched = requests.get(data["url"], auth=auth, verify=w["bundle"], timeout=30)
        assert fetched.status_code == 200 and sha256(fetched.content) == sha256(second)
        served.wait_for("push housing-quarterly 2026-06-30-q1 to")
    finally:
        served.stop()
    # what moved: each release whole in the recipient's store, the one before `from` not at all
    assert sorted(p.name for p in w["store"].iterdir() if not p.name.startswith(".")) == [
        "2026-03-31-q4.csv", "2026-06-30-q1.csv"]
    for name, body in (("2026-03-31-q4", first), ("2026-06-30-q1", second)):
        assert sha256((w["store"] / f"{name}.csv").read_bytes()) == sha256(body)
    # each delivery recorded with the recipient gateway's signed receipt of exactly those bytes and rows
    log = [json.loads(line) for line in (tmp / "state" / "deliveries.jsonl").read_text().splitlines()]
    assert [(d["release"], d["outcome"], d["status"], d["decision"]) for d in log] == [
        ("2026-03-31-q4", "delivered", 201, "allow"), ("2026-06-30-q1", "delivered", 201, "allow")]
    for delivery, body in zip(log, (first, second)):
        claims = verify_receipt(delivery["receipt"], w["walk_receipt_public"])
        assert claims["decision"] == "allow" and claims["holder"] == w["council"].did
        assert claims["payload"]["direction"] == "push" and claims["payload"]["sha256"] == sha256(body)
        assert claims["payload"]["rows"] == body.count(b"\n") - 1
    # ... and the council's wallet kept its copy of each, checked against the bytes it sent
    kept = {r.token: r for r in receipt_store.listing(w["council_wallet"].engine)}
    assert all(kept[d["receipt"]].payload_check == "matches" for d in log)
    # the operator saw each push on stderr
    assert sum("delivered (HTTP 201, receipt kept)" in line for line in served.lines) == 2, served.lines


def test_walk_push_targets_follow_the_node_s_network_rules(walk, tmp_path, monkeypatch):
    """A push goes through the node's fetcher: https only, no loopback or private address unless the node's
    network.allow_private says so, the connected peer checked on the socket, before the presentation or the release
    is sent. Before, any URL the configuration named was POSTed to with a plain session (127.0.0.1 included, whatever
    the node's rules), and a certificate failure said only "SSLError"."""
    from click.testing import CliRunner
    from cead.cli import main
    from verifier.http import Fetcher
    w = walk
    returns = tmp_path / "returns"
    returns.mkdir()
    (returns / "2026-09-30-q2.csv").write_text(csv_for("2026-27 Q2", 80))
    # a node with production rules (no private addresses): the command refuses to start, naming the target, the
    # address and the setting
    strict, _ = Node.init(tmp_path / "strict", "Strict Council", PASSPHRASE, domain="council.example",
                          network={"ca_bundle": w["bundle"]})
    config = {"policy": str(w["tmp"] / "policy.yaml"), "node": str(strict.home), "state": str(tmp_path / "state"),
              "series": {"q": {"dataset": QUARTERLY, "source": {"files": str(returns)},
                               "push": [{"url": w["ingest"], "dataset": WALK_COLLECTION}]}}}
    (tmp_path / "provider.yaml").write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(main, ["provider", "serve", "--config", str(tmp_path / "provider.yaml"), "--check"],
                                env={"CEAD_PASSPHRASE": PASSPHRASE.decode()})
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert f"provider.config_invalid: series.q.push[0].url: {w['ingest']} is at 127.0.0.1" in result.output
    assert f"network.allow_private: true in {strict.home / 'config.yaml'}" in result.output
    # plain http is refused in the configuration (the presentation and the release never go in clear)
    with pytest.raises(CeadError) as err:
        parse_config({**config, "series": {"q": {**config["series"]["q"], "push": [
            {"url": w["ingest"].replace("https://", "http://"), "dataset": WALK_COLLECTION}]}}}, tmp_path / "p.yaml")
    assert err.value.detail["key"] == "series.q.push[0].url"

    received: list = []

    def recorder(environ, start_response):
        received.append(environ["PATH_INFO"])
        start_response("201 Created", [("Content-Type", "application/json")])
        return [b"{}"]

    council = parse_config({**config, "node": str(w["tmp"] / "council")}, tmp_path / "provider.yaml")
    with https_server(recorder) as (base, ca):
        council.series["q"].push[0].url = base + "/ingest/walk"
        # a name that resolved to a public address when checked and connects to 127.0.0.1 (DNS rebinding): the
        # connected peer is refused before anything is sent
        monkeypatch.setattr(Fetcher, "_check_addresses", lambda self, url, host, port: None)
        provider = Provider(council, w["provider"].decider, w["council_wallet"],
                            guard=Fetcher(ca_bundle=ca, timeout=10))
        [refused] = provider.poll_once()
        assert refused.outcome == "failed" and refused.reasons[0]["code"] == "provider.push_failed"
        assert refused.reasons[0]["detail"] == {"cause": "http.address_refused", "address": "127.0.0.1"}
        assert "127.0.0.1" in refused.reasons[0]["message"] and "network.allow_private" in refused.reasons[0]["message"]
        assert received == []
        monkeypatch.undo()
        # a certificate the node does not trust: said as such, with the setting that fixes it
        provider = Provider(council, w["provider"].decider, w["council_wallet"])
        [untrusted] = provider.poll_once()
        assert untrusted.outcome == "failed" and untrusted.reasons[0]["detail"]["cause"] == "http.certificate_untrusted"
        assert "is not trusted" in untrusted.reasons[0]["message"] and "ca_bundle" in untrusted.reasons[0]["message"]
        assert received == []
        # the node's rules allow 127.0.0.1 and the configuration names the recipient's CA: it goes
        council.ca_bundle = ca
        [sent] = Provider(council, w["provider"].decider, w["council_wallet"]).poll_once()
        assert sent.outcome == "delivered" and received == ["/ingest/walk"]


@pytest.mark.skipif(not os.environ.get("CEAD_TEST_DATABASE_URL"),
                    reason="CEAD_TEST_DATABASE_URL is not set: no PostgreSQL to serve a release table from")
def test_walk_a_postgresql_table_served_and_streamed_through_the_command(walk, tmp_path):
    """The database source of docs/provider.md on a real PostgreSQL, through the command: listed, fetched byte for
    byte, and a row inserted later announced on the stream. Before: a row whose body was NULL was listed and its
    fetch answered 500 with a traceback; a row whose id could not be a URL segment was listed with a URL that
    answered 404; a source error named neither the series nor the key, and showed the driver's URL."""
    import sqlalchemy as sa
    w = walk
    url = os.environ["CEAD_TEST_DATABASE_URL"]
    schema = f"walk_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    bodies = {f"2026-0{m}": csv_for(f"2026-0{m}", 40 + m).encode() for m in (1, 2, 3)}
    insert = sa.text(f'INSERT INTO "{schema}".releases VALUES (:id, :at, \'text/csv\', :body)')
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        conn.execute(sa.text(f'CREATE TABLE "{schema}".releases (release_id text PRIMARY KEY, issued timestamptz, '
                             'media_type text, body bytea)'))
        for m, (rid, body) in enumerate(bodies.items(), start=1):
            conn.execute(insert, {"id": rid, "at": f"2026-0{m}-28T09:00:00Z", "body": body})
        conn.execute(insert, {"id": "2026-04", "at": "2026-04-28T09:00:00Z", "body": None})   # not yet written
        conn.execute(insert, {"id": "2026/05 final", "at": "2026-05-28T09:00:00Z", "body": b"a\n1\n"})
    source = {"database": url, "schema": schema, "table": "releases",
              "columns": {"id": "release_id", "issued": "issued", "media_type": "media_type", "body": "body"}}
    config = {"policy": str(w["tmp"] / "policy.yaml"), "state": str(tmp_path / "state"), "poll_seconds": 0.2,
              "stream": {"heartbeat_seconds": 0.5},
              "series": {"monthly": {"dataset": MONTHLY_DB, "source": source}}}
    try:
        from click.testing import CliRunner
        from cead.cli import main
        # a table that is not there: one line naming the series, the table and the database, no traceback
        (tmp_path / "wrong.yaml").write_text(yaml.safe_dump({**config, "series": {"monthly": {
            "dataset": MONTHLY_DB, "source": {**source, "table": "release"}}}}))
        wrong = CliRunner().invoke(main, ["provider", "serve", "--config", str(tmp_path / "wrong.yaml"), "--check"])
        assert wrong.exit_code == 2 and "Traceback" not in wrong.output
        shown = sa.engine.make_url(url).render_as_string(hide_password=True)
        assert f"provider.source_unavailable: series.monthly.source: the release table {schema}.release at " \
               f"{shown} cannot be read: relation " in wrong.output, wrong.output
        # a password in the URL is never shown (docs: give it in PGPASSWORD or ~/.pgpass)
        (tmp_path / "secret.yaml").write_text(yaml.safe_dump({**config, "series": {"monthly": {
            "dataset": MONTHLY_DB, "source": {**source, "database": "postgresql://cead:s3cret@127.0.0.1:1/test"}}}}))
        secret = CliRunner().invoke(main, ["provider", "serve", "--config", str(tmp_path / "secret.yaml"), "--check"])
        assert secret.exit_code == 2 and "cead:***@127.0.0.1:1/test" in secret.output
        assert "s3cret" not in secret.output

        (tmp_path / "provider.yaml").write_text(yaml.safe_dump(config))
        served = Served(tmp_path / "provider.yaml", w["tls"])
        try:
            served.wait_for("row '2026/05 final' of")
            auth = CeadAuth(w["regulator_wallet"], dataset=MONTHLY_DB, purpose=P_STATS)
            listed = requests.get(served.url + "/series/monthly/releases", auth=auth, verify=w["bundle"], timeout=30)
            assert listed.status_code == 200
            assert [r["id"] for r in listed.json()["releases"]] == list(bodies)     # no NULL body, no bad id
            for release in listed.json()["releases"]:
                got = requests.get(release["url"], auth=auth, verify=w["bundle"], timeout=30)
                assert got.status_code == 200 and got.headers["Content-Type"].startswith("text/csv")
                assert sha256(got.content) == sha256(bodies[release["id"]])
            stream = requests.get(served.url + "/series/monthly/events", auth=auth, stream=True, verify=w["bundle"],
                                  timeout=30)
            try:
                assert stream.status_code == 200
                new = csv_for("2026-06", 61).encode()
                with engine.begin() as conn:
                    conn.execute(insert, {"id": "2026-06", "at": "2026-06-28T09:00:00Z", "body": new})
                    conn.execute(sa.text(f'UPDATE "{schema}".releases SET body = :b WHERE release_id = \'2026-04\''),
                                 {"b": csv_for("2026-04", 44).encode()})     # its body written: released now
                events = events_of(stream, time.monotonic() + 20)
                announced = {next(e for e in events if e[0] == "release")[1] for _ in range(2)}
                assert announced == {"2026-04", "2026-06"}
            finally:
                stream.close()
            got = requests.get(served.url + "/series/monthly/releases/2026-06", auth=auth, verify=w["bundle"],
                               timeout=30)
            assert got.status_code == 200 and sha256(got.content) == sha256(new)
            # the table goes away: the client is told the source cannot be read (not where the database is); the
            # operator is told which table, where and why, once (not at every poll), and when it is back
            with engine.begin() as conn:
                conn.execute(sa.text(f'ALTER TABLE "{schema}".releases RENAME TO gone'))
            served.wait_for("series monthly: the release table")
            down = requests.get(served.url + "/series/monthly/releases", auth=auth, verify=w["bundle"], timeout=30)
            assert down.status_code == 503 and down.headers["Retry-After"]
            assert down.json()["problems"][0]["code"] == "provider.source_unavailable"
            assert schema not in down.text and shown not in down.text
            time.sleep(1.2)                                   # six polls
            said = [line for line in served.lines if f"the release table {schema}.releases at" in line]
            assert len(said) == 2, said                       # the watcher's once, and the request's
            with engine.begin() as conn:
                conn.execute(sa.text(f'ALTER TABLE "{schema}".gone RENAME TO releases'))
            served.wait_for("series monthly: its source can be read again")
        finally:
            served.stop()
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def test_walk_a_stop_ends_the_event_streams_at_once(walk, tmp_path):
    """SIGTERM to `cead provider serve` with a subscriber on the event stream (docs/deploy.md, "Stopping"): the
    stream is ended at once, its last event `end` with the reason, its connection closed cleanly (the client sees
    the stream's end and reconnects, to another provider or to this one restarted, after the stream's `retry`), and
    the server exits with status 0 in well under a second. Before: the stream went on sending heartbeats until
    granian killed the worker 30 s into the stop (exit in 30.0 s), and the client saw its connection cut."""
    from served_issuer import sigterm_measured
    w = walk
    (tmp_path / "returns").mkdir()
    (tmp_path / "returns" / "2026-03-31-q4.csv").write_text(csv_for("2025-26 Q4", 50))
    (tmp_path / "provider.yaml").write_text(yaml.safe_dump({
        "policy": str(w["tmp"] / "policy.yaml"), "state": str(tmp_path / "state"), "poll_seconds": 0.2,
        "stream": {"heartbeat_seconds": 0.5, "max_seconds": 300},
        "series": {"housing-quarterly": {"dataset": QUARTERLY, "source": {"files": str(tmp_path / "returns")}}}}))
    served = Served(tmp_path / "provider.yaml", w["tls"])
    try:
        auth = CeadAuth(w["regulator_wallet"], dataset=QUARTERLY, purpose=P_STATS)
        stream = requests.get(served.url + "/series/housing-quarterly/events", auth=auth, stream=True,
                              verify=w["bundle"], timeout=30)
        assert stream.status_code == 200
        lines = stream.iter_lines(chunk_size=None, decode_unicode=True)
        assert next(lines) == "retry: 3000"
        assert next(line for line in lines if line) == ": heartbeat"        # the stream is open and waiting
        seen: list[str] = []

        def read_to_the_end() -> None:
            try:
                seen.extend(lines)
                seen.append("<closed>")
            except requests.RequestException as exc:
                seen.append(f"<cut: {type(exc).__name__}>")
        reader = threading.Thread(target=read_to_the_end, daemon=True)
        reader.start()
        status, took, _cpu = sigterm_measured(served.process, within=40)
        reader.join(timeout=5)
        stream.close()
        print(f"stop with a subscriber connected: exit {status} in {took:.2f} s; the stream's tail: {seen[-4:]}")
        assert status == 0 and took < 2.0, (status, took, served.lines[-10:])
        assert seen[-1] == "<closed>", seen[-4:]                              # ended cleanly, not cut
        ends = [i for i, line in enumerate(seen) if line == "event: end"]
        assert ends and json.loads(seen[ends[-1] + 1][len("data: "):]) == {"reason": "server stopping"}, seen[-6:]
    finally:
        if served.process.poll() is None:
            served.process.kill()
        served.process.wait(timeout=30)
        served.reader.join(timeout=5)
