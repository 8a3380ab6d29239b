"""Benchmark the transfer decision for a realistic presentation.

The presentation carries an approval, a two-link delegation chain (controller -> IAO -> deputy) and the
recipient's certification, all signed vc+jwt (or Data Integrity with --format ldp) with Bitstring Status List
entries served over HTTPS on 127.0.0.1. Reported: decisions per second and per-decision latency for first-seen
credentials (proof cache empty) and repeated credentials (proofs from the cache; status still checked every
time against the cached lists), beside the cost of one raw Ed25519 verification measured in the same run.

    .venv/bin/python benchmarks/verify.py [--n 200] [--format jwt|ldp]
"""
from __future__ import annotations

import argparse
import logging
import os
import resource
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from issuer.keys import PrivateKey  # noqa: E402
from transfer_world import world  # noqa: E402


def _stats(samples: list[float]) -> str:
    samples = sorted(samples)
    p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
    return (f"{len(samples) / sum(samples):8.0f} decisions/s   latency p50 {statistics.median(samples) * 1e3:7.2f} ms"
            f"   p95 {p95 * 1e3:7.2f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="decisions per measurement (default 200)")
    parser.add_argument("--format", choices=["jwt", "ldp"], default="jwt", help="credential format")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    key = PrivateKey.generate()
    message = os.urandom(32)
    signature = key.sign(message)

    def raw_ed25519(rounds: int = 2000) -> float:
        started = time.perf_counter()
        for _ in range(rounds):
            assert key.public.verify(signature, message)
        return (time.perf_counter() - started) / rounds

    with world() as w:
        if args.format == "ldp":
            w.d1 = w.delegation(w.controller, w.iao, actions=["ApproveDisclosure", "SubDelegate"], max_depth=1,
                                fmt="ldp")
            w.d2 = w.delegation(w.iao, w.deputy, parent=w.d1, max_depth=0, fmt="ldp")
            w.approval = w.make_approval(w.deputy, chain=[w.d1, w.d2], fmt="ldp")
            w.cert = w.certification(w.body, w.recipient, fmt="ldp")
        decider = w.decider(caches={"status_lists": {"size": 64, "ttl": 600}})

        def run(first_seen: bool) -> list[float]:
            samples = []
            for _ in range(args.n):
                request = w.request()
                vp = w.present(request)               # a fresh, request-bound presentation (not timed)
                if first_seen:
                    decider.verifier.clear()
                started = time.perf_counter()
                decision = decider.decide(vp, request)
                samples.append(time.perf_counter() - started)
                if not decision.allowed:
                    raise SystemExit(f"unexpected denial: {decision.to_dict()['reasons']}")
            return samples

        run(False)                                     # warm up: status lists fetched once, contexts loaded
        before = raw_ed25519()
        first = run(True)
        rss_before = _rss_mib()
        repeated = run(False)
        rss_growth = _rss_mib() - rss_before
        ed25519 = min(before, raw_ed25519())           # measured in the same run, on either side

    print(f"Cead transfer decision benchmark ({args.format}: approval + 2-link delegation chain + certification, "
          f"{args.n} decisions each)")
    print(f"  first-seen credentials  {_stats(first)}")
    print(f"  repeated credentials    {_stats(repeated)}")
    print(f"  raw Ed25519 verify      {1 / ed25519:8.0f} verifications/s   {ed25519 * 1e6:7.1f} us each")
    print(f"  a repeated decision costs {statistics.median(repeated) / ed25519:.0f} raw Ed25519 verifications; "
          f"a first-seen one {statistics.median(first) / ed25519:.0f} (5 signatures are checked)")
    print(f"  memory: peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB (verifier, test "
          f"servers and signers in one process); growth over {args.n} repeated decisions {rss_growth:+.1f} MiB "
          f"(caches and the replay guard are bounded)")
    return 0


def _rss_mib() -> float:
    """Current resident set size (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


if __name__ == "__main__":
    sys.exit(main())
