"""A node as a witness of other nodes' logs (C2SP tlog-witness, where it fits).

A witness keeps, per log origin it watches, the newest checkpoint it has cosigned (size and root). A log submits
``old <size>\\n`` + the consistency proof (one base64 hash per line) + a blank line + its new signed checkpoint. The
witness verifies the log's signature, that ``old`` is the size it last saw (else 409 with its size, so the log can
retry with the right proof), and the consistency proof from what it saw to the new checkpoint; only then does it
record the new checkpoint and return its ``cosignature/v1`` line. A log that shows two histories cannot get the
same witness to cosign both, and two witnesses that compare what they cosigned (:func:`compare`) catch the fork.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import sqlalchemy as sa

from verifier.did import vm_public_key
from verifier.keys import ED25519
from verifier.results import CeadError
from verifier.tlog import merkle, note as notes
from verifier.tlog.checkpoint import Checkpoint, open_checkpoint

from ..db import utcnow

metadata = sa.MetaData()
witnessed = sa.Table("tlog_witnessed", metadata, sa.Column("origin", sa.String, primary_key=True),
                     sa.Column("vkey", sa.Text), sa.Column("size", sa.BigInteger), sa.Column("root", sa.LargeBinary),
                     sa.Column("note", sa.Text), sa.Column("at", sa.String))


def witness_name(node) -> str:
    """The cosigner name: the node's DID (a schema-less name with no spaces or '+')."""
    return node.did


def witness_key(node) -> notes.NoteKey:
    """The note verifier key this node's cosignatures are checked with (``.vkey()``: ``name+keyid+base64``, what
    ``cead audit --witness`` and a trust policy's ``transparency.witnesses`` take): its DID and its current Ed25519
    key. Read from the node's configuration (the public half): no passphrase needed. ``cead witness key`` prints it."""
    return witness_keys(node)[0]


def witness_keys(node) -> list[notes.NoteKey]:
    """Every key this node may have cosigned with that its DID document still lists for use: the current one first,
    then those a key rotation left in use (checkpoints it cosigned before the rotation carry those). Retired keys
    are left out, as the DID document leaves them out of every purpose."""
    keys = dict(node.public_keys())
    current = node.verification_method_id
    ordered = [current] + [vm for vm in reversed(list(keys)) if vm != current]
    return [notes.NoteKey(witness_name(node), notes.ALG_COSIGNATURE_V1, keys[vm].raw) for vm in ordered
            if keys[vm].kind == ED25519]


def witness_keys_in(document: dict) -> list[notes.NoteKey]:
    """The witness keys of the organisation whose (resolved) DID document this is: one per Ed25519 key the document
    lists for use (``assertionMethod``), named by its DID, as a Cead node witnessing a log names its cosignatures
    (:func:`witness_name`). Keys listed only as key material (retired) are left out."""
    did = document.get("id") if isinstance(document, dict) else None
    if not isinstance(did, str):
        raise CeadError("did.document_invalid", "The DID document has no id.")
    methods = {vm.get("id"): vm for vm in document.get("verificationMethod") or [] if isinstance(vm, dict)}
    out: list[notes.NoteKey] = []
    for ref in document.get("assertionMethod") or []:
        vm = methods.get(ref) if isinstance(ref, str) else ref
        if not isinstance(vm, dict):
            continue
        try:
            key = vm_public_key(vm)
        except CeadError:
            continue
        if key.kind == ED25519:
            note_key = notes.NoteKey(did, notes.ALG_COSIGNATURE_V1, key.raw)
            if note_key not in out:
                out.append(note_key)
    return out


def watch(node, log_vkey: str) -> None:
    """Start witnessing the log whose note verifier key is ``log_vkey`` (its name is the log's origin)."""
    key = notes.NoteKey.parse(log_vkey)
    if key.alg != notes.ALG_ED25519:
        raise CeadError("tlog.note_invalid", "A log's verifier key has type 0x01 (Ed25519).")
    with node.engine.begin() as conn:
        row = conn.execute(sa.select(witnessed.c.vkey).where(witnessed.c.origin == key.name)).first()
        if row is None:
            conn.execute(witnessed.insert().values(origin=key.name, vkey=log_vkey, size=0, root=merkle.EMPTY_ROOT,
                                                   note=None, at=utcnow()))
        elif row[0] != log_vkey:
            conn.execute(witnessed.update().where(witnessed.c.origin == key.name).values(vkey=log_vkey))


@dataclass
class Answer:
    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


def add_checkpoint(node, body: bytes | str) -> Answer:
    """The ``POST /add-checkpoint`` handler (c2sp.org/tlog-witness)."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        head, _, note = text.partition("\n\n")
        lines = head.split("\n")
        if not lines[0].startswith("old ") or not lines[0][4:].isdigit():
            return Answer(400, "The request starts with 'old <size>'.\n")
        old = int(lines[0][4:])
        proof = [base64.b64decode(line, validate=True) for line in lines[1:]]
    except (UnicodeDecodeError, binascii.Error, ValueError):
        return Answer(400, "Malformed add-checkpoint request.\n")
    try:
        cp = Checkpoint.parse(notes.split(note)[0])
    except CeadError as exc:
        return Answer(400, exc.message + "\n")
    with node.engine.begin() as conn:
        row = conn.execute(sa.select(witnessed).where(witnessed.c.origin == cp.origin).with_for_update()).first()
        if row is None:
            return Answer(404, f"This witness does not watch the log {cp.origin}.\n")
        try:
            signed = open_checkpoint(note, notes.NoteKey.parse(row.vkey))
        except CeadError as exc:
            return Answer(403, exc.message + "\n")
        if old != row.size:
            return Answer(409, f"{row.size}\n", "text/x.tlog.size")
        if cp.size < old:
            return Answer(400, "The checkpoint is older than the one this witness has seen.\n")
        try:
            if old > 0:
                merkle.verify_consistency(old, cp.size, proof, bytes(row.root), cp.root)
            elif proof:
                raise CeadError("tlog.proof_invalid", "No proof is needed from an empty tree.")
        except CeadError as exc:
            return Answer(422, f"{exc.message}\n")
        line = notes.cosign(signed.checkpoint.text(), witness_name(node), node.key)
        conn.execute(witnessed.update().where(witnessed.c.origin == cp.origin).values(
            size=cp.size, root=cp.root, note=note + line, at=utcnow()))
    return Answer(200, line)


def seen(node, origin: str) -> str | None:
    """The newest checkpoint of ``origin`` this witness cosigned (with its cosignature)."""
    with node.engine.connect() as conn:
        row = conn.execute(sa.select(witnessed.c.note).where(witnessed.c.origin == origin)).first()
    return row[0] if row else None


def request_body(old: int, proof: list[bytes], note: str) -> bytes:
    return ("old %d\n" % old + "".join(base64.b64encode(h).decode() + "\n" for h in proof) + "\n" + note).encode()


def submit(log, post) -> str:
    """Have one witness cosign ``log``'s newest checkpoint. ``post(body) -> (status, text)`` sends an
    add-checkpoint request (over HTTPS under the node's network rules: :func:`http_poster`). Keeps the cosignature with the checkpoint and returns
    the cosigned note. Raises ``tlog.witness_refused`` if the witness will not cosign."""
    note = log.checkpoint()
    cp = Checkpoint.parse(notes.split(note)[0])
    old = 0
    for _ in range(2):
        proof = log.consistency_proof(old, cp.size) if 0 < old <= cp.size else []
        status, text = post(request_body(old, proof, note))
        if status == 409 and text.strip().isdigit() and int(text.strip()) != old:
            old = int(text.strip())
            continue
        if status != 200:
            raise CeadError("tlog.witness_refused", f"The witness refused the checkpoint ({status}): "
                            f"{text.strip()[:300]}", status=status)
        return log.add_cosignature(cp.size, text)
    raise CeadError("tlog.witness_refused", "The witness kept asking for another size.")


def http_poster(url: str, fetcher, timeout: float = 10):
    """``post(body) -> (status, text)`` for :func:`submit`: an add-checkpoint request to the witness at ``url``
    (its base, e.g. ``https://witness.example/witness``), sent through ``fetcher``: the submitting node's
    ``node.fetcher()``, so the node's network rules hold (https, its CA bundle, no loopback, private or link-local
    address unless ``network.allow_private``, checked again on the connected socket; no redirect followed).
    Raises ``tlog.witness_unreachable`` naming why (a refused address names the setting that allows it)."""
    if not callable(getattr(fetcher, "post", None)):
        raise TypeError("http_poster(url, fetcher): give the node's fetcher (node.fetcher()), which carries its CA "
                        f"bundle and network rules, not {type(fetcher).__name__}")
    target = url.rstrip("/") + "/add-checkpoint"

    def post(body: bytes):
        try:
            answer = fetcher.post(target, body, headers={"Content-Type": "text/plain"}, timeout=timeout)
        except CeadError as exc:
            raise CeadError("tlog.witness_unreachable", f"The checkpoint was not sent to the witness at {url}: {exc.message}",
                            url=url, cause=exc.code) from None
        return answer.status, answer.body.decode("utf-8", "replace")
    return post


@dataclass(frozen=True)
class SplitView:
    """Proof that a log showed two histories: two checkpoints signed by its key that cannot both be true."""
    origin: str
    first: str
    second: str
    reason: str


def compare(first_note: str, second_note: str, log_key: notes.NoteKey, consistency=None) -> SplitView | None:
    """Compare two checkpoints of one log (e.g. what two witnesses cosigned). The same size with different roots
    is a fork outright; for different sizes, ``consistency(old, new) -> proof`` asks the log for a consistency
    proof, and a log that cannot give one that verifies has forked. Returns the evidence, or None if consistent."""
    a = open_checkpoint(first_note, log_key).checkpoint
    b = open_checkpoint(second_note, log_key).checkpoint
    if a.size > b.size:
        a, b = b, a
        first_note, second_note = second_note, first_note
    if a.size == b.size:
        if a.root != b.root:
            return SplitView(log_key.name, first_note, second_note,
                             f"two different trees of {a.size} entries, both signed by the log")
        return None
    if a.size == 0:
        return None
    try:
        proof = consistency(a.size, b.size) if consistency else []
        merkle.verify_consistency(a.size, b.size, proof, a.root, b.root)
    except CeadError as exc:
        return SplitView(log_key.name, first_note, second_note,
                         f"the tree of {b.size} entries does not extend the tree of {a.size}: {exc.message}")
    return None
