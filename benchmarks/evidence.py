"""Benchmark the evidence log: inclusion proofs from a log of 1,000,000 entries, and what a receipt (signed and
spooled on the deciding thread; stored, logged and proved by the sequencer process) adds to a gateway decision.

Targets (issue 15): an inclusion proof from a 1,000,000-entry log in under 5 ms (median); appending a receipt and
producing its inclusion proof adds at most 10% to a decision's time.

How the receipt's share is measured (robust on a shared machine): one decider, its receipt signer switched on and
off between decisions; each *pair* is the same kind of decision (a pull behind the middleware: decided, then its
response hashed, counted and sealed) made once without and once with its receipt, back to back, in alternating
order. The figure is the median over pairs of the per-pair ratio, of the deciding thread's CPU time (the target:
what the receipt adds to the decision's own work; ``time.thread_time``, so other processes on the machine and the
sequencer do not count) and, alongside, of wall time. Counted on the deciding thread: the request evidence (binding
and manifest digests), the response's SHA-256 and row count, the claims, the signature and the spool's one
``write``. The sequencer process (storing, appending to the log, making each inclusion proof) runs beside it and
its CPU per receipt is reported separately. Repeated credentials (the fastest decision, so the largest share) and
first-seen credentials (proof caches cleared) are both measured.

Under load (the same target, read for a busy gateway worker): 16 threads of one process decide and seal fresh
presentations (made beforehand, untimed) at the same time, as a gunicorn gthread worker does. Each round is three
runs of 96 decisions, in rotating order: without receipts, with receipts each signed alone, and with batched
receipts (the default: receipts sealed while a signature is in progress wait and share the next one,
``verifier.receipt_batch``). The figure is the median over 90 rounds of the ratio of the whole process's CPU time
per decision (``time.process_time``: every thread of this process, so the waiting and waking that batching costs
counts; the sequencer is another process and does not), with the quartiles of the per-round ratios and the mean
number of receipts per signature. The sequential pairs above are measured exactly as before: one thread, so every
receipt there is a batch of one (a plain receipt).

    .venv/bin/python benchmarks/evidence.py [--entries 1000000] [--n 400] [--db PATH] [--bulk | --no-bulk]
                                            [--threads 16] [--rounds 90] [--per-run 96]

``--bulk`` (the default for more than 100,000 entries) builds the log with direct SQLite inserts of the same rows
the log's own append path writes (entries, complete-subtree hashes, digests, head); it first builds a small log both
ways and checks the rows are identical. The proofs are then read by the log's own ``inclusion_proof``.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import os
import random
import sqlite3
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


def entry_for(i: int) -> tuple[str, dict, dict]:
    return "receipt", {"receipt": f"{i:064x}"}, {"n": i}


def build(log: TransparencyLog, entries: int, batch: int = 20_000) -> float:
    """The log's own append path (``append_many``, batched)."""
    started = time.perf_counter()
    size = log.size()
    while size < entries:
        n = min(batch, entries - size)
        log.append_many([entry_for(i) for i in range(size, size + n)])
        size += n
        print(f"\r  building the log: {size:,}/{entries:,}", end="", flush=True)
    print()
    return time.perf_counter() - started


def bulk_build(path: Path, entries: int, at: str, batch: int = 100_000, quiet: bool = False) -> float:
    """The same rows ``TransparencyLog.append_many`` writes (each entry's canonical bytes, the hash of every
    complete subtree it closes, its digest, the head), inserted directly into the migrated SQLite file."""
    from issuer.evidence.log import encode_entry
    started = time.perf_counter()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    if conn.execute("SELECT size FROM tlog_head WHERE id = 1").fetchone()[0]:
        raise SystemExit(f"{path} already holds a log: bulk building needs an empty one")
    template = '{"at":"%s","digests":{"receipt":"%%064x"},"kind":"receipt","meta":{"n":%%d}}' % at
    for i in (0, 1, entries - 1):   # the template is the canonical (RFC 8785) encoding of entry_for(i)
        assert (template % (i, i)).encode() == encode_entry(*entry_for(i), at), "bulk entry encoding differs"
    leaf, node = b"\x00", b"\x01"
    sha = hashlib.sha256
    edge: dict[int, bytes] = {}   # level -> the complete subtree waiting for its right sibling
    for lo in range(0, entries, batch):
        rows_entry, rows_hash, rows_digest = [], [], []
        for i in range(lo, min(lo + batch, entries)):
            data = (template % (i, i)).encode()
            rows_entry.append((i, "receipt", data, at))
            rows_digest.append((f"{i:064x}", i))
            h = sha(leaf + data).digest()
            rows_hash.append((0, i, h))
            level, j = 0, i
            while j & 1:
                h = sha(node + edge.pop(level) + h).digest()
                level, j = level + 1, j >> 1
                rows_hash.append((level, j, h))
            edge[level] = h
        conn.executemany("INSERT INTO tlog_entry (idx, kind, entry, at) VALUES (?, ?, ?, ?)", rows_entry)
        conn.executemany("INSERT INTO tlog_hash (level, idx, hash) VALUES (?, ?, ?)", rows_hash)
        conn.executemany("INSERT INTO tlog_digest (digest, idx) VALUES (?, ?)", rows_digest)
        conn.commit()
        if not quiet:
            print(f"\r  bulk-building the log: {min(lo + batch, entries):,}/{entries:,}", end="", flush=True)
    conn.execute("UPDATE tlog_head SET size = ? WHERE id = 1", (entries,))
    conn.commit()
    conn.close()
    if not quiet:
        print()
    return time.perf_counter() - started


def check_bulk_build(tmp: Path, entries: int = 1000) -> None:
    """Build a small log through the log's own append path and with :func:`bulk_build`: the rows must be equal."""
    real = TransparencyLog(db.migrate(f"sqlite:///{tmp / 'real.db'}"), "bench.example/log", PrivateKey.generate())
    real.append_many([entry_for(i) for i in range(entries)])
    at = real.entries(0, 1)[0][1].decode().split('"at":"', 1)[1].split('"', 1)[0]
    db.migrate(f"sqlite:///{tmp / 'bulk.db'}").dispose()
    bulk_build(tmp / "bulk.db", entries, at, quiet=True)
    for table, order in (("tlog_entry", "idx"), ("tlog_hash", "level, idx"), ("tlog_digest", "idx"),
                         ("tlog_head", "id")):
        a, b = (sqlite3.connect(tmp / name).execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()
                for name in ("real.db", "bulk.db"))
        if a != b:
            raise SystemExit(f"the bulk build writes other {table} rows than the log's append path")


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


def load_overhead(w, decider, signer, submitted: dict, threads: int, rounds: int, per_run: int) -> dict:
    """Decisions under load, as a gthread worker makes them: ``threads`` threads of one process each deciding and
    sealing fresh presentations (made beforehand, untimed) at the same time. Runs with and without receipts
    alternate (``rounds`` of each, ``per_run`` decisions a run); the figure is the median over rounds of the ratio
    of the whole process's CPU time per decision (``time.process_time``: every thread of this process; the
    sequencer is another process and does not count), with the mean batch size observed (receipts per signature:
    receipts sealed at the same moment share one signature, ``verifier.receipt_batch``)."""
    import itertools
    import threading
    from verifier.receipts import ReceiptSigner, seal_payload

    def run(config) -> tuple[float, float, int, int]:
        receipt = config is not None
        decider.receipt_signer = config
        work = []
        for _ in range(per_run):
            request = w.request()
            request.response_checked = True
            request.receipt_batch = True   # the client reads batched receipts (Cead-Receipt-Forms: batch)
            work.append((w.present(request), request))
        taken = itertools.count()
        start = threading.Barrier(threads + 1)
        failures: list = []

        def worker() -> None:
            start.wait()
            try:
                while True:
                    i = next(taken)   # atomic under the interpreter lock
                    if i >= per_run:
                        return
                    vp, request = work[i]
                    decision = decider.decide(vp, request)
                    seal_payload(decider, decision, PAYLOAD, "text/csv")
                    if not decision.allowed or (decision.receipt is not None) != receipt:
                        failures.append(decision.to_dict())
                    elif receipt:
                        submitted[decision.evidence["jti"]] = time.time()
            except BaseException as exc:   # noqa: BLE001  (reported below)
                failures.append(repr(exc))

        pool = [threading.Thread(target=worker) for _ in range(threads)]
        for t in pool:
            t.start()
        signed_before = config.batches if receipt else (0, 0)
        cpu, wall = time.process_time(), time.perf_counter()
        start.wait()
        for t in pool:
            t.join()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        signed_after = config.batches if receipt else (0, 0)
        if failures:
            raise SystemExit(f"under load: {len(failures)} decisions failed, e.g. {failures[0]}")
        return (cpu / per_run, wall / per_run, signed_after[0] - signed_before[0],
                signed_after[1] - signed_before[1])

    plain = ReceiptSigner(signer._key, kid=signer.kid, batch=False)   # the same key, every receipt signed alone
    configs = {"off": None, "plain": plain, "batched": signer}
    for config in configs.values():   # warm up each
        run(config)
    cpu: dict[str, list[float]] = {name: [] for name in configs}
    ratios: dict[str, list[float]] = {"plain": [], "batched": []}
    signatures = sealed = 0
    names = list(configs)
    for i in range(rounds):
        order = names[i % 3:] + names[:i % 3]   # rotate who goes first
        got = {name: run(configs[name]) for name in order}
        for name in names:
            cpu[name].append(got[name][0])
        for name in ratios:
            ratios[name].append(got[name][0] / got["off"][0] - 1)
        signatures += got["batched"][2]
        sealed += got["batched"][3]
    return {"threads": threads, "rounds": rounds, "per_run": per_run,
            "cpu": {name: statistics.median(v) for name, v in cpu.items()},
            "ratio": {name: statistics.median(v) for name, v in ratios.items()},
            "quartiles": {name: statistics.quantiles(v, n=4)[::2] for name, v in ratios.items()},
            "batch": sealed / signatures if signatures else 0.0, "signatures": signatures, "sealed": sealed}


def decision_overhead(n: int, tmp: Path, threads: int = 16, rounds: int = 90, per_run: int = 96) -> dict:
    """Pairs of decisions without and with a receipt (see the module's note). With a receipt the gateway signs it
    in-line and spools it (``issuer.evidence.spool``: one write call; that is when it is acknowledged); a sequencer
    in its own process stores it, appends it to the node's log and makes its inclusion proof, in group commits."""
    import resource
    import subprocess
    from jwcrypto import jwk
    from issuer.evidence import receipts as store
    from issuer.evidence.spool import ReceiptSpool, pending
    from transfer_world import world
    from verifier.receipts import ReceiptSigner, seal_payload

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    url = f"sqlite:///{tmp / 'node.db'}"
    engine = db.migrate(url)
    key = PrivateKey.generate()
    spool_dir = tmp / "spool"
    spool = ReceiptSpool(spool_dir)
    report = open(tmp / "sequenced.txt", "w")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    sequencer = subprocess.Popen([sys.executable, "-m", "issuer.evidence.spool", str(spool_dir), "--database", url,
                                  "--origin", "bench.example/log", "--prove", "--report"], cwd=ROOT, stdout=report,
                                 stderr=open(tmp / "sequencer.log", "w"))
    submitted: dict[str, float] = {}
    signer = ReceiptSigner(jwk.JWK(**key.private_jwk()), kid="did:web:bench.example#key-1")

    with world() as w:
        decider = w.decider(caches={"status_lists": {"size": 64, "ttl": 600}})
        decider.receipt_sink = spool

        def once(receipt: bool, first_seen: bool) -> tuple[float, float]:
            decider.receipt_signer = signer if receipt else None
            if first_seen:
                decider.verifier.clear()
            request = w.request()
            request.response_checked = True   # as behind the middleware: the response is hashed and sealed
            request.receipt_batch = True      # as this wallet's client asks (alone, it is signed alone anyway)
            vp = w.present(request)
            started, started_cpu = time.perf_counter(), time.thread_time()
            decision = decider.decide(vp, request)
            seal_payload(decider, decision, PAYLOAD, "text/csv")   # the gateway seals a pull's response
            cpu, wall = time.thread_time() - started_cpu, time.perf_counter() - started
            assert decision.allowed, decision.to_dict()
            assert (decision.receipt is not None) == receipt
            if receipt:
                submitted[decision.evidence["jti"]] = time.time()
            return wall, cpu

        for i in range(40):
            once(i % 2 == 0, False)
        out = {}
        for first_seen in (False, True):
            pairs = []
            for i in range(n):
                order = (False, True) if i % 2 == 0 else (True, False)   # alternate who goes first
                got = {receipt: once(receipt, first_seen) for receipt in order}
                pairs.append((got[False], got[True]))
            out[first_seen] = {
                "wall": (statistics.median(p[0][0] for p in pairs), statistics.median(p[1][0] for p in pairs)),
                "cpu": (statistics.median(p[0][1] for p in pairs), statistics.median(p[1][1] for p in pairs)),
                "wall_ratio": statistics.median(p[1][0] / p[0][0] for p in pairs) - 1,
                "cpu_ratio": statistics.median(p[1][1] / p[0][1] for p in pairs) - 1,
                "cpu_added": statistics.median(p[1][1] - p[0][1] for p in pairs)}
        decider.verifier.clear()
        out["load"] = load_overhead(w, decider, signer, submitted, threads, rounds, per_run)
    deadline = time.monotonic() + 120
    while pending(spool_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    spool.close()
    sequencer.terminate()
    sequencer.wait(30)
    report.close()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    sequenced, startup = {}, 0.0
    for line in open(tmp / "sequenced.txt"):
        if line.startswith("ready "):
            startup = float(line.split()[1])
            continue
        _, ident, index, at = line.split()
        sequenced.setdefault(ident, (int(index), float(at)))
    rows = {r.id: r for r in store.listing(engine, side=store.PROVIDER)}
    missing = [j for j in submitted if j not in rows or rows[j].log_index is None]
    if missing:
        print("\n".join(line[:300] for line in (tmp / "sequencer.log").read_text().splitlines()[-40:]), file=sys.stderr)
        raise SystemExit(f"{len(missing)} of {len(submitted)} spooled receipts were not logged (pending "
                         f"{pending(spool_dir)} bytes; the sequencer's log is above)")
    lags = [sequenced[j][1] - t for j, t in submitted.items() if j in sequenced]
    seq_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime) - startup
    out["sequenced"] = {"count": len(submitted), "lag": statistics.median(lags), "cpu": seq_cpu / len(submitted)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--n", type=int, default=400, help="proofs measured, and pairs of decisions (default 400)")
    parser.add_argument("--threads", type=int, default=16, help="threads deciding at once under load (default 16)")
    parser.add_argument("--rounds", type=int, default=90,
                        help="rounds under load, each a run without receipts, with plain and with batched (default 90)")
    parser.add_argument("--per-run", type=int, default=96, help="decisions per run under load (default 96)")
    parser.add_argument("--db", type=Path, default=None, help="keep the built log in this SQLite file (reused)")
    parser.add_argument("--bulk", action=argparse.BooleanOptionalAction, default=None,
                        help="build the log with direct inserts of the append path's rows (default: above 100,000)")
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "log.db"
        engine = db.migrate(f"sqlite:///{path}")
        log = TransparencyLog(engine, "bench.example/log", PrivateKey.generate())
        print(f"Cead evidence benchmark (SQLite {path}; load average {os.getloadavg()[0]:.1f} at the start)")
        bulk = args.bulk if args.bulk is not None else args.entries > 100_000
        if log.size() >= args.entries:
            seconds = 0.0
        elif bulk:
            (Path(tmp) / "check").mkdir()
            check_bulk_build(Path(tmp) / "check")
            engine.dispose()   # the bulk build writes through its own connection
            seconds = bulk_build(path, args.entries, "2026-01-01T00:00:00Z")
        else:
            seconds = build(log, args.entries)
        if seconds > 1:
            how = "bulk inserts of the append path's rows, checked equal on 1,000 entries" if bulk else "batched"
            print(f"  built {args.entries:,} entries in {seconds:.0f} s ({how})")
        size = log.size()
        samples = proof_times(log, size, args.n)
        median, p95 = statistics.median(samples), sorted(samples)[int(len(samples) * 0.95)]
        ok = median < 0.005
        failed |= not ok
        print(f"  inclusion proof, {size:,} entries (TransparencyLog.inclusion_proof): median {median * 1e3:.2f} ms, "
              f"p95 {p95 * 1e3:.2f} ms   target < 5 ms   {'PASS' if ok else 'FAIL'}")
        results = decision_overhead(args.n, Path(tmp), args.threads, args.rounds, args.per_run)
        sequenced = results.pop("sequenced")
        load = results.pop("load")
        print(f"  a receipt's share of a decision ({args.n} pairs, median of per-pair ratios; counted on the deciding "
              "thread: request evidence, response hash and row count, claims, signature, the spool's write):")
        for first_seen, f in sorted(results.items(), reverse=True):
            ok = f["cpu_ratio"] <= 0.10
            failed |= not ok
            print(f"    {'first-seen' if first_seen else 'repeated'} credentials: thread CPU {f['cpu'][0] * 1e3:.3f} ms"
                  f" -> {f['cpu'][1] * 1e3:.3f} ms, {f['cpu_ratio'] * 100:+.1f}% ({f['cpu_added'] * 1e6:.0f} us)"
                  f"   target <= +10%   {'PASS' if ok else 'FAIL'}")
            print(f"      wall time {f['wall'][0] * 1e3:.3f} ms -> {f['wall'][1] * 1e3:.3f} ms, "
                  f"{f['wall_ratio'] * 100:+.1f}% (includes the machine's other work)")
        ok = load["ratio"]["batched"] <= 0.10
        failed |= not ok
        print(f"  under load ({load['threads']} threads of one process deciding and sealing fresh presentations at once, "
              f"as a gthread worker does; {load['rounds']} rounds of {load['per_run']} decisions each without receipts, "
              "with receipts each signed alone, and with batched receipts, the order rotating; the whole process's CPU "
              "per decision, median of per-round ratios, with their quartiles):")
        print(f"    without receipts {load['cpu']['off'] * 1e3:.3f} ms of process CPU per decision")
        print(f"    receipts signed one by one: {load['cpu']['plain'] * 1e3:.3f} ms, {load['ratio']['plain'] * 100:+.1f}% "
              f"(quartiles {load['quartiles']['plain'][0] * 100:+.1f}% to {load['quartiles']['plain'][1] * 100:+.1f}%)")
        print(f"    batched receipts (the gateway's default): {load['cpu']['batched'] * 1e3:.3f} ms, "
              f"{load['ratio']['batched'] * 100:+.1f}% (quartiles {load['quartiles']['batched'][0] * 100:+.1f}% to "
              f"{load['quartiles']['batched'][1] * 100:+.1f}%)   target <= +10%   {'PASS' if ok else 'FAIL'}")
        print(f"      receipts per signature (mean batch size): {load['batch']:.2f} ({load['sealed']} receipts, "
              f"{load['signatures']} signatures; a batch of one is a plain receipt)")
        print(f"  off the decision's path, in the sequencer process: {sequenced['count']} receipts stored, logged "
              f"and proved (group commits), {sequenced['cpu'] * 1e3:.2f} ms CPU each; logged "
              f"{sequenced['lag'] * 1e3:.1f} ms after their decision (median)")
        print(f"  load average at the end {os.getloadavg()[0]:.1f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
