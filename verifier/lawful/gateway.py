"""The gateway's use of the engine: deny a transfer whose approval, or any approval upstream of it, the rulebook
says is unlawful (the problem's code is the rule id; its message and detail carry the citation).

``transfer_problems`` is the one call the decision makes. ``lookup(ref)`` is the decision's: the approval of the
presentation with that id and digest, as a ``provenance.Hop`` (verified; its state if not valid; its signers).
"""
from __future__ import annotations

from datetime import datetime
from typing import Callable, Iterable

from schemas.models import DataSharingApproval
from schemas.vocab import Vocabulary

from ..results import Problem
from .engine import check
from .provenance import MAX_DEPTH, Hop, walk
from .rulebook import Rulebook


def transfer_problems(model: DataSharingApproval, *, signers: Iterable[str], issuer: str | None,
                      lookup: Callable[[dict], Hop | None], rulebook: Rulebook, vocabulary: Vocabulary,
                      competent_authorities: Iterable[str] = (), now: datetime | None = None,
                      max_depth: int = MAX_DEPTH, memo: Callable | None = None) -> list[Problem]:
    """The lawful-basis rules for the approval a transfer relies on (with its direct upstream approvals when all
    are presented), and provenance over every further hop (presence, status, validity, cycles, depth, and the
    rules of each derived approval on the way). ``memo(complete, rules)``, if given, returns ``rules()`` or the
    problems it returned before for the same approval, upstream approvals (``complete``: all of them presented),
    rulebook and vocabulary (the rules take no time; provenance, which does, is walked every time)."""
    hops = [lookup(ref.to_json()) for ref in model.upstream_]
    upstream = [h.model for h in hops] if hops and all(h is not None for h in hops) else None
    authorities = list(competent_authorities)

    def rules() -> list[Problem]:
        return check(model, rulebook, vocabulary=vocabulary, upstream=upstream, signers=list(signers),
                     issuer=issuer, competent_authorities=authorities)
    problems = list(memo(upstream is not None, rules)) if memo is not None else rules()
    problems += walk(model, lookup, now=now, max_depth=max_depth, from_depth=2, rulebook=rulebook,
                     vocabulary=vocabulary, competent_authorities=authorities)
    return problems
