"""Work limits proportional to what an approval allows, checked before anything is parsed.

A pushed table, or a pulled response, is parsed (CSV, counts) by the protocol stage; a manifest's columns are
compared with the approval's data items. Without limits, a 10 MB body under an approval for one row of counts, or a
manifest listing 100,000 columns, costs the gateway seconds of CPU before it is denied. So:

- a manifest may list at most ``MAX_COLUMNS`` columns (``transfer.too_many_columns``; checked when the request is
  built, before any stage);
- ``rowCount``, when given, is a non-negative integer (``transfer.row_count_invalid``; a missing one, where the
  approval limits rows, stays ``transfer.row_count_missing``);
- under an approval that limits rows per transfer, a table larger than those rows can need is refused unread
  (``transfer.body_too_large``): at most ``TABLE_OVERHEAD`` bytes plus ``CELL_BYTES`` per cell, for the header and
  the rows allowed (the approval's ``maxRowsPerTransfer``, or the manifest's ``rowCount`` when smaller), times the
  columns sent (the manifest's, else the approval's data items).

docs/gateway.md ("Work limits") documents the numbers.
"""
from __future__ import annotations

from typing import Any

from ..results import Problem
from .context import Attempt

MAX_COLUMNS = 1024        # columns a manifest may list
CELL_BYTES = 1024         # bytes a cell of a table may take (value, quotes, separator), on average
TABLE_OVERHEAD = 64 * 1024   # bytes allowed on top (a byte-order mark, line ends, a trailing newline, ...)


def row_count_invalid(manifest: dict) -> bool:
    rows = manifest.get("rowCount")
    return rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 0)


def manifest_problems(manifest: Any) -> list[Problem]:
    """Problems with a manifest's size and row count, whatever the approval."""
    if not isinstance(manifest, dict):
        return []
    problems = []
    columns = manifest.get("columns")
    if isinstance(columns, list) and len(columns) > MAX_COLUMNS:
        problems.append(Problem("transfer.too_many_columns", f"The manifest lists {len(columns)} columns; at most "
                                f"{MAX_COLUMNS} are read. Send the columns the approval covers.",
                                {"columns": len(columns), "limit": MAX_COLUMNS}))
    if row_count_invalid(manifest):
        problems.append(Problem("transfer.row_count_invalid", "The manifest's rowCount must be a non-negative "
                                f"integer (the rows sent, or for a pull at most how many are asked for); got "
                                f"{str(manifest.get('rowCount'))[:40]}.", {"rowCount": str(manifest.get('rowCount'))[:40]}))
    return problems


def table_limit(model, manifest: dict | None) -> int | None:
    """The most bytes a table under this approval and manifest can need, or None when the approval sets no rows."""
    rows = getattr(model, "max_rows_per_transfer", None)
    if rows is None:
        return None
    manifest = manifest or {}
    claimed = manifest.get("rowCount")
    if isinstance(claimed, int) and not isinstance(claimed, bool) and 0 <= claimed < rows:
        rows = claimed
    columns = manifest.get("columns")
    count = len(columns) if isinstance(columns, list) and columns else len(getattr(model, "data_items", None) or [])
    count = min(max(count, 1), MAX_COLUMNS)
    return TABLE_OVERHEAD + (int(rows) + 1) * count * CELL_BYTES


def body_too_large(model, manifest: dict | None, body: bytes | None) -> Problem | None:
    limit = table_limit(model, manifest)
    if body is None or limit is None or len(body) <= limit:
        return None
    return Problem("transfer.body_too_large", f"The table is {len(body)} bytes; under this approval "
                   f"({model.max_rows_per_transfer} rows at most) and manifest it can need at most {limit}. It was "
                   "not read.", {"bytes": len(body), "limit": limit})


def pushed_table_too_large(attempt: Attempt) -> bool:
    request = attempt.ctx.request
    return request.is_push and body_too_large(attempt.model, request.manifest, request.body) is not None


def check_limits(attempt: Attempt) -> list[Problem]:
    """Stage: a pushed table no larger than the approval can need (the protocol stage then does not read it)."""
    request = attempt.ctx.request
    if not request.is_push:
        return []
    problem = body_too_large(attempt.model, request.manifest, request.body)
    return [problem] if problem else []
