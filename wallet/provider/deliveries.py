"""Push: the provider delivers each new release to a recipient's ingest endpoint, presenting its own approval
(``wallet.client.CeadAuth`` from the provider's node wallet), and records each delivery with its receipt.

The recipient's gateway (``CeadMiddleware``) decides the push: it checks that the provider holds an approval
naming it as a recipient for the dataset the endpoint collects, bound to this request and this body. A refusal
(401/403) is recorded with the gateway's reasons and not retried; a failure to reach the endpoint (or a 5xx) is
recorded and retried (``Provider`` waits longer after each failure).

The POST goes through ``guard``, a ``verifier.http.Fetcher`` with the provider's node's network rules
(``Node.fetcher()``), as every request a node makes to an address it was given: https only, never to a loopback,
private or link-local address unless the node's ``network.allow_private`` says so, checked when the name is resolved
and again on the connected socket, before the presentation or the release is sent; no environment proxies.

Every delivery is a line in ``<state>/deliveries.jsonl`` (appended and flushed to disk before the next), so a
crash loses no record and a restart does not deliver a release twice.
"""
from __future__ import annotations

import csv
import io
import json
import os
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests

from verifier.decision import RECEIPT_HEADER
from verifier.http import Fetcher, unreachable_reason, untrusted_certificate
from verifier.results import CeadError

from ..client import CeadAuth, _cead_cause, _reasons
from .config import PushTarget
from .sources import Release, iso

DELIVERED, REFUSED, FAILED = "delivered", "refused", "failed"


@dataclass
class Delivery:
    """One attempt to deliver a release. ``receipt`` is where the recipient gateway's signed decision receipt
    (its ``Cead-Receipt`` response header, when its trust policy names a receipt key) is recorded with the
    delivery; None when the gateway gave none."""
    series: str
    release: str
    target: str
    dataset: str
    outcome: str                 # delivered | refused | failed
    at: str
    status: int | None = None    # the recipient's HTTP status
    reasons: list[dict] = field(default_factory=list)
    receipt: str | None = None
    decision: str | None = None  # the recipient gateway's Cead-Decision header

    @property
    def final(self) -> bool:
        return self.outcome in (DELIVERED, REFUSED)


class DeliveryLog:
    def __init__(self, state: Path):
        state.mkdir(parents=True, exist_ok=True)
        self.path = state / "deliveries.jsonl"
        self._lock = threading.Lock()
        self.records: list[Delivery] = []
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    self.records.append(Delivery(**json.loads(line)))
                except (ValueError, TypeError):
                    continue     # a line cut short by a crash
        self._done = {(d.series, d.release, d.target) for d in self.records if d.final}

    def done(self, series: str, release: str, target: str) -> bool:
        return (series, release, target) in self._done

    def record(self, delivery: Delivery) -> None:
        with self._lock:
            with self.path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(asdict(delivery), separators=(",", ":")) + "\n")
                out.flush()
                os.fsync(out.fileno())
            self.records.append(delivery)
            if delivery.final:
                self._done.add((delivery.series, delivery.release, delivery.target))


def csv_shape(body: bytes) -> dict:
    """The manifest fields a CSV release states about itself: its ``columns`` and ``rowCount``."""
    try:
        rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error):
        return {}
    rows = [r for r in rows if r]
    return {"columns": rows[0], "rowCount": len(rows) - 1} if rows else {}


def push_url(target: PushTarget, release: Release) -> str:
    """The target URL with ``?release=<id>`` (in the URL, so the presentation binds it)."""
    parts = urlsplit(target.url)
    query = "&".join(q for q in (parts.query, urlencode({"release": release.id})) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def refusal(url: str, exc: CeadError, setting: str | None = None) -> str:
    """Why the node's network rules keep a push from ``url``, naming the address and, for a non-public one, the
    setting that would allow it (``setting``: the node's config.yaml)."""
    if exc.code != "http.address_refused":
        return exc.message
    return (f"{url} is at {exc.detail.get('address', 'a non-public address')}, a loopback, private or link-local "
            f"address, and the provider's node does not allow pushing there. For a local test only, allow it: "
            f"network.allow_private: true in {setting or 'the node config.yaml'} (`cead init "
            "--allow-private-addresses`), then restart the provider.")


def not_sent(url: str, exc: CeadError, setting: str | None = None) -> dict:
    """The reason of a push the node's network rules stopped (``provider.push_failed``; the rule's code is its
    ``cause``)."""
    detail = {"cause": exc.code, **{k: v for k, v in exc.detail.items() if k == "address"}}
    return {"code": "provider.push_failed", "message": f"Not pushed to {url}: {refusal(url, exc, setting)}",
            "detail": detail}


def deliver(wallet, series: str, release: Release, body: bytes, target: PushTarget, *,
            guard: Fetcher | None = None, verify: str | bool = True, timeout: float = 30.0,
            setting: str | None = None) -> Delivery:
    """POST one release to one recipient's ingest endpoint, presented with the provider's approval, through
    ``guard`` (the node's network rules; production rules when None). ``setting`` names where the node's
    ``network.allow_private`` is (its config.yaml), for a refusal's message."""
    guard = guard if guard is not None else Fetcher()
    url = push_url(target, release)
    now = iso(datetime.now(timezone.utc).replace(microsecond=0))
    base = dict(series=series, release=release.id, target=target.url, dataset=target.dataset, at=now)
    try:
        guard.check(url)       # before a presentation is made for it
    except CeadError as exc:
        return Delivery(**base, outcome=FAILED, reasons=[not_sent(url, exc, setting)])
    fields = csv_shape(body) if release.media_type.startswith("text/csv") else {}
    auth = CeadAuth(wallet, dataset=target.dataset, purpose=target.purpose, raise_on_denial=False,
                    manifest_fields=fields or None)
    try:
        response = guard.session().post(
            url, data=body, auth=auth, timeout=timeout, verify=verify, allow_redirects=False,
            headers={"Content-Type": release.media_type, "Cead-Release-Issued": iso(release.issued)})
    except CeadError as exc:   # the wallet holds nothing to present; a redirect; the connected peer refused
        if exc.code.startswith("wallet."):
            return Delivery(**base, outcome=REFUSED, reasons=[exc.problem.to_dict()])
        if exc.code.startswith("http."):
            return Delivery(**base, outcome=FAILED, reasons=[not_sent(url, exc, setting)])
        return Delivery(**base, outcome=FAILED, reasons=[{"code": "provider.push_failed", "message": exc.message,
                                                          "detail": {"cause": exc.code}}])   # e.g. a redirect
    except requests.exceptions.SSLError as exc:
        untrusted = untrusted_certificate(target.url, exc)
        return Delivery(**base, outcome=FAILED, reasons=[{"code": "provider.push_failed", "message":
                                                          f"Not pushed: {untrusted.message}",
                                                          "detail": {"cause": untrusted.code}}])
    except requests.RequestException as exc:
        refused = _cead_cause(exc)    # the guard's session refused the peer it connected to (DNS rebinding)
        if refused is not None:
            return Delivery(**base, outcome=FAILED, reasons=[not_sent(url, refused, setting)])
        return Delivery(**base, outcome=FAILED, reasons=[{"code": "provider.push_failed", "message":
                                                          f"Could not reach {target.url}: {unreachable_reason(exc)}."}])
    receipt = response.headers.get(RECEIPT_HEADER)
    decision = response.headers.get("Cead-Decision")
    if response.status_code in (401, 403):
        return Delivery(**base, outcome=REFUSED, status=response.status_code, receipt=receipt, decision=decision,
                        reasons=[p.to_dict() for p in _reasons(response.content)])
    if not 200 <= response.status_code < 300:
        return Delivery(**base, outcome=FAILED, status=response.status_code, receipt=receipt, decision=decision,
                        reasons=[{"code": "provider.push_failed",
                                  "message": f"{target.url} answered HTTP {response.status_code}."}])
    return Delivery(**base, outcome=DELIVERED, status=response.status_code, receipt=receipt, decision=decision)
