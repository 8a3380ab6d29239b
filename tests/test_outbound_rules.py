"""Outbound requests under the node's network rules (docs/security.md, "Outbound requests"), each against a real
HTTPS server on 127.0.0.1: with the node's default settings the request is refused, naming the address and the
setting that allows it (``network.allow_private``), both when the name resolves to 127.0.0.1 at once and when it
resolves to a public address for the check and to 127.0.0.1 for the connection (DNS rebinding: only the check on
the connected socket catches it); with ``allow_private`` it goes through.

``Fetcher.post`` first: the POST that requests a node sends go through."""
from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from click.testing import CliRunner

from helpers_https import https_server, rebinding
from issuer import notifications
from issuer.evidence import record, witness
from issuer.node import Node
from issuer_fixtures import PASS, make_node, ready_node
from verifier.http import Fetcher
from verifier.policy import Network
from verifier.results import CeadError

REFUSED_NOW = "resolves to non-public address 127.0.0.1"          # the check when the name is resolved
REFUSED_ON_SOCKET = "connected to non-public address 127.0.0.1"    # the check on the connected socket
SETTING = "network.allow_private: true"


def _named(message: str, how: str) -> None:
    """A refusal says what was refused, why, and which setting allows it (for a local test)."""
    assert how in message and SETTING in message and "--allow-private-addresses" in message, message


def _with_network(node: Node, **network) -> Node:
    """``node`` reopened with its config.yaml ``network`` section changed (as an operator edits it)."""
    config = yaml.safe_load((node.home / "config.yaml").read_text())
    config["network"] = {**(config.get("network") or {}), **network}
    (node.home / "config.yaml").write_text(yaml.safe_dump(config))
    return Node.open(node.home, PASS)


# ---- Fetcher.post itself -----------------------------------------------------------------------------------------

def test_fetcher_post_follows_no_redirect_and_limits_the_answer():
    from werkzeug.wrappers import Request, Response

    def app(environ, start_response):
        path = Request(environ).path
        if path == "/moved":
            return Response(status=307, headers={"Location": "https://169.254.169.254/"})(environ, start_response)
        return Response(b"x" * 2000)(environ, start_response)

    with https_server(app) as (base, ca):
        fetcher = Fetcher(allow_private=True, ca_bundle=ca, max_bytes=1000)
        moved = fetcher.post(base + "/moved", b"{}")
        assert moved.status == 307 and moved.body == b""                   # told, not followed
        with pytest.raises(CeadError) as info:
            fetcher.post(base + "/big", b"{}")
        assert info.value.code == "http.too_large"
        with pytest.raises(CeadError) as info:
            Fetcher(allow_private=True).post(base + "/big", b"{}")          # the node's CA bundle is what trusts it
        assert info.value.code == "http.certificate_untrusted"
