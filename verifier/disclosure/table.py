"""A CSV table read strictly (UTF-8, a header of distinct names, every row as wide as the header)."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass

SUPPRESSED = {"", "*", "c", "[c]", "x", "[x]", ".."}   # markers of a suppressed cell in a published table


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]

    def column(self, name: str) -> list[str]:
        i = self.header.index(name)
        return [r[i] for r in self.rows]


def read_table(payload: bytes) -> Table:
    """The payload as a table; ValueError naming what is wrong."""
    try:
        text = payload.decode("utf-8-sig")
    except (UnicodeDecodeError, AttributeError):
        raise ValueError("the payload is not UTF-8 text") from None
    if "\x00" in text:
        raise ValueError("the payload contains NUL bytes")
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        raise ValueError(f"the payload is not valid CSV: {exc}") from None
    rows = [r for r in rows if r]
    if not rows:
        raise ValueError("the payload has no header row")
    header = [h.strip() for h in rows[0]]
    if len(set(header)) != len(header) or "" in header:
        raise ValueError("the header has empty or repeated column names")
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(f"line {n} has {len(row)} fields; the header has {len(header)}")
    return Table(header, rows[1:])


def count_value(cell: str) -> int | None:
    """A published count, or None for a suppression marker; ValueError for anything else."""
    cell = cell.strip()
    if cell in SUPPRESSED:
        return None
    if not (cell.isascii() and cell.isdigit()):
        raise ValueError(f"{cell[:20]!r} is not a count")
    return int(cell)
