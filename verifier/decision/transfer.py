"""Stage 5, the transfer lies within the approval: dataset, columns, purpose, recipient, volume and the cadence
window; the data go to the holder."""
from __future__ import annotations

from datetime import datetime, timedelta

from schemas import models
from schemas.vocab import RepeatingInterval, duration_seconds

from ..results import Problem
from ..scope import transfer_within
from . import limits
from .delegation import scope_of
from .context import Attempt

TRANSFER_CODES = {
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


def check_transfer(attempt: Attempt) -> list[Problem]:
    """The manifest within the approval, now within its cadence, and no recipient but the holder."""
    ctx, model = attempt.ctx, attempt.model
    manifest = ctx.request.manifest or {}
    invalid = limits.manifest_problems(manifest)     # too many columns, a rowCount that is no count
    if any(p.code == "transfer.too_many_columns" for p in invalid):
        return invalid                               # not compared column by column
    problems = invalid + [Problem(TRANSFER_CODES.get(v.dimension, f"transfer.{v.dimension}"),
                                  f"{v.dimension}: {v.message}.", {"offending": list(v.offending)})
                          for v in transfer_within(manifest, model, at=ctx.now, vocabulary=ctx.vocabulary,
                                                   approval_scope=scope_of(ctx, attempt.approval))
                          if not (v.dimension == "rowCount" and invalid)]
    problems += cadence(model, ctx.now)
    # The data go to the holder: a manifest naming someone else is refused (and the protocol stage checks the
    # output party and learners against the holder even when the manifest names no recipient).
    recipient = manifest.get("recipient")
    if recipient is not None and recipient != attempt.holder:
        problems.append(Problem("transfer.recipient_mismatch", f"The manifest names the recipient "
                                f"{str(recipient)[:120]}, but the presentation was made by {attempt.holder}.",
                                {"recipient": str(recipient)[:200], "holder": attempt.holder}))
    return problems


def cadence(model: models.DataSharingApproval, now: datetime) -> list[Problem]:
    """The transfer happens inside the approval's cadence: after its start and before its last repetition."""
    interval = RepeatingInterval.parse(model.cadence)
    end = None if interval.repetitions is None else \
        interval.start + timedelta(seconds=duration_seconds(interval.period) * interval.repetitions)
    if now < interval.start or (end is not None and now >= end):
        return [Problem("transfer.outside_cadence", f"The approval's cadence {model.cadence} does not cover "
                        f"{now.isoformat()}.", {"cadence": model.cadence})]
    return []
