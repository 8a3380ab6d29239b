"""Differencing against the provider's earlier releases of the same series.

The provider's node keeps what it released (``PrivacyLedger.earlier_outputs``). A cell is identified by the values
of the table's dimension columns and its count column; when the same cell is published now and in an earlier release
of the series (same dimension columns) with a difference below the minimum cell count (and not zero), subtracting
one release from the other reveals a small group: ``disclosure.differencing``.
"""
from __future__ import annotations

from ..results import Problem
from .table import Table, count_value


def _cells(table: Table, count_columns: list[str]) -> dict[tuple, int]:
    dims = [h for h in table.header if h not in count_columns]
    di = [table.header.index(d) for d in dims]
    out: dict[tuple, int] = {}
    for row in table.rows:
        key = tuple(row[i].strip() for i in di)
        for c in count_columns:
            if c not in table.header:
                continue
            try:
                v = count_value(row[table.header.index(c)])
            except ValueError:
                continue
            if v is not None:
                out[(key, c)] = v
    return out


def check(table: Table, earlier: list[Table], count_columns: list[str], min_count: int) -> list[Problem]:
    out: list[Problem] = []
    dims = sorted(h for h in table.header if h not in count_columns)
    now = _cells(table, count_columns)
    for n, old in enumerate(earlier, start=1):
        if sorted(h for h in old.header if h not in count_columns) != dims:
            continue
        for (key, col), before in _cells(old, count_columns).items():
            after = now.get((key, col))
            if after is not None and 0 < abs(after - before) < min_count:
                out.append(Problem("disclosure.differencing", f"The cell {list(key)} '{col}' is {after} now and was "
                                   f"{before} in an earlier release of this series: the difference "
                                   f"{abs(after - before)} is below the minimum cell count of {min_count}.",
                                   {"cell": list(key), "column": col, "now": after, "before": before,
                                    "release": n}))
                if len(out) >= 20:
                    return out
    return out
