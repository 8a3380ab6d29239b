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

When the guard cannot record an id (the memory store is full of live ids, or Redis cannot be reached), the transfer
is denied with ``presentation.replay_guard_full`` or ``presentation.replay_guard_unavailable`` (HTTP 503: try
again), and ``cead_replay_guard_failures_total{reason}`` counts it: never a silent denial of all traffic, never an
allow without the guard.
"""
from __future__ import annotations

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
    """Ids with their own expiry (wall-clock seconds), at most ``size`` live ones; expired ids are dropped first."""

    def __init__(self, size: int = 100_000, clock=time.time):
        self.size = max(int(size), 1)
        self._clock = clock
        self._until: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            until, ident = heapq.heappop(self._heap)
            if self._until.get(ident) == until:
                del self._until[ident]

    def seen(self, ident: str) -> bool:
        with self._lock:
            until = self._until.get(ident)
            return until is not None and until > self._clock()

    def add(self, ident: str, until: float) -> bool:
        with self._lock:
            now = self._clock()
            self._expire(now)
            if ident in self._until:
                return False
            if len(self._until) >= self.size:
                raise ReplayStoreError("full", f"The replay guard holds {self.size} live presentation ids.")
            self._until[ident] = until
            heapq.heappush(self._heap, (until, ident))
            return True

    def __len__(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._until)


class RedisReplayStore:
    """A replay store shared through Redis: ``<prefix><id>`` keys expiring at the id's own deadline."""

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
        """A problem if ``ident`` was recorded before (nothing is recorded)."""
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
