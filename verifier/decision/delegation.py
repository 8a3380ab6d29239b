"""Stage 3b, who issued the approval: the dataset's controller, or the end of a delegation chain that starts at
the controller, every link valid, in force, allowed to act and within its parent's scope (scope only narrows);
and co-signed (a proof of its Data Integrity proof set) by every DID in its ``coSigners`` and in its chain's
``requiredCoSigners``.

The checks of the links themselves (``check_links``) are shared with the issuer's guard rail, which runs them on
the signer's own delegation chain before it signs anything under it."""
from __future__ import annotations

from datetime import datetime

from schemas import models

from ..results import Problem
from ..scope import approval_within, delegation_within
from .context import DELEGATION, Attempt, Cred, DecisionContext, state_code

DELEGATION_CODES = {
    "parentDelegation": "delegation.parent_mismatch",
    "onBehalfOf": "delegation.wrong_controller",
}


def check_delegation(attempt: Attempt) -> list[Problem]:
    """The approval's issuer acts for the controller (``attempt.links`` is the chain found), and the approval is
    co-signed by everyone it and its chain require."""
    problems: list[Problem] = []
    approval, controller = attempt.approval, attempt.controller
    if controller is not None and approval.issuer != controller:
        attempt.links = chain(attempt.ctx, approval, controller, attempt.relied_on, problems)
    problems += co_signers(approval, attempt.links)
    return problems


def scope_of(ctx: DecisionContext, cred: Cred) -> models.Scope:
    """The scope a verified delegation or approval grants, built once per exact credential (its digest) and kept
    with its model (``ModelCache``); the checks against it run on every decision. Read only."""
    build = (lambda m: m.scope()) if isinstance(cred.model, models.DataSharingApproval) else (lambda m: m.scope)
    cache = getattr(ctx.verifier, "models", None)
    if cache is None or not cred.result.verified or not cred.result.digest:
        return build(cred.model)
    return cache.model(f"{cred.result.digest}#scope", cred.model, build)


def relation(ctx: DecisionContext, kind: str, child: Cred, parent: Cred, compare) -> list:
    """``compare()``: the violations of ``child`` against ``parent`` (a delegation against its parent, an approval
    against its delegation), compared without a time, so a function of the two credentials' exact bytes and the
    vocabulary alone. Kept beside their models, keyed by both digests and the vocabulary's version (a changed
    vocabulary compares afresh); the time, issuer, status and request checks around it run on every decision."""
    cache, version = getattr(ctx.verifier, "models", None), getattr(ctx.vocabulary, "version", None)
    if cache is None or version is None or not (child.result.verified and child.result.digest
                                                and parent.result.verified and parent.result.digest):
        return compare()
    key = f"{kind}|{child.result.digest}|{parent.result.digest}|{version}"
    return list(cache.model(key, None, lambda _: tuple(compare())))


def in_force(scope: models.Scope, now: datetime, role: str, ident: str | None, where: dict) -> list[Problem]:
    if scope.not_before is not None and now < scope.not_before:
        return [Problem(f"{role}.not_yet_valid", f"The {role} {ident} is not in force until {scope.not_before}.",
                        where)]
    if scope.not_after is not None and now > scope.not_after:
        return [Problem(f"{role}.expired", f"The {role} {ident} ended {scope.not_after}.", where)]
    return []


def chain(ctx: DecisionContext, approval: Cred, controller: str, relied_on: list[str],
          problems: list[Problem]) -> list[Cred]:
    """The approval's issuer is not the controller: its delegationChain must lead from the controller to it.
    Returns the links found (the chain the approval relies on); adds what is wrong to ``problems`` and the links
    relied on to ``relied_on``."""
    model: models.DataSharingApproval = approval.model
    policy, vocabulary = ctx.policy, ctx.vocabulary
    refs = list(model.delegation_chain)   # Refs (id, digest)
    if not refs:
        problems.append(Problem("delegation.no_chain", f"The approval was issued by {approval.issuer}, which is not "
                                f"the controller {controller}, and names no delegation from the controller."))
        return []
    if len(refs) > policy.max_delegation_depth:
        problems.append(Problem("delegation.too_deep", f"The delegation chain has {len(refs)} links; the trust "
                                f"policy allows {policy.max_delegation_depth}."))
        return []
    delegations = ctx.credentials_of(DELEGATION)
    links: list[Cred] = []
    for ref in refs:
        link = next((c for c in delegations if c.id == ref.id and c.digest == ref.digest), None)
        if link is None:
            problems.append(Problem("delegation.missing", f"The delegation {ref.id} (digest "
                                    f"{ref.digest}) named by the approval is not in the presentation.",
                                    {"ref": ref.to_json()}))
            return links
        links.append(link)
    problems += check_links(ctx, links, controller, relied_on)
    last: models.DelegatedAuthority = links[-1].model
    if last.delegate != approval.issuer:
        problems.append(Problem("delegation.no_chain", f"The delegation chain ends at {last.delegate}, but the "
                                f"approval was issued by {approval.issuer}."))
    if "ApproveDisclosure" not in last.allowed_actions:
        problems.append(Problem("delegation.action_not_allowed", f"The delegation {links[-1].id} does not allow "
                                "approving disclosures."))
    for v in relation(ctx, "approval-within", approval, links[-1], lambda: approval_within(
            model, last, vocabulary=vocabulary, approval_scope=scope_of(ctx, approval),
            delegation_scope=scope_of(ctx, links[-1]))):
        problems.append(Problem("approval.exceeds_delegation", f"The approval grants more than the delegation "
                                f"{links[-1].id} allows: {v.dimension}: {v.message}.", {"dimension": v.dimension}))
    return links


def check_links(ctx: DecisionContext, links: list[Cred], controller: str,
                relied_on: list[str] | None = None) -> list[Problem]:
    """A delegation chain from ``controller``, root first (every link read as a ``DelegatedAuthority``): each link
    verified and in force (its scope's window at ``ctx.now``); the first issued by the controller, acting for it
    and naming no parent; every other issued by its parent's delegate, naming its parent by id and digest, and
    within its parent's scope (scope only narrows). What the chain is for (an approval: its issuer is the last
    delegate, who may approve, and it lies within the last link) is the caller's. The gateway runs it on an
    approval's ``delegationChain`` (:func:`chain`); the issuer's guard rail on the signer's own delegation and the
    delegations it rests on, before signing anything under it. Adds each link to ``relied_on``."""
    vocabulary = ctx.vocabulary
    problems: list[Problem] = []
    parent: Cred | None = None
    for depth, link in enumerate(links):
        d: models.DelegatedAuthority = link.model
        if relied_on is not None:
            relied_on.append(link.label)
        where = {"delegation": link.id, "depth": depth}
        if not link.result.verified:
            problems.append(Problem(state_code(link, "delegation"), f"The delegation {link.id} is not valid: "
                                    + "; ".join(p.message for p in link.result.problems), where))
        problems += in_force(scope_of(ctx, link), ctx.now, "delegation", link.id, where)
        expected_issuer = controller if parent is None else parent.model.delegate
        if link.issuer != expected_issuer:
            problems.append(Problem("delegation.issuer_mismatch", f"The delegation {link.id} was issued by "
                                    f"{link.issuer}, expected {expected_issuer}.", where))
        if parent is None:
            if d.controller != controller:
                problems.append(Problem("delegation.wrong_controller", f"The delegation {link.id} acts for "
                                        f"{d.controller}, not for the controller {controller}.", where))
            if d.parent_delegation is not None:
                problems.append(Problem("delegation.parent_mismatch", f"The first delegation {link.id} names a "
                                        "parent; the chain must start at the controller.", where))
        else:
            ref = d.parent_delegation   # the Ref's own fields (what ``d.parent`` dumps to a dict each time)
            if ref is None or ref.id != parent.id or ref.digest != parent.digest:
                problems.append(Problem("delegation.parent_mismatch", f"The delegation {link.id} does not name "
                                        f"{parent.id} (with its digest) as its parent.", where))
            for v in relation(ctx, "within-parent", link, parent, lambda: delegation_within(
                    d, parent.model, vocabulary=vocabulary, child_scope=scope_of(ctx, link),
                    parent_scope=scope_of(ctx, parent))):
                code = DELEGATION_CODES.get(v.dimension, "delegation.widens_parent")
                problems.append(Problem(code, f"The delegation {link.id} against its parent {parent.id}: "
                                        f"{v.dimension}: {v.message}.", {**where, "dimension": v.dimension}))
        parent = link
    return problems


def co_signers(approval: Cred, links: list[Cred]) -> list[Problem]:
    """Everyone the approval names in ``coSigners``, and everyone a delegation of its chain requires
    (``requiredCoSigners``), must have signed it: a proof of its Data Integrity proof set by that DID, besides
    the issuer's own (``VerificationResult.co_signers``). A vc+jwt approval carries one signature only."""
    model: models.DataSharingApproval = approval.model
    required = list(dict.fromkeys([*model.co_signers, *(did for link in links if link.model is not None
                                                        for did in link.model.grant.required_co_signers or [])]))
    missing = [did for did in required if did not in approval.result.co_signers]
    if not missing:
        return []
    why = (" A vc+jwt credential carries only its issuer's signature; a co-signed approval must be a Data "
           "Integrity credential with a proof set." if approval.result.format == "jwt" else "")
    return [Problem("approval.cosigner_missing", f"The approval {approval.id} is not co-signed by "
                    f"{', '.join(missing)} (a co-signer is someone other than the issuer)." + why,
                    {"approval": approval.id, "missing": missing})]
