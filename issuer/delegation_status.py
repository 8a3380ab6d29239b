"""Whether the signer's own delegation is in force, for the guard rail: never sign under a delegation that is
suspended, revoked, expired or not yet valid.

The status is read through the verifier's own machinery (``verifier.status.StatusLists``, the node's network
settings), as the recipient's gateway will read it. When it cannot be established (a status list that cannot be
fetched or verified) nothing is signed: the guard rail fails closed, as the verifier does.
"""
from __future__ import annotations

from datetime import datetime, timezone

from schemas.values import parse_datetime
from verifier.results import CeadError, Problem

CODE = "delegation.not_in_force"
# what the verifier's status problems mean for the delegation
_STATUS = {"status.revoked": "revoked", "status.suspended": "suspended"}


def status_checker(node):
    """The node's status checker: ``node.status_checker`` when one was passed in (tests, a shared cache), else a
    ``StatusLists`` reading lists with the node's network settings (CA bundle, private addresses)."""
    checker = getattr(node, "status_checker", None)
    if checker is not None:
        return checker
    from verifier.credential import Verifier
    from verifier.did import Resolver
    from verifier.status import StatusLists
    fetcher = node.fetcher()
    return StatusLists(fetcher, verifier=Verifier(Resolver(fetcher)), ttl=0)


def delegation_state(node, delegation: dict, now: datetime | None = None) -> tuple[str, list[Problem]]:
    """``("active", [])`` or the delegation's state (``expired``, ``not_yet_valid``, ``revoked``, ``suspended``,
    ``unknown``) with the problems that show it."""
    now = now or datetime.now(timezone.utc)
    for name, state, late in (("validUntil", "expired", True), ("validFrom", "not_yet_valid", False)):
        value = delegation.get(name)
        if value is None:
            continue
        try:
            moment = parse_datetime(value)
        except (TypeError, ValueError):
            return "unknown", [Problem("credential.invalid", f"Its {name} {str(value)[:60]!r} is not a date.")]
        if (late and moment < now) or (not late and moment > now):
            return state, [Problem(f"delegation.{state}", f"Its {name} is {value}.")]
    problems = status_checker(node).check(delegation)
    for problem in problems:
        if problem.code in _STATUS:
            return _STATUS[problem.code], [problem]
    return ("unknown", problems) if problems else ("active", [])


def check_in_force(node, delegation: dict, now: datetime | None = None, *, rests_on: str | None = None) -> None:
    """Raise ``delegation.not_in_force`` (naming the state) unless the delegation is in force now. ``rests_on``:
    the id of the signer's own delegation when ``delegation`` is one it rests on (a link further up its chain)."""
    state, problems = delegation_state(node, delegation, now)
    if state == "active":
        return
    what = f"Your delegation {delegation.get('id') or '(no id)'}"
    if rests_on is not None:
        what = f"The delegation {delegation.get('id') or '(no id)'}, which your delegation {rests_on} rests on,"
    why = "; ".join(f"{p.code}: {p.message}" for p in problems)
    if state == "unknown":
        message = (f"{what} could not be shown to be in force, so nothing was signed: its status could not be "
                   f"established ({why}). Check that this node can reach the issuer's status list (network.ca_bundle "
                   "and network.allow_private in config.yaml for a local test) and try again.")
    else:
        fix = {"suspended": "Ask its issuer to reinstate it, or use another delegation.",
               "revoked": "A revoked delegation cannot be used again: ask its issuer for a new one.",
               "expired": "Ask its issuer for a new delegation.",
               "not_yet_valid": "Wait until it takes effect."}[state]
        message = f"{what} is {state.replace('_', ' ')}, so nothing was signed under it ({why}). {fix}"
    raise CeadError(CODE, message, status=state, delegation=delegation.get("id"),
                    problems=[p.to_dict() for p in problems], **({"under": rests_on} if rests_on else {}))
