"""The issuer's lawful-basis guard rail: nothing the rulebook says is unlawful is signed.

``check_lawful(node, credential, options)`` runs ``verifier.lawful`` (the same engine the approval form and the
gateway run) on an approval before it is signed, with the node's own vocabulary (its extra legal-basis terms and
competent authorities). Rules that need the upstream approvals (onward sharing, new purposes, lineage) are checked
when the request gives them in ``options.upstream`` (the signed upstream approvals; each must match a reference of
the approval by id and digest); the gateway checks them on every transfer in any case.
"""
from __future__ import annotations

from typing import Any

from schemas.models import DataSharingApproval, credential_digest
from schemas.values import types_of
from verifier import lawful
from verifier.credential import unwrap_enveloped
from verifier.jose import to_document, unverified_claims
from verifier.results import CeadError

APPROVAL = DataSharingApproval.credential_type


def _upstream(model: DataSharingApproval, given: Any) -> list[DataSharingApproval] | None:
    if given is None:
        return None
    if not isinstance(given, list):
        raise CeadError("options.invalid", "options.upstream must be a list of the upstream approvals (signed "
                        "credentials).", field="upstream")
    refs = {(r.id, r.digest): r for r in model.upstream_}
    found: dict[tuple[str, str], DataSharingApproval] = {}
    for item in given:
        try:
            raw = unwrap_enveloped(item)
            digest = credential_digest(raw)
            document = to_document(unverified_claims(raw), "vc") if isinstance(raw, str) else raw
            key = (document.get("id"), digest)
            up = DataSharingApproval.from_credential(document)
        except CeadError as exc:
            raise CeadError("options.invalid", f"options.upstream holds something that is not an approval: "
                            f"{exc.message}", field="upstream") from None
        if key not in refs:
            raise CeadError("options.invalid", f"options.upstream: {key[0]} (digest {digest}) is not one of the "
                            "approval's upstream references.", field="upstream")
        found[key] = up
    if len(found) != len(refs):
        return None   # not all given: the rules that need them wait for the gateway
    return [found[(r.id, r.digest)] for r in model.upstream_]


def check_lawful(node, credential: dict, options: dict) -> None:
    """Raise the first unmet rule (code: its rule id) with every unmet rule in its message and detail."""
    if APPROVAL not in types_of(credential):
        return
    model = DataSharingApproval.from_credential(credential)
    vocabulary = getattr(node, "vocabulary", None)
    issuer = credential.get("issuer")
    issuer = issuer.get("id") if isinstance(issuer, dict) else issuer
    problems = lawful.check(model, vocabulary=vocabulary, upstream=_upstream(model, options.get("upstream")),
                            issuer=issuer)
    if problems:
        first = problems[0]
        raise CeadError(first.code, "Cead will not sign this approval: the law would not allow it. "
                        + " ".join(p.message for p in problems),
                        rule=first.detail.get("rule"), citation=first.detail.get("citation"),
                        satisfy=first.detail.get("satisfy"), problems=[p.to_dict() for p in problems])
