"""The rule engine: does an approval (or a request for one) make legal sense under a rulebook?

``evaluate(approval, rulebook, ...)`` is pure and stateless (no network, no clock): it returns one ``RuleResult``
per rule that applies, per party where the rule is about a party, with the rule's id, its legislation.gov.uk
citation, the plain-English explanation, the outcome (``met``, ``unmet``, ``advice``), what was found and what would
satisfy it. ``check`` turns the unmet results into problems (the code is the rule id); ``explain`` gives the plain
words an approval form renders. The issuer's guard rail, the approval form and the gateway's decision all call
this one engine.

Sensitivity is derived from the data categories (``Vocabulary.implied_sensitivity``); only an anonymising protocol
the gateway checks at transfer (threshold, differential privacy) makes the output no longer personal data, and then
the Art 9, Art 10, confidentiality and onward-sharing rules do not apply to it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from schemas import vocab
from schemas.models import DataSharingApproval
from schemas.vocab import Vocabulary
from schemas.words import law_words

from ..results import CeadError, Problem
from .rulebook import Rulebook, builtin

MET, UNMET, ADVICE = "met", "unmet", "advice"


@dataclass(frozen=True)
class RuleResult:
    rule: str
    title: str
    citation: str
    explanation: str
    satisfy: str
    outcome: str                      # met | unmet | advice
    party: str | None = None
    finding: str = ""                 # what was found, for this approval
    detail: dict = field(default_factory=dict, compare=False)

    @property
    def failed(self) -> bool:
        return self.outcome == UNMET

    def problem(self) -> Problem:
        who = f" ({self.party})" if self.party else ""
        return Problem(self.rule, f"{self.title}{who}: {self.finding} What would satisfy it: {self.satisfy} "
                       f"[{self.citation}]",
                       {"rule": self.rule, "title": self.title, "finding": self.finding, "citation": self.citation,
                        "party": self.party, "satisfy": self.satisfy, **self.detail})

    def to_dict(self) -> dict[str, Any]:
        out = {"rule": self.rule, "title": self.title, "citation": self.citation, "explanation": self.explanation,
               "outcome": self.outcome, "finding": self.finding, "satisfy": self.satisfy}
        if self.party:
            out["party"] = self.party
        return out



def _purposes(iris) -> str:
    """Purposes in a finding, as people read them: each by its label where Cead knows it (else its compact IRI),
    quoted and joined in words, never a Python list."""
    names = [vocab.PURPOSES[p].label if p in vocab.PURPOSES else vocab.compact(p) for p in iris]
    quoted = [f"“{n}”" for n in names]
    if not quoted:                  # (a message built for a rule that is met: never shown)
        return "no purpose"
    if len(quoted) == 1:
        return f"the purpose {quoted[0]}"
    return "the purposes " + ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _are(iris) -> str:
    return "is" if len(iris) == 1 else "are"


def _model(approval: DataSharingApproval | dict) -> DataSharingApproval:
    if isinstance(approval, DataSharingApproval):
        return approval
    if isinstance(approval, dict) and "credentialSubject" in approval:
        return DataSharingApproval.from_credential(approval)
    if isinstance(approval, dict):
        return DataSharingApproval.from_credential({"type": [DataSharingApproval.credential_type],
                                                    "credentialSubject": approval})
    raise CeadError("schema.invalid", "An approval must be a DataSharingApproval or its JSON.")


class _Run:
    def __init__(self, book: Rulebook, out: list[RuleResult]):
        self.book, self.out = book, out

    def add(self, rule_id: str, ok: bool, finding: str = "", party: str | None = None, **detail: Any) -> None:
        rule = self.book.rule(rule_id)
        outcome = MET if ok else (ADVICE if rule.advisory else UNMET)
        self.out.append(RuleResult(rule.id, rule.title, rule.citation, rule.explanation, rule.satisfy, outcome,
                                   party, finding if not ok else "met.", detail))


def anonymised(approval: DataSharingApproval, book: Rulebook) -> bool:
    """The output is protected by an anonymising protocol the gateway checks at transfer."""
    return any(p.kind in book.anonymising_protocols for p in approval.privacy_protocol)


def implied_sensitivity(categories: Iterable[str], vocabulary: Vocabulary | None = None) -> str:
    """The sensitivity the data categories imply (see ``Vocabulary.implied_sensitivity``)."""
    return (vocabulary or vocab.registry()).implied_sensitivity(categories)


def evaluate(approval: DataSharingApproval | dict, rulebook: Rulebook | None = None, *,
             vocabulary: Vocabulary | None = None, upstream: list[DataSharingApproval] | None = None,
             signers: Iterable[str] | None = None, issuer: str | None = None,
             competent_authorities: Iterable[str] = ()) -> list[RuleResult]:
    """Every applicable rule of ``rulebook`` (default: the built-in one) against ``approval``.

    ``vocabulary``: the organisation's (or trust policy's) vocabulary, whose ``legal_bases`` and
    ``competent_authorities`` add to the rulebook's. ``upstream``: the upstream approvals' models, when known (the
    onward-sharing and new-purpose rules need them; without them those rules are not evaluated). ``signers``: DIDs
    known to have signed the approval (issuer and co-signers); ``issuer``: the approval's issuer."""
    book = rulebook or builtin()
    voc = vocabulary or vocab.registry()
    model = _model(approval)
    out: list[RuleResult] = []
    run = _Run(book, out)
    anon = anonymised(model, book)
    categories = list(model.data_categories)
    special = not anon and any(voc.is_special_category(c) for c in categories)
    criminal = not anon and any(voc.is_criminal(c) for c in categories)
    health = not anon and any(voc.is_health(c) for c in categories)
    authorities = book.competent_authorities() | voc.competent_authorities | set(competent_authorities)
    le_purposes = book.law_enforcement_purposes
    non_le = [p for p in model.purposes if not voc.within_any(p, le_purposes)]

    for lb in model.lawful_bases:
        party = lb.party
        kinds: dict[str, list[str]] = {}
        for base in lb.legal_bases:
            repealed = book.repealed(base)
            if repealed is not None:
                run.add("lawful.basis_repealed", False, f"{vocab.compact(base)} is in the {repealed['label']}, "
                        f"which is repealed ({repealed['repealedBy']}).", party, basis=base)
                continue
            term = book.term(base, voc)
            if term is None:
                run.add("lawful.basis_unknown", False, f"{vocab.compact(base)} is not a legal basis this rulebook "
                        f"({book.version}) or your vocabulary knows.", party, basis=base)
                continue
            kinds.setdefault(term["kind"], []).append(base)
        bases = set(lb.legal_bases)
        if lb.regime == "UKGDPR":
            if "article6" in kinds:
                run.add("lawful.article6_missing", True, party=party)
                if "gateway" in kinds:
                    run.add("lawful.gateway_needs_basis", True, party=party)
            elif "gateway" in kinds:
                run.add("lawful.gateway_needs_basis", False, f"{', '.join(vocab.compact(g) for g in kinds['gateway'])} "
                        "is a power to share, cited without any Art 6(1) basis.", party)
            else:
                run.add("lawful.article6_missing", False, "no Art 6(1) basis is cited.", party)
            f_basis = vocab.UK_GDPR + "article/6/1/f"
            if f_basis in bases and book.public_authorities_by_default:
                run.add("lawful.legitimate_interests_public_authority", False, "Art 6(1)(f) is cited by a public "
                        "authority for its tasks.", party)
            elif "article6" in kinds:
                run.add("lawful.legitimate_interests_public_authority", True, party=party)
            if special:
                conditions = kinds.get("article9", [])
                run.add("lawful.special_category_condition_missing", bool(conditions),
                        "the data categories include special category data, but no Art 9(2) condition is cited.",
                        party)
                for condition in conditions:
                    needs = book.term(condition, voc).get("needsOneOf")
                    if needs:
                        run.add("lawful.schedule1_condition_missing", bool(bases & set(needs)),
                                f"{vocab.compact(condition)} needs a DPA 2018 Schedule 1 condition "
                                f"({', '.join(n.rsplit('schedule/1/', 1)[-1] for n in needs[:3])}"
                                f"{', ...' if len(needs) > 3 else ''}), and none is cited.", party,
                                condition=condition)
            if criminal:
                run.add("lawful.criminal_offence_condition_missing", "schedule1" in kinds,
                        "the data categories include criminal offence data, but no Art 10 condition from DPA 2018 "
                        "Schedule 1 is cited.", party)
        else:   # DPA 2018 Part 3
            run.add("lawful.part3_not_competent_authority", party in authorities,
                    f"{party} claims Part 3 but is not a competent authority known to the rulebook or the "
                    "trust policy.", party)
            run.add("lawful.part3_principle_missing", "part3" in kinds, "no DPA 2018 s.35 basis is cited.", party)
            if special:
                run.add("lawful.part3_sensitive_condition_missing", "schedule8" in kinds,
                        "the data include sensitive-processing categories, but no Schedule 8 condition is cited.",
                        party)
            if party == model.discloser:
                if non_le:
                    run.add("lawful.part3_other_purpose_not_authorised", "part3OtherPurpose" in kinds,
                            f"{_purposes(non_le)} {_are(non_le)} not for law enforcement, "
                            "and s.36(4) (authorised by law) is not recorded.", party)
            else:
                run.add("lawful.part3_purpose_not_law_enforcement", not non_le,
                        f"{_purposes(non_le)} {_are(non_le)} not for law enforcement "
                        "(s.31).", party)

    if health:
        met = model.confidentiality is not None
        run.add("lawful.confidentiality_not_met", met, "the data include health or social care information, and "
                "the approval does not record consent or a PBPP approval.", model.discloser)
    implied = voc.implied_sensitivity(categories)
    if not anon:
        run.add("lawful.sensitivity_below_categories",
                vocab.SENSITIVITY.index(model.sensitivity) >= vocab.SENSITIVITY.index(implied),
                f"the label {model.sensitivity} is lower than {implied}, which the data categories imply.",
                implied=implied, declared=model.sensitivity)

    _derived_rules(model, book, voc, run, upstream, anon, signers, issuer)
    return out


def _derived_rules(model: DataSharingApproval, book: Rulebook, voc: Vocabulary, run: _Run,
                   upstream: list[DataSharingApproval] | None, anon: bool, signers: Iterable[str] | None,
                   issuer: str | None) -> None:
    co_signers = set(model.co_signers)
    assessment = model.compatibility_assessment
    if assessment is not None:
        missing = assessment.missing_factors()
        run.add("lawful.compatibility_incomplete", not missing, "the assessment does not record "
                + "; ".join(assessment.FACTORS[m] for m in missing) + ".", model.discloser, missing=missing)
        allowed = {model.discloser, *co_signers, *([issuer] if issuer else [])}
        who = assessment.assessed_by
        ok = who is not None and who not in model.recipients and who in allowed
        run.add("lawful.compatibility_wrong_assessor", ok,
                "the assessment names no assessor." if who is None else f"the assessment was made by {who}, not by "
                "the disclosing controller (or a DPO who signs or co-signs this approval).", model.discloser)
    if model.new_gateway is not None:
        gateway = book.gateways().get(model.new_gateway)
        uncovered = model.purposes if gateway is None else \
            [p for p in model.purposes if not voc.within_any(p, gateway.get("purposes", []))]
        run.add("lawful.new_gateway_not_listed", gateway is not None and not uncovered,
                f"{law_words(model.new_gateway)} is not a statutory gateway in the rulebook." if gateway is None
                else f"{law_words(model.new_gateway)} does not cover "
                     f"{_purposes(uncovered)}.", model.discloser)
    if not model.upstream_:
        return
    if model.derivation is None:
        run.add("lawful.derivation_unrecorded", False, "the derived approval does not record its transformation "
                "and column lineage.", model.discloser)
    else:
        run.add("lawful.derivation_unrecorded", True, party=model.discloser)
    if upstream is None:
        return
    by_id = {u_ref.id: u for u_ref, u in zip(model.upstream_, upstream)} if len(upstream) == len(model.upstream_) \
        else {}
    if model.derivation is not None and model.derivation.lineage:
        bad = []
        for entry in model.derivation.lineage:
            if entry.output not in model.data_items:
                bad.append(f"output {entry.output} is not among dataItems")
            for src in entry.sources:
                up = by_id.get(src.upstream)
                if src.upstream not in {r.id for r in model.upstream_}:
                    bad.append(f"{src.upstream} is not an upstream approval")
                elif up is not None and src.column not in up.data_items:
                    bad.append(f"{src.column} is not a column of {src.upstream}")
        run.add("lawful.lineage_invalid", not bad, "; ".join(bad) + ".", model.discloser)
    signed = set(signers) if signers is not None else None
    for up in upstream:
        controller = up.discloser
        if up.onward_sharing == "Prohibited":
            run.add("lawful.onward_sharing_prohibited", anon, f"the upstream approval of agreement {up.agreement.id} "
                    "prohibits onward sharing, and this approval releases outputs no checked anonymising protocol "
                    "protects.", model.discloser, upstream=up.agreement.id)
        needs_cosign = (up.onward_sharing == "WithApproval" and not anon) or \
            (assessment is not None and up.onward_sharing != "Permitted")
        if needs_cosign:
            ok = controller in co_signers and (signed is None or controller in signed)
            run.add("lawful.onward_sharing_needs_cosignature", ok, f"the upstream controller {controller} "
                    + ("is not named in coSigners." if controller not in co_signers else "has not co-signed."),
                    model.discloser, upstream=up.agreement.id, controller=controller)
    outside = [p for p in model.purposes if not all(voc.within_any(p, u.purposes) for u in upstream)]
    if outside:
        run.add("lawful.new_purpose_unassessed", assessment is not None or model.new_gateway is not None,
                f"{_purposes(outside)} {'lies' if len(outside) == 1 else 'lie'} outside the upstream approvals' "
                "purposes.",
                model.discloser)


def check(approval: DataSharingApproval | dict, rulebook: Rulebook | None = None, **kw: Any) -> list[Problem]:
    """The unmet rules of ``evaluate`` as problems (code: the rule id; detail: its citation and what would
    satisfy it). Advice is not a problem."""
    return [r.problem() for r in evaluate(approval, rulebook, **kw) if r.failed]


def explain(approval: DataSharingApproval | dict, rulebook: Rulebook | None = None, **kw: Any) -> list[dict]:
    """Plain-English results for an approval form: every rule that applies, unmet first, as dicts with ``rule``,
    ``title``, ``citation``, ``explanation``, ``outcome``, ``finding``, ``satisfy`` and ``party``."""
    results = evaluate(approval, rulebook, **kw)
    order = {UNMET: 0, ADVICE: 1, MET: 2}
    return [r.to_dict() for r in sorted(results, key=lambda r: order[r.outcome])]
