"""The PSI query budget, held by the node that does NOT learn the result.

A learner that could ask again and again with sets differing by one member would learn whether that member is in
the other party's set (membership inference), however the answers are noised. So the non-learning party's node keeps
the books: every query is charged, atomically and before its answer leaves, against the budget of the approval it
runs under (the approval's ``differentialPrivacy.budget``: at most ``maxReleases`` queries and ``epsilon`` in total
per ``period``, periods counted from the approval's ``notBefore``). A query the budget cannot afford is refused.
The ledger is a SQLite file of the node's own (``BEGIN IMMEDIATE``: racing queries are serialised).
"""
from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

from schemas import vocab
from schemas.errors import Problem

SCHEMA = """CREATE TABLE IF NOT EXISTS psi_query (
    run_id TEXT PRIMARY KEY, approval TEXT NOT NULL, period_start TEXT NOT NULL, epsilon REAL NOT NULL,
    learner TEXT NOT NULL, at TEXT NOT NULL, record TEXT NOT NULL, attested INTEGER NOT NULL DEFAULT 0)"""


class QueryBudget:
    """``charge(...)`` records a query or says why it cannot; ``record(run_id)`` returns what was recorded."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        with self._connect() as db:
            db.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    @staticmethod
    def period_start(anchor: datetime, period: str, now: datetime) -> datetime:
        from datetime import timedelta
        length = timedelta(seconds=vocab.duration_seconds(period))
        if now < anchor:
            return anchor
        return anchor + length * ((now - anchor) // length)

    def charge(self, *, run_id: str, approval: str, anchor: datetime, period: str, epsilon: float,
               max_epsilon: float | None, max_queries: int | None, learner: str, now: datetime,
               record: str) -> Problem | None:
        """Record one query costing ``epsilon`` under ``approval`` (its digest) if the period's budget allows it."""
        start = self.period_start(anchor, period, now).isoformat()
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            spent, count = db.execute("SELECT COALESCE(SUM(epsilon), 0), COUNT(*) FROM psi_query WHERE approval = ? "
                                      "AND period_start = ?", (approval, start)).fetchone()
            if max_queries is not None and count + 1 > max_queries:
                db.execute("ROLLBACK")
                return Problem("computation.query_budget_exhausted", f"The approval allows {max_queries} queries "
                               f"per {period}; {count} have been answered in the period that began {start}.",
                               {"queries": count, "maxQueries": max_queries, "periodStart": start})
            if max_epsilon is not None and spent + epsilon > max_epsilon + 1e-12:
                db.execute("ROLLBACK")
                return Problem("computation.query_budget_exhausted", f"This query (epsilon {epsilon}) would take "
                               f"the period's privacy loss to {spent + epsilon:g}, over the approval's {max_epsilon}.",
                               {"epsilonSpent": spent, "epsilon": epsilon, "maxEpsilon": max_epsilon,
                                "periodStart": start})
            db.execute("INSERT INTO psi_query (run_id, approval, period_start, epsilon, learner, at, record) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", (run_id, approval, start, epsilon, learner, now.isoformat(),
                                                        record))
            db.execute("COMMIT")
            return None
        except sqlite3.IntegrityError:
            db.execute("ROLLBACK")
            return Problem("computation.run_replayed", f"Run {run_id} has been answered already.", {"run": run_id})
        finally:
            db.close()

    def record(self, run_id: str) -> tuple[str, bool] | None:
        with self._connect() as db:
            row = db.execute("SELECT record, attested FROM psi_query WHERE run_id = ?", (run_id,)).fetchone()
        return (row[0], bool(row[1])) if row else None

    def mark_attested(self, run_id: str) -> bool:
        """True the first time only: a run is co-signed once."""
        db = self._connect()
        try:
            cur = db.execute("UPDATE psi_query SET attested = 1 WHERE run_id = ? AND attested = 0", (run_id,))
            return cur.rowcount == 1
        finally:
            db.close()
