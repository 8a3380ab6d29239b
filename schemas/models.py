"""Typed models of Cead's three credential types, their scope and their privacy protocols (one definition, used by
issuer, wallet and verifier alike; the JSON Schemas in ``schemas/jsonschema/`` are generated from these models).

Field names are snake_case in Python and camelCase on the wire. IRIs are held expanded (``https://w3id.org/dpv#X``)
and written compact (``dpv:X``). Unknown properties are refused: a restriction an old reader ignored would widen a
grant, so reading fails closed.
"""
from __future__ import annotations

import base64
import math
import hashlib
import re
from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Literal, Optional, Union

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer,
                      ValidationError, model_validator)
from pydantic.alias_generators import to_camel

from .errors import CeadError

from . import jcs, vocab
from .values import IRI_RE

# ------------------------------------------------------------------------------------------------- value types


# compiled once (re.fullmatch with a pattern string looks it up in re's cache on every call: a first-seen
# credential's model checks a few dozen IRIs and DIDs)
_IRI_RE = IRI_RE
_DID_VALUE_RE = re.compile(r"did:[a-z0-9]+:[A-Za-z0-9._:%-]*[A-Za-z0-9._%-]")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iri(value: str) -> str:
    if not isinstance(value, str):
        raise ValueError("must be an IRI string")
    full = vocab.expand(value)
    if not _IRI_RE.fullmatch(full):
        raise ValueError(f"{value!r} is not an absolute IRI (or a compact IRI with a known prefix)")
    return full


def _did(value: str) -> str:
    if not isinstance(value, str) or not _DID_VALUE_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a DID")
    return value


def _datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("date-time needs a time zone")
        return value
    return vocab.parse_datetime(value)


def _date(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)")
    return date.fromisoformat(value)


def _duration(value: str) -> str:
    vocab.duration_seconds(value)
    return value


def _one_of(scale: list[str]):
    def check(value: str) -> str:
        vocab.rank(scale, value)
        return value
    return check


def _ts(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


Iri = Annotated[str, AfterValidator(_iri), PlainSerializer(vocab.compact, return_type=str),
                Field(json_schema_extra={"format": "iri"})]
Did = Annotated[str, AfterValidator(_did), Field(json_schema_extra={"pattern": r"^did:[a-z0-9]+:.+$"})]
DateTime = Annotated[datetime, BeforeValidator(_datetime), PlainSerializer(_ts, return_type=str),
                     Field(json_schema_extra={"type": "string", "format": "date-time"})]
Day = Annotated[date, BeforeValidator(_date), Field(json_schema_extra={"type": "string", "format": "date"})]
Duration = Annotated[str, AfterValidator(_duration), Field(json_schema_extra={"pattern": vocab.DURATION_PATTERN})]
# the enumerations are the vocabulary's ordered scales (one list each, in schemas.vocab)
Sensitivity = Literal[tuple(vocab.SENSITIVITY)]
DpiaRisk = Literal[tuple(vocab.DPIA_RISK)]
OnwardSharing = Literal[tuple(vocab.ONWARD_SHARING)]
Action = Literal[tuple(vocab.ACTIONS)]
Regime = Literal[tuple(vocab.REGIME_NAMES)]
PositiveInt = Annotated[int, Field(ge=0, strict=True)]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              validate_assignment=True)

    def to_json(self) -> dict[str, Any]:
        """The wire form: camelCase, compact IRIs, no empty optional fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Ref(_Model):
    """A pointer to another credential, pinned by its digest (see ``credential_digest``)."""
    id: Annotated[str, AfterValidator(_iri)]
    digest: Annotated[str, Field(pattern=r"^sha256-[A-Za-z0-9_-]{43}$")]


# ------------------------------------------------------------------------------------------------- privacy protocols


class Threshold(_Model):
    """Every published count is at least ``min_cell_count`` (optionally with secondary suppression so that
    suppressed cells cannot be recovered from totals to within ``protection_interval``, default the minimum cell
    count). ``hierarchy`` names parent areas and their parts (e.g. ``{"Scotland": ["Fife", ...]}``) so that a
    parent row is audited as the total of its parts."""
    kind: Literal["threshold"] = "threshold"
    min_cell_count: Annotated[int, Field(ge=1, strict=True)]
    secondary_suppression: bool = False
    zeros_allowed: bool = False          # true: a count of 0 may be published (structural zeros)
    # the table's count columns, as approved; absent: every column of whole numbers is a count (a transfer's
    # manifest may add count columns, never remove one)
    count_columns: Optional[Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]] = None
    protection_interval: Annotated[int, Field(ge=1, strict=True)] | None = None
    hierarchy: dict[Annotated[str, Field(min_length=1)], Annotated[list[str], Field(min_length=1)]] | None = None

    @property
    def protection(self) -> int:
        return self.protection_interval if self.protection_interval is not None else self.min_cell_count


class Dominance(_Model):
    """(n, k) dominance: a cell is unsafe when its ``n`` largest contributors make up more than ``k`` % of it;
    with ``p``, also the p% rule: unsafe when the rest (without the two largest) is under ``p`` % of the largest,
    so the second largest contributor could estimate the largest to within p %."""
    kind: Literal["dominance"] = "dominance"
    n: Annotated[int, Field(ge=1, strict=True)]
    k: Annotated[float, Field(gt=0, le=100)]
    p: Annotated[float, Field(gt=0, le=100)] | None = None


class Rounding(_Model):
    """Every published count is rounded to a multiple of ``base`` (e.g. 5; suppressed cells aside), so a small
    count, or the difference between two releases, is not known exactly. ``count_columns``: the table's count
    columns as approved (absent: a ``count`` column and any the manifest names)."""
    kind: Literal["rounding"] = "rounding"
    base: Annotated[int, Field(ge=2, le=1_000_000, strict=True)]
    count_columns: Optional[Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]] = None


class PtableEntry(_Model):
    """One row of a cell-key perturbation table: a cell whose original count is ``count`` (the largest count listed
    applies to every larger count) and whose cell key falls in [the previous row's ``upper`` for that count (0 for
    the first), ``upper``) is published as its count plus ``perturbation``."""
    count: Annotated[int, Field(ge=0, strict=True)]
    perturbation: Annotated[int, Field(strict=True)]
    upper: Annotated[float, Field(gt=0, le=1)]


class CellKeyPerturbation(_Model):
    """Cell-key perturbation (the ABS / ONS method): every record of the provider's data carries a random record
    key in [0, ``modulus``); a cell's key is the sum of its records' keys modulo ``modulus``, divided by it; the
    count published is the original count plus the ``ptable`` entry for that count and cell key. The same cell is
    always perturbed the same way, so repeated or overlapping releases do not average the noise away; the
    provider, which holds the record keys, can reproduce every published value."""
    kind: Literal["cellKeyPerturbation"] = "cellKeyPerturbation"
    modulus: Annotated[int, Field(ge=2, le=2**62, strict=True)] = 2**32
    ptable: Annotated[list[PtableEntry], Field(min_length=1, max_length=10_000)]
    count_columns: Optional[Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]] = None

    @model_validator(mode="after")
    def _complete(self) -> "CellKeyPerturbation":
        counts = sorted({e.count for e in self.ptable})
        if counts != list(range(counts[-1] + 1)):
            raise ValueError("the ptable must have rows for every count from 0 to its largest")
        for count in counts:
            uppers = [e.upper for e in self.ptable if e.count == count]
            if uppers != sorted(set(uppers)) or uppers[-1] != 1:
                raise ValueError(f"the ptable rows for count {count} must have increasing upper bounds ending at 1")
        if any(e.count + e.perturbation < 0 for e in self.ptable):
            raise ValueError("a ptable row would publish a negative count")
        return self

    @property
    def max_perturbation(self) -> int:
        return max(abs(e.perturbation) for e in self.ptable)


class PrivacyBudget(_Model):
    """What may be spent in one ``period`` (ISO 8601 duration): total epsilon or rho, and a number of releases.
    Periods are anchored at ``start`` (absent: the start of the approval's cadence) and counted by the data
    owner's ledger, never by the recipient."""
    period: Duration
    start: DateTime | None = None
    epsilon: Annotated[float, Field(gt=0)] | None = None
    rho: Annotated[float, Field(gt=0)] | None = None
    max_releases: Annotated[int, Field(ge=1, strict=True)] | None = None

    @model_validator(mode="after")
    def _something(self) -> "PrivacyBudget":
        if self.epsilon is None and self.rho is None and self.max_releases is None:
            raise ValueError("a budget needs epsilon, rho or maxReleases")
        return self


class Clipping(_Model):
    """Each contribution is clamped to [lower, upper] before summing (bounds a sum's sensitivity)."""
    lower: float
    upper: float

    @model_validator(mode="after")
    def _ordered(self) -> "Clipping":
        if not (math.isfinite(self.lower) and math.isfinite(self.upper)) or self.lower >= self.upper:
            raise ValueError("clipping needs finite lower < upper")
        return self


# the unit whose presence or absence the guarantee hides, weakest first: protecting a household protects each of
# its people, protecting a person protects each of their records
UNITS_OF_PRIVACY = ["record", "person", "household"]


class DifferentialPrivacy(_Model):
    """Per release: (epsilon, delta)-DP (delta 0 or absent = pure DP) or rho-zCDP; optionally a budget per period.
    ``mechanism`` (laplace: pure epsilon-DP; gaussian: rho-zCDP or (epsilon, delta)-DP), ``unit_of_privacy`` and
    ``max_contributions`` (rows one unit may add; the count's sensitivity) and ``clipping`` (a sum's bounds) say
    how the provider's release adds the noise."""
    kind: Literal["differentialPrivacy"] = "differentialPrivacy"
    epsilon: Annotated[float, Field(gt=0)] | None = None
    delta: Annotated[float, Field(ge=0, lt=1)] | None = None
    rho: Annotated[float, Field(gt=0)] | None = None
    budget: PrivacyBudget | None = None
    mechanism: Literal["laplace", "gaussian"] | None = None
    unit_of_privacy: Literal[tuple(UNITS_OF_PRIVACY)] | None = None
    max_contributions: Annotated[int, Field(ge=1, strict=True)] | None = None
    clipping: Clipping | None = None

    @model_validator(mode="after")
    def _one_guarantee(self) -> "DifferentialPrivacy":
        if (self.epsilon is None) == (self.rho is None):
            raise ValueError("give exactly one of epsilon (with optional delta) or rho per release")
        if self.rho is not None and self.delta is not None:
            raise ValueError("delta goes with epsilon, not with rho")
        if self.mechanism == "laplace" and (self.rho is not None or self.delta):
            raise ValueError("the laplace mechanism gives pure epsilon-DP: give epsilon without delta")
        if self.mechanism == "gaussian" and self.epsilon is not None and not self.delta:
            raise ValueError("the gaussian mechanism needs rho, or epsilon with a delta above 0")
        return self


DEFAULT_MIN_INPUT_PARTIES = 3   # an aggregate of two parties reveals each to the other; of one, to everyone


class SecureAggregation(_Model):
    """Inputs are secret-shared among compute parties; only output parties learn the aggregate. Breaking it needs
    ``collusion_threshold`` independent *organisations* running compute parties to collude (several DIDs of one
    organisation count once; a compute party of an output party's organisation counts as already colluding).
    At least ``min_input_parties`` (default 3) must contribute."""
    kind: Literal["secureAggregation"] = "secureAggregation"
    input_parties: Annotated[list[Did], Field(min_length=1)]
    compute_parties: Annotated[list[Did], Field(min_length=1)]
    output_parties: Annotated[list[Did], Field(min_length=1)]
    collusion_threshold: Annotated[int, Field(ge=1, strict=True)]
    threat_model: Literal["semiHonest", "malicious"] = "semiHonest"
    min_input_parties: Annotated[int, Field(ge=2, strict=True)] | None = None

    @property
    def minimum_inputs(self) -> int:
        return self.min_input_parties if self.min_input_parties is not None else DEFAULT_MIN_INPUT_PARTIES

    @model_validator(mode="after")
    def _threshold_fits(self) -> "SecureAggregation":
        if self.collusion_threshold > len(self.compute_parties):
            raise ValueError("collusionThreshold cannot exceed the number of compute parties")
        if len(set(self.input_parties)) < self.minimum_inputs:
            raise ValueError(f"at least {self.minimum_inputs} input parties are needed (minInputParties); an "
                             "aggregate of fewer reveals the parties' own figures")
        return self


class PsiCardinality(_Model):
    """Private set intersection cardinality: only ``learners`` learn |A ∩ B|, nobody learns the members."""
    kind: Literal["psiCardinality"] = "psiCardinality"
    parties: Annotated[list[Did], Field(min_length=2)]
    learners: Annotated[list[Did], Field(min_length=1)]
    threat_model: Literal["semiHonest", "malicious"] = "semiHonest"
    min_set_size: Annotated[int, Field(ge=1, strict=True)] | None = None   # each party's set at least this big

    @model_validator(mode="after")
    def _learners_are_parties(self) -> "PsiCardinality":
        outsiders = [d for d in self.learners if d not in self.parties]
        if outsiders:
            raise ValueError(f"learners must be parties: {outsiders}")
        return self


class Pseudonymisation(_Model):
    """Direct identifiers replaced by pseudonyms; only ``key_holder`` can re-identify. A record-level extract is
    scanned for direct identifiers (names, CHI and NHS numbers, postcodes, dates of birth); with
    ``quasi_identifiers``, every combination of their values is shared by at least ``k_anonymity`` records and
    (with ``sensitive_attributes``) takes at least ``l_diversity`` distinct values of each sensitive attribute."""
    kind: Literal["pseudonymisation"] = "pseudonymisation"
    method: Literal["keyedHash", "tokenisation", "encryption"] = "keyedHash"
    key_holder: Did | None = None
    direct_identifiers_removed: bool = True
    quasi_identifiers: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] | None = None
    k_anonymity: Annotated[int, Field(ge=2, strict=True)] | None = None
    sensitive_attributes: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] | None = None
    l_diversity: Annotated[int, Field(ge=2, strict=True)] | None = None

    @model_validator(mode="after")
    def _groups(self) -> "Pseudonymisation":
        if self.k_anonymity is not None and not self.quasi_identifiers:
            raise ValueError("kAnonymity needs the quasiIdentifiers it is measured over")
        if self.l_diversity is not None and not (self.quasi_identifiers and self.sensitive_attributes):
            raise ValueError("lDiversity needs quasiIdentifiers and sensitiveAttributes")
        return self


class TreOnly(_Model):
    """Data only go to a trusted research environment: the recipient must be the TRE itself (one of
    ``environments``, their DIDs, when listed) and present a valid certification under one of
    ``accreditations`` (default the Digital Economy Act 2017 accredited processing environment scheme); outputs
    leave after output checking."""
    kind: Literal["treOnly"] = "treOnly"
    environments: list[Iri] | None = None     # accredited TREs allowed (their DIDs); None: any accredited TRE
    output_checking: bool = True
    accreditations: Annotated[list[Iri], Field(min_length=1)] | None = None

    @property
    def accreditation_schemes(self) -> list[str]:
        return list(self.accreditations) if self.accreditations else [vocab.CEAD + "DEAAccreditedProcessor"]


PrivacyProtocol = Annotated[Union[Threshold, Dominance, DifferentialPrivacy, SecureAggregation, PsiCardinality,
                                  Pseudonymisation, TreOnly, Rounding, CellKeyPerturbation],
                            Field(discriminator="kind")]


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, dict) or isinstance(value, BaseModel) else value


# a single protocol or a list of protocols that all apply
Protocols = Annotated[list[PrivacyProtocol], BeforeValidator(_as_list)]

# ------------------------------------------------------------------------------------------------- scope


class Scope(_Model):
    """What a grant covers. Every dimension is optional: None means not restricted by that dimension.

    Sets: datasets (DCAT isPartOf), data_items, data_categories and data_subjects and purposes (DPV broader),
    legal_bases, regimes, recipients, actions. Requirements that may only grow: recipient_requirements
    (certification schemes), required_co_signers, privacy_protocol (the weakest protocol allowed).
    Ceilings: max_sensitivity, max_dpia_risk, max_rows_per_transfer, max_transfers_per_year, max_retention,
    onward_sharing, max_delegation_depth. Time: not_before .. not_after.
    """
    datasets: list[Iri] | None = None
    data_items: list[str] | None = None
    data_categories: list[Iri] | None = None
    data_subjects: list[Iri] | None = None
    purposes: list[Iri] | None = None
    legal_bases: list[Iri] | None = None
    regimes: list[Regime] | None = None
    recipients: list[Did] | None = None
    actions: list[Action] | None = None
    recipient_requirements: list[Iri] | None = None
    required_co_signers: list[Did] | None = None
    privacy_protocol: Protocols | None = None
    not_before: DateTime | None = None
    not_after: DateTime | None = None
    max_sensitivity: Sensitivity | None = None
    max_dpia_risk: DpiaRisk | None = None
    max_rows_per_transfer: PositiveInt | None = None
    max_transfers_per_year: PositiveInt | None = None
    max_retention: Duration | None = None
    onward_sharing: OnwardSharing | None = None
    max_delegation_depth: PositiveInt | None = None

    @model_validator(mode="after")
    def _window(self) -> "Scope":
        if self.not_before and self.not_after and self.not_after < self.not_before:
            raise ValueError("notAfter is before notBefore")
        return self


# ------------------------------------------------------------------------------------------------- credentials


class _Subject(_Model):
    credential_type: ClassVar[str]
    schema_file: ClassVar[str]

    @classmethod
    def schema_id(cls) -> str:
        return vocab.SCHEMA_BASE + cls.schema_file

    @classmethod
    def from_credential(cls, cred: dict):
        """Read the credentialSubject of a decoded credential; CeadError ``schema.invalid`` if it does not fit."""
        if not isinstance(cred, dict):
            raise CeadError("schema.invalid", "A credential must be a JSON object.")
        types = cred.get("type")
        types = [types] if isinstance(types, str) else types
        if not isinstance(types, list) or cls.credential_type not in types:
            raise CeadError("schema.invalid", f"The credential is not a {cls.credential_type}.",
                            expected=cls.credential_type, type=types)
        cead_types = [t for t in types if t in CREDENTIAL_MODELS]
        if len(cead_types) > 1:   # read as one type and relied on as another: never
            raise CeadError("schema.invalid", f"A credential has one Cead type; this one has {cead_types}.",
                            expected=cls.credential_type, type=cead_types)
        subject = cred.get("credentialSubject")
        if isinstance(subject, list) and len(subject) == 1:
            subject = subject[0]
        if not isinstance(subject, dict):
            raise CeadError("schema.invalid", f"A {cls.credential_type} needs exactly one credentialSubject object.")
        try:
            return cls.model_validate(subject)
        except ValidationError as exc:
            raise CeadError("schema.invalid", f"{cls.credential_type}: {describe(exc)}",
                            errors=[{"at": _loc(e["loc"]), "problem": e["msg"]} for e in exc.errors()]) from None

    def to_credential(self, issuer: str, *, id: str | None = None, valid_from: str | None = None,
                      valid_until: str | None = None) -> dict:
        """An unsigned VC 2.0 credential with both contexts, both types and the credentialSchema."""
        cred: dict[str, Any] = {"@context": [vocab.CREDENTIALS_V2, vocab.CONTEXT_URL]}
        if id is not None:
            cred["id"] = id
        cred["type"] = ["VerifiableCredential", self.credential_type]
        cred["issuer"] = issuer
        if valid_from is not None:
            cred["validFrom"] = valid_from
        if valid_until is not None:
            cred["validUntil"] = valid_until
        cred["credentialSchema"] = {"id": self.schema_id(), "type": "JsonSchema"}
        cred["credentialSubject"] = self.to_json()
        return cred


def _loc(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "(top)"


def describe(exc: ValidationError) -> str:
    """A readable one-line summary of a pydantic error: where and what."""
    parts = [f"{_loc(e['loc'])}: {e['msg']}" for e in exc.errors()[:5]]
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


class Party(_Model):
    id: Did | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _named(self) -> "Party":
        if self.id is None and not self.name:
            raise ValueError("a party needs an id (DID) or a name")
        return self


class OrganisationCertification(_Subject):
    """An organisation holds a certification (issued by the certification body)."""
    credential_type: ClassVar[str] = "OrganisationCertificationCredential"
    schema_file: ClassVar[str] = "organisation-certification.json"

    id: Did                                   # the certified organisation
    legal_name: str
    legal_identifier: str                     # e.g. a Companies House or public body identifier
    scheme: Iri
    scheme_version: str | None = None
    certificate_number: str
    level: str | None = None
    status: Literal["Certified", "Suspended", "Withdrawn"] = "Certified"
    certification_scope: str | None = None
    certification_body: Party
    accreditation_body: Party | None = None
    issue_date: Day
    expiry_date: Day
    register_url: Annotated[str, AfterValidator(_iri)] | None = Field(None, alias="register")

    @model_validator(mode="after")
    def _dates(self) -> "OrganisationCertification":
        if self.expiry_date < self.issue_date:
            raise ValueError("expiryDate is before issueDate")
        return self

    def valid_on(self, day: date) -> bool:
        return self.status == "Certified" and self.issue_date <= day <= self.expiry_date


# A delegate's name as the delegating issuer writes it ("Jane Smith", "Head of Housing Analysis"): one line of
# printable text, no surrounding spaces, at most 200 characters. The delegator's signature attests it; nothing
# checks that it names a real person.
DelegateName = Annotated[str, Field(min_length=1, max_length=200,
                                    pattern=r"^[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?$")]


class DelegatedAuthority(_Subject):
    """A controller (or a delegate allowed to sub-delegate) lets ``delegate`` act for it within a scope."""
    credential_type: ClassVar[str] = "DelegatedAuthorityCredential"
    schema_file: ClassVar[str] = "delegated-authority.json"

    id: Did                                   # the delegate
    name: DelegateName | None = None          # the person or post delegated to, as the delegating issuer names it
    role: str                                 # e.g. "DataProtectionOfficer", "InformationAssetOwner"
    on_behalf_of: Did                         # the controller organisation
    parent_delegation: Ref | None = None
    allowed_actions: Annotated[list[Action], Field(min_length=1)]
    grant: Scope = Field(alias="scope")

    @model_validator(mode="after")
    def _actions_in_one_place(self) -> "DelegatedAuthority":
        if self.grant.actions is not None:
            raise ValueError("scope.actions is not used in a delegation: list actions in allowedActions")
        return self

    @property
    def delegate(self) -> str:
        return self.id

    @property
    def controller(self) -> str:
        return self.on_behalf_of

    @property
    def parent(self) -> dict | None:
        return self.parent_delegation.to_json() if self.parent_delegation else None

    @property
    def max_further_delegation_depth(self) -> int | None:
        """How many levels of sub-delegation may still follow (0: none; None: unlimited)."""
        if "SubDelegate" not in self.allowed_actions:
            return 0
        return self.grant.max_delegation_depth

    @property
    def scope(self) -> Scope:
        """The delegation's grant as a Scope, with the allowed actions as its ``actions`` dimension."""
        return self.grant.model_copy(update={"actions": list(self.allowed_actions)})


class LawfulBasis(_Model):
    """One party's lawful basis: the regime it processes under and the legal bases (Art 6, Art 9/10 condition,
    DPA 2018 Schedule 1 / Part 3 condition, statutory gateway)."""
    party: Did
    regime: Regime
    legal_bases: Annotated[list[Iri], Field(min_length=1)]

    @model_validator(mode="after")
    def _bases_fit_regime(self) -> "LawfulBasis":
        regime_iri = vocab.REGIME_NAMES[self.regime]
        wrong = [b for b in self.legal_bases
                 if b in vocab.LEGAL_BASES and vocab.LEGAL_BASES[b].regime not in (None, regime_iri)]
        if wrong:
            raise ValueError(f"the legal bases {', '.join(vocab.LEGAL_BASES[b].label for b in wrong)} do not belong "
                             f"to the regime {vocab.REGIMES[regime_iri].label}")
        return self


class Dpia(_Model):
    outcome: DpiaRisk
    reference: Annotated[str, AfterValidator(_iri)] | None = None
    date: Day | None = None


class Retention(_Model):
    received_data: Duration
    derived_data: Duration | None = None

    @property
    def longest(self) -> str:
        if self.derived_data and vocab.duration_seconds(self.derived_data) > vocab.duration_seconds(
                self.received_data):
            return self.derived_data
        return self.received_data


class CompatibilityAssessment(_Model):
    """A recorded assessment under UK GDPR Art 6(4) that a new purpose is compatible with the purposes data were
    obtained for: the factors (a) to (e), weighed by the disclosing controller's DPO (``assessed_by``), who signs or
    co-signs the approval. ``verifier.lawful`` refuses an assessment missing a factor or made by someone else."""
    reference: Annotated[str, AfterValidator(_iri)]
    date: Day
    outcome: Literal["Compatible"]
    assessed_by: Did | None = None
    link_between_purposes: Annotated[str, Field(min_length=1)] | None = None     # (a)
    context_of_collection: Annotated[str, Field(min_length=1)] | None = None     # (b)
    nature_of_data: Annotated[str, Field(min_length=1)] | None = None            # (c)
    consequences: Annotated[str, Field(min_length=1)] | None = None              # (d)
    safeguards: Annotated[str, Field(min_length=1)] | None = None                # (e)

    FACTORS: ClassVar[dict[str, str]] = {
        "linkBetweenPurposes": "(a) the link between the purposes", "contextOfCollection": "(b) the context in "
        "which the data were collected", "natureOfData": "(c) the nature of the data", "consequences": "(d) the "
        "possible consequences for data subjects", "safeguards": "(e) appropriate safeguards"}

    def missing_factors(self) -> list[str]:
        """The Art 6(4) factors not recorded, as their wire names."""
        data = self.to_json()
        return [name for name in self.FACTORS if not data.get(name)]


class Confidentiality(_Model):
    """How the Scottish common-law duty of confidentiality is met for health and care data: the data subjects'
    consent, or a Public Benefit and Privacy Panel approval (its reference)."""
    met_by: Literal["Consent", "PBPPApproval"]
    reference: Annotated[str, AfterValidator(_iri)] | None = None
    date: Day | None = None

    @model_validator(mode="after")
    def _pbpp_reference(self) -> "Confidentiality":
        if self.met_by == "PBPPApproval" and self.reference is None:
            raise ValueError("a PBPP approval needs its reference")
        return self


class ColumnSource(_Model):
    """One upstream column: the upstream approval (its id) and the column it shared."""
    upstream: Annotated[str, AfterValidator(_iri)]
    column: Annotated[str, Field(min_length=1)]


class ColumnLineage(_Model):
    """Which upstream columns feed one output column."""
    output: Annotated[str, Field(min_length=1)]
    sources: Annotated[list[ColumnSource], Field(min_length=1)]


Transformation = Literal["Aggregation", "Linkage", "Pseudonymisation", "Selection"]


class Derivation(_Model):
    """How a derived dataset was made from its upstream data (PROV-O activities) and its column lineage."""
    transformations: Annotated[list[Transformation], Field(min_length=1)]
    lineage: list[ColumnLineage] = []


def _cadence(value: str) -> str:
    vocab.RepeatingInterval.parse(value)
    return value


class DataSharingApproval(_Subject):
    """The disclosing controller (or its delegate) approves a data sharing agreement."""
    credential_type: ClassVar[str] = "DataSharingApprovalCredential"
    schema_file: ClassVar[str] = "data-sharing-approval.json"

    agreement: Ref
    discloser: Did
    recipients_: Annotated[list[Did], Field(min_length=1, alias="recipients")]
    processors: list[Did] = []
    delegation_chain: list[Ref] = []          # from the controller's delegation down to the approver's
    datasets: Annotated[list[Iri], Field(min_length=1)]
    data_items: Annotated[list[str], Field(min_length=1)]
    data_categories: Annotated[list[Iri], Field(min_length=1)]
    data_subjects: list[Iri] = []
    purposes: Annotated[list[Iri], Field(min_length=1)]
    lawful_bases: Annotated[list[LawfulBasis], Field(min_length=1)]
    dpia: Dpia
    sensitivity: Sensitivity
    recipient_requirements: list[Iri] = []
    cadence_: Annotated[str, AfterValidator(_cadence), Field(alias="cadence")]
    max_rows_per_transfer: PositiveInt | None = None
    retention: Retention
    onward_sharing: OnwardSharing
    privacy_protocol: Protocols = []
    not_before: DateTime
    not_after: DateTime
    review_date: Day | None = None
    co_signers: list[Did] = []
    upstream_: list[Ref] = Field([], alias="upstream")
    compatibility_assessment: CompatibilityAssessment | None = None
    new_gateway: Iri | None = None
    confidentiality: Confidentiality | None = None
    derivation: Derivation | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "DataSharingApproval":
        if self.not_after < self.not_before:
            raise ValueError("notAfter is before notBefore")
        parties = {lb.party for lb in self.lawful_bases}
        missing = [d for d in [self.discloser, *self.recipients_] if d not in parties]
        if missing:
            raise ValueError(f"lawfulBases needs an entry for every party; missing {missing}")
        if self.new_gateway is not None and self.new_gateway not in vocab.STATUTORY_GATEWAYS \
                and not self.new_gateway.startswith("https://www.legislation.gov.uk/"):
            raise ValueError("newGateway must be a legislation.gov.uk IRI")
        return self

    # --- helpers named in the internal API
    @property
    def recipients(self) -> list[str]:
        return list(self.recipients_)

    @property
    def required_certifications(self) -> list[str]:
        return list(self.recipient_requirements)

    @property
    def cadence(self) -> str:
        return self.cadence_

    @property
    def upstream(self) -> list[dict]:
        return [r.to_json() for r in self.upstream_]

    @property
    def legal_bases(self) -> list[str]:
        return sorted({b for lb in self.lawful_bases for b in lb.legal_bases})

    @property
    def regimes(self) -> list[str]:
        return sorted({lb.regime for lb in self.lawful_bases})

    def scope(self) -> Scope:
        """The approval's grant as a Scope: ``within(approval.scope(), delegation.scope)`` is the
        delegation -> approval check."""
        return Scope(
            datasets=self.datasets, data_items=self.data_items, data_categories=self.data_categories,
            data_subjects=self.data_subjects, purposes=self.purposes, legal_bases=self.legal_bases,
            regimes=self.regimes, recipients=self.recipients, actions=["ApproveDisclosure"],
            recipient_requirements=self.recipient_requirements, required_co_signers=self.co_signers,
            privacy_protocol=self.privacy_protocol, not_before=self.not_before, not_after=self.not_after,
            max_sensitivity=self.sensitivity, max_dpia_risk=self.dpia.outcome,
            max_rows_per_transfer=self.max_rows_per_transfer,
            max_transfers_per_year=int(-(-vocab.RepeatingInterval.parse(self.cadence_).per_year // 1)),
            max_retention=self.retention.longest, onward_sharing=self.onward_sharing, max_delegation_depth=0)


CREDENTIAL_MODELS: dict[str, type[_Subject]] = {
    m.credential_type: m for m in (OrganisationCertification, DelegatedAuthority, DataSharingApproval)}


def model_for(cred: dict) -> type[_Subject] | None:
    """The model class for a credential's Cead type, or None if it has none."""
    types = cred.get("type") if isinstance(cred, dict) else None
    types = [types] if isinstance(types, str) else types or []
    for t in types if isinstance(types, list) else []:
        if t in CREDENTIAL_MODELS:
            return CREDENTIAL_MODELS[t]
    return None


_JWT_DIGESTS: dict[str, str] = {}   # compact JWT -> its digest
_JWT_MEMO_CHARS = 16 * 1024


def credential_digest(credential: dict | str) -> str:
    """``"sha256-" + base64url(SHA-256(JCS(credential)))``; for a compact JWT, of its ASCII bytes. Secured
    credentials are digested with their proof, so a reference pins exactly what was issued."""
    if isinstance(credential, str):
        found = _JWT_DIGESTS.get(credential)   # the exact string digested before (a presentation repeats them)
        if found is not None:
            return found
        data = credential.strip().encode("ascii", errors="strict") if credential.isascii() else None
        if not data or data.count(b".") != 2:
            raise CeadError("schema.invalid", "A credential string must be a compact JWT.")
        digest = "sha256-" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
        if len(credential) <= _JWT_MEMO_CHARS:   # bounded: at most 1,024 tokens of at most 16 KiB kept
            if len(_JWT_DIGESTS) >= 1024:
                _JWT_DIGESTS.clear()
            _JWT_DIGESTS[credential] = digest
        return digest
    elif isinstance(credential, dict):
        try:
            data = jcs.dumps(credential)
        except Exception as exc:  # rfc8785 raises on non-JSON values (NaN, bytes, huge ints)
            raise CeadError("schema.invalid", f"The credential cannot be canonicalised with JCS: {exc}") from None
    else:
        raise CeadError("schema.invalid", "A credential must be a JSON object or a compact JWT.")
    return "sha256-" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")


def credential_json_schema(model: type[_Subject]) -> dict:
    """The JSON Schema (draft 2020-12) of a whole credential of ``model``'s type, as shipped in
    ``schemas/jsonschema/``: the VC envelope (VC 2.0, or 1.1 for older peers) around the model's subject."""
    subject = model.model_json_schema(by_alias=True, mode="validation", ref_template="#/$defs/{model}")
    defs = subject.pop("$defs", {})
    defs[model.__name__] = subject
    context_item = {"enum": [vocab.CREDENTIALS_V2, vocab.CREDENTIALS_V1]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": model.schema_id(),
        "title": model.credential_type,
        "description": (model.__doc__ or "").strip().splitlines()[0],
        "type": "object",
        "required": ["@context", "type", "issuer", "credentialSubject"],
        "properties": {
            "@context": {"type": "array", "prefixItems": [context_item], "contains": {"const": vocab.CONTEXT_URL}},
            "id": {"type": "string", "format": "iri"},
            "type": {"type": "array", "items": {"type": "string"},
                     "allOf": [{"contains": {"const": "VerifiableCredential"}},
                               {"contains": {"const": model.credential_type}}]},
            "issuer": {"oneOf": [{"type": "string", "pattern": "^did:[a-z0-9]+:.+$"},
                                 {"type": "object", "required": ["id"],
                                  "properties": {"id": {"type": "string", "pattern": "^did:[a-z0-9]+:.+$"}}}]},
            "validFrom": {"type": "string", "format": "date-time"},
            "validUntil": {"type": "string", "format": "date-time"},
            "credentialSchema": {"oneOf": [{"$ref": "#/$defs/CredentialSchema"},
                                           {"type": "array", "items": {"$ref": "#/$defs/CredentialSchema"}}]},
            "credentialSubject": {"$ref": f"#/$defs/{model.__name__}"},
        },
        "$defs": {"CredentialSchema": {"type": "object", "required": ["id", "type"],
                                       "properties": {"id": {"type": "string"}, "type": {"const": "JsonSchema"}}},
                  **defs},
    }


def write_json_schemas() -> list[str]:
    """Regenerate ``schemas/jsonschema/*.json`` from the models (run after changing a model); returns the paths."""
    import json
    from pathlib import Path

    out = []
    for model in CREDENTIAL_MODELS.values():
        path = Path(__file__).parent / "jsonschema" / model.schema_file
        path.write_text(json.dumps(credential_json_schema(model), indent=2, ensure_ascii=False) + "\n", "utf-8")
        out.append(str(path))
    return out
