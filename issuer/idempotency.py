"""Idempotent issuing: a retried issuing request gets the credential the first attempt signed.

A client that lost the reply to ``POST /credentials/issue`` (a crash between commit and reply, a cut connection, a
503 while the commit went through) cannot tell whether its credential exists. It retries with the same
``Idempotency-Key`` header (any 1-255 printable ASCII characters, e.g. a UUID, chosen per credential), or, when its
request named the credential's ``id``, with the same request:

- same key (or same ``id``), same request: the stored reply, the same signed credential, again (201, with
  ``Idempotent-Replayed: true``); nothing is signed twice;
- same key, another request: refused, ``idempotency.key_reused`` (422): a key names one request;
- same ``id``, another request, no key: ``credential.duplicate_id`` (409), as before.

"Same request" means the same JSON body (credential and options, compared after parsing, so spacing and member order
do not matter). A key belongs to the token that sent it: another token's request with that key is not a replay.
The reply is stored in the same transaction as the register row (``issuer_issue_record``), so a committed
credential always has its reply; records are kept with the register.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlmodel import select

from verifier.results import CeadError

from . import db

HEADER = "Idempotency-Key"
MAX_KEY = 255


def check_key(key: Any) -> str | None:
    """The client's key, or None when none was sent; refuses an empty, over-long or non-printable one."""
    if key is None:
        return None
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY or not all(" " <= c <= "~" for c in key):
        raise CeadError("idempotency.key_invalid", f"The {HEADER} header must be 1 to {MAX_KEY} printable ASCII "
                        "characters (for example a UUID chosen for this credential).", field=HEADER)
    return key


def key_hash(issued_by: str | None, key: str | None) -> str | None:
    if key is None:
        return None
    return hashlib.sha256(f"{issued_by or ''}\x00{key}".encode()).hexdigest()


def request_hash(credential: Any, options: Any) -> str:
    """One digest for one request, however it was spaced or ordered."""
    text = json.dumps({"credential": credential, "options": options or {}}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True, default=repr)   # (anything not JSON is refused later, by the checks)
    return hashlib.sha256(text.encode()).hexdigest()


def replay(session, *, key: str | None, credential_id: str, digest: str, issued_by: str | None) -> dict | None:
    """The stored reply for this request, or None when it was never answered; ``idempotency.key_reused`` when the
    key was used for another request."""
    hashed = key_hash(issued_by, key)
    if hashed is not None:
        row = session.exec(select(db.IssueRecord).where(db.IssueRecord.key_hash == hashed)).first()
        if row is not None:
            if row.request_hash != digest:
                raise CeadError("idempotency.key_reused", f"This {HEADER} was used for another request (a different "
                                "credential or options). Use a new key for a new credential; to get the first "
                                "credential again, resend exactly the first request.", field=HEADER)
            return json.loads(row.response)
    row = session.get(db.IssueRecord, credential_id)
    if row is not None and row.request_hash == digest and row.issued_by == issued_by \
            and (hashed is None or row.key_hash is None):
        return json.loads(row.response)
    return None


def record(session, *, key: str | None, credential_id: str, digest: str, issued_by: str | None,
           response: dict) -> None:
    """Store the reply in the open transaction (committed with the register row)."""
    session.add(db.IssueRecord(credential_id=credential_id, key_hash=key_hash(issued_by, key), request_hash=digest,
                               issued_by=issued_by, response=json.dumps(response, separators=(",", ":"))))


def after_commit(credential_id: str) -> None:
    """Called between the commit and the reply. Nothing to do; a test replaces it to kill the process there."""
