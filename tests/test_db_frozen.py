"""A frozen database (issue 11): PostgreSQL behind a TCP proxy on 127.0.0.1 that keeps accepting connections but
stops forwarding anything, as a frozen server or a network partition does. Every request answers 503
``db.unavailable`` with Retry-After within the configured bound, the server's threads stay bounded while clients
retry, and once the proxy heals the node serves again without a restart, with nothing lost."""
import json
import os
import select
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import sqlalchemy as sa

from issuer import db, issuing
from issuer.app import create_app
from verifier.serving import make_bounded_server

from issuer_fixtures import PASS, certification, make_node, token

pytestmark = pytest.mark.skipif(not os.environ.get("CEAD_TEST_DATABASE_URL"), reason="set CEAD_TEST_DATABASE_URL")

LIMITS = db.Limits(connect=2, statement=2, lock=1, idle_in_transaction=10, wait=1.5, pool_wait=1, pool_size=2,
                   max_overflow=2, sqlite_busy=1)
# the longest a request may take: a free connection (pool_wait), a fresh one (connect), one wait on the server
BOUND = LIMITS.pool_wait + LIMITS.connect + LIMITS.wait
MAX_THREADS = 12


class FreezableProxy:
    """A TCP proxy to PostgreSQL: forwards both ways while flowing; when frozen it accepts and holds connections
    but forwards nothing (and reads nothing), until healed."""

    def __init__(self, target):
        self.target = target
        self.flowing = threading.Event()
        self.flowing.set()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closing = False
        self.sockets = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client):
        self.sockets.append(client)
        self.flowing.wait()
        try:
            upstream = socket.create_connection(self.target)
        except OSError:
            client.close()
            return
        self.sockets.append(upstream)
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while not self.closing:
                self.flowing.wait()
                ready, _, _ = select.select([src], [], [], 0.05)
                if not ready or not self.flowing.is_set():
                    continue
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.closing = True
        self.flowing.set()
        self.listener.close()
        for s in self.sockets:
            try:
                s.close()
            except OSError:
                pass


@pytest.fixture
def frozen_world(tmp_path, monkeypatch):
    url = os.environ["CEAD_TEST_DATABASE_URL"]
    parsed = sa.engine.make_url(url)
    proxy = FreezableProxy((parsed.host or "127.0.0.1", parsed.port or 5432))
    schema = "cead_test_" + uuid.uuid4().hex[:12]
    admin = db.make_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"create schema {schema}"))
    monkeypatch.setattr(db, "LIMITS", LIMITS)
    proxied = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    sep = "&" if "?" in proxied else "?"
    node = make_node(tmp_path / "h", database_url=f"{proxied}{sep}options=-csearch_path%3D{schema}",
                     public_url="https://fife.example")
    node._passphrase = PASS
    server = make_bounded_server(create_app(node), "127.0.0.1", 0, max_threads=MAX_THREADS)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield node, proxy, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        proxy.close()
        node.engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f"drop schema {schema} cascade"))
        admin.dispose()


def test_a_frozen_database_answers_503_within_the_bound_and_recovers(frozen_world):
    node, proxy, base = frozen_world
    tok = token(node, name="t")
    headers = {"Authorization": f"Bearer {tok}"}
    issued = []

    def issue(client):
        r = client.post(f"{base}/credentials/issue", json={"credential": certification(node.did)}, headers=headers)
        if r.status_code == 201:
            issued.append(r.json()["verifiableCredential"]["id"])
        return r

    with httpx.Client(timeout=60) as client:
        for _ in range(3):
            assert issue(client).status_code == 201
        status_url = json.loads(issuing.register(node)[0].status_entries)[0]["statusListCredential"]
        status_path = "/status/" + status_url.rsplit("/", 1)[1]
        assert client.get(base + status_path).status_code == 200

    def request_threads():
        return sum("process_request_thread" in t.name for t in threading.enumerate())

    proxy.flowing.clear()                     # frozen: connections accepted, nothing forwarded
    answers, peak = [], [0]
    stop = time.monotonic() + 3 * BOUND

    def patient_client(i):
        with httpx.Client(timeout=60) as client:
            while time.monotonic() < stop:
                started = time.monotonic()
                r = issue(client) if i % 2 else client.get(base + status_path)
                answers.append((r.status_code, r.json()["error"]["code"], r.headers.get("Retry-After"),
                                time.monotonic() - started))
                peak[0] = max(peak[0], request_threads())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(patient_client, range(8)))
    assert answers
    assert {(status, code) for status, code, _, _ in answers} == {(503, "db.unavailable")}
    assert all(retry and int(retry) > 0 for _, _, retry, _ in answers)
    slowest = max(elapsed for *_, elapsed in answers)
    assert slowest < BOUND + 2, f"a request took {slowest:.1f} s; the bound is {BOUND} s"

    # impatient clients that give up after 0.3 s and retry at once: the server's threads stay bounded
    stop = time.monotonic() + 2 * BOUND

    def impatient_client(_):
        with httpx.Client(timeout=0.3) as client:
            while time.monotonic() < stop:
                try:
                    issue(client)
                except httpx.HTTPError:
                    pass
                peak[0] = max(peak[0], request_threads())

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(impatient_client, range(16)))
    assert 0 < peak[0] <= MAX_THREADS          # (16 clients retrying every 0.3 s would need about 80 without the cap)

    proxy.flowing.set()                       # healed: the same node serves again, no restart
    deadline = time.monotonic() + 10 * BOUND
    with httpx.Client(timeout=60) as client:
        while True:
            r = issue(client)
            if r.status_code == 201:
                break
            assert r.status_code == 503 and time.monotonic() < deadline
        assert client.get(base + status_path).status_code == 200
    # nothing lost: every credential answered 201 is in the register, and register and status entries agree (one
    # statement, one snapshot: a transaction the proxy held back may still commit now that it flows again)
    register = {row.id for row in issuing.register(node)}
    assert set(issued) <= register
    with node.engine.connect() as conn:
        orphans = conn.execute(sa.text(
            "select (select count(*) from issuer_status_entry e where not exists "
            "(select 1 from issuer_credential c where c.id = e.credential_id)), "
            "(select count(*) from issuer_credential c where not exists "
            "(select 1 from issuer_status_entry e where e.credential_id = c.id))")).one()
    assert tuple(orphans) == (0, 0)
