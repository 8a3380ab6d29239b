"""Disclosure control and the privacy-budget ledger on this machine: figure, target, PASS/FAIL.

- the whole-table secondary-suppression audit of a 150 x 60 wide table with row and column totals and about 2,700
  suppressed cells (target: under 2 s);
- charges to the SQLite ledger, one after another (target: at least 50 a second).

Run: .venv/bin/python benchmarks/disclosure.py
"""
from __future__ import annotations

import random
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from issuer import db  # noqa: E402
from issuer.ledger import SqlLedger  # noqa: E402
from verifier.disclosure.suppression import audit  # noqa: E402
from verifier.disclosure.table import read_table  # noqa: E402
from verifier.ledger import Budget, Release  # noqa: E402


def wide_table(rows: int, cols: int, suppressed: float, seed: int = 1):
    rng = random.Random(seed)
    values = [[rng.randint(0, 60) for _ in range(cols)] for _ in range(rows)]
    lines = [",".join(["area", *[f"c{j}" for j in range(cols)], "total"])]
    for i, r in enumerate(values):
        lines.append(",".join([f"a{i}", *[("*" if rng.random() < suppressed else str(v)) for v in r], str(sum(r))]))
    totals = [sum(values[i][j] for i in range(rows)) for j in range(cols)]
    lines.append(",".join(["Total", *map(str, totals), str(sum(totals))]))
    return read_table(("\n".join(lines) + "\n").encode())


def report(name: str, figure: float, unit: str, target: str, ok: bool) -> bool:
    print(f"{name}: {figure:.3g} {unit} (target {target}) {'PASS' if ok else 'FAIL'}")
    return ok


def main() -> int:
    table = wide_table(150, 60, 0.3)
    started = time.perf_counter()
    audit(table, [h for h in table.header if h != "area"], min_count=10)
    ok = report("suppression audit, 150 x 60 table", time.perf_counter() - started, "s", "< 2 s",
                time.perf_counter() - started < 2)
    with tempfile.TemporaryDirectory() as tmp:
        ledger = SqlLedger(db.migrate(f"sqlite:///{tmp}/node.db"))
        budget = Budget(start=datetime(2026, 1, 1, tzinfo=timezone.utc), period_seconds=365 * 86400, epsilon=1e9)
        n, started = 200, time.perf_counter()
        for i in range(n):
            ledger.charge(Release(dataset="ds", approval=f"a{i}", recipient="r", epsilon=0.1), budget)
        rate = n / (time.perf_counter() - started)
        ok &= report("ledger charges (SQLite, sequential)", rate, "per s", ">= 50 per s", rate >= 50)
        ledger.engine.dispose()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
