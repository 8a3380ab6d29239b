"""What a node writes into its own log, in one place: called from issuing, status changes, key changes and receipt
storage (and by the privacy-budget code through :func:`append`). Entries carry digests and public identifiers only.
"""
from __future__ import annotations

import hashlib
from typing import Any

from .log import Appended, TransparencyLog

ISSUED = "credential.issued"
STATUS = "credential.status"
KEY_ADDED = "key.added"
KEY_RETIRED = "key.retired"
RECEIPT = "receipt"
BUDGET = "budget.released"


def log_of(node) -> TransparencyLog:
    log = getattr(node, "_tlog", None)
    if log is None:
        log = node._tlog = TransparencyLog.for_node(node)
    return log


def append(node, kind: str, payload_digests: dict[str, str], public_metadata: dict[str, Any] | None = None, *,
           session=None) -> Appended:
    """The one hook for other parts (e.g. a privacy-budget release): ``append(node, "budget.released",
    {"query": sha256hex}, {"dataset": ..., "epsilon": 0.5})``. Digests are SHA-256 hex; metadata public only."""
    return log_of(node).append(kind, payload_digests, public_metadata or {}, session=session)


def issued(node, session, *, credential_id: str, types: list[str], digest: str, verification_method: str,
           valid_from: str | None = None, valid_until: str | None = None) -> Appended:
    """``digest`` is ``schemas.models.credential_digest`` (``sha256:<hex>`` or hex)."""
    return append(node, ISSUED, {"credential": _hex(digest)},
                  {"credentialId": credential_id, "types": [t for t in types if t != "VerifiableCredential"],
                   "issuer": node.did, "verificationMethod": verification_method,
                   "validFrom": valid_from, "validUntil": valid_until}, session=session)


def status_changed(node, session, *, credential_id: str, action: str, status: str) -> Appended:
    return append(node, STATUS, {"credentialId": sha256_hex(credential_id.encode())},
                  {"credentialId": credential_id, "action": action, "status": status}, session=session)


def key_changed(node, kind: str, verification_method: str, public_multikey: str, *, handover: bool = False
                ) -> Appended:
    """Log a key change. ``handover`` (a rotation of the Ed25519 key, which signs the log's checkpoints): the
    checkpoint of the tree that ends with this entry is signed in the same transaction, by the previous key and the
    new one (``TransparencyLog.checkpoint``), so no other entry can come between the two: the previous key's
    signature over a tree whose newest entry names the new key is what a witness follows the rotation by."""
    digests = {"key": key_digest(public_multikey)}
    meta = {"verificationMethod": verification_method, "publicKeyMultibase": public_multikey}
    if not handover:
        return append(node, kind, digests, meta)
    log = log_of(node)
    with node.engine.begin() as conn:
        appended = log.append(kind, digests, meta, session=conn)
        log.checkpoint(conn=conn)
    return appended


def key_digest(public_multikey: str) -> str:
    return sha256_hex(public_multikey.encode())


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hex(digest: str) -> str:
    """A ``schemas.models.credential_digest`` (``sha256-<base64url>``) as SHA-256 hex."""
    from verifier.tlog.evidence import digest_hex
    return digest_hex(digest)
