"""Cell-key perturbation (the ABS / ONS method), reproduced at the provider, where the data are.

Every record of the provider's data carries a record key, a random integer in [0, modulus) drawn once and kept with
the record. A cell's key is the sum of its records' keys modulo ``modulus``, as a fraction of it (in [0, 1)); the
value published for a cell of original count ``c`` is ``c`` plus the perturbation of the ptable row for ``c`` (the
largest count listed, for larger counts) whose interval [lower, upper) holds the cell key. Because the cell key
depends only on which records are in the cell, the same cell is perturbed the same way in every release.

``check`` is the provider's check on a real output: from the record keys it holds (``{cell: [record key, ...]}``,
a cell named by the values of the table's other columns, in their order, plus the count column's name when there is
more than one) it recomputes every published value; one that differs was not produced by this ptable from these
records (``disclosure.cell_key_mismatch``).
"""
from __future__ import annotations

from typing import Iterable, Mapping

from schemas.models import CellKeyPerturbation

from ..results import Problem
from .table import SUPPRESSED, Table


def cell_key(record_keys: Iterable[int], modulus: int) -> float:
    """The cell key: the sum of the records' keys modulo ``modulus``, as a fraction of it."""
    return (sum(int(k) for k in record_keys) % modulus) / modulus


def perturbation(protocol: CellKeyPerturbation, count: int, key: float) -> int:
    """The ptable's perturbation for a cell of original ``count`` and cell key ``key``."""
    row_count = min(count, max(e.count for e in protocol.ptable))
    for entry in (e for e in protocol.ptable if e.count == row_count):   # rows in increasing ``upper``
        if key < entry.upper:
            return entry.perturbation
    return [e for e in protocol.ptable if e.count == row_count][-1].perturbation   # key == 1.0 cannot occur


def perturb(protocol: CellKeyPerturbation, record_keys: list[int]) -> int:
    """The value published for a cell holding records with ``record_keys``."""
    count = len(record_keys)
    return count + perturbation(protocol, count, cell_key(record_keys, protocol.modulus))


def check(table: Table, count_columns: list[str], protocol: CellKeyPerturbation,
          record_keys: Mapping[tuple, list[int]]) -> list[Problem]:
    """Problems with ``table`` as a cell-key perturbed output of the records whose keys are ``record_keys``."""
    out: list[Problem] = []
    index = {h: i for i, h in enumerate(table.header)}
    others = [h for h in table.header if h not in count_columns]
    for n, row in enumerate(table.rows, start=1):
        base = tuple(row[index[h]].strip() for h in others)
        for column in count_columns:
            published = row[index[column]].strip()
            if published in SUPPRESSED:
                continue
            if not (published.isascii() and published.isdigit()):
                out.append(Problem("protocol.payload_unparseable", f"Row {n}, column '{column}': {published[:20]!r} "
                                   "is not a count.", {"row": n, "column": column}))
                continue
            cell = base if len(count_columns) == 1 else base + (column,)
            keys = list(record_keys.get(cell, ()))
            expected = perturb(protocol, keys)
            if int(published) != expected:
                out.append(Problem("disclosure.cell_key_mismatch", f"Row {n}, column '{column}': {published} is not "
                                   "the value the approved ptable gives this cell from the provider's records.",
                                   {"row": n, "column": column}))
    return out
