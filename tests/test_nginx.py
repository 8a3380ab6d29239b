"""The nginx configuration of docs/examples/nginx-cead.conf, run with real nginx on 127.0.0.1 in front of a data
API, deciding through `cead verifier serve` (gunicorn) at /authz: a large presentation header is admitted, an allowed pull reaches the
API, and a denial tells the client the verifier's real reason (Cead-Decision-Reasons), which the wallet's client
reads behind nginx's own error page. nginx is a Debian package (.ci/run installs it)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from cead.processes import free_port, python_argv
from helpers_https import https_server
from transfer_world import OTHER_DATASET, world
from verifier.binding import MANIFEST_HEADER, PRESENTATION_HEADER, encode_manifest, encode_presentation
from wallet.client import TransferDenied, check_response

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
CONFIG = Path(__file__).resolve().parent.parent / "docs" / "examples" / "nginx-cead.conf"
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (.ci/run installs it)")


def data_api(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/csv")])
    return [b"ageBand,localAuthority,outcome,count\n"]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nginx")
    with world() as w:
        (tmp / "policy.json").write_text(json.dumps(w.policy_data(caches={"status_lists": {"size": 64, "ttl": 300}})))
        verifier_port = free_port()
        verifier = subprocess.Popen(python_argv("verifier", "serve", "--policy", str(tmp / "policy.json"), "--port",
                                                str(verifier_port)), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        verifier_url = f"http://127.0.0.1:{verifier_port}"
        _wait(verifier_url + "/healthz", verifier)
        with https_server(data_api, tls=False) as (api_url, _):
            port = free_port()
            site = CONFIG.read_text().replace("{listen}", f"127.0.0.1:{port}").replace(
                "{upstream}", api_url).replace("{verifier}", verifier_url)
            (tmp / "logs").mkdir()
            (tmp / "nginx.conf").write_text(
                ("user root;\n" if os.geteuid() == 0 else "") +
                f"worker_processes 1;\nerror_log {tmp}/logs/error.log warn;\npid {tmp}/nginx.pid;\n"
                "events { worker_connections 64; }\n"
                f"http {{\n access_log off;\n client_body_temp_path {tmp}/body;\n proxy_temp_path {tmp}/proxy;\n"
                f" fastcgi_temp_path {tmp}/fcgi;\n uwsgi_temp_path {tmp}/uwsgi;\n scgi_temp_path {tmp}/scgi;\n"
                f"{site}\n}}\n")
            proc = subprocess.Popen([NGINX, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-g", "daemon off;"],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            base = f"http://localhost:{port}"
            deadline = time.monotonic() + 20
            while True:
                try:
                    requests.get(base + "/", timeout=2)
                    break
                except requests.ConnectionError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        proc.kill()
                        raise AssertionError(proc.stdout.read().decode())
                    time.sleep(0.1)
            try:
                yield w, base
            finally:
                proc.terminate()
                proc.wait(10)
                verifier.terminate()
                verifier.wait(40)


def _wait(url: str, proc) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise AssertionError(f"{url} did not come up") from None
            time.sleep(0.2)


def headers_for(w, request, credentials=None) -> dict:
    return {PRESENTATION_HEADER: encode_presentation(w.present(request, credentials)),
            MANIFEST_HEADER: encode_manifest(request.manifest)}


def test_an_allowed_pull_with_a_large_presentation_reaches_the_api(gateway):
    w, base = gateway
    request = w.request(url=f"{base}/datasets/homelessness")
    headers = headers_for(w, request)
    assert len(headers[PRESENTATION_HEADER]) > 8 * 1024        # more than nginx's default header buffer
    answer = requests.get(request.url, headers=headers, timeout=30)
    assert answer.status_code == 200, (answer.status_code, answer.text[:300])
    assert answer.text.startswith("ageBand")
    many = [*w.bundle(), *(w.certification(w.body, w.recipient) for _ in range(30))]
    request = w.request(url=f"{base}/datasets/homelessness")
    big = headers_for(w, request, many)
    assert len(big[PRESENTATION_HEADER]) > 64 * 1024
    assert requests.get(request.url, headers=big, timeout=30).status_code == 200


def test_a_denial_behind_nginx_tells_the_analyst_the_real_reason(gateway):
    w, base = gateway
    request = w.request(url=f"{base}/datasets/homelessness", dataset=OTHER_DATASET)
    answer = requests.get(request.url, headers=headers_for(w, request), timeout=30)
    assert answer.status_code == 403
    assert "transfer.dataset_not_approved" in answer.headers["Cead-Decision-Reasons"]
    assert "<html>" in answer.text                              # nginx's own page, not the verifier's JSON
    with pytest.raises(TransferDenied) as denied:
        check_response(answer.status_code, answer.content, request.url, answer.headers)
    assert "transfer.dataset_not_approved" in [p.code for p in denied.value.reasons]
    missing = requests.get(f"{base}/datasets/homelessness", timeout=30)
    assert missing.status_code == 401 and missing.headers["Cead-Decision-Reasons"] == "presentation.missing"
