"""Rounding: every published count is a multiple of the approved base (suppressed cells aside). Checked on the
output itself, so a gateway needs nothing but the bytes leaving."""
from __future__ import annotations

from ..results import Problem
from .table import SUPPRESSED, Table


def check(table: Table, count_columns: list[str], base: int) -> list[Problem]:
    """``disclosure.not_rounded`` for each published count that is not a multiple of ``base`` (a count that is not
    a whole number is ``protocol.payload_unparseable``)."""
    out: list[Problem] = []
    index = {h: i for i, h in enumerate(table.header)}
    for n, row in enumerate(table.rows, start=1):
        for column in count_columns:
            cell = row[index[column]].strip()
            if cell in SUPPRESSED:
                continue
            if not (cell.isascii() and cell.isdigit()):
                out.append(Problem("protocol.payload_unparseable", f"Row {n}, column '{column}': {cell[:20]!r} is not "
                                   "a count (a non-negative integer or a suppression marker).",
                                   {"row": n, "column": column}))
            elif int(cell) % base:
                out.append(Problem("disclosure.not_rounded", f"Row {n}, column '{column}': {cell} is not a multiple "
                                   f"of the rounding base {base}.", {"row": n, "column": column, "base": base}))
    return out
