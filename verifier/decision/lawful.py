"""Stage 7, the law (issue 13): the approval, and every approval upstream of it over every hop, against the
lawful-basis rulebook the trust policy pins (``verifier.lawful``). A denial names the rule (its code) and its
legislation.gov.uk citation (``detail.citation``)."""
from __future__ import annotations

from ..lawful.gateway import transfer_problems
from ..lawful.provenance import Hop
from ..results import Problem
from .context import APPROVAL, Attempt, state_code


def check_lawful(attempt: Attempt) -> list[Problem]:
    ctx, cred = attempt.ctx, attempt.approval
    approvals = ctx.credentials_of(APPROVAL)

    def lookup(ref: dict) -> Hop | None:
        found = next((c for c in approvals if c.matches(ref)), None)
        if found is None:
            return None
        state = None if found.result.verified else state_code(found, "x")[2:]
        return Hop(found.id or "", found.model, state, [found.issuer, *found.result.co_signers], found.issuer)

    return transfer_problems(cred.model, signers=[cred.issuer, *cred.result.co_signers], issuer=cred.issuer,
                             lookup=lookup, rulebook=ctx.policy.rulebook(), vocabulary=ctx.vocabulary, now=ctx.now,
                             competent_authorities=ctx.policy.lawful.competent_authorities)
