"""The scope algebra: does one grant lie within another?

``within(child, parent)`` compares two ``schemas.models.Scope`` values dimension by dimension and returns every
violation (an empty list means the child lies inside the parent). It is used for delegation -> sub-delegation,
delegation -> approval, approval -> transfer and upstream approvals -> derived dataset. One rule per kind:

- hierarchies (datasets via DCAT isPartOf, purposes/categories/subjects via DPV broader): every child value lies
  within some parent value;
- sets (data items, legal bases, regimes, recipients, actions): child subset of parent;
- requirements that may only grow (recipient certifications, co-signers): the child keeps every parent requirement
  (requiring Cyber Essentials Plus satisfies a requirement for Cyber Essentials);
- ceilings (sensitivity, DPIA risk, onward sharing, rows, transfers per year, retention, delegation depth): child
  at most parent;
- time: the child window lies inside the parent window;
- protocol strictness: the child's privacy protocol is at least as strict (``verifier.protocols``).

A dimension the parent leaves as None is unrestricted; a child leaving it None where the parent restricts it is
a violation (unrestricted is wider than anything).
"""
from __future__ import annotations

import functools
from datetime import datetime
from typing import Any, Callable, Iterable

from schemas import vocab
from schemas.models import DataSharingApproval, DelegatedAuthority, Scope, credential_digest
from schemas.vocab import Vocabulary

from .protocols import Violation, at_least_as_strict
from .results import CeadError

__all__ = ["Violation", "within", "transfer_within", "derived_within", "delegation_within", "approval_within"]

_HIERARCHIES = ("datasets", "data_categories", "data_subjects", "purposes")
_SETS = ("data_items", "legal_bases", "regimes", "recipients", "actions")
_SCALES = {"max_sensitivity": vocab.SENSITIVITY, "max_dpia_risk": vocab.DPIA_RISK,
           "onward_sharing": vocab.ONWARD_SHARING}
_NUMBERS = ("max_rows_per_transfer", "max_transfers_per_year", "max_delegation_depth")
ANONYMISING = ("threshold", "differentialPrivacy")   # protocols checked at transfer that make an output anonymous


@functools.lru_cache(maxsize=128)
def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _show(values: Iterable[str]) -> list[str]:
    return sorted(vocab.compact(v) for v in values)


def _unrestricted(dim: str, parent_values: Any) -> Violation:
    return Violation(dim, f"{dim} is unrestricted but the parent allows only {parent_values}", ["(any)"])


def _hierarchy(dim: str, child: list[str] | None, parent: list[str] | None, voc: Vocabulary) -> list[Violation]:
    if parent is None:
        return []
    if child is None:
        return [_unrestricted(dim, _show(parent))]
    outside = [c for c in child if not voc.within_any(c, parent)]
    if outside:
        return [Violation(dim, f"{dim} {_show(outside)} do not lie within {_show(parent)}", _show(outside))]
    return []


def _set(dim: str, child: list[str] | None, parent: list[str] | None) -> list[Violation]:
    if parent is None:
        return []
    if child is None:
        return [_unrestricted(dim, _show(parent))]
    outside = [c for c in child if c not in set(parent)]
    if outside:
        return [Violation(dim, f"{dim} {_show(outside)} are not among {_show(parent)}", _show(outside))]
    return []


def _requirements(dim: str, child: list[str] | None, parent: list[str] | None, voc: Vocabulary) -> list[Violation]:
    dropped = [p for p in parent or [] if not any(voc.within(c, p) for c in child or [])]
    if dropped:
        return [Violation(dim, f"{dim} must keep the parent's requirements {_show(dropped)}", _show(dropped))]
    return []


def _ceiling(dim: str, child: Any, parent: Any, key: Callable[[Any], float],
             whose: str = "the parent's") -> list[Violation]:
    if parent is None:
        return []
    if child is None:
        return [_unrestricted(dim, f"up to {parent}")]
    if key(child) > key(parent):
        return [Violation(dim, f"{dim} {child} exceeds {whose} {parent}", [child])]
    return []


def _window(child: Scope, parent: Scope, at: datetime | None) -> list[Violation]:
    out = []
    if parent.not_before is not None and (child.not_before is None or child.not_before < parent.not_before):
        out.append(Violation("notBefore", f"starts {_ts(child.not_before)}, before the parent's "
                             f"{_ts(parent.not_before)}", [_ts(child.not_before)]))
    if parent.not_after is not None and (child.not_after is None or child.not_after > parent.not_after):
        out.append(Violation("notAfter", f"ends {_ts(child.not_after)}, after the parent's "
                             f"{_ts(parent.not_after)}", [_ts(child.not_after)]))
    if at is not None:
        out += _in_force(parent, at, "the parent")
    return out


def _in_force(scope: Scope, at: datetime, whose: str) -> list[Violation]:
    if scope.not_before is not None and at < scope.not_before:
        return [Violation("notBefore", f"{whose} is not in force until {_ts(scope.not_before)}", [_ts(at)])]
    if scope.not_after is not None and at > scope.not_after:
        return [Violation("notAfter", f"{whose} ended {_ts(scope.not_after)}", [_ts(at)])]
    return []


def _ts(value: datetime | None) -> str:
    return "(unbounded)" if value is None else value.isoformat().replace("+00:00", "Z")


def _moment(at: Any) -> datetime | None:
    if at is None or isinstance(at, datetime):
        if isinstance(at, datetime) and at.tzinfo is None:
            raise CeadError("scope.invalid", "The time of a scope check needs a time zone.")
        return at
    try:
        return vocab.parse_datetime(at)
    except ValueError as exc:
        raise CeadError("scope.invalid", str(exc)) from None


def within(child: Scope, parent: Scope, *, at: datetime | str | None = None,
           vocabulary: Vocabulary | None = None) -> list[Violation]:
    """Every way ``child`` is wider than ``parent``; empty if it lies inside. ``at`` (optional) also requires the
    parent to be in force at that moment. ``vocabulary`` defaults to ``schemas.vocab.registry()``."""
    voc = vocabulary or vocab.registry()
    when = _moment(at)
    out: list[Violation] = []
    for name in _HIERARCHIES:
        out += _hierarchy(_camel(name), getattr(child, name), getattr(parent, name), voc)
    for name in _SETS:
        out += _set(_camel(name), getattr(child, name), getattr(parent, name))
    out += _requirements("recipientRequirements", child.recipient_requirements, parent.recipient_requirements, voc)
    out += _requirements("requiredCoSigners", child.required_co_signers, parent.required_co_signers,
                         Vocabulary())
    if parent.privacy_protocol:
        if not child.privacy_protocol:
            out.append(Violation("privacyProtocol", "no privacy protocol, but the delegation requires one at "
                                 f"least as strict as: {', '.join(p.kind for p in parent.privacy_protocol)}",
                                 ["(none)"]))
        else:
            out += at_least_as_strict(child.privacy_protocol, parent.privacy_protocol)
    out += _window(child, parent, when)
    for name, scale in _SCALES.items():
        out += _ceiling(_camel(name), getattr(child, name), getattr(parent, name), scale.index)
    for name in _NUMBERS:
        out += _ceiling(_camel(name), getattr(child, name), getattr(parent, name), float)
    out += _ceiling("maxRetention", child.max_retention, parent.max_retention, vocab.duration_seconds)
    return out


# ------------------------------------------------------------------------------------------------ credentials

def _digest_or_none(credential: Any) -> str | None:
    try:
        return credential_digest(credential)
    except CeadError:
        return None


def delegation_within(child: DelegatedAuthority, parent: DelegatedAuthority | dict, *, at: Any = None,
                      vocabulary: Vocabulary | None = None, child_scope: Scope | None = None,
                      parent_scope: Scope | None = None) -> list[Violation]:
    """A sub-delegation against the delegation it names as parent: the parent must allow SubDelegate with depth
    left, be for the same controller, and (given as a credential dict) match the child's parentDelegation id and
    digest; the child's scope must lie within the parent's with one level of depth used up. ``child_scope`` /
    ``parent_scope``: the delegations' ``scope`` if already built (read only; the check itself always runs)."""
    out: list[Violation] = []
    if isinstance(parent, dict):
        ref = child.parent_delegation
        if ref is None or ref.id != parent.get("id") or ref.digest != _digest_or_none(parent):
            out.append(Violation("parentDelegation", "the parentDelegation id and digest do not match the parent "
                                 "credential", [child.parent]))
        try:
            parent = DelegatedAuthority.from_credential(parent)
        except CeadError as exc:
            return out + [Violation("parentDelegation", f"the parent is not a readable delegation: {exc.message}",
                                    [])]
    elif child.parent_delegation is None:
        out.append(Violation("parentDelegation", "a sub-delegation must name its parent delegation", [None]))
    if child.controller != parent.controller:
        out.append(Violation("onBehalfOf", f"the parent delegates for {parent.controller}, not {child.controller}",
                             [child.controller]))
    depth = parent.max_further_delegation_depth
    if "SubDelegate" not in parent.allowed_actions or depth == 0:
        out.append(Violation("maxDelegationDepth", "the parent delegation does not allow sub-delegation",
                             [child.delegate]))
        depth = 0
    if not isinstance(parent_scope, Scope) or isinstance(parent, dict):
        parent_scope = parent.scope
    bound = parent_scope.model_copy(update={"max_delegation_depth": None if depth is None else max(depth - 1, 0)})
    return out + within(child_scope if child_scope is not None else child.scope, bound, at=at,
                        vocabulary=vocabulary)


def approval_within(approval: DataSharingApproval, delegation: DelegatedAuthority, *, at: Any = None,
                    vocabulary: Vocabulary | None = None, approval_scope: Scope | None = None,
                    delegation_scope: Scope | None = None) -> list[Violation]:
    """An approval against the delegation its approver relies on: same controller as discloser, and the
    approval's grant within the delegation's scope (the delegation must allow ApproveDisclosure).
    ``approval_scope`` / ``delegation_scope``: their scopes if already built (read only)."""
    out = []
    delegation_scope = delegation_scope if delegation_scope is not None else delegation.scope
    if approval.discloser != delegation.controller:
        out.append(Violation("discloser", f"the delegation is for {delegation.controller}, not the discloser "
                             f"{approval.discloser}", [approval.discloser]))
    allowed = delegation_scope.recipients
    if allowed is not None:
        # a processor is given the data too (and counts as admitted to it for derived datasets), so under a
        # delegation limited to some recipients it must be one of them, or a compute party the delegation's
        # privacy protocol names (MPC nodes, PSI parties)
        named = {p for protocol in delegation_scope.privacy_protocol or []
                 for p in (*getattr(protocol, "compute_parties", []), *getattr(protocol, "parties", []))}
        extra = [p for p in approval.processors if p not in allowed and p not in named]
        if extra:
            out.append(Violation("processors", f"processors {extra} are neither recipients the delegation allows "
                                 "nor parties its privacy protocol names", extra))
    return out + within(approval_scope if approval_scope is not None else approval.scope(), delegation_scope, at=at,
                        vocabulary=vocabulary)


def transfer_within(manifest: dict, approval: DataSharingApproval, *, at: Any = None,
                    vocabulary: Vocabulary | None = None, approval_scope: Scope | None = None) -> list[Violation]:
    """A transfer manifest against the approval: in force at ``at`` (default: now), dataset within an approved
    dataset, every column approved, purpose (if stated) within an approved purpose, rowCount within the ceiling,
    recipient (if stated) approved. The privacy protocol is checked by ``verifier.protocols.check_transfer``."""
    voc = vocabulary or vocab.registry()
    if not isinstance(manifest, dict):
        return [Violation("manifest", "the transfer manifest must be a JSON object", [])]
    grant = approval_scope if approval_scope is not None else approval.scope()   # (read only)
    when = _moment(at) or vocab.utcnow()
    out = _in_force(grant, when, "the approval")
    dataset = manifest.get("dataset")
    if not isinstance(dataset, str):
        out.append(Violation("datasets", "the manifest must name the dataset (an IRI)", [dataset]))
    else:
        out += _hierarchy("datasets", [vocab.expand(dataset)], grant.datasets, voc)
    columns = manifest.get("columns")
    if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
        out.append(Violation("dataItems", "the manifest must list the columns sent (a non-empty list of names)",
                             [columns]))
    else:
        out += _set("dataItems", columns, grant.data_items)
    purpose = manifest.get("purpose")
    if purpose is not None:
        if not isinstance(purpose, str):
            out.append(Violation("purposes", "the manifest's purpose must be an IRI", [purpose]))
        else:
            out += _hierarchy("purposes", [vocab.expand(purpose)], grant.purposes, voc)
    recipient = manifest.get("recipient")
    if recipient is not None:
        out += _set("recipients", [recipient] if isinstance(recipient, str) else None, grant.recipients)
    rows = manifest.get("rowCount")
    if grant.max_rows_per_transfer is not None:
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
            out.append(Violation("rowCount", "the approval limits rows per transfer, so the manifest must state "
                                 "rowCount (a non-negative integer: the rows sent, or for a pull at most how many "
                                 "are asked for)", [rows]))
        else:
            out += _ceiling("maxRowsPerTransfer", rows, grant.max_rows_per_transfer, float, "the approval's")
    return out


def derived_within(approval: DataSharingApproval, upstream_approvals: list[DataSharingApproval | dict], *,
                   vocabulary: Vocabulary | None = None) -> list[Violation]:
    """Lawful-basis provenance for a derived dataset: the approval sharing it against the approvals that admitted
    each input (listed in its ``upstream``). The discloser must be a recipient (or processor) of every upstream
    approval: the input was lawfully admitted to the organisation now disclosing the output. Purposes within every upstream's purposes unless the approval records a
    compatibility assessment or a new gateway; retention no longer than the shortest upstream; onward sharing no
    more permissive than the strictest upstream; special category or criminal offence input stays so unless the
    output is anonymised by a protocol checked at transfer (threshold or differential privacy).
    Upstream given as credential dicts are also matched against the ``upstream`` references by id and digest."""
    voc = vocabulary or vocab.registry()
    out: list[Violation] = []
    refs = {(r.id, r.digest) for r in approval.upstream_}
    matched: set[tuple[str, str]] = set()
    models: list[DataSharingApproval] = []
    for item in upstream_approvals:
        if isinstance(item, DataSharingApproval):
            models.append(item)
            continue
        key = (item.get("id") if isinstance(item, dict) else None, _digest_or_none(item))
        if key not in refs:
            out.append(Violation("upstream", f"{key[0]} is not among the approval's upstream references (or its "
                                 "digest differs)", [key[0]]))
        matched.add(key)
        try:
            models.append(DataSharingApproval.from_credential(item))
        except CeadError as exc:
            out.append(Violation("upstream", f"upstream {key[0]} is not a readable approval: {exc.message}",
                                 [key[0]]))
    if approval.upstream_ and not upstream_approvals:
        out.append(Violation("upstream", "the approval names upstream approvals but none were supplied",
                             sorted(r[0] for r in refs)))
    elif upstream_approvals and not any(isinstance(i, DataSharingApproval) for i in upstream_approvals):
        missing = sorted(r[0] for r in refs - matched)
        if missing:
            out.append(Violation("upstream", f"upstream approvals {missing} were not supplied", missing))
    if not models:
        return out
    not_admitted = [u for u in models if approval.discloser not in (*u.recipients, *u.processors)]
    if not_admitted:
        agreements = sorted({u.agreement.id for u in not_admitted})
        out.append(Violation("discloser", f"the discloser {approval.discloser} was not a recipient or processor of "
                             f"the upstream approvals of agreements {agreements}, so their data were not admitted to "
                             "it", [approval.discloser]))
    if approval.compatibility_assessment is None and approval.new_gateway is None:
        outside = [p for p in approval.purposes if not all(voc.within_any(p, u.purposes) for u in models)]
        if outside:
            out.append(Violation("purposes", f"purposes {_show(outside)} are not within every upstream approval's "
                                 "purposes (record a compatibility assessment or a new gateway)", _show(outside)))
    limit = min((u.retention.derived_data or u.retention.received_data for u in models), key=vocab.duration_seconds)
    out += _ceiling("maxRetention", approval.retention.longest, limit, vocab.duration_seconds,
                    "the shortest upstream retention")
    strictest = min((u.onward_sharing for u in models), key=vocab.ONWARD_SHARING.index)
    out += _ceiling("onwardSharing", approval.onward_sharing, strictest, vocab.ONWARD_SHARING.index,
                    "the strictest upstream rule")
    anonymised = any(p.kind in ANONYMISING for p in approval.privacy_protocol)
    if not anonymised:
        floor = max((u.sensitivity for u in models), key=vocab.SENSITIVITY.index)
        special_in = any(voc.is_special(c) for u in models for c in u.data_categories)
        if vocab.SENSITIVITY.index(approval.sensitivity) < vocab.SENSITIVITY.index(floor):
            out.append(Violation("maxSensitivity", f"sensitivity {approval.sensitivity} is lower than the upstream "
                                 f"{floor}, and no anonymising protocol (threshold or differential privacy) applies",
                                 [approval.sensitivity]))
        if special_in and not any(voc.is_special(c) for c in approval.data_categories):
            out.append(Violation("dataCategories", "special category or criminal offence data upstream must stay "
                                 "so unless the output is anonymised by a checked protocol",
                                 _show(approval.data_categories)))
    return out
