"""The lawful-basis rulebook, checked in the three places it runs (issue 13).

A table of cases, each citing the rule it exercises, with the expected outcome:

- in the engine (``verifier.lawful.evaluate``): the rule is unmet, or it is met (or, for advice, only advised);
- at the issuer (``issuer.issuing.issue`` on a real node): an unlawful approval is refused with the rule's code and
  nothing is signed or stored; a lawful one is signed;
- in the approval form (the refusal the issue page and the IAO's approval form render): the rule's title, what
  would satisfy it, its citation and its code are shown;
- at the gateway (``Decider.decide`` on signed credentials served over HTTPS): a denial naming the rule's code and
  citation; a lawful approval is allowed.
"""
from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from issuer import issuing
from issuer.signing import add_proof
from schemas import vocab
from schemas.models import DataSharingApproval, credential_digest
from verifier import lawful
from verifier.decision import TransferRequest
from verifier.lawful.provenance import Hop, walk
from verifier.results import CeadError

from issuer_fixtures import counts, ready_node
from transfer_world import API, CEAD, DATASET, DPV, Party, codes, world

G = "https://www.legislation.gov.uk/eur/2016/679/"
D = "https://www.legislation.gov.uk/ukpga/2018/12/"
E = "https://www.legislation.gov.uk/ukpga/2017/30/"
A6A, A6C, A6E, A6F = (G + f"article/6/1/{k}" for k in "acef")
A9A, A9G, A9H, A9J = (G + f"article/9/2/{k}" for k in "aghj")
A10 = G + "article/10"
S1P1P2, S1P1P4 = D + "schedule/1/part/1/paragraph/2", D + "schedule/1/part/1/paragraph/4"
S1P2P6, S1P2P8, S1P2P10 = (D + f"schedule/1/part/2/paragraph/{n}" for n in (6, 8, 10))
S1P3P29 = D + "schedule/1/part/3/paragraph/29"
S35, S364, S8P1 = D + "section/35", D + "section/36/4", D + "schedule/8/paragraph/1"
DEA35, DEA64, DEA80 = E + "section/35", E + "section/64", E + "section/80"
DPA98 = "https://www.legislation.gov.uk/ukpga/1998/29/section/29"
PD = vocab.PD
HEALTH = [PD + "Health", PD + "Age"]
CRIMINAL = [PD + "CriminalOffense", PD + "Age"]
PBPP = {"metBy": "PBPPApproval", "reference": "https://www.informationgovernance.scot.nhs.uk/pbpp/2026-0117"}
SOURCE_DATASET = "https://data.lawful-source.example/dataset/input"
FACTORS = {"linkBetweenPurposes": "Both concern homelessness services.", "contextOfCollection": "Collected by the "
           "council for its housing duties.", "natureOfData": "No special category data.", "consequences": "Only "
           "aggregate planning; no decision about a person.", "safeguards": "Pseudonymised; accredited analysts."}
BOOK = lawful.builtin()


@dataclass
class Ctx:
    discloser: str
    recipient: str
    source: str = ""
    upstream_id: str = ""


def lbs(ctx: Ctx, discloser: list[str], recipient: list[str], d_regime: str = "UKGDPR",
        r_regime: str = "UKGDPR") -> list[dict]:
    return [{"party": ctx.discloser, "regime": d_regime, "legalBases": discloser},
            {"party": ctx.recipient, "regime": r_regime, "legalBases": recipient}]


@dataclass
class Case:
    name: str
    rule: str                                   # the rule it exercises
    outcome: str                                # unmet | met | advice
    changes: Callable[[Ctx], dict]              # changes to a lawful base approval
    upstream: dict | None = None                # a derived approval: changes to its upstream approval
    competent: tuple[str, ...] = ()             # "discloser", "recipient": known competent authorities
    cosigned_by_source: bool = False

    @property
    def id(self) -> str:
        return f"{self.rule.split('.', 1)[1]}-{self.outcome}-{self.name}"


def health(ctx: Ctx, bases: list[str], **more) -> dict:
    return {"dataCategories": HEALTH, "sensitivity": "SpecialCategory", "lawfulBases": lbs(ctx, bases, bases),
            **more}


def criminal(ctx: Ctx, d: list[str], r: list[str], **more) -> dict:
    return {"dataCategories": CRIMINAL, "sensitivity": "CriminalOffence", "lawfulBases": lbs(ctx, d, r), **more}


def part3(ctx: Ctx, d: list[str], r: list[str] | None = None, r_regime: str = "UKGDPR",
          purposes: list[str] | None = None, categories: list[str] | None = None, sensitivity="CriminalOffence"):
    return {"dataCategories": categories or CRIMINAL, "sensitivity": sensitivity,
            "purposes": purposes or [CEAD + "JusticeStatistics"],
            "lawfulBases": lbs(ctx, d, r if r is not None else [A6E, A10, S1P2P6], "DPA2018Part3", r_regime)}


PERSONAL = [PD + "Name", PD + "PhysicalAddress"]
THRESHOLD = [{"kind": "threshold", "minCellCount": 10}]
NEW_PURPOSE = [CEAD + "BenefitTakeUpAnalysis"]


def assessed(ctx: Ctx, by: str | None = "discloser", **factors) -> dict:
    record = {"reference": "https://fife.example/assessments/2026-9", "date": "2026-11-01", "outcome": "Compatible",
              **FACTORS, **factors}
    if by is not None:
        record["assessedBy"] = getattr(ctx, by)
    return {k: v for k, v in record.items() if v is not None}


LINEAGE = {"transformations": ["Selection", "Pseudonymisation"]}


def lineage(ctx: Ctx, output: str = "ageBand", column: str = "ageBand") -> dict:
    return {**LINEAGE, "lineage": [{"output": output, "sources": [{"upstream": ctx.upstream_id, "column": column}]}]}


UP = {"onwardSharing": "Permitted"}     # an upstream approval that allows onward sharing

CASES = [
    # ---- unknown and repealed bases
    Case("example-com", "lawful.basis_unknown", "unmet",
         lambda c: {"lawfulBases": lbs(c, [A6E], [A6E, "https://example.com/anything"])}),
    Case("made-up-article", "lawful.basis_unknown", "unmet",
         lambda c: {"lawfulBases": lbs(c, [A6E, G + "article/6/1/z"], [A6E])}),
    Case("public-task", "lawful.basis_unknown", "met", lambda c: {}),
    Case("dpa-1998-s29", "lawful.basis_repealed", "unmet", lambda c: {"lawfulBases": lbs(c, [A6E, DPA98], [A6E])}),
    Case("dpa-1998-only", "lawful.basis_repealed", "unmet", lambda c: {"lawfulBases": lbs(c, [A6E], [DPA98])}),
    Case("in-force", "lawful.basis_repealed", "met", lambda c: {"lawfulBases": lbs(c, [A6E], [A6C])}),
    # ---- Art 6
    Case("schedule1-only", "lawful.article6_missing", "unmet", lambda c: {"lawfulBases": lbs(c, [A6E], [S1P2P6])}),
    Case("art9-only", "lawful.article6_missing", "unmet",
         lambda c: health(c, [A9H, S1P1P2], confidentiality=PBPP)),
    Case("both-public-task", "lawful.article6_missing", "met", lambda c: {}),
    Case("recipient-f", "lawful.legitimate_interests_public_authority", "unmet",
         lambda c: {"lawfulBases": lbs(c, [A6E], [A6F])}),
    Case("discloser-e-and-f", "lawful.legitimate_interests_public_authority", "unmet",
         lambda c: {"lawfulBases": lbs(c, [A6E, A6F], [A6E])}),
    Case("legal-obligation", "lawful.legitimate_interests_public_authority", "met",
         lambda c: {"lawfulBases": lbs(c, [A6E], [A6C])}),
    # ---- statutory gateways are powers, not bases
    Case("dea-s35-only", "lawful.gateway_needs_basis", "unmet", lambda c: {"lawfulBases": lbs(c, [DEA35], [A6E])}),
    Case("dea-s64-only", "lawful.gateway_needs_basis", "unmet", lambda c: {"lawfulBases": lbs(c, [A6E], [DEA64])}),
    Case("dea-s35-with-e", "lawful.gateway_needs_basis", "met",
         lambda c: {"lawfulBases": lbs(c, [A6E, DEA35], [A6E])}),
    # ---- Art 9 and Schedule 1
    Case("health-art6-alone", "lawful.special_category_condition_missing", "unmet",
         lambda c: health(c, [A6E], confidentiality=PBPP)),
    Case("ethnic-origin-recipient", "lawful.special_category_condition_missing", "unmet",
         lambda c: {"dataCategories": [PD + "EthnicOrigin"], "sensitivity": "SpecialCategory",
                    "lawfulBases": lbs(c, [A6E, A9G, S1P2P8], [A6E])}),
    Case("mental-health", "lawful.special_category_condition_missing", "unmet",
         lambda c: {**health(c, [A6E], confidentiality=PBPP), "dataCategories": [PD + "MentalHealth"]}),
    Case("ethnic-origin-equality", "lawful.special_category_condition_missing", "met",
         lambda c: {"dataCategories": [PD + "EthnicOrigin"], "sensitivity": "SpecialCategory",
                    "lawfulBases": lbs(c, [A6E, A9G, S1P2P8], [A6E, A9G, S1P2P8])}),
    Case("health-care", "lawful.special_category_condition_missing", "met",
         lambda c: health(c, [A6E, A9H, S1P1P2], confidentiality=PBPP)),
    Case("art9g-no-schedule1", "lawful.schedule1_condition_missing", "unmet",
         lambda c: {"dataCategories": [PD + "EthnicOrigin"], "sensitivity": "SpecialCategory",
                    "lawfulBases": lbs(c, [A6E, A9G], [A6E, A9G])}),
    Case("art9h-wrong-part", "lawful.schedule1_condition_missing", "unmet",
         lambda c: health(c, [A6E, A9H, S1P2P6], confidentiality=PBPP)),
    Case("art9j-no-para4", "lawful.schedule1_condition_missing", "unmet",
         lambda c: {"dataCategories": [PD + "Religion"], "sensitivity": "SpecialCategory",
                    "lawfulBases": lbs(c, [A6E, A9J], [A6E, A9J])}),
    Case("art9j-para4", "lawful.schedule1_condition_missing", "met",
         lambda c: {"dataCategories": [PD + "Religion"], "sensitivity": "SpecialCategory",
                    "lawfulBases": lbs(c, [A6E, A9J, S1P1P4], [A6E, A9J, S1P1P4])}),
    Case("explicit-consent", "lawful.schedule1_condition_missing", "met",
         lambda c: {"dataCategories": [PD + "Religion"], "sensitivity": "SpecialCategory",
                    "lawfulBases": lbs(c, [A6A, A9A], [A6A, A9A])}),
    # ---- Art 10
    Case("criminal-art6-alone", "lawful.criminal_offence_condition_missing", "unmet",
         lambda c: criminal(c, [A6E, A10, S1P2P6], [A6E])),
    Case("art10-without-schedule1", "lawful.criminal_offence_condition_missing", "unmet",
         lambda c: {**criminal(c, [A6E, A10, S1P2P6], [A6E, A10]),
                    "dataCategories": [PD + "CriminalConviction"]}),
    Case("art10-part2-para6", "lawful.criminal_offence_condition_missing", "met",
         lambda c: criminal(c, [A6E, A10, S1P2P6], [A6E, A10, S1P2P6])),
    Case("art10-part3-consent", "lawful.criminal_offence_condition_missing", "met",
         lambda c: criminal(c, [A6E, A10, S1P3P29], [A6E, A10, S1P3P29])),
    # ---- DPA 2018 Part 3
    Case("council-claims-part3", "lawful.part3_not_competent_authority", "unmet",
         lambda c: part3(c, [S35, S364])),
    Case("recipient-claims-part3", "lawful.part3_not_competent_authority", "unmet",
         lambda c: part3(c, [S35], [S35], "DPA2018Part3", purposes=[CEAD + "LawEnforcement"]),
         competent=("discloser",)),
    Case("police-to-analysts", "lawful.part3_not_competent_authority", "met",
         lambda c: part3(c, [S35, S364]), competent=("discloser",)),
    Case("no-s35", "lawful.part3_principle_missing", "unmet", lambda c: part3(c, [S364]),
         competent=("discloser",)),
    Case("schedule8-no-s35", "lawful.part3_principle_missing", "unmet", lambda c: part3(c, [S364, S8P1]),
         competent=("discloser",)),
    Case("s35", "lawful.part3_principle_missing", "met", lambda c: part3(c, [S35, S364]), competent=("discloser",)),
    Case("statistics-under-part3", "lawful.part3_purpose_not_law_enforcement", "unmet",
         lambda c: part3(c, [S35, S364], [S35], "DPA2018Part3"), competent=("discloser", "recipient")),
    Case("law-enforcement", "lawful.part3_purpose_not_law_enforcement", "met",
         lambda c: part3(c, [S35], [S35], "DPA2018Part3", purposes=[CEAD + "LawEnforcement"]),
         competent=("discloser", "recipient")),
    Case("justice-statistics-no-s36-4", "lawful.part3_other_purpose_not_authorised", "unmet",
         lambda c: part3(c, [S35]), competent=("discloser",)),
    Case("official-statistics-no-s36-4", "lawful.part3_other_purpose_not_authorised", "unmet",
         lambda c: part3(c, [S35], purposes=[DPV + "ProvideOfficialStatistics"]), competent=("discloser",)),
    Case("s36-4-recorded", "lawful.part3_other_purpose_not_authorised", "met", lambda c: part3(c, [S35, S364]),
         competent=("discloser",)),
    Case("ethnic-origin-no-schedule8", "lawful.part3_sensitive_condition_missing", "unmet",
         lambda c: part3(c, [S35, S364], [A6E, A9G, S1P2P8, A10, S1P2P6],
                         categories=[PD + "EthnicOrigin", PD + "CriminalOffense"]), competent=("discloser",)),
    Case("ethnic-origin-schedule8", "lawful.part3_sensitive_condition_missing", "met",
         lambda c: part3(c, [S35, S364, S8P1], [A6E, A9G, S1P2P8, A10, S1P2P6],
                         categories=[PD + "EthnicOrigin", PD + "CriminalOffense"]), competent=("discloser",)),
    # ---- the common-law duty of confidentiality
    Case("health-no-confidentiality", "lawful.confidentiality_not_met", "unmet",
         lambda c: health(c, [A6E, A9H, S1P1P2])),
    Case("social-care-no-confidentiality", "lawful.confidentiality_not_met", "unmet",
         lambda c: {"dataCategories": [CEAD + "SocialCareRecord"]}),
    Case("pbpp", "lawful.confidentiality_not_met", "met", lambda c: health(c, [A6E, A9H, S1P1P2],
                                                                         confidentiality=PBPP)),
    Case("consent", "lawful.confidentiality_not_met", "met",
         lambda c: health(c, [A6E, A9H, S1P1P2], confidentiality={"metBy": "Consent"})),
    Case("anonymised-output", "lawful.confidentiality_not_met", "met",
         lambda c: {"dataCategories": HEALTH, "sensitivity": "Anonymised", "privacyProtocol": THRESHOLD}),
    # ---- sensitivity derived from the categories
    Case("health-labelled-personal", "lawful.sensitivity_below_categories", "unmet",
         lambda c: {**health(c, [A6E, A9H, S1P1P2], confidentiality=PBPP), "sensitivity": "Personal"}),
    Case("criminal-labelled-special", "lawful.sensitivity_below_categories", "unmet",
         lambda c: {**criminal(c, [A6E, A10, S1P2P6], [A6E, A10, S1P2P6]), "sensitivity": "SpecialCategory"}),
    Case("ethnic-origin-labelled-pseudonymised", "lawful.sensitivity_below_categories", "unmet",
         lambda c: {"dataCategories": [PD + "EthnicOrigin"], "sensitivity": "Pseudonymised",
                    "lawfulBases": lbs(c, [A6E, A9G, S1P2P8], [A6E, A9G, S1P2P8])}),
    Case("health-special", "lawful.sensitivity_below_categories", "met",
         lambda c: health(c, [A6E, A9H, S1P1P2], confidentiality=PBPP)),
    Case("health-anonymised-by-threshold", "lawful.sensitivity_below_categories", "met",
         lambda c: {"dataCategories": HEALTH, "sensitivity": "Anonymised", "privacyProtocol": THRESHOLD}),
    # ---- onward sharing (derived approvals)
    Case("names-postcodes-from-prohibited", "lawful.onward_sharing_prohibited", "unmet",
         lambda c: {"dataCategories": PERSONAL, **LINEAGE_OK(c)}, upstream={"onwardSharing": "Prohibited"}),
    Case("pseudonymised-from-prohibited", "lawful.onward_sharing_prohibited", "unmet",
         lambda c: {"privacyProtocol": [{"kind": "pseudonymisation"}], **LINEAGE_OK(c)},
         upstream={"onwardSharing": "Prohibited"}),
    Case("threshold-from-prohibited", "lawful.onward_sharing_prohibited", "met",
         lambda c: {"dataCategories": [CEAD + "Aggregate"], "sensitivity": "Anonymised",
                    "privacyProtocol": THRESHOLD, **LINEAGE_OK(c)}, upstream={"onwardSharing": "Prohibited"}),
    Case("with-approval-not-named", "lawful.onward_sharing_needs_cosignature", "unmet",
         lambda c: {**LINEAGE_OK(c)}, upstream={"onwardSharing": "WithApproval"}),
    Case("with-approval-cosigned", "lawful.onward_sharing_needs_cosignature", "met",
         lambda c: {"coSigners": [c.source], **LINEAGE_OK(c)}, upstream={"onwardSharing": "WithApproval"},
         cosigned_by_source=True),
    # ---- new purposes: Art 6(4) and statutory gateways
    Case("new-purpose-bare", "lawful.new_purpose_unassessed", "unmet",
         lambda c: {"purposes": NEW_PURPOSE, **LINEAGE_OK(c)}, upstream=UP),
    Case("new-purpose-assessed", "lawful.new_purpose_unassessed", "met",
         lambda c: {"purposes": NEW_PURPOSE, "compatibilityAssessment": assessed(c), **LINEAGE_OK(c)},
         upstream=UP),
    Case("same-purpose", "lawful.new_purpose_unassessed", "met", lambda c: {**LINEAGE_OK(c)}, upstream=UP),
    Case("reference-date-outcome-only", "lawful.compatibility_incomplete", "unmet",
         lambda c: {"purposes": NEW_PURPOSE, **LINEAGE_OK(c), "compatibilityAssessment": {
             "reference": "https://fife.example/assessments/1", "date": "2026-11-01", "outcome": "Compatible",
             "assessedBy": c.discloser}}, upstream=UP),
    Case("no-safeguards", "lawful.compatibility_incomplete", "unmet",
         lambda c: {"purposes": NEW_PURPOSE, "compatibilityAssessment": assessed(c, safeguards=None),
                    **LINEAGE_OK(c)}, upstream=UP),
    Case("all-five-factors", "lawful.compatibility_incomplete", "met",
         lambda c: {"purposes": NEW_PURPOSE, "compatibilityAssessment": assessed(c), **LINEAGE_OK(c)},
         upstream=UP),
    Case("assessed-by-recipient", "lawful.compatibility_wrong_assessor", "unmet",
         lambda c: {"purposes": NEW_PURPOSE, "compatibilityAssessment": assessed(c, by="recipient"),
                    **LINEAGE_OK(c)}, upstream=UP),
    Case("assessor-not-named", "lawful.compatibility_wrong_assessor", "unmet",
         lambda c: {"purposes": NEW_PURPOSE, "compatibilityAssessment": assessed(c, by=None), **LINEAGE_OK(c)},
         upstream=UP),
    Case("assessed-by-discloser", "lawful.compatibility_wrong_assessor", "met",
         lambda c: {"purposes": NEW_PURPOSE, "compatibilityAssessment": assessed(c), **LINEAGE_OK(c)},
         upstream=UP),
    Case("any-legislation-address", "lawful.new_gateway_not_listed", "unmet",
         lambda c: {"purposes": NEW_PURPOSE, **LINEAGE_OK(c),
                    "newGateway": "https://www.legislation.gov.uk/ukpga/2010/15/section/1"}, upstream=UP),
    Case("research-gateway-for-policy", "lawful.new_gateway_not_listed", "unmet",
         lambda c: {"purposes": NEW_PURPOSE, "newGateway": DEA64, **LINEAGE_OK(c)}, upstream=UP),
    Case("statistics-gateway", "lawful.new_gateway_not_listed", "met",
         lambda c: {"newGateway": DEA80, **LINEAGE_OK(c)},
         upstream={**UP, "purposes": [DPV + "ServiceProvision"]}),
    # ---- transformation and column lineage
    Case("no-derivation", "lawful.derivation_unrecorded", "advice", lambda c: {}, upstream=UP),
    Case("derivation", "lawful.derivation_unrecorded", "met", lambda c: {**LINEAGE_OK(c)}, upstream=UP),
    Case("unknown-output", "lawful.lineage_invalid", "unmet", lambda c: {"derivation": lineage(c, output="nhs_no")},
         upstream=UP),
    Case("unknown-source-column", "lawful.lineage_invalid", "unmet",
         lambda c: {"derivation": lineage(c, column="home_postcode")}, upstream=UP),
    Case("lineage-ok", "lawful.lineage_invalid", "met", lambda c: {"derivation": lineage(c)}, upstream=UP),
]


def LINEAGE_OK(ctx: Ctx) -> dict:  # noqa: N802  (reads as a constant in the table)
    return {"derivation": lineage(ctx)}


def rule_outcomes(results, rule: str) -> set[str]:
    return {r.outcome for r in results if r.rule == rule}


# ---- building the approval ------------------------------------------------------------------------------------

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def base_subject(discloser: str, recipient: str) -> dict:
    return {
        "agreement": {"id": "https://fife.example/agreements/dsa-17", "digest": "sha256-" + "A" * 43},
        "discloser": discloser, "recipients": [recipient], "datasets": [DATASET],
        "dataItems": ["ageBand", "localAuthority", "outcome", "count"],
        "dataCategories": [CEAD + "HousingSituation"], "purposes": [CEAD + "HomelessnessStatistics"],
        "lawfulBases": [{"party": discloser, "regime": "UKGDPR", "legalBases": [A6E]},
                        {"party": recipient, "regime": "UKGDPR", "legalBases": [A6E]}],
        "dpia": {"outcome": "LowRisk"}, "sensitivity": "Personal",
        "recipientRequirements": [CEAD + "CyberEssentials"],
        "cadence": f"R/{_iso(NOW - timedelta(days=10))}/P1M", "maxRowsPerTransfer": 1000,
        "retention": {"receivedData": "P1Y"}, "onwardSharing": "Prohibited",
        "notBefore": _iso(NOW - timedelta(days=10)), "notAfter": _iso(NOW + timedelta(days=365))}


def upstream_subject(source: str, discloser: str, changes: dict) -> dict:
    subject = base_subject(source, discloser)
    subject["datasets"] = [SOURCE_DATASET]
    subject["purposes"] = [CEAD + "HomelessnessStatistics"]
    subject.update(changes)
    return subject


# ---- the engine -----------------------------------------------------------------------------------------------

def test_the_table_is_large_and_every_rule_has_a_positive_and_a_negative_case():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)
    for rule in BOOK.rules.values():
        outcomes = {c.outcome for c in CASES if c.rule == rule.id}
        negative = "advice" if rule.advisory else "unmet"
        assert negative in outcomes and "met" in outcomes, rule.id
    assert {c.rule for c in CASES} == set(BOOK.rules)


def _engine(case: Case) -> list:
    ctx = Ctx("did:web:fife.example", "did:web:gov.scot.example:analysis", "did:web:source.example",
              "urn:uuid:upstream-1")
    subject = base_subject(ctx.discloser, ctx.recipient)
    upstream = None
    if case.upstream is not None:
        up = DataSharingApproval.model_validate(upstream_subject(ctx.source, ctx.discloser, case.upstream))
        subject["upstream"] = [{"id": ctx.upstream_id, "digest": "sha256-" + "B" * 43}]
        upstream = [up]
    subject.update(case.changes(ctx))
    model = DataSharingApproval.model_validate(subject)
    competent = [getattr(ctx, who) for who in case.competent]
    signers = [ctx.discloser, *([ctx.source] if case.cosigned_by_source else [])]
    return lawful.evaluate(model, vocabulary=vocab.registry(), upstream=upstream, signers=signers,
                           issuer=ctx.discloser, competent_authorities=competent)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_engine(case):
    results = _engine(case)
    outcomes = rule_outcomes(results, case.rule)
    failed = {r.rule for r in results if r.failed}
    if case.outcome == "unmet":
        assert "unmet" in outcomes, [r.to_dict() for r in results]
        result = next(r for r in results if r.rule == case.rule and r.failed)
        rule = BOOK.rule(case.rule)
        assert result.citation == rule.citation and result.citation.startswith("https://www.legislation.gov.uk/")
        assert result.explanation == rule.explanation and result.satisfy == rule.satisfy and result.finding
        # what was found, in words a DPO reads: purposes by name, the law by name, never a Python list
        assert "['" not in result.finding and "cead:" not in result.finding, result.finding
    else:
        assert not failed, [r.to_dict() for r in results if r.failed]   # a lawful approval: nothing unmet
        if case.outcome == "advice":
            assert outcomes == {"advice"}


# ---- the issuer: refused, nothing signed; and the form shows the rule -------------------------------------------

@pytest.fixture(scope="module")
def node(tmp_path_factory):
    return ready_node(tmp_path_factory.mktemp("lawful-node"))


@pytest.fixture(scope="module")
def app(node):
    from issuer.app import create_app
    return create_app(node)


def _issuer_request(node, case: Case) -> tuple[dict, dict]:
    ctx = Ctx(node.did, "did:web:gov.scot.example:analysis", "did:web:source.example")
    options: dict = {}
    subject = base_subject(ctx.discloser, ctx.recipient)
    if case.upstream is not None:
        up_subject = DataSharingApproval.model_validate(upstream_subject(ctx.source, ctx.discloser, case.upstream))
        upstream = up_subject.to_credential(ctx.source, id=f"urn:uuid:{uuid.uuid4()}")
        ctx.upstream_id = upstream["id"]
        subject["upstream"] = [{"id": upstream["id"], "digest": credential_digest(upstream)}]
        options["upstream"] = [upstream]
    subject.update(case.changes(ctx))
    credential = DataSharingApproval.model_validate(subject).to_credential(node.did, id=f"urn:uuid:{uuid.uuid4()}")
    voc = vocab.registry().copy()
    voc.competent_authorities |= {getattr(ctx, who) for who in case.competent}
    node.vocabulary = voc
    return credential, options


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_issuer_and_form(case, node, app):
    from flask import render_template
    credential, options = _issuer_request(node, case)
    before = counts(node)
    if case.outcome != "unmet":
        issued = issuing.issue(node, credential, options)
        assert issued.id == credential["id"]
        return
    with pytest.raises(CeadError) as refused:
        issuing.issue(node, credential, options)
    assert counts(node) == before                                   # nothing signed or stored
    error = refused.value
    codes_given = [p["code"] for p in error.detail["problems"]]
    assert case.rule in codes_given, error.message
    rule = BOOK.rule(case.rule)
    assert error.code.startswith("lawful.") and rule.citation in error.message
    # the approval form's refusal names the rule, what would satisfy it and its citation
    with app.test_request_context():
        html = render_template("cead_refusal.html", error=error.problem, node_name="Fife Council",
                               what="this approval")
    from markupsafe import escape
    assert str(escape(rule.title)) in html and str(escape(rule.satisfy)) in html
    assert f'href="{rule.citation}"' in html and f"<code>{case.rule}</code>" in html
    from schemas.words import law_words
    assert f">{escape(law_words(rule.citation))}</a>" in html                   # the link says the law by name


def test_form_explanations_are_plain_words_with_unmet_first():
    subject = base_subject("did:web:fife.example", "did:web:gov.scot.example:analysis")
    subject.update(dataCategories=HEALTH, sensitivity="Personal")
    shown = lawful.explain(subject)
    assert shown[0]["outcome"] == "unmet"
    assert {"lawful.special_category_condition_missing", "lawful.confidentiality_not_met",
            "lawful.sensitivity_below_categories"} <= {r["rule"] for r in shown if r["outcome"] == "unmet"}
    assert all(r["citation"].startswith("https://www.legislation.gov.uk/") and r["explanation"] and r["satisfy"]
               for r in shown)
    assert any(r["outcome"] == "met" for r in shown)


# ---- the gateway: deny naming the rule and its citation ----------------------------------------------------------

@pytest.fixture(scope="module")
def w():
    with world() as w:
        w.source = Party("lawful-source")
        yield w


def _gateway(w, case: Case):
    ctx = Ctx(w.controller.did, w.recipient.did, w.source.did)
    subject_changes: dict = {}
    credentials = []
    policy: dict = {}
    cosign = case.cosigned_by_source
    if case.upstream is not None:
        upstream = w.make_approval(w.source, **{**upstream_subject(w.source.did, w.controller.did, case.upstream)})
        ctx.upstream_id = w.doc(upstream)["id"]
        subject_changes["upstream"] = [w.ref(upstream)]
        credentials.append(upstream)
        policy["controllers"] = [*w.policy_data()["controllers"],
                                 {"dataset": SOURCE_DATASET, "controller": w.source.did}]
    changes = {**subject_changes, **case.changes(ctx)}
    approval = w.make_approval(w.controller, fmt="ldp" if cosign else "jwt", **changes)
    if cosign:
        approval = add_proof(approval, w.source.key, w.source.kid)
    competent = [getattr(ctx, who) for who in case.competent]
    decider = w.decider(**policy, lawful={"competent_authorities": competent})
    purpose = changes.get("purposes", [CEAD + "HomelessnessStatistics"])[0]
    request = TransferRequest(method="GET", url=f"{API}/datasets/homelessness", response_checked=True,
                              manifest=w.manifest(purpose=purpose))
    return decider.decide(w.present(request, [approval, *credentials, w.cert]), request)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_gateway(case, w):
    decision = _gateway(w, case)
    if case.outcome != "unmet":
        assert decision.allowed, decision.to_dict()
        return
    assert not decision.allowed
    rule = BOOK.rule(case.rule)
    reason = next((p for p in decision.reasons if p.code == case.rule), None)
    assert reason is not None, decision.to_dict()
    assert reason.detail["citation"] == rule.citation and rule.citation in reason.message


def test_a_listed_cosigner_who_has_not_signed_is_denied(w):
    """WithApproval upstream: naming the upstream controller is not enough; their proof must be on the approval."""
    case = next(c for c in CASES if c.name == "with-approval-cosigned")
    unsigned = Case(case.name, case.rule, "unmet", case.changes, upstream=case.upstream)
    decision = _gateway(w, unsigned)
    assert not decision.allowed and "approval.cosigner_missing" in codes(decision)


def test_an_organisations_own_term_counts_only_where_its_vocabulary_is_loaded(w, tmp_path):
    local = "https://www.legislation.gov.uk/asp/2014/9/section/1"
    changes = lambda c: {"lawfulBases": lbs(c, [A6E, local], [A6E])}  # noqa: E731
    case = Case("own-term", "lawful.basis_unknown", "unmet", changes)
    decision = _gateway(w, case)
    assert "lawful.basis_unknown" in codes(decision)
    voc = tmp_path / "vocabulary.json"
    voc.write_text('{"legalBases": {"%s": {"label": "Public Bodies (Joint Working) (Scotland) Act 2014 s.1", '
                   '"kind": "gateway"}}}' % local)
    ctx = Ctx(w.controller.did, w.recipient.did)
    approval = w.make_approval(w.controller, **changes(ctx))
    decider = w.decider(vocabulary=[str(voc)])
    request = TransferRequest(method="GET", url=f"{API}/datasets/homelessness", manifest=w.manifest())
    assert decider.decide(w.present(request, [approval, w.cert]), request).allowed


def test_the_policy_pins_the_rulebook_by_digest(tmp_path):
    from verifier.policy import parse_policy
    assert parse_policy({"lawful": {"digest": BOOK.digest}}).rulebook().digest == BOOK.digest
    with pytest.raises(CeadError) as wrong:
        parse_policy({"lawful": {"digest": "sha256-" + "A" * 43}})
    assert wrong.value.code == "lawful.rulebook_digest_mismatch"
    import json
    edited = copy.deepcopy(BOOK.document)
    edited["rules"][0]["explanation"] += " (edited)"
    path = tmp_path / "rulebook.json"
    path.write_text(json.dumps(edited))
    with pytest.raises(CeadError) as mismatch:
        parse_policy({"lawful": {"rulebook": str(path), "digest": BOOK.digest}})
    assert mismatch.value.code == "lawful.rulebook_digest_mismatch"
    assert parse_policy({"lawful": {"rulebook": str(path)}}).rulebook().digest == lawful.rulebook_digest(edited)
    edited["rules"][0]["citation"] = "https://example.com/law"
    path.write_text(json.dumps(edited))
    with pytest.raises(CeadError) as invalid:
        parse_policy({"lawful": {"rulebook": str(path)}})
    assert invalid.value.code == "lawful.rulebook_invalid" and "citation" in invalid.value.message


def test_every_rule_cites_legislation_and_explains_itself():
    for rule in BOOK.rules.values():
        assert rule.citation.startswith("https://www.legislation.gov.uk/")
        assert len(rule.explanation) > 60 and rule.satisfy


def test_sensitivity_is_derived_from_the_categories():
    voc = vocab.registry()
    assert voc.implied_sensitivity([PD + "Age"]) == "Personal"
    assert voc.implied_sensitivity([PD + "Age", PD + "HealthRecord"]) == "SpecialCategory"
    assert voc.implied_sensitivity([PD + "Health", PD + "CriminalCharge"]) == "CriminalOffence"
    assert voc.implied_sensitivity([CEAD + "DelayedDischarge"]) == "SpecialCategory"


# ---- provenance over every hop ------------------------------------------------------------------------------------

def test_revoking_the_root_of_a_four_hop_chain_stops_the_last_transfer(w):
    """A -> B -> C -> D: the root approval admits A's data to B, each derived approval passes on what its
    discloser received, and the last one lets the recipient pull from the final controller."""
    a, b, c = Party("hop-a"), Party("hop-b"), Party("hop-c")
    datasets = {p.did: f"https://data.{p.name}.example/dataset/d" for p in (a, b, c)}
    controllers = [*w.policy_data()["controllers"], *({"dataset": ds, "controller": did}
                                                     for did, ds in datasets.items())]

    def approval(issuer: Party, recipient: str, dataset: str, upstream=None):
        subject = {**upstream_subject(issuer.did, recipient, UP), "datasets": [dataset]}
        if upstream is not None:
            subject["upstream"] = [w.ref(upstream)]
            subject["derivation"] = {"transformations": ["Aggregation"]}
        return w.make_approval(issuer, **subject)

    root = approval(a, b.did, datasets[a.did])
    hop2 = approval(b, c.did, datasets[b.did], root)
    hop3 = approval(c, w.controller.did, datasets[c.did], hop2)
    last = w.make_approval(w.controller, upstream=[w.ref(hop3)], onwardSharing="Prohibited",
                           derivation={"transformations": ["Selection"]})
    decider = w.decider(controllers=controllers)
    bundle = [last, hop3, hop2, root, w.cert]
    request = w.request()
    assert decider.decide(w.present(request, bundle), request).allowed
    # leave out the root: the chain is incomplete three hops up
    request = w.request()
    missing = decider.decide(w.present(request, [last, hop3, hop2, w.cert]), request)
    assert not missing.allowed and "provenance.upstream_missing" in codes(missing)
    w.status.set(w.doc(root), "revocation")
    try:
        request = w.request()
        decision = decider.decide(w.present(request, bundle), request)
        assert not decision.allowed
        revoked = next(p for p in decision.reasons if p.code == "provenance.upstream.revoked")
        assert revoked.detail["depth"] == 3
    finally:
        w.status.set(w.doc(root), "revocation", False)


def _model(ident: str, upstream: list[str], **changes) -> DataSharingApproval:
    subject = upstream_subject("did:web:a.example", "did:web:b.example", {**UP, **changes})
    subject["upstream"] = [{"id": u, "digest": "sha256-" + "C" * 43} for u in upstream]
    return DataSharingApproval.model_validate(subject)


def test_provenance_cycles_and_depth_are_refused():
    chain = {"urn:a": _model("urn:a", ["urn:b"]), "urn:b": _model("urn:b", ["urn:a"])}
    lookup = lambda ref: Hop(ref["id"], chain[ref["id"]]) if ref["id"] in chain else None  # noqa: E731
    start = _model("urn:start", ["urn:a"])
    problems = walk(start, lookup, from_depth=1)
    assert "provenance.cycle" in {p.code for p in problems}
    long = {f"urn:{i}": _model(f"urn:{i}", [f"urn:{i + 1}"] if i < 12 else []) for i in range(13)}
    lookup = lambda ref: Hop(ref["id"], long[ref["id"]]) if ref["id"] in long else None  # noqa: E731
    problems = walk(_model("urn:x", ["urn:0"]), lookup, max_depth=8)
    assert "provenance.too_deep" in {p.code for p in problems}
    assert not walk(_model("urn:x", ["urn:0"]), lookup, max_depth=16)
    # suspended three hops up
    long["urn:2"] = long["urn:2"]
    lookup2 = lambda ref: Hop(ref["id"], long[ref["id"]], "suspended" if ref["id"] == "urn:2" else None)  # noqa
    assert "provenance.upstream.suspended" in {p.code for p in walk(_model("urn:x", ["urn:0"]), lookup2,
                                                                      max_depth=16)}


# ---- property tests -------------------------------------------------------------------------------------------------

PURPOSES = [CEAD + "HomelessnessStatistics", CEAD + "JusticeStatistics", CEAD + "LawEnforcement",
            DPV + "ServiceProvision", CEAD + "BenefitTakeUpAnalysis"]
CATEGORIES = [CEAD + "HousingSituation", PD + "Health", PD + "EthnicOrigin", PD + "CriminalOffense", PD + "Age",
              CEAD + "SocialCareRecord"]
BASES = [A6E, A6F, A6C, A9H, A9G, S1P1P2, S1P2P6, S1P2P8, A10, DEA35, DPA98, "https://example.com/x"]
P3_BASES = [S35, S364, S8P1]
RECIPIENTS = ["did:web:r1.example", "did:web:r2.example", "did:web:r3.example"]


@st.composite
def wide_and_narrow(draw):
    discloser = "did:web:d.example"
    regime = draw(st.sampled_from(["UKGDPR", "UKGDPR", "DPA2018Part3"]))
    d_bases = draw(st.lists(st.sampled_from(P3_BASES if regime == "DPA2018Part3" else BASES), min_size=1,
                            max_size=4, unique=True))
    recipients = draw(st.lists(st.sampled_from(RECIPIENTS), min_size=1, max_size=3, unique=True))
    r_regimes = {r: draw(st.sampled_from(["UKGDPR", "DPA2018Part3"])) for r in recipients}
    r_bases = {r: draw(st.lists(st.sampled_from(P3_BASES if r_regimes[r] == "DPA2018Part3" else BASES),
                                min_size=1, max_size=4, unique=True)) for r in recipients}
    subject = base_subject(discloser, recipients[0])
    subject.update(
        recipients=recipients,
        purposes=draw(st.lists(st.sampled_from(PURPOSES), min_size=1, max_size=3, unique=True)),
        dataCategories=draw(st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=3, unique=True)),
        sensitivity=draw(st.sampled_from(vocab.SENSITIVITY)),
        lawfulBases=[{"party": discloser, "regime": regime, "legalBases": d_bases},
                     *({"party": r, "regime": r_regimes[r], "legalBases": r_bases[r]} for r in recipients)])
    if draw(st.booleans()):
        subject["confidentiality"] = PBPP
    wide = DataSharingApproval.model_validate(subject)
    keep_recipients = draw(st.lists(st.sampled_from(recipients), min_size=1, unique=True))
    keep_purposes = draw(st.lists(st.sampled_from(subject["purposes"]), min_size=1, unique=True))
    keep_items = draw(st.lists(st.sampled_from(subject["dataItems"]), min_size=1, unique=True))
    narrow_subject = copy.deepcopy(subject)
    narrow_subject.update(recipients=keep_recipients, purposes=keep_purposes, dataItems=keep_items,
                          maxRowsPerTransfer=draw(st.integers(0, 1000)),
                          lawfulBases=[lb for lb in subject["lawfulBases"]
                                       if lb["party"] in (discloser, *keep_recipients)])
    return wide, DataSharingApproval.model_validate(narrow_subject), draw(st.lists(
        st.sampled_from([discloser, *RECIPIENTS]), max_size=2))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wide_and_narrow())
def test_rule_evaluation_is_monotone_under_scope_narrowing(pair):
    """A narrower approval (fewer recipients, purposes, columns, rows) for the same data never fails a rule its
    wider parent met."""
    wide, narrow, competent = pair
    from verifier.scope import within
    assert not [v for v in within(narrow.scope(), wide.scope()) if v.dimension not in ("maxTransfersPerYear",)]
    failed = lambda m: {(r.rule, r.party) for r in lawful.evaluate(m, competent_authorities=competent)  # noqa
                        if r.failed}
    assert failed(narrow) <= failed(wide)


def test_an_unlawful_upstream_approval_stops_the_derived_transfer(w):
    """Anonymised statistics derived from health data shared under Art 6 alone: the output is fine, the input was
    never lawfully shared, so the transfer is denied naming the upstream approval."""
    up = {"onwardSharing": "Permitted", "dataCategories": HEALTH, "sensitivity": "SpecialCategory",
          "confidentiality": PBPP}
    output = lambda c: {"dataCategories": [CEAD + "Aggregate"], "sensitivity": "Anonymised",  # noqa: E731
                        "privacyProtocol": THRESHOLD, **LINEAGE_OK(c)}
    decision = _gateway(w, Case("unlawful-upstream", "lawful.special_category_condition_missing", "unmet", output,
                                upstream=up))
    reason = next(p for p in decision.reasons if p.code == "lawful.special_category_condition_missing")
    assert not decision.allowed and reason.message.startswith("Upstream approval ")
    # the same chain with Art 9(2)(h) and its Schedule 1 condition upstream is allowed
    ctx_bases = lambda c: [{"party": p, "regime": "UKGDPR", "legalBases": [A6E, A9H, S1P1P2]}  # noqa: E731
                           for p in (c.source, c.discloser)]
    source, controller = w.source.did, w.controller.did
    good = {**up, "lawfulBases": ctx_bases(Ctx(controller, "", source))}
    assert _gateway(w, Case("lawful-upstream", "lawful.special_category_condition_missing", "met", output,
                            upstream=good)).allowed


# ---- `cead lawful` ------------------------------------------------------------------------------------------------

def test_cead_lawful_says_which_rule_is_unmet_and_exits_1(tmp_path):
    import json
    from click.testing import CliRunner
    from cead.cli import main
    from transfer_world import EXAMPLES
    runner = CliRunner()
    refused = runner.invoke(main, ["lawful", str(EXAMPLES / "health-approval-refused-no-art9.json")])
    rule = BOOK.rule("lawful.special_category_condition_missing")
    assert refused.exit_code == 1 and rule.satisfy in refused.output and rule.citation in refused.output
    ok = runner.invoke(main, ["lawful", "--json", str(EXAMPLES / "health-approval.json")])
    assert ok.exit_code == 0 and json.loads(ok.output)["rulebook"]["digest"] == BOOK.digest
    # a council claiming Part 3 is lawful only where the policy knows it as a competent authority
    subject = json.loads((EXAMPLES / "police-approval.json").read_text())["credentialSubject"]
    for lb in subject["lawfulBases"]:
        lb["party"] = lb["party"].replace("police.scot.example", "fife.example")
    subject["discloser"] = "did:web:fife.example"
    (tmp_path / "council.json").write_text(json.dumps(subject))
    council = runner.invoke(main, ["lawful", str(tmp_path / "council.json")])
    assert council.exit_code == 1 and "lawful.part3_not_competent_authority" in council.output
    (tmp_path / "policy.yaml").write_text("lawful:\n  competent_authorities: [did:web:fife.example]\n")
    assert runner.invoke(main, ["lawful", "--policy", str(tmp_path / "policy.yaml"),
                                str(tmp_path / "council.json")]).exit_code == 0
    bad = runner.invoke(main, ["lawful", str(tmp_path / "missing.json")])
    assert bad.exit_code == 2 and "input.unreadable" in bad.output
