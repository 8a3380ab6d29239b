"""Verifier metrics in the Prometheus text exposition format (version 0.0.4), with no extra dependency.

Exposed at ``GET /metrics`` by the verifier service:

- ``cead_decisions_total{outcome, reason}``: decisions by outcome (allow/deny) and by each reason code;
- ``cead_decision_seconds``: latency histogram of decisions;
- ``cead_cache_requests_total{cache, result}``: cache lookups (hit/miss) for DID documents, status lists,
  verified proofs; the hit rate is ``hit / (hit + miss)``;
- ``cead_replay_guard_failures_total{reason}``: presentations the replay guard could not record (``full``: the
  memory store holds its maximum of live ids; ``unavailable``: the shared store cannot be reached); each such
  transfer is denied with ``presentation.replay_guard_full`` / ``presentation.replay_guard_unavailable``.
"""
from __future__ import annotations

import threading
from bisect import bisect_left
from collections import defaultdict

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


_CACHE_KEYS: dict[tuple[str, bool], tuple[tuple[str, str], ...]] = {}   # (cache, hit) -> its label pairs


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}" if pairs else ""


class Metrics:
    """Thread-safe counters and one latency histogram for one verifier process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._decisions: dict[tuple[tuple[str, str], ...], int] = defaultdict(int)
        self._cache: dict[tuple[tuple[str, str], ...], int] = defaultdict(int)
        self._bucket_counts = [0] * len(BUCKETS)
        self._count = 0
        self._sum = 0.0
        self._replay_failures: dict[str, int] = defaultdict(int)

    def record_replay_failure(self, reason: str) -> None:
        with self._lock:
            self._replay_failures[reason] += 1

    def replay_failures(self, reason: str) -> int:
        with self._lock:
            return self._replay_failures.get(reason, 0)

    def record_decision(self, allowed: bool, reason_codes: list[str], seconds: float) -> None:
        outcome = "allow" if allowed else "deny"
        with self._lock:
            for code in (sorted(set(reason_codes)) or ["none"]):
                self._decisions[(("outcome", outcome), ("reason", code))] += 1
            i = bisect_left(BUCKETS, seconds)
            if i < len(BUCKETS):
                self._bucket_counts[i] += 1
            self._count += 1
            self._sum += seconds

    def record_cache(self, cache: str, hit: bool) -> None:
        key = _CACHE_KEYS.get((cache, hit))   # a dozen lookups a decision: the label tuple built once per pair
        if key is None:
            key = _CACHE_KEYS.setdefault((cache, hit), (("cache", cache), ("result", "hit" if hit else "miss")))
        with self._lock:
            self._cache[key] += 1

    def cache_hit_rate(self, cache: str) -> float | None:
        with self._lock:
            hits = self._cache.get((("cache", cache), ("result", "hit")), 0)
            misses = self._cache.get((("cache", cache), ("result", "miss")), 0)
        return hits / (hits + misses) if hits + misses else None

    def render(self) -> str:
        with self._lock:
            lines = ["# HELP cead_decisions_total Transfer decisions by outcome and reason code.",
                     "# TYPE cead_decisions_total counter"]
            lines += [f"cead_decisions_total{_labels(k)} {v}" for k, v in sorted(self._decisions.items())]
            lines += ["# HELP cead_decision_seconds Time taken to decide a transfer.",
                      "# TYPE cead_decision_seconds histogram"]
            cumulative = 0
            for bound, n in zip(BUCKETS, self._bucket_counts):
                cumulative += n
                lines.append(f'cead_decision_seconds_bucket{{le="{bound}"}} {cumulative}')
            lines.append(f'cead_decision_seconds_bucket{{le="+Inf"}} {self._count}')
            lines.append(f"cead_decision_seconds_sum {self._sum:.6f}")
            lines.append(f"cead_decision_seconds_count {self._count}")
            lines += ["# HELP cead_cache_requests_total Cache lookups by cache and result (hit or miss).",
                      "# TYPE cead_cache_requests_total counter"]
            lines += [f"cead_cache_requests_total{_labels(k)} {v}" for k, v in sorted(self._cache.items())]
            lines += ["# HELP cead_replay_guard_failures_total Presentations the replay guard could not record "
                      "(each denied).", "# TYPE cead_replay_guard_failures_total counter"]
            lines += [f"cead_replay_guard_failures_total{_labels((('reason', r),))} {n}"
                      for r, n in sorted(self._replay_failures.items())]
        return "\n".join(lines) + "\n"
