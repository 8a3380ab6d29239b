"""Benchmark the evidence log: inclusion proofs from a log of 1,000,000 entries, and what a receipt (signed, stored,
appended to the node's log, with its inclusion proof) adds to a gateway decision.

Targets (issue 15): an inclusion proof from a 1,000,000-entry log in under 5 ms (median); appending a receipt and
producing its inclusion proof adds at most 10% to a decision's time (median, repeated credentials: the fastest
decision, so the largest share; first-seen credentials reported too). Prints each figure, its target and PASS/FAIL; exit 1 on a FAIL.

    .venv/bin/python benchmarks/evidence.py [--entries 1000000] [--n 200] [--db PATH]
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from issuer import db  # noqa: E402
from issuer.keys import PrivateKey  # noqa: E402
from issuer.evidence.log import TransparencyLog  # noqa: E402
from verifier.tlog import merkle  # noqa: E402


PAYLOAD = b"ageBand,localAuthority,outcome,count\n16-24,Fife,housed,12\n25-34,Fife,housed,40\n"


def build(log: TransparencyLog, entries: int, batch: int = 20_000) -> float:
    started = time.perf_counter()
    size = log.size()
    while size < entries:
        n = min(batch, entries - size)
        log.append_many([("receipt", {"receipt": f"{i:064x}"}, {"n": i}) for i in range(size, size + n)])
        size += n
        print(f"\r  building the log: {size:,}/{entries:,}", end="", flush=True)
    print()
    return time.perf_counter() - started


def proof_times(log: TransparencyLog, size: int, n: int) -> list[float]:
    rng = random.Random(7)
    root = log.root(size)
    samples = []
    for _ in range(n):
        index = rng.randrange(size)
        started = time.perf_counter()
        proof = log.inclusion_proof(index, size)
        samples.append(time.perf_counter() - started)
        merkle.verify_inclusion(merkle.leaf_hash(log.entry(index)), index, size, proof, root)   # not timed
    return samples


def decision_overhead(n: int, tmp: Path) -> tuple[float, float]:
    from jwcrypto import jwk
    from issuer.evidence import receipts as store
    from transfer_world import world
    from verifier.receipts import ReceiptSigner, seal_payload

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    engine = db.migrate(f"sqlite:///{tmp / 'node.db'}")
    key = PrivateKey.generate()
    log = TransparencyLog(engine, "bench.example/log", key)
    node = type("BenchNode", (), {"engine": engine, "_tlog": log})()
    writer = store.ReceiptWriter(node, prove=True)   # group commits and proofs, off the decision's path
    proofs: list[int] = []
    acked: list[float] = []

    def sink(token, claims):
        submitted = time.perf_counter()

        def proved(future):
            stored = future.result()
            if stored.log_index is not None and stored.proof is not None:
                proofs.append(stored.log_index)
                acked.append(time.perf_counter() - submitted)
        writer.submit(token, claims).add_done_callback(proved)

    with world() as w:
        plain = w.decider(caches={"status_lists": {"size": 64, "ttl": 600}})
        with_evidence = w.decider(caches={"status_lists": {"size": 64, "ttl": 600}})
        with_evidence.receipt_signer = ReceiptSigner(jwk.JWK(**key.private_jwk()), kid="did:web:bench.example#key-1")
        with_evidence.receipt_sink = sink

        def run(decider, rounds, first_seen=False):
            samples = []
            for _ in range(rounds):
                if first_seen:
                    decider.verifier.clear()
                request = w.request()
                request.response_checked = True   # as behind the middleware: the response is hashed and sealed
                vp = w.present(request)
                started = time.perf_counter()
                decision = decider.decide(vp, request)
                seal_payload(decider, decision, PAYLOAD, "text/csv")   # the gateway seals a pull's response
                samples.append(time.perf_counter() - started)
                assert decision.allowed, decision.to_dict()
            return samples

        run(plain, 20)
        run(with_evidence, 20)
        out = {}
        for first_seen in (False, True):
            base, evid = [], []
            for _ in range(4):   # interleaved, so both see the same machine load
                base += run(plain, n // 4, first_seen)
                evid += run(with_evidence, n // 4, first_seen)
            out[first_seen] = (statistics.median(base), statistics.median(evid))
        writer.close()
    if len(proofs) < 2 * n:
        raise SystemExit(f"only {len(proofs)} receipts were logged and proved")
    return out, statistics.median(acked)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--n", type=int, default=200, help="proofs and decisions measured (default 200)")
    parser.add_argument("--db", type=Path, default=None, help="keep the built log in this SQLite file (reused)")
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "log.db"
        engine = db.migrate(f"sqlite:///{path}")
        log = TransparencyLog(engine, "bench.example/log", PrivateKey.generate())
        print(f"Cead evidence benchmark (SQLite {path})")
        seconds = build(log, args.entries)
        if seconds > 1:
            print(f"  appended {args.entries:,} entries in {seconds:.0f} s ({args.entries / seconds:,.0f}/s, batched)")
        samples = proof_times(log, args.entries, args.n)
        median, p95 = statistics.median(samples), sorted(samples)[int(len(samples) * 0.95)]
        ok = median < 0.005
        failed |= not ok
        print(f"  inclusion proof, {args.entries:,} entries: median {median * 1e3:.2f} ms, p95 {p95 * 1e3:.2f} ms"
              f"   target < 5 ms   {'PASS' if ok else 'FAIL'}")
        results, ack = decision_overhead(args.n, Path(tmp))
        for first_seen, (base, evid) in sorted(results.items(), reverse=True):
            share = (evid - base) / base
            ok = share <= 0.10
            failed |= not ok
            print(f"  decision ({'first-seen' if first_seen else 'repeated'} credentials): {base * 1e3:.2f} ms; with a "
                  f"receipt signed, stored, logged and its inclusion proof: {evid * 1e3:.2f} ms "
                  f"({share * 100:+.1f}%)   target <= +10%   {'PASS' if ok else 'FAIL'}")
        print(f"  a receipt is acknowledged (committed in the node's log, group commit) and its inclusion proof made "
              f"{ack * 1e3:.1f} ms after its decision (median; off the decision's path)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
