"""k-anonymity and l-diversity of a record-level extract over declared quasi-identifiers.

An equivalence class is the set of records sharing one combination of quasi-identifier values. The extract is
k-anonymous when every class has at least k records (Sweeney, 2002), and distinct l-diverse when every class holds at
least l distinct values of each sensitive attribute (Machanavajjhala et al., 2007). pyCANON computes the same
measures but pins exact versions of numpy, pandas, scipy and reportlab, too heavy for a gateway, so these are
written against the definitions.
"""
from __future__ import annotations

from collections import defaultdict

from ..results import Problem
from .table import Table


def classes(table: Table, quasi_identifiers: list[str]) -> dict[tuple, list[int]]:
    idx = [table.header.index(q) for q in quasi_identifiers]
    out: dict[tuple, list[int]] = defaultdict(list)
    for n, row in enumerate(table.rows):
        out[tuple(row[i].strip() for i in idx)].append(n)
    return dict(out)


def _missing(table: Table, columns: list[str], what: str) -> list[Problem]:
    gone = [c for c in columns if c not in table.header]
    return [Problem("disclosure.columns_missing", f"The extract has no {what} column(s) {gone}; the approval "
                    f"declares them, so the extract cannot be checked.", {"columns": gone})] if gone else []


def k_anonymity(table: Table, quasi_identifiers: list[str], k: int) -> list[Problem]:
    """``disclosure.k_anonymity`` for each equivalence class smaller than k (at most 20 reported)."""
    missing = _missing(table, quasi_identifiers, "quasi-identifier")
    if missing:
        return missing
    small = [(key, rows) for key, rows in classes(table, quasi_identifiers).items() if len(rows) < k]
    return [Problem("disclosure.k_anonymity", f"{len(rows)} record(s) share the quasi-identifier values "
                    f"{dict(zip(quasi_identifiers, key))}; at least {k} must (k-anonymity).",
                    {"values": list(key), "records": len(rows), "k": k, "rows": [r + 1 for r in rows[:5]]})
            for key, rows in small[:20]]


def l_diversity(table: Table, quasi_identifiers: list[str], sensitive: list[str],
                l: int) -> list[Problem]:  # noqa: E741  (l-diversity's l)
    """``disclosure.l_diversity`` for each class with fewer than l distinct values of a sensitive attribute."""
    missing = _missing(table, [*quasi_identifiers, *sensitive], "quasi-identifier or sensitive")
    if missing:
        return missing
    out = []
    for s in sensitive:
        si = table.header.index(s)
        for key, rows in classes(table, quasi_identifiers).items():
            distinct = {table.rows[r][si].strip() for r in rows}
            if len(distinct) < l:
                out.append(Problem("disclosure.l_diversity", f"The records with quasi-identifier values "
                                   f"{dict(zip(quasi_identifiers, key))} have {len(distinct)} distinct value(s) of "
                                   f"'{s}'; at least {l} are required (l-diversity).",
                                   {"values": list(key), "attribute": s, "distinct": len(distinct), "l": l}))
            if len(out) >= 20:
                return out
    return out
