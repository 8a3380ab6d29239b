"""The context object the decision stages read and write, and small helpers they share.

``DecisionContext`` is one decision: the parts it uses (policy, vocabulary, verifier, replay guard), the request
and the time, and what the presentation stage found (holder, credentials, the presentation id). ``Attempt`` is
the check of one approval the presentation carries: the stages add the credentials they rely on to
``attempt.relied_on``, the delegation stage records the chain it found in ``attempt.links``; everything else a
stage has to say it returns as problems.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from schemas import models
from schemas.values import as_list

from ..jose import to_document, unverified_claims
from ..results import CeadError, Problem, VerificationResult

APPROVAL = models.DataSharingApproval.credential_type
DELEGATION = models.DelegatedAuthority.credential_type
CERTIFICATION = models.OrganisationCertification.credential_type


def utc(moment: datetime | None) -> datetime | None:
    """``moment`` with a time zone (UTC when it has none)."""
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def jwt_claims(token: str) -> dict:
    """The payload of a compact JWS, unverified (``{}`` if unreadable): only read after the Verifier checked it."""
    try:
        return unverified_claims(token)
    except CeadError:
        return {}


class _memo:
    """A property computed once per instance and kept in its ``__dict__`` (``functools.cached_property`` without
    the per-class lock Python 3.11's takes on every first read: the stages read these of every credential, every
    decision)."""

    def __init__(self, func):
        self.func, self.name, self.__doc__ = func, func.__name__, func.__doc__

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.func(obj)
        return value


@dataclass
class Cred:
    """One credential of the presentation, verified, with its Cead model when it has one."""
    index: int
    raw: dict | str
    digest: str
    result: VerificationResult
    model: Any = None
    model_problem: Problem | None = None

    @property
    def document(self) -> dict:
        """The verified document; for a JWT that failed verification, its unverified claims (only ever used to
        name what failed: every check requires ``result.verified``)."""
        if isinstance(self.result.document, dict):
            return self.result.document
        if isinstance(self.raw, str):
            try:
                return to_document(jwt_claims(self.raw), "vc")
            except CeadError:
                return {}
        return self.raw if isinstance(self.raw, dict) else {}

    @_memo
    def id(self) -> str | None:
        ident = self.document.get("id")
        return ident if isinstance(ident, str) else None

    @property
    def issuer(self) -> str | None:
        if self.result.issuer:
            return self.result.issuer
        issuer = self.document.get("issuer")
        issuer = issuer.get("id") if isinstance(issuer, dict) else issuer
        return issuer if isinstance(issuer, str) else None

    @property
    def ok(self) -> bool:
        return self.result.verified and self.model is not None

    @_memo
    def types(self) -> tuple:
        """The document's types (read once: the stages ask each credential for them many times a decision)."""
        return tuple(as_list(self.document.get("type")))

    def is_(self, type_name: str) -> bool:
        return type_name in self.types

    def matches(self, ref: dict) -> bool:
        return self.id == ref.get("id") and self.digest == ref.get("digest")

    @property
    def label(self) -> str:
        return f"{self.id or f'credential {self.index}'} {self.digest}"


_Cred = Cred   # the name before the split


def state_code(cred: Cred, role: str) -> str:
    """The role-level consequence of a credential that failed: e.g. delegation.revoked, certification.expired."""
    codes = {p.code for p in cred.result.problems}
    for code, word in (("status.revoked", "revoked"), ("status.suspended", "suspended"),
                       ("credential.expired", "expired"), ("status.stale", "status_stale"),
                       ("did.unreachable", "issuer_unreachable")):
        if code in codes:
            return f"{role}.{word}"
    return f"{role}.invalid"


@dataclass
class DecisionContext:
    """One decision. The parts (``policy``, ``vocabulary``, ``verifier``, ``replay``) are the decider's; the
    presentation stage fills ``holder``, ``creds`` and ``replay_id``."""
    request: Any                      # TransferRequest
    now: datetime
    policy: Any                       # TrustPolicy
    vocabulary: Any
    verifier: Any                     # CachingVerifier
    replay: Any                       # ReplayGuard
    holder: str | None = None
    creds: list[Cred] = field(default_factory=list)
    replay_id: str | None = None      # the presentation's id, recorded by the replay guard if the transfer is allowed
    replay_expires: datetime | None = None   # when the presentation expires (the replay guard keeps its id so long)
    dataset: str | None = None        # the dataset the transfer is about (manifest, or the gateway's)
    ledger: Any = None                # the data owner's privacy-budget ledger (verifier.ledger), if the gateway has one

    def covers(self, granted: list[str], item: str) -> bool:
        """Whether ``item`` is one of ``granted`` or within one of them (vocabulary hierarchy)."""
        return item in granted or self.vocabulary.within_any(item, granted)

    def credentials_of(self, type_name: str) -> list[Cred]:
        """The presentation's credentials of a Cead type that could be read as that type."""
        return [c for c in self.creds if c.model is not None and type_name in c.types]


@dataclass
class Attempt:
    """The check of one approval: what the approval stages share."""
    ctx: DecisionContext
    approval: Cred
    controller: str | None = None     # the dataset's controller, from the trust policy
    links: list[Cred] = field(default_factory=list)      # the delegation chain the approval rests on
    relied_on: list[str] = field(default_factory=list)   # credential labels relied on
    release: Any = None               # the protocol stage's ReleaseContext, reused when the release is charged

    @property
    def model(self) -> models.DataSharingApproval:
        return self.approval.model

    @property
    def holder(self) -> str | None:
        return self.ctx.holder

    @property
    def now(self) -> datetime:
        return self.ctx.now

    def rely_on(self, cred: Cred) -> None:
        self.relied_on.append(cred.label)
