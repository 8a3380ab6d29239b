"""How soon a gateway sees a suspension or a reinstatement: it decides on its cached copy of the issuer's status list
until the copy is `caches.status_lists.ttl` old (300 s unless the trust policy sets it). `cead suspend`, `cead
reinstate` and `cead revoke` say so, with that number, and docs/gateway.md documents it and how to shorten it.
Real parts: the issuer's node over HTTPS on 127.0.0.1, a gateway's verifier built from a trust policy file."""
from __future__ import annotations

import json
import time
from pathlib import Path

from click.testing import CliRunner

from cead.cli import main
from issuer import issuing
from verifier.decision import Decider
from verifier.policy import TrustPolicy, load_policy

from issuer_fixtures import PASS, certification, https_node

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TTL = Decider(TrustPolicy()).status.ttl          # what a gateway with no caches setting uses


def suspendable(node):
    return issuing.issue(node, certification(node.did), {"credentialStatus": {
        "type": "BitstringStatusListEntry", "statusPurpose": ["revocation", "suspension"]}})


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], env={"CEAD_PASSPHRASE": PASS.decode()})


def codes(result) -> list[str]:
    return [p.code for p in result.problems]


def test_the_default_is_the_number_the_commands_and_the_docs_give():
    assert DEFAULT_TTL == 300
    gateway = " ".join((ROOT / "docs" / "gateway.md").read_text().split())
    assert "### How soon a status change is seen" in gateway
    assert f"**{DEFAULT_TTL:g} s when the policy does not set it**" in gateway
    dpo = " ".join((ROOT / "docs" / "guide-dpo.md").read_text().split())
    assert f"**{DEFAULT_TTL:g} seconds unless the gateway sets it**" in dpo


def test_suspend_and_reinstate_say_gateways_may_take_up_to_the_ttl(tmp_path):
    with https_node(tmp_path / "node") as (node, _, _):
        issued = suspendable(node)
        suspended = cli("suspend", "--home", node.home, issued.id)
        assert suspended.exit_code == 0, suspended.output
        assert suspended.stdout == f"{issued.id}: suspended\n"        # the result line, unchanged for scripts
        assert f"Gateways may still accept it until they refresh their copy of the list: for up to " \
               f"{DEFAULT_TTL:g} s" in suspended.stderr
        reinstated = cli("reinstate", "--home", node.home, issued.id)
        assert reinstated.exit_code == 0, reinstated.output
        assert reinstated.stdout == f"{issued.id}: active\n"
        assert f"Gateways may still refuse it as suspended until they refresh their copy of the list: for up to " \
               f"{DEFAULT_TTL:g} s" in reinstated.stderr
        assert "caches.status_lists.ttl" in reinstated.stderr and "docs/gateway.md" in reinstated.stderr


def test_a_gateway_sees_a_suspension_and_a_reinstatement_once_its_copy_is_ttl_old(tmp_path):
    """What the docs and the commands say, observed: within the ttl the gateway's answer is the old one."""
    ttl = 2
    with https_node(tmp_path / "node") as (node, _, ca):
        policy = tmp_path / "policy.yaml"
        policy.write_text(json.dumps({"network": {"allow_private": True, "ca_bundle": ca},
                                      "caches": {"status_lists": {"size": 16, "ttl": ttl}}}))
        gateway = Decider(load_policy(policy)).verifier
        issued = suspendable(node)
        credential = issued.credential

        assert gateway.verify_credential(credential).verified              # the list is now cached
        read_at = time.monotonic()
        issuing.change_status(node, issued.id, "suspend")
        still = gateway.verify_credential(credential)
        assert time.monotonic() - read_at < ttl
        assert still.verified                                               # suspended, but not seen yet
        time.sleep(ttl + 0.2)
        assert "status.suspended" in codes(gateway.verify_credential(credential))   # seen once refreshed
        read_at = time.monotonic()

        issuing.change_status(node, issued.id, "reinstate")
        refused = gateway.verify_credential(credential)
        assert time.monotonic() - read_at < ttl
        assert "status.suspended" in codes(refused)                         # reinstated, but not seen yet
        time.sleep(ttl + 0.2)
        assert gateway.verify_credential(credential).verified               # seen once refreshed


def test_ttl_zero_sees_a_reinstatement_at_the_next_decision(tmp_path):
    """The shortening docs/gateway.md offers: `ttl: 0` re-reads the list at every decision."""
    with https_node(tmp_path / "node") as (node, _, ca):
        policy = tmp_path / "policy.yaml"
        policy.write_text(json.dumps({"network": {"allow_private": True, "ca_bundle": ca},
                                      "caches": {"status_lists": {"size": 16, "ttl": 0}}}))
        gateway = Decider(load_policy(policy)).verifier
        issued = suspendable(node)
        issuing.change_status(node, issued.id, "suspend")
        assert "status.suspended" in codes(gateway.verify_credential(issued.credential))
        issuing.change_status(node, issued.id, "reinstate")
        assert gateway.verify_credential(issued.credential).verified
