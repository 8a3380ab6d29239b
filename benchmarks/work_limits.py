"""Benchmark the cost of denying oversized work (issue 11): a 10 MB pushed table under a threshold approval for a
few rows, and a manifest listing 100,000 columns. Both must be denied before anything is parsed.

    .venv/bin/python benchmarks/work_limits.py

Prints each figure, its target and PASS/FAIL; exits 1 on a FAIL.
"""
from __future__ import annotations

import logging
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from verifier.results import CeadError  # noqa: E402
from transfer_world import API, codes, world  # noqa: E402

TARGET_TABLE = 0.25     # s to deny a 10 MB table beyond what the approval allows (was 2-4 s)
TARGET_COLUMNS = 0.05   # s to refuse a 100,000-column manifest (was about 1 s)


def main() -> int:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    failed = False
    with world() as w:
        approval = w.make_approval(w.controller, privacyProtocol={"kind": "threshold", "minCellCount": 10},
                                   maxRowsPerTransfer=20)
        decider = w.decider(caches={"status_lists": {"size": 64, "ttl": 600}})   # as a gateway runs
        body = b"ageBand,localAuthority,outcome,count\n" + b"16-24,Fife,housed,12\n" * (10 * 1024 * 1024 // 21)
        request = w.request("POST", body=body, rowCount=20)
        vp = w.present(request, [approval, w.cert])
        decider.decide(w.present(w.request("POST", body=body[:200], rowCount=2), [approval, w.cert]),
                       w.request("POST", body=body[:200], rowCount=2))    # warm the caches (DID, status)
        started = time.perf_counter()
        decision = decider.decide(vp, request)
        took = time.perf_counter() - started
        ok = not decision.allowed and "transfer.body_too_large" in codes(decision) and took <= TARGET_TABLE
        failed |= not ok
        print(f"10 MB table, approval for 20 rows: denied in {took:.3f} s (target <= {TARGET_TABLE} s) "
              f"{'PASS' if ok else 'FAIL'}")
        from verifier.decision import TransferRequest
        columns = [f"column{i}" for i in range(100_000)]
        started = time.perf_counter()
        try:
            TransferRequest("GET", f"{API}/datasets/homelessness", manifest={"columns": columns})
            code = None
        except CeadError as exc:
            code = exc.code
        took = time.perf_counter() - started
        ok = code == "transfer.too_many_columns" and took <= TARGET_COLUMNS
        failed |= not ok
        print(f"100,000-column manifest: refused in {took:.4f} s (target <= {TARGET_COLUMNS} s) "
              f"{'PASS' if ok else 'FAIL'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
