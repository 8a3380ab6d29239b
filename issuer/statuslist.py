"""Status-list allocation and publishing (W3C Bitstring Status List v1.0) for this node.

Allocation picks a random free index anywhere in the current list for a purpose (so a list's entries are spread over
its whole bitstring from the first one on); the database's unique constraint on (list, index) makes reuse impossible
even with many issuers at once (a collision retries inside a savepoint).

There is one current list per purpose, whatever the concurrency: lists of a purpose are numbered (``seq`` 0, 1, ...)
and (purpose, seq) is unique in the database, so when two issuers open "the next list" at once, one insert wins and
the other, refused by the constraint, re-reads and joins the winner's list (SQLite serialises writers anyway with
``BEGIN IMMEDIATE``; on PostgreSQL the next list is opened in a short transaction of its own, so no issuer waits
for another's signing, and the loser's insert fails on the winner's committed row).
A list is closed once half full (random picks stay cheap) and the next one opened.

Herd privacy: a list is served only once it holds at least ``MIN_POPULATION`` entries, or when it is its purpose's
first list (its crowd is then everything the node has issued for that purpose, which a verifier's fetch of the DID
document already tells the node). Before that, ``GET /status/<id>`` answers 503 ``status.list_not_ready`` with
Retry-After, and verifiers fail closed (docs/issuer.md, "Status lists and herd privacy"). Publishing derives the bitstring
from the entries, signs the ``BitstringStatusListCredential`` with the node's current key, and caches the signed
copy with the list's version; any status change bumps the version, and a copy signed with another key (rotated or
retired since) or naming another URL (the public URL changed) is not reused, so the next request re-signs.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from verifier.results import CeadError
from verifier.status import MIN_ENTRIES, PURPOSES, make_entry, make_list_credential, new_bitstring, set_bit

from . import db

LIST_SIZE = MIN_ENTRIES
FILL_LIMIT = LIST_SIZE // 2
MIN_POPULATION = 1000   # entries a list (other than a purpose's first) holds before it is served
NOT_READY_RETRY = 3600  # seconds: Retry-After on a list that is not yet served
MAX_TRIES = 64
LIST_CRYPTOSUITE = "eddsa-rdfc-2022"
MEDIA_TYPE = "application/vc"   # VC Data Model 2.0, a credential secured with an embedded proof


def list_url(node, list_id: int) -> str:
    return f"{node.public_url}/status/{list_id}"


def _newest(session, purpose: str) -> db.StatusList | None:
    return session.exec(select(db.StatusList).where(db.StatusList.purpose == purpose)
                        .order_by(db.StatusList.seq.desc())).first()


def _population(session, list_id: int) -> int:
    return session.exec(select(func.count()).select_from(db.StatusEntry)
                        .where(db.StatusEntry.list_id == list_id)).one()


def _current_list(session, purpose: str) -> db.StatusList:
    """The purpose's current list: the newest while it has room, else the next one (opened here, or by a
    concurrent issuer: the unique (purpose, seq) constraint lets only one insert through, and the others use it)."""
    for _ in range(MAX_TRIES):
        lst = _newest(session, purpose)
        if lst is not None and _population(session, lst.id) < min(FILL_LIMIT, lst.size // 2):
            return lst
        seq = 0 if lst is None else lst.seq + 1
        bind = session.get_bind()
        if bind.dialect.name == "postgresql":
            # opened and committed on a connection of its own, so that no other issuer waits for this one's signing
            # (an empty list is never served unless it is the purpose's first); this transaction then reads it
            try:
                with db.session(bind) as own:
                    own.add(db.StatusList(purpose=purpose, size=LIST_SIZE, seq=seq))
                    own.commit()
            except IntegrityError:   # another issuer opened it first: join theirs
                pass
            continue
        try:   # SQLite: writers already take turns (BEGIN IMMEDIATE); a second connection would wait for this one
            with session.begin_nested():
                nxt = db.StatusList(purpose=purpose, size=LIST_SIZE, seq=seq)
                session.add(nxt)
            return nxt
        except IntegrityError:   # another issuer opened it first: the savepoint is undone; re-read and join theirs
            continue
    raise CeadError("status.allocation_failed", "Could not open a status list; try again.")


def servable(session, lst: db.StatusList) -> bool:
    """Whether ``lst`` may be served: its purpose's first list, or one holding at least ``MIN_POPULATION``."""
    return lst.seq == 0 or _population(session, lst.id) >= MIN_POPULATION


def allocate(session, node, credential_id: str, purpose: str) -> dict:
    """Reserve a fresh index for ``credential_id`` in the open transaction; returns the credentialStatus entry."""
    if purpose not in PURPOSES:
        raise CeadError("status.purpose_invalid", f"Status purpose must be one of {', '.join(PURPOSES)}.")
    lst = _current_list(session, purpose)
    for _ in range(MAX_TRIES):
        idx = secrets.randbelow(lst.size)
        try:
            with session.begin_nested():
                session.add(db.StatusEntry(list_id=lst.id, idx=idx, purpose=purpose, credential_id=credential_id))
        except IntegrityError:
            continue
        return make_entry(list_url(node, lst.id), idx, purpose)
    raise CeadError("status.allocation_failed", "Could not find a free status index; try again.")


def set_status(session, credential_id: str, purpose: str, value: bool) -> bool:
    """Set the bit of ``credential_id`` for ``purpose``; returns whether anything changed."""
    entry = session.exec(select(db.StatusEntry).where(db.StatusEntry.credential_id == credential_id,
                                                      db.StatusEntry.purpose == purpose)).first()
    if entry is None:
        raise CeadError("status.no_entry", f"The credential has no {purpose} status entry.", purpose=purpose)
    if entry.value == value:
        return False
    entry.value = value
    session.add(entry)
    session.execute(update(db.StatusList).where(db.StatusList.id == entry.list_id)
                    .values(version=db.StatusList.version + 1))
    return True


@dataclass(frozen=True)
class Published:
    body: str
    etag: str
    media_type: str = MEDIA_TYPE


def publish(node, list_id: int) -> Published:
    """The signed status list credential for ``list_id`` (re-signed if its bits changed since last time)."""
    with node.session() as s:
        # an id no database integer can hold (the URL converter takes any digits) is simply not a list
        lst = s.get(db.StatusList, list_id) if 0 <= list_id < 2 ** 63 else None
        if lst is None:
            raise CeadError("status.list_not_found", f"No status list {list_id}.")
        if not servable(s, lst):
            raise CeadError("status.list_not_ready", f"Status list {list_id} is not served until it holds "
                            f"{MIN_POPULATION} credentials (herd privacy); try again later.",
                            retry_after=NOT_READY_RETRY)
        url, vm = list_url(node, list_id), node.verification_method_id
        if lst.signed is not None and lst.signed_version == lst.version and _signed_as(lst.signed, url, vm):
            return _published(lst.signed)
        version = lst.version
        bits = new_bitstring(lst.size)
        for idx in s.exec(select(db.StatusEntry.idx).where(db.StatusEntry.list_id == list_id,
                                                           db.StatusEntry.value == True)):  # noqa: E712
            set_bit(bits, idx)
        signed = json.dumps(sign_list(node, url, lst.purpose, bits), separators=(",", ":"))
        s.execute(update(db.StatusList).where(db.StatusList.id == list_id, db.StatusList.version == version)
                  .values(signed=signed, signed_version=version))
        s.commit()
    return _published(signed)


def _signed_as(body: str, url: str, vm: str) -> bool:
    """Whether a cached signed list still is what this node would serve: the list's ``id`` is its URL under the
    node's current public URL, and its proof is made with the node's current assertion key. A key rotated or
    retired since (``Node.rotate_key``/``retire_key``, here or by another process: ``cead key rotate`` beside a
    running node), or a new public URL
    (``cead issuer serve --public-url``), makes the next request re-sign."""
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    proof = doc.get("proof") if isinstance(doc, dict) else None
    return doc.get("id") == url and isinstance(proof, dict) and proof.get("verificationMethod") == vm


def sign_list(node, url: str, purpose: str, bits: bytes) -> dict:
    from .signing import add_proof
    credential = make_list_credential(url, node.did, purpose, bits, db.utcnow())
    key, vm = node.signer()
    return add_proof(credential, key, vm, cryptosuite=LIST_CRYPTOSUITE)


def _published(body: str) -> Published:
    return Published(body, '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"')


# ---- what the pages say about when a status change takes effect ------------------------------------------------

_CHANGED = {"suspend": "suspended", "reinstate": "reinstated", "revoke": "revoked"}


def gateway_refresh_words(ttl: int | float | None = None) -> str:
    """How long a gateway may decide on its cached copy of a status list, in words: ``5 minutes`` for the default
    trust policy's ``caches.status_lists.ttl`` (300 s; ``verifier.policy.Caches``), ``90 seconds``, ``1 minute``."""
    if ttl is None:
        from verifier.policy import Caches
        ttl = Caches().status_lists.ttl
    seconds = int(ttl)
    if seconds >= 60 and seconds % 60 == 0:
        minutes = seconds // 60
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def seen_by_gateways(action: str | None = None, noun: str = "credential", *, under: bool = False) -> str:
    """The pages' one sentence on when gateways see a suspension, reinstatement or revocation: the change is in
    this node's status list at once, but a gateway decides on its own copy of the list until it refreshes it, up to
    ``caches.status_lists.ttl`` later (docs/gateway.md, "How soon a status change is seen"; ``cead suspend`` says
    the same on stderr). ``noun`` names what changes ("approval"); ``under``: a delegation (a standing approval's
    template too), which gateways meet as the approvals made under it. ``action`` None: the three at once, for a
    page that offers them all."""
    within = (f"within about {gateway_refresh_words()} (when they next refresh their copy of this node's status "
              "list)")
    if action is None:
        return (f"Gateways that rely on a {noun} see a suspension, reinstatement or revocation {within}; until then "
                f"a suspended or revoked {noun} may still be accepted, and a reinstated one may still be refused.")
    if action not in _CHANGED:
        raise ValueError(f"not a status action: {action!r}")
    who = "approvals made under it" if under else f"a {_CHANGED[action]} {noun}"
    then = "refused as suspended" if action == "reinstate" else "accepted"
    return f"Gateways that rely on it see this {within}; until then {who} may still be {then}."
