"""Vocabularies, the Cead JSON-LD context, the typed models and the generated JSON Schemas."""
from __future__ import annotations

import hashlib
import json
import typing
from datetime import date

import pytest
from pydantic import BaseModel

import schemas
from schemas import models, vocab
from verifier.results import CeadError

CONTEXT = json.loads(schemas.data_path("contexts", "cead-v1.jsonld").read_text("utf-8"))["@context"]


# ------------------------------------------------------------------------------------------------ vocabularies

def test_expand_and_compact():
    assert vocab.expand("dpv:ServiceProvision") == "https://w3id.org/dpv#ServiceProvision"
    assert vocab.expand("pd:Health") == "https://w3id.org/dpv/pd#Health"
    assert vocab.expand("https://example.org/x") == "https://example.org/x"
    assert vocab.expand("did:web:a.example") == "did:web:a.example"
    assert vocab.compact("https://w3id.org/cead/vocab#UKGDPR") == "cead:UKGDPR"
    for prefix, ns in vocab.PREFIXES.items():
        assert CONTEXT[prefix] == ns          # the context and the Python prefixes agree


def test_legal_bases_cover_the_regimes():
    bases = vocab.LEGAL_BASES
    for k in "abcdef":
        assert bases[f"{vocab.UK_GDPR}article/6/1/{k}"].regime == vocab.UK_GDPR_REGIME
    for k in "abcdefghij":
        assert bases[f"{vocab.UK_GDPR}article/9/2/{k}"].special
    assert bases[f"{vocab.UK_GDPR}article/10"].criminal
    assert bases[f"{vocab.DPA_2018}schedule/1/part/3/paragraph/29"].criminal
    assert bases[f"{vocab.DPA_2018}section/35"].regime == vocab.LAW_ENFORCEMENT_REGIME
    assert bases[f"{vocab.DPA_2018}schedule/8/paragraph/1"].regime == vocab.LAW_ENFORCEMENT_REGIME
    assert f"{vocab.DEA_2017}section/35" in vocab.STATUTORY_GATEWAYS


def test_hierarchy_reflexive_transitive_and_extensible():
    voc = vocab.builtin()
    fsm = "cead:FreeSchoolMealAutoEnrolment"
    assert voc.within(fsm, fsm) and voc.within(fsm, "dpv:ServiceProvision") and voc.within(fsm, "dpv:Purpose")
    assert not voc.within("dpv:ServiceProvision", fsm)
    assert voc.within("cead:CyberEssentialsPlus", "cead:CyberEssentials")
    assert voc.is_special("pd:MentalHealth") and voc.is_special("pd:CriminalOffense") and not voc.is_special("pd:Age")
    voc.load({"broader": {"https://council.example/purpose/uniform-grant": "dpv:ServiceProvision"},
              "isPartOf": {"https://data.example/d": ["https://data.example/cat"]}})
    assert voc.within("https://council.example/purpose/uniform-grant", "dpv:Purpose")
    assert voc.within("https://data.example/d", "https://data.example/cat")
    voc.load({"isPartOf": {"https://data.example/cat": ["https://data.example/d"]}})   # a cycle is harmless
    assert voc.within("https://data.example/cat", "https://data.example/d")
    # builtin() is a fresh copy: the registry is untouched by the extension above
    assert not vocab.registry().within("https://data.example/d", "https://data.example/cat")


# Every dpv:/pd: term below was checked against the W3C DPV 2.x vocabulary (w3id.org/dpv, w3id.org/dpv/pd).
DPV_TERMS = {
    "dpv:" + t for t in (
        "Purpose PublicBenefit ProvideOfficialStatistics PublicPolicyMaking ImprovePublicServices "
        "ProtectionOfPublicSecurity ServiceProvision PersonalisedBenefits ResearchAndDevelopment ScientificResearch "
        "NonCommercialResearch LegalCompliance FraudPreventionAndDetection SpecialCategoryPersonalData DataSubject "
        "Citizen Child Adult ParentOfDataSubject VulnerableDataSubject").split()
} | {
    "pd:" + t for t in (
        "Identifying Name OfficialID Demographic Age Gender Location PhysicalAddress Financial Income Household "
        "Family FamilyStructure Education Health HealthRecord MedicalHealth MentalHealth Disability EthnicOrigin Religion Sexual Criminal "
        "CriminalCharge CriminalConviction CriminalOffense").split()
}


def test_dpv_iris_are_dpv_terms():
    """A dpv:/pd: IRI that DPV does not define is an invented term in DPV's namespace (peers cannot look it up).
    pd:Address is pd:PhysicalAddress, dpv:Parent is dpv:ParentOfDataSubject, DPV-PD has no pd:Sensitive (DPV's
    Art 9 grouping is dpv:SpecialCategoryPersonalData) and no pd:SexualOrientation (pd:Sexual covers sexuality)."""
    terms = [t for table in (vocab.PURPOSES, vocab.DATA_CATEGORIES, vocab.DATA_SUBJECTS) for t in table.values()]
    used = {vocab.compact(iri) for t in terms for iri in (t.iri, *t.broader)}
    in_dpv = {t for t in used if t.startswith(("dpv:", "pd:"))}
    assert in_dpv - DPV_TERMS == set()
    voc = vocab.builtin()
    assert voc.within("pd:PhysicalAddress", "pd:Location")
    assert voc.within("dpv:ParentOfDataSubject", "dpv:DataSubject")
    for special in ("pd:Health", "pd:EthnicOrigin", "pd:Religion", "pd:Sexual"):
        assert voc.within(special, "dpv:SpecialCategoryPersonalData") and voc.is_special(special)


@pytest.mark.parametrize("bad", [[], {"narrower": {}}, {"broader": []}, {"broader": {"a:b": [1]}},
                                 {"isPartOf": {"a:b": [""]}}])
def test_vocabulary_load_rejects_bad_data(bad):
    with pytest.raises(ValueError):
        vocab.Vocabulary().load(bad)


def test_durations_and_cadence():
    assert vocab.duration_seconds("P1Y") > vocab.duration_seconds("P12M") - 1 > vocab.duration_seconds("P364D")
    assert vocab.duration_seconds("PT1H30M") == 5400
    for bad in ("P", "1Y", "PT", "P1H", "P-1D", "P1Y\n", 5):
        with pytest.raises(ValueError):
            vocab.duration_seconds(bad)
    monthly = vocab.RepeatingInterval.parse("R/2026-01-01T00:00:00Z/P1M")
    assert monthly.repetitions is None and round(monthly.per_year) == 12
    once = vocab.RepeatingInterval.parse("R1/2026-03-01T00:00:00Z/P1M")
    assert once.per_year == 1 and once.start.month == 3
    for bad in ("R/2026-01-01/P0D", "R0/2026-01-01T00:00:00Z/P1M", "2026-01-01/P1M", "R/2026-01-01T00:00:00/P1M"):
        with pytest.raises(ValueError):
            vocab.RepeatingInterval.parse(bad)


# ------------------------------------------------------------------------------------------------ context

def test_context_is_pinned_with_its_hash():
    index = json.loads(schemas.data_path("contexts", "index.json").read_text("utf-8"))["contexts"]
    entry = index[vocab.CONTEXT_URL]
    data = schemas.data_path("contexts", entry["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert CONTEXT["@protected"] is True and "@vocab" not in CONTEXT


def _wire_names(model: type[BaseModel], seen: set) -> set[tuple[str, bool]]:
    """(camelCase property name, inside a privacy protocol) for every field of the model and nested models."""
    out = set()
    if model in seen:
        return out
    seen.add(model)
    in_protocol = model.__name__ in {"Threshold", "Dominance", "DifferentialPrivacy", "PrivacyBudget", "Clipping",
                                     "SecureAggregation", "PsiCardinality", "Pseudonymisation", "TreOnly",
                                     "Rounding", "CellKeyPerturbation", "PtableEntry"}
    for name, field in model.model_fields.items():
        out.add((field.alias or name, in_protocol))
        for arg in _leaf_types(field.annotation):
            out |= _wire_names(arg, seen)
    return out


def _leaf_types(tp) -> list:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return [t for a in typing.get_args(tp) for t in _leaf_types(a)]


def test_every_property_is_defined_by_the_context():
    scoped = CONTEXT["privacyProtocol"]["@context"]
    names = set()
    for model in models.CREDENTIAL_MODELS.values():
        names |= _wire_names(model, set())
    vc_terms = {"id", "name"}     # defined by the VC 2.0 context
    missing = [n for n, in_protocol in names
               if n not in vc_terms and n not in CONTEXT and not (in_protocol and n in scoped)]
    assert missing == []
    # enumerated values used with "@type": "@vocab" are terms too
    for value in [*vocab.SENSITIVITY, *vocab.DPIA_RISK, *vocab.ONWARD_SHARING, *vocab.ACTIONS, "UKGDPR",
                  "DPA2018Part3", "Certified", "Suspended", "Withdrawn", "Compatible"]:
        assert value in CONTEXT
    for kind in ("threshold", "dominance", "differentialPrivacy", "secureAggregation", "psiCardinality",
                 "pseudonymisation", "treOnly", "semiHonest", "malicious", "keyedHash"):
        assert kind in scoped


def test_json_schemas_are_generated_from_the_models():
    for model in models.CREDENTIAL_MODELS.values():
        shipped = json.loads(schemas.data_path("jsonschema", model.schema_file).read_text("utf-8"))
        assert shipped == models.credential_json_schema(model), "run schemas.models.write_json_schemas()"
        assert shipped["$id"] == model.schema_id()


# ------------------------------------------------------------------------------------------------ models

def _cert(**over) -> dict:
    subject = {"id": "did:web:org.example", "legalName": "Org", "legalIdentifier": "SC000001",
               "scheme": "cead:CyberEssentialsPlus", "certificateNumber": "CEP-1",
               "certificationBody": {"id": "did:web:iasme.example", "name": "IASME"},
               "issueDate": "2026-01-01", "expiryDate": "2026-12-31"}
    subject.update(over)
    return {"@context": [vocab.CREDENTIALS_V2, vocab.CONTEXT_URL],
            "type": ["VerifiableCredential", "OrganisationCertificationCredential"],
            "issuer": "did:web:iasme.example", "credentialSubject": subject}


def test_from_credential_and_round_trip():
    cert = models.OrganisationCertification.from_credential(_cert())
    assert cert.scheme == "https://w3id.org/cead/vocab#CyberEssentialsPlus"
    assert cert.valid_on(date(2026, 6, 1)) and not cert.valid_on(date(2027, 1, 1))
    cred = cert.to_credential("did:web:iasme.example", id="urn:uuid:1", valid_from="2026-01-01T00:00:00Z")
    assert cred["@context"] == [vocab.CREDENTIALS_V2, vocab.CONTEXT_URL]
    assert cred["type"] == ["VerifiableCredential", "OrganisationCertificationCredential"]
    assert cred["credentialSchema"] == {"id": "https://w3id.org/cead/schemas/organisation-certification.json",
                                        "type": "JsonSchema"}
    assert cred["credentialSubject"]["scheme"] == "cead:CyberEssentialsPlus"
    assert models.OrganisationCertification.from_credential(cred) == cert
    assert models.model_for(cred) is models.OrganisationCertification


@pytest.mark.parametrize("cred,fragment", [
    ("not a dict", "JSON object"),
    ({**_cert(), "type": ["VerifiableCredential"]}, "not a OrganisationCertificationCredential"),
    ({**_cert(), "credentialSubject": [{}, {}]}, "exactly one credentialSubject"),
    (_cert(scheme="not an iri"), "scheme"),
    (_cert(id="https://not-a-did"), "id"),
    (_cert(expiryDate="2025-01-01"), "expiryDate is before issueDate"),
    (_cert(issueDate="01/01/2026"), "issueDate"),
    (_cert(surprise=1), "surprise"),
])
def test_from_credential_errors_are_readable(cred, fragment):
    with pytest.raises(CeadError) as err:
        models.OrganisationCertification.from_credential(cred)
    assert err.value.code == "schema.invalid" and fragment in err.value.message


def test_delegation_helpers():
    d = models.DelegatedAuthority.model_validate({
        "id": "did:web:org.example:dpo", "role": "DataProtectionOfficer", "onBehalfOf": "did:web:org.example",
        "parentDelegation": {"id": "https://org.example/d/0", "digest": "sha256-" + "B" * 43},
        "allowedActions": ["ApproveDisclosure", "SubDelegate"], "scope": {"maxDelegationDepth": 2}})
    assert (d.delegate, d.controller, d.max_further_delegation_depth) == ("did:web:org.example:dpo",
                                                                          "did:web:org.example", 2)
    assert d.parent == {"id": "https://org.example/d/0", "digest": "sha256-" + "B" * 43}
    assert d.scope.actions == ["ApproveDisclosure", "SubDelegate"] and d.grant.actions is None
    assert d.model_copy(update={"allowed_actions": ["ApproveDisclosure"]}).max_further_delegation_depth == 0
    with pytest.raises(Exception, match="allowedActions"):
        models.DelegatedAuthority.model_validate({**d.to_json(), "scope": {"actions": ["Revoke"]}})


def test_approval_consistency_rules():
    from test_scope import _approval
    a = _approval()
    assert a.recipients == ["did:web:a.example"] and a.cadence == "R/2026-01-01T00:00:00Z/P1M"
    assert a.scope().max_transfers_per_year == 12 and a.scope().max_retention == "P2Y"
    with pytest.raises(Exception, match="lawfulBases needs an entry"):
        _approval(lawfulBases=[a.to_json()["lawfulBases"][0]])
    with pytest.raises(Exception, match=r"the legal bases DPA 2018 s.35.* do not belong to the regime UK GDPR"):
        _approval(lawfulBases=[{"party": "did:web:org.example", "regime": "UKGDPR",
                                "legalBases": ["https://www.legislation.gov.uk/ukpga/2018/12/section/35"]},
                               a.to_json()["lawfulBases"][1]])
    with pytest.raises(Exception, match="repeating interval"):
        _approval(cadence="monthly")
    with pytest.raises(Exception, match="notAfter is before notBefore"):
        _approval(notAfter="2025-01-01T00:00:00Z")


def test_credential_digest():
    cred = _cert()
    digest = models.credential_digest(cred)
    assert digest.startswith("sha256-") and len(digest) == 50
    reordered = dict(reversed(list(cred.items())))
    assert models.credential_digest(reordered) == digest                 # JCS: key order does not matter
    assert models.credential_digest({**cred, "issuer": "did:web:x.example"}) != digest
    assert models.credential_digest("eyJh.eyJi.c2ln") == models.credential_digest(" eyJh.eyJi.c2ln ")
    for bad in ("not a jwt", 5, {"x": float("nan")}):
        with pytest.raises(CeadError):
            models.credential_digest(bad)
