"""Benchmark the computations that really run, beside the plain computation they replace.

- PSI cardinality of two sets of 100,000 identifiers (openmined-psi): the holder's node in a process of its own,
  serving HTTPS on 127.0.0.1, the learner's node in this one; every check of a real run included (presentation,
  approval, query budget, DP decoys, co-signed attestation). Beside it: the plain ``len(set(a) & set(b))``.
- Secure aggregation of a 1,000-cell table across three parties (MPyC, one process per party, approval checks,
  consent round, co-signed attestation). Beside it: the plain cell-by-cell sum.

Each line prints the figure, its target and PASS/FAIL. Targets are for this 2-core machine.

    .venv/bin/python benchmarks/computations.py [--psi-size 100000] [--cells 1000]
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from computations_world import (aggregation_inputs, aggregation_protocol, approval, psi_holder,  # noqa: E402
                                psi_protocol)
from transfer_world import Party, world  # noqa: E402
from verifier.attestation import check_attestation  # noqa: E402
from verifier.credential import Verifier  # noqa: E402
from wallet.computations.aggregation import run_secure_aggregation  # noqa: E402
from wallet.computations.attest import Signer  # noqa: E402
from wallet.computations.psi import run_psi_cardinality  # noqa: E402

PSI_TARGET_S = 180.0         # two sets of 100,000 on a shared 2-core machine: within three minutes
AGGREGATION_TARGET_S = 30.0  # 1,000 cells, three parties: within half a minute


def line(what: str, seconds: float, plain: float, target: float) -> bool:
    ok = seconds <= target
    print(f"{what:<52} {seconds:8.2f} s   plain {plain * 1e3:9.2f} ms   target <= {target:.0f} s   "
          f"{'PASS' if ok else 'FAIL'}")
    return ok


def bench_psi(w, size: int, folder: Path) -> bool:
    sss, glasgow = Party("sss"), Party("glasgow")
    protocol = psi_protocol(sss.did, glasgow.did, epsilon=1.0)
    credential = approval(w, sss, recipients=[glasgow.did], protocol=protocol)
    holder_items = [f"CHI-{i:010d}" for i in range(size)]
    learner_items = [f"CHI-{i:010d}" for i in range(size // 2, size + size // 2)]
    start = time.perf_counter()
    plain = len(set(holder_items) & set(learner_items))
    plain_s = time.perf_counter() - start
    import private_set_intersection.python as psi
    start = time.perf_counter()
    client, server = psi.client.CreateWithNewKey(False), psi.server.CreateWithNewKey(False)
    request = client.CreateRequest(learner_items)
    setup = server.CreateSetupMessage(0.0, len(learner_items), holder_items, psi.DataStructure.RAW)
    client.GetIntersectionSize(setup, server.ProcessRequest(request))
    library_s = time.perf_counter() - start
    print(f"  openmined-psi alone, one process, no network or checks: {library_s:.2f} s")
    with psi_holder(sss, holder_items, credential, folder, network=w.network) as (url, ca):
        start = time.perf_counter()
        result = run_psi_cardinality(url, Signer(glasgow.did, glasgow.key, glasgow.kid), learner_items, credential,
                                     holder=sss.did, epsilon=1.0, delta=1e-6, verifier=Verifier(), ca_bundle=ca)
        seconds = time.perf_counter() - start
    problems = check_attestation(result.attestation, result.output, protocol, verifier=Verifier(),
                                 approvals=[credential])
    print(f"  PSI: plain {plain}, released {result.cardinality} (epsilon 1), attestation problems {problems}")
    return line(f"PSI cardinality, 2 x {size:,} identifiers, HTTPS", seconds, plain_s, PSI_TARGET_S) \
        and not problems


def bench_aggregation(w, cells: int, folder: Path) -> bool:
    sg = Party("sg")
    councils = [Party("fife"), Party("dundee"), Party("pkc")]
    protocol = aggregation_protocol(councils, sg.did)
    approvals = [approval(w, c, recipients=[sg.did], protocol=[protocol]) for c in councils]
    labels = [f"cell-{i:04d}" for i in range(cells)]
    rng = random.Random(7)
    tables = [{label: rng.randrange(0, 500) for label in labels} for _ in councils]
    start = time.perf_counter()
    plain = [sum(t[label] for t in tables) for label in labels]
    plain_s = time.perf_counter() - start
    inputs = aggregation_inputs(councils, tables, approvals, folder)
    start = time.perf_counter()
    result = run_secure_aggregation(inputs, cells=labels, output_parties=[sg.did], network=w.network)
    seconds = time.perf_counter() - start
    same = result.table == dict(zip(labels, plain))
    print(f"  aggregation equals the plain sum: {same}")
    return line(f"secure aggregation, {cells:,} cells x 3 parties (MPyC)", seconds, plain_s,
                AGGREGATION_TARGET_S) and same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--psi-size", type=int, default=100_000, help="identifiers per PSI set (default 100,000)")
    parser.add_argument("--cells", type=int, default=1000, help="cells of the aggregated table (default 1,000)")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with world() as w, tempfile.TemporaryDirectory(prefix="cead-bench-") as tmp:
        ok = bench_psi(w, args.psi_size, Path(tmp) / "psi")
        ok = bench_aggregation(w, args.cells, Path(tmp) / "mpc") and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
