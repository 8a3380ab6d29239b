"""Controlled vocabularies for data sharing, as IRIs, reusing W3C DPV where it has the term.

Purposes, legal bases, personal-data categories, data-subject categories, certification schemes and datasets are
IRIs. Some IRIs sit inside others: a narrower purpose inside its ``broader`` purpose, a dataset inside the catalogue
or series it ``isPartOf``, Cyber Essentials Plus inside Cyber Essentials. ``Vocabulary`` holds that one
"lies within" relation (reflexive and transitive); ``registry()`` is the process-wide instance that starts with the
built-in terms below and can be extended by data (``registry().load({"broader": {...}, "isPartOf": {...}})``), for
example with a DPO's own narrower purposes or an organisation's DCAT catalogue.

Ordered scales (sensitivity, DPIA risk, onward sharing) are lists from least to most: a ceiling is respected when
the child's value comes no later in the list than the parent's.
"""
from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from .values import parse_datetime  # noqa: F401  (part of this module's API: vocab.parse_datetime)

CONTEXT_URL = "https://w3id.org/cead/v1"
CREDENTIALS_V2 = "https://www.w3.org/ns/credentials/v2"
CREDENTIALS_V1 = "https://www.w3.org/2018/credentials/v1"
SCHEMA_BASE = "https://w3id.org/cead/schemas/"

CEAD = "https://w3id.org/cead/vocab#"
DPV = "https://w3id.org/dpv#"
PD = "https://w3id.org/dpv/pd#"
DCAT = "http://www.w3.org/ns/dcat#"
DCT = "http://purl.org/dc/terms/"
XSD = "http://www.w3.org/2001/XMLSchema#"
UK_GDPR = "https://www.legislation.gov.uk/eur/2016/679/"
DPA_2018 = "https://www.legislation.gov.uk/ukpga/2018/12/"
DEA_2017 = "https://www.legislation.gov.uk/ukpga/2017/30/"

PREFIXES = {"cead": CEAD, "dpv": DPV, "pd": PD, "dcat": DCAT, "dct": DCT}


def expand(value: str) -> str:
    """``dpv:ServiceProvision`` -> ``https://w3id.org/dpv#ServiceProvision``; other strings are returned unchanged."""
    prefix, sep, rest = value.partition(":")
    if sep and prefix in PREFIXES and not rest.startswith("//"):
        return PREFIXES[prefix] + rest
    return value


def compact(value: str) -> str:
    """The inverse of ``expand`` for Cead's prefixes (used when writing credentials, so they stay readable)."""
    for prefix, ns in PREFIXES.items():
        if value.startswith(ns) and len(value) > len(ns):
            return f"{prefix}:{value[len(ns):]}"
    return value


@dataclass(frozen=True)
class Term:
    iri: str
    label: str
    broader: tuple[str, ...] = ()
    special: bool = False          # UK GDPR Art 9 special category data
    criminal: bool = False         # Art 10 / DPA 2018 criminal offence data
    regime: str | None = None      # for legal bases: the regime they belong to


# ---------------------------------------------------------------------------------------------------- regimes
UK_GDPR_REGIME = CEAD + "UKGDPR"
LAW_ENFORCEMENT_REGIME = CEAD + "DPA2018Part3"
REGIMES = {
    UK_GDPR_REGIME: Term(UK_GDPR_REGIME, "UK GDPR with DPA 2018 Part 2 (general processing)"),
    LAW_ENFORCEMENT_REGIME: Term(LAW_ENFORCEMENT_REGIME, "DPA 2018 Part 3 (law enforcement processing)"),
}
# JSON names of the regimes (``"@type": "@vocab"`` terms in the context)
REGIME_NAMES = {"UKGDPR": UK_GDPR_REGIME, "DPA2018Part3": LAW_ENFORCEMENT_REGIME}

# ---------------------------------------------------------------------------------------------------- purposes
_P = DPV
PURPOSES: dict[str, Term] = {t.iri: t for t in [
    Term(_P + "Purpose", "Purpose"),
    Term(_P + "PublicBenefit", "Public benefit", (_P + "Purpose",)),
    Term(_P + "ProvideOfficialStatistics", "Provide official statistics", (_P + "PublicBenefit",)),
    Term(_P + "PublicPolicyMaking", "Public policy making", (_P + "PublicBenefit",)),
    Term(_P + "ImprovePublicServices", "Improve public services", (_P + "PublicBenefit",)),
    Term(_P + "ProtectionOfPublicSecurity", "Protection of public security", (_P + "PublicBenefit",)),
    Term(_P + "ServiceProvision", "Service provision", (_P + "Purpose",)),
    Term(_P + "PersonalisedBenefits", "Personalised benefits", (_P + "ServiceProvision",)),
    Term(_P + "ResearchAndDevelopment", "Research and development", (_P + "Purpose",)),
    Term(_P + "ScientificResearch", "Scientific research", (_P + "ResearchAndDevelopment",)),
    Term(_P + "NonCommercialResearch", "Non-commercial research", (_P + "ResearchAndDevelopment",)),
    Term(_P + "LegalCompliance", "Legal compliance", (_P + "Purpose",)),
    Term(_P + "FraudPreventionAndDetection", "Fraud prevention and detection", (_P + "Purpose",)),
    # Cead's narrower purposes (a DPO adds more with registry().load({"broader": {...}}))
    Term(CEAD + "LawEnforcement", "Law enforcement purposes (DPA 2018 s.31)", (_P + "ProtectionOfPublicSecurity",)),
    Term(CEAD + "JusticeStatistics", "Justice statistics and analysis", (_P + "ProvideOfficialStatistics",)),
    Term(CEAD + "HomelessnessStatistics", "Homelessness statistics", (_P + "ProvideOfficialStatistics",)),
    Term(CEAD + "FreeSchoolMealAutoEnrolment", "Free school meal auto-enrolment", (_P + "ServiceProvision",)),
    Term(CEAD + "SchoolClothingGrantAutoAward", "School clothing grant auto-award", (_P + "ServiceProvision",)),
    Term(CEAD + "BenefitTakeUpAnalysis", "Benefit take-up analysis", (_P + "PublicPolicyMaking",)),
    Term(CEAD + "HealthAndSocialCare", "Provision and management of health or social care",
         (_P + "ServiceProvision",)),
    Term(CEAD + "DelayedDischargePlanning", "Planning care to end delayed discharge from hospital",
         (CEAD + "HealthAndSocialCare",)),
    Term(CEAD + "PublicServiceDelivery", "Improving the well-being of individuals or households (DEA 2017 s.35)",
         (_P + "ImprovePublicServices",)),
    Term(CEAD + "DebtManagement", "Managing debt owed to a public authority (DEA 2017 s.48)",
         (_P + "LegalCompliance",)),
    Term(CEAD + "StatisticsProduction", "Producing statistics (DEA 2017 s.80)",
         (_P + "ProvideOfficialStatistics",)),
]}

# ---------------------------------------------------------------------------------------------------- legal bases
_A6 = {"a": "consent", "b": "contract", "c": "legal obligation", "d": "vital interests",
       "e": "public task", "f": "legitimate interests"}
_A9 = {"a": "explicit consent", "b": "employment and social security law", "c": "vital interests",
       "d": "not-for-profit bodies", "e": "made public by the data subject", "f": "legal claims and courts",
       "g": "substantial public interest", "h": "health or social care", "i": "public health",
       "j": "archiving, research and statistics"}
# DPA 2018 Schedule 1: Part 1 paras 1-4, Part 2 paras 6-28, Part 3 paras 29-37
_SCH1 = {1: [1, 2, 3, 4], 2: list(range(6, 29)), 3: list(range(29, 38))}
LEGAL_BASES: dict[str, Term] = {}
for _k, _v in _A6.items():
    LEGAL_BASES[f"{UK_GDPR}article/6/1/{_k}"] = Term(f"{UK_GDPR}article/6/1/{_k}", f"UK GDPR Art 6(1)({_k}) {_v}",
                                                   regime=UK_GDPR_REGIME)
for _k, _v in _A9.items():
    LEGAL_BASES[f"{UK_GDPR}article/9/2/{_k}"] = Term(f"{UK_GDPR}article/9/2/{_k}", f"UK GDPR Art 9(2)({_k}) {_v}",
                                                   special=True, regime=UK_GDPR_REGIME)
LEGAL_BASES[f"{UK_GDPR}article/10"] = Term(f"{UK_GDPR}article/10", "UK GDPR Art 10 criminal offence data",
                                           criminal=True, regime=UK_GDPR_REGIME)
for _part, _paras in _SCH1.items():
    for _para in _paras:
        _iri = f"{DPA_2018}schedule/1/part/{_part}/paragraph/{_para}"
        # Parts 1-2 meet Art 9(2)(b),(h),(i),(j),(g) and, by s.10(5), Art 10; Part 3 meets Art 10 only
        LEGAL_BASES[_iri] = Term(_iri, f"DPA 2018 Sch 1 Part {_part} para {_para}", special=_part != 3,
                                 criminal=True, regime=UK_GDPR_REGIME)
LEGAL_BASES[f"{DPA_2018}section/35"] = Term(f"{DPA_2018}section/35", "DPA 2018 s.35 first data protection principle "
                                            "(law enforcement)", regime=LAW_ENFORCEMENT_REGIME)
LEGAL_BASES[f"{DPA_2018}section/36/4"] = Term(f"{DPA_2018}section/36/4", "DPA 2018 s.36(4) law-enforcement data "
                                              "processed for another purpose, authorised by law",
                                              regime=LAW_ENFORCEMENT_REGIME)
for _para in range(1, 10):
    _iri = f"{DPA_2018}schedule/8/paragraph/{_para}"
    LEGAL_BASES[_iri] = Term(_iri, f"DPA 2018 Sch 8 para {_para} (sensitive processing, law enforcement)",
                             special=True, criminal=True, regime=LAW_ENFORCEMENT_REGIME)
# statutory gateways: they give the power to share; the processing still needs an Art 6 basis
STATUTORY_GATEWAYS: dict[str, Term] = {t.iri: t for t in [
    Term(f"{DEA_2017}section/35", "Digital Economy Act 2017 s.35 (public service delivery)"),
    Term(f"{DEA_2017}section/48", "Digital Economy Act 2017 s.48 (debt owed to the public sector)"),
    Term(f"{DEA_2017}section/56", "Digital Economy Act 2017 s.56 (fraud against the public sector)"),
    Term(f"{DEA_2017}section/64", "Digital Economy Act 2017 s.64 (research)"),
    Term(f"{DEA_2017}section/80", "Digital Economy Act 2017 s.80 (statistics)"),
    Term("https://www.legislation.gov.uk/ukpga/1980/44/section/53", "Education (Scotland) Act 1980 s.53 "
         "(school meals)"),
]}
LEGAL_BASES.update(STATUTORY_GATEWAYS)

# ---------------------------------------------------------------------------------------------------- data categories
DATA_CATEGORIES: dict[str, Term] = {t.iri: t for t in [
    Term(PD + "Identifying", "Identifying"),
    Term(PD + "Name", "Name", (PD + "Identifying",)),
    Term(PD + "OfficialID", "Official identifier", (PD + "Identifying",)),
    Term(PD + "Demographic", "Demographic"),
    Term(PD + "Age", "Age", (PD + "Demographic",)),
    Term(PD + "Gender", "Gender", (PD + "Demographic",)),
    Term(PD + "Location", "Location"),
    Term(PD + "PhysicalAddress", "Physical (postal) address", (PD + "Location",)),
    Term(PD + "Financial", "Financial"),
    Term(PD + "Income", "Income", (PD + "Financial",)),
    Term(PD + "Household", "Household"),
    Term(PD + "Family", "Family"),
    Term(PD + "FamilyStructure", "Family structure", (PD + "Family",)),
    Term(PD + "Education", "Education"),
    # DPV's Art 9 grouping (DPV-PD puts EthnicOrigin, Religion, Sexual, MedicalHealth under it)
    Term(DPV + "SpecialCategoryPersonalData", "Special category personal data", special=True),
    Term(PD + "Health", "Health", (DPV + "SpecialCategoryPersonalData",), special=True),
    Term(PD + "MentalHealth", "Mental health", (PD + "Health",), special=True),
    Term(PD + "Disability", "Disability", (PD + "Health",), special=True),
    Term(PD + "HealthRecord", "Health record", (PD + "Health",), special=True),
    Term(PD + "MedicalHealth", "Medical health", (PD + "Health",), special=True),
    Term(CEAD + "Genetic", "Genetic data", (DPV + "SpecialCategoryPersonalData",), special=True),
    Term(CEAD + "Biometric", "Biometric data (for identification)", (DPV + "SpecialCategoryPersonalData",),
         special=True),
    Term(CEAD + "PoliticalOpinion", "Political opinions", (DPV + "SpecialCategoryPersonalData",), special=True),
    Term(CEAD + "TradeUnionMembership", "Trade union membership", (DPV + "SpecialCategoryPersonalData",),
         special=True),
    Term(CEAD + "SocialCareRecord", "Social care record (confidential care information)"),
    Term(CEAD + "DelayedDischarge", "Delayed discharge from hospital", (PD + "HealthRecord",), special=True),
    Term(PD + "EthnicOrigin", "Ethnic origin", (DPV + "SpecialCategoryPersonalData",), special=True),
    Term(PD + "Religion", "Religion", (DPV + "SpecialCategoryPersonalData",), special=True),
    # DPV-PD has no SexualOrientation: pd:Sexual is "sexuality and sexual history" (Art 9's sex life or orientation)
    Term(PD + "Sexual", "Sex life and sexual orientation", (DPV + "SpecialCategoryPersonalData",), special=True),
    Term(PD + "Criminal", "Criminal", criminal=True),
    Term(PD + "CriminalCharge", "Criminal charge", (PD + "Criminal",), criminal=True),
    Term(PD + "CriminalConviction", "Criminal conviction", (PD + "Criminal",), criminal=True),
    Term(PD + "CriminalOffense", "Criminal offence", (PD + "Criminal",), criminal=True),
    # Cead terms where DPV has none
    Term(CEAD + "HousingSituation", "Housing situation and homelessness", (PD + "Household",)),
    Term(CEAD + "BenefitEntitlement", "Social security benefit entitlement", (PD + "Financial",)),
    Term(CEAD + "SchoolEnrolment", "School enrolment", (PD + "Education",)),
    Term(CEAD + "Aggregate", "Aggregate statistics (not personal data once disclosure control is applied)"),
]}

DATA_SUBJECTS: dict[str, Term] = {t.iri: t for t in [
    Term(DPV + "DataSubject", "Data subject"),
    Term(DPV + "Citizen", "Citizen", (DPV + "DataSubject",)),
    Term(DPV + "Child", "Child", (DPV + "DataSubject",)),
    Term(DPV + "Adult", "Adult", (DPV + "DataSubject",)),
    Term(DPV + "ParentOfDataSubject", "Parent of a data subject", (DPV + "DataSubject",)),
    Term(DPV + "VulnerableDataSubject", "Vulnerable data subject", (DPV + "DataSubject",)),
    Term(CEAD + "Suspect", "Suspect or offender", (DPV + "DataSubject",)),
    Term(CEAD + "Victim", "Victim", (DPV + "DataSubject",)),
    Term(CEAD + "BenefitRecipient", "Social security recipient", (DPV + "Citizen",)),
    Term(CEAD + "Pupil", "Pupil", (DPV + "Child",)),
    Term(CEAD + "HomelessApplicant", "Homelessness applicant", (DPV + "VulnerableDataSubject",)),
]}

# ---------------------------------------------------------------------------------------------------- certifications
CERTIFICATION_SCHEMES: dict[str, Term] = {t.iri: t for t in [
    Term(CEAD + "CyberEssentials", "Cyber Essentials (NCSC)"),
    Term(CEAD + "CyberEssentialsPlus", "Cyber Essentials Plus (NCSC)", (CEAD + "CyberEssentials",)),
    Term(CEAD + "ISO27001", "ISO/IEC 27001 information security management"),
    Term(CEAD + "ICORegistration", "ICO data protection fee registration"),
    Term(CEAD + "ScottishPublicSectorCyberResilienceFramework", "Scottish Public Sector Cyber Resilience Framework"),
    Term(CEAD + "DEAAccreditedProcessor", "Digital Economy Act 2017 accredited processing environment"),
    Term(CEAD + "DEAAccreditedResearcher", "Digital Economy Act 2017 accredited researcher"),
    Term(CEAD + "PBPPApproval", "NHS Scotland Public Benefit and Privacy Panel approval"),
    Term(CEAD + "NHSDSPT", "NHS Data Security and Protection Toolkit"),
]}

# ---------------------------------------------------------------------------------------------------- ordered scales
# each list runs from least to most; JSON values are these names ("@type": "@vocab" terms in the context)
SENSITIVITY = ["Anonymised", "Pseudonymised", "Personal", "SpecialCategory", "CriminalOffence"]
DPIA_RISK = ["LowRisk", "MediumRisk", "HighRisk"]
ONWARD_SHARING = ["Prohibited", "WithApproval", "Permitted"]
# what a legal-basis IRI does in the rulebook (``schemas/rulebook``) and in an organisation's vocabulary file
LEGAL_BASIS_KINDS = ("article6", "article9", "article10", "schedule1", "part3", "schedule8", "part3OtherPurpose",
                     "gateway", "confidentiality")
ACTIONS = ["ApproveDisclosure", "ApproveReceipt", "Renew", "Vary", "Suspend", "Revoke", "SubDelegate"]


def rank(scale: list[str], value: str) -> int:
    """Position of ``value`` on an ordered scale; ValueError for an unknown value."""
    try:
        return scale.index(value)
    except ValueError:
        raise ValueError(f"{value!r} is not one of {', '.join(scale)}") from None


# ---------------------------------------------------------------------------------------------------- hierarchy
_VERSIONS = itertools.count(1)


class Vocabulary:
    """The "lies within" relation between IRIs: DPV ``broader`` for purposes/categories, DCAT ``isPartOf`` for
    datasets. ``within(a, b)`` is reflexive and transitive; cycles in the data are harmless."""

    def __init__(self, edges: Mapping[str, Iterable[str]] | None = None):
        self._up: dict[str, set[str]] = {}
        # a number no other vocabulary, and no other state of this one, ever has: a result computed under this
        # vocabulary may be kept under it (every add() takes a new one)
        self.version = next(_VERSIONS)
        self._ancestors: dict[str, frozenset[str]] = {}   # memo of ancestors(), emptied by every add()
        # an organisation's own additions for the lawful-basis rulebook (``verifier.lawful``): legal-basis IRIs it
        # knows (IRI -> {"label", "kind"}) and the DIDs it knows to be competent authorities (DPA 2018 Sch 7)
        self.legal_bases: dict[str, dict] = {}
        self.competent_authorities: set[str] = set()
        for term, parents in (edges or {}).items():
            self.add(term, *parents)

    def add(self, term: str, *broader: str) -> None:
        """Record that ``term`` lies within each of ``broader`` (compact IRIs are expanded)."""
        self._up.setdefault(expand(term), set()).update(expand(b) for b in broader)
        self._ancestors = {}
        self.version = next(_VERSIONS)

    def load(self, data: Mapping[str, Any]) -> "Vocabulary":
        """Add ``{"broader": {term: [broader, ...]}, "isPartOf": {dataset: [catalogue, ...]}}``; returns self.
        Raises ValueError naming the bad entry."""
        if not isinstance(data, Mapping):
            raise ValueError("vocabulary data must be an object with 'broader' and/or 'isPartOf'")
        unknown = set(data) - {"broader", "isPartOf", "legalBases", "competentAuthorities"}
        if unknown:
            raise ValueError(f"unknown vocabulary keys: {sorted(unknown)}")
        for key in ("broader", "isPartOf"):
            section = data.get(key, {})
            if not isinstance(section, Mapping):
                raise ValueError(f"'{key}' must be an object mapping an IRI to a list of IRIs")
            for term, parents in section.items():
                if isinstance(parents, str):
                    parents = [parents]
                if not isinstance(term, str) or not isinstance(parents, list) or \
                        not all(isinstance(p, str) and p for p in parents):
                    raise ValueError(f"'{key}' entry for {term!r} must be an IRI or a list of IRIs")
                self.add(term, *parents)
        bases = data.get("legalBases", {})
        if not isinstance(bases, Mapping):
            raise ValueError("'legalBases' must map a legal-basis IRI to {\"label\": ..., \"kind\": ...}")
        for iri, entry in bases.items():
            if not isinstance(iri, str) or not isinstance(entry, Mapping) or not isinstance(entry.get("label"), str) \
                    or entry.get("kind") not in LEGAL_BASIS_KINDS:
                raise ValueError(f"'legalBases' entry for {iri!r} needs a 'label' and a 'kind', one of "
                                 f"{', '.join(LEGAL_BASIS_KINDS)}")
            self.legal_bases[expand(iri)] = {"label": entry["label"], "kind": entry["kind"]}
        authorities = data.get("competentAuthorities", [])
        if not isinstance(authorities, list) or not all(isinstance(d, str) and d.startswith("did:")
                                                        for d in authorities):
            raise ValueError("'competentAuthorities' must be a list of DIDs")
        self.competent_authorities.update(authorities)
        return self

    def copy(self) -> "Vocabulary":
        voc = Vocabulary({t: set(p) for t, p in self._up.items()})
        voc.legal_bases = dict(self.legal_bases)
        voc.competent_authorities = set(self.competent_authorities)
        return voc

    def ancestors(self, term: str) -> set[str]:
        """``term`` and everything it lies within (a fresh set the caller may change)."""
        return set(self._ancestors_of(term))

    def _ancestors_of(self, term: str) -> frozenset[str]:
        memo = self._ancestors
        found = memo.get(term)
        if found is None:
            seen = {expand(term)}
            todo = list(seen)
            while todo:
                for parent in self._up.get(todo.pop(), ()):
                    if parent not in seen:
                        seen.add(parent)
                        todo.append(parent)
            found = frozenset(seen)
            if len(memo) < 65536:   # bounded: terms come from credentials
                memo[term] = found
        return found

    def within(self, child: str, parent: str) -> bool:
        return expand(parent) in self._ancestors_of(child)

    def narrower(self, term: str) -> set[str]:
        """``term`` and every known term that lies within it (e.g. Cyber Essentials Plus for Cyber Essentials):
        what ``within(x, term)`` accepts, as far as this vocabulary knows."""
        term = expand(term)
        return {term} | {t for t in self._up if self.within(t, term)}

    def within_any(self, child: str, parents: Iterable[str]) -> bool:
        up = self._ancestors_of(child)
        return any(expand(p) in up for p in parents)

    def implied_sensitivity(self, categories: Iterable[str]) -> str:
        """The least sensitivity the data categories imply (DPV terms): CriminalOffence if any lies within a
        criminal-offence category, SpecialCategory if any lies within an Art 9 category, else Personal. A declared
        label may never be lower, unless a checked anonymising protocol applies."""
        level = "Personal"
        for category in categories:
            up = self.ancestors(category)
            if any(t in DATA_CATEGORIES and DATA_CATEGORIES[t].criminal for t in up):
                return "CriminalOffence"
            if any(t in DATA_CATEGORIES and DATA_CATEGORIES[t].special for t in up):
                level = "SpecialCategory"
        return level

    def is_health(self, category: str) -> bool:
        """Health or social-care information (the Scottish common-law duty of confidentiality applies)."""
        up = self.ancestors(category)
        return PD + "Health" in up or CEAD + "SocialCareRecord" in up

    def is_special_category(self, category: str) -> bool:
        """Art 9 special category data only (not criminal-offence data)."""
        return any(t in DATA_CATEGORIES and DATA_CATEGORIES[t].special for t in self.ancestors(category))

    def is_criminal(self, category: str) -> bool:
        """Art 10 criminal-offence data."""
        return any(t in DATA_CATEGORIES and DATA_CATEGORIES[t].criminal for t in self.ancestors(category))

    def is_special(self, category: str) -> bool:
        """Special category (Art 9) or criminal offence (Art 10) data, directly or via a broader category."""
        return any(t in DATA_CATEGORIES and (DATA_CATEGORIES[t].special or DATA_CATEGORIES[t].criminal)
                   for t in self.ancestors(category))


def builtin() -> Vocabulary:
    """A fresh Vocabulary with only the built-in terms."""
    voc = Vocabulary()
    for table in (PURPOSES, DATA_CATEGORIES, DATA_SUBJECTS, CERTIFICATION_SCHEMES):
        for term in table.values():
            voc.add(term.iri, *term.broader)
    return voc


_REGISTRY = builtin()


def registry() -> Vocabulary:
    """The process-wide vocabulary used when a check is not given one. Extend it at start-up with ``load``."""
    return _REGISTRY


def extended(base: Vocabulary, path: str | Path) -> Vocabulary:
    """A copy of ``base`` extended by a JSON or YAML file of ``{"broader": {...}, "isPartOf": {...}}`` (what
    ``cead init --vocabulary`` and a trust policy's ``vocabulary`` name). ValueError naming the file otherwise."""
    from .values import load_document, read_text
    path = Path(path)
    try:
        text = read_text(path)
    except FileNotFoundError:
        raise ValueError(f"no such file {str(path)!r}") from None
    except OSError as exc:
        raise ValueError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    try:
        return base.copy().load(load_document(text, repr(str(path))))
    except ValueError as exc:
        raise ValueError(f"{str(path)!r}: {exc}") from None


# ---------------------------------------------------------------------------------------------------- time
_N = r"(\d+(?:\.\d+)?)"
DURATION_PATTERN = rf"^P(?!$)(?:{_N}Y)?(?:{_N}M)?(?:{_N}W)?(?:{_N}D)?(?:T(?=\d)(?:{_N}H)?(?:{_N}M)?(?:{_N}S)?)?$"
_DURATION = re.compile(DURATION_PATTERN)
_DAY = 86400.0
_UNIT_SECONDS = (365.2425 * _DAY, 30.436875 * _DAY, 7 * _DAY, _DAY, 3600.0, 60.0, 1.0)


def duration_seconds(value: str) -> float:
    """An ISO 8601 duration (``P1Y``, ``P6M``, ``P30D``, ``PT12H``) in seconds, with the Gregorian average year and
    month so that durations can be compared. ValueError if malformed."""
    m = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if not m:
        raise ValueError(f"{value!r} is not an ISO 8601 duration such as P1Y, P6M or P30D")
    return sum(float(g) * s for g, s in zip(m.groups(), _UNIT_SECONDS) if g)


@dataclass(frozen=True)
class RepeatingInterval:
    """An ISO 8601 repeating interval ``R[n]/<start>/<duration>``: ``R1/...`` is a one-off transfer."""
    repetitions: int | None    # None: unbounded
    start: datetime
    period: str

    @classmethod
    def parse(cls, value: str) -> "RepeatingInterval":
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not an ISO 8601 repeating interval such as R/2026-01-01T00:00:00Z/P1M")
        return _repeating_interval(cls, value)

    @classmethod
    def _parse(cls, value: str) -> "RepeatingInterval":
        m = re.fullmatch(r"R(\d*)/([^/]+)/(P[^/]+)", value) if isinstance(value, str) else None
        if not m:
            raise ValueError(f"{value!r} is not an ISO 8601 repeating interval such as R/2026-01-01T00:00:00Z/P1M")
        reps = int(m.group(1)) if m.group(1) else None
        if reps == 0:
            raise ValueError(f"{value!r} repeats zero times")
        seconds = duration_seconds(m.group(3))
        if seconds <= 0:
            raise ValueError(f"{value!r} has a zero period")
        return cls(reps, parse_datetime(m.group(2)), m.group(3))

    @property
    def per_year(self) -> float:
        """The largest number of transfers in any one year."""
        per = _UNIT_SECONDS[0] / duration_seconds(self.period)
        return per if self.repetitions is None else min(float(self.repetitions), max(per, 1.0))


@functools.lru_cache(maxsize=1024)
def _repeating_interval(cls, value: str) -> RepeatingInterval:
    """``RepeatingInterval.parse``, memoised (the value is frozen; a malformed one raises every time)."""
    return cls._parse(value)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
