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

    rulebook, authorities = ctx.policy.rulebook(), ctx.policy.lawful.competent_authorities
    cache, voc = getattr(ctx.verifier, "models", None), ctx.vocabulary

    def memo(complete: bool, rules):
        """The rulebook's answer for these exact credentials, kept beside their models: a function of the
        approval's bytes (its model, issuer and co-signers), of the upstream approvals' bytes (the digests their
        references pin), of the rulebook and of the vocabulary (its version, legal bases, authorities)."""
        if cache is None or getattr(voc, "version", None) is None or not (cred.result.verified and cred.result.digest):
            return rules()
        upstream = tuple(r.digest for r in cred.model.upstream_) if complete else None
        key = repr(("lawful", cred.result.digest, upstream, voc.version, sorted(voc.competent_authorities),
                    sorted(voc.legal_bases.items()), sorted(authorities or ())))
        found = cache.model(key, None, lambda _: (rulebook, tuple(rules())))
        if found[0] is not rulebook:   # another rulebook (the entry holds its own, so ids are never reused)
            return rules()
        return found[1]

    return transfer_problems(cred.model, signers=[cred.issuer, *cred.result.co_signers], issuer=cred.issuer,
                             lookup=lookup, rulebook=rulebook, vocabulary=voc, now=ctx.now,
                             competent_authorities=authorities, memo=memo)
