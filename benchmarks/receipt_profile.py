"""Where a receipt's cost goes under load (a profiling tool for issue 15's "a receipt adds at most 10%"; no target).

The same load as ``benchmarks/evidence.py`` (16 threads of one process deciding and sealing fresh presentations,
made beforehand and untimed; batched receipts spooled), without the sequencer (it is another process, and with or
without it the figure is the same within noise). Two readings:

1. **Rounds**, the order rotating: decisions without receipts (``off``); without receipts but with each deciding
   thread blocking once and being woken by the next thread to finish a decision (``block``: the waiting of a batched
   receipt's thread with no receipt work at all, which is what any design that makes a decision wait for a shared
   signature pays); and with batched receipts (``batched``). Each: the whole process's CPU per decision (median of
   rounds, and of the per-round ratio to ``off``), the deciding threads' CPU in ``decide`` and after it (the
   receipt, or the block), and the receipts per signature.
2. **Steps** of the batched receipt, each timed with ``time.thread_time`` on its own thread around the step (the
   functions wrapped at run time, the code unchanged; each reading includes about 1 us of its timers), per decision.

    .venv/bin/python benchmarks/receipt_profile.py [--threads 16] [--rounds 20] [--per-run 96]
"""
from __future__ import annotations

import argparse
import collections
import itertools
import logging
import os
import statistics
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from jwcrypto import jwk  # noqa: E402
from issuer.evidence import spool as spool_module  # noqa: E402
from issuer.keys import PrivateKey  # noqa: E402
from verifier import receipt_batch, receipts  # noqa: E402
from verifier.decision import Decider  # noqa: E402

PAYLOAD = b"ageBand,localAuthority,outcome,count\n16-24,Fife,housed,12\n25-34,Fife,housed,40\n"
_tt = time.thread_time


def run(w, decider, config, mode: str, threads: int, per_run: int) -> tuple[float, float, float, int, int]:
    """One run: (process CPU, decide's thread CPU, the rest's thread CPU) per decision, signatures, receipts."""
    decider.receipt_signer = config
    work = []
    for _ in range(per_run):
        request = w.request()
        request.response_checked = True
        request.receipt_batch = True
        work.append((w.present(request), request))
    taken = itertools.count()
    start = threading.Barrier(threads + 1)
    totals = [0.0, 0.0]
    waiting: collections.deque = collections.deque()
    guard = threading.Lock()
    active = [threads]

    def wake_all() -> None:
        while waiting:
            try:
                waiting.popleft().release()
            except IndexError:
                return

    def worker() -> None:
        start.wait()
        decided = after = 0.0
        while True:
            i = next(taken)
            if i >= per_run:
                break
            vp, request = work[i]
            t0 = _tt()
            decision = decider.decide(vp, request)
            t1 = _tt()
            receipts.seal_payload(decider, decision, PAYLOAD, "text/csv")
            if mode == "block":   # wake the threads waiting, then wait to be woken by the next one (as a follower)
                mine = None
                with guard:
                    woken = list(waiting)
                    waiting.clear()
                    if active[0] > 1:
                        mine = threading.Lock()
                        mine.acquire()
                        waiting.append(mine)
                for lock in woken:
                    lock.release()
                if mine is not None:
                    mine.acquire()
            decided += t1 - t0
            after += _tt() - t1
        with guard:
            totals[0] += decided
            totals[1] += after
            active[0] -= 1
        wake_all()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    before = config.batches if config is not None else (0, 0)
    cpu = time.process_time()
    start.wait()
    for t in pool:
        t.join()
    cpu = time.process_time() - cpu
    now = config.batches if config is not None else (0, 0)
    return cpu / per_run, totals[0] / per_run, totals[1] / per_run, now[0] - before[0], now[1] - before[1]


class _Steps:
    """Thread-CPU accumulators around wrapped functions (installed for the steps reading only)."""

    def __init__(self) -> None:
        self.time: dict[str, float] = collections.defaultdict(float)
        self.calls: collections.Counter = collections.Counter()
        self._undo: list = []

    def wrap(self, owner, name: str, label: str) -> None:
        original = getattr(owner, name)
        steps = self

        def timed(*args, **kwargs):
            t = _tt()
            try:
                return original(*args, **kwargs)
            finally:
                steps.time[label] += _tt() - t
                steps.calls[label] += 1
        setattr(owner, name, timed)
        self._undo.append((owner, name, original))

    def install(self, signer) -> None:
        self.wrap(receipts, "request_evidence", "request evidence (in decide)")
        self.wrap(receipts, "record_payload", "payload hash and row count")
        self.wrap(receipts, "receipt_claims", "claims")
        self.wrap(receipts, "_claims_json", "claims JSON")
        self.wrap(receipt_batch, "tree", "leader: Merkle tree of the batch")
        self.wrap(receipt_batch, "encode", "leader: batched tokens (base64url, path)")
        self.wrap(signer, "_sign_raw", "leader: the signature (batch or alone)")
        self.wrap(spool_module.ReceiptSpool, "_write", "leader: the spool's write")
        self.wrap(receipt_batch.GroupCommit, "_done", "leader: waking the batch")
        self.wrap(receipt_batch.GroupCommit, "submit", "group commit in all (submit)")
        steps, slot_init = self, receipt_batch._Slot.__init__

        class TimedWake:   # the follower's wait: blocked on its lock, woken, the interpreter lock taken again
            __slots__ = ("lock",)

            def __init__(self):
                self.lock = threading.Lock()

            def acquire(self, *args):
                t = _tt()
                try:
                    return self.lock.acquire(*args)
                finally:
                    steps.time["follower: waiting and waking"] += _tt() - t
                    steps.calls["follower: waiting and waking"] += 1

            def release(self):
                self.lock.release()

        def init(slot, body, sink, claims):
            slot_init(slot, body, sink, claims)
            slot.wake = TimedWake()
            slot.wake.lock.acquire()
        receipt_batch._Slot.__init__ = init
        self._undo.append((receipt_batch._Slot, "__init__", slot_init))

    def uninstall(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()


def main() -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--per-run", type=int, default=96)
    args = parser.parse_args()
    from transfer_world import world
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    tmp = tempfile.mkdtemp()
    sink = spool_module.ReceiptSpool(os.path.join(tmp, "spool"))
    signer = receipts.ReceiptSigner(jwk.JWK(**PrivateKey.generate().private_jwk()), kid="did:web:bench.example#key-1")
    modes = {"off": None, "block": None, "batched": signer}
    print(f"Where a receipt's cost goes under load ({args.threads} threads of one process; load average "
          f"{os.getloadavg()[0]:.1f} at the start)")
    with world() as w:
        decider = w.decider(caches={"status_lists": {"size": 64, "ttl": 600}})
        decider.receipt_sink = sink
        for mode, config in modes.items():   # warm up each
            run(w, decider, config, mode, args.threads, args.per_run)
        got: dict[str, list] = {mode: [] for mode in modes}
        names = list(modes)
        for i in range(args.rounds):
            for mode in names[i % 3:] + names[:i % 3]:
                got[mode].append(run(w, decider, modes[mode], mode, args.threads, args.per_run))
        print(f"  {args.rounds} rounds of {args.per_run} decisions each, the order rotating (medians; us per decision):")
        for mode in names:
            rows = got[mode]
            ratio = statistics.median(r[0] / o[0] - 1 for r, o in zip(rows, got["off"]))
            signatures, sealed = sum(r[3] for r in rows), sum(r[4] for r in rows)
            print(f"    {mode:8s} process CPU {statistics.median(r[0] for r in rows) * 1e6:6.1f} ({ratio * 100:+5.1f}%)"
                  f"   decide {statistics.median(r[1] for r in rows) * 1e6:6.1f}   after it (receipt or block) "
                  f"{statistics.median(r[2] for r in rows) * 1e6:6.1f}"
                  + (f"   {sealed / signatures:.2f} receipts per signature" if signatures else ""))
        steps = _Steps()
        steps.install(signer)
        try:
            decisions = 0
            for _ in range(max(args.rounds // 2, 1)):
                run(w, decider, signer, "batched", args.threads, args.per_run)
                decisions += args.per_run
        finally:
            steps.uninstall()
        print(f"  steps of a batched receipt ({decisions} decisions; thread CPU per decision, calls per decision):")
        for label, spent in sorted(steps.time.items(), key=lambda kv: -kv[1]):
            print(f"    {label:44s} {spent / decisions * 1e6:6.1f} us   {steps.calls[label] / decisions:5.2f}")
    sink.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
