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
a person's approval takes (``wallet.sharing.approve``: the guard rail checks the approval against the delegation,
its status, the lawful-basis rules, and nothing is signed otherwise). The first rule that yields a signed approval
wins; it is recorded as decided by ``standing:<name>`` and delivered. If none does, the request stays pending for
a person, and each rule's reason is recorded on it (``standing_note``), so the IAO sees why it was not automatic.
A rule whose template the node already knows cannot be used (ended by its dates, or revoked or suspended in this
node's register or as last read: ``wallet.sharing.known_out_of_force``) is refused before the request is claimed
("approving"), so a suspended standing approval never holds a request as "being approved"; the guard rail remains
the authority whenever a rule is tried.
Standing approvals never widen anything: a request outside the delegation cannot be approved by it, automatically
or otherwise.

A DPO can also make one on the standing-approvals page (``wallet.standing_pages``): :func:`create` signs the
template (a sub-delegation from this node to itself, or on the node's own behalf) and keeps the rule in
``HOME/standing/<name>.json``, read by :func:`rules` after those of ``config.yaml``. :func:`history` gives, for each
rule, what it approved and what fell outside it (from each request's ``decided_by`` and ``standing_note``).
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
FILE_KEYS = {"created", "created_by"}          # kept beside a rule made on the page
STANDING_DIR = "standing"
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}\Z")   # \Z: no trailing newline (which $ admits)
_DURATION = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?$")


def rules(node) -> list[dict]:
    """The standing approvals in force here: the ``standing_approvals`` of ``config.yaml``, then those a DPO made on
    the standing-approvals page (``HOME/standing/<name>.json``, :func:`create`), each checked
    (``node.config_invalid`` naming the entry). Each rule says where it comes from (``source``)."""
    out = _checked(node.config.get("standing_approvals") or [], "config.yaml standing_approvals", "config")
    names = {r["name"] for r in out}
    for path in sorted((node.home / STANDING_DIR).glob("*.json")):
        try:
            item = json.loads(path.read_text())
        except (OSError, ValueError):
            raise CeadError("node.config_invalid", f"{path} is not a JSON object; restore it or delete it.") from None
        meta = {k: item.pop(k) for k in list(item) if k in FILE_KEYS} if isinstance(item, dict) else {}
        for rule in _checked([item], str(path), "page"):
            if rule["name"] not in names:
                names.add(rule["name"])
                out.append({**rule, **meta})
    return out


def _checked(items, where: str, source: str) -> list[dict]:
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
                    "conditions": dict(item.get("conditions") or {}), "valid_for": valid_for, "source": source})
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


def _conditions(node, wallet, request_id: str, rule: dict) -> dict:
    """The rule's conditions over the request: a party the rule gives no lawful basis for (the requester, when
    the rule states only the discloser's) keeps the basis its request names, which the template must allow."""
    from . import sharing
    conditions = dict(rule["conditions"])
    given = conditions.get("lawfulBases")
    if isinstance(given, list):
        parties = {e.get("party") for e in given if isinstance(e, dict)}
        asked = sharing.get_request(wallet, request_id).request.get("lawfulBasis")
        if isinstance(asked, dict) and asked.get("party") not in parties:
            conditions["lawfulBases"] = [asked, *given]
    return conditions


def consider(node, wallet, request_id: str, *, verify: str | bool | None = None, now: datetime | None = None):
    """Approve ``request_id`` automatically if a standing approval covers it; returns the ``Approved`` result, or
    None (the request stays pending, with the reasons in its ``standing_note``). A rule whose delegation is known
    to be out of force is skipped without claiming the request (``sharing.approve`` refuses it before claiming:
    ``delegation.not_in_force``, in words, recorded as that rule's reason)."""
    from . import sharing
    active = rules(node)
    if not active:
        return None
    now = now or datetime.now(timezone.utc)
    reasons = []
    for rule in active:
        try:
            done = sharing.approve(node, wallet, request_id, _conditions(node, wallet, request_id, rule),
                                   delegation=rule["delegation"],
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
    try:
        if not rules(node):
            return None
    except CeadError:
        pass                             # consider() says why, on the request

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


# ---- making a standing approval on the page ------------------------------------------------------------------

def create(node, wallet, *, name: str, scope: dict, conditions: dict, valid_for: str, by: str,
           scopes=None, parent: str | None = None) -> dict:
    """Sign a standing approval's template and put it in force: a ``DelegatedAuthorityCredential`` from this node
    to itself (the rule-bound approver) with ``scope``, suspendable, under ``parent`` (a delegation this node holds:
    the template is then a sub-delegation, checked by the guard rail to lie within it) or, without one, on this
    organisation's own behalf; it is kept in the wallet and the rule in ``HOME/standing/<name>.json``. Nothing is
    left half-made: a refusal signs nothing, and a failure after signing revokes what was signed."""
    from issuer import issuing
    from schemas.models import credential_digest
    from . import sharing
    if not NAME.match(name or ""):
        raise CeadError("web.form_invalid", "A name is 2 to 63 lower-case letters, digits and dashes, starting with "
                        "a letter or digit (for example school-meals-monthly).", field="name")
    if any(r["name"] == name for r in rules(node)):
        raise CeadError("web.form_invalid", f"There is already a standing approval called {name!r}.", field="name")
    if not (isinstance(valid_for, str) and _DURATION.match(valid_for) and valid_for != "P"):
        raise CeadError("web.form_invalid", "Give how long each automatic approval lasts, such as P6M or P1Y.",
                        field="valid_for")
    subject: dict[str, Any] = {"id": node.did, "role": "StandingApprover", "onBehalfOf": node.did,
                               "allowedActions": ["ApproveDisclosure"], "scope": scope}
    options: dict[str, Any] = {"credentialStatus": {"type": "BitstringStatusListEntry",
                                                    "statusPurpose": ["revocation", "suspension"]}}
    if parent:
        signed_parent = sharing.resolve_delegation(node, wallet, parent)
        doc = sharing._document(signed_parent)
        subject["onBehalfOf"] = (doc.get("credentialSubject") or {}).get("onBehalfOf") or node.did
        subject["parentDelegation"] = {"id": doc.get("id"), "digest": credential_digest(signed_parent)}
        options["delegation"] = sharing.held_chain(wallet, signed_parent)[0]   # as signed, with what it rests on
        depth = (doc.get("credentialSubject") or {}).get("scope", {}).get("maxDelegationDepth")
        if isinstance(depth, int) and depth >= 2:      # the template itself delegates no further
            scope = {**scope, "maxDelegationDepth": depth - 1}
            subject["scope"] = scope
    credential = issuing.build_credential(node, "DelegatedAuthorityCredential", subject)
    issued = issuing.issue(node, credential, options, issued_by=by, scopes=scopes)
    try:
        imported = wallet.import_credential(issued.credential)
        if not imported.ok:
            raise CeadError("wallet.delegation_missing", "The template was signed but the wallet would not keep it: "
                            + "; ".join(getattr(p, "message", str(p)) for p in imported.problems))
        folder = node.home / STANDING_DIR
        folder.mkdir(exist_ok=True)
        rule = {"name": name, "delegation": issued.id, "conditions": conditions, "valid_for": valid_for,
                "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
                "created_by": by}
        tmp = folder / f".{name}.json.tmp"
        tmp.write_text(json.dumps(rule, indent=2, ensure_ascii=False))
        tmp.replace(folder / f"{name}.json")
    except BaseException:
        issuing.change_status(node, issued.id, "revoke", by=by, reason="The standing approval was not completed.")
        raise
    return {**rule, "source": "page"}


def history(wallet, rule_names: list[str]) -> dict[str, dict[str, list]]:
    """For each rule: the requests it approved (``approved``: decided by ``standing:<name>``) and those it did not
    cover (``outside``: ``(request, reason)`` from the request's ``standing_note``), newest first."""
    from . import sharing
    out: dict[str, dict[str, list]] = {n: {"approved": [], "outside": []} for n in rule_names}
    for row in sharing.list_requests(wallet):
        by = row.decided_by or ""
        if by.startswith("standing:") and by[len("standing:"):] in out:
            out[by[len("standing:"):]]["approved"].append(row)
        note = row.standing_note or ""
        if note.startswith("Not approved automatically: "):
            for part in note[len("Not approved automatically: "):].split(" | "):
                name, _, reason = part.partition(": ")
                if name in out:
                    out[name]["outside"].append((row, reason))
    def when(row):
        return (row.decided_at or row.received_at).timestamp() if (row.decided_at or row.received_at) else 0
    for lists in out.values():
        lists["approved"].sort(key=when, reverse=True)
        lists["outside"].sort(key=lambda pair: when(pair[0]), reverse=True)
    return out
