"""Stage 5b, the privacy protocol's transfer-time checks (``verifier.protocols``): minimum cell counts,
suppression, the output party... on the table a push sends; a pull's table comes back in the response and is
checked there (``check_response``) by the middleware, or cannot be checked (nginx, Envoy: a threshold then has no
payload and denies)."""
from __future__ import annotations

import logging

from schemas import models
from schemas.vocab import RepeatingInterval

from .. import attestation, tre_outputs
from ..protocols import ReleaseContext, charge, check_transfer, remember_output
from ..results import Problem
from . import measured
from .context import CERTIFICATION, Attempt
from .limits import body_too_large, pushed_table_too_large   # (imported once: check_protocol runs per decision)

log = logging.getLogger(__name__)
OUTPUT_RECEIPT_HEADER = "Cead-Output-Receipt"
PAYLOAD_KINDS = (models.Threshold, models.Pseudonymisation, models.Rounding,   # protocols checked on the payload
                 models.CellKeyPerturbation)


def check_protocol(attempt: Attempt) -> list[Problem]:
    if pushed_table_too_large(attempt):
        return []   # refused unread by the limits stage (transfer.body_too_large)
    request, model = attempt.ctx.request, attempt.model
    manifest = request.manifest or {}
    protocol = list(model.privacy_protocol)
    # A push's table is its body. A body the client sends with a pull is never taken for the table (a decoy).
    payload = bytes(request.body) if request.is_push and request.body else None
    if not request.is_push and request.response_checked:
        protocol = [p for p in protocol if not isinstance(p, PAYLOAD_KINDS)]  # checked on the response
    attempt.release = release_context(attempt)   # built once: the release is charged with it if allowed
    problems = check_transfer(protocol, {**manifest, "recipient": attempt.holder}, payload,
                              approved_columns=model.data_items, context=attempt.release)
    problems = _tre_output(attempt, problems, manifest, payload,
                           output_later=not request.is_push and request.response_checked)
    # the run attestation of a PSI cardinality / secure aggregation (docs/computations.md)
    problems += attestation.transfer_check(
        model.privacy_protocol, manifest, payload, [c.raw for c in attempt.ctx.creds], verifier=attempt.ctx.verifier,
        required=attempt.ctx.policy.run_attestations == "required",
        output_later=not request.is_push and request.response_checked, now=attempt.ctx.now)
    return problems


TRE_RECIPIENT_CODES = {"protocol.tre_required", "protocol.tre_not_accredited"}


def _tre_output(attempt: Attempt, problems: list[Problem], manifest: dict, payload: bytes | None, *,
                output_later: bool) -> list[Problem]:
    """A recipient that is not the TRE itself (``protocol.tre_required`` / ``tre_not_accredited``) may receive an
    output of the TRE that passed output checking there, on the evidence of the TRE's output-checking receipt
    (manifest ``outputCheckReceipt``, ``verifier.tre_outputs``); the bytes of a pull are compared in
    ``check_response``."""
    tres = [p for p in attempt.model.privacy_protocol if isinstance(p, models.TreOnly)]
    if not tres or tre_outputs.MANIFEST_KEY not in manifest or not any(p.code in TRE_RECIPIENT_CODES
                                                                      for p in problems):
        return problems
    kept = [p for p in problems if p.code not in TRE_RECIPIENT_CODES]
    for tre in tres:
        found = tre_outputs.check_output_receipt(
            tre, manifest[tre_outputs.MANIFEST_KEY], payload, resolver=attempt.ctx.verifier.resolver,
            accredited=lambda did, tre=tre: _accredited(attempt, tre.accreditation_schemes, subject=did))
        if output_later:
            found = [p for p in found if p.code != "protocol.tre_output_missing"]
        kept += found
    return kept


def _accredited(attempt: Attempt, schemes: list[str], subject: str | None = None) -> set[str]:
    """The schemes among ``schemes`` the holder (or ``subject``: a TRE whose output-checking receipt is shown)
    shows a valid certification for, from a body the trust policy trusts for that scheme (the accreditation a
    ``treOnly`` approval needs; relied on when found)."""
    ctx, holder = attempt.ctx, subject or attempt.holder
    out: set[str] = set()
    for cert in ctx.credentials_of(CERTIFICATION):
        for scheme in schemes:
            if cert.model.id != holder or not (cert.model.scheme == scheme
                                               or ctx.vocabulary.within(cert.model.scheme, scheme)):
                continue
            trusted = set(ctx.policy.trusted_bodies(scheme)) | set(ctx.policy.trusted_bodies(cert.model.scheme))
            if cert.issuer in trusted and cert.result.verified and cert.model.status == "Certified" \
                    and cert.model.valid_on(ctx.now.date()):
                out.add(scheme)
                attempt.rely_on(cert)
    return out


def record_keys(ledger, dataset: str | None, approval: models.DataSharingApproval | None):
    """The record keys the provider holds for ``dataset`` (``{cell: [key, ...]}``), when the approval has cell-key
    perturbation and the provider's ledger offers them (an optional ``record_keys(dataset)`` method: the provider's
    node keeps its records' keys with its data); None otherwise, so such an output is refused unchecked."""
    if approval is None or not any(isinstance(p, models.CellKeyPerturbation) for p in approval.privacy_protocol):
        return None
    source = getattr(ledger, "record_keys", None)
    return source(dataset) if callable(source) and dataset else None


def contributions(ledger, dataset: str | None, approval: models.DataSharingApproval | None):
    """The contributor-level data the provider holds for ``dataset`` (``{cell: [contribution, ...]}``), when the
    approval has a dominance rule and the provider's ledger offers them (an optional ``contributions(dataset)``
    method); None otherwise, so such a release is refused unchecked (``protocol.dominance_unverifiable``)."""
    if approval is None or not any(isinstance(p, models.Dominance) for p in approval.privacy_protocol):
        return None
    source = getattr(ledger, "contributions", None)
    return source(dataset) if callable(source) and dataset else None


def ledger_dataset(ctx, dataset: str | None, approved: list[str]) -> str | None:
    """The account a release is booked under in the data owner's ledger (the privacy budget, the earlier releases
    that later ones are differenced against): the approved dataset that the transfer's dataset is, or lies within.

    A manifest may name a part of an approved dataset (DCAT ``isPartOf``), and ledgers match datasets exactly: booked
    under the part the requester chose, each part would open an account of its own, so the approval's privacy budget
    could be spent again part by part and a release of a part never differenced against the whole's. The part
    still decides which records are read (cell keys, contributions) and is what the receipt records."""
    if dataset is None or dataset in approved:
        return dataset if dataset is not None else (approved or [None])[0]
    return next((a for a in approved if ctx.covers([a], dataset)), dataset)


def release_context(attempt: Attempt) -> ReleaseContext:
    """What the provider knows about this release: the recipient and its accreditations, the ledger, the
    dataset (its account in the ledger: ``ledger_dataset``), the approval, its data subjects and the start its
    budget periods count from (the cadence's)."""
    model = attempt.model
    schemes = [s for p in model.privacy_protocol if isinstance(p, models.TreOnly) for s in p.accreditation_schemes]
    dataset = attempt.ctx.dataset or (model.datasets or [None])[0]
    return ReleaseContext(recipient=attempt.holder, recipient_accreditations=_accredited(attempt, schemes),
                          ledger=attempt.ctx.ledger, dataset=ledger_dataset(attempt.ctx, dataset, model.datasets),
                          record_keys=record_keys(attempt.ctx.ledger, dataset, model),
                          contributions=contributions(attempt.ctx.ledger, dataset, model),
                          approval=attempt.approval.id, subjects=tuple(model.data_subjects),
                          anchor=RepeatingInterval.parse(model.cadence).start, now=attempt.now)


def charge_release(attempt: Attempt) -> list[Problem]:
    """The last step of an allowed decision: the release is recorded in the data owner's ledger (or refused)."""
    try:
        context = attempt.release or release_context(attempt)   # the one the protocol stage checked with
        problems = charge(list(attempt.model.privacy_protocol), context)
        request = attempt.ctx.request
        if not problems and request.is_push and request.body:   # a pushed table is kept for differencing
            problems = remember_output(list(attempt.model.privacy_protocol), context, bytes(request.body))
        return problems
    except Exception:  # never let an unaccounted release out
        log.exception("internal error while charging a release")
        return [Problem("verifier.internal_error", "The release could not be accounted, so it is refused.")]


def response_check_needed(approval: models.DataSharingApproval | None, allowed: bool, push: bool = False,
                          manifest: dict | None = None) -> bool:
    """True when the approval's protocol constrains a payload that travels in the response (a table of counts, a
    pseudonymised extract), the approval limits rows per transfer (the rows are counted in the response, never taken
    from the manifest), or the response must be the output a run attestation covers: not for a push (its payload was
    the request body, checked when it was decided; the response is the app's own)."""
    return allowed and not push and approval is not None and (any(
        isinstance(p, PAYLOAD_KINDS) for p in approval.privacy_protocol)
        or measured.response_needed(approval)
        or attestation.response_check_needed(approval.privacy_protocol, manifest)
        or (tre_outputs.MANIFEST_KEY in (manifest or {})
            and any(isinstance(p, models.TreOnly) for p in approval.privacy_protocol)))


def check_response(approval: models.DataSharingApproval, manifest: dict | None, body: bytes, *,
                   decision=None, ledger=None, content_type: str = "") -> list[Problem]:
    """An outgoing payload against the approval's payload rules (threshold, whole-table suppression, differencing
    against the node's earlier releases, direct identifiers, k-anonymity) and its columns and rows as the gateway
    counts them (``measured``); a table that passes is kept in the ledger for later differencing. Fails closed on an
    internal error."""
    checked = [p for p in approval.privacy_protocol if isinstance(p, PAYLOAD_KINDS)]
    manifest = manifest or {}
    dataset = getattr(decision, "dataset", None) or (
        manifest.get("dataset") if isinstance(manifest.get("dataset"), str) else None)
    context = ReleaseContext(recipient=getattr(decision, "holder", None), ledger=ledger,
                             dataset=getattr(decision, "ledger_dataset", None) or dataset,
                             approval=getattr(decision, "approval_id", None), subjects=tuple(approval.data_subjects),
                             record_keys=record_keys(ledger, dataset, approval))
    too_large = body_too_large(approval, manifest, body)
    if too_large is not None:
        return [too_large]    # larger than the approval can need: withheld unread
    try:
        problems = measured.response_problems(approval, manifest, body, content_type) \
            + check_transfer(checked, manifest, body, approved_columns=approval.data_items, context=context) \
            + attestation.response_check(approval.privacy_protocol, manifest, body) \
            + tre_outputs.response_check(approval.privacy_protocol, manifest, body)
        return problems or remember_output(checked, context, body)
    except Exception:  # never let an unchecked payload out
        log.exception("internal error while checking a response payload")
        return [Problem("verifier.internal_error", "The response could not be checked, so it is withheld.")]


def output_checked(approval: models.DataSharingApproval | None) -> bool:
    """Whether a response passing ``check_response`` passed disclosure checks (an output-checking receipt says
    which): not when only its columns and rows were counted."""
    return approval is not None and any(isinstance(p, PAYLOAD_KINDS) for p in approval.privacy_protocol)


def output_check_claims(decision, body: bytes) -> dict:
    """What an output-checking receipt says: the SHA-256 of the bytes released, the approval and recipient, and the
    checks they passed (the protocol kinds checked on the payload), signed by the gateway's receipt key."""
    import hashlib
    kinds = sorted({p.kind for p in decision.approval.privacy_protocol if isinstance(p, PAYLOAD_KINDS)})
    return {"outputCheck": "pass", "outputSha256": hashlib.sha256(body).hexdigest(), "checks": kinds,
            "approval": decision.approval_id, "holder": decision.holder, "url": decision.url,
            "checkedAt": decision.decided_at.isoformat().replace("+00:00", "Z")}
