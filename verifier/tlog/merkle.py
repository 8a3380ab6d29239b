"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing, inclusion and consistency proofs.

Hashing (RFC 9162 s.2.1.1): ``leaf = SHA-256(0x00 || entry)``, ``node = SHA-256(0x01 || left || right)``, the
root of an empty tree is ``SHA-256("")``. A tree of ``n`` leaves splits at the largest power of two below ``n``.

Proofs are produced from a *subtree hash function* ``mth(lo, hi)`` (the root of leaves ``lo..hi-1``), so a store
that keeps the hashes of complete subtrees (``issuer.tlog``) answers a proof with a few look-ups and no rehashing:
every range a proof needs is either a complete aligned subtree or a right edge made of a few of them
(:func:`complete_subtrees`). Verification follows RFC 9162 s.2.1.3.2 and s.2.1.4.2 step by step and is checked
against the transparency-dev test vectors (tests/vectors/tlog/).
"""
from __future__ import annotations

import hashlib
from typing import Callable, Sequence

from ..results import CeadError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """The k of RFC 9162: the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes (reference; O(n))."""
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    while len(level) > 1:   # pairing left to right, carrying an odd last node up, gives the RFC's split
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def complete_subtrees(lo: int, hi: int) -> list[tuple[int, int]]:
    """The complete subtrees ``(level, index)`` (leaves ``index*2^level .. (index+1)*2^level - 1``), left to right,
    whose hashes make ``MTH(lo, hi)`` for a range whose start is aligned to a power of two at least its size
    (every range an RFC 9162 proof needs is). ``MTH`` is their fold from the right (:func:`fold`)."""
    out = []
    while lo < hi:
        size = hi - lo
        level = size.bit_length() - 1 if size & (size - 1) == 0 else _largest_power_of_two_below(size).bit_length() - 1
        if lo % (1 << level):
            raise ValueError(f"range {lo}..{hi} is not aligned")
        out.append((level, lo >> level))
        lo += 1 << level
    return out


def fold(hashes: Sequence[bytes]) -> bytes:
    """Combine the complete-subtree hashes of :func:`complete_subtrees` into the range's root."""
    h = hashes[-1]
    for left in reversed(hashes[:-1]):
        h = node_hash(left, h)
    return h


# ---- which ranges a proof needs ------------------------------------------------------------------------------

def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The ranges ``(lo, hi)`` whose roots, in order, form the inclusion proof of leaf ``index`` in a tree of
    ``size`` leaves (RFC 9162 s.2.1.3.1, PATH)."""
    if not 0 <= index < size:
        raise CeadError("tlog.proof_invalid", f"Leaf {index} is not in a tree of {size} entries.")
    out: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if index < lo + k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo = lo + k
    out.reverse()   # PATH lists the sibling nearest the leaf first
    return out


def consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    """The ranges whose roots form the consistency proof from ``old`` to ``new`` (RFC 9162 s.2.1.4.1)."""
    if not 0 <= old <= new:
        raise CeadError("tlog.proof_invalid", f"No consistency proof from {old} to {new} entries.")
    if old == 0 or old == new:
        return []
    out: list[tuple[int, int]] = []
    lo, hi, m, whole = 0, new, old, True

    def sub(lo: int, hi: int, m: int, whole: bool) -> None:
        n = hi - lo
        if m == n:
            if not whole:
                out.append((lo, hi))
            return
        k = _largest_power_of_two_below(n)
        if m <= k:
            sub(lo, lo + k, m, whole)
            out.append((lo + k, hi))
        else:
            sub(lo + k, hi, m - k, False)
            out.append((lo, lo + k))

    sub(lo, hi, m, whole)
    return out


def prove(ranges: list[tuple[int, int]], mth: Callable[[int, int], bytes]) -> list[bytes]:
    return [mth(lo, hi) for lo, hi in ranges]


def mth_from_leaves(leaf_hashes: Sequence[bytes]) -> Callable[[int, int], bytes]:
    """A subtree hash function over an in-memory list of leaf hashes (tests, small logs)."""
    return lambda lo, hi: root_of(leaf_hashes[lo:hi])


# ---- verification (RFC 9162 s.2.1.3.2 and s.2.1.4.2) ---------------------------------------------------------

def _fail(message: str, **detail) -> CeadError:
    return CeadError("tlog.proof_invalid", message, **detail)


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, (bytes, bytearray)) or len(value) != HASH_SIZE:
        raise _fail(f"The {what} is not a {HASH_SIZE}-byte SHA-256 hash.")


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    _check_hash(leaf, "leaf hash")
    if not 0 <= index < size:
        raise _fail(f"Leaf index {index} is outside a tree of {size} entries.")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        _check_hash(p, "proof hash")
        if sn == 0:
            raise _fail("The inclusion proof is too long.")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not (fn & 1) and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise _fail("The inclusion proof is too short.")
    return r


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Raise ``tlog.proof_invalid`` unless ``proof`` shows leaf hash ``leaf`` at ``index`` under ``root``."""
    _check_hash(root, "root hash")
    if root_from_inclusion(leaf, index, size, proof) != root:
        raise _fail("The inclusion proof does not lead to the checkpoint's root hash.", index=index, size=size)


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Raise ``tlog.proof_invalid`` unless the tree ``(size2, root2)`` extends ``(size1, root1)``."""
    if size1 < 0 or size2 < size1:
        raise _fail(f"A log cannot shrink from {size1} to {size2} entries.")
    if size1 == 0:   # everything extends the empty tree: there is nothing to prove (callers skip the check)
        raise _fail("A consistency proof from the empty tree proves nothing; skip the check for size 0.")
    if size1 == size2:
        if proof:
            raise _fail("Two checkpoints of the same size need an empty consistency proof.")
        if root1 != root2:
            raise _fail("Two checkpoints of the same size have different root hashes: the log has forked.")
        return
    if not proof:
        raise _fail("The consistency proof is empty.")
    _check_hash(root1, "old root hash")
    _check_hash(root2, "new root hash")
    for p in proof:
        _check_hash(p, "proof hash")
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise _fail("The consistency proof is too long.")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not (fn & 1) and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise _fail("The consistency proof is too short.")
    if fr != root1 or sr != root2:
        raise _fail("The consistency proof does not join the two checkpoints: the log has been rewritten.",
                    size1=size1, size2=size2)
