"""A node as a witness of other nodes' logs (C2SP tlog-witness, where it fits).

A witness keeps, per log origin it watches, the newest checkpoint it has cosigned (size and root). A log submits
``old <size>\\n`` + the consistency proof (one base64 hash per line) + a blank line + its new signed checkpoint. The
witness verifies the log's signature, that ``old`` is the size it last saw (else 409 with its size, so the log can
retry with the right proof), and the consistency proof from what it saw to the new checkpoint; only then does it
record the new checkpoint and return its ``cosignature/v1`` line. A log that shows two histories cannot get the
same witness to cosign both, and two witnesses that compare what they cosigned (:func:`compare`) catch the fork.

After the log's key rotation the witness follows the new key by itself, on the log's proof only (:func:`add_key`,
``POST /witness/add-key``): a checkpoint signed by the key it has, consistent with what it co-signed, whose tree
ends with the ``key.added`` entry naming the new key, and signed by that key too. The log's submitter sends those
handover checkpoints when a witness refuses its checkpoint as not signed by the key it has (:func:`follow`).

Operating it (docs/evidence.md, "Witnesses"): a node watches another organisation's log with ``cead witness watch``
(:func:`watch`, the key found by :func:`log_key_of` from the node's URL, or given as :func:`log_vkey` prints it);
its own log is submitted to the witnesses of ``config.yaml witnesses:`` (:func:`targets`) by the served node's
worker (:func:`start_submitter`) and ``cead witness submit`` (:func:`submit_to_witnesses`), each witness claimed in
the ``tlog_submission`` table so the two never submit to one witness at the same time.
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass

import sqlalchemy as sa

from verifier.did import vm_public_key
from verifier.keys import ED25519
from verifier.results import CeadError
from verifier.tlog import merkle, note as notes
from verifier.tlog.checkpoint import Checkpoint, open_checkpoint

from ..db import utcnow

log_ = logging.getLogger(__name__)
metadata = sa.MetaData()
witnessed = sa.Table("tlog_witnessed", metadata, sa.Column("origin", sa.String, primary_key=True),
                     sa.Column("vkey", sa.Text), sa.Column("size", sa.BigInteger), sa.Column("root", sa.LargeBinary),
                     sa.Column("note", sa.Text), sa.Column("at", sa.String),
                     # set when the witness followed the log's key rotation by itself (add_key): the key it
                     # followed from, the size of the handover checkpoint, when
                     sa.Column("previous_vkey", sa.Text), sa.Column("key_since", sa.BigInteger),
                     sa.Column("key_followed_at", sa.String))


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
    are left out, as the DID document leaves them out of every purpose, and so is the pending key of a rotation
    cut short (it has signed nothing)."""
    keys = dict(node.public_keys())
    for meta in node.config["keys"]:
        if meta.get("status") == "pending":
            keys.pop(node.vm_id(meta), None)
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


@dataclass
class Answer:
    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


def _watched(conn, cp: Checkpoint, note: str, old: int):
    """``(row, None)`` for a checkpoint of a log this witness watches, signed by the key it has for the log, whose
    ``old`` is the size this witness last co-signed; else ``(None, the refusal)``: 404 not watched, 403 not signed
    by that key, 409 (with its size) another ``old``, 400 older than what it has seen. Locks the log's row."""
    row = conn.execute(sa.select(witnessed).where(witnessed.c.origin == cp.origin).with_for_update()).first()
    if row is None:
        return None, Answer(404, f"This witness does not watch the log {cp.origin}.\n")
    try:
        open_checkpoint(note, notes.NoteKey.parse(row.vkey))
    except CeadError as exc:
        return None, Answer(403, _not_signed(cp.origin, row.vkey, exc))
    if old != row.size:
        return None, Answer(409, f"{row.size}\n", "text/x.tlog.size")
    if cp.size < old:
        return None, Answer(400, "The checkpoint is older than the one this witness has seen.\n")
    return row, None


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
        row, refused = _watched(conn, cp, note, old)
        if refused is not None:
            return refused
        try:
            if old > 0:
                merkle.verify_consistency(old, cp.size, proof, bytes(row.root), cp.root)
            elif proof:
                raise CeadError("tlog.proof_invalid", "No proof is needed from an empty tree.")
        except CeadError as exc:
            return Answer(422, f"{exc.message}\n")
        line = notes.cosign(cp.text(), witness_name(node), node.key)
        conn.execute(witnessed.update().where(witnessed.c.origin == cp.origin).values(
            size=cp.size, root=cp.root, note=note + line, at=utcnow()))
    return Answer(200, line)


def _not_signed(origin: str, vkey: str, exc: CeadError) -> str:
    """A 403's text: which key the witness has, and what the two operators can do about it (also in this node's
    own log, for the witness's operator)."""
    log_.warning("refused a checkpoint of the log %s: %s (this witness has its key %s)", origin, exc.message, vkey)
    if "not signed by the log key" not in exc.message:
        return exc.message + "\n"
    again = "the new log key" if origin.startswith("key.") else "https://" + origin.rsplit("/log", 1)[0]
    return (f"The checkpoint is not signed by the key this witness has for the log {origin} ({vkey}). After a key "
            "rotation the log's node hands its witnesses over to the new key itself (POST /witness/add-key with "
            "the rotation's checkpoint, signed by the old key); a key the log has not handed over so is not "
            "followed: the witness's operator checks the new key with the log's organisation (its `cead witness "
            f"log-key`) and runs `cead witness watch {again}` again.\n")


def add_key(node, body: bytes | str) -> Answer:
    """``POST /witness/add-key``: follow a watched log's key rotation (a Cead extension of c2sp.org/tlog-witness).

    The rule (docs/evidence.md, "When the log's key is rotated"): the witness moves from the key it has for the
    log (K) to a new key (N) only on a checkpoint that

    1. is signed by K and extends, by a consistency proof, the tree this witness last co-signed (``old`` must be
       its size: 409 with its size otherwise), exactly as ``add-checkpoint`` requires;
    2. ends with a ``key.added`` entry naming N as an Ed25519 key: the entry's bytes and its inclusion proof as
       the *last* entry of that tree are given, and checked against the checkpoint's root (an earlier key.added
       entry, such as the one that named K or a key before it, cannot be replayed, and no later key change can
       hide behind it);
    3. is signed by N as well (the log's node holds N).

    Then it co-signs that checkpoint (as add-checkpoint would) and has N for the log from then on; K is kept
    as ``previous_vkey``. JSON body: ``{"old": size, "consistency": [base64], "checkpoint": note, "entry":
    base64, "inclusion": [base64]}``. Refusals: 400 malformed, 404 not watched, 403 not signed by K, 409 ``old``
    is not its size, 422 inconsistent, or not a key change, or not signed by N."""
    try:
        data = json.loads(body)
        old, note = data["old"], data["checkpoint"]
        if not isinstance(old, int) or isinstance(old, bool) or old < 0 or not isinstance(note, str) \
                or not isinstance(data["entry"], str):
            raise ValueError
        consistency = [base64.b64decode(h, validate=True) for h in data["consistency"]]
        inclusion = [base64.b64decode(h, validate=True) for h in data["inclusion"]]
        entry = base64.b64decode(data["entry"], validate=True)
        cp = Checkpoint.parse(notes.split(note)[0])
    except CeadError as exc:
        return Answer(400, exc.message + "\n")
    except (ValueError, KeyError, TypeError, binascii.Error):
        return Answer(400, "Malformed add-key request: a JSON object with old, consistency, checkpoint, entry "
                      "and inclusion.\n")
    with node.engine.begin() as conn:
        row, refused = _watched(conn, cp, note, old)
        if refused is not None:
            return refused
        try:
            if old > 0:
                merkle.verify_consistency(old, cp.size, consistency, bytes(row.root), cp.root)
            if cp.size == 0:
                raise CeadError("tlog.proof_invalid", "An empty tree holds no key change.")
            merkle.verify_inclusion(merkle.leaf_hash(entry), cp.size - 1, cp.size, inclusion, cp.root)
        except CeadError as exc:
            return _refused_key(cp.origin, f"{exc.message} A key is followed only from a checkpoint that extends "
                                "what this witness co-signed and ends with the log's key.added entry naming it.")
        new = _key_added(entry, cp.origin)
        if new is None:
            return _refused_key(cp.origin, "The last entry of that checkpoint's tree is not a key.added entry "
                                "naming an Ed25519 key: there is no key change to follow.")
        try:
            open_checkpoint(note, new)
        except CeadError:
            return _refused_key(cp.origin, f"The checkpoint is not signed by the new key its last entry names "
                                f"({new.vkey()}): a rotation's checkpoint is signed by the old key and the new one.")
        line = notes.cosign(cp.text(), witness_name(node), node.key)
        values = dict(size=cp.size, root=cp.root, note=note + line, at=utcnow())
        if new.vkey() != row.vkey:
            values.update(vkey=new.vkey(), previous_vkey=row.vkey, key_since=cp.size, key_followed_at=values["at"])
            log_.warning("followed the key rotation of the log %s at size %d (its key.added entry %d, vouched for "
                         "by the key it had): %s replaces %s", cp.origin, cp.size, cp.size - 1, new.vkey(), row.vkey)
        conn.execute(witnessed.update().where(witnessed.c.origin == cp.origin).values(**values))
    return Answer(200, line)


def _refused_key(origin: str, reason: str) -> Answer:
    """A 422 to add-key: the key is not followed (said in this node's own log too, for the witness's operator)."""
    log_.warning("did not follow a key change of the log %s: %s", origin, reason)
    return Answer(422, reason + "\n")


def _key_added(entry: bytes, origin: str) -> notes.NoteKey | None:
    """The log key (named ``origin``) a ``key.added`` entry names, when it names an Ed25519 key; else None."""
    import hashlib

    from verifier.keys import PublicKey
    try:
        value = json.loads(entry)
        meta, digests = value.get("meta") or {}, value.get("digests") or {}
        multikey = meta.get("publicKeyMultibase")
        if value.get("kind") != "key.added" or not isinstance(multikey, str) \
                or digests.get("key") != hashlib.sha256(multikey.encode()).hexdigest():
            return None
        key = PublicKey.from_multikey(multikey)
    except (ValueError, AttributeError, CeadError):
        return None
    if key.kind != ED25519:
        return None
    return notes.NoteKey(origin, notes.ALG_ED25519, key.raw)


def seen(node, origin: str) -> str | None:
    """The newest checkpoint of ``origin`` this witness cosigned (with its cosignature)."""
    with node.engine.connect() as conn:
        row = conn.execute(sa.select(witnessed.c.note).where(witnessed.c.origin == origin)).first()
    return row[0] if row else None


def request_body(old: int, proof: list[bytes], note: str) -> bytes:
    return ("old %d\n" % old + "".join(base64.b64encode(h).decode() + "\n" for h in proof) + "\n" + note).encode()


def submit(log, post, post_key=None) -> str:
    """Have one witness cosign ``log``'s newest checkpoint. ``post(body) -> (status, text)`` sends an
    add-checkpoint request (over HTTPS under the node's network rules: :func:`http_poster`). Keeps the cosignature
    with the checkpoint and returns the cosigned note. Raises ``tlog.witness_refused`` if the witness will not
    cosign.

    ``post_key(body) -> (status, text)`` sends an add-key request (``http_poster(url, fetcher, endpoint=
    "add-key")``): when the witness refuses the checkpoint as not signed by the key it has (403) and this log
    has rotated its key, the witness is handed over to the new key first (:func:`follow`), then asked again."""
    note = log.checkpoint()
    cp = Checkpoint.parse(notes.split(note)[0])
    try:
        return _submit_note(log, post, note, cp.size)
    except CeadError as exc:
        if exc.detail.get("status") != 403 or post_key is None or not log.handovers():
            raise
        refused = exc
    followed, why = follow(log, post_key)
    if not followed:
        raise CeadError("tlog.witness_refused", f"{refused.message} The witness was not handed over to this log's "
                        f"new key: {why}", status=403)
    if followed == cp.size:               # the checkpoint it just co-signed is the newest one
        return log.checkpoint_at(cp.size)
    return _submit_note(log, post, note, cp.size)


def _submit_note(log, post, note: str, size: int) -> str:
    old = 0
    for _ in range(2):
        proof = log.consistency_proof(old, size) if 0 < old <= size else []
        status, text = post(request_body(old, proof, note))
        if status == 409 and text.strip().isdigit() and int(text.strip()) != old:
            old = int(text.strip())
            continue
        if status != 200:
            raise CeadError("tlog.witness_refused", f"The witness refused the checkpoint ({status}): "
                            f"{text.strip()[:600]}", status=status)
        return log.add_cosignature(size, text)
    raise CeadError("tlog.witness_refused", "The witness kept asking for another size.")


def key_request_body(log, old: int, size: int, note: str) -> bytes:
    """The add-key request for the handover checkpoint ``note`` of ``size`` entries, from the witness's ``old``."""
    b64 = lambda h: base64.b64encode(h).decode()   # noqa: E731
    return json.dumps({
        "old": old, "consistency": [b64(h) for h in (log.consistency_proof(old, size) if 0 < old < size else [])],
        "checkpoint": note, "entry": b64(log.entry(size - 1)),
        "inclusion": [b64(h) for h in log.inclusion_proof(size - 1, size)]}).encode()


def follow(log, post_key) -> tuple[int, str]:
    """Hand one witness over to this log's newest key, through each rotation's handover checkpoint (oldest first)
    that it has not passed: each is signed by the key before the rotation and ends with the ``key.added`` entry
    naming the next (:func:`add_key` checks both). A witness answers 403 to a handover not signed by the key it
    has (it is at another step of the chain): that one is skipped. Returns ``(size, "")`` of the last handover
    the witness co-signed, or ``(0, why)`` when it followed none."""
    old, last = 0, 0
    why = "this log has no rotation's checkpoint the witness has not passed"
    for size, note in log.handovers():
        status, text = 0, ""
        for _ in range(3):
            if size < old:                   # the witness has passed this rotation
                status = -1
                break
            status, text = post_key(key_request_body(log, old, size, note))
            if status == 409 and text.strip().isdigit() and int(text.strip()) != old:
                old = int(text.strip())
                continue
            break
        reason = text.strip()[:400].rstrip(".")
        if status == 200:
            log.add_cosignature(size, text)
            old, last = size, size
        elif status == 403:
            why = (f"it refused the rotation's checkpoint of {size} entries as not signed by the key it has, "
                   "so the key it has is not one this log handed over from")
        elif status == 422:
            why = (f"it refused the rotation's checkpoint of {size} entries (422): {reason}. If this log's history "
                   "is not the one the witness co-signed, that is for both organisations to look into (a fork), "
                   "not for `cead witness watch` to paper over")
            break
        elif status != -1:
            why = f"it refused the rotation's checkpoint of {size} entries ({status}): {reason}"
            if status in (400, 404):
                break
    return (last, "") if last else (0, why + ".")


def http_poster(url: str, fetcher, timeout: float = 10, endpoint: str = "add-checkpoint"):
    """``post(body) -> (status, text)`` for :func:`submit`: an add-checkpoint request to the witness at ``url``
    (its base, e.g. ``https://witness.example/witness``), sent through ``fetcher``: the submitting node's
    ``node.fetcher()``, so the node's network rules hold (https, its CA bundle, no loopback, private or link-local
    address unless ``network.allow_private``, checked again on the connected socket; no redirect followed).
    Raises ``tlog.witness_unreachable`` naming why (a refused address names the setting that allows it)."""
    if not callable(getattr(fetcher, "post", None)):
        raise TypeError("http_poster(url, fetcher): give the node's fetcher (node.fetcher()), which carries its CA "
                        f"bundle and network rules, not {type(fetcher).__name__}")
    if endpoint not in ("add-checkpoint", "add-key"):
        raise ValueError(f"endpoint: add-checkpoint or add-key, not {endpoint!r}")
    target = url.rstrip("/") + "/" + endpoint

    def post(body: bytes):
        try:
            answer = fetcher.post(target, body, headers={"Content-Type": "text/plain" if endpoint == "add-checkpoint"
                                                     else "application/json"}, timeout=timeout)
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


def compare(first_note: str, second_note: str, log_key, consistency=None) -> SplitView | None:
    """Compare two checkpoints of one log (e.g. what two witnesses cosigned). The same size with different roots
    is a fork outright; for different sizes, ``consistency(old, new) -> proof`` asks the log for a consistency
    proof, and a log that cannot give one that verifies has forked. Returns the evidence, or None if consistent.

    ``log_key``: the log's key, or its keys (a ``NoteKey`` or a list of them, all named after the log's origin):
    across a key rotation give the key before it and the key after it (the DID document lists both until the old
    one is retired; a witness that followed the rotation shows both in ``cead witness list``), so a checkpoint
    signed before the rotation can be compared with one signed after it; each note must be signed by one of them.
    A note signed by none raises ``tlog.signature_invalid`` naming the keys given (not a split view: nothing says
    that checkpoint is the log's)."""
    keys = _log_keys(log_key)
    a, first_by = _opened(first_note, keys, "first")
    b, second_by = _opened(second_note, keys, "second")
    origin = keys[0].name
    if a.size > b.size:
        a, b = b, a
        first_note, second_note = second_note, first_note
    if a.size == b.size:
        if a.root != b.root:
            return SplitView(origin, first_note, second_note,
                             f"two different trees of {a.size} entries, both signed by the log")
        return None
    if a.size == 0:
        return None
    try:
        proof = consistency(a.size, b.size) if consistency else []
        merkle.verify_consistency(a.size, b.size, proof, a.root, b.root)
    except CeadError as exc:
        return SplitView(origin, first_note, second_note,
                         f"the tree of {b.size} entries does not extend the tree of {a.size}: {exc.message}")
    return None


def _log_keys(log_key) -> list[notes.NoteKey]:
    """:func:`compare`'s ``log_key`` as a checked list: Ed25519 note keys of one origin."""
    keys = [log_key] if isinstance(log_key, notes.NoteKey) else list(log_key or [])
    if not keys or not all(isinstance(k, notes.NoteKey) for k in keys):
        raise CeadError("tlog.note_invalid", "Give the log's key, or its keys across a rotation, as note verifier "
                        "keys (NoteKey.parse of what `cead witness log-key` prints).")
    if any(k.alg != notes.ALG_ED25519 for k in keys):
        raise CeadError("tlog.note_invalid", "A log's verifier key has type 0x01 (Ed25519); a witness's "
                        "cosignature key (0x04) does not sign a log's checkpoints.")
    if len({k.name for k in keys}) != 1:
        raise CeadError("tlog.note_invalid", "The keys given name different logs ("
                        + ", ".join(sorted({k.name for k in keys})) + "): a comparison is of one log's checkpoints, "
                        "and each of its keys is named after its origin.")
    return keys


def _opened(note: str, keys: list[notes.NoteKey], which: str) -> tuple[Checkpoint, notes.NoteKey]:
    """The checkpoint of ``note`` and the first of ``keys`` that signed it; ``tlog.signature_invalid`` naming the
    keys when none did."""
    for key in keys:
        try:
            return open_checkpoint(note, key).checkpoint, key
        except CeadError as exc:
            if exc.code != "tlog.signature_invalid" or "not signed by the log key" not in exc.message:
                raise CeadError(exc.code, f"The {which} checkpoint: {exc.message}", **exc.detail) from None
    raise CeadError("tlog.signature_invalid", f"The {which} checkpoint is not signed by any of the log keys given ("
                    + ", ".join(k.vkey() for k in keys) + "). If the log's key was rotated between the two, give "
                    "the key before the rotation and the key after it; a key the log never named is not its "
                    "key, and its checkpoint is no evidence of a split view.", keys=[k.vkey() for k in keys])


# ---- operating a witness: which logs this node watches, and how it learns a log's key -------------------------

def log_vkey(node) -> str:
    """This node's own log verifier key (``origin+keyid+base64``, key type 0x01): what another organisation's
    ``cead witness watch`` takes: the key that signs its checkpoints, the one the log names (its newest Ed25519
    ``key.added`` entry; the same as the node's current Ed25519 key except while a rotation cut short is unfinished),
    or for a log that names none the node's current Ed25519 key. Public: no passphrase needed. ``cead witness
    log-key`` prints it."""
    from verifier.keys import PublicKey

    from . import record
    from .log import origin_for
    named = record.log_of(node).named_key()
    raw = PublicKey.from_multikey(named).raw if named else dict(node.public_keys())[node.verification_method_id].raw
    return notes.NoteKey(origin_for(node), notes.ALG_ED25519, raw).vkey()


def log_key_of(node_url: str, fetcher, did: str | None = None) -> notes.NoteKey:
    """The verifier key of the log served at ``node_url``: its origin from ``GET /log/checkpoint`` (which must be
    the node's URL without ``https://``, plus ``/log``, so one organisation cannot name another's log), and the key
    from the organisation's DID document (``did``, by default the did:web of the URL): the Ed25519 key listed for
    use (``assertionMethod``) that the served checkpoint is signed with. Raises ``tlog.log_key_unknown``."""
    from verifier.did import Resolver, did_web_from_url
    base = node_url.rstrip("/")
    did = did or did_web_from_url(base)
    note = fetcher.get(f"{base}/log/checkpoint", accept="text/plain").body.decode("utf-8", "replace")
    try:
        origin = Checkpoint.parse(notes.split(note)[0]).origin
    except (CeadError, ValueError):
        raise CeadError("tlog.log_key_unknown", f"{base}/log/checkpoint does not serve a signed checkpoint.",
                        url=base) from None
    expected = base.split("://", 1)[-1] + "/log"
    if origin != expected:
        raise CeadError("tlog.log_key_unknown", f"The log at {base} names itself {origin!r}, not {expected!r}: "
                        "give its log verifier key instead (its organisation prints it with `cead witness "
                        "log-key`).", url=base, origin=origin)
    for key in witness_keys_in(Resolver(fetcher).resolve(did)):
        candidate = notes.NoteKey(origin, notes.ALG_ED25519, key.public)
        try:
            open_checkpoint(note, candidate)
        except CeadError:
            continue
        return candidate
    raise CeadError("tlog.log_key_unknown", f"No Ed25519 key that the DID document of {did} lists for use signs the "
                    f"checkpoint of {origin}: give its log verifier key instead (its organisation prints it with "
                    "`cead witness log-key`), or --did if the node's DID is not the did:web of its URL.",
                    url=base, did=did)


def watch(node, log_vkey: str) -> str | None:
    """Start witnessing the log whose note verifier key is ``log_vkey`` (its name is the log's origin). For a log
    already watched, its key is replaced (after the log's key rotation: the size and root it last co-signed stay,
    so the new key must still extend the same history). Returns the key it replaced, or None."""
    key = notes.NoteKey.parse(log_vkey)
    if key.alg != notes.ALG_ED25519:
        raise CeadError("tlog.note_invalid", "A log's verifier key has type 0x01 (Ed25519).")
    with node.engine.begin() as conn:
        row = conn.execute(sa.select(witnessed.c.vkey).where(witnessed.c.origin == key.name)).first()
        if row is None:
            conn.execute(witnessed.insert().values(origin=key.name, vkey=log_vkey, size=0, root=merkle.EMPTY_ROOT,
                                                   note=None, at=utcnow()))
        elif row[0] != log_vkey:      # the operator's choice replaces any key the witness followed by itself
            conn.execute(witnessed.update().where(witnessed.c.origin == key.name).values(
                vkey=log_vkey, previous_vkey=None, key_since=None, key_followed_at=None))
            return row[0]
    return None


@dataclass(frozen=True)
class Watched:
    origin: str
    vkey: str
    size: int                 # the size last co-signed (0: none yet)
    at: str | None            # when (or when the watch began)
    previous_vkey: str | None = None    # when the witness followed the log's key rotation by itself: the key before,
    key_since: int | None = None        # the size of the rotation's checkpoint it followed at,
    key_followed_at: str | None = None  # and when


def watching(node) -> list[Watched]:
    """The logs this node witnesses, by origin."""
    with node.engine.connect() as conn:
        rows = conn.execute(sa.select(witnessed.c.origin, witnessed.c.vkey, witnessed.c.size, witnessed.c.at,
                                      witnessed.c.previous_vkey, witnessed.c.key_since, witnessed.c.key_followed_at)
                            .order_by(witnessed.c.origin)).all()
    return [Watched(r.origin, r.vkey, int(r.size or 0), r.at, r.previous_vkey,
                    None if r.key_since is None else int(r.key_since), r.key_followed_at) for r in rows]


def unwatch(node, origin: str) -> bool:
    """Stop witnessing ``origin`` (its submissions are refused with 404 from now on). False if it was not watched."""
    with node.engine.begin() as conn:
        return conn.execute(witnessed.delete().where(witnessed.c.origin == origin)).rowcount == 1


# ---- operating a log: submitting this node's checkpoints to the witnesses it agreed with -------------------------

submissions = sa.Table("tlog_submission", metadata, sa.Column("url", sa.String, primary_key=True),
                       sa.Column("size", sa.BigInteger), sa.Column("cosigner", sa.String),
                       sa.Column("cosigned_at", sa.String), sa.Column("failures", sa.Integer),
                       sa.Column("last_error", sa.Text), sa.Column("refused_size", sa.BigInteger),
                       sa.Column("next_attempt", sa.String),
                       sa.Column("claimed_until", sa.String))

SUBMIT_INTERVAL = 30.0            # seconds between the served node's looks for a new checkpoint (witness_interval)
SUBMIT_INTERVAL_RANGE = (0.1, 86400.0)
SUBMIT_TIMEOUT = 10.0             # seconds: one add-checkpoint POST
CLAIM_SECONDS = 60                # a submission in progress is left alone this long (well over two POSTs)
FIRST_RETRY, MAX_RETRY = 30, 3600   # after a refusal: 30 s, 1, 2, 4 ... minutes, at most an hour apart


def targets(node) -> list[str]:
    """The witness endpoints of ``witnesses:`` in ``config.yaml`` (each a base URL such as
    ``https://fife.example/witness``; a trailing ``/add-checkpoint`` is taken off), checked: ``node.config_invalid``
    naming what is wrong."""
    items = node.config.get("witnesses")
    if items is None:
        return []
    where = "config.yaml witnesses"
    if not isinstance(items, list):
        raise CeadError("node.config_invalid", f"{where}: must be a list of witness URLs, e.g. "
                        "- https://fife.example/witness")
    out: list[str] = []
    for i, item in enumerate(items):
        url = item.get("url") if isinstance(item, dict) and set(item) == {"url"} else item
        if not isinstance(url, str) or not url.startswith(("https://", "http://")) or any(c.isspace() for c in url) \
                or "?" in url or "#" in url:
            raise CeadError("node.config_invalid", f"{where}[{i}]: {item!r} is not a witness URL; give the witness "
                            "node's base URL plus /witness, e.g. https://fife.example/witness.")
        url = url.rstrip("/")
        if url.endswith("/add-checkpoint"):
            url = url[:-len("/add-checkpoint")]
        if url in out:
            raise CeadError("node.config_invalid", f"{where}[{i}]: {url} is listed twice.")
        out.append(url)
    return out


def submit_interval(node) -> float:
    """Seconds between the served node's looks for a checkpoint its witnesses have not co-signed:
    ``witness_interval`` of ``config.yaml`` (``SUBMIT_INTERVAL`` when absent), checked (``node.config_invalid``)."""
    value = node.config.get("witness_interval")
    if value is None:
        return SUBMIT_INTERVAL
    low, high = SUBMIT_INTERVAL_RANGE
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise CeadError("node.config_invalid", f"config.yaml witness_interval: {value!r}; give seconds from "
                        f"{low:g} to {high:g}.")
    return float(value)


@dataclass(frozen=True)
class Submitted:
    """What became of one witness: ``outcome`` is ``cosigned``, ``already`` (it co-signed this size before),
    ``refused`` (``status``: its HTTP status; 0 when it could not be reached), ``busy`` (another process is
    submitting to it now) or ``later`` (the served node waits before retrying after a refusal)."""
    url: str
    outcome: str
    size: int
    cosigner: str | None = None
    at: str | None = None
    status: int | None = None
    reason: str | None = None

    @property
    def failed(self) -> bool:
        return self.outcome == "refused"


def _stamp(seconds_from_now: float = 0) -> str:
    from datetime import datetime, timedelta, timezone
    moment = datetime.now(timezone.utc) + timedelta(seconds=seconds_from_now)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _claim(node, url: str) -> bool:
    """Take ``url`` for one submission: no other process submits to it until it is released, or ``CLAIM_SECONDS``
    have passed (its submitter killed). False when another process holds it."""
    now = _stamp()
    with node.engine.begin() as conn:
        if conn.execute(sa.select(submissions.c.url).where(submissions.c.url == url)).first() is None:
            try:
                with conn.begin_nested():
                    conn.execute(submissions.insert().values(url=url, failures=0))
            except sa.exc.IntegrityError:     # another process added it just now
                pass
        taken = conn.execute(submissions.update().where(
            submissions.c.url == url,
            sa.or_(submissions.c.claimed_until.is_(None), submissions.c.claimed_until <= now))
            .values(claimed_until=_stamp(CLAIM_SECONDS)))
        return taken.rowcount == 1


def _row(node, url: str):
    with node.engine.connect() as conn:
        return conn.execute(sa.select(submissions).where(submissions.c.url == url)).first()


def submit_to_witnesses(node, *, due_only: bool = False, again: bool = False, wait: float = 0, stopping=None,
                        timeout: float = SUBMIT_TIMEOUT) -> list[Submitted]:
    """Submit this node's current checkpoint to each witness of ``targets(node)`` that has not co-signed its size
    yet, through the node's fetcher (its network rules), and keep each cosignature with the checkpoint. Each
    witness is claimed in the database first, so the served node and ``cead witness submit`` (cron) never submit
    to one witness at the same time; a submission cut short (the process killed) leaves the claim to expire. A
    refusal is recorded (``last_error``) and, with ``due_only`` (the served node's loop), retried after 30 s, 1, 2,
    4 ... minutes (at most an hour apart), or at once when the log has grown. ``again``: submit also to witnesses
    that co-signed this size already. ``wait``: seconds to wait for a witness another process is submitting to
    (else it is left to that process: ``busy``). ``stopping()``: asked before each witness; True leaves the rest
    for the next run."""
    import time
    from . import record
    urls = targets(node)
    if not urls:
        return []
    log = record.log_of(node)
    note = log.checkpoint()           # signs the current size's checkpoint if none is signed yet
    size = Checkpoint.parse(notes.split(note)[0]).size
    out: list[Submitted] = []
    fetcher = node.fetcher()
    try:
        for url in urls:
            if stopping is not None and stopping():
                break
            row = _row(node, url)
            if not again and row is not None and row.size is not None and row.size >= size and row.last_error is None:
                out.append(Submitted(url, "already", int(row.size), row.cosigner, row.cosigned_at))
                continue
            if due_only and row is not None and row.last_error and row.next_attempt and row.next_attempt > _stamp() \
                    and (row.refused_size or 0) >= size:    # refused lately, and the log has not grown since
                out.append(Submitted(url, "later", size, reason=row.last_error))
                continue
            deadline = time.monotonic() + wait
            while not (claimed := _claim(node, url)) and time.monotonic() < deadline:
                time.sleep(0.2)
            if not claimed:
                out.append(Submitted(url, "busy", size))
                continue
            row = _row(node, url)        # another process may have had it co-signed while this one waited
            if not again and row.size is not None and row.size >= size and row.last_error is None:
                _release(node, url)
                out.append(Submitted(url, "already", int(row.size), row.cosigner, row.cosigned_at))
                continue
            out.append(_submit_one(node, log, url, fetcher, timeout))
    finally:
        fetcher.close()
    return out


def _submit_one(node, log, url: str, fetcher, timeout: float) -> Submitted:
    note = log.checkpoint()
    size = Checkpoint.parse(notes.split(note)[0]).size
    answers: list[str] = []           # the witness's cosignature lines (the log keeps one per witness key)

    def kept(post):
        def send(body):
            status, text = post(body)
            if status == 200:
                answers.append(text)
            return status, text
        return send
    try:
        try:
            submit(log, kept(http_poster(url, fetcher, timeout)),
                   kept(http_poster(url, fetcher, timeout, endpoint="add-key")))
        except CeadError as exc:
            status = int(exc.detail.get("status") or 0)
            reason = exc.message
            with node.engine.begin() as conn:
                row = conn.execute(sa.select(submissions.c.failures).where(submissions.c.url == url)).first()
                failures = (row.failures or 0) + 1 if row else 1
                conn.execute(submissions.update().where(submissions.c.url == url).values(
                    failures=failures, last_error=f"{exc.code}: {reason}", refused_size=size,
                    next_attempt=_stamp(min(MAX_RETRY, FIRST_RETRY * 2 ** (failures - 1)))))
            log_.warning("witness %s refused the checkpoint of %d entries: %s", url, size, reason)
            return Submitted(url, "refused", size, status=status, reason=reason)
        cosigner = _cosigner_of(answers[-1] if answers else "")
        at = _stamp()
        with node.engine.begin() as conn:
            conn.execute(submissions.update().where(submissions.c.url == url).values(
                size=size, cosigner=cosigner, cosigned_at=at, failures=0, last_error=None, refused_size=None,
                next_attempt=None))
        return Submitted(url, "cosigned", size, cosigner, at)
    finally:
        _release(node, url)


def _release(node, url: str) -> None:
    with node.engine.begin() as conn:
        conn.execute(submissions.update().where(submissions.c.url == url).values(claimed_until=None))


def _cosigner_of(answer: str) -> str | None:
    """The name in the witness's cosignature line (its add-checkpoint answer)."""
    for line in answer.split("\n"):
        if line.startswith("\u2014 "):
            return line[2:].split(" ", 1)[0]
    return None


def submission_state(node) -> list:
    """Per configured witness URL: the stored state (size co-signed, when, by whom, the last refusal)."""
    with node.engine.connect() as conn:
        rows = {r.url: r for r in conn.execute(sa.select(submissions))}
    return [(url, rows.get(url)) for url in targets(node)]


def start_submitter(node, every: float | None = None):
    """Submit new checkpoints to the configured witnesses now and then every ``every`` seconds (default:
    ``submit_interval(node)``) in a thread of this process, when ``witnesses:`` names any; set the returned event
    to stop it. Like the notifications dispatcher, start it in the process that stays (the server's worker); the
    thread ends once this process's main thread has (a graceful stop), after the witness it is talking to, whose
    outcome is recorded; a failure (a witness refusing or unreachable, a database hiccup) is logged and retried,
    and never ends the loop (``issuer.background.every``)."""
    import threading
    if not targets(node):
        return threading.Event()
    from ..background import every as periodically
    return periodically(lambda stopping: submit_to_witnesses(node, due_only=True, stopping=stopping),
                        submit_interval(node) if every is None else float(every), "cead-witness-submit",
                        "submitting the checkpoint to witnesses")
