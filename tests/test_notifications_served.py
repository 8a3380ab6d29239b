"""Notifications delivered by `cead issuer serve` run as an operator runs it, in its own process (granian's main
process and a forked worker), to a real HTTPS receiver on 127.0.0.1, for events caused through the served VC-API
and with `cead revoke` / `cead suspend`: each message arrives, signed, within a bounded time and exactly once, also
when `cead notifications send` runs beside the server (a cron job) and when the node is stopped (SIGTERM) with a
message being sent and another one due."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
import trustme
import yaml

from cead.processes import free_port, python_argv
from helpers_https import https_server
from issuer import notifications
from issuer.node import Node
from issuer_fixtures import PASS, certification
from served_issuer import ServedIssuer
from verifier.did import Resolver
from verifier.http import Fetcher

ENV = {**os.environ, "CEAD_PASSPHRASE": PASS.decode()}   # PYTHONPATH too, so the processes run this tree
INTERVAL = 0.5          # config.yaml notifications_interval: the served node looks for due messages this often
ARRIVES_WITHIN = 5.0    # seconds from an event to its message at the receiver (ten times the interval)


class Receiver:
    """A webhook receiver: records each call (its Cead-Event-Id, headers and body) and answers 204, after
    ``delay`` seconds, or once ``release`` is set while ``holding``."""

    def __init__(self):
        self.calls, self.lock = [], threading.Lock()
        self.delay, self.holding, self.release = 0.0, False, threading.Event()

    def __call__(self, environ, start_response):
        from werkzeug.wrappers import Request, Response
        req = Request(environ)
        with self.lock:
            self.calls.append((req.headers.get("Cead-Event-Id"), dict(req.headers), req.get_data()))
            holding = self.holding
        if holding:
            self.release.wait(8)        # less than the node's 10 s bound on a POST
        time.sleep(self.delay)
        return Response(status=204)(environ, start_response)

    def ids(self) -> list[str]:
        with self.lock:
            return [ident for ident, _, _ in self.calls]

    def wait_for(self, count: int, within: float = ARRIVES_WITHIN) -> float:
        """Seconds until ``count`` calls have arrived; AssertionError after ``within``."""
        start = time.monotonic()
        while time.monotonic() - start < within:
            if len(self.ids()) >= count:
                return time.monotonic() - start
            time.sleep(0.02)
        raise AssertionError(f"{len(self.ids())} call(s) after {within} s, {count} expected")


def cead(*args) -> str:
    done = subprocess.run(python_argv(*[str(a) for a in args]), env=ENV, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


class Served(ServedIssuer):
    """`cead issuer serve` of the world's node in its own process, over TLS, until ``stop`` (SIGTERM)."""

    def __init__(self, world: dict):
        super().__init__(world["home"], world["port"], world["tls"] / "cert.pem", world["tls"] / "key.pem",
                         world["ca"], world["tmp"] / "serve.log", ENV)

    def post(self, path: str, token: str, body: dict) -> dict:
        answer = requests.post(self.base + path, json=body, headers={"Authorization": f"Bearer {token}"},
                               verify=self.ca, timeout=30)
        assert answer.status_code in (200, 201), answer.text
        return answer.json()

    def issue(self, token: str, did: str) -> str:
        return self.post("/credentials/issue", token, {"credential": certification(did), "options": {
            "credentialStatus": {"type": "BitstringStatusListEntry", "statusPurpose": ["revocation", "suspension"]}}}
        )["verifiableCredential"]["id"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A receiver on HTTPS; a node made with `cead init` (its network rules trusting the receiver's CA and allowing
    127.0.0.1), a webhook subscription in its config.yaml as docs/notifications.md shows, and an API token."""
    tmp = tmp_path_factory.mktemp("served-notifications")
    receiver = Receiver()
    with https_server(receiver) as (hooks, hook_ca):
        tls = tmp / "tls"
        tls.mkdir()
        ca = trustme.CA()
        cert = ca.issue_cert("localhost", "127.0.0.1")
        cert.private_key_pem.write_to_path(str(tls / "key.pem"))
        cert.cert_chain_pems[0].write_to_path(str(tls / "cert.pem"))
        ca.cert_pem.write_to_path(str(tls / "ca.pem"))
        bundle = tmp / "bundle.pem"
        bundle.write_text((tls / "ca.pem").read_text() + Path(hook_ca).read_text())
        home, port = tmp / "node", free_port()
        cead("init", "--name", "Fife Council", "--home", home, "--domain", f"localhost:{port}", "--public-url",
             f"https://localhost:{port}", "--ca-bundle", bundle, "--allow-private-addresses")
        config = yaml.safe_load((home / "config.yaml").read_text())
        config["notifications"] = [{"name": "service-desk", "url": hooks + "/hooks/cead", "kind": "webhook",
                                    "events": ["credential.revoked", "credential.suspended"]}]
        config["notifications_interval"] = INTERVAL
        (home / "config.yaml").write_text(yaml.safe_dump(config))
        token = cead("token", "create", "--home", home, "--name", "service-desk", "--scope",
                     "issue:certification,status:change").strip()
        yield {"tmp": tmp, "home": home, "port": port, "tls": tls, "bundle": str(bundle), "token": token,
               "receiver": receiver, "base": f"https://localhost:{port}", "ca": str(tls / "ca.pem"),
               "did": Node.open(home).did}     # (no database opened)


def _outbox(world) -> dict:
    node = Node.open(world["home"])
    try:
        return {n.id: n for n in notifications.outbox(node)}
    finally:
        node.engine.dispose()


def test_served_node_delivers_a_signed_event_once(world):
    """A revocation through the served VC-API reaches the receiver within the bound, signed by the node's key as its
    served DID document says, and only once: the receiver answers slowly, so a second dispatcher (one in each
    process) would have sent it again meanwhile."""
    receiver = world["receiver"]
    receiver.delay = 1.5
    served = Served(world)
    try:
        cid = served.issue(world["token"], world["did"])
        before = len(receiver.ids())
        served.post("/credentials/status", world["token"], {"credentialId": cid, "credentialStatus": {
            "type": "BitstringStatusListEntry", "statusPurpose": "revocation"}, "status": True})
        assert receiver.wait_for(before + 1) < ARRIVES_WITHIN
        time.sleep(1.5 + 4 * INTERVAL)                              # answered, and four more looks at the outbox
        assert len(receiver.ids()) == before + 1, receiver.ids()
        ident, headers, body = receiver.calls[-1]
        event = json.loads(body)
        assert (event["type"], event["data"]["credential"], event["id"]) == ("credential.revoked", cid, ident)
        fetcher = Fetcher(allow_private=True, ca_bundle=world["bundle"])
        try:
            claims = notifications.verify_signature(headers[notifications.SIGNATURE_HEADER], body, Resolver(fetcher))
        finally:
            fetcher.close()
        assert claims["iss"] == world["did"] and claims["jti"] == ident
        assert _outbox(world)[ident].delivered_at and _outbox(world)[ident].attempts == 1
    finally:
        receiver.delay = 0.0
        assert served.stop() == 0, served.log_path.read_text()


def test_a_stop_loses_nothing_and_a_cron_send_beside_the_server_sends_nothing_twice(world):
    """`cead revoke` while the node serves: its message is being sent (the receiver holds its answer) when
    `cead notifications send` runs (a cron job) and when the node is stopped with SIGTERM. The cron job does not
    send it again, the stop lets the send finish and records it; `cead suspend` while the node is stopped leaves a
    message due, which the next start delivers at once. Each message arrives exactly once."""
    receiver = world["receiver"]
    served = Served(world)
    try:
        revoked, suspended = (served.issue(world["token"], world["did"]) for _ in range(2))
        before = len(receiver.ids())
        receiver.holding = True
        cead("revoke", "--home", world["home"], revoked, "--reason", "test")
        receiver.wait_for(before + 1)                                # the served node is sending it
        sent = cead("notifications", "send", "--home", world["home"])
        assert len(receiver.ids()) == before + 1, (receiver.ids(), sent)   # not sent again by the cron job
        served.proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)                                              # stopping, the message still in flight
        receiver.release.set()
        assert served.stop() == 0, served.log_path.read_text()
    finally:
        receiver.release.set()
        served.stop()
    (in_flight,) = receiver.ids()[before:]
    row = _outbox(world)[in_flight]
    assert row.delivered_at and row.attempts == 1, (row, served.log_path.read_text())   # recorded before the exit

    cead("suspend", "--home", world["home"], suspended)             # while the node is stopped
    (due,) = [n for n in _outbox(world).values() if not n.delivered_at]
    assert due.event == "credential.suspended" and due.attempts == 0
    started = time.monotonic()
    served = Served(world)
    try:
        receiver.wait_for(before + 2, within=ARRIVES_WITHIN + (time.monotonic() - started))
        time.sleep(4 * INTERVAL)
    finally:
        assert served.stop() == 0, served.log_path.read_text()
    assert receiver.ids()[before:] == [in_flight, due.id]           # each once, the first not again
    assert json.loads(receiver.calls[-1][2])["data"]["credential"] == suspended
    assert all(n.delivered_at and n.attempts == 1 for n in _outbox(world).values())
