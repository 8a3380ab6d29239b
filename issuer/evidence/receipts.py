"""Decision receipts kept at a node: the provider's gateway stores every receipt it signs (and logs it); the
recipient's wallet stores the copy that came with the answer. One table, ``evidence_receipt``, with ``side``
``provider`` or ``recipient``; the receipt is kept exactly as signed (a compact JWS), with a few columns read from
it for listing. Verification is ``verifier.receipts.verify_receipt_with``."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from jwcrypto import jwk

from verifier.receipts import ReceiptSigner, check_payload, sha256_hex
from verifier.receipts import unverified_receipt_claims as unverified_claims
from verifier.results import CeadError

from ..db import utcnow

log = logging.getLogger(__name__)
metadata = sa.MetaData()
table = sa.Table("evidence_receipt", metadata,
                 sa.Column("id", sa.String, primary_key=True), sa.Column("side", sa.String),
                 sa.Column("gateway", sa.String), sa.Column("decision", sa.String), sa.Column("approval", sa.String),
                 sa.Column("holder", sa.String), sa.Column("payload_sha256", sa.String),
                 sa.Column("rows", sa.BigInteger), sa.Column("log_index", sa.BigInteger), sa.Column("token", sa.Text),
                 sa.Column("at", sa.String),
                 # the recipient's copy only: "matches" or "differs" (the bytes it received, or sent, against the
                 # receipt's payload hash), None when not checked (the provider's own, a stream, no hash)
                 sa.Column("payload_check", sa.String),
                 # the recipient's copy only: "verified" (the gateway's signature, against its DID, when it arrived),
                 # "invalid" (it does not verify), "unverified" (its signer could not be resolved then),
                 # "uncheckable" (its key is not named by a DID URL: no DID document to check it against), None.
                 # Copies stored before "uncheckable" existed say "unverified" for both: read them through
                 # Stored.signature_state, which tells the two apart by the receipt's own kid.
                 sa.Column("signature_check", sa.String))
PROVIDER, RECIPIENT = "provider", "recipient"
# the groups a receipt is listed in (Stored.group), in the order they are listed
APPROVAL_GROUP, NO_APPROVAL, WITHOUT_PRESENTATION = "approval", "noApproval", "withoutPresentation"
GROUPS = (APPROVAL_GROUP, NO_APPROVAL, WITHOUT_PRESENTATION)
VERIFIED, INVALID, UNVERIFIED, UNCHECKABLE = "verified", "invalid", "unverified", "uncheckable"


def signer_for(node) -> ReceiptSigner:
    """A receipt signer with the node's current Ed25519 key, named by its DID URL (the gateway is the node)."""
    key, vm = node.signer()
    return ReceiptSigner(jwk.JWK(**key.private_jwk()), kid=vm)


def is_final(claims: dict) -> bool:
    """A receipt is final once it says what moved: a denial, a push, or a pull whose response was hashed."""
    payload = claims.get("payload") or {}
    return claims.get("decision") == "deny" or payload.get("direction") != "pull" or bool(payload.get("sha256"))


@dataclass
class Stored:
    id: str
    side: str
    gateway: str | None
    decision: str
    approval: str | None
    holder: str | None
    payload_sha256: str | None
    rows: int | None
    log_index: int | None
    token: str
    at: str
    payload_check: str | None = None   # the recipient's copy: "matches" / "differs" the bytes that moved; None
    signature_check: str | None = None  # as stored: "verified" / "invalid" / "unverified" / "uncheckable"; None
    proof: list | None = None      # set by a ReceiptWriter with prove=True: inclusion proof under ``proof_size``
    proof_size: int | None = None
    newly_logged: bool = False     # appended to the log by this store (not by an earlier one: a replay, a re-sign)

    @property
    def claims(self) -> dict:
        return unverified_claims(self.token)

    @property
    def signature_state(self) -> str | None:
        """What the check of the gateway's signature found when the copy arrived: ``signature_check``, except that
        a copy stored as "unverified" whose signer is not named by a DID URL (stored before "uncheckable" existed)
        reads "uncheckable": its signer was never unreachable, there was no DID document to reach."""
        if self.signature_check == UNVERIFIED and not _names_did(self.token):
            return UNCHECKABLE
        return self.signature_check

    @property
    def reasons(self) -> list[str]:
        """The receipt's reason codes (a refusal's), as it states them."""
        try:
            reasons = self.claims.get("reasons") or []
        except CeadError:
            return []
        return [str(r) for r in reasons] if isinstance(reasons, list) else []

    @property
    def group(self) -> str:
        """Where `cead receipts list` (and the audit report, and /log/transfers) put it: ``approval`` (made under
        the approval it names), ``withoutPresentation`` (a request that carried no presentation at all: a probe, a
        health check, a misconfigured client; refused, nothing moved, nobody identified) or ``noApproval`` (refused
        before an approval was found: a presentation was sent, but no approval in it could be read or relied on)."""
        if self.approval:
            return APPROVAL_GROUP
        from .report import without_presentation
        meta = {"decision": self.decision, "holder": self.holder, "approval": self.approval, "reasons": self.reasons}
        return WITHOUT_PRESENTATION if without_presentation(meta) else NO_APPROVAL

    def summary(self) -> dict[str, Any]:
        state = self.signature_state
        return {"id": self.id, "side": self.side, "decision": self.decision, "approval": self.approval,
                "holder": self.holder, "gateway": self.gateway, "payloadSha256": self.payload_sha256,
                "rows": self.rows, "logIndex": self.log_index, "at": self.at,
                **({"payloadCheck": self.payload_check} if self.payload_check else {}),
                **({"signatureCheck": state} if state else {}),
                "group": self.group, "reasons": self.reasons}


def _names_did(token: str) -> bool:
    """Whether the receipt names its signing key by a DID URL (so a DID document can check it)."""
    from verifier.receipts import signer_did_url
    try:
        return signer_did_url(token) is not None
    except CeadError:
        return False


def keep(engine, token: str, side: str, *, node=None, payload_check: str | None = None,
         signature_check: str | None = None) -> Stored:
    """Store (or replace, same ``jti``: a pull's receipt is re-signed once its payload is known) a receipt.
    With ``node`` (the provider), a final receipt is also appended to the node's log, in the same transaction.
    ``payload_check``: for a recipient's copy, whether the bytes that moved match the receipt."""
    claims, ident, row = _parse(token)
    row["side"] = side
    row["payload_check"] = payload_check
    row["signature_check"] = signature_check
    with engine.begin() as conn:
        return _keep(conn, token, side, node, claims, ident, row)


def _parse(token: str, claims: dict | None = None) -> tuple[dict, str, dict]:
    if claims is None:
        claims = unverified_claims(token)   # receipt.invalid (or receipt.batch_invalid) when it is not one
    ident = claims.get("jti")
    if not isinstance(ident, str) or not ident:
        raise CeadError("receipt.invalid", "The receipt has no id (jti).")
    payload = claims.get("payload") or {}
    row = {"id": ident, "side": None, "gateway": _text(claims.get("iss")), "decision": _text(claims.get("decision")),
           "approval": _text(claims.get("approval")), "holder": _text(claims.get("holder")),
           "payload_sha256": _text(payload.get("sha256")),
           "rows": payload.get("rows") if isinstance(payload.get("rows"), int) else None,
           "log_index": None, "token": token, "at": utcnow(), "payload_check": None, "signature_check": None}
    return claims, ident, row


def keep_in(conn, token: str, side: str, node=None) -> Stored:
    """:func:`keep` inside the caller's transaction (``conn``)."""
    claims, ident, row = _parse(token)
    row["side"] = side
    return _keep(conn, token, side, node, claims, ident, row)


def keep_many(conn, tokens: list[str], side: str, node=None, claims: list[dict | None] | None = None
              ) -> list[Stored]:
    """Store a batch of receipts in the caller's transaction, their log entries appended together (one head
    update, bulk inserts): what the :class:`ReceiptWriter` commits at once. Receipts repeated in the batch (a
    pull's provisional and final receipt) are stored once, as the last one."""
    parsed: dict[str, tuple[str, dict, dict]] = {}
    order = []
    for token, given in zip(tokens, claims or [None] * len(tokens)):
        read, ident, row = _parse(token, given)
        row["side"] = side
        parsed[ident] = (token, read, row)
        order.append(ident)
    ids = list(parsed)
    old = {r[0]: r[1] for r in conn.execute(sa.select(table.c.id, table.c.log_index).where(
        table.c.id.in_(ids), table.c.side == side))}
    to_log = [i for i in ids if node is not None and is_final(parsed[i][1]) and old.get(i) is None]
    if to_log:
        from . import record
        appended = record.log_of(node).append_many(
            [(record.RECEIPT, _receipt_digests(parsed[i][0], parsed[i][1]), _log_meta(parsed[i][1], parsed[i][2]))
             for i in to_log], session=conn)
        for ident, entry in zip(to_log, appended):
            parsed[ident][2]["log_index"] = entry.index
    for ident in ids:
        if ident in old and parsed[ident][2]["log_index"] is None:
            parsed[ident][2]["log_index"] = old[ident]
    new_rows = [parsed[i][2] for i in ids if i not in old]
    if new_rows:
        conn.execute(table.insert(), new_rows)
    for ident in ids:
        if ident in old:
            conn.execute(table.update().where(table.c.id == ident, table.c.side == side).values(**parsed[ident][2]))
    by_id = {i: Stored(**parsed[i][2], newly_logged=i in to_log) for i in ids}
    return [by_id[i] for i in order]


def _log_meta(claims: dict, row: dict) -> dict:
    return {"receiptId": row["id"], "decision": row["decision"], "approval": row["approval"],
            "holder": row["holder"], "gateway": row["gateway"], "rows": row["rows"],
            "dataset": _text(claims.get("dataset")), "purpose": _text(claims.get("purpose")),
            "decidedAt": _text(claims.get("decidedAt")),
            "reasons": [str(r)[:100] for r in claims.get("reasons") or []][:64]}


def _keep(conn, token, side, node, claims, ident, row) -> Stored:
    old = conn.execute(sa.select(table.c.log_index).where(table.c.id == ident, table.c.side == side)).first()
    if node is not None and is_final(claims) and (old is None or old[0] is None):
        from . import record
        entry = record.append(node, record.RECEIPT, _receipt_digests(token, claims), _log_meta(claims, row),
                              session=conn)
        row["log_index"] = entry.index
        fresh = True
    else:
        fresh = False
        if old is not None:
            row["log_index"] = old[0]
    if old is None:
        conn.execute(table.insert().values(**row))
    else:
        conn.execute(table.update().where(table.c.id == ident, table.c.side == side).values(**row))
    return Stored(**row, newly_logged=fresh)


def _receipt_digests(token: str, claims: dict) -> dict[str, str]:
    out = {"receipt": sha256_hex(token.encode())}
    payload = (claims.get("payload") or {}).get("sha256")
    if isinstance(payload, str) and len(payload) == 64:
        out["payload"] = payload
    if isinstance(claims.get("manifestSha256"), str) and len(claims["manifestSha256"]) == 64:
        out["manifest"] = claims["manifestSha256"]
    return out


def _text(value) -> str | None:
    return value[:512] if isinstance(value, str) else None


class ReceiptWriter:
    """Stores and logs receipts off the decision's path, in group commits: one transaction (one disk flush) per
    batch of whatever arrived meanwhile. ``submit`` returns a ``Future`` resolved with the ``Stored`` receipt once
    its batch has committed (that is when it is acknowledged: a crash before loses only receipts not yet
    acknowledged, whose signed copies the recipients hold). ``close()`` drains the queue."""

    def __init__(self, node, max_batch: int = 256, prove: bool = False):
        import queue
        import threading
        self.node = node
        self.max_batch = max_batch
        self.prove = prove   # also make each logged receipt's inclusion proof (one query per batch)
        self._queue: "queue.Queue" = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="cead-receipt-writer", daemon=True)
        self._thread.start()

    def submit(self, token: str, claims: dict | None = None):
        """Queue a receipt (``claims``: its claims, if the caller has them, saving a parse)."""
        from concurrent.futures import Future
        future: Future = Future()
        self._queue.put((token, claims, future))
        return future

    def __call__(self, token: str, claims: dict) -> None:   # usable as a Decider.receipt_sink
        self.submit(token, claims)

    def close(self, timeout: float = 30) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        import queue
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = [first], False
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            try:
                with self.node.engine.begin() as conn:
                    stored = keep_many(conn, [token for token, _, _ in batch], PROVIDER, self.node,
                                       [claims for _, claims, _ in batch])
            except Exception as exc:   # the whole batch failed: say so to every waiter, loudly
                log.exception("could not store %d receipts", len(batch))
                for _, _, future in batch:
                    future.set_exception(exc)
            else:
                if self.prove:
                    _prove_rows(self.node, stored)
                for (_, _, future), row in zip(batch, stored):
                    future.set_result(row)
                tell_denials(self.node, stored)
            if stop:
                return


def _prove_rows(node, stored: list[Stored]) -> None:
    from . import record
    logged = [row for row in stored if row.log_index is not None]
    if not logged:
        return
    log = record.log_of(node)
    size = log.size()
    for row, proof in zip(logged, log.inclusion_proofs([r.log_index for r in logged], size)):
        row.proof, row.proof_size = proof, size




def inclusion(node, stored: Stored) -> dict[str, Any]:
    """Where a stored receipt is in the node's log, with its inclusion proof: under the newest checkpoint the node
    has signed that covers it (the note is included), else under the log's current size (a checkpoint that covers
    it is signed at the next ``GET /log/checkpoint``). A provider receipt still waiting for the sequencer, or a
    recipient's copy (logged in the provider's log, not this one), says so."""
    import base64
    from verifier.tlog.checkpoint import Checkpoint
    from . import record
    digest = sha256_hex(stored.token.encode())
    if stored.side != PROVIDER:
        return {"status": "elsewhere", "receiptSha256": digest,
                "message": "Logged by the gateway's node: GET <its URL>/log/evidence?digest=<receiptSha256>."}
    if stored.log_index is None:
        return {"status": "pending", "receiptSha256": digest,
                "message": "Stored but not yet final (a pull whose response was not hashed), so not logged."}
    log = record.log_of(node)
    note, size = None, log.size()
    for candidate in reversed(log.checkpoints()):
        signed_size = Checkpoint.parse(candidate.split("\n\n", 1)[0] + "\n").size
        if signed_size > stored.log_index:
            note, size = candidate, signed_size
            break
    proof = log.inclusion_proof(stored.log_index, size)
    return {"status": "logged", "receiptSha256": digest, "index": stored.log_index, "size": size,
            "root": base64.b64encode(log.root(size)).decode(),
            "proof": [base64.b64encode(h).decode() for h in proof], "checkpoint": note}


def sink(node):
    """A ``Decider.receipt_sink`` that stores every receipt the node's gateway signs and logs the final ones
    (synchronously: one commit per receipt; :class:`ReceiptWriter` batches them off the decision's path)."""
    def store(token: str, claims: dict) -> None:
        try:
            stored = keep(node.engine, token, PROVIDER, node=node)
        except Exception:   # the decision stands; a lost receipt is logged loudly, never silently
            log.exception("could not store receipt %s", claims.get("jti"))
            raise
        tell_denials(node, [stored])
    return store


def tell_denials(node, stored: list[Stored]) -> None:
    """Queue a ``transfer.denied`` notification (issuer.notifications) for each denial just stored and logged (a
    final receipt: one per decision); after the commit, never on the decision's path, never failing the store."""
    from .. import notifications
    for row in stored:
        if row.decision == "deny" and row.log_index is not None:
            notifications.emit(node, "transfer.denied", {"receipt": row.id, "holder": row.holder,
                                                         "approval": row.approval, "gateway": row.gateway,
                                                         "at": row.at}, subject=row.id)


def keep_copy(engine, token: str, sent: bytes | None = None, received: bytes | None = None, *,
              resolver=None) -> Stored | None:
    """The recipient's copy (called by the wallet's HTTP client with the bytes it sent and received). A receipt
    for other bytes than those that moved is still kept (it is evidence), recorded as ``payload_check="differs"``
    (listed by ``cead receipts list``) and logged as a warning; one that names exactly those bytes, "matches".
    With ``resolver`` (the wallet's), the gateway's signature is checked against its DID document as it arrives:
    ``signature_check`` "verified", "invalid" (kept, as evidence of what the gateway, or someone, sent; logged),
    "unverified" when its signer cannot be resolved now (``cead receipts verify`` checks it later), or
    "uncheckable" when the receipt names its key otherwise than by a DID URL (a gateway without a DID names it by
    its thumbprint): there is no DID document to check it against, now or later."""
    try:
        claims = unverified_claims(token)
        direction = (claims.get("payload") or {}).get("direction")
        payload = received if direction == "pull" else sent
        checked = None
        if payload is not None and (claims.get("payload") or {}).get("sha256"):
            try:
                check_payload(claims, payload)
                checked = "matches"
            except CeadError as exc:
                checked = "differs"
                log.warning("receipt %s: %s", claims.get("jti"), exc.message)
        signature = None
        if resolver is not None and not _names_did(token):
            signature = UNCHECKABLE
            log.info("receipt %s: its signer is not named by a DID URL, so its signature cannot be checked against "
                     "a DID document", claims.get("jti"))
        elif resolver is not None:
            from verifier.receipts import verify_receipt_with
            try:
                verify_receipt_with(token, resolver)
                signature = VERIFIED
            except CeadError as exc:
                signature = INVALID if exc.code == "receipt.invalid" else UNVERIFIED
                (log.warning if signature == INVALID else log.info)(
                    "receipt %s: %s (%s)", claims.get("jti"), exc.message, exc.code)
        return keep(engine, token, RECIPIENT, payload_check=checked, signature_check=signature)
    except CeadError as exc:
        log.warning("receipt not kept: %s", exc.message)
        return None


def listing(engine, *, side: str | None = None, approval: str | None = None) -> list[Stored]:
    query = sa.select(table)
    if side:
        query = query.where(table.c.side == side)
    if approval:
        query = query.where(table.c.approval == approval)
    with engine.connect() as conn:
        return [Stored(**dict(r._mapping)) for r in conn.execute(query.order_by(table.c.at, table.c.id))]


def get(engine, ident: str) -> Stored:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table).where(or_id(ident))).all()
    if not rows:
        raise CeadError("receipt.not_found", f"No stored receipt {ident!r}; `cead receipts list` shows them.")
    return Stored(**dict(rows[0]._mapping))


def or_id(ident: str):
    return sa.or_(table.c.id == ident, table.c.id == f"urn:uuid:{ident}")


def by_approval(engine) -> dict[str, list[Stored]]:
    out: dict[str, list[Stored]] = {}
    for row in listing(engine):
        out.setdefault(row.approval or "(none)", []).append(row)
    return out


def to_json(rows: list[Stored]) -> str:
    return json.dumps([r.summary() for r in rows], indent=2)
