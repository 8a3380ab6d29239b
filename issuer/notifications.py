"""Telling people when something happens on the node: signed webhooks and Microsoft Teams messages, with retries.

Subscriptions are in ``config.yaml``::

    notifications:
      - name: ig-team                      # a label for the log
        url: https://prod-12.uksouth.logic.azure.com/workflows/...   # a Teams (Power Automate) workflow webhook
        kind: teams                        # teams: an Adaptive Card message; webhook: the event as signed JSON
        events: [request.received, request.decided, credential.revoked, credential.expiring]
        link: https://cead.fife.example    # optional: the node's pages, for the card's button

``notify(node, event, data)`` puts one message per matching subscription in the node's outbox
(``issuer_notification``) in the same database as everything else, so nothing is lost if the node stops before it
is sent. ``deliver_due(node)`` sends what is due, without following redirects; a receiver that does not answer 2xx
is tried again after 30 s, 1, 2, 4 ... minutes (doubling, at most an hour apart) up to ``MAX_ATTEMPTS`` times, then
the message is marked failed (``cead notifications list`` shows it). Each message is claimed in the database before
it is sent, so two senders (the server and ``cead notifications send`` from cron, or two server processes) never
send one twice; one whose sender was killed mid-POST is sent again after ``CLAIM_SECONDS``, with the same
``Cead-Event-Id`` header (the message id, also the webhook body's ``id`` and the signature's ``jti``: one per
message, the same on every attempt), by which the receiver drops a repeat. ``start_dispatcher(node)`` runs that
loop in a thread of the process that serves (under ``cead issuer serve``, the server's worker), at once and then
every ``notifications_interval`` seconds of ``config.yaml`` (``INTERVAL`` by default); ``cead notifications send``
runs it once.

Every message carries ``Cead-Event-Signature``: a compact JWS by the node's own key (``typ`` ``cead-event+jwt``,
``kid`` a DID URL of the node) whose claims are the node's DID (``iss``), the message id (``jti``), the time
(``iat``) and the SHA-256 of the exact body (``body_sha256``). A receiver verifies it against the node's DID
document: no shared secret to hand out, and signing happens only on the organisation's own node. Events carry ids,
types, names and links, never personal data.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional

from sqlalchemy import update
from sqlmodel import Field, SQLModel, select

from verifier.results import CeadError

from . import db

log = logging.getLogger(__name__)

EVENTS = {
    "request.received": "A data-sharing request arrived",
    "request.decided": "A data-sharing request was decided",
    "credential.revoked": "A credential was revoked",
    "credential.suspended": "A credential was suspended",
    "credential.reinstated": "A credential was reinstated",
    "credential.expiring": "A credential expires soon",
    "transfer.denied": "A transfer was denied",
}
KINDS = ("webhook", "teams")
MAX_ATTEMPTS = 8
FIRST_RETRY = 30          # seconds; doubles each time
MAX_RETRY = 3600
TIMEOUT = 10.0            # seconds: the whole POST
CLAIM_SECONDS = 60        # a message being sent is not due for others this long (well over TIMEOUT); one whose
                          # sender was killed mid-POST is sent again after it
INTERVAL = 10.0           # seconds between the served node's looks at the outbox (config.yaml notifications_interval)
INTERVAL_RANGE = (0.1, 3600.0)
SIGNATURE_HEADER = "Cead-Event-Signature"
EVENT_TYP = "cead-event+jwt"


class Notification(SQLModel, table=True):
    """One message to one subscriber: the outbox."""
    __tablename__ = "issuer_notification"
    id: str = Field(primary_key=True)
    subscription: str = Field(index=True)
    event: str = Field(index=True)
    subject: Optional[str] = Field(default=None, index=True)   # what it is about (a credential or request id)
    url: str
    body: str
    created: str = Field(default_factory=db.utcnow)
    attempts: int = 0
    next_attempt: str = Field(default_factory=db.utcnow, index=True)
    delivered_at: Optional[str] = None
    failed_at: Optional[str] = None
    last_error: Optional[str] = None


def subscriptions(node) -> list[dict]:
    """The ``notifications`` of ``config.yaml``, checked (``node.config_invalid`` naming what is wrong)."""
    items = node.config.get("notifications") or []
    where = "config.yaml notifications"
    if not isinstance(items, list):
        raise CeadError("node.config_invalid", f"{where}: must be a list of subscriptions.")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise CeadError("node.config_invalid", f"{where}[{i}]: must be a mapping.")
        unknown = set(item) - {"name", "url", "kind", "events", "link"}
        if unknown:
            raise CeadError("node.config_invalid", f"{where}[{i}]: unknown key(s) {', '.join(sorted(unknown))}.")
        url, kind, events = item.get("url"), item.get("kind", "webhook"), item.get("events")
        if not (isinstance(url, str) and url.startswith(("https://", "http://"))):
            raise CeadError("node.config_invalid", f"{where}[{i}].url: an https URL is needed.")
        if kind not in KINDS:
            raise CeadError("node.config_invalid", f"{where}[{i}].kind: {kind!r}; use webhook or teams.")
        if not (isinstance(events, list) and events and all(e in EVENTS for e in events)):
            raise CeadError("node.config_invalid", f"{where}[{i}].events: a list of {', '.join(EVENTS)}.")
        out.append({"name": str(item.get("name") or f"subscription-{i + 1}"), "url": url, "kind": kind,
                    "events": list(events), "link": item.get("link")})
    return out


def interval(node) -> float:
    """Seconds between the served node's looks at the outbox: ``notifications_interval`` of ``config.yaml``
    (``INTERVAL`` when absent), checked (``node.config_invalid``)."""
    value = node.config.get("notifications_interval")
    if value is None:
        return INTERVAL
    low, high = INTERVAL_RANGE
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise CeadError("node.config_invalid", f"config.yaml notifications_interval: {value!r}; give seconds from "
                        f"{low:g} to {high:g}.")
    return float(value)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def teams_card(node, event: str, data: dict, link: str | None) -> dict:
    """A Teams message with an Adaptive Card (the format Teams workflow and incoming webhooks accept)."""
    facts = [{"title": k.replace("_", " ").capitalize(), "value": str(v)[:300]} for k, v in data.items()
             if v is not None and not isinstance(v, (dict, list))]
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard", "version": "1.4",
        "body": [{"type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": True,
                  "text": f"{EVENTS[event]}: {node.name}"},
                 {"type": "FactSet", "facts": facts}]}
    if link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open in Cead", "url": link}]
    return {"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                                                "contentUrl": None, "content": card}]}


def notify(node, event: str, data: dict, *, subject: str | None = None, now: datetime | None = None) -> int:
    """Queue ``event`` for every subscription that asked for it; returns how many messages were queued. A node
    without subscriptions does nothing. Never raises for a receiver's sake (the outbox is local)."""
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}")
    wanted = [sub for sub in subscriptions(node) if event in sub["events"]]
    if not wanted:
        return 0
    now = now or datetime.now(timezone.utc)
    with node.session() as s:
        for sub in wanted:
            mid = f"urn:uuid:{uuid.uuid4()}"
            link = sub["link"].rstrip("/") + data["path"] if sub.get("link") and data.get("path") else sub.get("link")
            payload = ({"id": mid, "type": event, "time": _stamp(now), "source": node.did, "data": data}
                       if sub["kind"] == "webhook" else teams_card(node, event, data, link))
            s.add(Notification(id=mid, subscription=sub["name"], event=event, subject=subject, url=sub["url"],
                               body=json.dumps(payload, separators=(",", ":"), ensure_ascii=False),
                               next_attempt=_stamp(now)))
        s.commit()
    return len(wanted)


def emit(node, event: str, data: dict, *, subject: str | None = None) -> None:
    """``notify`` for the places where something has already happened (a status change committed, a request
    stored): a broken subscription list or database hiccup is logged, never undoes or fails what happened."""
    try:
        notify(node, event, data, subject=subject)
    except Exception:
        log.exception("could not queue the %s notification for %s", event, subject)


def sign(node, message_id: str, body: bytes, now: float | None = None) -> str:
    """The ``Cead-Event-Signature`` of a message: a JWS by the node's key over the body's SHA-256."""
    from .signing import sign_jwt
    claims = {"iss": node.did, "jti": message_id, "iat": int(now or time.time()),
              "body_sha256": hashlib.sha256(body).hexdigest()}
    return sign_jwt(claims, *node.signer(), typ=EVENT_TYP)


def verify_signature(signature: str, body: bytes, resolver, *, max_age: int = 3600) -> dict:
    """For receivers: check a ``Cead-Event-Signature`` against the sending node's DID document and the body;
    returns its claims (``iss`` is the node's DID) or raises ``CeadError("event.signature_invalid")``."""
    from verifier.jose import verify_jwt
    try:
        claims, kid = verify_jwt(signature, resolver, EVENT_TYP, "assertionMethod")
    except CeadError as exc:
        raise CeadError("event.signature_invalid", f"The event signature does not verify: {exc.message}") from None
    if not kid.startswith(str(claims.get("iss")) + "#"):
        raise CeadError("event.signature_invalid", "The event was signed by a key of another DID than its iss.")
    if claims.get("body_sha256") != hashlib.sha256(body).hexdigest():
        raise CeadError("event.signature_invalid", "The event body is not the one that was signed.")
    if abs(time.time() - float(claims.get("iat", 0))) > max_age:
        raise CeadError("event.signature_invalid", "The event signature is too old (a replay?).")
    return claims


def _retry_after(attempts: int) -> int:
    return min(MAX_RETRY, FIRST_RETRY * 2 ** max(0, attempts - 1))


def _claim(node, note: Notification, now: datetime) -> bool:
    """Take ``note`` for sending: it stays undue for others for ``CLAIM_SECONDS`` from now (the clock's, when a run
    has been going longer than that). False when another sender took it (or settled it) since it was read."""
    now = max(now, datetime.now(timezone.utc))
    with node.session() as s:
        taken = s.execute(update(Notification)
                          .where(Notification.id == note.id, Notification.attempts == note.attempts,
                                 Notification.next_attempt == note.next_attempt,
                                 Notification.delivered_at.is_(None), Notification.failed_at.is_(None))
                          .values(next_attempt=_stamp(now + timedelta(seconds=CLAIM_SECONDS))))
        s.commit()
        return taken.rowcount == 1


def deliver_due(node, *, now: datetime | None = None, stopping: Callable[[], bool] | None = None) -> dict:
    """Send every due message once; returns ``{"delivered", "retrying", "failed"}`` counts. Each message is claimed
    in the database first (``_claim``), so another sender running at the same time (``cead notifications send``
    beside a served node) skips it rather than sending it twice; a message whose sending is cut short (the process
    killed) is due again ``CLAIM_SECONDS`` later. ``stopping``: asked before each message; when it answers True,
    the rest waits for the next run. Each POST goes through the node's network rules (``node.fetcher().post``:
    https, its CA bundle, no loopback, private or link-local address unless ``network.allow_private``, checked when
    the name is resolved and again on the connected socket, so a name rebound to an internal address after the
    check is refused too; no environment proxies); a refusal is the message's error, naming the address and the
    setting."""
    now = now or datetime.now(timezone.utc)
    fetcher = node.fetcher()
    counts = {"delivered": 0, "retrying": 0, "failed": 0}
    with node.session() as s:
        due = list(s.exec(select(Notification).where(Notification.delivered_at.is_(None),
                                                     Notification.failed_at.is_(None),
                                                     Notification.next_attempt <= _stamp(now))
                          .order_by(Notification.created).limit(200)))
    try:
        for note in due:
            if stopping is not None and stopping():
                break
            if not _claim(node, note, now):
                continue
            body = note.body.encode("utf-8")
            error = None
            try:
                response = fetcher.post(note.url, body, timeout=TIMEOUT,
                                        headers={"Content-Type": "application/json", "Cead-Event-Id": note.id,
                                                 SIGNATURE_HEADER: sign(node, note.id, body)})
                if not 200 <= response.status < 300:
                    error = f"HTTP {response.status}"
            except CeadError as exc:
                error = f"{exc.code}: {exc.message}"
            with node.session() as s:
                row = s.get(Notification, note.id)
                row.attempts += 1
                if error is None:
                    row.delivered_at, row.last_error = _stamp(now), None
                    counts["delivered"] += 1
                elif row.attempts >= MAX_ATTEMPTS:
                    row.failed_at, row.last_error = _stamp(now), error
                    counts["failed"] += 1
                    log.warning("notification %s to %s failed for good: %s", row.id, row.subscription, error)
                else:
                    row.next_attempt = _stamp(now + timedelta(seconds=_retry_after(row.attempts)))
                    row.last_error = error
                    counts["retrying"] += 1
                s.add(row)
                s.commit()
    finally:
        fetcher.close()
    return counts


def check_expiring(node, days: int = 30, *, now: datetime | None = None) -> int:
    """Queue ``credential.expiring`` once for each active credential this node issued that ends within ``days``."""
    now = now or datetime.now(timezone.utc)
    limit = _stamp(now + timedelta(days=days))
    with node.session() as s:
        rows = list(s.exec(select(db.IssuedCredential).where(db.IssuedCredential.status == "active",
                                                             db.IssuedCredential.valid_until.is_not(None),
                                                             db.IssuedCredential.valid_until <= limit,
                                                             db.IssuedCredential.valid_until > _stamp(now))))
        told = {n.subject for n in s.exec(select(Notification).where(Notification.event == "credential.expiring"))}
    queued = 0
    for row in rows:
        if row.id in told:
            continue
        queued += notify(node, "credential.expiring", {"credential": row.id, "type": row.types.split(",")[-1],
                                                       "subject": row.subject, "valid_until": row.valid_until},
                         subject=row.id, now=now)
    return queued


def outbox(node, limit: int = 100) -> list[Notification]:
    with node.session() as s:
        return list(s.exec(select(Notification).order_by(Notification.created.desc()).limit(limit)))


def start_dispatcher(node, every: float | None = None) -> threading.Event:
    """Deliver due messages now and then every ``every`` seconds (default: ``interval(node)``) in a thread of this
    process, when the node has subscriptions; set the returned event to stop it. Start it in the process that
    stays (under a pre-forking server, the worker: a thread is not copied into a forked child). The thread also
    ends when this process's main thread has ended, after the message it is sending (its outcome recorded), so a
    graceful stop (SIGTERM) neither cuts a message short nor waits for the rest, which stay due for the next start
    (``issuer.background.every``)."""
    if not subscriptions(node):
        return threading.Event()
    from .background import every as periodically
    return periodically(lambda stopping: deliver_due(node, stopping=stopping),
                        interval(node) if every is None else float(every), "cead-notifications",
                        "notification dispatch")
