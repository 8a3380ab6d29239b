"""Stage 1, the presentation: its proof by the holder, bound to this request (nonce/challenge = the request
binding), for this audience, short-lived and not seen before; then each credential it carries (proof against
DID-resolved keys, validity period, schema and status)."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

from schemas import models
from schemas.values import as_list

from ..credential import unwrap_enveloped
from ..results import CeadError, Problem, VerificationResult
from .context import Cred, DecisionContext, jwt_claims, utc

# Verifier codes for the presentation, as the decision names them.
PRESENTATION_CODES = {
    "presentation.nonce_mismatch": "presentation.binding_mismatch",
    "proof.challenge_mismatch": "presentation.binding_mismatch",
    "proof.domain_mismatch": "presentation.audience_mismatch",
    "proof.expired": "presentation.expired",
}


def check_presentation(ctx: DecisionContext, presentation: dict | str) -> list[Problem]:
    """The presentation's own problems (one per code). When there are none, ``ctx.holder``, ``ctx.creds`` and
    ``ctx.replay_id`` are set; when there are some, nothing in it can be relied on and the decision stops."""
    vp = ctx.verifier.verify_presentation(presentation, challenge=ctx.request.binding, now=ctx.now)
    ctx.creds = credentials(vp, getattr(ctx.verifier, "models", None))
    own = [Problem(PRESENTATION_CODES.get(p.code, p.code), p.message, p.detail)
           for p in vp.problems if p.code != "presentation.credential_invalid"]
    own += presentation_claims(ctx, presentation, vp)
    if own:
        first: dict[str, Problem] = {}
        for problem in own:
            first.setdefault(problem.code, problem)  # one reason per code
        return list(first.values())
    ctx.holder = vp.issuer
    return []


def check_credentials(ctx: DecisionContext) -> list[Problem]:
    """Every problem of every credential in the presentation, naming the credential."""
    problems: list[Problem] = []
    for cred in ctx.creds:
        for problem in cred.result.problems:
            problems.append(Problem(problem.code, problem.message,
                                    {**problem.detail, "credential": cred.id or cred.index}))
        if cred.model_problem:
            problems.append(cred.model_problem)
    return problems


def credentials(vp: VerificationResult, model_cache=None) -> list[Cred]:
    """The presentation's credentials with their verification results and Cead models (a model read from a
    verified credential is memoised in ``model_cache`` by the credential's exact digest)."""
    document = vp.document if isinstance(vp.document, dict) else {}
    entries = as_list(document.get("verifiableCredential"))
    return [credential(index, entry, result, model_cache)
            for index, (entry, result) in enumerate(zip(entries, vp.credentials))]


def credential(index: int, entry: dict | str, result: VerificationResult, model_cache=None) -> Cred:
    """One credential (as signed: a Data Integrity document, a vc+jwt or an EnvelopedVerifiableCredential) with
    its verification result, read as its Cead model when it has one (``cred.model_problem`` when it cannot be)."""
    raw = unwrap_enveloped(entry)
    try:
        digest = result.digest or models.credential_digest(raw)   # digested once, by the verifier
    except CeadError as exc:
        digest = f"unreadable-{index}"
        result.add(exc.problem)
    cred = Cred(index, raw, digest, result)
    model_cls = models.model_for(cred.document)
    if model_cls is not None:
        try:
            if model_cache is not None and result.verified and result.digest:
                cred.model = model_cache.model(result.digest, cred.document, model_cls.from_credential)
            else:
                cred.model = model_cls.from_credential(cred.document)
        except CeadError as exc:
            cred.model_problem = Problem(exc.code, exc.message, {"credential": cred.id or index})
    return cred


def presentation_claims(ctx: DecisionContext, presentation: dict | str, vp: VerificationResult) -> list[Problem]:
    """Audience, lifetime and replay: checks of the presentation beyond its proof and binding."""
    problems: list[Problem] = []
    policy, now = ctx.policy, ctx.now
    skew = timedelta(seconds=policy.clock_skew)
    if isinstance(presentation, str):
        # the claims the verifier read from this very token (its signature checked), else read them again
        claims = vp.claims if vp.claims is not None and vp.format == "jwt" else jwt_claims(presentation)
        audiences = as_list(claims.get("aud"))
        ident = claims.get("jti")
        try:
            issued = datetime.fromtimestamp(float(claims["iat"]), timezone.utc)
            expires = datetime.fromtimestamp(float(claims["exp"]), timezone.utc)
        except (KeyError, TypeError, ValueError, OverflowError):
            issued = expires = None
    else:
        proofs = [p for p in as_list(presentation.get("proof")) if isinstance(p, dict)]
        proof = next((p for p in proofs if p.get("verificationMethod") == vp.verification_method), {})
        audiences = as_list(proof.get("domain"))
        ident = proof.get("proofValue")
        try:
            issued = utc(datetime.fromisoformat(proof["created"]))
            expires = utc(datetime.fromisoformat(proof["expires"]))
        except (KeyError, TypeError, ValueError):
            issued = expires = None
    accepted = policy.audience or [ctx.request.origin]
    if not any(a in accepted for a in audiences):
        problems.append(Problem("presentation.audience_mismatch",
                                f"The presentation was made for {audiences or 'no audience'}, not for "
                                f"{' or '.join(accepted)}.", {"audience": audiences[:5]}))
    if issued is None or expires is None:
        problems.append(Problem("presentation.lifetime_invalid",
                                "The presentation must state when it was made and when it expires "
                                "(JWT iat and exp; proof created and expires)."))
    else:
        max_age = timedelta(seconds=policy.presentation_max_age)
        if expires - issued > max_age:
            problems.append(Problem("presentation.lifetime_invalid",
                                    f"The presentation lives {int((expires - issued).total_seconds())} s; at "
                                    f"most {policy.presentation_max_age} s is accepted."))
        if issued > now + skew:
            problems.append(Problem("presentation.not_yet_valid", "The presentation was made in the future."))
        if now - skew > expires or now - issued > max_age + skew:
            problems.append(Problem("presentation.expired", "The presentation has expired."))
    if not isinstance(ident, str) or not ident:
        problems.append(Problem("presentation.id_missing",
                                "The presentation has no jti (JWT) or proofValue to guard against replay."))
    elif not problems and not any(p.code != "presentation.credential_invalid" for p in vp.problems):
        ctx.replay_id = hashlib.sha256(ident.encode()).hexdigest()
        ctx.replay_expires = expires
        replay = ctx.replay.seen(ctx.replay_id)     # recorded by the decider, once the transfer is allowed
        if replay:
            problems.append(replay)
    return problems
