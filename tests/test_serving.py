"""`cead verifier serve` runs like production, on either server it offers (granian, the default, and gunicorn):
worker processes over TLS, header limits that admit the largest presentations and refuse larger heads, a replay
guard shared by the workers through Redis, a graceful stop on SIGTERM that lets requests in flight finish."""
from __future__ import annotations

import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time

import pytest
import requests
import trustme

from cead.processes import free_port, python_argv
from served_issuer import sigterm_measured
from test_verifier_service import authz_headers
from transfer_world import world
from verifier.binding import PRESENTATION_HEADER
from verifier.serving import MAX_HEADER_FIELD, MAX_REQUEST_HEAD, SERVERS

REPLAY = "redis://127.0.0.1:6379/12"


@pytest.fixture(scope="module", params=SERVERS)
def served(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.private_key_pem.write_to_path(str(tmp / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp / "cert.pem"))
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    with world() as w:
        (tmp / "policy.json").write_text(json.dumps(w.policy_data(
            caches={"status_lists": {"size": 64, "ttl": 300}})))
        port = free_port()
        log = open(tmp / "serve.log", "w")
        proc = subprocess.Popen(python_argv("verifier", "serve", "--policy", str(tmp / "policy.json"), "--port",
                                            str(port), "--tls-cert", str(tmp / "cert.pem"), "--tls-key",
                                            str(tmp / "key.pem"), "--workers", "2", "--threads", "4",
                                            "--replay-store", REPLAY, "--server", request.param),
                                stdout=log, stderr=subprocess.STDOUT)
        base = f"https://localhost:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(base + "/healthz", verify=str(tmp / "ca.pem"), timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    proc.kill()
                    raise AssertionError((tmp / "serve.log").read_text())
                time.sleep(0.2)
        try:
            yield w, base, str(tmp / "ca.pem"), proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
            log.close()


def test_a_presentation_of_many_credentials_fits_in_the_headers(served):
    w, base, ca, _ = served
    extra = [w.certification(w.body, w.recipient) for _ in range(40)]
    request = w.request()
    headers = authz_headers(w, request, vp=w.present(request, [*w.bundle(), *extra]))
    assert len(headers[PRESENTATION_HEADER]) > 100_000          # gunicorn's default field limit is 8190 bytes
    answer = requests.get(base + "/authz", headers=headers, verify=ca, timeout=30)
    assert answer.status_code == 200, answer.text


def test_a_header_field_of_the_largest_presentation_is_admitted_and_a_larger_head_refused(served):
    _, base, ca, _ = served
    fits = requests.get(base + "/healthz", headers={"X-Large": "a" * (MAX_HEADER_FIELD - 100)}, verify=ca,
                        timeout=30)
    assert fits.status_code == 200, fits.text
    try:
        refused = requests.get(base + "/healthz", headers={"X-Large": "a" * (2 * MAX_REQUEST_HEAD)}, verify=ca,
                               timeout=30).status_code
    except requests.ConnectionError:     # the server answered and closed while the head was still being sent
        refused = "closed"
    assert refused in (431, "closed"), refused


def test_the_workers_share_one_replay_guard(served):
    w, base, ca, _ = served
    request = w.request()
    headers = authz_headers(w, request)
    answers = [requests.get(base + "/authz", headers=headers, verify=ca, timeout=30) for _ in range(6)]
    assert answers[0].status_code == 200, answers[0].text
    assert [a.headers["Cead-Decision-Reasons"] for a in answers[1:]] == ["presentation.replayed"] * 5


def _children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return {int(c) for c in f.read().split()}


def test_a_worker_that_dies_is_replaced(served):
    *_, base, ca, proc = served
    workers = _children(proc.pid)
    assert len(workers) == 2, workers
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while not (len(_children(proc.pid)) == 2 and victim not in _children(proc.pid)):
        assert time.monotonic() < deadline, _children(proc.pid)
        time.sleep(0.2)
    assert requests.get(base + "/healthz", verify=ca, timeout=30).status_code == 200
    assert proc.poll() is None


def test_sigterm_stops_the_server_gracefully(served):
    *_, proc = served
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(40) == 0


# gunicorn keeps a kept-alive connection open up to 2 s into a stop (STOP_KEEPALIVE_LINGER of its gthread worker), to
# answer a request already on its way with "Connection: close" rather than drop it; granian closes an idle one at once
LINGER = {"granian": 0.0, "gunicorn": 2.0}
# CPU seconds of the server's processes from SIGTERM to the exit, with two workers: 0.05-0.08 s on granian and
# 0.15-0.20 s on gunicorn measured (whose workers end through the interpreter's exit too); before gc.freeze in
# serve_wsgi 0.20 s and 0.75 s (and 0.35 s and 6.1 s to stop)
STOP_CPU = {"granian": 0.14, "gunicorn": 0.4}


@pytest.mark.parametrize("server", SERVERS)
def test_an_idle_keep_alive_client_does_not_hold_up_the_stop(server, tmp_path):
    """SIGTERM with an idle keep-alive connection (a gateway's pooled connection): the server stops at once (about
    0.1 s on granian), exit status 0, the connection closed; little CPU spent stopping (the interpreter's last
    garbage collections over the whole app used to be most of a stop: serve_wsgi's gc.freeze)."""
    ca = trustme.CA()
    ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "tls.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    port = free_port()
    log = open(tmp_path / "serve.log", "w")
    tls = str(tmp_path / "tls.pem")
    proc = subprocess.Popen(python_argv("verifier", "serve", "--port", str(port), "--tls-cert", tls, "--tls-key", tls,
                                        "--workers", "2", "--replay-store", REPLAY, "--server", server),
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"https://localhost:{port}/healthz", verify=str(tmp_path / "ca.pem"), timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "serve.log").read_text()
                time.sleep(0.2)
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        conn = http.client.HTTPSConnection("localhost", port, context=context, timeout=10)
        for _ in range(2):               # two requests on one connection: it is kept alive, and now idle
            conn.request("GET", "/healthz")
            answer = conn.getresponse()
            assert answer.status == 200, answer.read()
            answer.read()
        time.sleep(0.5)
        code, took, cpu = sigterm_measured(proc)
        print(f"{server}: stopped in {took:.3f} s, {cpu:.3f} s of CPU")
        assert code == 0, (tmp_path / "serve.log").read_text()
        assert took < LINGER[server] + 2.0, f"{took:.2f} s to stop with an idle keep-alive client"
        assert cpu < STOP_CPU[server], f"{cpu:.2f} s of CPU to stop"
        conn.sock.settimeout(5)
        assert conn.sock.recv(1) == b""                  # the server closed the idle connection
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        log.close()


SLOW_APP = """
import sys, time
from verifier.serving import read_bounded, serve_wsgi

def app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(2)
    body = read_bounded(environ["wsgi.input"], 1000) if environ.get("wsgi.input_terminated") else b""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"done %d" % len(body)]

serve_wsgi(app, "127.0.0.1", 0, announce=lambda url: print(url, flush=True), server=sys.argv[1], workers=2,
           threads=2, graceful_timeout=20)
"""


@pytest.mark.parametrize("server", SERVERS)
def test_port_0_is_announced_chunked_bodies_arrive_and_sigterm_lets_a_request_in_flight_finish(server):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-c", SLOW_APP, server], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        base = proc.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:") and not base.endswith(":0"), (base, proc.stderr.read())
        assert requests.get(base + "/healthz", timeout=10).text == "done 0"     # announced once it answers
        chunked = requests.post(base + "/echo", data=iter([b"x" * 300, b"y" * 200]), timeout=10)
        assert chunked.request.headers.get("Transfer-Encoding") == "chunked" and chunked.text == "done 500"
        answers = []
        slow = threading.Thread(target=lambda: answers.append(requests.get(base + "/slow", timeout=30)))
        slow.start()
        time.sleep(0.7)                       # the request is in the app, sleeping
        proc.send_signal(signal.SIGTERM)
        slow.join(30)
        assert [(a.status_code, a.text) for a in answers] == [(200, "done 0")]
        assert proc.wait(30) == 0
        with pytest.raises(requests.ConnectionError):
            requests.get(base + "/healthz", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


@pytest.mark.parametrize("server", SERVERS)
def test_a_port_in_use_is_refused(server):
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = subprocess.run(python_argv("verifier", "serve", "--port", str(taken.getsockname()[1]), "--server",
                                            server), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and '"serve.failed"' in result.stderr, result.stderr[-500:]
