"""Stage 6, provenance of a derived dataset: every upstream approval the approval names is in the presentation,
valid, issued by (or through a delegation chain from) its own dataset's controller, co-signed as required; and the
derivation rules hold, among them that the discloser received every upstream approval's data (as a recipient or
processor)."""
from __future__ import annotations

from schemas import models

from ..results import Problem
from ..scope import derived_within
from .context import APPROVAL, Attempt, state_code
from .delegation import chain, co_signers

PROVENANCE_CODES = {
    "discloser": "provenance.discloser_not_upstream_recipient",
}


def check_provenance(attempt: Attempt) -> list[Problem]:
    ctx, model = attempt.ctx, attempt.model
    if not model.upstream:
        return []
    problems: list[Problem] = []
    approvals = ctx.credentials_of(APPROVAL)
    upstream: list[models.DataSharingApproval] = []
    for ref in model.upstream:
        found = next((c for c in approvals if c.matches(ref)), None)
        if found is None:
            problems.append(Problem("provenance.upstream_missing", f"The upstream approval {ref.get('id')} is not in "
                                    "the presentation.", {"ref": ref}))
            continue
        attempt.rely_on(found)
        if not found.result.verified:
            problems.append(Problem(state_code(found, "provenance.upstream"), f"The upstream approval {found.id} is "
                                    "not valid.", {"ref": ref}))
        controller = next(filter(None, (ctx.policy.controller_of(ds) for ds in found.model.datasets)), None)
        if controller is None:
            problems.append(Problem("provenance.controller_unknown", f"The trust policy names no controller for the "
                                    f"datasets of the upstream approval {found.id}.", {"ref": ref}))
        links = chain(ctx, found, controller, attempt.relied_on, problems) \
            if controller is not None and found.issuer != controller else []
        problems += co_signers(found, links)
        upstream.append(found.model)
    if len(upstream) == len(model.upstream):
        for v in derived_within(model, upstream, vocabulary=ctx.vocabulary):
            problems.append(Problem(PROVENANCE_CODES.get(v.dimension, f"provenance.{v.dimension}"),
                                    f"{v.dimension}: {v.message}.", {"offending": list(v.offending)}))
    return problems
