"""The nginx configuration of docs/examples/nginx-cead.conf, run with real nginx on 127.0.0.1 in front of a data
API, deciding through `cead verifier serve` (gunicorn) at /authz: a large presentation header is admitted, an allowed pull reaches the
API, and a denial tells the client the verifier's real reason (Cead-Decision-Reasons), which the wallet's client
reads behind nginx's own error page. Pulls under a minimum cell count or a row limit go through the verifier's checking proxy
(`--upstream`): a compliant table reaches the client, a table with a small cell is withheld with the real reason.
nginx is a Debian package (.ci/run installs it)."""
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


TABLE_OK = b"ageBand,localAuthority,outcome,count\n16-24,Fife,housed,12\n25-34,Fife,housed,40\n"
TABLE_SMALL_CELL = b"ageBand,localAuthority,outcome,count\n16-24,Fife,housed,3\n25-34,Fife,housed,40\n"
SEEN: list[dict] = []     # what the data API received, per request


def data_api(environ, start_response):
    SEEN.append({"path": environ.get("RAW_URI") or environ["PATH_INFO"], "query": environ.get("QUERY_STRING", ""),
                 "presentation": environ.get("HTTP_CEAD_PRESENTATION"),
                 "manifest": environ.get("HTTP_CEAD_TRANSFER_MANIFEST")})
    body = {"/tables/small": TABLE_SMALL_CELL}.get(environ["PATH_INFO"], TABLE_OK if environ["PATH_INFO"].startswith(
        "/tables/") else b"ageBand,localAuthority,outcome,count\n")
    start_response("200 OK", [("Content-Type", "text/csv"), ("Content-Length", str(len(body))),
                              ("Cead-Decision", "allow")])     # a spoofed decision header: never passed on
    return [body]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nginx")
    with world() as w, https_server(data_api, tls=False) as (api_url, _):
        (tmp / "policy.json").write_text(json.dumps(w.policy_data(caches={"status_lists": {"size": 64, "ttl": 300}})))
        verifier_port = free_port()
        verifier = subprocess.Popen(python_argv("verifier", "serve", "--policy", str(tmp / "policy.json"), "--port",
                                                str(verifier_port), "--upstream", api_url),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        verifier_url = f"http://127.0.0.1:{verifier_port}"
        _wait(verifier_url + "/healthz", verifier)
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


def _threshold_pull(w, url):
    approval = w.make_approval(w.controller, privacyProtocol={"kind": "threshold", "minCellCount": 10})
    request = w.request(url=url, rowCount=2)
    return request, headers_for(w, request, [approval, w.cert])


def test_a_compliant_table_under_a_threshold_passes_through_the_checking_proxy(gateway):
    w, base = gateway
    request, headers = _threshold_pull(w, f"{base}/tables/ok?since=2026-01-01T00%3A00%3A00Z")
    answer = requests.get(request.url, headers=headers, timeout=30)
    assert answer.status_code == 200, (answer.status_code, answer.text[:300])
    assert answer.content == TABLE_OK
    assert "Cead-Decision" not in answer.headers                  # the API's own (spoofed) header is not passed on
    seen = SEEN[-1]
    assert seen["path"] == "/tables/ok?since=2026-01-01T00%3A00%3A00Z"   # the target exactly as the client sent it
    assert seen["presentation"] is None and seen["manifest"]      # the API gets the manifest, not the presentation


def test_a_table_with_a_small_cell_is_withheld_with_the_real_reason(gateway):
    w, base = gateway
    request, headers = _threshold_pull(w, f"{base}/tables/small")
    answer = requests.get(request.url, headers=headers, timeout=30)
    assert answer.status_code == 403
    assert b"housed,3" not in answer.content                      # the table never left
    assert "protocol.cell_below_threshold" in answer.headers["Cead-Decision-Reasons"]
    assert "protocol.cell_below_threshold" in {r["code"] for r in answer.json()["reasons"]}
    with pytest.raises(TransferDenied) as denied:
        check_response(answer.status_code, answer.content, request.url, answer.headers)
    assert "protocol.cell_below_threshold" in [p.code for p in denied.value.reasons]


def test_the_checking_proxy_decides_like_the_middleware(gateway):
    """The same decision: no presentation is a 401, a presentation bound to another URL (or replayed) a 403, a
    client's own X-Original-Host is overwritten by nginx, and the API is not called for any of them."""
    w, base = gateway
    calls = len(SEEN)
    missing = requests.get(f"{base}/tables/ok", timeout=30)
    assert missing.status_code == 401 and missing.headers["Cead-Decision-Reasons"] == "presentation.missing"
    request, headers = _threshold_pull(w, f"{base}/tables/ok")
    other = requests.get(f"{base}/tables/small", headers=headers, timeout=30)
    assert other.status_code == 403 and "presentation.binding_mismatch" in other.headers["Cead-Decision-Reasons"]
    spoofed = requests.get(f"{base}/tables/ok", timeout=30,
                           headers={**headers, "X-Original-Host": "api.elsewhere.example"})
    assert spoofed.status_code == 200, spoofed.text[:300]        # bound to the host nginx saw, not the client's
    replayed = requests.get(f"{base}/tables/ok", headers=headers, timeout=30)
    assert replayed.status_code == 403 and "presentation.replayed" in replayed.headers["Cead-Decision-Reasons"]
    assert len(SEEN) == calls + 1


def test_a_threshold_pull_through_auth_request_still_fails_closed(gateway):
    """auth_request cannot see the response: a pull under a minimum cell count there is denied, never let out
    unchecked (the configuration sends such pulls to /tables/)."""
    w, base = gateway
    request, headers = _threshold_pull(w, f"{base}/datasets/homelessness")
    answer = requests.get(request.url, headers=headers, timeout=30)
    assert answer.status_code == 403
    assert "protocol.payload_missing" in answer.headers["Cead-Decision-Reasons"]


def _row_limited_pull(w, url, limit=5, row_count=2):
    approval = w.make_approval(w.controller, maxRowsPerTransfer=limit)
    request = w.request(url=url, rowCount=row_count)
    return request, headers_for(w, request, [approval, w.cert])


def test_a_pull_under_a_row_limit_is_counted_through_the_checking_proxy(gateway):
    """The rows that leave are counted by the gateway: within the limit the table passes, over it it is withheld."""
    w, base = gateway
    request, headers = _row_limited_pull(w, f"{base}/tables/ok")
    answer = requests.get(request.url, headers=headers, timeout=30)
    assert answer.status_code == 200, (answer.status_code, answer.text[:300])
    assert answer.content == TABLE_OK
    request, headers = _row_limited_pull(w, f"{base}/tables/ok", limit=1, row_count=1)   # says 1, gets 2
    answer = requests.get(request.url, headers=headers, timeout=30)
    assert answer.status_code == 403 and b"housed,12" not in answer.content, answer.text[:300]
    reason = next(r for r in answer.json()["reasons"] if r["code"] == "transfer.volume_exceeded")
    assert reason["detail"] == {"rows": 2, "limit": 1, "measured": True}


def test_a_pull_under_a_row_limit_through_auth_request_is_denied_uncounted(gateway):
    """auth_request cannot see the response, so its rows could only be the requester's rowCount: denied, with the
    fix named, and the API is never called; without a row limit the same pull is allowed."""
    w, base = gateway
    calls = len(SEEN)
    request, headers = _row_limited_pull(w, f"{base}/datasets/homelessness")
    answer = requests.get(request.url, headers=headers, timeout=30)
    assert answer.status_code == 403
    assert answer.headers["Cead-Decision-Reasons"] == "transfer.rows_uncounted"
    assert len(SEEN) == calls                                     # nothing was asked of the API
    with pytest.raises(TransferDenied) as denied:
        check_response(answer.status_code, answer.content, request.url, answer.headers)
    assert [p.code for p in denied.value.reasons] == ["transfer.rows_uncounted"]
    unlimited = w.make_approval(w.controller)
    request = w.request(url=f"{base}/datasets/homelessness", rowCount=2)
    answer = requests.get(request.url, headers=headers_for(w, request, [unlimited, w.cert]), timeout=30)
    assert answer.status_code == 200, (answer.status_code, answer.text[:300])
    assert len(SEEN) == calls + 1
