"""Stage 5b, the privacy protocol's transfer-time checks (``verifier.protocols``): minimum cell counts,
suppression, the output party... on the table a push sends; a pull's table comes back in the response and is
checked there (``check_response``) by the middleware, or cannot be checked (nginx, Envoy: a threshold then has no
payload and denies)."""
from __future__ import annotations

import logging

from schemas import models

from ..protocols import check_transfer
from ..results import Problem
from .context import Attempt

log = logging.getLogger(__name__)


def check_protocol(attempt: Attempt) -> list[Problem]:
    request, model = attempt.ctx.request, attempt.model
    manifest = request.manifest or {}
    protocol = list(model.privacy_protocol)
    # A push's table is its body. A body the client sends with a pull is never taken for the table (a decoy).
    payload = bytes(request.body) if request.is_push and request.body else None
    if not request.is_push and request.response_checked:
        protocol = [p for p in protocol if not isinstance(p, models.Threshold)]  # checked on the response
    return check_transfer(protocol, {**manifest, "recipient": attempt.holder}, payload,
                          approved_columns=model.data_items)


def response_check_needed(approval: models.DataSharingApproval | None, allowed: bool, push: bool = False) -> bool:
    """True when the approval's protocol constrains a table of counts that travels in the response: not for a
    push (its table was the request body, checked when it was decided; the response is the app's own)."""
    return allowed and not push and approval is not None and any(
        isinstance(p, models.Threshold) for p in approval.privacy_protocol)


def check_response(approval: models.DataSharingApproval, manifest: dict | None, body: bytes) -> list[Problem]:
    """An outgoing payload against the approval's threshold rules (fails closed on an internal error)."""
    thresholds = [p for p in approval.privacy_protocol if isinstance(p, models.Threshold)]
    try:
        return check_transfer(thresholds, manifest or {}, body, approved_columns=approval.data_items)
    except Exception:  # never let an unchecked payload out
        log.exception("internal error while checking a response payload")
        return [Problem("verifier.internal_error", "The response could not be checked, so it is withheld.")]
