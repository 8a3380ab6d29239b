"""Stage 5b, the privacy protocol's transfer-time checks (``verifier.protocols``): minimum cell counts,
suppression, the output party... on the table a push sends; a pull's table comes back in the response and is
checked there (``check_response``) by the middleware, or cannot be checked (nginx, Envoy: a threshold then has no
payload and denies)."""
from __future__ import annotations

import logging

from schemas import models

from .. import attestation
from ..protocols import check_transfer
from ..results import Problem
from .context import Attempt

log = logging.getLogger(__name__)


def check_protocol(attempt: Attempt) -> list[Problem]:
    from .limits import pushed_table_too_large
    if pushed_table_too_large(attempt):
        return []   # refused unread by the limits stage (transfer.body_too_large)
    request, model = attempt.ctx.request, attempt.model
    manifest = request.manifest or {}
    protocol = list(model.privacy_protocol)
    # A push's table is its body. A body the client sends with a pull is never taken for the table (a decoy).
    payload = bytes(request.body) if request.is_push and request.body else None
    if not request.is_push and request.response_checked:
        protocol = [p for p in protocol if not isinstance(p, models.Threshold)]  # checked on the response
    problems = check_transfer(protocol, {**manifest, "recipient": attempt.holder}, payload,
                              approved_columns=model.data_items)
    # the run attestation of a PSI cardinality / secure aggregation (docs/computations.md)
    problems += attestation.transfer_check(
        model.privacy_protocol, manifest, payload, [c.raw for c in attempt.ctx.creds], verifier=attempt.ctx.verifier,
        required=attempt.ctx.policy.run_attestations == "required",
        output_later=not request.is_push and request.response_checked, now=attempt.ctx.now)
    return problems


def response_check_needed(approval: models.DataSharingApproval | None, allowed: bool, push: bool = False,
                          manifest: dict | None = None) -> bool:
    """True when the approval's protocol constrains a table of counts that travels in the response, or the response
    must be the output a run attestation covers: not for a push (its table was the request body, checked when it
    was decided; the response is the app's own)."""
    return allowed and not push and approval is not None and (any(
        isinstance(p, models.Threshold) for p in approval.privacy_protocol)
        or attestation.response_check_needed(approval.privacy_protocol, manifest))


def check_response(approval: models.DataSharingApproval, manifest: dict | None, body: bytes) -> list[Problem]:
    """An outgoing payload against the approval's threshold rules (fails closed on an internal error)."""
    thresholds = [p for p in approval.privacy_protocol if isinstance(p, models.Threshold)]
    from .limits import body_too_large
    too_large = body_too_large(approval, manifest, body)
    if too_large is not None:
        return [too_large]    # larger than the approval can need: withheld unread
    try:
        return check_transfer(thresholds, manifest or {}, body, approved_columns=approval.data_items) \
            + attestation.response_check(approval.privacy_protocol, manifest, body)
    except Exception:  # never let an unchecked payload out
        log.exception("internal error while checking a response payload")
        return [Problem("verifier.internal_error", "The response could not be checked, so it is withheld.")]
