"""Secondary suppression audited over the whole table.

The table's additive structure is read from the table itself and from what the approval (and, only adding to it,
the manifest) declares:

- wide layout: a count column labelled as a total (``total``, ``all``, ``Total persons``, ``Scotland``, ...) or
  named as ``totalColumn`` is the sum of the row's other count columns;
- long layout: for each dimension column, rows that agree on every other dimension form a group; a row labelled as
  a total (or ``Scotland``) is the sum of the group's other rows, and a parent named in ``hierarchy`` is the sum of
  its listed parts (when all are in the group). Totals of totals (margins of margins) are groups too.

Every suppressed cell is an unknown (at least 0); every relation is an equation. A cell is *recoverable* when the
published cells and equations pin it to an interval narrower than the protection interval: found exactly by
Gaussian elimination (cells the equations determine) and by interval propagation over the equations and their
eliminated combinations. Each recoverable cell is a ``protocol.secondary_suppression_missing`` problem naming the
row, column and the interval an attacker can compute. A cell pinned at or above the minimum cell count is not
reported: it was a secondary suppression of a safe count.
"""
from __future__ import annotations

import math
from collections import defaultdict
from fractions import Fraction
from typing import Iterable

from ..results import Problem
from .table import Table, count_value

TOTAL_WORDS = {"total", "totals", "all", "scotland", "grand total", "overall", "sum", "all areas", "all ages",
               "all persons", "all people", "all households", "all local authorities", "all councils"}

Cell = tuple[int, str]          # (row index from 0, column name)
# exact elimination up to this many suppressed cells (under a second for 2,700 on a small machine); beyond,
# propagation only
MAX_ELIMINATION = 3000


def is_total_label(value: str) -> bool:
    v = value.strip().lower().replace("_", " ")
    return v in TOTAL_WORDS or v.startswith("total ") or v.startswith("all ") or v.endswith(" total")


def relations(table: Table, count_columns: list[str], hierarchy: dict[str, list[str]] | None = None,
              total_columns: Iterable[str] = (), extra_hierarchy: dict[str, list[str]] | None = None
              ) -> list[tuple[Cell, list[Cell]]]:
    """(parent cell, its part cells) for every additive relation the table shows. ``hierarchy`` (the approval's)
    replaces the label rule for the parents it names; ``extra_hierarchy`` (the manifest's) only adds relations."""
    hierarchy = hierarchy or {}
    extra_hierarchy = extra_hierarchy or {}
    out: list[tuple[Cell, list[Cell]]] = []
    declared_totals = set(total_columns)
    wide_totals = [c for c in count_columns if is_total_label(c) or c in declared_totals]
    parts = [c for c in count_columns if c not in wide_totals]
    for t in wide_totals:
        if parts:
            out += [((r, t), [(r, p) for p in parts]) for r in range(len(table.rows))]
    index = {h: i for i, h in enumerate(table.header)}
    dims = [h for h in table.header if h not in count_columns]
    children_of_any = {k for kids in hierarchy.values() for k in kids}
    for d in dims:
        others = [x for x in dims if x != d]
        groups: dict[tuple, list[int]] = defaultdict(list)
        for r, row in enumerate(table.rows):
            groups[tuple(row[index[o]].strip() for o in others)].append(r)
        for rows in groups.values():
            labels = [table.rows[r][index[d]].strip() for r in rows]
            if len(set(labels)) != len(labels) or len(rows) < 2:
                continue        # repeated labels: not a table this audit can read as additive
            at = dict(zip(labels, rows))
            applied = set()
            for source in (hierarchy, extra_hierarchy):
                for parent, kids in source.items():
                    if parent in at and kids and all(k in at for k in kids):
                        applied.add(parent) if source is hierarchy else None
                        for c in count_columns:
                            out.append(((at[parent], c), [(at[k], c) for k in kids]))
            for label, r in at.items():
                if label in applied or not is_total_label(label):
                    continue
                # a total over the group's rows that are neither totals nor parts of a declared parent in the group
                leaves = [at[x] for x in at if x != label and not is_total_label(x)
                          and not (x in children_of_any and any(p in at for p, ks in hierarchy.items() if x in ks))]
                if leaves:
                    for c in count_columns:
                        out.append(((r, c), [(k, c) for k in leaves]))
    return out


def _rref(eqs: list[tuple[dict, Fraction]], order: list) -> list[tuple[dict, Fraction]]:
    """Reduced row echelon form of the equations (coefficient maps, constants), exact in fractions."""
    rows = [(dict(c), Fraction(k)) for c, k in eqs]
    out = []
    for var in order:
        pivot = next((i for i, (c, _) in enumerate(rows) if c.get(var)), None)
        if pivot is None:
            continue
        pc, pk = rows.pop(pivot)
        a = pc[var]
        pc = {v: x / a for v, x in pc.items()}
        pk = pk / a
        def eliminate(c, k):
            f = c.get(var)
            if not f:
                return c, k
            c = dict(c)
            for v, x in pc.items():
                y = c.get(v, 0) - f * x
                if y:
                    c[v] = y
                else:
                    c.pop(v, None)
            return c, k - f * pk
        rows = [eliminate(c, k) for c, k in rows]
        out = [eliminate(c, k) for c, k in out]
        out.append((pc, pk))
    return out


def intervals(eqs: list[tuple[dict, Fraction]], variables: list, rounds: int = 60) -> dict:
    """Bounds [lo, hi] of each non-negative unknown under the equations (exact where they determine it)."""
    lo = {v: 0.0 for v in variables}
    hi = {v: math.inf for v in variables}
    reduced = _rref(eqs, variables) if len(variables) <= MAX_ELIMINATION else []
    for c, k in reduced:
        if len(c) == 1:
            [(v, a)] = c.items()
            lo[v] = hi[v] = float(k / a)
    system = [(c, float(k)) for c, k in [*eqs, *reduced] if c]
    for _ in range(rounds):
        changed = False
        for c, k in system:
            items = [(v, float(a)) for v, a in c.items()]
            # the sum's bounds once per equation (finite part + how many infinite terms), each term's share removed
            # in O(1): the whole pass is linear in the equation's length
            parts = [((b * lo[w] if b > 0 else b * hi[w]), (b * hi[w] if b > 0 else b * lo[w])) for w, b in items]
            lo_fin = sum(x for x, _ in parts if not math.isinf(x))
            hi_fin = sum(y for _, y in parts if not math.isinf(y))
            lo_inf = sum(1 for x, _ in parts if math.isinf(x))
            hi_inf = sum(1 for _, y in parts if math.isinf(y))
            for i, (v, a) in enumerate(items):
                x, y = parts[i]
                rest_lo = -math.inf if lo_inf - math.isinf(x) else lo_fin - (0.0 if math.isinf(x) else x)
                rest_hi = math.inf if hi_inf - math.isinf(y) else hi_fin - (0.0 if math.isinf(y) else y)
                new = sorted(((k - rest_hi) / a, (k - rest_lo) / a))
                if new[0] > lo[v] + 1e-9:
                    lo[v], changed = new[0], True
                if new[1] < hi[v] - 1e-9:
                    hi[v], changed = new[1], True
        if not changed:
            break
    return {v: (lo[v], hi[v]) for v in variables}


def audit(table: Table, count_columns: list[str], *, min_count: int, protection: int | None = None,
          hierarchy: dict[str, list[str]] | None = None, total_columns: Iterable[str] = (),
          extra_hierarchy: dict[str, list[str]] | None = None) -> list[Problem]:
    """Problems for every suppressed cell the table's totals pin to an interval narrower than ``protection``
    (default ``min_count``) that still reaches below ``min_count`` (a suppressed cell recovered as at least the
    minimum was a secondary suppression of a safe count, and reveals no small count). Cells that are not counts are
    the caller's to report (they are left out here)."""
    protection = min_count if protection is None else protection
    index = {h: i for i, h in enumerate(table.header)}
    values: dict[Cell, int | None] = {}
    for r, row in enumerate(table.rows):
        for c in count_columns:
            try:
                values[(r, c)] = count_value(row[index[c]])
            except ValueError:
                values[(r, c)] = -1          # unreadable: reported elsewhere, kept out of the equations
    eqs: list[tuple[dict, Fraction]] = []
    for parent, kids in relations(table, count_columns, hierarchy, total_columns, extra_hierarchy):
        cells = [*kids, parent]
        if any(values.get(x) == -1 for x in cells):
            continue
        coefs: dict = defaultdict(int)
        const = 0
        for k in kids:
            if values[k] is None:
                coefs[k] += 1
            else:
                const -= values[k]
        if values[parent] is None:
            coefs[parent] -= 1
        else:
            const += values[parent]
        coefs = {v: Fraction(a) for v, a in coefs.items() if a}
        if coefs:
            eqs.append((coefs, Fraction(const)))
    unknowns = sorted({v for c, _ in eqs for v in c})
    out = []
    for (r, c), (lo, hi) in intervals(eqs, unknowns).items():
        if hi - lo < protection and lo < min_count:
            shown = [round(lo, 6), None if math.isinf(hi) else round(hi, 6)]
            odd = " (the totals do not add up)" if lo > hi else ""
            out.append(Problem("protocol.secondary_suppression_missing", f"Row {r + 1}, column '{c}': the suppressed "
                               f"cell can be recovered from the table's totals to between {shown[0]:g} and "
                               f"{shown[1]:g}{odd}, narrower than the protection interval of {protection}.",
                               {"row": r + 1, "column": c, "interval": shown, "protection": protection}))
    return out
