"""Provenance over every hop: a derived approval's upstream approvals, their upstream approvals, and so on.

``walk(approval, lookup, ...)`` follows ``upstream`` references breadth-first from the approval a transfer relies
on. ``lookup(ref)`` is passed in (the gateway's: a credential of the presentation, verified, with its status
checked); it returns a ``Hop`` or None when the referenced approval was not presented. Every hop must be present,
valid and in force: revocation, suspension or expiry anywhere in the chain stops every derived transfer. A
reference that leads back to an approval already on the path is a cycle; a chain deeper than ``max_depth`` is
refused rather than followed. Each derived approval on the way is also held to the lawful-basis rules that need
its upstream (onward sharing, new purposes, lineage), with the signers its verification found.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable

from schemas.models import DataSharingApproval
from schemas.vocab import Vocabulary

from ..results import Problem
from .engine import check
from .rulebook import Rulebook

MAX_DEPTH = 8


@dataclass
class Hop:
    id: str
    model: DataSharingApproval
    state: str | None = None          # None: valid; else revoked | suspended | expired | invalid | ...
    signers: list[str] = field(default_factory=list)   # issuer and verified co-signers
    issuer: str | None = None


def walk(approval: DataSharingApproval, lookup: Callable[[dict], Hop | None], *, now: datetime | None = None,
         max_depth: int = MAX_DEPTH, from_depth: int = 2, rulebook: Rulebook | None = None,
         vocabulary: Vocabulary | None = None, competent_authorities: Iterable[str] = ()) -> list[Problem]:
    """Problems anywhere in the upstream chain of ``approval``. Hops at depth 1 are the direct upstream approvals
    (which the caller may check itself: ``from_depth`` says from which depth states and presence are reported here;
    cycles, depth and the lawful rules of every derived hop are always checked)."""
    problems: list[Problem] = []
    found: dict[str, Hop] = {}
    frontier: list[tuple[DataSharingApproval, tuple[str, ...], int]] = [(approval, ("(the approval)",), 0)]
    while frontier:
        derived, path, depth = frontier.pop(0)
        if not derived.upstream_:
            if depth >= 1:     # an upstream approval with no upstream of its own: held to the rulebook too
                problems += _rules_of(derived, path, found.get(path[-1]), [], rulebook, vocabulary,
                                      competent_authorities)
            continue
        if depth + 1 > max_depth:
            problems.append(Problem("provenance.too_deep", f"The upstream chain is deeper than {max_depth} hops; "
                                    "Cead does not follow it further, so the transfer is refused.",
                                    {"path": list(path), "limit": max_depth}))
            continue
        hops: list[DataSharingApproval] = []
        for ref in derived.upstream_:
            ref_json = ref.to_json()
            if ref.id in path:
                problems.append(Problem("provenance.cycle", f"The upstream approval {ref.id} refers back to itself "
                                        "through its own upstream chain.", {"path": [*path, ref.id]}))
                continue
            hop = lookup(ref_json)
            if hop is not None:
                found[ref.id] = hop
            where = {"ref": ref_json, "depth": depth + 1, "path": [*path, ref.id]}
            if hop is None:
                if depth + 1 >= from_depth:
                    problems.append(Problem("provenance.upstream_missing", f"The upstream approval {ref.id} ("
                                            f"{depth + 1} hops up) is not in the presentation.", where))
                continue
            if depth + 1 >= from_depth:
                if hop.state is not None:
                    problems.append(Problem(f"provenance.upstream.{hop.state}", f"The upstream approval {hop.id} "
                                            f"({depth + 1} hops up) is {hop.state.replace('_', ' ')}: a derived "
                                            "transfer cannot rest on it.", where))
                elif now is not None and not (hop.model.not_before <= now <= hop.model.not_after):
                    problems.append(Problem("provenance.upstream.expired", f"The upstream approval {hop.id} "
                                            f"({depth + 1} hops up) is not in force at {now.isoformat()}.", where))
            hops.append(hop.model)
            frontier.append((hop.model, (*path, ref.id), depth + 1))
        if depth >= 1:   # the approval itself (depth 0) is checked by the caller with its own signers
            problems += _rules_of(derived, path, found.get(path[-1]),
                                  hops if len(hops) == len(derived.upstream_) else None, rulebook, vocabulary,
                                  competent_authorities)
    return problems


def _rules_of(model: DataSharingApproval, path: tuple[str, ...], me: Hop | None,
              upstream: list[DataSharingApproval] | None, rulebook: Rulebook | None, vocabulary: Vocabulary | None,
              competent_authorities: Iterable[str]) -> list[Problem]:
    """The rulebook's unmet rules for an approval upstream of the one relied on, named as such."""
    return [Problem(p.code, f"Upstream approval {path[-1]}: {p.message}", {**p.detail, "path": list(path)})
            for p in check(model, rulebook, vocabulary=vocabulary, upstream=upstream,
                           signers=me.signers if me else None, issuer=me.issuer if me else None,
                           competent_authorities=competent_authorities)]

