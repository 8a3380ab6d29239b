"""The one entry point that decides a data transfer: ``Decider.decide(presentation, request) -> Decision``.

Steps (issue 5), each failing closed; every reason found is reported with a stable code:

1. the presentation: its proof by the holder, bound to this request (nonce/challenge = the request binding),
   for this audience, short-lived, and not seen before by this instance;
2. each credential in it: proof against DID-resolved keys, validity period, schema, and status (checked on every
   decision, even when the proof result comes from the cache);
3. the approval: issued by the dataset's controller, or by the end of a delegation chain that starts at the
   controller, every link valid, unrevoked, allowed to act and within its parent's scope; and co-signed (a proof
   of its Data Integrity proof set) by every DID in its ``coSigners`` and in its chain's ``requiredCoSigners``;
4. the recipient: the holder is an approved recipient and holds every required certification, issued by a body
   the trust policy trusts for that scheme;
5. the transfer lies within the approval (dataset, columns, purpose, cadence window, volume) and passes the
   privacy protocol's transfer-time checks;
6. for a derived dataset, the upstream approvals (held to steps 2-3) and the provenance rules, among them that the
   discloser received every upstream approval's data (as a recipient or processor).

Caches (all bounded; sizes and TTLs from the trust policy): DID documents (``Resolver``), status lists
(``StatusLists``), verified-proof results keyed by the exact credential digest (``CachingVerifier``), and seen
presentation ids (replay). No database and no private key is needed; a receipt-signing key is optional.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from time import perf_counter
from typing import Any

from cachetools import TTLCache

from schemas import models
from schemas.vocab import RepeatingInterval, duration_seconds, expand, registry

from schemas.values import as_list

from . import rdfc
from .binding import decode_presentation, origin, request_binding
from .credential import MAX_CREDENTIALS, Verifier, unwrap_enveloped, validity_end
from .did import Resolver
from .http import Fetcher
from .jose import to_document, unverified_claims
from .keys import b64url_decode
from .metrics import Metrics
from .policy import TrustPolicy
from .protocols import check_transfer
from . import receipts
from .receipts import ReceiptSigner, load_signer
from .results import CeadError, Problem, VerificationResult
from .scope import approval_within, delegation_within, derived_within, transfer_within
from .status import StatusLists

log = logging.getLogger(__name__)

APPROVAL = models.DataSharingApproval.credential_type
DELEGATION = models.DelegatedAuthority.credential_type
CERTIFICATION = models.OrganisationCertification.credential_type

# Verifier codes for the presentation, as the decision names them.
_PRESENTATION_CODES = {
    "presentation.nonce_mismatch": "presentation.binding_mismatch",
    "proof.challenge_mismatch": "presentation.binding_mismatch",
    "proof.domain_mismatch": "presentation.audience_mismatch",
    "proof.expired": "presentation.expired",
}


def _utc(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime.now(timezone.utc)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _jwt_claims(token: str) -> dict:
    """The payload of a compact JWS, unverified (``{}`` if unreadable): only read after the Verifier checked it."""
    try:
        return unverified_claims(token)
    except CeadError:
        return {}


def is_presentation(document: dict | str) -> bool:
    """True for a VP (JSON with type VerifiablePresentation, or a JWT whose header says vp+jwt)."""
    if isinstance(document, dict):
        return "VerifiablePresentation" in as_list(document.get("type"))
    try:
        header = json.loads(b64url_decode(document.split(".")[0]))
    except (ValueError, IndexError, CeadError, AttributeError):
        return False
    return isinstance(header, dict) and header.get("typ") == "vp+jwt"


# ---- the proof cache -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _CachedProof:
    result: VerificationResult
    checked_at: datetime      # the proof was good and the credential within its validity period at this time
    valid_until: datetime     # last moment (skew included) the cached result may be reused


class CachingVerifier(Verifier):
    """A ``Verifier`` that caches good proof results by the exact credential digest and checks status every time.

    A cached result is reused only between the time it was checked and the end of the credential's validity
    period (and at most ``ttl`` seconds); status (revoked/suspended/stale) is never cached here, only the status
    list itself is (by ``StatusLists``, for its own TTL and maximum staleness).
    """

    def __init__(self, resolver=None, status: StatusLists | None = None, skew: timedelta = timedelta(minutes=5),
                 cache_size: int = 4096, ttl: float = 3600, metrics: Metrics | None = None):
        super().__init__(resolver=resolver, status=None, skew=skew)
        self.status_lists = status
        self.ttl = timedelta(seconds=ttl)
        self.metrics = metrics
        self._cache: TTLCache = TTLCache(maxsize=max(cache_size, 1), ttl=max(ttl, 0.001))
        self._lock = threading.Lock()

    def clear(self) -> None:
        """Forget every cached proof result."""
        with self._lock:
            self._cache.clear()

    def verify_credential(self, credential: dict | str, now: datetime | None = None) -> VerificationResult:
        now = self._now(now)
        try:
            raw = unwrap_enveloped(credential)
            key = models.credential_digest(raw)
        except CeadError:
            return super().verify_credential(credential, now)  # malformed: report through the normal path
        with self._lock:
            cached: _CachedProof | None = self._cache.get(key)
        if cached is not None and cached.checked_at <= now <= cached.valid_until:
            if self.metrics:
                self.metrics.record_cache("proofs", True)
            result = VerificationResult(verified=True, document=cached.result.document, format=cached.result.format,
                                        issuer=cached.result.issuer,
                                        verification_method=cached.result.verification_method,
                                        co_signers=list(cached.result.co_signers),
                                        warnings=list(cached.result.warnings))
        else:
            if self.metrics:
                self.metrics.record_cache("proofs", False)
            result = super().verify_credential(raw, now)
            if result.verified and isinstance(result.document, dict):
                try:
                    end = validity_end(raw, result.document)
                    end = end + self.skew if end else None
                except (ValueError, OverflowError):
                    end = now  # unreadable dates already failed verification; never reuse
                limit = now + self.ttl
                entry = _CachedProof(result, now, min(end, limit) if end else limit)
                with self._lock:
                    self._cache[key] = entry
        if result.verified and self.status_lists is not None:
            try:
                problems = self.status_lists.check(result.document)
            except Exception:  # fail closed, and never let a bug in the status check reach a caller as a 500
                log.exception("internal error while checking a credential's status")
                problems = [Problem("verifier.internal_error",
                                    "The credential's status could not be checked because of an internal error.")]
            for problem in problems:
                result.add(problem)
        return result


class _ReplayGuard:
    """Presentation ids (JWT jti or DI proofValue) seen by this instance, kept for their lifetime."""

    def __init__(self, size: int, ttl: float):
        self._seen: TTLCache = TTLCache(maxsize=max(size, 1), ttl=max(ttl, 1))
        self._lock = threading.Lock()

    def seen(self, ident: str) -> Problem | None:
        """A problem if ``ident`` was recorded before (nothing is recorded)."""
        with self._lock:
            if ident in self._seen:
                return Problem("presentation.replayed",
                               "This presentation has been used before; each request needs a fresh one.")
            return None

    def check(self, ident: str) -> Problem | None:
        """Record ``ident``; a problem if it was seen before, or if the guard is full (rather than forgetting an id
        that could still be replayed). Only allowed transfers are recorded, so a stranger's presentations, which
        are denied, cannot fill the guard and lock approved recipients out."""
        with self._lock:
            if ident in self._seen:
                return Problem("presentation.replayed",
                               "This presentation has been used before; each request needs a fresh one.")
            self._seen.expire()
            if len(self._seen) >= self._seen.maxsize:
                return Problem("presentation.replay_guard_full", "Too many presentations are in flight to guard "
                               "against replay; try again shortly.")
            self._seen[ident] = True
            return None


PUSH_METHODS = frozenset({"POST", "PUT", "PATCH"})   # methods whose body is data sent, unless the gateway says


# ---- request and decision --------------------------------------------------------------------------------------

@dataclass
class TransferRequest:
    """The request a presentation accompanies. ``url`` is the full URL the client used; ``dataset`` (optional)
    is the dataset IRI the endpoint serves, as the gateway knows it (authoritative over the manifest)."""

    method: str
    url: str
    body: bytes | None = None
    manifest: dict | None = None
    dataset: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    time: datetime | None = None
    response_checked: bool = False   # the payload travels in the response and will be checked there (middleware)
    push: bool | None = None         # the table travels in the request body (None: a POST, PUT or PATCH)

    @property
    def is_push(self) -> bool:
        """Whether the request body is the table: never because the client chose to send a body, only because
        the gateway says so (``push``) or the method is one that sends data (POST, PUT, PATCH)."""
        return self.push if self.push is not None else self.method.upper() in PUSH_METHODS

    def __post_init__(self) -> None:
        if not isinstance(self.method, str) or not self.method.isalpha():
            raise CeadError("request.invalid", f"Not an HTTP method: {self.method!r}")
        self.method = self.method.upper()
        origin(self.url)  # raises request.url_invalid
        if self.body is not None and not isinstance(self.body, (bytes, bytearray)):
            raise CeadError("request.invalid", "The request body must be bytes.")
        if self.manifest is not None and not isinstance(self.manifest, dict):
            raise CeadError("manifest.invalid", "The transfer manifest must be a JSON object.")

    @property
    def binding(self) -> str:
        return request_binding(self.method, self.url, bytes(self.body) if self.body else None, self.manifest)

    @property
    def origin(self) -> str:
        return origin(self.url)


@dataclass
class Decision:
    allowed: bool
    reasons: list[Problem]
    relied_on: list[str] = field(default_factory=list)   # "<credential id> <sha256 digest>"
    receipt: str | None = None
    holder: str | None = None
    approval_id: str | None = None
    method: str | None = None
    url: str | None = None
    decided_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    approval: Any = field(default=None, repr=False, compare=False)   # the DataSharingApproval model relied on
    manifest: dict | None = field(default=None, repr=False, compare=False)
    evidence: dict = field(default_factory=dict, repr=False, compare=False)   # for the receipt (verifier.receipts)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "allowed": self.allowed,
            "decision": "allow" if self.allowed else "deny",
            "reasons": [p.to_dict() for p in self.reasons],
            "reliedOn": list(self.relied_on),
            "decidedAt": self.decided_at.isoformat().replace("+00:00", "Z"),
        }
        for key, value in (("holder", self.holder), ("approval", self.approval_id), ("method", self.method),
                           ("url", self.url), ("receipt", self.receipt)):
            if value is not None:
                out[key] = value
        return out


@dataclass
class _Cred:
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
                return to_document(_jwt_claims(self.raw), "vc")
            except CeadError:
                return {}
        return self.raw if isinstance(self.raw, dict) else {}

    @property
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

    def is_(self, type_name: str) -> bool:
        return type_name in as_list(self.document.get("type"))

    def matches(self, ref: dict) -> bool:
        return self.id == ref.get("id") and self.digest == ref.get("digest")

    @property
    def label(self) -> str:
        return f"{self.id or f'credential {self.index}'} {self.digest}"


def _state_code(cred: _Cred, role: str) -> str:
    """The role-level consequence of a credential that failed: e.g. delegation.revoked, certification.expired."""
    codes = {p.code for p in cred.result.problems}
    for code, word in (("status.revoked", "revoked"), ("status.suspended", "suspended"),
                       ("credential.expired", "expired"), ("status.stale", "status_stale"),
                       ("did.unreachable", "issuer_unreachable")):
        if code in codes:
            return f"{role}.{word}"
    return f"{role}.invalid"


# ---- the decider -----------------------------------------------------------------------------------------------

class Decider:
    """Decides transfers under one trust policy. Thread-safe; keep one per process (its caches are shared).

    ``verifier`` may supply the resolver (its status checker, if any, is reused); ``status`` replaces the
    ``StatusLists`` built from the policy; ``receipt_signer`` overrides the policy's receipt key; ``fetcher``
    replaces the network fetcher for DID documents and status lists; ``clock()`` gives the time of a decision
    that names none (default: now).
    """

    def __init__(self, policy: TrustPolicy | None = None, verifier: Verifier | None = None, *,
                 status: StatusLists | None = None, metrics: Metrics | None = None,
                 receipt_signer: ReceiptSigner | None = None, fetcher: Fetcher | None = None,
                 clock=None):
        self.policy = policy = policy or TrustPolicy()
        self.clock = clock or (lambda: datetime.now(timezone.utc))   # the time of decisions not given one
        self.metrics = metrics or Metrics()
        net = policy.network
        fetcher = fetcher or Fetcher(allow_http=net.allow_http, allow_private=net.allow_private,
                                     ca_bundle=str(policy.path(net.ca_bundle)) if net.ca_bundle else None,
                                     timeout=net.timeout)
        caches = policy.caches
        if isinstance(verifier, CachingVerifier):
            self.verifier = verifier
        else:
            resolver = verifier.resolver if verifier is not None else Resolver(
                fetcher, ttl=caches.did_documents.ttl, cache_size=caches.did_documents.size,
                on_cache=lambda hit: self.metrics.record_cache("did_documents", hit))
            status = status or (verifier.status if verifier is not None else None)
            self.verifier = CachingVerifier(resolver, skew=policy.skew, cache_size=caches.proofs.size,
                                            ttl=caches.proofs.ttl, metrics=self.metrics)
        if status is None and self.verifier.status_lists is None:
            status = StatusLists(fetcher, verifier=self.verifier,
                                 on_cache=lambda hit: self.metrics.record_cache("status_lists", hit),
                                 ttl=caches.status_lists.ttl,
                                 max_staleness=timedelta(seconds=policy.max_status_staleness),
                                 cache_size=caches.status_lists.size)
        if status is not None:
            self.verifier.status_lists = status
            if getattr(status, "verifier", None) is None:
                status.verifier = self.verifier
        self.status = self.verifier.status_lists
        self.replay = _ReplayGuard(caches.replay.size, max(caches.replay.ttl, policy.presentation_max_age
                                                           + 2 * policy.clock_skew))
        self.receipt_signer = receipt_signer if receipt_signer is not None else load_signer(policy)
        self.vocabulary = policy.vocabulary_for(registry())   # plus the policy's vocabulary files and catalogues

    # ---- generic verification (VC-API) ---------------------------------------------------------------------
    def verify_credential(self, credential: dict | str, now: datetime | None = None) -> VerificationResult:
        return self.verifier.verify_credential(credential, now)

    def verify_presentation(self, presentation: dict | str, challenge: str | None = None, domain: str | None = None,
                            now: datetime | None = None) -> VerificationResult:
        return self.verifier.verify_presentation(presentation, challenge=challenge, domain=domain, now=now)

    def verify_proofless(self, presentation: dict, now: datetime | None = None) -> VerificationResult:
        """VC-API proofless presentation: verify each credential it carries."""
        result = VerificationResult(verified=True, document=presentation)
        entries = as_list(presentation.get("verifiableCredential"))
        if not entries:
            result.add(Problem("presentation.malformed", "The presentation carries no credentials."))
        if len(entries) > MAX_CREDENTIALS:  # refuse, rather than verify some and report the whole as verified
            result.add(Problem("presentation.malformed", f"A presentation may carry at most {MAX_CREDENTIALS} "
                               "credentials."))
            return result
        for index, entry in enumerate(entries):
            sub = self.verifier.verify_credential(entry, now)
            result.credentials.append(sub)
            if not sub.verified:
                result.add(Problem("presentation.credential_invalid",
                                   f"Credential {index} in the presentation failed verification."))
        return result

    # ---- the decision ----------------------------------------------------------------------------------------
    def deny(self, *problems: Problem, request: TransferRequest | None = None) -> Decision:
        """A denial decided before the presentation could be read (missing or malformed input)."""
        decision = Decision(False, list(problems), method=request.method if request else None,
                            url=request.url if request else None)
        self._finish(decision, 0.0)
        return decision

    def decide(self, presentation: dict | str, request: TransferRequest, now: datetime | None = None) -> Decision:
        started = perf_counter()
        now = _utc(now or request.time or self.clock())
        state = _State(request=request, now=now)
        try:
            if isinstance(presentation, str) and presentation.count(".") != 2:
                presentation = decode_presentation(presentation)
            with rdfc.work_budget():   # one canonicalization budget for the whole decision
                self._decide(presentation, state)
        except CeadError as exc:
            state.reasons.append(exc.problem)
        except Exception:  # a bug must never become an allow
            log.exception("internal error while deciding a transfer")
            state.reasons.append(Problem("verifier.internal_error",
                                         "The transfer could not be decided because of an internal error."))
        reasons = list(dict.fromkeys(state.reasons))  # drop exact duplicates, keep order
        allowed = state.complete and not reasons
        if allowed:   # record the presentation now, atomically: the same one decided twice at once allows once
            replay = self.replay.check(state.replay_id) if state.replay_id else Problem(
                "presentation.id_missing", "The presentation has no id to guard against replay.")
            if replay:
                allowed, reasons = False, [replay]
        if not allowed and not reasons:
            reasons = [Problem("decision.incomplete", "The decision did not complete, so the transfer is denied.")]
        decision = Decision(allowed, reasons, relied_on=list(dict.fromkeys(state.relied_on)), holder=state.holder,
                            approval_id=state.approval.id if state.approval else None, method=request.method,
                            url=request.url, decided_at=now, approval=state.approval.model if state.approval else None,
                            manifest=request.manifest)
        decision.evidence = receipts.request_evidence(request)
        self._finish(decision, perf_counter() - started)
        return decision

    def _finish(self, decision: Decision, seconds: float) -> None:
        if self.receipt_signer is not None:   # every decision, allow or deny (issue 15)
            receipts.seal(self.receipt_signer, decision, getattr(self, "receipt_sink", None))
        self.metrics.record_decision(decision.allowed, [p.code for p in decision.reasons], seconds)

    def _decide(self, presentation: dict | str, state: "_State") -> None:
        request = state.request
        presentation = unwrap_enveloped(presentation, "presentation")   # an enveloped vp+jwt is the JWT
        # 1. the presentation ---------------------------------------------------------------------------------
        vp = self.verifier.verify_presentation(presentation, challenge=request.binding, now=state.now)
        creds = self._credentials(presentation, vp)
        own = [Problem(_PRESENTATION_CODES.get(p.code, p.code), p.message, p.detail)
               for p in vp.problems if p.code != "presentation.credential_invalid"]
        own += self._presentation_claims(presentation, vp, state)
        if own:
            first: dict[str, Problem] = {}
            for problem in own:
                first.setdefault(problem.code, problem)  # one reason per code
            state.reasons += first.values()
            state.complete = True
            return  # nothing in a presentation we cannot attribute to its holder can be relied on
        state.holder = vp.issuer
        # 2. every credential ---------------------------------------------------------------------------------
        for cred in creds:
            for problem in cred.result.problems:
                state.reasons.append(Problem(problem.code, problem.message,
                                             {**problem.detail, "credential": cred.id or cred.index}))
            if cred.model_problem:
                state.reasons.append(cred.model_problem)
        # 3-6. the approval and everything it rests on ----------------------------------------------------------
        self._approval_checks(creds, state)

    def _credentials(self, presentation: dict | str, vp: VerificationResult) -> list[_Cred]:
        document = vp.document if isinstance(vp.document, dict) else {}
        entries = as_list(document.get("verifiableCredential"))
        creds = []
        for index, (entry, result) in enumerate(zip(entries, vp.credentials)):
            raw = unwrap_enveloped(entry)
            try:
                digest = models.credential_digest(raw)
            except CeadError as exc:
                digest = f"unreadable-{index}"
                result.add(exc.problem)
            cred = _Cred(index, raw, digest, result)
            model_cls = models.model_for(cred.document)
            if model_cls is not None:
                try:
                    cred.model = model_cls.from_credential(cred.document)
                except CeadError as exc:
                    cred.model_problem = Problem(exc.code, exc.message, {"credential": cred.id or index})
            creds.append(cred)
        return creds

    def _presentation_claims(self, presentation: dict | str, vp: VerificationResult, state: "_State") -> list[Problem]:
        """Audience, lifetime and replay: checks of the presentation beyond its proof and binding."""
        problems: list[Problem] = []
        policy, now = self.policy, state.now
        skew = timedelta(seconds=policy.clock_skew)
        if isinstance(presentation, str):
            claims = _jwt_claims(presentation)
            audiences = as_list(claims.get("aud"))
            ident = claims.get("jti")
            try:
                issued = datetime.fromtimestamp(float(claims["iat"]), timezone.utc)
                expires = datetime.fromtimestamp(float(claims["exp"]), timezone.utc)
            except (KeyError, TypeError, ValueError, OverflowError):
                issued = expires = None
        else:
            proofs = [p for p in as_list(presentation.get("proof")) if isinstance(p, dict)]
            proof = next((p for p in proofs if p.get("verificationMethod") == vp.verification_method), {})
            audiences = as_list(proof.get("domain"))
            ident = proof.get("proofValue")
            try:
                issued = _utc(datetime.fromisoformat(proof["created"]))
                expires = _utc(datetime.fromisoformat(proof["expires"]))
            except (KeyError, TypeError, ValueError):
                issued = expires = None
        accepted = policy.audience or [state.request.origin]
        if not any(a in accepted for a in audiences):
            problems.append(Problem("presentation.audience_mismatch",
                                    f"The presentation was made for {audiences or 'no audience'}, not for "
                                    f"{' or '.join(accepted)}.", {"audience": audiences[:5]}))
        if issued is None or expires is None:
            problems.append(Problem("presentation.lifetime_invalid",
                                    "The presentation must state when it was made and when it expires "
                                    "(JWT iat and exp; proof created and expires)."))
        else:
            max_age = timedelta(seconds=policy.presentation_max_age)
            if expires - issued > max_age:
                problems.append(Problem("presentation.lifetime_invalid",
                                        f"The presentation lives {int((expires - issued).total_seconds())} s; at "
                                        f"most {policy.presentation_max_age} s is accepted."))
            if issued > now + skew:
                problems.append(Problem("presentation.not_yet_valid", "The presentation was made in the future."))
            if now - skew > expires or now - issued > max_age + skew:
                problems.append(Problem("presentation.expired", "The presentation has expired."))
        if not isinstance(ident, str) or not ident:
            problems.append(Problem("presentation.id_missing",
                                    "The presentation has no jti (JWT) or proofValue to guard against replay."))
        elif not problems and not any(p.code != "presentation.credential_invalid" for p in vp.problems):
            state.replay_id = hashlib.sha256(ident.encode()).hexdigest()
            replay = self.replay.seen(state.replay_id)     # recorded in decide(), once the transfer is allowed
            if replay:
                problems.append(replay)
        return problems

    # ---- steps 3 to 6 ----------------------------------------------------------------------------------------
    def _approval_checks(self, creds: list[_Cred], state: "_State") -> None:
        request = state.request
        manifest = request.manifest
        if manifest is None:
            state.reasons.append(Problem("manifest.missing", "The request carries no transfer manifest "
                                         "(Cead-Transfer-Manifest), so it cannot be checked against an approval."))
            state.complete = True
            return
        dataset = manifest.get("dataset")
        dataset = expand(dataset) if isinstance(dataset, str) else dataset
        if request.dataset is not None:
            if dataset is not None and dataset != request.dataset:
                state.reasons.append(Problem("transfer.dataset_mismatch",
                                             f"The manifest names dataset {dataset}, but this endpoint serves "
                                             f"{request.dataset}."))
            dataset = request.dataset
        if not isinstance(dataset, str) or not dataset:
            state.reasons.append(Problem("manifest.invalid", "The transfer manifest names no dataset."))
            state.complete = True
            return
        approvals = [c for c in creds if c.is_(APPROVAL) and c.model is not None]
        if not approvals:
            state.reasons.append(Problem("approval.missing",
                                         f"The presentation carries no {APPROVAL}."))
            state.complete = True
            return
        candidates = [c for c in approvals if self._covers(c.model.datasets, dataset)]
        if not candidates:
            state.reasons.append(Problem("transfer.dataset_not_approved",
                                         f"No approval in the presentation covers dataset {dataset}.",
                                         {"dataset": dataset}))
            state.complete = True
            return
        # Several approvals may cover the dataset: the transfer is allowed if one of them allows it.
        attempts = []
        for approval in candidates:
            attempt = _State(request=request, now=state.now, holder=state.holder)
            self._check_approval(approval, creds, dataset, attempt)
            attempts.append((approval, attempt))
            if not attempt.reasons:
                break
        approval, best = next(((a, s) for a, s in attempts if not s.reasons), attempts[0])
        state.approval = approval
        state.reasons += best.reasons
        state.relied_on += best.relied_on
        state.complete = True

    def _covers(self, granted: list[str], item: str) -> bool:
        return item in granted or self.vocabulary.within_any(item, granted)

    def _check_approval(self, approval: _Cred, creds: list[_Cred], dataset: str, state: "_State") -> None:
        model: models.DataSharingApproval = approval.model
        state.relied_on.append(approval.label)
        if not approval.result.verified:
            state.reasons.append(Problem(_state_code(approval, "approval"), "The approval is not valid: "
                                         + "; ".join(p.message for p in approval.result.problems)))
        # 3. who issued it ------------------------------------------------------------------------------------
        controller = self.policy.controller_of(dataset)
        if controller is None:
            state.reasons.append(Problem("approval.controller_unknown",
                                         f"The trust policy names no controller for dataset {dataset}.",
                                         {"dataset": dataset}))
        elif model.discloser != controller:
            state.reasons.append(Problem("approval.discloser_not_controller",
                                         f"The approval's discloser {model.discloser} is not the controller "
                                         f"{controller} of {dataset}."))
        links = self._check_delegation_chain(approval, creds, controller, state) \
            if controller is not None and approval.issuer != controller else []
        self._check_co_signers(approval, links, state)
        # 4. the recipient ------------------------------------------------------------------------------------
        holder = state.holder
        if holder not in model.recipients:
            state.reasons.append(Problem("holder.not_recipient",
                                         f"The presenter {holder} is not a recipient named in the approval.",
                                         {"holder": holder}))
        self._check_certifications(model, creds, holder, state)
        # 5. the transfer itself, and 6. provenance -----------------------------------------------------------
        self._check_transfer(approval, creds, state)

    def _check_delegation_chain(self, approval: _Cred, creds: list[_Cred], controller: str,
                                state: "_State") -> list[_Cred]:
        """The approval's issuer is not the controller: its delegationChain must lead from the controller to it.
        Returns the links found (the chain the approval relies on)."""
        model: models.DataSharingApproval = approval.model
        refs = [r.to_json() for r in model.delegation_chain]
        if not refs:
            state.reasons.append(Problem("delegation.no_chain",
                                         f"The approval was issued by {approval.issuer}, which is not the controller "
                                         f"{controller}, and names no delegation from the controller."))
            return []
        if len(refs) > self.policy.max_delegation_depth:
            state.reasons.append(Problem("delegation.too_deep", f"The delegation chain has {len(refs)} links; the "
                                         f"trust policy allows {self.policy.max_delegation_depth}."))
            return []
        links: list[_Cred] = []
        for ref in refs:
            link = next((c for c in creds if c.is_(DELEGATION) and c.model is not None and c.matches(ref)), None)
            if link is None:
                state.reasons.append(Problem("delegation.missing",
                                             f"The delegation {ref.get('id')} (digest {ref.get('digest')}) named by "
                                             "the approval is not in the presentation.", {"ref": ref}))
                return links
            links.append(link)
        parent: _Cred | None = None
        for depth, link in enumerate(links):
            d: models.DelegatedAuthority = link.model
            state.relied_on.append(link.label)
            where = {"delegation": link.id, "depth": depth}
            if not link.result.verified:
                state.reasons.append(Problem(_state_code(link, "delegation"), f"The delegation {link.id} is not "
                                             "valid: " + "; ".join(p.message for p in link.result.problems), where))
            state.reasons += _in_force(d.scope, state.now, "delegation", link.id, where)
            expected_issuer = controller if parent is None else parent.model.delegate
            if link.issuer != expected_issuer:
                state.reasons.append(Problem("delegation.issuer_mismatch", f"The delegation {link.id} was issued by "
                                             f"{link.issuer}, expected {expected_issuer}.", where))
            if parent is None:
                if d.controller != controller:
                    state.reasons.append(Problem("delegation.wrong_controller", f"The delegation {link.id} acts "
                                                 f"for {d.controller}, not for the controller {controller}.", where))
                if d.parent is not None:
                    state.reasons.append(Problem("delegation.parent_mismatch", f"The first delegation {link.id} "
                                                 "names a parent; the chain must start at the controller.", where))
            else:
                if d.parent != {"id": parent.id, "digest": parent.digest}:
                    state.reasons.append(Problem("delegation.parent_mismatch", f"The delegation {link.id} does not "
                                                 f"name {parent.id} (with its digest) as its parent.", where))
                for v in delegation_within(d, parent.model, vocabulary=self.vocabulary):
                    code = _DELEGATION_CODES.get(v.dimension, "delegation.widens_parent")
                    state.reasons.append(Problem(code, f"The delegation {link.id} against its parent {parent.id}: "
                                                 f"{v.dimension}: {v.message}.", {**where, "dimension": v.dimension}))
            parent = link
        last: models.DelegatedAuthority = links[-1].model
        if last.delegate != approval.issuer:
            state.reasons.append(Problem("delegation.no_chain", f"The delegation chain ends at {last.delegate}, "
                                         f"but the approval was issued by {approval.issuer}."))
        if "ApproveDisclosure" not in last.allowed_actions:
            state.reasons.append(Problem("delegation.action_not_allowed", f"The delegation {links[-1].id} does not "
                                         "allow approving disclosures."))
        for v in approval_within(model, last, vocabulary=self.vocabulary):
            state.reasons.append(Problem("approval.exceeds_delegation", f"The approval grants more than the "
                                         f"delegation {links[-1].id} allows: {v.dimension}: {v.message}.",
                                         {"dimension": v.dimension}))
        return links

    @staticmethod
    def _check_co_signers(approval: _Cred, links: list[_Cred], state: "_State") -> None:
        """Everyone the approval names in ``coSigners``, and everyone a delegation of its chain requires
        (``requiredCoSigners``), must have signed it: a proof of its Data Integrity proof set by that DID, besides
        the issuer's own (``VerificationResult.co_signers``). A vc+jwt approval carries one signature only."""
        model: models.DataSharingApproval = approval.model
        required = list(dict.fromkeys([*model.co_signers, *(did for link in links if link.model is not None
                                                            for did in link.model.grant.required_co_signers or [])]))
        missing = [did for did in required if did not in approval.result.co_signers]
        if not missing:
            return
        why = (" A vc+jwt credential carries only its issuer's signature; a co-signed approval must be a Data "
               "Integrity credential with a proof set." if approval.result.format == "jwt" else "")
        state.reasons.append(Problem("approval.cosigner_missing", f"The approval {approval.id} is not co-signed by "
                                     f"{', '.join(missing)} (a co-signer is someone other than the issuer)." + why,
                                     {"approval": approval.id, "missing": missing}))

    def _check_certifications(self, model: models.DataSharingApproval, creds: list[_Cred], holder: str | None,
                              state: "_State") -> None:
        required = list(dict.fromkeys([*model.required_certifications, *self.policy.required_certifications]))
        today = state.now.date()
        for scheme in required:
            held = [c for c in creds if c.is_(CERTIFICATION) and c.model is not None and c.model.id == holder
                    and (c.model.scheme == scheme or self.vocabulary.within(c.model.scheme, scheme))]
            if not held:
                state.reasons.append(Problem("certification.missing", f"The recipient shows no certification for "
                                             f"{scheme}.", {"scheme": scheme}))
                continue
            failures: list[Problem] = []
            for cert in held:
                trusted = set(self.policy.trusted_bodies(scheme)) | set(self.policy.trusted_bodies(cert.model.scheme))
                where = {"scheme": scheme, "credential": cert.id}
                if cert.issuer not in trusted:
                    failures.append(Problem("certification.untrusted_issuer", f"The certification {cert.id} for "
                                            f"{scheme} was issued by {cert.issuer}, which the trust policy does not "
                                            "trust for that scheme.", where))
                elif not cert.result.verified:
                    failures.append(Problem(_state_code(cert, "certification"), f"The certification {cert.id} is "
                                            "not valid: " + "; ".join(p.message for p in cert.result.problems),
                                            where))
                elif cert.model.status != "Certified":
                    failures.append(Problem("certification.withdrawn", f"The certification {cert.id} has status "
                                            f"{cert.model.status}.", where))
                elif not cert.model.valid_on(today):
                    failures.append(Problem("certification.expired", f"The certification {cert.id} is valid "
                                            f"{cert.model.issue_date} to {cert.model.expiry_date}.", where))
                else:
                    state.relied_on.append(cert.label)
                    failures = []
                    break
            state.reasons += failures

    def _check_transfer(self, approval: _Cred, creds: list[_Cred], state: "_State") -> None:
        """Step 5 (the transfer within the approval, the protocol's transfer-time checks) and step 6 (provenance)."""
        model: models.DataSharingApproval = approval.model
        request = state.request
        manifest = request.manifest or {}
        for v in transfer_within(manifest, model, at=state.now, vocabulary=self.vocabulary):
            state.reasons.append(Problem(_TRANSFER_CODES.get(v.dimension, f"transfer.{v.dimension}"),
                                         f"{v.dimension}: {v.message}.", {"offending": list(v.offending)}))
        state.reasons += self._cadence(model, state.now)
        # The data go to the holder: a manifest naming someone else is refused, and the protocol's output-party
        # and learner checks are made against the holder even when the manifest names no recipient.
        recipient = manifest.get("recipient")
        if recipient is not None and recipient != state.holder:
            state.reasons.append(Problem("transfer.recipient_mismatch", f"The manifest names the recipient "
                                         f"{str(recipient)[:120]}, but the presentation was made by {state.holder}.",
                                         {"recipient": str(recipient)[:200], "holder": state.holder}))
        protocol = list(model.privacy_protocol)
        # A push's table is its body. Anything else brings the table back in the response: checked there by the
        # middleware, or (Envoy, nginx) not checkable, so a threshold then has no payload and denies. A body the
        # client sends with a pull is never taken for the table (it could be a decoy).
        payload = bytes(request.body) if request.is_push and request.body else None
        if not request.is_push and request.response_checked:
            protocol = [p for p in protocol if not isinstance(p, models.Threshold)]  # checked on the response
        state.reasons += check_transfer(protocol, {**manifest, "recipient": state.holder}, payload,
                                        approved_columns=model.data_items)
        if not model.upstream:
            return
        upstream: list[models.DataSharingApproval] = []
        for ref in model.upstream:
            found = next((c for c in creds if c.is_(APPROVAL) and c.model is not None and c.matches(ref)), None)
            if found is None:
                state.reasons.append(Problem("provenance.upstream_missing", f"The upstream approval {ref.get('id')} "
                                             "is not in the presentation.", {"ref": ref}))
                continue
            state.relied_on.append(found.label)
            if not found.result.verified:
                state.reasons.append(Problem(_state_code(found, "provenance.upstream"), f"The upstream approval "
                                             f"{found.id} is not valid.", {"ref": ref}))
            controller = next(filter(None, (self.policy.controller_of(ds) for ds in found.model.datasets)), None)
            if controller is None:
                state.reasons.append(Problem("provenance.controller_unknown", f"The trust policy names no controller "
                                             f"for the datasets of the upstream approval {found.id}.", {"ref": ref}))
            links = self._check_delegation_chain(found, creds, controller, state) \
                if controller is not None and found.issuer != controller else []
            self._check_co_signers(found, links, state)
            upstream.append(found.model)
        if len(upstream) == len(model.upstream):
            for v in derived_within(model, upstream, vocabulary=self.vocabulary):
                state.reasons.append(Problem(_PROVENANCE_CODES.get(v.dimension, f"provenance.{v.dimension}"),
                                             f"{v.dimension}: {v.message}.", {"offending": list(v.offending)}))

    @staticmethod
    def _cadence(model: models.DataSharingApproval, now: datetime) -> list[Problem]:
        """The transfer happens inside the approval's cadence: after its start and before its last repetition."""
        interval = RepeatingInterval.parse(model.cadence)
        end = None if interval.repetitions is None else \
            interval.start + timedelta(seconds=duration_seconds(interval.period) * interval.repetitions)
        if now < interval.start or (end is not None and now >= end):
            return [Problem("transfer.outside_cadence", f"The approval's cadence {model.cadence} does not cover "
                            f"{now.isoformat()}.", {"cadence": model.cadence})]
        return []

    # ---- response payloads (aggregate outputs) -------------------------------------------------------------
    def response_check_needed(self, decision: Decision, push: bool = False) -> bool:
        """True when the approval's protocol constrains a table of counts that travels in the response: not for a
        push (its table was the request body, checked when it was decided; the response is the app's own)."""
        return decision.allowed and not push and decision.approval is not None and any(
            isinstance(p, models.Threshold) for p in decision.approval.privacy_protocol)

    def check_response(self, decision: Decision, body: bytes, content_type: str = "") -> list[Problem]:
        """Check an outgoing payload against the approval's threshold rules; a failure turns the decision into a
        denial (with a fresh receipt) and returns its reasons."""
        approval: models.DataSharingApproval = decision.approval
        thresholds = [p for p in approval.privacy_protocol if isinstance(p, models.Threshold)]
        try:
            problems = check_transfer(thresholds, decision.manifest or {}, body, approved_columns=approval.data_items)
        except Exception:  # never let an unchecked payload out
            log.exception("internal error while checking a response payload")
            problems = [Problem("verifier.internal_error", "The response could not be checked, so it is withheld.")]
        if problems:
            decision.allowed = False
            decision.reasons = [*decision.reasons, *problems]
            self._finish(decision, 0.0)
        return problems


def _in_force(scope: models.Scope, now: datetime, role: str, ident: str | None, where: dict) -> list[Problem]:
    if scope.not_before is not None and now < scope.not_before:
        return [Problem(f"{role}.not_yet_valid", f"The {role} {ident} is not in force until {scope.not_before}.",
                        where)]
    if scope.not_after is not None and now > scope.not_after:
        return [Problem(f"{role}.expired", f"The {role} {ident} ended {scope.not_after}.", where)]
    return []


_TRANSFER_CODES = {
    "datasets": "transfer.dataset_not_approved",
    "dataItems": "transfer.column_not_approved",
    "purposes": "transfer.purpose_not_approved",
    "recipients": "transfer.recipient_not_approved",
    "maxRowsPerTransfer": "transfer.volume_exceeded",
    "rowCount": "transfer.row_count_missing",
    "notBefore": "transfer.outside_cadence",
    "notAfter": "transfer.outside_cadence",
    "manifest": "manifest.invalid",
}
_PROVENANCE_CODES = {
    "discloser": "provenance.discloser_not_upstream_recipient",
}
_DELEGATION_CODES = {
    "parentDelegation": "delegation.parent_mismatch",
    "onBehalfOf": "delegation.wrong_controller",
}


@dataclass
class _State:
    request: TransferRequest
    now: datetime
    holder: str | None = None
    reasons: list[Problem] = field(default_factory=list)
    relied_on: list[str] = field(default_factory=list)
    approval: _Cred | None = None
    complete: bool = False
    replay_id: str | None = None   # the presentation's id, recorded by the replay guard if the transfer is allowed


# ---- HTTP surfaces (middleware, nginx, Envoy) share this ---------------------------------------------------------

def decide_from_headers(decider: Decider, headers, method: str, url, body: bytes | None,
                        dataset: str | None = None, response_checked: bool = False,
                        push: bool | None = None) -> tuple[int, Decision]:
    """Decide a transfer described by HTTP headers; returns (status 200 allow / 401 no presentation / 403 deny,
    decision). ``response_checked``: the caller will pass the response through ``Decider.check_response``.

    Every HTTP surface (the middleware, the service's ``/authz`` and ``/envoy``) comes here, and it fails closed:
    input the decoders do not survive, or any unexpected error, is a 403 denial with a reason, never an exception
    that reaches a server as a 500. ``url`` may be a callable, so that rebuilding it from the request is guarded
    too."""
    try:
        return _decide_from_headers(decider, headers, method, url() if callable(url) else url, body, dataset,
                                    response_checked, push)
    except ValueError as exc:  # e.g. a Host header that makes no URL
        return 403, decider.deny(Problem("request.url_invalid", f"The request URL cannot be read: {exc}."))
    except Exception:  # a bug must never become an allow, nor a 500
        log.exception("internal error while deciding a request")
        return 403, decider.deny(Problem("verifier.internal_error",
                                         "The transfer could not be decided because of an internal error."))


def _decide_from_headers(decider: Decider, headers, method: str, url: str, body: bytes | None,
                         dataset: str | None, response_checked: bool, push: bool | None) -> tuple[int, Decision]:
    from .binding import MANIFEST_HEADER, PRESENTATION_HEADER, decode_manifest

    raw = headers.get(PRESENTATION_HEADER)
    if not raw:
        auth = headers.get("Authorization", "")
        raw = auth if auth[:3].lower() == "vp " else None
    if not raw:
        return 401, decider.deny(Problem("presentation.missing", f"The request carries no presentation "
                                         f"({PRESENTATION_HEADER} or Authorization: VP)."))
    try:
        presentation = decode_presentation(raw)
        manifest_header = headers.get(MANIFEST_HEADER)
        manifest = decode_manifest(manifest_header) if manifest_header else None
        request = TransferRequest(method=method, url=url, body=body, manifest=manifest, dataset=dataset,
                                  response_checked=response_checked, push=push)
    except CeadError as exc:
        return (401 if exc.code.startswith("presentation.") else 403), decider.deny(exc.problem)
    decision = decider.decide(presentation, request)
    return (200 if decision.allowed else 403), decision


REASONS_HEADER = "Cead-Decision-Reasons"
DECISION_HEADER = "Cead-Decision"
RECEIPT_HEADER = "Cead-Receipt"


def decision_headers(decision: Decision) -> dict[str, str]:
    headers = {DECISION_HEADER: "allow" if decision.allowed else "deny"}
    if decision.reasons:
        headers[REASONS_HEADER] = ", ".join(dict.fromkeys(p.code for p in decision.reasons))
    if decision.receipt:
        headers[RECEIPT_HEADER] = decision.receipt
    return headers
