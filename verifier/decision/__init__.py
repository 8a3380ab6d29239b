"""The one entry point that decides a data transfer: ``Decider.decide(presentation, request) -> Decision``.

The decision runs in stages, each a function in a module of its own that returns its problems (a list of
``Problem``); every reason found is reported with a stable code, and the decision fails closed:

1. ``presentation.check_presentation``: the presentation's proof by the holder, bound to this request
   (nonce/challenge = the request binding), for this audience, short-lived, and not seen before by this instance.
   If it fails, nothing else is looked at.
2. ``presentation.check_credentials``: each credential's proof against DID-resolved keys, validity period,
   schema and status (checked on every decision, even when the proof result comes from the cache).
3. ``approval.candidates``: the approvals that cover the dataset. Then, for each candidate until one passes,
   the approval stages of ``APPROVAL_STAGES``, in order, over one ``Attempt``:

   - ``approval.check_approval``: the approval is valid and disclosed by the dataset's controller;
   - ``delegation.check_delegation``: issued by the controller, or by the end of a delegation chain that starts
     at the controller (every link valid, unrevoked, allowed to act, within its parent's scope); co-signed by
     every DID in its ``coSigners`` and in its chain's ``requiredCoSigners``;
   - ``certification.check_recipient``: the holder is an approved recipient and holds every required
     certification, issued by a body the trust policy trusts for that scheme;
   - ``transfer.check_transfer``: the transfer lies within the approval (dataset, columns, purpose, recipient,
     volume, cadence window), as the manifest states it;
   - ``measured.check_measured``: a push's table as the gateway counts it (columns, rows); a pull's is measured
     in its response (``check_response``), and a pull under a row limit whose response will not be checked
     (``response_checked`` False: nginx, Envoy) is denied ``transfer.rows_uncounted``;
   - ``protocol.check_protocol``: the privacy protocol's transfer-time checks;
   - ``provenance.check_provenance``: for a derived dataset, the upstream approvals (held to the approval and
     delegation checks) and the provenance rules.

Adding a check: write ``def check_x(attempt: Attempt) -> list[Problem]`` in a module of its own (read
``attempt.model`` for the approval, ``attempt.ctx`` for the request, time, policy, holder and the presentation's
credentials; call ``attempt.rely_on(cred)`` for a credential the transfer rests on), document its codes, and add
it to ``APPROVAL_STAGES`` below (or pass ``stages=`` to ``Decider``). A stage never raises for bad input; an
unexpected exception denies the transfer with ``verifier.internal_error``.

Caches (``caches.py``; all bounded, sizes and TTLs from the trust policy): DID documents (``Resolver``), status
lists (``StatusLists``), verified-proof results keyed by the exact credential digest (``CachingVerifier``), and
seen presentation ids (``ReplayGuard``). HTTP header handling is ``verifier.gateway``. No database and no private
key is needed; a receipt-signing key is optional.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from time import perf_counter
from typing import Callable

from schemas.values import as_list
from schemas.vocab import registry

from .. import rdfc
from ..binding import decode_presentation
from ..context import Limits
from ..credential import MAX_CREDENTIALS, Verifier, unwrap_enveloped  # noqa: F401  (re-exported)
from ..compose import attach_status, build_verifier, fetcher_for, status_lists_for
from ..http import Fetcher
from ..jose import is_compact
from ..metrics import Metrics
from ..policy import TrustPolicy
from .. import receipts
from ..receipts import ReceiptSigner, load_signer
from ..results import CeadError, Problem, VerificationResult
from ..replay import ReplayGuard, store_for
from ..status import StatusLists
from . import approval, certification, delegation, lawful, limits, measured, protocol, provenance, transfer
from .caches import CachingVerifier, _ReplayGuard  # noqa: F401  (re-exported)
from .context import Attempt, Cred, DecisionContext, _Cred, state_code, utc  # noqa: F401  (re-exported)
from .presentation import check_credentials, check_presentation
from ..tlog.require import check_logged
from .request import PUSH_METHODS, Decision, TransferRequest, is_presentation  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

Stage = Callable[[Attempt], "list[Problem]"]

# The checks of one approval, in order (see the module docstring). Add a stage here.
APPROVAL_STAGES: list[Stage] = [
    approval.check_approval,
    delegation.check_delegation,
    check_logged,               # issue 15: in the issuer's witnessed log, if the trust policy says so
    certification.check_recipient,
    limits.check_limits,          # before anything reads the table (work proportional to the approval)
    transfer.check_transfer,
    measured.check_measured,    # a push's table measured by the gateway (its columns and rows), not as stated
    protocol.check_protocol,
    provenance.check_provenance,
    lawful.check_lawful,          # the lawful-basis rulebook, and provenance over every hop (issue 13)
]


class Decider:
    """Decides transfers under one trust policy. Thread-safe; keep one per process (its caches are shared).

    ``verifier`` may supply the resolver (its status checker, if any, is reused); ``status`` replaces the
    ``StatusLists`` built from the policy; ``receipt_signer`` overrides the policy's receipt key; ``fetcher``
    replaces the network fetcher for DID documents and status lists; ``clock()`` gives the time of a decision
    that names none, of the replay guard and (for a verifier built here) of every credential check (default: the
    verifier's ``VerificationContext`` clock, the system's UTC time); ``loader`` (a JSON-LD document loader) and
    ``limits`` (``verifier.context.Limits``) go into the verifier built here (``compose.build_verifier``), and the
    decision's canonicalisation budget comes from those limits; ``stages`` replaces ``APPROVAL_STAGES``; ``ledger`` is the data owner's
    privacy-budget ledger (``issuer.ledger.SqlLedger`` in-process, ``verifier.ledger.HttpLedger`` for a gateway in
    front of nginx/Envoy): an allowed release under a differential-privacy approval is charged to it last, and
    refused if it cannot afford it; tables of counts are kept in it for differencing. ``replay`` replaces the replay
    guard built from the policy (``verifier.replay``: per process, or shared through Redis with ``replay_store``).
    """

    def __init__(self, policy: TrustPolicy | None = None, verifier: Verifier | None = None, *,
                 status: StatusLists | None = None, metrics: Metrics | None = None,
                 receipt_signer: ReceiptSigner | None = None, fetcher: Fetcher | None = None,
                 clock=None, stages: list[Stage] | None = None, ledger=None, replay: ReplayGuard | None = None,
                 loader=None, limits: Limits | None = None):
        self.policy = policy = policy or TrustPolicy()
        self.ledger = ledger   # the data owner's privacy-budget ledger (verifier.ledger.PrivacyLedger), passed in
        self.metrics = metrics or Metrics()
        self.stages = list(APPROVAL_STAGES if stages is None else stages)
        fetcher = fetcher or fetcher_for(policy.network, policy.path)
        if isinstance(verifier, CachingVerifier):
            self.verifier = verifier
            if status is not None or verifier.status_lists is None:
                attach_status(verifier, status if status is not None else
                              status_lists_for(policy, fetcher, verifier, self.metrics))
        else:
            # a plain verifier given: its resolver (and its status checker, if any) are reused
            status = status or (verifier.status if verifier is not None else None)
            self.verifier = build_verifier(policy, fetcher=fetcher, metrics=self.metrics, clock=clock,
                                           resolver=verifier.resolver if verifier is not None else None,
                                           status=status if status is not None else True, loader=loader,
                                           limits=limits)
        self.status = self.verifier.status_lists
        # one clock for the whole decision: the one given, else the verifier's (its VerificationContext's)
        self.clock = clock or self.verifier.context.now
        self.limits = self.verifier.context.limits
        caches = policy.caches
        self.replay = replay if replay is not None else ReplayGuard(
            store_for(policy.replay_store, caches.replay.size), skew=policy.skew,
            lifetime=timedelta(seconds=policy.presentation_max_age), metrics=self.metrics, clock=self.clock)
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
        if len(entries) > self.limits.max_credentials:  # refuse, rather than verify some and report all verified
            result.add(Problem("presentation.malformed", f"A presentation may carry at most "
                               f"{self.limits.max_credentials} credentials."))
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
                            url=request.url if request else None, decided_at=utc(self.clock()))
        self._finish(decision, 0.0)
        return decision

    def context(self, request: TransferRequest, now: datetime) -> DecisionContext:
        """A fresh context for one decision, carrying this decider's parts."""
        return DecisionContext(request=request, now=now, policy=self.policy, vocabulary=self.vocabulary,
                               verifier=self.verifier, replay=self.replay, ledger=self.ledger)

    def decide(self, presentation: dict | str, request: TransferRequest, now: datetime | None = None) -> Decision:
        started = perf_counter()
        now = utc(now or request.time or self.clock())
        ctx = self.context(request, now)
        reasons: list[Problem] = []
        relied_on: list[str] = []
        chosen: Attempt | None = None
        complete = False
        try:
            if isinstance(presentation, str) and not is_compact(presentation):
                presentation = decode_presentation(presentation)
            # one canonicalization budget for the whole decision (the verification context's work limits)
            with rdfc.work_budget(self.limits.rdfc_calls, self.limits.rdfc_seconds):
                chosen, found = self._run(presentation, ctx)
            reasons += found
            complete = True
            if chosen is not None:
                relied_on += chosen.relied_on
        except CeadError as exc:
            reasons.append(exc.problem)
        except Exception:  # a bug must never become an allow
            log.exception("internal error while deciding a transfer")
            reasons.append(Problem("verifier.internal_error",
                                   "The transfer could not be decided because of an internal error."))
        reasons = list(dict.fromkeys(reasons))  # drop exact duplicates, keep order
        allowed = complete and not reasons
        if allowed:   # record the presentation now, atomically: the same one decided twice at once allows once
            replay = self.replay.check(ctx.replay_id, ctx.replay_expires) if ctx.replay_id else Problem(
                "presentation.id_missing", "The presentation has no id to guard against replay.")
            if replay:
                allowed, reasons = False, [replay]
        if allowed and chosen is not None:   # last, before the data leave: the owner's ledger records the release
            charged = protocol.charge_release(chosen)
            if charged:
                allowed, reasons = False, charged
        if not allowed and not reasons:
            reasons = [Problem("decision.incomplete", "The decision did not complete, so the transfer is denied.")]
        decision = Decision(allowed, reasons, relied_on=list(dict.fromkeys(relied_on)), holder=ctx.holder,
                            approval_id=chosen.approval.id if chosen else None, method=request.method,
                            url=request.url, decided_at=now, approval=chosen.model if chosen else None,
                            manifest=request.manifest, dataset=ctx.dataset,
                            ledger_dataset=chosen.release.dataset if chosen and chosen.release else None)
        if self.receipt_signer is not None:   # what the receipt records of the request (none without receipts)
            decision.evidence = receipts.request_evidence(request, decision.allowed)
        self._finish(decision, perf_counter() - started)
        return decision

    def _run(self, presentation: dict | str, ctx: DecisionContext) -> tuple[Attempt | None, list[Problem]]:
        """The stages: the approval attempt relied on (None if none got that far), and every problem found."""
        presentation = unwrap_enveloped(presentation, "presentation")   # an enveloped vp+jwt is the JWT
        problems = check_presentation(ctx, presentation)
        if problems:
            return None, problems   # nothing in a presentation we cannot attribute to its holder can be relied on
        problems = check_credentials(ctx)
        found, more = approval.candidates(ctx)
        problems += more
        if not found:
            return None, problems
        # Several approvals may cover the dataset: the transfer is allowed if one of them allows it.
        attempts: list[tuple[Attempt, list[Problem]]] = []
        for candidate in found:
            attempt = Attempt(ctx, candidate)
            attempt_problems: list[Problem] = []
            for stage in self.stages:
                attempt_problems += stage(attempt)
            attempts.append((attempt, attempt_problems))
            if not attempt_problems:
                break
        chosen, best = next(((a, p) for a, p in attempts if not p), attempts[0])
        return chosen, problems + best

    def _finish(self, decision: Decision, seconds: float) -> None:
        if self.receipt_signer is not None:   # every decision, allow or deny (issue 15)
            receipts.seal(self.receipt_signer, decision, getattr(self, "receipt_sink", None))
        self.metrics.record_decision(decision.allowed, [p.code for p in decision.reasons], seconds)

    # ---- response payloads (aggregate outputs) -------------------------------------------------------------
    def response_check_needed(self, decision: Decision, push: bool = False) -> bool:
        """True when the approval's protocol constrains a table of counts that travels in the response: not for a
        push (its table was the request body, checked when it was decided; the response is the app's own)."""
        return protocol.response_check_needed(decision.approval, decision.allowed, push, decision.manifest)

    def check_response(self, decision: Decision, body: bytes, content_type: str = "") -> list[Problem]:
        """Check an outgoing payload against the approval's threshold rules; a failure turns the decision into a
        denial (with a fresh receipt) and returns its reasons."""
        problems = protocol.check_response(decision.approval, decision.manifest, body, decision=decision,
                                           ledger=self.ledger, content_type=content_type)
        if problems:
            decision.allowed = False
            decision.reasons = [*decision.reasons, *problems]
            self._finish(decision, 0.0)
        elif self.receipt_signer is not None and protocol.output_checked(decision.approval):
            # the output-checking receipt: these bytes passed these disclosure checks (not for a row count alone)
            decision.output_receipt = self.receipt_signer.sign(protocol.output_check_claims(decision, body))
        return problems


# HTTP surfaces (middleware, nginx, Envoy): ``verifier.gateway``; re-exported here under their old names, looked
# up when first asked for (PEP 562): ``verifier.gateway`` imports this package, so importing it here made
# ``import verifier.gateway`` fail when it came first.
_GATEWAY_NAMES = {"DECISION_HEADER", "RECEIPT_HEADER", "REASONS_HEADER", "decide_from_headers", "decision_headers"}


def __getattr__(name: str):
    if name in _GATEWAY_NAMES:
        from .. import gateway
        return getattr(gateway, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
