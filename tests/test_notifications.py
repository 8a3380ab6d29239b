"""Notifications of node events to receiving HTTPS servers on 127.0.0.1: a signed webhook retried with back-off
until the receiver answers, its signature verified against the node's DID document; a Teams Adaptive Card; nothing
sent for events a subscription did not ask for; a message survives a restart (it is in the node's database)."""
from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from helpers_https import https_server
from issuer import notifications, issuing
from issuer.app import create_app
from issuer.node import Node
from issuer_fixtures import PASS, certification
from verifier.did import Resolver
from verifier.http import Fetcher
from verifier.results import CeadError


class Receiver:
    """A webhook receiver that fails its first ``failures`` calls with 503, answering after ``delay`` seconds."""

    def __init__(self, failures: int = 0, delay: float = 0.0):
        self.failures, self.delay, self.calls, self.lock = failures, delay, [], threading.Lock()

    def __call__(self, environ, start_response):
        from werkzeug.wrappers import Request, Response
        req = Request(environ)
        with self.lock:
            self.calls.append((req.path, dict(req.headers), req.get_data()))
            status = 503 if len(self.calls) <= self.failures else 204
        time.sleep(self.delay)
        return Response(status=status)(environ, start_response)


def _subscribe(node, subs):
    config = yaml.safe_load((node.home / "config.yaml").read_text())
    config["notifications"] = subs
    (node.home / "config.yaml").write_text(yaml.safe_dump(config))
    return Node.open(node.home, PASS)


@pytest.fixture
def world(tmp_path):
    receiver = Receiver(failures=2)
    holder = {}

    def app(environ, start):
        path = environ.get("PATH_INFO", "")
        return (receiver if path.startswith("/hooks/") else holder["app"])(environ, start)
    with https_server(app) as (base_url, ca_bundle):
        port = base_url.rsplit(":", 1)[1]
        node, _ = Node.init(tmp_path / "h", "Fife Council", PASS, domain=f"localhost:{port}", public_url=base_url,
                            network={"ca_bundle": ca_bundle, "allow_private": True})
        node = _subscribe(node, [
            {"name": "ig", "url": base_url + "/hooks/ig", "kind": "webhook",
             "events": ["credential.revoked", "credential.expiring"]},
            {"name": "teams", "url": base_url + "/hooks/teams", "kind": "teams", "events": ["credential.revoked"],
             "link": "https://cead.fife.example"}])
        node._passphrase = PASS
        holder["app"] = create_app(node)
        yield node, receiver, base_url, ca_bundle


def test_signed_webhook_retried_until_the_receiver_answers(world):
    node, receiver, base_url, ca_bundle = world
    issued = issuing.issue(node, certification(node.did), {"credentialStatus": {
        "type": "BitstringStatusListEntry", "statusPurpose": ["revocation", "suspension"]}})
    cid = issued.id
    issuing.change_status(node, cid, "suspend")        # nobody asked for suspensions: nothing queued
    assert notifications.outbox(node) == []
    issuing.change_status(node, cid, "revoke")
    assert sorted(n.subscription for n in notifications.outbox(node)) == ["ig", "teams"]

    now = datetime.now(timezone.utc)
    first = notifications.deliver_due(node, now=now)
    assert first == {"delivered": 0, "retrying": 2, "failed": 0}       # two 503s
    assert notifications.deliver_due(node, now=now) == {"delivered": 0, "retrying": 0, "failed": 0}  # not due yet
    later = notifications.deliver_due(node, now=now + timedelta(seconds=notifications.FIRST_RETRY + 1))
    assert later == {"delivered": 2, "retrying": 0, "failed": 0}
    assert len(receiver.calls) == 4
    # a retry is the same message: the receiver can drop a repeat by its Cead-Event-Id (the event's id)
    ig_ids = [headers["Cead-Event-Id"] for path, headers, _ in receiver.calls if path == "/hooks/ig"]
    assert len(ig_ids) == 2 and ig_ids[0] == ig_ids[1]

    path, headers, body = next(c for c in receiver.calls[2:] if c[0] == "/hooks/ig")
    event = json.loads(body)
    assert event["type"] == "credential.revoked" and event["data"]["credential"] == cid
    assert event["source"] == node.did
    resolver = Resolver(Fetcher(allow_private=True, ca_bundle=ca_bundle))
    claims = notifications.verify_signature(headers[notifications.SIGNATURE_HEADER], body, resolver)
    assert claims["iss"] == node.did and claims["jti"] == event["id"] == ig_ids[0]
    with pytest.raises(CeadError) as info:                                 # another body, the same signature
        notifications.verify_signature(headers[notifications.SIGNATURE_HEADER], body + b" ", resolver)
    assert info.value.code == "event.signature_invalid"

    path, headers, body = next(c for c in receiver.calls[2:] if c[0] == "/hooks/teams")
    card = json.loads(body)["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["type"] == "AdaptiveCard" and "revoked" in card["content"]["body"][0]["text"]
    assert card["content"]["actions"][0]["url"] == "https://cead.fife.example"


def test_gives_up_after_the_last_attempt_and_expiry_warnings_once(world, monkeypatch):
    node, receiver, base_url, _ = world
    receiver.failures = 10 ** 6
    monkeypatch.setattr(notifications, "MAX_ATTEMPTS", 2)
    soon = (datetime.now(timezone.utc) + timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cert = certification(node.did)
    cert["validUntil"] = soon
    issuing.issue(node, cert)
    assert notifications.check_expiring(node, 30) == 1
    assert notifications.check_expiring(node, 30) == 0                     # told once
    now = datetime.now(timezone.utc)
    notifications.deliver_due(node, now=now)
    final = notifications.deliver_due(node, now=now + timedelta(hours=2))
    assert final["failed"] == 1
    (row,) = notifications.outbox(node)
    assert row.failed_at and row.last_error == "HTTP 503" and row.attempts == 2


@pytest.mark.parametrize("subs,fragment", [
    ({"url": "https://x.example/h", "events": ["made.up"]}, "events"),
    ({"url": "ftp://x.example/h", "events": ["credential.revoked"]}, "url"),
    ({"url": "https://x.example/h", "events": ["credential.revoked"], "kind": "slack"}, "kind"),
    ({"url": "https://x.example/h", "events": ["credential.revoked"], "secret": "x"}, "unknown key"),
])
def test_bad_subscriptions_are_named(tmp_path, subs, fragment):
    node, _ = Node.init(tmp_path / "h", "Fife Council", PASS, domain="fife.example")
    node = _subscribe(node, [subs])
    with pytest.raises(CeadError) as info:
        notifications.subscriptions(node)
    assert info.value.code == "node.config_invalid" and fragment in info.value.message


def test_two_senders_at_once_send_each_message_once(world):
    """Two deliveries running together (as the served node's dispatcher and `cead notifications send` from cron do,
    tests/test_notifications_served.py): each message is claimed before it is sent, so the receiver, which answers
    slowly, gets each once, from one sender or the other; without the claim both senders sent both."""
    node, receiver, _, _ = world
    receiver.failures, receiver.delay = 0, 0.5
    issued = issuing.issue(node, certification(node.did))
    issuing.change_status(node, issued.id, "revoke")
    results = []
    senders = [threading.Thread(target=lambda: results.append(notifications.deliver_due(node))) for _ in range(2)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(30)
    assert sum(r["delivered"] for r in results) == 2 and len(results) == 2
    assert sorted(headers["Cead-Event-Id"] for _, headers, _ in receiver.calls) == sorted(
        n.id for n in notifications.outbox(node))
    assert all(n.delivered_at and n.attempts == 1 for n in notifications.outbox(node))


def test_a_message_sent_again_after_its_sender_was_killed_carries_the_same_id(world, monkeypatch):
    """A sender killed after its POST, before recording it, leaves the message claimed; a minute later it is sent
    again, with the Cead-Event-Id (and body, and signed jti) of the first time, so the receiver can drop it."""
    node, receiver, _, _ = world
    receiver.failures = 0
    issued = issuing.issue(node, certification(node.did))
    issuing.change_status(node, issued.id, "revoke")
    real = type(node).fetcher

    def killed_after_the_post(self):
        fetcher = real(self)
        post = fetcher.post

        def post_then_die(*args, **kwargs):
            post(*args, **kwargs)
            raise KeyboardInterrupt("killed before the delivery was recorded")
        fetcher.post = post_then_die
        return fetcher
    monkeypatch.setattr(type(node), "fetcher", killed_after_the_post)
    now = datetime.now(timezone.utc)
    with pytest.raises(KeyboardInterrupt):
        notifications.deliver_due(node, now=now)
    monkeypatch.undo()
    assert len(receiver.calls) == 1
    assert notifications.deliver_due(node, now=now) == {"delivered": 1, "retrying": 0, "failed": 0}  # the other one
    later = now + timedelta(seconds=notifications.CLAIM_SECONDS + 1)
    assert notifications.deliver_due(node, now=later) == {"delivered": 1, "retrying": 0, "failed": 0}
    assert all(n.delivered_at for n in notifications.outbox(node))
    ids = [headers["Cead-Event-Id"] for _, headers, _ in receiver.calls]
    assert len(ids) == 3 and ids[0] == ids[2] != ids[1] and sorted(set(ids)) == sorted(
        n.id for n in notifications.outbox(node))
    (_, first, body1), (_, again, body2) = receiver.calls[0], receiver.calls[2]
    assert body1 == body2
    if receiver.calls[0][0] == "/hooks/ig":
        assert json.loads(body1)["id"] == ids[0]
    resolver = Resolver(Fetcher(allow_private=True, ca_bundle=world[3]))
    assert notifications.verify_signature(first[notifications.SIGNATURE_HEADER], body1, resolver)["jti"] == \
        notifications.verify_signature(again[notifications.SIGNATURE_HEADER], body2, resolver)["jti"] == ids[0]


@pytest.mark.parametrize("value", [0, 0.01, 7200, "10", True, [5]])
def test_a_bad_notifications_interval_is_named(tmp_path, value):
    node, _ = Node.init(tmp_path / "h", "Fife Council", PASS, domain="fife.example")
    config = yaml.safe_load((node.home / "config.yaml").read_text())
    config["notifications_interval"] = value
    (node.home / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(CeadError) as info:
        notifications.interval(Node.open(node.home))
    assert info.value.code == "node.config_invalid" and "notifications_interval" in info.value.message


def test_the_notifications_interval_is_read_from_config(tmp_path):
    node, _ = Node.init(tmp_path / "h", "Fife Council", PASS, domain="fife.example")
    assert notifications.interval(node) == notifications.INTERVAL == 10
    node.config["notifications_interval"] = 0.5
    assert notifications.interval(node) == 0.5
    node.config["notifications_interval"] = None           # `notifications_interval:` left empty: the default
    assert notifications.interval(node) == 10
