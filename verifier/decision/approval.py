"""Stage 3, the approval: which approvals of the presentation cover the dataset (``candidates``), and for one of
them, that it is valid and that its discloser is the dataset's controller (``check_approval``). Who issued it is
the delegation stage's question."""
from __future__ import annotations

from schemas.vocab import expand

from ..results import Problem
from .context import APPROVAL, Attempt, Cred, DecisionContext, state_code


def candidates(ctx: DecisionContext) -> tuple[list[Cred], list[Problem]]:
    """The approvals that cover the transfer's dataset (sets ``ctx.dataset``), or the problems that leave none."""
    request = ctx.request
    manifest = request.manifest
    if manifest is None:
        return [], [Problem("manifest.missing", "The request carries no transfer manifest "
                            "(Cead-Transfer-Manifest), so it cannot be checked against an approval.")]
    problems: list[Problem] = []
    dataset = manifest.get("dataset")
    dataset = expand(dataset) if isinstance(dataset, str) else dataset
    if request.dataset is not None:
        if dataset is not None and dataset != request.dataset:
            problems.append(Problem("transfer.dataset_mismatch", f"The manifest names dataset {dataset}, but this "
                                    f"endpoint serves {request.dataset}."))
        dataset = request.dataset
    if not isinstance(dataset, str) or not dataset:
        return [], [*problems, Problem("manifest.invalid", "The transfer manifest names no dataset.")]
    ctx.dataset = dataset
    approvals = ctx.credentials_of(APPROVAL)
    if not approvals:
        return [], [*problems, Problem("approval.missing", f"The presentation carries no {APPROVAL}.")]
    found = [c for c in approvals if ctx.covers(c.model.datasets, dataset)]
    if not found:
        return [], [*problems, Problem("transfer.dataset_not_approved", f"No approval in the presentation covers "
                                       f"dataset {dataset}.", {"dataset": dataset})]
    return found, problems


def check_approval(attempt: Attempt) -> list[Problem]:
    """The approval is valid (proof, dates, status) and disclosed by the dataset's controller."""
    approval, ctx = attempt.approval, attempt.ctx
    attempt.rely_on(approval)
    problems: list[Problem] = []
    if not approval.result.verified:
        problems.append(Problem(state_code(approval, "approval"), "The approval is not valid: "
                                + "; ".join(p.message for p in approval.result.problems)))
    dataset = ctx.dataset
    attempt.controller = controller = ctx.policy.controller_of(dataset)
    if controller is None:
        problems.append(Problem("approval.controller_unknown", f"The trust policy names no controller for dataset "
                                f"{dataset}.", {"dataset": dataset}))
    elif attempt.model.discloser != controller:
        problems.append(Problem("approval.discloser_not_controller", f"The approval's discloser "
                                f"{attempt.model.discloser} is not the controller {controller} of {dataset}."))
    return problems
