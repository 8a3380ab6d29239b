"""Standing approvals: routine requests that fall entirely inside what a DPO has signed are approved automatically,
and logged; anything else goes to the Information Asset Owner's queue with the reason.

The template is a **signed delegation**, not a setting: the DPO issues a ``DelegatedAuthorityCredential`` to this
node (the rule-bound approver) whose scope is exactly what may be approved without a person (datasets, purposes,
data items, recipients, bases, privacy protocol, cadence, period, ...). The node's ``config.yaml`` names which held
delegations it may use that way, with the conditions the automatic approval states::

    standing_approvals:
      - name: school-meals-monthly
        delegation: urn:uuid:...                 # a DelegatedAuthorityCredential held by this node
        conditions:                              # the approver's part of the approval subject
          lawfulBases: [...]
          dataCategories: [...]
          retention: {receivedData: P1Y}
          onwardSharing: Prohibited
          ...
        valid_for: P1Y                           # how long each automatic approval lasts (at most the delegation)

When a request arrives, ``consider(node, wallet, request_id)`` tries each rule in turn through exactly the same path
a person's approval takes (``wallet.requests.approve``: the guard rail checks the approval against the delegation,
its status, the lawful-basis rules, and nothing is signed otherwise). The first rule that yields a signed approval
wins; it is recorded as decided by ``standing:<name>`` and delivered. If none does, the request stays pending for
a person, and each rule's reason is recorded on it (``standing_note``), so the IAO sees why it was not automatic.
Standing approvals never widen anything: a request outside the delegation cannot be approved by it, automatically
or otherwise.
"""
from __future__ import annotations

import json
import logging
import re
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlmodel import Session

from verifier.results import CeadError

log = logging.getLogger(__name__)
RULE_KEYS = {"name", "delegation", "conditions", "valid_for"}
_DURATION = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?$")


def rules(node) -> list[dict]:
    """The ``standing_approvals`` of ``config.yaml``, checked (``node.config_invalid`` naming the entry)."""
    items = node.config.get("standing_approvals") or []
    where = "config.yaml standing_approvals"
    if not isinstance(items, list):
        raise CeadError("node.config_invalid", f"{where}: must be a list.")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or set(item) - RULE_KEYS:
            raise CeadError("node.config_invalid", f"{where}[{i}]: a mapping of {', '.join(sorted(RULE_KEYS))}.")
        if not isinstance(item.get("delegation"), str) or not item["delegation"]:
            raise CeadError("node.config_invalid", f"{where}[{i}].delegation: the id of a held delegation.")
        if not isinstance(item.get("conditions", {}), dict):
            raise CeadError("node.config_invalid", f"{where}[{i}].conditions: a mapping of approval subject fields.")
        valid_for = item.get("valid_for", "P1Y")
        if not (isinstance(valid_for, str) and _DURATION.match(valid_for) and valid_for != "P"):
            raise CeadError("node.config_invalid", f"{where}[{i}].valid_for: a duration such as P1Y or P6M.")
        out.append({"name": str(item.get("name") or f"rule-{i + 1}"), "delegation": item["delegation"],
                    "conditions": dict(item.get("conditions") or {}), "valid_for": valid_for})
    return out


def _until(valid_for: str, now: datetime) -> str:
    years, months, days = (int(x or 0) for x in _DURATION.match(valid_for).groups())
    month = now.month - 1 + months + 12 * years
    year, month = now.year + month // 12, month % 12 + 1
    day = min(now.day, 28)
    end = now.replace(year=year, month=month, day=day) + timedelta(days=days)
    return end.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _note(wallet, request_id: str, text: str) -> None:
    from .store import WalletRequest
    with Session(wallet.engine) as s:
        row = s.get(WalletRequest, request_id)
        if row is not None:
            row.standing_note = text[:4000]
            s.add(row)
            s.commit()


def consider(node, wallet, request_id: str, *, verify: str | bool | None = None, now: datetime | None = None):
    """Approve ``request_id`` automatically if a standing approval covers it; returns the ``Approved`` result, or
    None (the request stays pending, with the reasons in its ``standing_note``)."""
    from . import requests as sharing
    active = rules(node)
    if not active:
        return None
    now = now or datetime.now(timezone.utc)
    reasons = []
    for rule in active:
        try:
            done = sharing.approve(node, wallet, request_id, rule["conditions"], delegation=rule["delegation"],
                                   valid_until=_until(rule["valid_for"], now), issued_by=f"standing:{rule['name']}",
                                   verify=verify)
        except CeadError as exc:
            if exc.code == "sharing.not_pending":      # someone decided it meanwhile: nothing to do
                return None
            if exc.code == "sharing.undelivered":      # approved and recorded; the delivery can be retried
                log.warning("standing approval %s of %s not delivered: %s", rule["name"], request_id, exc.message)
                return None
            reasons.append(f"{rule['name']}: {exc.code}: {exc.message}")
            continue
        _note(wallet, request_id, f"Approved automatically under standing approval {rule['name']} "
                                  f"(delegation {rule['delegation']}).")
        return done
    _note(wallet, request_id, "Not approved automatically: " + " | ".join(reasons))
    return None


def consider_later(node, wallet, request_id: str) -> threading.Thread | None:
    """``consider`` in a background thread, after the request's sender has had its answer (the approval is
    delivered to the sender's own inbox, so it must not wait inside the sender's request)."""
    if not (node.config.get("standing_approvals") or []):
        return None

    def run():
        try:
            consider(node, wallet, request_id)
        except CeadError as exc:         # a standing_approvals section that is not valid: the IAO is told why
            _note(wallet, request_id, f"Standing approvals were not considered: {exc.code}: {exc.message}")
        except Exception:
            log.exception("standing approvals could not consider request %s", request_id)

    thread = threading.Thread(target=run, name=f"standing-{request_id}", daemon=True)
    thread.start()
    return thread
