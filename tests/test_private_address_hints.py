"""`http.address_refused` (a DID document or status list on a loopback/private address) names the setting that
allows private addresses for a local test *for the command that refused*: `cead verify` and `cead verifier serve`
their trust policy (--policy; the gateway reads it when it starts), `cead audit` its --allow-private-addresses flag,
a node its config.yaml. It used to say "network.allow_private in the node's config.yaml or the gateway's trust
policy, then restart it" everywhere, which is wrong for `cead verify` (no node, nothing to restart) and `cead audit`.
"""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from cead.cli import main
from cead.processes import free_port, python_argv
from verifier.http import Fetcher
from verifier.results import CeadError

from helpers_https import https_server
from issuer_fixtures import PASS, certification, make_node

DID_DOCUMENT = "/.well-known/did.json"


@pytest.fixture
def local_credential(tmp_path):
    """A certification signed by a node whose did:web is on a real HTTPS server on 127.0.0.1 (localhost:PORT)."""
    from issuer import issuing
    with https_server(static={}) as (base, ca):
        host = base.removeprefix("https://")
        node = make_node(tmp_path / "node", domain=host, public_url=base)
        node._passphrase = PASS
        signed = issuing.issue(node, certification(node.did)).credential
        path = tmp_path / "credential.json"
        path.write_text(json.dumps(signed))
        yield path, base, ca


def verify(*args):
    result = CliRunner().invoke(main, ["verify", *map(str, args)])
    return result.exit_code, json.loads(result.stdout)


def refusal(answer: dict) -> str:
    messages = [e["message"] for e in answer["errors"] if e["code"] == "http.address_refused"]
    assert messages, answer
    return messages[0]


def test_cead_verify_without_a_policy_says_to_give_one_allowing_private_addresses(local_credential):
    path, _, _ = local_credential
    code, answer = verify(path)
    assert code == 1
    message = refusal(answer)
    assert "`cead verify --policy FILE`" in message and "allow_private: true" in message
    assert "restart" not in message and "config.yaml" not in message and "cead init" not in message


def test_cead_verify_with_a_policy_names_that_file_and_the_setting_then_works(local_credential, tmp_path):
    path, base, ca = local_credential
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"network: {{allow_private: false, ca_bundle: {ca}}}\n")
    code, answer = verify("--policy", policy, path)
    message = refusal(answer)
    assert f"network.allow_private: true in the trust policy {policy}" in message
    assert "restart" not in message and "config.yaml" not in message
    # doing what it says: the DID document is fetched (the node's status list is not served here, so the
    # credential is still not verified, but no longer for its address)
    policy.write_text(f"network: {{allow_private: true, ca_bundle: {ca}}}\n")
    code, answer = verify("--policy", policy, path)
    assert "http.address_refused" not in [e["code"] for e in answer["errors"]], answer


def test_the_gateway_says_the_policy_file_and_that_it_reads_it_when_it_starts(local_credential, tmp_path):
    path, _, ca = local_credential
    policy = tmp_path / "gateway.yaml"
    policy.write_text(f"network: {{ca_bundle: {ca}}}\n")
    port = free_port()
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen(python_argv("verifier", "serve", "--policy", str(policy), "--port", str(port)),
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(base + "/healthz", timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "serve.log").read_text()
                time.sleep(0.2)
        answer = requests.post(base + "/credentials/verify", json={"verifiableCredential": json.loads(
            path.read_text())}, timeout=30).json()
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
    message = refusal(answer)
    assert f"network.allow_private: true in the trust policy {policy}" in message
    assert "restart `cead verifier serve`" in message and "config.yaml" not in message


def test_cead_audit_names_its_flag(tmp_path):
    with https_server(static={}) as (base, ca):
        result = CliRunner().invoke(main, ["audit", base, "--ca-bundle", ca, "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "http.address_refused" in result.output
    assert "`cead audit --allow-private-addresses`" in result.output and "config.yaml" not in result.output


def test_a_node_names_its_config_yaml_also_for_a_connection_it_makes_itself(tmp_path):
    """The node's fetcher, on both paths: the name resolved before connecting, and the peer checked on a
    connection made through its session (a POST, e.g. delivering to an inbox)."""
    node = make_node(tmp_path / "node")
    with https_server(static={"/x": {"ok": True}}) as (base, ca):
        fetcher = node.fetcher()
        with pytest.raises(CeadError) as before:
            fetcher.get(base + "/x")
        with pytest.raises(CeadError) as peer:
            fetcher.session().get(base.replace("localhost", "127.0.0.1") + "/x", verify=ca, timeout=5)
    for err in (before.value, peer.value):
        assert err.code == "http.address_refused"
        assert "network.allow_private: true in this node's config.yaml" in err.message
        assert "cead init --allow-private-addresses" in err.message and "trust policy" not in err.message


def test_a_fetcher_built_without_a_setting_names_both_places():
    fix = Fetcher().private_fix
    assert "config.yaml" in fix and "trust policy" in fix and "restart it" not in fix
