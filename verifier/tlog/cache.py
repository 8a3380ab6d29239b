"""The gateway's cache of issuers' logs, for the ``transparency`` policy check: no network on a warm decision.

What is cached, and why it is safe (the check still verifies everything on every decision, from cached bytes):

- **Where an entry is** (``(log, kind, digest) -> (index, entry bytes)``), learnt once from ``/log/evidence``. A log
  never moves or rewrites an entry, and the entry's bytes are checked against the checkpoint's root by the
  inclusion proof on every decision, so a wrong cached entry can only cause a denial, never an allow.
- **Inclusion proofs the log gave** with ``/log/evidence``, for that entry and tree size (checked every time).
- **Hash tiles** (C2SP tlog-tiles ``/log/tile/<L>/<N>[.p/<W>]``): immutable by construction (a tile path names a
  fixed set of subtree hashes), so kept until evicted. A full tile is reused for every later tree size; a partial
  tile only while its size is the checkpoint's. Tiles are not signed: the inclusion proof built from them must
  lead to the signed root, or the check fails (and the tiles used are dropped, and the log asked afresh, once).
- **The checkpoint** (the newest co-signed one, ``/log/witnessed-checkpoint``; ``/log/checkpoint`` when the policy
  needs no witnesses) for ``checkpoint_cache`` seconds, as the policy states, then revalidated with its ETag (a
  304 costs no body and no signature check). It is fetched again at once when it does not yet cover the entry, or
  when it falls short of the policy (too few cosignatures, too old): those states may be fixed by a newer one.

Memory is bounded: one LRU of at most ``max_bytes`` (entries, tiles and checkpoints counted by size).
"""
from __future__ import annotations

import base64
import threading
import time
import weakref
from dataclasses import dataclass

from cachetools import LRUCache

from ..results import CeadError
from . import merkle, tiles
from .checkpoint import Checkpoint

MAX_BYTES = 16 * 1024 * 1024


@dataclass
class _Checkpoint:
    note: str
    size: int
    etag: str | None
    checked: float       # monotonic time it was last fetched or revalidated


class LogCache:
    """Checkpoints, entry locations and tiles of the logs a gateway checks; thread-safe, bounded."""

    def __init__(self, fetcher, max_bytes: int = MAX_BYTES, clock=time.monotonic):
        self.fetcher = fetcher
        self.clock = clock
        self._lru: LRUCache = LRUCache(maxsize=max(max_bytes, 1), getsizeof=lambda v: v[0])
        self._lock = threading.Lock()
        self.fetches = 0          # network requests made (for metrics and tests)

    # ---- the bounded store -------------------------------------------------------------------------------
    def _get(self, key):
        with self._lock:
            found = self._lru.get(key)
        return None if found is None else found[1]

    def _put(self, key, value, size: int) -> None:
        with self._lock:
            if size + 64 <= self._lru.maxsize:
                self._lru[key] = (size + 64, value)

    def _drop(self, key) -> None:
        with self._lock:
            self._lru.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._lru.clear()

    @property
    def bytes(self) -> int:
        with self._lock:
            return self._lru.currsize

    def _fetch(self, url: str, accept: str, etag: str | None = None):
        self.fetches += 1
        return self.fetcher.get(url, accept=accept, etag=etag)

    # ---- checkpoints -------------------------------------------------------------------------------------
    def checkpoint(self, url: str, max_age: float, *, force: bool = False) -> tuple[str, bool]:
        """The checkpoint note at ``url`` and whether it was (re)fetched just now (False: from the cache)."""
        cached: _Checkpoint | None = self._get(("checkpoint", url))
        now = self.clock()
        if cached is not None and not force and now - cached.checked < max_age:
            return cached.note, False
        result = self._fetch(url, "text/plain", cached.etag if cached else None)
        if result.status == 304 and cached is not None:
            cached.checked = now
            return cached.note, True
        note = result.body.decode("utf-8", "replace")
        self.remember_checkpoint(url, note, result.headers.get("ETag"), now)
        return note, True

    def remember_checkpoint(self, url: str, note: str, etag: str | None = None, when: float | None = None) -> None:
        """Keep a checkpoint note (also one that came with ``/log/evidence``), unless a larger one is kept."""
        size = note_size(note)
        cached: _Checkpoint | None = self._get(("checkpoint", url))
        if cached is not None and cached.size > size and etag is None:
            return
        self._put(("checkpoint", url), _Checkpoint(note, size, etag, self.clock() if when is None else when),
                  len(note))

    # ---- entries -----------------------------------------------------------------------------------------
    def located(self, log: str, kind: str, digest: str) -> tuple[int, bytes] | None:
        return self._get(("entry", log, kind, digest))

    def remember_entry(self, log: str, kind: str, digest: str, index: int, entry: bytes) -> None:
        self._put(("entry", log, kind, digest), (index, entry), len(entry))

    def forget_entry(self, log: str, kind: str, digest: str) -> None:
        self._drop(("entry", log, kind, digest))

    def remember_proof(self, log: str, index: int, size: int, proof: list[bytes]) -> None:
        """Keep an inclusion proof the log gave (with ``/log/evidence``), so the next decisions under the same
        checkpoint need no tiles either."""
        self._put(("proof", log, index, size), list(proof), merkle.HASH_SIZE * len(proof))

    # ---- tiles and proofs --------------------------------------------------------------------------------
    def tile(self, log: str, level: int, index: int, width: int) -> bytes:
        path = tiles.tile_path(level, index, width)
        found = self._get(("tile", log, path))
        if found is not None:
            return found
        data = self._fetch(f"{log}/{path}", "application/octet-stream").body
        if len(data) != width * merkle.HASH_SIZE:
            raise CeadError("tlog.tile_invalid", f"The tile {path} of {log} has {len(data)} bytes, not "
                            f"{width * merkle.HASH_SIZE}.")
        self._put(("tile", log, path), data, len(data))
        return data

    def forget_tiles(self, log: str) -> None:
        """Drop a log's tiles and proofs (they led to a proof that failed)."""
        with self._lock:
            for key in [k for k in self._lru if k[0] in ("tile", "proof") and k[1] == log]:
                self._lru.pop(key, None)

    def subtree_hash(self, log: str, level: int, index: int, size: int) -> bytes:
        """The hash of the complete subtree ``(level, index)`` of a tree of ``size`` leaves, from hash tiles."""
        tile_level, rest = divmod(level, tiles.TILE_HEIGHT)
        base = tile_level * tiles.TILE_HEIGHT          # tiles of this level hold the hashes of tree level `base`
        first, count = index << rest, 1 << rest        # the nodes at level `base` under this subtree
        available = size >> base
        if first + count > available:
            raise CeadError("tlog.proof_invalid", f"Subtree {level}/{index} is not complete in a tree of {size}.")
        tile_index = first // tiles.TILE_WIDTH
        width = min(tiles.TILE_WIDTH, available - tile_index * tiles.TILE_WIDTH)
        data = self.tile(log, tile_level, tile_index, width)
        offset = first - tile_index * tiles.TILE_WIDTH
        hashes = [data[(offset + i) * merkle.HASH_SIZE:(offset + i + 1) * merkle.HASH_SIZE] for i in range(count)]
        return merkle.root_of(hashes)

    def inclusion_proof(self, log: str, index: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of leaf ``index`` in a tree of ``size``, from hash tiles (cached)."""
        out = []
        for lo, hi in merkle.inclusion_ranges(index, size):
            out.append(merkle.fold([self.subtree_hash(log, level, i, size)
                                    for level, i in merkle.complete_subtrees(lo, hi)]))
        return out

    def evidence_from_cache(self, log: str, checkpoint_url: str, kind: str, digest: str, max_age: float,
                            *, force: bool = False) -> tuple[dict, bool] | None:
        """The ``/log/evidence`` answer for a located entry, rebuilt from the cache (and tiles): ``(evidence,
        fetched)`` with ``fetched`` True when the checkpoint was (re)fetched; None when the entry is not located
        yet or the log's checkpoint does not cover it."""
        found = self.located(log, kind, digest)
        if found is None:
            return None
        index, entry = found
        note, fetched = self.checkpoint(checkpoint_url, max_age, force=force)
        size = note_size(note)
        if index >= size and not fetched:
            note, fetched = self.checkpoint(checkpoint_url, max_age, force=True)
            size = note_size(note)
        if index >= size:
            return None
        proof = self._get(("proof", log, index, size)) or self.inclusion_proof(log, index, size)
        return {"index": index, "size": size, "entry": base64.b64encode(entry).decode(),
                "proof": [base64.b64encode(h).decode() for h in proof], "checkpoint": note}, fetched


def note_size(note: str) -> int:
    """The tree size a checkpoint note states (unverified: the caller verifies the note)."""
    try:
        return Checkpoint.parse(note.split("\n\n", 1)[0] + "\n").size
    except CeadError:
        return -1


_caches: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def cache_for(owner, fetcher, max_bytes: int = MAX_BYTES) -> LogCache:
    """The one cache of a verifier (kept as long as it lives; its policy's ``cache_bytes`` bounds it)."""
    with _caches_lock:
        cache = _caches.get(owner)
        if cache is None or cache.fetcher is not fetcher or cache._lru.maxsize != max(max_bytes, 1):
            cache = _caches[owner] = LogCache(fetcher, max_bytes)
        return cache
