"""Benchmark importing a DCAT catalogue of 1,000 datasets (Turtle, as CKAN serves it) into a node over HTTPS on
127.0.0.1, then refreshing it with one dataset removed. Target (issue 17): the import in under 2 s.

    .venv/bin/python benchmarks/catalogue.py [--n 1000]
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from helpers_https import https_server  # noqa: E402
from issuer import catalogue as cat  # noqa: E402
from issuer.node import Node  # noqa: E402
from test_catalogue import turtle  # noqa: E402

TARGET_S = 2.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="datasets in the catalogue (default 1000)")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    served = {"/catalog.ttl": turtle(args.n)}
    ok = True
    with tempfile.TemporaryDirectory() as tmp, https_server(static=served) as (base, ca_bundle):
        node, _ = Node.init(Path(tmp) / "h", "Fife Council", b"benchmark passphrase", domain="fife.example",
                            network={"ca_bundle": ca_bundle, "allow_private": True})
        for label, skip in (("first import", set()), ("refresh, one removed", {args.n // 2})):
            served["/catalog.ttl"] = turtle(args.n, skip=skip)
            start = time.perf_counter()
            result = cat.import_catalogue(node, base + "/catalog.ttl")
            took = time.perf_counter() - start
            passed = took < TARGET_S
            ok &= passed
            print(f"{label:24} {result.total:5} datasets  {took:6.2f} s   target < {TARGET_S:.1f} s   "
                  f"{'PASS' if passed else 'FAIL'}   (removed: {len(result.removed)})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
