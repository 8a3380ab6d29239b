"""`cead verifier serve` runs like production: gunicorn worker processes over TLS, header limits that admit the
largest presentations, a replay guard shared by the workers through Redis, and a graceful stop on SIGTERM."""
from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
import requests
import trustme

from cead.processes import free_port, python_argv
from test_verifier_service import authz_headers
from transfer_world import world
from verifier.binding import PRESENTATION_HEADER

REPLAY = "redis://127.0.0.1:6379/12"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
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
                                            "--replay-store", REPLAY), stdout=log, stderr=subprocess.STDOUT)
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


def test_the_workers_share_one_replay_guard(served):
    w, base, ca, _ = served
    request = w.request()
    headers = authz_headers(w, request)
    answers = [requests.get(base + "/authz", headers=headers, verify=ca, timeout=30) for _ in range(6)]
    assert answers[0].status_code == 200, answers[0].text
    assert [a.headers["Cead-Decision-Reasons"] for a in answers[1:]] == ["presentation.replayed"] * 5


def test_sigterm_stops_the_server_gracefully(served):
    *_, proc = served
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(40) == 0
