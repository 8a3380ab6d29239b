"""Replay protection: each presentation is accepted once.

A presentation's id (its JWT ``jti`` or Data Integrity ``proofValue``, hashed) is recorded when a transfer is
allowed and kept only until the presentation expires plus the allowed clock skew: after that the presentation is
refused as expired anyway, so the guard's memory and capacity follow the real window (the presentations allowed in
the last ``lifetime + skew`` seconds), not a fixed TTL.

Two stores:

- ``MemoryReplayStore`` (default): per process, bounded (``caches.replay.size``); a gateway with several worker
  processes or instances needs the shared store, or a presentation could be replayed to another worker.
- ``RedisReplayStore``: shared by every worker and instance that points at the same Redis (``SET key NX PXAT``,
  atomic); ``replay_store: redis://host:port/db`` in the trust policy, or ``cead verifier serve --replay-store``.

The decision asks the guard twice: early, whether the presentation was seen (so that a replay is refused before the
rest of the work, with the reason ``presentation.replayed``), and at the end, once the transfer is allowed, to record
it atomically (a presentation decided twice at once is allowed once). With Redis the early question is not asked:
it would be a second network round trip on every fresh presentation (under 16 concurrent clients each round trip
waited milliseconds to be scheduled again; docs/performance.md), and the atomic record alone refuses a replay all the
same, with the same reason, when everything else in it holds; a replay that also fails another check is denied
with that check's reasons.

When the guard cannot record an id (the memory store is full of live ids, or Redis cannot be reached), the transfer
is denied with ``presentation.replay_guard_full`` or ``presentation.replay_guard_unavailable`` (HTTP 503: try
again), and ``cead_replay_guard_failures_total{reason}`` counts it: never a silent denial of all traffic, never an
allow without the guard.
"""
from __future__ import annotations

import hashlib
import heapq
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Protocol

from .results import Problem

REPLAYED = "presentation.replayed"
FULL = "presentation.replay_guard_full"
UNAVAILABLE = "presentation.replay_guard_unavailable"


def _replayed() -> Problem:
    return Problem(REPLAYED, "This presentation has been used before; each request needs a fresh one.")


class ReplayStore(Protocol):
    def seen(self, ident: str) -> bool: ...
    def add(self, ident: str, until: float) -> bool: ...   # False: already there; raises ReplayStoreError


class ReplayStoreError(Exception):
    """The store cannot answer or record (``reason``: "full" or "unavailable")."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


class MemoryReplayStore:
    """Ids with their own expiry (wall-clock seconds), at most ``size`` live ones; expired ids are dropped first.

    The ids are kept in time buckets (``bucket`` seconds of expiry each, a small dict per bucket), and a bucket is
    dropped whole once every id in it has expired: the memory follows the live ids smoothly as the decision rate
    changes, with no single table doubling in one step and no per-id heap entry, and ids that arrived together
    leave together (so the allocator gets whole blocks back). Each id is held as a 16-byte digest and ids with the
    same expiry share one float: 86 bytes per live id (279 with one dict and a heap; tracemalloc, 100,000 ids). A lookup probes each
    live bucket (the window over ``bucket``: 23 for a 60 s presentation and 300 s skew); expiry stays exact to the
    second given, as with one table."""

    def __init__(self, size: int = 100_000, clock=time.time, bucket: float = 16.0):
        self.size = max(int(size), 1)
        self._clock = clock
        self._width = float(bucket)
        self._buckets: dict[int, dict[bytes, float]] = {}   # floor(until / width) -> {digest: until}
        self._times: dict[int, dict[float, float]] = {}     # floor(until / width) -> its expiry objects, shared
        self._order: list[int] = []                         # heap of the bucket numbers in _buckets
        self._count = 0
        self._lock = threading.Lock()

    @staticmethod
    def _key(ident: str) -> bytes:
        return hashlib.blake2b(ident.encode(), digest_size=16).digest()

    def _expire(self, now: float) -> None:
        """Drop every bucket whose ids have all expired (until < its end <= now)."""
        current = int(now // self._width)
        while self._order and self._order[0] < current:
            number = heapq.heappop(self._order)
            self._count -= len(self._buckets.pop(number))
            del self._times[number]

    def _purge_current(self, now: float) -> None:
        """Drop the expired ids of the one bucket that straddles ``now`` (used when full, and by ``len``)."""
        bucket = self._buckets.get(int(now // self._width))
        if bucket:
            gone = [key for key, until in bucket.items() if until <= now]
            for key in gone:
                del bucket[key]
            self._count -= len(gone)

    def _find(self, key: bytes) -> tuple[dict[bytes, float], float] | None:
        for bucket in self._buckets.values():
            until = bucket.get(key)
            if until is not None:
                return bucket, until
        return None

    def seen(self, ident: str) -> bool:
        key = self._key(ident)
        with self._lock:
            found = self._find(key)
            return found is not None and found[1] > self._clock()

    def add(self, ident: str, until: float) -> bool:
        key = self._key(ident)
        with self._lock:
            now = self._clock()
            self._expire(now)
            found = self._find(key)
            if found is not None:
                if found[1] > now:
                    return False
                del found[0][key]                 # expired, its bucket not yet dropped: as if gone
                self._count -= 1
            if self._count >= self.size:
                self._purge_current(now)
                if self._count >= self.size:
                    raise ReplayStoreError("full", f"The replay guard holds {self.size} live presentation ids.")
            number = int(until // self._width)
            bucket = self._buckets.get(number)
            if bucket is None:
                bucket = self._buckets[number] = {}
                self._times[number] = {}
                heapq.heappush(self._order, number)
            bucket[key] = self._times[number].setdefault(until, until)
            self._count += 1
            return True

    def __len__(self) -> int:
        with self._lock:
            now = self._clock()
            self._expire(now)
            self._purge_current(now)
            return self._count


class RedisReplayStore:
    """A replay store shared through Redis: ``<prefix><id>`` keys expiring at the id's own deadline. ``early``:
    whether the decision asks ``seen`` before its other checks (False: one round trip per decision, the atomic
    ``add`` alone refuses a replay)."""

    early = False

    def __init__(self, url: str, prefix: str = "cead:replay:", timeout: float = 0.5):
        import redis   # optional dependency: `pip install cead[redis]`
        self.url, self.prefix = url, prefix
        self._redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._errors = (redis.RedisError, OSError)

    def seen(self, ident: str) -> bool:
        try:
            return bool(self._redis.exists(self.prefix + ident))
        except self._errors as exc:
            raise ReplayStoreError("unavailable", f"The shared replay store cannot be read: "
                                   f"{type(exc).__name__}.") from None

    def add(self, ident: str, until: float) -> bool:
        try:
            return bool(self._redis.set(self.prefix + ident, b"1", nx=True, pxat=max(int(until * 1000), 1)))
        except self._errors as exc:
            raise ReplayStoreError("unavailable", f"The shared replay store cannot record: "
                                   f"{type(exc).__name__}.") from None


class ReplayGuard:
    """The decision's replay guard over a store. ``skew``: the allowed clock skew; ``lifetime``: the longest a
    presentation may live (used when its expiry is unknown)."""

    def __init__(self, store=None, *, skew: timedelta = timedelta(minutes=5),
                 lifetime: timedelta = timedelta(minutes=5), metrics=None, size: int = 100_000, clock=None):
        self.store = store if store is not None else MemoryReplayStore(size)
        self.clock = clock or (lambda: datetime.now(timezone.utc))   # the decider passes its own
        self.skew = skew
        self.lifetime = lifetime
        self.metrics = metrics

    def _failed(self, error: ReplayStoreError) -> Problem:
        if self.metrics is not None:
            self.metrics.record_replay_failure(error.reason)
        if error.reason == "full":
            return Problem(FULL, "Too many presentations are in flight to guard against replay; try again "
                           "shortly. " + error.message)
        return Problem(UNAVAILABLE, "The replay guard cannot record this presentation, so the transfer is not "
                       "allowed now; try again shortly. " + error.message)

    def seen(self, ident: str) -> Problem | None:
        """A problem if ``ident`` was recorded before (nothing is recorded). Not asked of a store that says
        ``early = False`` (a network round trip): ``check`` refuses the replay at the end instead."""
        if not getattr(self.store, "early", True):
            return None
        try:
            return _replayed() if self.store.seen(ident) else None
        except ReplayStoreError as exc:
            return self._failed(exc)

    def check(self, ident: str, expires: datetime | None = None) -> Problem | None:
        """Record ``ident`` until ``expires`` plus the skew; a problem if it was seen before or cannot be
        recorded. Only allowed transfers are recorded, so a stranger's presentations, which are denied, cannot
        fill the guard and lock approved recipients out."""
        if expires is None:
            expires = self.clock() + self.lifetime
        until = (expires + self.skew).timestamp()
        try:
            return None if self.store.add(ident, until) else _replayed()
        except ReplayStoreError as exc:
            return self._failed(exc)


def store_for(url: str | None, size: int, prefix: str = "cead:replay:"):
    """The replay store a trust policy names: None for the per-process memory store, ``redis://...`` for Redis."""
    if not url:
        return MemoryReplayStore(size)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisReplayStore(url, prefix=prefix)
    raise ValueError(f"replay_store must be a redis:// (or rediss://, unix://) URL, not {url!r}")
