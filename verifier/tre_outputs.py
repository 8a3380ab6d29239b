"""Outputs leaving a trusted research environment: under a ``treOnly`` approval the data go only to the TRE itself
(``verifier.protocols``: ``protocol.tre_required``, ``protocol.tre_not_accredited``); a recipient that is not the
TRE may receive only an *output* of the TRE that passed output checking there, shown by the TRE's output-checking
receipt (``verifier.decision.protocol.output_check_claims``, a compact JWS signed by the TRE gateway's receipt
key, whose ``kid`` is a DID URL of the TRE).

``check_output_receipt`` is the stateless check: the receipt verifies against its signer's DID document; the
signer is the TRE (one of the approval's ``environments`` when it lists them, and accredited under one of its
``accreditations``, shown by a certification credential presented with the request); it says ``outputCheck:
pass`` after at least one disclosure check; and it covers exactly the bytes being released. Every failure is a
``Problem`` with a ``protocol.tre_output_*`` code (docs/privacy-protocols.md).
"""
from __future__ import annotations

import hashlib
import hmac
from typing import Any, Callable, Iterable

from schemas.models import TreOnly

from .results import CeadError, Problem

MANIFEST_KEY = "outputCheckReceipt"


def _problem(code: str, message: str, **detail: Any) -> Problem:
    return Problem(code, message, detail)


def check_output_receipt(tre: TreOnly, receipt: Any, output: bytes | None, *, resolver,
                         accredited: Callable[[str], set[str]]) -> list[Problem]:
    """Problems with releasing ``output`` to a recipient that is not the TRE, on the evidence of ``receipt`` (the
    manifest's ``outputCheckReceipt``). ``accredited(did)`` gives the schemes among the approval's accreditations
    that ``did`` showed a valid certification for (from a body the trust policy trusts). Empty list: release."""
    from .did import split_did_url
    from .receipts import receipt_header, verify_receipt
    if not tre.output_checking:
        return [_problem("protocol.tre_required", "The approval lets the data go only to the TRE itself, and no "
                         "outputs out of it (outputChecking false).")]
    if not isinstance(receipt, str) or not receipt:
        return [_problem("protocol.tre_output_receipt_missing", "The recipient is not the TRE: only an output the "
                         "TRE checked may go to it, with the TRE's output-checking receipt (manifest "
                         f"{MANIFEST_KEY}).")]
    try:
        kid = receipt_header(receipt).get("kid")
        if not isinstance(kid, str) or not kid.startswith("did:") or "#" not in kid:
            raise CeadError("receipt.signer_unknown", "the receipt's signer is not named by a DID URL (kid)")
        signer, _ = split_did_url(kid)
        _, public = resolver.public_key_for(kid, "assertionMethod")
        claims = verify_receipt(receipt, public)
    except CeadError as exc:
        return [_problem("protocol.tre_output_receipt_invalid", f"The output-checking receipt does not verify: "
                         f"{exc.problem.message}")]
    out: list[Problem] = []
    if tre.environments is not None and signer not in tre.environments:
        out.append(_problem("protocol.tre_output_receipt_untrusted", f"The output-checking receipt is signed by "
                            f"{signer}, not by one of the TREs the approval lists.", signer=signer))
    elif not accredited(signer) & set(tre.accreditation_schemes):
        out.append(_problem("protocol.tre_output_receipt_untrusted", f"The output-checking receipt is signed by "
                            f"{signer}, which presented no valid accreditation as a TRE (include the TRE's "
                            "accreditation credential in the presentation).", signer=signer))
    if claims.get("outputCheck") != "pass" or not claims.get("checks"):
        out.append(_problem("protocol.tre_output_receipt_invalid", "The output-checking receipt does not say the "
                            "output passed at least one disclosure check (outputCheck pass, checks)."))
    if output is None:
        out.append(_problem("protocol.tre_output_missing", "The output the receipt covers is not in this request, "
                            "so it cannot be compared with the receipt (send it as the body of a push, or check "
                            "the response at the gateway)."))
    else:
        released = hashlib.sha256(output).hexdigest()
        if not hmac.compare_digest(str(claims.get("outputSha256")), released):
            out.append(_problem("protocol.tre_output_receipt_mismatch", "The output-checking receipt is for other "
                                "bytes than those being released.", checked=str(claims.get("outputSha256"))[:80],
                                released=released))
    return out


def response_check(approved: Iterable[Any], manifest: dict | None, body: bytes) -> list[Problem]:
    """A pull's response, when the receipt was checked at decision time without the bytes: they must be the ones
    the receipt covers (its signature was verified then; the manifest is bound to the request)."""
    receipt = (manifest or {}).get(MANIFEST_KEY)
    if not isinstance(receipt, str) or not any(isinstance(p, TreOnly) for p in approved):
        return []
    try:
        from .receipts import unverified_receipt_claims   # either form, plain or batched (verifier.receipt_batch)
        checked = unverified_receipt_claims(receipt).get("outputSha256")
    except Exception:  # noqa: BLE001  an unreadable receipt: withheld
        return [_problem("protocol.tre_output_receipt_invalid", "The output-checking receipt cannot be read.")]
    if isinstance(checked, str) and hmac.compare_digest(checked, hashlib.sha256(body).hexdigest()):
        return []
    return [_problem("protocol.tre_output_receipt_mismatch", "The response is not the output the TRE's "
                     "output-checking receipt covers.")]
