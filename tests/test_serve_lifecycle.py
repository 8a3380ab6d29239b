"""`cead issuer serve` stopped and crashed as an operator meets it: the real server (granian, its main process and
a forked worker) over TLS on 127.0.0.1, a node made with `cead init` whose config.yaml sends notifications to a
webhook and submits checkpoints to two witnesses (a recording HTTPS peer on 127.0.0.1), real SQLite.

- SIGTERM with an idle keep-alive client connected (a gateway's or a browser's pooled connection): the node stops
  at once (about 0.1 s), exit status 0, the idle connection closed.
- SIGTERM with a request in flight (a chunked upload still arriving): the request is answered and what it did is
  stored, no new connection is taken meanwhile, and the node then stops at once.
- The worker killed (SIGKILL, as the OOM killer does) while credentials are being issued, a notification is being
  sent and a checkpoint submitted: the server forks a new worker that answers; every credential whose issuance was
  acknowledged is in the database and in the log; the work cut short is neither done nor given up (the message
  stays in the outbox, the witness stays claimed, both due again when the claim runs out); the new worker's
  background loops run (a new notification goes out, once; a new checkpoint reaches the other witness); a SIGTERM
  afterwards still stops the node cleanly.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import sqlite3
import ssl
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone
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
from served_issuer import ServedIssuer, sigterm_measured
from verifier.tlog import note as notes
from verifier.tlog.checkpoint import Checkpoint

ENV = {**os.environ, "CEAD_PASSPHRASE": PASS.decode()}   # PYTHONPATH too, so the processes run this tree
INTERVAL = 0.5          # config.yaml notifications_interval and witness_interval
# A stop with nothing in flight: 0.07-0.14 s and 0.07-0.08 s of CPU measured (before gc.freeze in serve_wsgi and
# the loops woken at the main thread's end: 0.4-2.4 s, of which 0.40-0.44 s of CPU, the interpreter's last garbage
# collections over the whole app in the main process, and up to 0.2 s for the background loops' next look). The
# seconds leave room for a loaded machine and still catch any waiting (granian's kill after 30 s, a linger); the CPU,
# which load does not stretch, catches the work coming back.
STOPS_WITHIN = 2.0      # seconds from SIGTERM (or from the last answer) to the exit
STOP_CPU = 0.2          # CPU seconds of the server's processes from SIGTERM to the exit
ARRIVES_WITHIN = 10.0   # seconds from an event to its message (or a checkpoint to the witness), after a respawn


class Peer:
    """The node's webhook receiver and two witnesses, on HTTPS: records each notification (its Cead-Event-Id) and
    the size of each checkpoint submitted to each witness (``a``, ``b``), and refuses the checkpoint (404, as a
    witness not watching the log does). While ``holding``, a notification and a submission to witness ``a`` are
    answered only once ``release`` is set."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events: list[str] = []
        self.sizes: dict[str, list[int]] = {"a": [], "b": []}
        self.holding, self.release = False, threading.Event()

    def __call__(self, environ, start_response):
        from werkzeug.wrappers import Request, Response
        req = Request(environ)
        if req.path in ("/witness-a/add-checkpoint", "/witness-b/add-checkpoint"):
            witness = req.path[len("/witness-")]
            note = req.get_data(as_text=True).split("\n\n", 1)[1]     # old N, no proof, then the checkpoint
            with self.lock:
                self.sizes[witness].append(Checkpoint.parse(notes.split(note)[0]).size)
                holding = self.holding and witness == "a"
            if holding:
                self.release.wait(8)      # less than the node's 10 s bound on a POST
            return Response("not watching this log", status=404)(environ, start_response)
        with self.lock:
            self.events.append(req.headers.get("Cead-Event-Id"))
            holding = self.holding
        if holding:
            self.release.wait(8)
        return Response(status=204)(environ, start_response)

    def wait(self, what, within: float = ARRIVES_WITHIN) -> None:
        deadline = time.monotonic() + within
        while not what():
            assert time.monotonic() < deadline, (self.events, self.sizes)
            time.sleep(0.05)


def cead(*args) -> str:
    done = subprocess.run(python_argv(*[str(a) for a in args]), env=ENV, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve-lifecycle")
    peer = Peer()
    with https_server(peer) as (peer_url, peer_ca):
        tls = tmp / "tls"
        tls.mkdir()
        ca = trustme.CA()
        cert = ca.issue_cert("localhost", "127.0.0.1")
        cert.private_key_pem.write_to_path(str(tls / "key.pem"))
        cert.cert_chain_pems[0].write_to_path(str(tls / "cert.pem"))
        ca.cert_pem.write_to_path(str(tls / "ca.pem"))
        bundle = tmp / "bundle.pem"
        bundle.write_text((tls / "ca.pem").read_text() + Path(peer_ca).read_text())
        home, port = tmp / "node", free_port()
        cead("init", "--name", "Fife Council", "--home", home, "--domain", f"localhost:{port}", "--public-url",
             f"https://localhost:{port}", "--ca-bundle", bundle, "--allow-private-addresses")
        config = yaml.safe_load((home / "config.yaml").read_text())
        config.update(notifications=[{"name": "service-desk", "url": peer_url + "/hooks/cead", "kind": "webhook",
                                      "events": ["credential.revoked"]}],
                      notifications_interval=INTERVAL, witnesses=[peer_url + "/witness-a", peer_url + "/witness-b"],
                      witness_interval=INTERVAL)
        (home / "config.yaml").write_text(yaml.safe_dump(config))
        token = cead("token", "create", "--home", home, "--name", "service-desk", "--scope",
                     "issue:certification,status:change").strip()
        yield {"tmp": tmp, "home": home, "port": port, "tls": tls, "token": token, "peer": peer, "peer_url": peer_url,
               "did": Node.open(home).did, "ca": str(tls / "ca.pem")}


class Served(ServedIssuer):
    def __init__(self, world: dict, log_name: str):
        super().__init__(world["home"], world["port"], world["tls"] / "cert.pem", world["tls"] / "key.pem",
                         world["ca"], world["tmp"] / log_name, ENV)
        self.world = world

    def post(self, path: str, body: dict, timeout: float = 30) -> requests.Response:
        return requests.post(self.base + path, json=body, verify=self.ca, timeout=timeout,
                             headers={"Authorization": f"Bearer {self.world['token']}"})

    def issue(self, timeout: float = 30) -> str:
        answer = self.post("/credentials/issue", issue_body(self.world["did"]), timeout)
        assert answer.status_code == 201, answer.text
        return answer.json()["verifiableCredential"]["id"]

    def revoke(self, credential_id: str) -> None:
        answer = self.post("/credentials/status", {"credentialId": credential_id, "credentialStatus": {
            "type": "BitstringStatusListEntry", "statusPurpose": "revocation"}, "status": True})
        assert answer.status_code == 200, answer.text

    def log_size(self) -> int:
        return Checkpoint.parse(notes.split(self.get("/log/checkpoint"))[0]).size

    def stop_timed(self) -> tuple[int, float, float]:
        """SIGTERM: the exit status, the seconds it took, the CPU seconds it cost (``sigterm_measured``)."""
        try:
            return sigterm_measured(self.proc)
        finally:
            self.stop()


def issue_body(did: str) -> dict:
    return {"credential": certification(did), "options": {"credentialStatus": {
        "type": "BitstringStatusListEntry", "statusPurpose": ["revocation", "suspension"]}}}


def tls_context(world) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=world["ca"])


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True


def stored(world) -> tuple[set[str], list]:
    """The ids of the credentials in the node's register, and its outbox (read from the database directly)."""
    from sqlmodel import select

    from issuer import db
    node = Node.open(world["home"])
    try:
        with node.session() as s:
            ids = set(s.exec(select(db.IssuedCredential.id)))
        return ids, notifications.outbox(node, limit=1000)
    finally:
        node.engine.dispose()


def test_an_idle_keep_alive_client_does_not_hold_up_the_stop(world):
    served = Served(world, "idle.log")
    try:
        conn = http.client.HTTPSConnection("localhost", world["port"], context=tls_context(world), timeout=10)
        for _ in range(2):               # two requests on one connection: it is kept alive, and now idle
            conn.request("GET", "/.well-known/did.json")
            answer = conn.getresponse()
            assert answer.status == 200 and json.loads(answer.read())["id"] == world["did"]
        kept = conn.sock
        assert kept is not None
        time.sleep(0.5)
        code, took, cpu = served.stop_timed()
        print(f"stopped in {took:.3f} s, {cpu:.3f} s of CPU")
        assert code == 0, served.log_path.read_text()
        assert took < STOPS_WITHIN, f"{took:.2f} s to stop with an idle keep-alive client"
        assert cpu < STOP_CPU, f"{cpu:.2f} s of CPU to stop"
        kept.settimeout(5)
        assert kept.recv(1) == b""                       # the server closed the idle connection
        assert "refused to gracefully stop" not in served.log_path.read_text()
    finally:
        served.stop()


def test_a_request_in_flight_is_answered_and_stored_before_the_stop(world):
    """A chunked POST /credentials/issue whose body is still arriving when SIGTERM comes: the node waits for it,
    takes no new connection meanwhile, answers it (201), has stored the credential, and then stops at once."""
    served = Served(world, "in-flight.log")
    try:
        body = json.dumps(issue_body(world["did"])).encode()
        half = len(body) // 2
        raw = tls_context(world).wrap_socket(socket.create_connection(("127.0.0.1", world["port"]), timeout=30),
                                             server_hostname="localhost")
        raw.sendall(b"POST /credentials/issue HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                    b"Authorization: Bearer " + world["token"].encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + b"%x\r\n" % half + body[:half] + b"\r\n")
        time.sleep(0.5)                                  # the request is in flight, its body half sent
        served.proc.send_signal(signal.SIGTERM)
        time.sleep(1.5)
        assert served.proc.poll() is None, served.log_path.read_text()    # still waiting for the request
        assert refused(world["port"])                   # but taking no new connection
        raw.sendall(b"%x\r\n" % (len(body) - half) + body[half:] + b"\r\n0\r\n\r\n")
        answer = http.client.HTTPResponse(raw)
        answer.begin()
        assert answer.status == 201, answer.read()
        issued = json.loads(answer.read())["verifiableCredential"]["id"]
        answered = time.monotonic()
        assert served.proc.wait(40) == 0, served.log_path.read_text()
        after = time.monotonic() - answered
        print(f"stopped {after:.3f} s after answering")
        assert after < STOPS_WITHIN, f"{after:.2f} s to stop after the last answer"
        assert issued in stored(world)[0]
    finally:
        served.stop()


def claims(world) -> dict[str, str | None]:
    """Each witness URL's claim (until when a submitter holds it), read from the node's database directly."""
    with sqlite3.connect(world["home"] / "node.db") as conn:
        return dict(conn.execute("SELECT url, claimed_until FROM tlog_submission"))


def until(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_a_killed_worker_is_forked_again_and_nothing_stored_is_lost(world):
    peer, witness_a = world["peer"], world["peer_url"] + "/witness-a"
    served = Served(world, "respawn.log")
    try:
        first, second = served.issue(), served.issue()
        peer.release.clear()
        # work in hand when the worker dies: a notification being sent, a checkpoint being submitted to witness a
        # (both peers hold their answers)
        peer.holding = True
        before, submitted = len(peer.events), len(peer.sizes["a"])
        served.revoke(second)
        peer.wait(lambda: len(peer.events) == before + 1 and len(peer.sizes["a"]) > submitted)
        (cut_short,) = peer.events[before:]

        # credentials being issued, each on a new connection, when the worker is killed
        acknowledged, failures, issuing = [], [], threading.Event()

        def keep_issuing():
            while not issuing.is_set():
                try:
                    acknowledged.append(served.issue(timeout=10))
                except (requests.ConnectionError, requests.Timeout, AssertionError) as exc:
                    failures.append(exc)
                    time.sleep(0.05)

        issuer_thread = threading.Thread(target=keep_issuing)
        issuer_thread.start()
        time.sleep(1.0)
        (worker,) = served.workers()
        os.kill(worker, signal.SIGKILL)
        killed, killed_at = time.monotonic(), datetime.now(timezone.utc)
        peer.holding = False
        peer.release.set()
        deadline = killed + 30
        while True:                                      # a new worker, answering
            new = served.workers() - {worker}
            if new:
                try:
                    requests.get(served.base + "/.well-known/did.json", verify=served.ca, timeout=5)
                    break
                except requests.ConnectionError:
                    pass
            assert time.monotonic() < deadline and served.proc.poll() is None, served.log_path.read_text()
            time.sleep(0.05)
        back_after = time.monotonic() - killed
        time.sleep(1.0)
        issuing.set()
        issuer_thread.join(30)
        print(f"worker {worker} killed; worker {new} answered {back_after:.2f} s later; "
              f"{len(acknowledged)} issued, {len(failures)} refused or cut meanwhile")
        assert served.workers() == new and len(new) == 1
        assert acknowledged and failures                 # some issued across the kill, some cut by it

        # nothing acknowledged is lost: in the register, and in the log
        ids, outbox = stored(world)
        assert {first, second, *acknowledged} <= ids
        assert served.log_size() >= len({first, second, *acknowledged})
        with sqlite3.connect(world["home"] / "node.db") as check:
            assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        # the work cut short is neither done nor given up: the message stays in the outbox and witness a stays
        # claimed, each due again when its claim runs out (its outcome was never recorded)
        row = next(n for n in outbox if n.id == cut_short)
        assert row.delivered_at is None and row.failed_at is None and row.attempts == 0, row
        limit = killed_at + timedelta(seconds=notifications.CLAIM_SECONDS + 1)
        assert until(row.next_attempt) <= limit, row
        held = claims(world)[witness_a]
        assert held and killed_at - timedelta(seconds=1) < until(held) <= limit, held

        # the new worker's background loops run: a new notification goes out (once), a new checkpoint reaches
        # witness b (a, still claimed by the killed worker, is left alone)
        before, submitted = len(peer.events), len(peer.sizes["a"])
        served.revoke(first)
        size = served.log_size()
        peer.wait(lambda: len(peer.events) > before and size in peer.sizes["b"])
        time.sleep(4 * INTERVAL)
        assert len(peer.events) == before + 1, peer.events[before:]
        assert len(peer.sizes["a"]) == submitted
        assert stored(world)[1][0].delivered_at       # the newest message: recorded as delivered

        code, took, cpu = served.stop_timed()
        print(f"stopped in {took:.3f} s, {cpu:.3f} s of CPU")
        assert code == 0, served.log_path.read_text()
        assert took < STOPS_WITHIN, f"{took:.2f} s to stop after a respawn"
        assert cpu < STOP_CPU, f"{cpu:.2f} s of CPU to stop"
        log = served.log_path.read_text()
        assert "Unexpected exit from worker-1" in log and "crash loop" not in log, log
    finally:
        peer.holding = False
        peer.release.set()
        served.stop()
