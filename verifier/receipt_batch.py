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

import threading
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
    __slots__ = ("body", "token", "error", "done")

    def __init__(self, body):
        self.body, self.token, self.error, self.done = body, None, None, False


class GroupCommit:
    """Leader/follower group commit: ``submit(body)`` returns the token for ``body``, signed alone
    (``sign_one(body)``) when it is the only one pending, or with every receipt pending at that moment
    (``sign_many(bodies)``, one signature). Thread-safe; counts batches for benchmarks (``batches``,
    ``receipts``)."""

    def __init__(self, sign_one: Callable, sign_many: Callable, max_batch: int = MAX_BATCH):
        self._sign_one, self._sign_many, self.max_batch = sign_one, sign_many, max_batch
        self._cond = threading.Condition(threading.Lock())
        self._pending: list[_Slot] = []
        self._busy = False        # a leader is signing
        self._waiting = 0         # threads waiting on the condition
        self.batches = self.receipts = 0

    def submit(self, body):
        cond = self._cond
        with cond:
            if not self._busy:   # nobody signs: lead a batch of one (today's receipt), without a slot
                self._busy = True
                batch = None
            else:
                slot = _Slot(body)
                self._pending.append(slot)
                self._waiting += 1
                try:
                    while self._busy and not slot.done:
                        cond.wait()
                finally:
                    self._waiting -= 1
                if slot.done:   # a leader signed it
                    if slot.error is not None:
                        raise slot.error
                    return slot.token
                self._busy = True   # no signing in progress, ours not signed: lead every pending receipt
                self._pending.remove(slot)
                batch = [slot, *self._pending[:self.max_batch - 1]]
                del self._pending[:self.max_batch - 1]
        if batch is None:
            try:
                token = self._sign_one(body)
            finally:
                self._done(1)
            return token
        try:
            try:
                tokens = [self._sign_one(batch[0].body)] if len(batch) == 1 else \
                    self._sign_many([s.body for s in batch])
            except BaseException as exc:   # every receipt of the batch fails with it: nobody waits forever
                for s in batch:
                    s.error = exc
            else:
                for s, token in zip(batch, tokens):
                    s.token = token
        finally:
            self._done(len(batch), batch)
        if slot.error is not None:
            raise slot.error
        return slot.token

    def _done(self, size: int, batch: list[_Slot] = ()) -> None:
        with self._cond:
            for s in batch:
                s.done = True
            self._busy = False
            self.batches += 1
            self.receipts += size
            if self._waiting:
                self._cond.notify_all()
