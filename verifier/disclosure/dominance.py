"""Dominance where the provider holds contributor-level data: each cell's contributions (e.g. each business's
turnover), before the cell's total is published.

- (n, k) rule: a cell is unsafe when its n largest contributions exceed k % of its total;
- p% rule: unsafe when the total less the two largest contributions is below p % of the largest, so the second
  largest contributor could estimate the largest to within p %.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping

from ..results import Problem


def check(cells: Mapping[object, Iterable[float]], n: int, k: float, p: float | None = None) -> list[Problem]:
    out = []
    for key, values in cells.items():
        xs = sorted((float(v) for v in values), reverse=True)
        if any(v < 0 or not math.isfinite(v) for v in xs):
            out.append(Problem("disclosure.dominance", f"Cell {key!r} has a negative or non-finite contribution; "
                               "dominance cannot be assessed, so it is not released.", {"cell": str(key)}))
            continue
        total = sum(xs)
        if total <= 0:
            continue
        top = sum(xs[:n])
        if top > k / 100 * total + 1e-9:
            out.append(Problem("disclosure.dominance", f"In cell {key!r} the {n} largest contributors make up "
                               f"{100 * top / total:.1f}% of the total; at most {k:g}% is allowed ({n},{k:g} rule).",
                               {"cell": str(key), "rule": "nk", "share": top / total}))
        elif p is not None and len(xs) >= 1:
            rest = total - sum(xs[:2])
            if rest < p / 100 * xs[0] - 1e-9:
                out.append(Problem("disclosure.dominance", f"In cell {key!r} the second largest contributor could "
                                   f"estimate the largest to within {100 * rest / xs[0]:.1f}%; at least {p:g}% is "
                                   "required (p% rule).", {"cell": str(key), "rule": "p", "p": p}))
    return out
