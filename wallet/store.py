"""The credential store: what an organisation holds, verified on receipt, searchable, with warnings.

Two tables in the node's database (SQLite by default, PostgreSQL by URL), created by the Alembic revisions in
``wallet/migrations/versions``: ``wallet_credential`` (one row per credential, exactly as received) and
``wallet_term`` (search terms: type, dataset, purpose, party). An import writes both in one transaction, so an
interrupted import leaves the credential either fully stored or absent.
"""
from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from sqlalchemy import Column, ForeignKey, Index, Text, UniqueConstraint
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, select

from schemas.models import credential_digest
from schemas.values import as_list, id_of, parse_datetime, strict_json
from schemas.vocab import expand
from verifier.credential import unwrap_enveloped
from verifier.jose import unverified_claims as jwt_payload  # re-exported: the wallet reads what it verified
from verifier.results import CeadError, Problem

VERSIONS_DIR = Path(__file__).parent / "migrations" / "versions"

# Status of a credential's credentialStatus entries, as last seen.
STATUS_NONE = "none"            # the credential has no credentialStatus
STATUS_ACTIVE = "active"
STATUS_REVOKED = "revoked"
STATUS_SUSPENDED = "suspended"
STATUS_UNKNOWN = "unknown"      # the status list could not be read
_STATUS_FROM_CODE = {"status.revoked": STATUS_REVOKED, "status.suspended": STATUS_SUSPENDED,
                     "status.stale": STATUS_UNKNOWN, "status.unreachable": STATUS_UNKNOWN}

# Keys of credentialSubject (at any depth) whose values are indexed as datasets / purposes.
_DATASET_KEYS = {"dataset", "datasets"}
_PURPOSE_KEYS = {"purpose", "purposes"}


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class WalletCredential(SQLModel, table=True):
    __tablename__ = "wallet_credential"

    id: str = Field(primary_key=True)                         # local identifier, short and stable
    digest: str = Field(unique=True, index=True)              # schemas.models.credential_digest, as received
    format: str                                               # "ldp" (JSON, Data Integrity) | "jwt" (VC-JOSE)
    raw: str = Field(sa_column=Column(Text, nullable=False))  # the credential exactly as received
    credential_id: str | None = None                          # the credential's own "id", if any
    types: str = Field(sa_column=Column(Text, nullable=False))  # JSON list
    issuer: str = Field(index=True)
    subject: str | None = Field(default=None, index=True)
    valid_from: datetime | None = None
    valid_until: datetime | None = Field(default=None, index=True)
    # when it is in force, as :meth:`in_force` reads it on receipt (the credential never changes once held), so
    # choosing what is usable now is narrowed in the database without reading every row's JSON (wallet_0006)
    in_force_from: datetime | None = None
    in_force_until: datetime | None = Field(default=None, index=True)
    status_at_receipt: str = STATUS_NONE
    status_now: str = STATUS_NONE
    status_checked_at: datetime | None = None
    received_at: datetime = Field(default_factory=_utcnow)
    source: str | None = None                                 # file path, URL or inbox sender

    # ---- convenience ----------------------------------------------------------------------------------
    @property
    def type_list(self) -> list[str]:
        return json.loads(self.types)

    @property
    def credential(self) -> dict | str:
        """The credential as it is presented: a JSON object, or the compact JWT string."""
        return self.raw if self.format == "jwt" else json.loads(self.raw)

    @property
    def document(self) -> dict:
        """The credential as JSON (the JWT payload for VC-JOSE)."""
        return jwt_payload(self.raw) if self.format == "jwt" else json.loads(self.raw)

    def in_force(self) -> tuple[datetime | None, datetime | None]:
        """When it is in force, ``(from, until)``: its validity as stored, narrowed by the ``notBefore`` /
        ``notAfter`` its subject (an approval's) or its scope (a delegation's) states
        (``schemas.words.in_force_window``), which a gateway checks as it checks validity."""
        from schemas.words import in_force_window
        try:
            starts, ends = in_force_window(self.document)
        except (ValueError, CeadError):
            starts, ends = None, None
        froms = [v for v in (starts, _aware(self.valid_from)) if v is not None]
        untils = [v for v in (ends, _aware(self.valid_until)) if v is not None]
        return (max(froms) if froms else None), (min(untils) if untils else None)

    def ends(self) -> tuple[datetime | None, str | None]:
        """When it ends and what ends it: ``(until, "validUntil" | "notAfter")`` from :meth:`in_force` (the end of
        its validity or the ``notAfter`` it states, whichever comes first), or ``(None, None)`` when nothing does.
        The one end rule: the status badge, the warnings and choosing what to present all read it."""
        until = self.in_force()[1]
        if until is None:
            return None, None
        return until, ("validUntil" if self.valid_until is not None and until == _aware(self.valid_until)
                       else "notAfter")

    def out_of_force(self, now: datetime | None = None) -> str | None:
        """``"ended"`` (at or past the end :meth:`ends` gives), ``"not yet in force"`` (before the start
        :meth:`in_force` gives), or None when it is in force at ``now`` (default: now). Status is not read here."""
        now = (now or _utcnow()).astimezone(timezone.utc)
        starts, until = self.in_force()
        if until is not None and until <= now:
            return "ended"
        if starts is not None and starts > now:
            return "not yet in force"
        return None

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id, "credentialId": self.credential_id, "format": self.format,
            "types": [t for t in self.type_list if t != "VerifiableCredential"],
            "issuer": self.issuer, "subject": self.subject,
            "validFrom": _iso(self.valid_from), "validUntil": _iso(self.valid_until),
            "statusAtReceipt": self.status_at_receipt, "statusNow": self.status_now,
            "receivedAt": _iso(self.received_at), "source": self.source, "digest": self.digest,
        }


class WalletTerm(SQLModel, table=True):
    __tablename__ = "wallet_term"
    __table_args__ = (UniqueConstraint("credential_id", "kind", "value"), Index("ix_wallet_term_kv", "kind", "value"))

    id: int | None = Field(default=None, primary_key=True)
    credential_id: str = Field(sa_column=Column(Text, ForeignKey("wallet_credential.id", ondelete="CASCADE"),
                                                nullable=False, index=True))
    kind: str          # "type" | "dataset" | "purpose" | "party"
    value: str


class WalletRequest(SQLModel, table=True):
    """A data-sharing request received at ``POST /requests`` (``wallet.sharing``), awaiting the IAO's decision."""
    __tablename__ = "wallet_request"

    id: str = Field(primary_key=True)                            # local identifier
    requester: str = Field(index=True)                           # the requesting organisation's DID (= VP holder)
    body: str = Field(sa_column=Column(Text, nullable=False))    # the request object, JSON
    certifications: str = Field(sa_column=Column(Text, nullable=False))  # JSON list of what was presented
    presentation_digest: str = Field(unique=True, index=True)    # SHA-256 of the presentation (a replay is refused)
    status: str = Field(default="pending", index=True)           # pending|approving|reopening|approved|refused
    reason: str | None = None                                    # why it was refused
    approval_id: str | None = None                               # the approval being issued (approving) or issued
    decided_by: str | None = None
    received_at: datetime = Field(default_factory=_utcnow)
    decided_at: datetime | None = None                           # approving: when the approval was started
    delivery: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # JSON: approval + chain
    delivered_at: datetime | None = None                         # when the requester's inbox accepted it
    standing_note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # wallet.standing's word

    @property
    def request(self) -> dict:
        return json.loads(self.body)

    @property
    def certification_list(self) -> list[dict]:
        return json.loads(self.certifications)


def _aware(value: datetime | None) -> datetime | None:
    """Datetimes read back from SQLite may lack their zone; every stored time is UTC."""
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


def _iso(value: datetime | None) -> str | None:
    return _aware(value).isoformat().replace("+00:00", "Z") if value else None


def parse_credential(data: str | bytes | dict) -> dict | str:
    """A credential from a file or HTTP body: a JSON object (Data Integrity) or a compact JWT (VC-JOSE); an
    EnvelopedVerifiableCredential is unwrapped to its JWT."""
    if isinstance(data, dict):
        return unwrap_enveloped(data)
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise CeadError("credential.malformed", "The credential is not UTF-8 text.") from None
    text = data.strip()
    if text.startswith("{"):
        try:
            doc = strict_json(text, "the credential")
        except ValueError as exc:
            raise CeadError("credential.malformed", f"The credential is not valid JSON: {exc}.") from None
        except RecursionError:
            raise CeadError("credential.malformed", "The credential is nested too deeply.") from None
        if not isinstance(doc, dict):
            raise CeadError("credential.malformed", "The credential must be a JSON object.")
        return unwrap_enveloped(doc)
    if text.count(".") == 2 and " " not in text:
        jwt_payload(text)
        return text
    raise CeadError("credential.malformed", "Expected a JSON credential or a compact JWT (application/vc+jwt).")


# ---- reading a credential's searchable facts ----------------------------------------------------------------
def _walk(value: Any, keys: set[str]) -> Iterable[str]:
    """Every IRI found under any of ``keys`` anywhere in ``value``."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k in keys:
                for item in as_list(v):
                    if (ref := id_of(item)) is not None:
                        yield expand(ref)
            yield from _walk(v, keys)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item, keys)


def _dids(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        if value.startswith("did:"):
            yield value.split("#")[0]
    elif isinstance(value, dict):
        for v in value.values():
            yield from _dids(v)
    elif isinstance(value, list):
        for v in value:
            yield from _dids(v)


def _parse_time(value: Any) -> datetime | None:
    """A credential date (XML Schema dateTime, or JWT seconds) in UTC; None when absent or unreadable."""
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, timezone.utc)
    try:
        return parse_datetime(value, assume_utc=True).astimezone(timezone.utc)
    except ValueError:
        return None


def describe(document: dict, holder: str | None = None) -> dict[str, Any]:
    """The facts the store indexes, read from a credential's JSON (the JWT payload for VC-JOSE).

    Accepts VC 2.0 and, for older peers, VC 1.1 (``expirationDate``, a ``vc`` claim in a JWT).
    """
    vc = document.get("vc") if isinstance(document.get("vc"), dict) else document
    types = [t for t in as_list(vc.get("type")) if isinstance(t, str)]
    issuer = id_of(vc.get("issuer")) or document.get("iss")
    if not types or not isinstance(issuer, str):
        raise CeadError("credential.malformed", "The credential has no type or no issuer.")
    subjects = as_list(vc.get("credentialSubject"))
    subject = next((s for s in (id_of(x) for x in subjects) if s), None) or document.get("sub")
    mentioned = set(_dids(subjects))
    parties = ({issuer} | mentioned) - {holder}
    return {
        "credential_id": vc.get("id") if isinstance(vc.get("id"), str) else document.get("jti"),
        "types": types,
        "issuer": issuer,
        "subject": subject,
        "valid_from": _parse_time(vc.get("validFrom") or vc.get("issuanceDate") or document.get("nbf")),
        "valid_until": _parse_time(vc.get("validUntil") or vc.get("expirationDate") or document.get("exp")),
        "datasets": sorted(set(_walk(subjects, _DATASET_KEYS))),
        "purposes": sorted(set(_walk(subjects, _PURPOSE_KEYS))),
        "parties": sorted(p for p in parties if p),
        "has_status": bool(vc.get("credentialStatus")),
        "names_holder": holder in mentioned,      # the holder is the subject or a named party (e.g. a recipient)
    }


def pinned_references(document: dict) -> list[dict]:
    """The ``{"id", "digest"}`` references a Cead credential pins (its JSON, the payload for VC-JOSE): an
    approval's ``delegationChain`` and ``upstream``, a delegation's ``parentDelegation``. Empty for any other
    credential, and for one its typed model refuses (nothing is followed from a credential that cannot be read)."""
    return [ref for _, ref in _pins(document)]


def _pins(document: dict) -> list[tuple[str, dict]]:
    """:func:`pinned_references`, each with its kind: ``"delegation"`` (a ``delegationChain`` entry, a
    ``parentDelegation``) or ``"upstream"`` (an upstream approval)."""
    from schemas.models import DataSharingApproval, DelegatedAuthority, model_for
    model = model_for(document)
    try:
        if model is DataSharingApproval:
            approval = DataSharingApproval.from_credential(document)
            return [("delegation", r.to_json()) for r in approval.delegation_chain] + \
                [("upstream", ref) for ref in approval.upstream]
        if model is DelegatedAuthority:
            parent = DelegatedAuthority.from_credential(document).parent
            return [("delegation", parent)] if parent else []
    except CeadError:
        pass
    return []


def walk_pinned(document: dict, find: Callable[[dict], tuple[Any, dict] | None]) -> Iterator[tuple[str, dict, Any]]:
    """What a credential (its JSON ``document``) pins by digest and, in turn, what that pins, each digest once,
    breadth first: ``(kind, reference, found)`` as :func:`_pins` gives them, ``found`` being what ``find(reference)``
    returns first, ``(found, its JSON)``; or None when it is not found, and then nothing is followed from it.
    The one walk of "what this credential rests on": presenting (``wallet.present``) and delivering an approval
    (``wallet.sharing``) both use it."""
    todo, seen = list(_pins(document)), set()
    while todo:
        kind, ref = todo.pop(0)
        if ref.get("digest") in seen:
            continue
        seen.add(ref.get("digest"))
        hit = find(ref)
        yield kind, ref, hit[0] if hit is not None else None
        if hit is not None:
            todo.extend(_pins(hit[1]))


def _status_of(problems: list[Problem]) -> str | None:
    for p in problems:
        if p.code in _STATUS_FROM_CODE:
            return _STATUS_FROM_CODE[p.code]
    return None


def _status_after_check(result, previous: str) -> str:
    """A credential's status after a re-check (``result`` of ``verify_credential``), failing closed.

    Revocation is final (Bitstring Status List: a revocation cannot be undone), so a credential seen revoked stays
    revoked. A credential whose status could not be read this time (list unreachable or invalid, or the credential
    failed some other check first, so no list was read) keeps a known suspension, and is otherwise ``unknown``:
    only a credential that verified, status included, is ``active``."""
    found = _status_of(result.problems)
    if previous == STATUS_REVOKED or found == STATUS_REVOKED:
        return STATUS_REVOKED
    if found == STATUS_SUSPENDED:
        return STATUS_SUSPENDED
    if result.verified:
        return STATUS_ACTIVE
    return STATUS_SUSPENDED if previous == STATUS_SUSPENDED else STATUS_UNKNOWN


@dataclass
class ImportResult:
    """Outcome of receiving one credential: stored (or already held), or refused with the reasons."""
    record: WalletCredential | None = None
    problems: list[Problem] = field(default_factory=list)
    duplicate: bool = False

    @property
    def ok(self) -> bool:
        return self.record is not None and not self.problems


def make_verifier(fetcher=None):
    """A verifier that resolves DIDs and reads status lists with ``fetcher`` (default: public HTTPS only)."""
    from verifier.compose import build_verifier
    from verifier.http import Fetcher
    from verifier.policy import TrustPolicy
    # the wallet's own cache settings: lists re-read after a minute, never relied on past ten
    policy = TrustPolicy.model_validate({"caches": {"status_lists": {"size": 256, "ttl": 60}},
                                         "max_status_staleness": 600})
    return build_verifier(policy, fetcher=fetcher or Fetcher(), caching=False)


class Wallet:
    """An organisation's credential store and presenting identity.

    ``engine``: the node's SQLAlchemy engine (tables created by :func:`upgrade`); ``holder``: the organisation's
    DID; ``key``/``kid``: its signing key and a verification method listed under ``authentication`` (needed only
    to present); ``verifier``: a ``verifier.credential.Verifier`` used on every receipt and status re-check.
    """

    def __init__(self, engine, holder: str, key=None, kid: str | None = None, verifier=None,
                 expiry_warning_days: int = 30, vocabulary=None):
        self.engine = engine
        self.holder = holder
        self._key = key
        self._node = None
        self.kid = kid
        self._verifier = verifier
        self.expiry_warning_days = expiry_warning_days
        self.vocabulary = vocabulary   # a schemas.vocab.Vocabulary for selection; None: registry()

    @classmethod
    def from_node(cls, node, verifier=None, migrate: bool = True) -> "Wallet":
        """The wallet of an issuer node (``issuer.node.Node``): same DID, keys, database and vocabulary; by default
        it verifies with the node's network settings (``node.fetcher()``). The wallet's tables are brought up to
        date first (``migrate=False`` skips that)."""
        if migrate:
            upgrade(node.engine)
        days = int((node.config.get("wallet") or {}).get("expiry_warning_days", 30))
        wallet = cls(node.engine, node.did, kid=node.verification_method_id,
                     verifier=verifier or make_verifier(node.fetcher()), expiry_warning_days=days,
                     vocabulary=node.vocabulary)
        wallet._node = node  # the key is decrypted only when presenting
        return wallet

    @property
    def key(self):
        """The presenting key: a node's wallet asks the node each time (its current key, decrypted on first use),
        so a key rotated while the node runs (`cead key rotate` beside `cead issuer serve`) is used at once."""
        if self._node is not None:
            return self._node.key
        return self._key

    @property
    def kid(self) -> str | None:
        return self._node.verification_method_id if self._node is not None else self._kid

    @kid.setter
    def kid(self, value: str | None) -> None:
        self._kid = value

    @property
    def verifier(self):
        if self._verifier is None:
            self._verifier = make_verifier()
        return self._verifier

    # ---- receiving --------------------------------------------------------------------------------------
    def import_credential(self, data: str | bytes | dict, source: str | None = None) -> ImportResult:
        """Verify a credential and store it; refused (with the verifier's problems) if it does not verify.

        The row and its search terms are written in one transaction.
        """
        return self.import_credentials([data], source=source)[0]

    def import_credentials(self, items: list, source: str | None = None) -> list[ImportResult]:
        """Verify several credentials and store them all in one transaction, or none: when any is refused, nothing
        is stored (its result carries the problems; the others' results are empty, neither stored nor refused).
        One already held, or given twice, is a duplicate."""
        results: list[ImportResult | None] = []
        pending: list[tuple[int, dict]] = []
        for index, data in enumerate(items):
            prepared = self._prepare(data)
            if isinstance(prepared, ImportResult):
                results.append(prepared)
            else:
                results.append(None)
                pending.append((index, prepared))
        if any(r is not None and r.problems for r in results):
            return [r if r is not None and r.problems else ImportResult() for r in results]
        while pending:
            first: dict[str, int] = {}
            for index, prepared in pending:
                first.setdefault(prepared["digest"], index)
            try:
                stored = self._store([prepared for index, prepared in pending if first[prepared["digest"]] == index],
                                     source)
            except IntegrityError:
                # some were imported at the same moment (two deliveries, or a delivery and a command): those are
                # duplicates now; store the rest. Nothing new held by then: a real constraint error
                held = {index: self._by_digest(prepared["digest"]) for index, prepared in pending}
                if not any(held.values()):
                    raise
                for index, record in held.items():
                    if record is not None:
                        results[index] = ImportResult(record=record, duplicate=True)
                pending = [(i, p) for i, p in pending if held[i] is None]
                continue
            for index, prepared in pending:
                own = first[prepared["digest"]] == index
                results[index] = ImportResult(record=stored[prepared["digest"]], duplicate=not own)
            pending = []
        return results   # type: ignore[return-value]

    def _prepare(self, data: str | bytes | dict) -> "ImportResult | dict":
        """A credential verified and read, ready to store; or its ImportResult (refused, or already held)."""
        try:
            credential = parse_credential(data)
            digest = credential_digest(credential)
        except CeadError as exc:
            return ImportResult(problems=[exc.problem])
        existing = self._by_digest(digest)
        if existing is not None:
            return ImportResult(record=existing, duplicate=True)
        result = self.verifier.verify_credential(credential)
        if not result.verified:
            problems = result.problems or [Problem("credential.unverified", "The credential did not verify.")]
            return ImportResult(problems=list(problems))
        try:
            facts = describe(result.document or (jwt_payload(credential) if isinstance(credential, str)
                                                 else credential), self.holder)
        except CeadError as exc:
            return ImportResult(problems=[exc.problem])
        return {"credential": credential, "digest": digest, "facts": facts}

    def _store(self, batch: list[dict], source: str | None) -> dict[str, WalletCredential]:
        """Write the rows and their search terms, all in one transaction; returns the rows by digest."""
        rows: dict[str, WalletCredential] = {}
        with Session(self.engine) as session:
            for prepared in batch:
                credential, facts = prepared["credential"], prepared["facts"]
                status = STATUS_ACTIVE if facts["has_status"] else STATUS_NONE
                record = WalletCredential(
                    id=uuid.uuid4().hex[:12], digest=prepared["digest"],
                    format="jwt" if isinstance(credential, str) else "ldp",
                    raw=credential if isinstance(credential, str) else json.dumps(credential, ensure_ascii=False),
                    credential_id=facts["credential_id"], types=json.dumps(facts["types"]), issuer=facts["issuer"],
                    subject=facts["subject"], valid_from=facts["valid_from"], valid_until=facts["valid_until"],
                    status_at_receipt=status, status_now=status, status_checked_at=_utcnow(), source=source)
                record.in_force_from, record.in_force_until = (
                    v and v.astimezone(timezone.utc) for v in record.in_force())   # UTC, as every stored time
                terms = [("type", t) for t in facts["types"]] + [("dataset", d) for d in facts["datasets"]] + \
                        [("purpose", p) for p in facts["purposes"]] + [("party", p) for p in facts["parties"]]
                session.add(record)
                session.flush()
                session.add_all(WalletTerm(credential_id=record.id, kind=k, value=v) for k, v in dict.fromkeys(terms))
                rows[prepared["digest"]] = record
            session.commit()
            for record in rows.values():
                session.refresh(record)
                session.expunge(record)
        return rows

    def holds_digest(self, digest: str) -> bool:
        """Whether the wallet holds the credential with this digest (``schemas.models.credential_digest``)."""
        return self._by_digest(digest) is not None

    def _by_digest(self, digest: str) -> WalletCredential | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.exec(select(WalletCredential).where(WalletCredential.digest == digest)).first()

    # ---- holding ----------------------------------------------------------------------------------------
    def get(self, ident: str) -> WalletCredential | None:
        """By local id (or a unique prefix of it), or by the credential's own ``id``."""
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.get(WalletCredential, ident) or session.exec(
                select(WalletCredential).where(WalletCredential.credential_id == ident)).first()
            if row is None and len(ident) >= 4:
                rows = session.exec(select(WalletCredential).where(
                    WalletCredential.id.startswith(ident, autoescape=True))).all()   # '%' and '_' are literal
                row = rows[0] if len(rows) == 1 else None
            return row

    def search(self, *, type: str | None = None, dataset: str | None = None, purpose: str | None = None,
               counterparty: str | None = None, expiring_within: int | None = None,
               include_expired: bool = True, usable: bool = False, now: datetime | None = None,
               datasets: Iterable[str] | None = None, subject: str | None = None,
               digests: Iterable[str] | None = None, status: str | None = None) -> list[WalletCredential]:
        """Credentials matching every given criterion, newest first.

        ``datasets``: only those indexed under any of these datasets; ``subject``: only those whose (first)
        subject is this; ``digests``: only those with one of these digests (``schemas.models.credential_digest``);
        ``status``: only those last seen with this status (``STATUS_SUSPENDED``, ...).

        ``expiring_within``: only those that end within that many days; ``include_expired=False``: only those
        not ended; ``usable``: only those in force now (not ended, not before their start, not known to be revoked
        or suspended). A credential ends at the end of its validity or at the ``notAfter`` it states (an
        approval's period, a delegation's scope), whichever comes first (:meth:`WalletCredential.ends`), as its
        status badge and the warnings say. That rule is read once, on receipt, into ``in_force_from`` /
        ``in_force_until`` (:meth:`WalletCredential.in_force`), so the database narrows by it (and by validity as
        stored) without each row's JSON being read.
        """
        now = (now or _utcnow()).astimezone(timezone.utc)
        query = select(WalletCredential)
        for kind, value in (("type", type), ("dataset", dataset), ("purpose", purpose), ("party", counterparty)):
            if value is not None:
                value = expand(value) if kind in ("dataset", "purpose") else value
                query = query.where(WalletCredential.id.in_(
                    select(WalletTerm.credential_id).where(WalletTerm.kind == kind, WalletTerm.value == value)))
        if datasets is not None:
            query = query.where(WalletCredential.id.in_(select(WalletTerm.credential_id).where(
                WalletTerm.kind == "dataset", WalletTerm.value.in_([expand(d) for d in datasets]))))
        if subject is not None:
            query = query.where(WalletCredential.subject == subject)
        if digests is not None:
            query = query.where(WalletCredential.digest.in_(list(digests)))
        if status is not None:
            query = query.where(WalletCredential.status_now == status)
        horizon: datetime | None = None
        if expiring_within is not None:
            try:
                horizon = now + timedelta(days=expiring_within)
            except OverflowError:
                horizon = None      # further off than any date: every credential that ends at all ends within it
            # ends within it by its validity, or is of a kind that may state an earlier end of its own
            states_an_end = WalletCredential.id.in_(select(WalletTerm.credential_id).where(
                WalletTerm.kind == "type", WalletTerm.value.in_(STATES_AN_END)))
            by_validity = (WalletCredential.valid_until.is_not(None) if horizon is None
                           else WalletCredential.valid_until <= horizon)
            query = query.where(by_validity | states_an_end)
        if not include_expired or usable:
            query = query.where((WalletCredential.valid_until.is_(None)) | (WalletCredential.valid_until > now),
                                WalletCredential.in_force_until.is_(None) | (WalletCredential.in_force_until > now))
        if usable:
            query = query.where(WalletCredential.status_now.in_([STATUS_NONE, STATUS_ACTIVE, STATUS_UNKNOWN]),
                                (WalletCredential.valid_from.is_(None)) | (WalletCredential.valid_from <= now),
                                WalletCredential.in_force_from.is_(None) | (WalletCredential.in_force_from <= now))
        query = query.order_by(WalletCredential.received_at.desc(), WalletCredential.id)
        with Session(self.engine, expire_on_commit=False) as session:
            rows = list(session.exec(query).all())
        if expiring_within is not None:
            ends = {r.id: r.ends()[0] for r in rows}
            rows = [r for r in rows if ends[r.id] is not None and (horizon is None or ends[r.id] <= horizon)]
        return rows

    def terms(self, credential_id: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        with Session(self.engine) as session:
            for term in session.exec(select(WalletTerm).where(WalletTerm.credential_id == credential_id)):
                out.setdefault(term.kind, []).append(term.value)
        return out

    def delete(self, ident: str) -> bool:
        record = self.get(ident)
        if record is None:
            return False
        with Session(self.engine) as session:
            for term in session.exec(select(WalletTerm).where(WalletTerm.credential_id == record.id)):
                session.delete(term)
            session.delete(session.get(WalletCredential, record.id))
            session.commit()
        return True

    # ---- warnings ---------------------------------------------------------------------------------------
    def fresh_status_verifier(self):
        """A verifier that reads status lists afresh: the wallet's, with status lists of its own (empty at first,
        so each list is fetched when first needed and then reused for as long as this verifier is). The wallet
        verifier's own cached lists are left as they are. One per re-check of some credentials
        (:meth:`check_status` with ``ids``, :meth:`recheck_suspended`), or one for a whole selection, so no list is
        fetched twice in it."""
        from verifier.status import StatusLists
        lists = getattr(self.verifier, "status", None)
        if not isinstance(lists, StatusLists):
            return self.verifier          # no lists, or not ones this wallet knows how to read afresh
        fresh = copy.copy(self.verifier)
        fresh.status = StatusLists(lists.fetcher, verifier=lists.verifier, ttl=lists.ttl,
                                   max_staleness=lists.max_staleness, cache_size=lists.cache_size)
        return fresh

    def check_status(self, now: datetime | None = None, *, ids: Iterable[str] | None = None,
                     verifier=None) -> list[Problem]:
        """Re-read the status of every credential that has one (or only of the local ``ids`` given); returns
        warnings for changes since receipt. The lists are read afresh, each once: for every credential, through
        the wallet's verifier, its cached lists dropped first (a full re-check refreshes them for the whole node:
        the verification page, imports); for some (``ids``), through ``verifier`` (one from
        :meth:`fresh_status_verifier`, by default a new one), leaving the wallet verifier's cache alone."""
        if verifier is None and ids is None:
            lists = getattr(self.verifier, "status", None)
            if lists is not None and hasattr(lists, "clear"):
                lists.clear()
            verifier = self.verifier
        verifier = verifier or self.fresh_status_verifier()
        query = select(WalletCredential).where(WalletCredential.status_at_receipt != STATUS_NONE)
        if ids is not None:
            query = query.where(WalletCredential.id.in_(list(ids)))
        with Session(self.engine, expire_on_commit=False) as session:
            rows = list(session.exec(query).all())
        # The status lists are fetched with no database transaction open: on SQLite a transaction holds the
        # node's write lock, which would stop the issuer (and the inbox) for as long as the fetches take.
        checked = {row.id: (_status_after_check(verifier.verify_credential(row.credential, now=now),
                                                row.status_now), _utcnow()) for row in rows}
        with Session(self.engine) as session:
            for ident, (status, at) in checked.items():
                row = session.get(WalletCredential, ident)
                if row is None:
                    continue   # removed meanwhile
                row.status_now = STATUS_REVOKED if row.status_now == STATUS_REVOKED else status   # final
                row.status_checked_at = at
                session.add(row)
            session.commit()
        return [w for w in self.warnings(now=now) if w.code == "wallet.status_changed"]

    def recheck_suspended(self, records: Iterable[WalletCredential], now: datetime | None = None, *,
                          verifier=None) -> list[str]:
        """Re-read, now, the status of those of ``records`` last seen suspended (a suspension can be lifted, a
        revocation cannot); returns the local ids of those active again. A status that cannot be read keeps the
        suspension (as :meth:`check_status`, with ``verifier`` as there)."""
        suspended = [r.id for r in records if r.status_now == STATUS_SUSPENDED]
        if not suspended:
            return []
        self.check_status(now=now, ids=suspended, verifier=verifier)
        with Session(self.engine) as session:
            return [ident for ident in suspended
                    if (row := session.get(WalletCredential, ident)) is not None and row.status_now == STATUS_ACTIVE]

    def warnings(self, days: int | None = None, now: datetime | None = None) -> list[Problem]:
        """Credentials expired or expiring within ``days`` (default: the wallet's setting), and credentials whose
        status changed since receipt (as of the last :meth:`check_status`). A credential ends at the end of its
        validity or at the ``notAfter`` it states (an approval's, a delegation's scope), whichever comes first
        (:meth:`WalletCredential.ends`, as :meth:`search` reads it), as its status badge says: ``detail`` gives
        ``ends`` and ``endsBy`` (``validUntil`` or ``notAfter``)."""
        days = self.expiry_warning_days if days is None else days
        now = (now or _utcnow()).astimezone(timezone.utc)
        out: list[Problem] = []
        for row in self.search(expiring_within=days, now=now):
            ends, by = row.ends()
            label, said = _label(row), _iso(ends) + (" (the notAfter it states)" if by == "notAfter" else "")
            detail = {"id": row.id, "ends": _iso(ends), "endsBy": by, "validUntil": _iso(row.valid_until),
                      "days": days}
            if ends <= now:
                out.append(Problem("wallet.expired", f"{label} expired on {said}.", detail))
            else:
                out.append(Problem("wallet.expiring", f"{label} expires on {said} (within {days} days).", detail))
        with Session(self.engine) as session:
            changed = session.exec(select(WalletCredential).where(
                WalletCredential.status_now != WalletCredential.status_at_receipt,
                WalletCredential.status_now.in_([STATUS_REVOKED, STATUS_SUSPENDED]))).all()
            for row in changed:
                out.append(Problem("wallet.status_changed",
                                   f"{_label(row)} is now {row.status_now} (it was {row.status_at_receipt} on "
                                   f"receipt).", {"id": row.id, "status": row.status_now}))
        return out


# the kinds of credential that may state a notAfter of their own (an approval's period, a delegation's scope)
STATES_AN_END = ("DataSharingApprovalCredential", "DelegatedAuthorityCredential")


def _label(row: WalletCredential) -> str:
    from schemas.words import kind_name
    kinds = [t for t in row.type_list if t != "VerifiableCredential"] or ["Credential"]
    return f"{kind_name(kinds[0])} {row.id} from {row.issuer}"


# ---- schema migrations --------------------------------------------------------------------------------------
def upgrade(engine) -> None:
    """Bring the node database (issuer and wallet tables) to the newest revision; never drops stored rows."""
    from issuer.db import migrate
    migrate(engine, extra_version_locations=[VERSIONS_DIR])
