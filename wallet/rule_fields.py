"""Lawful-basis rule refusals beside the form field they concern.

The rulebook (``verifier.lawful``, the engine the issuer's guard rail ``issuer.lawful`` and every gateway run)
answers with rule ids; a form shows each unmet rule beside the field that would fix it, with its plain words, what
would satisfy it and its legislation.gov.uk citation, and keeps what was typed.

- :func:`request_checks`: the analyst's request, checked before it is sent, as the approval it asks for would be
  (the requester's own lawful basis, regime and purpose; the data holder's part is the approver's to give, so only
  the rules about the requester are kept).
- :func:`beside`: results (or the problems of a guard-rail refusal) -> ``{field: [message, ...]}`` for a form,
  through :data:`WIZARD_FIELDS` or :data:`APPROVAL_FIELDS`.
"""
from __future__ import annotations

from typing import Any, Iterable
from urllib.parse import urlsplit

from schemas.words import law_words

# rule id -> the wizard's field that would fix it (anything else goes beside the lawful basis)
WIZARD_FIELDS = {
    "lawful.basis_unknown": "legal_basis", "lawful.basis_repealed": "legal_basis",
    "lawful.article6_missing": "legal_basis", "lawful.legitimate_interests_public_authority": "legal_basis",
    "lawful.gateway_needs_basis": "legal_basis",
    "lawful.special_category_condition_missing": "condition", "lawful.schedule1_condition_missing": "condition",
    "lawful.criminal_offence_condition_missing": "condition",
    "lawful.part3_not_competent_authority": "regime", "lawful.part3_principle_missing": "legal_basis",
    "lawful.part3_purpose_not_law_enforcement": "purpose", "lawful.part3_other_purpose_not_authorised": "purpose",
    "lawful.part3_sensitive_condition_missing": "condition",
}
# rule id -> the IAO's approval form field (wallet.forms.ApproveForm)
APPROVAL_FIELDS = {
    "lawful.basis_unknown": "controller_basis", "lawful.basis_repealed": "controller_basis",
    "lawful.article6_missing": "controller_basis", "lawful.legitimate_interests_public_authority": "controller_basis",
    "lawful.gateway_needs_basis": "controller_basis", "lawful.part3_not_competent_authority": "controller_basis",
    "lawful.part3_principle_missing": "controller_basis", "lawful.part3_purpose_not_law_enforcement":
    "controller_basis", "lawful.part3_other_purpose_not_authorised": "controller_basis",
    "lawful.special_category_condition_missing": "controller_condition",
    "lawful.schedule1_condition_missing": "controller_condition",
    "lawful.criminal_offence_condition_missing": "controller_condition",
    "lawful.part3_sensitive_condition_missing": "controller_condition",
    "lawful.sensitivity_below_categories": "sensitivity", "lawful.onward_sharing_prohibited": "onward_sharing",
    "lawful.onward_sharing_needs_cosignature": "co_signers", "lawful.confidentiality_not_met": "data_categories",
}
GENERIC_CATEGORY = "https://w3id.org/dpv/pd#Identifying"     # personal data, nothing special said of it


def holder_did(url: str) -> str:
    """The did:web a node at ``url`` has (Cead nodes publish did:web at their host): for the rules only."""
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        netloc = ""
    return "did:web:" + (netloc.replace(":", "%3A") or "unnamed-holder")


def request_checks(body: dict, holder: str, *, vocabulary=None) -> list:
    """The unmet rules about the requester for a request ``body`` (as sent: requester, datasets, dataItems,
    purposes, lawfulBasis, cadence, agreement), as the approval it asks for would be checked."""
    from verifier import lawful
    basis = body.get("lawfulBasis") or {}
    requester = body.get("requester")
    provisional = {
        "agreement": body.get("agreement") or {"id": "urn:cead:draft", "digest": "sha256-" + "A" * 43},
        "discloser": holder, "recipients": [requester], "datasets": body.get("datasets") or ["urn:cead:draft"],
        "dataItems": body.get("dataItems") or ["draft"], "dataCategories": [GENERIC_CATEGORY],
        "purposes": body.get("purposes"), "lawfulBases": [basis, {**basis, "party": holder}],
        "dpia": {"outcome": "LowRisk"}, "sensitivity": "Personal", "cadence": body.get("cadence"),
        "retention": {"receivedData": "P1Y"}, "onwardSharing": "Prohibited",
        "notBefore": "2026-01-01T00:00:00Z", "notAfter": "2027-01-01T00:00:00Z"}
    results = lawful.evaluate(provisional, vocabulary=vocabulary)
    return [r for r in results if r.failed and r.party in (requester, None)]


def message(rule: Any) -> str:
    """One refusal in words, with what would satisfy it and the citation."""
    get = (lambda k: rule.get(k)) if isinstance(rule, dict) else (lambda k: getattr(rule, k, None))
    return (f"{get('title')}: {get('finding') or ''} What would satisfy it: {get('satisfy') or 'see the rule'}. "
            f"The law: {law_words(get('citation'))}.").replace("..", ".")


def beside(results: Iterable[Any], fields: dict[str, str], default: str) -> dict[str, list[str]]:
    """``{field: [message, ...]}``: each result (a ``RuleResult`` or a problem dict with ``code``/``rule``,
    ``title``, ``finding``, ``satisfy``, ``citation``) beside the field its rule concerns."""
    out: dict[str, list[str]] = {}
    for r in results:
        if isinstance(r, dict):
            detail = r.get("detail") if isinstance(r.get("detail"), dict) else {}
            r = {**detail, **{k: v for k, v in r.items() if k != "detail"}}
            rule = r.get("rule") or r.get("code")
            text = message(r) if r.get("title") else str(r.get("message"))
        else:
            rule, text = r.rule, message(r)
        out.setdefault(fields.get(str(rule), default), []).append(text)
    return out
