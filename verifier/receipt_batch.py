"""Batched receipt signatures: one signature covers every receipt sealed at the same moment (a group commit of
signatures), and the batched receipt format every reader accepts beside the plain one.

Why: a receipt is signed on the deciding thread before the answer carrying it leaves, and one Ed25519 signature
is 0.4-0.5 of a raw verification, so on the fastest decisions the signature alone is most of the 10% a receipt may
add (issue 15). Under load several decisions are sealed at once (a gateway worker runs 8 threads): they can share
one signature over a Merkle root of their receipts.

**Group commit** (:class:`GroupCommit`). A thread that seals a receipt while no signing is in progress becomes the
*leader*: it takes every pending receipt (its own included) and signs. Receipts sealed meanwhile wait (*followers*,
on a condition, without the interpreter lock); when the leader is done it hands each its token and wakes them, and
one of those still pending leads the next batch. A lone receipt (a sequential gateway, or a quiet moment) is a
batch of one and is signed exactly as before: a plain compact JWS (``typ: cead-receipt+jwt``) over its claims. A
batch of more than one is signed once: an RFC 9162 Merkle tree over the receipts' leaf hashes
(``SHA-256(0x00 || claims bytes)``), and a compact JWS (``typ: cead-receipt-batch+jwt``) over its root. If the
leader's signing raises, every receipt of that batch gets the error (fail closed: no receipt, no acknowledged
transfer) and the next batch is led by another thread: nobody waits forever.

**A batched receipt** is still one string, self-contained, ``~``-joined (like an SD-JWT)::

    <compact JWS: header {alg, kid, typ: cead-receipt-batch+jwt}, payload {v, iss, iat, root, size}>
    ~<base64url of the receipt's claims, the exact JSON bytes hashed into the leaf>
    ~<leaf index>.<base64url of the inclusion path: 32-byte hashes, nearest sibling first>

Verifying it: check the JWS signature (as for a plain receipt: the signer's key, the algorithm, the ``typ``); take
the root (32 bytes, base64url) and tree size from its payload; hash the claims bytes into a leaf; check the
inclusion path from that leaf at that index leads to the signed root (RFC 9162 s.2.1.3.2); then read the claims
(strict JSON) and check their ``iss`` is the batch's. Everything else (the payload check, the signer's DID) is as
for a plain receipt. What a batched receipt reveals of the others in its batch: their leaf hashes (and inner
hashes) only, never their claims; every claim set holds its own random ``jti`` (122 random bits), so a sibling's
hash cannot be matched against guessed claims.
"""
from __future__ import annotations

import os
import threading
import weakref
from typing import Callable, Sequence

from .keys import b64url_decode
from .results import CeadError
from .tlog import merkle

BATCH_TYPE = "cead-receipt-batch+jwt"
SEPARATOR = "~"
MAX_BATCH = 256            # receipts one signature covers at most (a path of at most 8 hashes)
MAX_PATH = 64              # hashes in an inclusion path a reader accepts (a tree of up to 2^64 leaves)


def is_batched(token: str) -> bool:
    return isinstance(token, str) and SEPARATOR in token


def tree(leaves: Sequence[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """The RFC 9162 root of these leaf hashes and every leaf's inclusion path (nearest sibling first), built
    level by level in one pass (O(n log n) hashes; the reference :func:`merkle.root_of` pairs the same way)."""
    paths: list[list[bytes]] = [[] for _ in leaves]
    groups = [[i] for i in range(len(leaves))]   # the leaves under each node of the current level
    level = list(leaves)
    node = merkle.node_hash
    while len(level) > 1:
        nxt, nxt_groups = [], []
        for i in range(0, len(level) - 1, 2):
            left, right = level[i], level[i + 1]
            for leaf in groups[i]:
                paths[leaf].append(right)
            for leaf in groups[i + 1]:
                paths[leaf].append(left)
            nxt.append(node(left, right))
            nxt_groups.append(groups[i] + groups[i + 1])
        if len(level) % 2:   # an odd last node is carried up unchanged (RFC 9162's split, as merkle.root_of)
            nxt.append(level[-1])
            nxt_groups.append(groups[-1])
        level, groups = nxt, nxt_groups
    return level[0], paths


def encode(batch_jws: str, claims_b64: str, index: int, path: Sequence[bytes], b64: Callable[[bytes], str]) -> str:
    return f"{batch_jws}{SEPARATOR}{claims_b64}{SEPARATOR}{index}.{b64(b''.join(path))}"


def split(token: str) -> tuple[str, bytes, int, list[bytes]]:
    """The parts of a batched receipt: the batch JWS, the exact claims bytes, the leaf index and the inclusion
    path. Raises ``receipt.batch_invalid`` naming what is malformed."""
    parts = token.split(SEPARATOR)
    if len(parts) != 3:
        raise CeadError("receipt.batch_invalid", "A batched receipt has three parts joined by '~' (the batch JWS, "
                        f"the claims, the index and path); this one has {len(parts)}.")
    jws_part, claims_part, proof_part = parts
    if jws_part.count(".") != 2:
        raise CeadError("receipt.batch_invalid", "The first part of a batched receipt is not a compact JWS.")
    try:
        claims = b64url_decode(claims_part)
    except CeadError:
        raise CeadError("receipt.batch_invalid", "The claims of a batched receipt are not base64url.") from None
    index_text, dot, path_text = proof_part.partition(".")
    if not dot or not index_text.isdigit() or not index_text.isascii() or (len(index_text) > 1 and
                                                                          index_text[0] == "0"):
        raise CeadError("receipt.batch_invalid", "The last part of a batched receipt is '<leaf index>.<path>'.")
    try:
        path = b64url_decode(path_text)
    except CeadError:
        raise CeadError("receipt.batch_invalid", "The inclusion path of a batched receipt is not base64url.") \
            from None
    if len(path) % merkle.HASH_SIZE or len(path) // merkle.HASH_SIZE > MAX_PATH:
        raise CeadError("receipt.batch_invalid", "The inclusion path of a batched receipt is not a list of "
                        "32-byte SHA-256 hashes.")
    return jws_part, claims, int(index_text), [path[i:i + 32] for i in range(0, len(path), 32)]


def check_inclusion(claims: bytes, index: int, statement: dict, path: list[bytes]) -> None:
    """Raise ``receipt.proof_invalid`` unless the claims bytes, at ``index``, lead by ``path`` to the root the
    batch signature covers (``statement``: the verified batch JWS payload)."""
    root, size = statement.get("root"), statement.get("size")
    if not isinstance(root, str) or not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise CeadError("receipt.batch_invalid", "The batch statement has no root hash and tree size.")
    try:
        root_bytes = b64url_decode(root)
    except CeadError:
        root_bytes = b""
    if len(root_bytes) != merkle.HASH_SIZE:
        raise CeadError("receipt.batch_invalid", "The batch statement's root is not a base64url SHA-256 hash.")
    try:
        merkle.verify_inclusion(merkle.leaf_hash(claims), index, size, path, root_bytes)
    except CeadError as exc:
        raise CeadError("receipt.proof_invalid", "The receipt's claims, leaf index and inclusion path do not lead "
                        f"to the root its batch signature covers: {exc.message}", index=index, size=size) \
            from None


# ---- the group commit ------------------------------------------------------------------------------------------

class _Slot:
    __slots__ = ("body", "sink", "claims", "token", "error", "done", "delivered", "wake")

    def __init__(self, body, sink, claims):
        self.body, self.sink, self.claims = body, sink, claims
        self.token = self.error = None
        self.done = self.delivered = False
        self.wake = threading.Lock()
        self.wake.acquire()   # released once: when its receipt is signed, or when it is to lead the next batch


class GroupCommit:
    """Leader/follower group commit: ``submit(body, sink, claims)`` returns the token for ``body``, signed alone
    (``sign_one(body)``) when no signing is in progress, or with every receipt pending when its batch's leader
    starts (``sign_many(bodies)``, one signature), and hands it to ``sink`` before returning. The leader hands a
    batch's tokens to a sink with ``append_many`` (the receipt spool) in one call while the signature is still
    marked in progress (so receipts sealed meanwhile gather for the next batch); any other sink is called by each
    receipt's own thread, as ``sink(token, claims)``. An error signing, or appending, is raised in every thread
    whose receipt it concerns.

    Each waiting thread blocks on its own lock (no thundering herd): a leader wakes exactly the threads of its
    batch, and hands the lead to the oldest receipt still pending, which takes every receipt pending when it
    wakes. Thread-safe; counts signatures and receipts (``batches``, ``receipts``) for benchmarks."""

    def __init__(self, sign_one: Callable, sign_many: Callable, max_batch: int = MAX_BATCH):
        self._sign_one, self._sign_many, self.max_batch = sign_one, sign_many, max_batch
        self._lock = threading.Lock()
        self._pending: list[_Slot] = []
        self._busy = False        # a leader is signing (or has been handed the lead)
        self._successor: _Slot | None = None   # the receipt last handed the lead
        self.batches = self.receipts = 0
        ref = weakref.ref(self)   # a forked worker starts with no signing in progress (its parent's threads are gone)
        os.register_at_fork(after_in_child=lambda: (group := ref()) is not None and group._after_fork())

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._pending, self._busy, self._successor = [], False, None

    def submit(self, body, sink=None, claims=None):
        with self._lock:
            if not self._busy:   # nobody signs: lead a batch of one (today's receipt), without a slot
                self._busy = True
                slot = None
            else:
                slot = _Slot(body, sink, claims)
                self._pending.append(slot)
        if slot is None:
            try:
                token = self._sign_one(body)
                if sink is not None:
                    sink(token, claims)
            finally:
                with self._lock:   # as _done for a batch of one, inline (the sequential path)
                    self.batches += 1
                    self.receipts += 1
                    successor = self._pending[0] if self._pending else None
                    self._busy, self._successor = successor is not None, successor
                if successor is not None:
                    successor.wake.release()
            return token
        try:
            slot.wake.acquire()   # until signed, or handed the lead (without the interpreter lock meanwhile)
        except BaseException:     # interrupted while waiting (the main thread, Ctrl-C): never strand the others
            self._abandon(slot)
            raise
        if not slot.done:     # the lead: every receipt pending now, ours first
            with self._lock:
                self._pending.remove(slot)
                batch = [slot, *self._pending[:self.max_batch - 1]]
                del self._pending[:self.max_batch - 1]
            try:
                self._lead(batch)
            finally:
                self._done(len(batch), batch)
        if slot.error is not None:
            raise slot.error
        if not slot.delivered and slot.sink is not None:
            slot.sink(slot.token, slot.claims)
        return slot.token

    def _lead(self, batch: list[_Slot]) -> None:
        try:
            tokens = [self._sign_one(batch[0].body)] if len(batch) == 1 else \
                self._sign_many([s.body for s in batch])
        except BaseException as exc:   # every receipt of the batch fails with it: nobody waits forever
            for s in batch:
                s.error = exc
            return
        by_sink: dict[int, list[_Slot]] = {}
        for s, token in zip(batch, tokens):
            s.token = token
            if s.sink is not None and hasattr(s.sink, "append_many"):
                by_sink.setdefault(id(s.sink), []).append(s)
        for slots in by_sink.values():   # one append (one write, for the spool) per sink
            try:
                slots[0].sink.append_many([s.token for s in slots])
            except BaseException as exc:   # not acknowledged: each of these receipts fails with it
                for s in slots:
                    s.error = exc
            else:
                for s in slots:
                    s.delivered = True

    def _done(self, size: int, batch) -> None:
        """Mark the batch signed, wake its threads, and hand the lead to the oldest pending receipt (or free it)."""
        with self._lock:
            for s in batch:
                s.done = True
            self.batches += 1
            self.receipts += size
            successor = self._pending[0] if self._pending else None
            self._busy, self._successor = successor is not None, successor
        for s in batch:   # (the leader's own lock is released too: nobody waits on it, which is harmless)
            s.wake.release()
        if successor is not None:
            successor.wake.release()

    def _abandon(self, slot: _Slot) -> None:
        """A waiting thread was interrupted: drop its receipt, and pass the lead on if it had been handed it."""
        with self._lock:
            if slot.done:
                return
            if slot in self._pending:
                self._pending.remove(slot)
            successor = None
            if self._successor is slot:
                successor = self._pending[0] if self._pending else None
                self._busy, self._successor = successor is not None, successor
        if successor is not None:
            successor.wake.release()
