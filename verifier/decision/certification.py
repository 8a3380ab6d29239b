"""Stage 4, the recipient: the holder is a recipient the approval names and holds every certification the
approval and the trust policy require, issued by a body the trust policy trusts for that scheme, valid today."""
from __future__ import annotations

from ..results import Problem
from .context import CERTIFICATION, Attempt, state_code


def check_recipient(attempt: Attempt) -> list[Problem]:
    """The holder is an approved recipient and shows the certifications required."""
    holder = attempt.holder
    problems: list[Problem] = []
    if holder not in attempt.model.recipients:
        problems.append(Problem("holder.not_recipient", f"The presenter {holder} is not a recipient named in the "
                                "approval.", {"holder": holder}))
    return problems + check_certifications(attempt)


def check_certifications(attempt: Attempt) -> list[Problem]:
    ctx, model, holder = attempt.ctx, attempt.model, attempt.holder
    policy, vocabulary = ctx.policy, ctx.vocabulary
    required = list(dict.fromkeys([*model.required_certifications, *policy.required_certifications]))
    today = ctx.now.date()
    problems: list[Problem] = []
    certifications = ctx.credentials_of(CERTIFICATION)
    for scheme in required:
        held = [c for c in certifications if c.model.id == holder
                and (c.model.scheme == scheme or vocabulary.within(c.model.scheme, scheme))]
        if not held:
            problems.append(Problem("certification.missing", f"The recipient shows no certification for {scheme}.",
                                    {"scheme": scheme}))
            continue
        failures: list[Problem] = []
        for cert in held:
            trusted = set(policy.trusted_bodies(scheme)) | set(policy.trusted_bodies(cert.model.scheme))
            where = {"scheme": scheme, "credential": cert.id}
            if cert.issuer not in trusted:
                failures.append(Problem("certification.untrusted_issuer", f"The certification {cert.id} for "
                                        f"{scheme} was issued by {cert.issuer}, which the trust policy does not "
                                        "trust for that scheme.", where))
            elif not cert.result.verified:
                failures.append(Problem(state_code(cert, "certification"), f"The certification {cert.id} is not "
                                        "valid: " + "; ".join(p.message for p in cert.result.problems), where))
            elif cert.model.status != "Certified":
                failures.append(Problem("certification.withdrawn", f"The certification {cert.id} has status "
                                        f"{cert.model.status}.", where))
            elif not cert.model.valid_on(today):
                failures.append(Problem("certification.expired", f"The certification {cert.id} is valid "
                                        f"{cert.model.issue_date} to {cert.model.expiry_date}.", where))
            else:
                attempt.rely_on(cert)
                failures = []
                break
        problems += failures
    return problems
