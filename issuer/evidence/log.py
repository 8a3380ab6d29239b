"""The node's append-only Merkle log (RFC 9162 hashing), kept in the node's database.

Every entry is a small JSON object (canonical, RFC 8785): its ``kind`` (e.g. ``credential.issued``,
``credential.status``, ``receipt``, ``key.rotated``, ``budget.released``), ``digests`` (SHA-256 hex of what it is
about: a credential, a receipt, a payload) and ``meta`` (public metadata only: identifiers of organisations and
credentials, codes, counts; never personal data), with the time. The leaf hash is ``SHA-256(0x00 || entry)``.

Crash safety and no gaps: an append runs in the caller's transaction (``append(session, ...)``, so an issued
credential and its log entry commit together) or in its own. The next index comes from the one-row ``tlog_head``,
locked for the transaction, and the entry, the hashes of every complete subtree it closes and the new head are
written together: a transaction either commits all of them or none. Acknowledged (committed) entries survive a
crash; an index is never skipped or reused.

Proofs read the stored complete-subtree hashes (about two rows per entry), so an inclusion or consistency proof is
one indexed query of at most ~2 log2(n) rows, with no rehashing. Checkpoints (C2SP tlog-checkpoint) are signed with
the node's Ed25519 key as a C2SP signed note named after the log's origin and kept, one per size signed: the key the
log itself names (its newest Ed25519 ``key.added`` entry), and for the tree that ends with such an entry (a key
rotation's handover) the key before it as well (:meth:`TransparencyLog.signers`).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import sqlalchemy as sa

from schemas import jcs
from verifier.results import CeadError
from verifier.tlog import merkle, note as notes, tiles
from verifier.tlog.checkpoint import Checkpoint

from ..db import utcnow

metadata = sa.MetaData()
head_table = sa.Table("tlog_head", metadata, sa.Column("id", sa.Integer, primary_key=True),
                      sa.Column("size", sa.BigInteger))
entry_table = sa.Table("tlog_entry", metadata, sa.Column("idx", sa.BigInteger, primary_key=True),
                       sa.Column("kind", sa.String), sa.Column("entry", sa.LargeBinary), sa.Column("at", sa.String))
digest_table = sa.Table("tlog_digest", metadata, sa.Column("digest", sa.String, primary_key=True),
                        sa.Column("idx", sa.BigInteger, primary_key=True))
hash_table = sa.Table("tlog_hash", metadata, sa.Column("level", sa.Integer, primary_key=True),
                      sa.Column("idx", sa.BigInteger, primary_key=True), sa.Column("hash", sa.LargeBinary))
checkpoint_table = sa.Table("tlog_checkpoint", metadata, sa.Column("size", sa.BigInteger, primary_key=True),
                            sa.Column("note", sa.Text), sa.Column("at", sa.String))

KINDS = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
_META_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
MAX_META_STRING = 512
MAX_ENTRY = 16 * 1024
HASHES_PER_QUERY = 400


def _bad(message: str, **detail) -> CeadError:
    return CeadError("tlog.entry_invalid", message, **detail)


def _check_meta_value(key: str, value: Any, depth: int = 0) -> None:
    if value is None or isinstance(value, bool) or (isinstance(value, int) and abs(value) < 2 ** 53):
        return
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        return
    if isinstance(value, str):
        if len(value) > MAX_META_STRING or any(ord(c) < 0x20 for c in value):
            raise _bad(f"Log metadata {key!r} is too long or has control characters.")
        return
    if isinstance(value, list) and depth == 0 and len(value) <= 64:
        for item in value:
            _check_meta_value(key, item, 1)
        return
    raise _bad(f"Log metadata {key!r} must be a short string, a number, a boolean or a flat list of them.")


def encode_entry(kind: str, digests: dict[str, str], meta: dict[str, Any], at: str) -> bytes:
    """The canonical bytes of an entry (the leaf data). Digests are lower-case SHA-256 hex; metadata is public."""
    if not isinstance(kind, str) or not KINDS.match(kind) or len(kind) > 64:
        raise _bad(f"Log entry kind {str(kind)[:80]!r} must be dotted lower-case words (e.g. credential.issued).")
    if not isinstance(digests, dict) or not isinstance(meta, dict):
        raise _bad("Log entry digests and metadata must be objects.")
    for key, value in digests.items():
        if not isinstance(key, str) or not _META_KEY.match(key) or not isinstance(value, str) \
                or not _HEX64.match(value):
            raise _bad(f"Log digest {str(key)[:60]!r} must be a SHA-256 hex value (64 lower-case hex digits).")
    for key, value in meta.items():
        if not isinstance(key, str) or not _META_KEY.match(key):
            raise _bad(f"Log metadata key {str(key)[:60]!r} must be a short identifier.")
        _check_meta_value(key, value)
    data = jcs.dumps({"kind": kind, "digests": digests, "meta": meta, "at": at})
    if len(data) > MAX_ENTRY:
        raise _bad(f"A log entry is at most {MAX_ENTRY} bytes.")
    return data


def decode_entry(data: bytes) -> dict:
    try:
        value = json.loads(data)
    except ValueError:
        raise CeadError("tlog.entry_invalid", "A log entry is not JSON.") from None
    if not isinstance(value, dict) or not isinstance(value.get("kind"), str):
        raise CeadError("tlog.entry_invalid", "A log entry is not a Cead log entry.")
    return value


@dataclass(frozen=True)
class Appended:
    index: int
    leaf_hash: bytes
    entry: bytes


def origin_for(node) -> str:
    """The log's origin line (and note key name): the node's public URL without its scheme, plus ``/log``."""
    url = node.config.get("public_url")
    if url:
        return url.split("://", 1)[-1].rstrip("/") + "/log"
    return node.did.replace("did:key:", "key.") + "/log"   # a did:key node has no URL; its DID names its log


def _signer_of(line: str) -> tuple[str, bytes] | None:
    """``(name, key ID)`` of a note's signature line, None for any other line."""
    import base64
    import binascii
    if not line.startswith(notes.DASH):
        return None
    name, _, blob = line[len(notes.DASH):].strip("\n").partition(" ")
    try:
        return name, base64.b64decode(blob, validate=True)[:4]
    except (binascii.Error, ValueError):
        return None


class TransparencyLog:
    """The log of one node. ``engine``: the node database (migrated); ``origin``: the checkpoint origin;
    ``signer``: an object with ``sign(bytes)`` and ``public.raw`` (the node's Ed25519 key) for checkpoints."""

    def __init__(self, engine, origin: str, signer=None):
        self.engine = engine
        self.origin = origin
        self._signer = signer

    @classmethod
    def for_node(cls, node) -> "TransparencyLog":
        log = cls(node.engine, origin_for(node))
        log._node = node
        return log

    @property
    def signer(self):
        if self._signer is None and getattr(self, "_node", None) is not None:
            return self._node.key    # decrypted on first use
        return self._signer

    @property
    def key(self) -> notes.NoteKey:
        return notes.NoteKey(self.origin, notes.ALG_ED25519, self.signer.public.raw)

    # ---- appending ---------------------------------------------------------------------------------------
    def append(self, kind: str, payload_digests: dict[str, str], public_metadata: dict[str, Any] | None = None,
               *, session=None) -> Appended:
        """Append one entry. With ``session`` (a SQLAlchemy/SQLModel session in a transaction), the entry commits
        with the caller's other writes; without, it is committed before this returns."""
        return self.append_many([(kind, payload_digests, public_metadata or {})], session=session)[0]

    def append_many(self, items: Iterable[tuple[str, dict, dict]], *, session=None) -> list[Appended]:
        at = utcnow()
        encoded = [encode_entry(kind, digests, meta, at) for kind, digests, meta in items]
        if session is not None:   # a Session in a transaction, or a Connection in one
            conn = session if isinstance(session, sa.engine.Connection) else session.connection()
            return self._append(conn, encoded, at)
        with self.engine.begin() as conn:
            return self._append(conn, encoded, at)

    def _append(self, conn, encoded: list[bytes], at: str) -> list[Appended]:
        size = conn.execute(sa.select(head_table.c.size).where(head_table.c.id == 1).with_for_update()).scalar_one()
        out, entries, hashes, digests = [], [], [], []
        # the right edge of the tree: complete subtrees still waiting for a right sibling, read once
        edge: dict[tuple[int, int], bytes] = {}
        needed = []
        n = size
        level = 0
        while n:
            if n & 1:
                needed.append((level, n - 1))
            n >>= 1
            level += 1
        edge.update(self._hashes(conn, needed))
        for data in encoded:
            index = size
            leaf = merkle.leaf_hash(data)
            parsed = json.loads(data)
            entries.append({"idx": index, "kind": parsed["kind"], "entry": data, "at": at})
            digests += [{"digest": d, "idx": index} for d in dict.fromkeys(parsed["digests"].values())]
            h, level, i = leaf, 0, index
            edge[(0, i)] = h
            hashes.append({"level": 0, "idx": i, "hash": h})
            while i & 1:
                left = edge.pop((level, i - 1))
                edge.pop((level, i), None)
                h = merkle.node_hash(left, h)
                level, i = level + 1, i >> 1
                edge[(level, i)] = h
                hashes.append({"level": level, "idx": i, "hash": h})
            out.append(Appended(index, leaf, data))
            size += 1
        conn.execute(entry_table.insert(), entries)
        conn.execute(hash_table.insert(), hashes)
        if digests:
            conn.execute(digest_table.insert(), digests)
        conn.execute(head_table.update().where(head_table.c.id == 1).values(size=size))
        return out

    # ---- reading -----------------------------------------------------------------------------------------
    def size(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(head_table.c.size).where(head_table.c.id == 1)).scalar_one()

    @staticmethod
    def _hashes(conn, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        # one indexed look-up per hash, in one statement sent as plain SQL (compiling an OR of ~40 terms through
        # the SQL expression layer costs more than the look-ups themselves)
        # (at most HASHES_PER_QUERY terms a statement: SQLite refuses an expression deeper than 1000, which a batch
        # of a few hundred receipts' proofs reaches)
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        found = {}
        for start in range(0, len(keys), HASHES_PER_QUERY):
            chunk = keys[start:start + HASHES_PER_QUERY]
            terms = " OR ".join([f"(level = {mark} AND idx = {mark})"] * len(chunk))
            rows = conn.exec_driver_sql(f"SELECT level, idx, hash FROM tlog_hash WHERE {terms}",
                                        tuple(v for key in chunk for v in key)).all()
            found.update({(r[0], r[1]): bytes(r[2]) for r in rows})
        if len(found) != len(keys):
            raise CeadError("tlog.corrupt", "The log's stored hashes are incomplete; the database was altered.")
        return found

    def _prove(self, ranges: list[tuple[int, int]], conn=None) -> list[bytes]:
        pieces = [merkle.complete_subtrees(lo, hi) for lo, hi in dict.fromkeys(ranges)]
        pieces = dict(zip(dict.fromkeys(ranges), pieces))
        if conn is None:
            with self.engine.connect() as conn:
                found = self._hashes(conn, [p for ps in pieces.values() for p in ps])
        else:
            found = self._hashes(conn, [p for ps in pieces.values() for p in ps])
        roots = {r: merkle.fold([found[p] for p in ps]) for r, ps in pieces.items()}
        return [roots[r] for r in ranges]

    def root(self, size: int | None = None) -> bytes:
        size = self.size() if size is None else size
        if size == 0:
            return merkle.EMPTY_ROOT
        return self._prove([(0, size)])[0]

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        size = self.size() if size is None else size
        if size > self.size():
            raise CeadError("tlog.proof_invalid", f"The log has fewer than {size} entries.")
        return self._prove(merkle.inclusion_ranges(index, size))

    def inclusion_proofs(self, indices: Sequence[int], size: int | None = None, conn=None) -> list[list[bytes]]:
        """Inclusion proofs of several entries under one tree size, from one query (a batch of receipts shares
        most of its proof nodes)."""
        size = self.size() if size is None else size
        ranges = [merkle.inclusion_ranges(i, size) for i in indices]
        flat = [r for rs in ranges for r in rs]
        hashes = iter(self._prove(flat, conn))
        return [[next(hashes) for _ in rs] for rs in ranges]

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        new = self.size() if new is None else new
        if new > self.size():
            raise CeadError("tlog.proof_invalid", f"The log has fewer than {new} entries.")
        return self._prove(merkle.consistency_ranges(old, new))

    def entry(self, index: int) -> bytes:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(entry_table.c.entry).where(entry_table.c.idx == index)).first()
        if row is None:
            raise CeadError("tlog.not_found", f"The log has no entry {index}.")
        return bytes(row[0])

    def entries(self, start: int = 0, end: int | None = None, kind: str | None = None) -> list[tuple[int, bytes]]:
        query = sa.select(entry_table.c.idx, entry_table.c.entry).where(entry_table.c.idx >= start)
        if end is not None:
            query = query.where(entry_table.c.idx < end)
        if kind is not None:
            query = query.where(entry_table.c.kind == kind)
        with self.engine.connect() as conn:
            return [(r[0], bytes(r[1])) for r in conn.execute(query.order_by(entry_table.c.idx))]

    def find(self, digest: str, kind: str | None = None) -> list[int]:
        """Indexes of the entries that name ``digest`` (SHA-256 hex), oldest first."""
        query = sa.select(digest_table.c.idx).where(digest_table.c.digest == digest)
        if kind is not None:
            query = query.join(entry_table, entry_table.c.idx == digest_table.c.idx).where(entry_table.c.kind == kind)
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(query.order_by(digest_table.c.idx))]

    def evidence(self, digest: str, kind: str | None = None) -> dict:
        """What a verifier needs to check that ``digest`` is logged: the newest checkpoint (with the cosignatures
        gathered so far), the first entry naming it and its inclusion proof under that checkpoint."""
        import base64
        found = self.find(digest, kind)
        if not found:
            raise CeadError("tlog.not_found", f"Nothing with digest {digest[:16]}... is in this log.")
        note = self.latest_cosigned() or self.checkpoint()
        size = Checkpoint.parse(note.split("\n\n", 1)[0] + "\n").size
        index = found[0]
        if index >= size:
            note = self.checkpoint()
            size = Checkpoint.parse(note.split("\n\n", 1)[0] + "\n").size
        return {"index": index, "size": size, "entry": base64.b64encode(self.entry(index)).decode(),
                "proof": [base64.b64encode(h).decode() for h in self.inclusion_proof(index, size)],
                "checkpoint": note}

    def latest_cosigned(self) -> str | None:
        """The newest checkpoint that carries at least one cosignature."""
        with self.engine.connect() as conn:
            for row in conn.execute(sa.select(checkpoint_table.c.note).order_by(checkpoint_table.c.size.desc())
                                    .limit(50)):
                if sum(1 for line in row[0].split("\n") if line.startswith("\u2014 ")) > 1:
                    return row[0]
        return None

    # ---- checkpoints -------------------------------------------------------------------------------------
    def checkpoint(self, conn=None) -> str:
        """The signed checkpoint of the current size (signed once per size and kept), by the key the log itself
        names (:meth:`signers`). ``conn``: sign within the caller's transaction (a key rotation signs the tree
        that ends with its own ``key.added`` entry before any other entry can be appended)."""
        if conn is None:
            with self.engine.begin() as conn:
                return self._checkpoint(conn)
        return self._checkpoint(conn)

    def _checkpoint(self, conn) -> str:
        size = conn.execute(sa.select(head_table.c.size).where(head_table.c.id == 1)).scalar_one()
        row = conn.execute(sa.select(checkpoint_table.c.note).where(checkpoint_table.c.size == size)).first()
        if row is not None:
            return row[0]
        root = merkle.EMPTY_ROOT if size == 0 else self._prove([(0, size)], conn)[0]
        text = Checkpoint(self.origin, size, root).text()
        signed = notes.signed(text, [notes.sign(text, self.origin, key) for key in self.signers(size, conn)])
        conn.execute(checkpoint_table.insert().values(size=size, note=signed, at=utcnow()))
        return signed

    # ---- which key signs: the one the log names -------------------------------------------------------------
    def named_keys(self, size: int | None = None, conn=None) -> list[tuple[int, str, str]]:
        """The log's own record of its signing keys: ``(index, verificationMethod, publicKeyMultibase)`` of each
        ``key.added`` entry for an Ed25519 key among the first ``size`` entries (all by default), oldest first."""
        from verifier.keys import ED25519, PublicKey
        query = sa.select(entry_table.c.idx, entry_table.c.entry).where(entry_table.c.kind == "key.added")
        if size is not None:
            query = query.where(entry_table.c.idx < size)
        query = query.order_by(entry_table.c.idx)
        if conn is None:
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
        else:
            rows = conn.execute(query).all()
        out = []
        for index, data in rows:
            meta = (decode_entry(bytes(data)).get("meta") or {})
            multikey = meta.get("publicKeyMultibase")
            try:
                if not isinstance(multikey, str) or PublicKey.from_multikey(multikey).kind != ED25519:
                    continue
            except (CeadError, ValueError):
                continue
            out.append((index, str(meta.get("verificationMethod") or ""), multikey))
        return out

    def named_key(self) -> str | None:
        """The public key (multikey) the log names as its current signing key: that of its newest Ed25519
        ``key.added`` entry; None for a log that names none (one older than key logging)."""
        named = self.named_keys()
        return named[-1][2] if named else None

    def signers(self, size: int, conn=None) -> list:
        """The keys that sign the checkpoint of ``size`` entries. The log's checkpoints are signed with the key
        its newest Ed25519 ``key.added`` entry in that tree names, whatever a process's configuration says (a
        running node whose config.yaml a rotation changed signs with the key the log has named, never with one it
        has not named yet); and the tree that *ends* with such an entry (a rotation's handover) is signed by the
        key before it as well, unless that one is retired. A log without a node (``TransparencyLog(engine,
        origin, signer)``) signs with its ``signer``; a log that names no key, with the node's current key.
        Raises ``tlog.key_unavailable`` when the named key is retired or not in config.yaml."""
        node = getattr(self, "_node", None)
        if node is None:
            return [self.signer]
        named = self.named_keys(size, conn)
        if not named:
            return [node.key]
        index, vm, current = named[-1]
        out = []
        if index == size - 1 and len(named) > 1 and named[-2][2] != current:
            try:
                out.append(node.private_key_for(named[-2][2]))
            except CeadError as exc:
                if exc.code not in ("key.retired", "key.missing"):
                    raise
        try:
            out.append(node.private_key_for(current))
        except CeadError as exc:
            if exc.code not in ("key.retired", "key.missing"):
                raise
            raise CeadError("tlog.key_unavailable", f"The log's checkpoints are signed with the key its newest "
                            f"key.added entry names ({vm or current[:24]}), and this node cannot use it: "
                            f"{exc.message} Run `cead key rotate` to log a new key.", key=vm) from None
        return out

    def handovers(self) -> list[tuple[int, str]]:
        """``(size, note)`` of each key rotation's handover checkpoint, oldest first: the checkpoint of the tree
        that ends with a ``key.added`` entry naming a new Ed25519 key, signed by the key before it and the new one
        (what a witness follows the rotation by: ``issuer.evidence.witness.add_key``)."""
        named = self.named_keys()
        sizes = [index + 1 for (index, _, key), (_, _, before) in zip(named[1:], named) if key != before]
        if not sizes:
            return []
        with self.engine.connect() as conn:
            rows = dict(conn.execute(sa.select(checkpoint_table.c.size, checkpoint_table.c.note)
                                     .where(checkpoint_table.c.size.in_(sizes))).all())
        return [(size, rows[size]) for size in sizes if size in rows]

    def add_cosignature(self, size: int, line: str) -> str:
        """Keep a witness's cosignature line with the checkpoint of ``size`` (served with it from then on). One
        line per witness key: a checkpoint submitted again (its submitter killed after the witness co-signed, the
        claim lapsed) gets a second cosignature of another time from the same key, and the first is kept."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(checkpoint_table.c.note).where(checkpoint_table.c.size == size)
                               .with_for_update()).first()
            if row is None:
                raise CeadError("tlog.not_found", f"No checkpoint of size {size} was signed by this log.")
            signer = _signer_of(line)
            if line in row[0] or (signer is not None and signer in {_signer_of(kept) for kept in row[0].split("\n")}):
                return row[0]
            updated = row[0] + line
            conn.execute(checkpoint_table.update().where(checkpoint_table.c.size == size).values(note=updated))
        return updated

    def checkpoint_at(self, size: int) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(checkpoint_table.c.note).where(checkpoint_table.c.size == size)).first()
        return row[0] if row else None

    def checkpoints(self) -> list[str]:
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.select(checkpoint_table.c.note).order_by(checkpoint_table.c.size))]

    # ---- tiles (C2SP tlog-tiles) -------------------------------------------------------------------------
    def tile(self, path: str) -> bytes:
        level, index, width = tiles.parse_tile_path(path)
        start, end = index * tiles.TILE_WIDTH, index * tiles.TILE_WIDTH + width
        with self.engine.connect() as conn:
            if level == "entries":
                rows = conn.execute(sa.select(entry_table.c.entry).where(entry_table.c.idx >= start,
                                    entry_table.c.idx < end).order_by(entry_table.c.idx)).all()
                data = [bytes(r[0]) for r in rows]
                if len(data) != width:
                    raise CeadError("tlog.not_found", "That tile is not (yet) in the log.")
                return tiles.bundle(data)
            rows = conn.execute(sa.select(hash_table.c.hash).where(
                hash_table.c.level == level * tiles.TILE_HEIGHT, hash_table.c.idx >= start,
                hash_table.c.idx < end).order_by(hash_table.c.idx)).all()
        if len(rows) != width:
            raise CeadError("tlog.not_found", "That tile is not (yet) in the log.")
        return b"".join(bytes(r[0]) for r in rows)
