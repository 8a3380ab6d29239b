"""Idempotent issuing (issue 11): a client whose reply was lost gets the credential it asked for on a retry, and a
key cannot be reused for another request."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import httpx
import pytest

from issuer import issuing
from issuer.app import create_app

from issuer_fixtures import PASS, certification, counts, make_node, ready_node, token

# an issuer node in its own process; with CRASH_MARKER set it stops between commit and reply, says so, and waits
SERVER = textwrap.dedent("""
    import os, sys, time
    from issuer import idempotency
    from issuer.app import create_app
    from issuer.node import Node
    from verifier.serving import make_bounded_server

    marker = os.environ.get("CRASH_MARKER")
    if marker:
        def stop_here(credential_id):
            with open(marker, "w") as f:
                f.write(credential_id)
            time.sleep(600)          # the test kills the process (SIGKILL) while it waits here
        idempotency.after_commit = stop_here
    node = Node.open(sys.argv[1], passphrase=os.environ["PASSPHRASE"], migrate=True)
    server = make_bounded_server(create_app(node), "127.0.0.1", 0)
    print(server.server_port, flush=True)
    server.serve_forever()
""")


def _start(home, tmp_path, marker=None):
    env = {**os.environ, "PASSPHRASE": PASS.decode()}
    if marker:
        env["CRASH_MARKER"] = str(marker)
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(home)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}"


def test_a_retry_after_a_crash_between_commit_and_reply_returns_the_same_credential(tmp_path):
    home = tmp_path / "h"
    node = make_node(home, public_url="https://fife.example")
    tok = token(node)
    node.engine.dispose()
    headers = {"Authorization": f"Bearer {tok}", "Idempotency-Key": "approval-2025-0042"}
    body = {"credential": certification(node.did), "options": {"cryptosuite": "eddsa-jcs-2022"}}
    marker = tmp_path / "committed"

    proc, base = _start(home, tmp_path, marker)
    outcome = {}

    def first_attempt():
        try:
            outcome["response"] = httpx.post(f"{base}/credentials/issue", json=body, headers=headers, timeout=60)
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    attempt = threading.Thread(target=first_attempt)
    attempt.start()
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)          # committed, not replied
    proc.wait()
    attempt.join()
    assert "error" in outcome                 # the client got no reply
    committed_id = marker.read_text()

    proc, base = _start(home, tmp_path)       # the node comes back; the client retries the same request
    try:
        retry = httpx.post(f"{base}/credentials/issue", json=body, headers=headers, timeout=60)
        assert retry.status_code == 201, retry.text
        assert retry.headers["Idempotent-Replayed"] == "true"
        credential = retry.json()["verifiableCredential"]
        assert credential["id"] == committed_id
        again = httpx.post(f"{base}/credentials/issue", json=body, headers=headers, timeout=60)
        assert again.json() == retry.json()   # the same signed credential, byte for byte
        # the same key for another request is refused, naming the problem
        other = {"credential": certification(node.did, legalName="NHS Tayside"), "options": body["options"]}
        refused = httpx.post(f"{base}/credentials/issue", json=other, headers=headers, timeout=60)
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "idempotency.key_reused"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()
    rows = issuing.register(node)
    assert [row.id for row in rows] == [committed_id]   # one credential, signed once
    assert counts(node) == (1, 1)


@pytest.fixture
def api(tmp_path):
    node = ready_node(tmp_path / "h")
    client = create_app(node).test_client()
    tok = token(node)

    def post(body, key=None, tok=tok):
        headers = {"Authorization": f"Bearer {tok}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return client.post("/credentials/issue", data=json.dumps(body), headers=headers,
                           content_type="application/json")
    return node, post


def test_a_retry_by_credential_id_returns_the_same_credential(api):
    node, post = api
    body = {"credential": {**certification(node.did), "id": "urn:uuid:5f1c9d52-0000-4000-8000-000000000001"}}
    first = post(body)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    retry = post(json.loads(json.dumps(body, indent=2)))         # the same request, however spaced
    assert retry.status_code == 201 and retry.get_json() == first.get_json()
    assert retry.headers["Idempotent-Replayed"] == "true"
    changed = {"credential": {**body["credential"], "validUntil": "2031-01-01T00:00:00Z"}}
    assert post(changed).get_json()["error"]["code"] == "credential.duplicate_id"
    assert counts(node) == (1, 1)


def test_keys_belong_to_their_token_and_must_be_printable(api):
    node, post = api
    body = {"credential": certification(node.did)}
    first = post(body, key="k1")
    assert first.status_code == 201
    other_token = token(node, name="other")
    second = post(body, key="k1", tok=other_token)      # another client's key space: a new credential
    assert second.status_code == 201
    assert second.get_json() != first.get_json()
    for bad in ("", "x" * 256, "caf\u00e9"):
        r = post(body, key=bad) if bad.isascii() else post(body, key="tab\there")
        assert r.status_code == 400 and r.get_json()["error"]["code"] == "idempotency.key_invalid"
    assert counts(node) == (2, 2)


def test_concurrent_twins_with_one_key_get_one_credential(api):
    node, post = api
    body = {"credential": certification(node.did)}
    barrier = threading.Barrier(4)

    def one(_):
        barrier.wait()
        return post(body, key="twin")

    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(one, range(4)))
    assert {r.status_code for r in replies} == {201}
    assert len({json.dumps(r.get_json(), sort_keys=True) for r in replies}) == 1
    assert counts(node) == (1, 1)


@pytest.mark.skipif(not os.environ.get("CEAD_TEST_DATABASE_URL"), reason="set CEAD_TEST_DATABASE_URL")
def test_concurrent_twins_with_one_key_get_one_credential_postgresql(tmp_path):
    from issuer_fixtures import postgresql_node
    with postgresql_node(tmp_path / "pg") as node:
        client = create_app(node).test_client()
        tok = token(node)
        body = json.dumps({"credential": certification(node.did)})
        barrier = threading.Barrier(6)

        def one(_):
            barrier.wait()
            return client.post("/credentials/issue", data=body, content_type="application/json",
                               headers={"Authorization": f"Bearer {tok}", "Idempotency-Key": "twin"})

        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(6) as pool:
            replies = list(pool.map(one, range(6)))
        assert {r.status_code for r in replies} == {201}, [r.get_json() for r in replies]
        assert len({json.dumps(r.get_json(), sort_keys=True) for r in replies}) == 1
        assert counts(node) == (1, 1)
