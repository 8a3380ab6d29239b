"""The scope algebra: one rule per kind of dimension, the credential-level checks, and hypothesis properties
(reflexive, transitive, narrowing never widens, every widening is caught in its own dimension)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from schemas import vocab
from schemas.models import DataSharingApproval, DelegatedAuthority, Scope, credential_digest
from verifier.scope import (Violation, approval_within, delegation_within, derived_within, transfer_within,
                            within)

CAT = "https://data.example/catalogue"
SERIES = "https://data.example/series/s1"
D1, D2, D3, OTHER = (f"https://data.example/dataset/{n}" for n in ("d1", "d2", "d3", "other"))
VOC = vocab.builtin().load({"isPartOf": {D1: [CAT], D2: [CAT], SERIES: [CAT], D3: [SERIES]}})
DATASETS = [CAT, SERIES, D1, D2, D3, OTHER]
PURPOSES = [vocab.expand(p) for p in (
    "dpv:Purpose", "dpv:PublicBenefit", "dpv:ProvideOfficialStatistics", "cead:JusticeStatistics",
    "cead:HomelessnessStatistics", "dpv:PublicPolicyMaking", "cead:BenefitTakeUpAnalysis", "dpv:ServiceProvision",
    "cead:FreeSchoolMealAutoEnrolment", "cead:SchoolClothingGrantAutoAward")]
CATEGORIES = [vocab.expand(c) for c in ("pd:Demographic", "pd:Age", "pd:Gender", "pd:Health", "pd:MentalHealth",
                                        "pd:Criminal", "pd:CriminalOffense")]
ITEMS = ["a", "b", "c", "d"]
DIDS = ["did:web:a.example", "did:web:b.example", "did:web:c.example"]
CERTS = [vocab.expand(c) for c in ("cead:CyberEssentials", "cead:CyberEssentialsPlus", "cead:ISO27001")]
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def dims(violations: list[Violation]) -> set[str]:
    return {v.dimension.split(".")[0] for v in violations}


# ------------------------------------------------------------------------------------------------ one rule per kind

def test_unrestricted_parent_allows_anything_and_unrestricted_child_is_wider():
    assert within(Scope(purposes=["dpv:ServiceProvision"]), Scope()) == []
    [v] = within(Scope(), Scope(purposes=["dpv:ServiceProvision"]))
    assert v.dimension == "purposes" and v.offending == ["(any)"]


def test_hierarchy_dataset_in_catalogue_and_purpose_under_broader():
    assert within(Scope(datasets=[D3]), Scope(datasets=[CAT]), vocabulary=VOC) == []
    [v] = within(Scope(datasets=[CAT]), Scope(datasets=[D3]), vocabulary=VOC)
    assert v.dimension == "datasets" and v.offending == [CAT]
    assert within(Scope(purposes=["cead:FreeSchoolMealAutoEnrolment"]), Scope(purposes=["dpv:ServiceProvision"])) == []
    [v] = within(Scope(purposes=["cead:SchoolClothingGrantAutoAward", "cead:FreeSchoolMealAutoEnrolment"]),
                 Scope(purposes=["cead:FreeSchoolMealAutoEnrolment"]))
    assert v.offending == ["cead:SchoolClothingGrantAutoAward"]


def test_registry_extension_by_data_is_used_by_default():
    new = "https://w3id.org/cead/vocab#TestOnlyNarrowPurpose"
    assert within(Scope(purposes=[new]), Scope(purposes=["dpv:ServiceProvision"])) != []
    voc = vocab.builtin().load({"broader": {new: ["dpv:ServiceProvision"]}})
    assert within(Scope(purposes=[new]), Scope(purposes=["dpv:ServiceProvision"]), vocabulary=voc) == []


def test_sets_report_every_offending_value():
    [v] = within(Scope(data_items=["a", "x", "y"]), Scope(data_items=["a", "b"]))
    assert (v.dimension, v.offending) == ("dataItems", ["x", "y"])
    [v] = within(Scope(regimes=["UKGDPR", "DPA2018Part3"]), Scope(regimes=["UKGDPR"]))
    assert v.offending == ["DPA2018Part3"]


def test_requirements_may_only_grow_and_plus_satisfies_basic():
    parent = Scope(recipient_requirements=["cead:CyberEssentials"], required_co_signers=[DIDS[0]])
    assert within(Scope(recipient_requirements=["cead:CyberEssentialsPlus"],
                        required_co_signers=[DIDS[0], DIDS[1]]), parent) == []
    got = within(Scope(recipient_requirements=["cead:ISO27001"]), parent)
    assert dims(got) == {"recipientRequirements", "requiredCoSigners"}


@pytest.mark.parametrize("field,low,high", [
    ("max_sensitivity", "Personal", "SpecialCategory"), ("max_dpia_risk", "LowRisk", "HighRisk"),
    ("onward_sharing", "Prohibited", "WithApproval"), ("max_rows_per_transfer", 10, 11),
    ("max_transfers_per_year", 4, 12), ("max_retention", "P6M", "P1Y"), ("max_delegation_depth", 0, 1)])
def test_ceilings(field, low, high):
    assert within(Scope(**{field: low}), Scope(**{field: high})) == []
    assert within(Scope(**{field: low}), Scope(**{field: low})) == []
    [v] = within(Scope(**{field: high}), Scope(**{field: low}))
    assert v.offending == [high]
    [v] = within(Scope(), Scope(**{field: low}))
    assert v.offending == ["(any)"]


def test_time_window_and_at():
    parent = Scope(not_before=T0, not_after=T0 + timedelta(days=365))
    assert within(Scope(not_before=T0 + timedelta(days=1), not_after=T0 + timedelta(days=2)), parent) == []
    got = within(Scope(not_before=T0 - timedelta(days=1), not_after=T0 + timedelta(days=400)), parent)
    assert dims(got) == {"notBefore", "notAfter"}
    assert dims(within(Scope(), parent)) == {"notBefore", "notAfter"}
    inside = Scope(not_before=T0, not_after=T0 + timedelta(days=30))
    assert within(inside, parent, at="2026-06-01T00:00:00Z") == []
    [v] = within(inside, parent, at="2027-06-01T00:00:00Z")
    assert v.dimension == "notAfter" and "ended" in v.message


def test_protocol_strictness_is_delegated_to_protocols():
    parent = Scope(privacy_protocol={"kind": "threshold", "minCellCount": 10})
    assert within(Scope(privacy_protocol=[{"kind": "threshold", "minCellCount": 12}]), parent) == []
    [v] = within(Scope(privacy_protocol=[{"kind": "threshold", "minCellCount": 5}]), parent)
    assert v.dimension == "privacyProtocol.threshold.minCellCount" and v.code == "scope.privacyProtocol"
    [v] = within(Scope(), parent)
    assert v.dimension == "privacyProtocol" and v.message.endswith("at least as strict as: threshold")   # words, not a list


def test_violation_to_problem():
    p = Violation("dataItems", "not approved", ["x"]).to_problem()
    assert p.code == "scope.dataItems" and p.detail == {"dimension": "dataItems", "offending": ["x"]}


# ------------------------------------------------------------------------------------------------ credentials

def _delegation(**over) -> DelegatedAuthority:
    data = {"id": "did:web:org.example:dpo", "role": "DataProtectionOfficer", "onBehalfOf": "did:web:org.example",
            "allowedActions": ["ApproveDisclosure", "SubDelegate"],
            "scope": {"datasets": [CAT], "purposes": ["dpv:PublicBenefit"], "maxDelegationDepth": 1,
                      "privacyProtocol": [{"kind": "threshold", "minCellCount": 10}]}}
    data.update(over)
    return DelegatedAuthority.model_validate(data)


def _approval(**over) -> DataSharingApproval:
    data = {"agreement": {"id": "https://org.example/dsa/1", "digest": "sha256-" + "A" * 43},
            "discloser": "did:web:org.example", "recipients": [DIDS[0]], "datasets": [D1], "dataItems": ["a", "b"],
            "dataCategories": ["pd:Age"], "purposes": ["dpv:ProvideOfficialStatistics"],
            "lawfulBases": [{"party": "did:web:org.example", "regime": "UKGDPR",
                             "legalBases": ["https://www.legislation.gov.uk/eur/2016/679/article/6/1/e"]},
                            {"party": DIDS[0], "regime": "UKGDPR",
                             "legalBases": ["https://www.legislation.gov.uk/eur/2016/679/article/6/1/e"]}],
            "dpia": {"outcome": "LowRisk"}, "sensitivity": "Personal", "cadence": "R/2026-01-01T00:00:00Z/P1M",
            "maxRowsPerTransfer": 100, "retention": {"receivedData": "P1Y", "derivedData": "P2Y"},
            "onwardSharing": "WithApproval", "privacyProtocol": {"kind": "threshold", "minCellCount": 10},
            "notBefore": "2026-01-01T00:00:00Z", "notAfter": "2026-12-31T23:59:59Z"}
    data.update(over)
    return DataSharingApproval.model_validate(data)


def test_approval_within_delegation_and_discloser_must_be_controller():
    assert approval_within(_approval(), _delegation(), vocabulary=VOC) == []
    got = approval_within(_approval(discloser=DIDS[2], lawfulBases=_approval().to_json()["lawfulBases"] + [
        {"party": DIDS[2], "regime": "UKGDPR", "legalBases": ["https://www.legislation.gov.uk/eur/2016/679/"
                                                              "article/6/1/e"]}]), _delegation(), vocabulary=VOC)
    assert dims(got) == {"discloser"}
    # a delegation that cannot approve disclosures
    got = approval_within(_approval(), _delegation(allowedActions=["Renew"]), vocabulary=VOC)
    assert dims(got) == {"actions"}


def test_delegation_within_uses_up_depth_and_checks_parent_reference():
    parent = _delegation()
    parent_cred = parent.to_credential("did:web:org.example", id="https://org.example/d/1")
    ref = {"id": "https://org.example/d/1", "digest": credential_digest(parent_cred)}
    child = _delegation(id="did:web:org.example:iao", parentDelegation=ref,
                        allowedActions=["ApproveDisclosure"],
                        scope={"datasets": [D1], "purposes": ["dpv:ProvideOfficialStatistics"],
                               "maxDelegationDepth": 0,
                               "privacyProtocol": [{"kind": "threshold", "minCellCount": 10}]})
    assert delegation_within(child, parent_cred, vocabulary=VOC) == []
    assert delegation_within(child, parent, vocabulary=VOC) == []
    # depth: the child may not keep the parent's depth
    deeper = child.model_copy(update={"grant": child.grant.model_copy(update={"max_delegation_depth": 1})})
    assert dims(delegation_within(deeper, parent, vocabulary=VOC)) == {"maxDelegationDepth"}
    # a tampered parent credential no longer matches the digest
    tampered = {**parent_cred, "issuer": "did:web:evil.example"}
    assert dims(delegation_within(child, tampered, vocabulary=VOC)) == {"parentDelegation"}
    # a parent that does not allow sub-delegation
    no_sub = _delegation(allowedActions=["ApproveDisclosure"])
    assert "maxDelegationDepth" in dims(delegation_within(child, no_sub, vocabulary=VOC))
    # another controller
    other = child.model_copy(update={"on_behalf_of": "did:web:other.example"})
    assert "onBehalfOf" in dims(delegation_within(other, parent, vocabulary=VOC))
    # an unreadable parent credential is a violation, not an exception
    assert dims(delegation_within(child, {"type": ["VerifiableCredential"]})) == {"parentDelegation"}


def test_transfer_within():
    a = _approval()
    ok = {"dataset": D1, "columns": ["a"], "rowCount": 5, "purpose": "cead:JusticeStatistics", "recipient": DIDS[0]}
    assert transfer_within(ok, a, at="2026-06-01T00:00:00Z", vocabulary=VOC) == []
    bad = {"dataset": D2, "columns": ["a", "z"], "rowCount": 500, "purpose": "dpv:ServiceProvision",
           "recipient": DIDS[1]}
    got = transfer_within(bad, a, at="2027-06-01T00:00:00Z", vocabulary=VOC)
    assert dims(got) == {"datasets", "dataItems", "maxRowsPerTransfer", "purposes", "recipients", "notAfter"}
    # fail closed on missing or malformed fields
    got = transfer_within({"rowCount": True}, a, at="2026-06-01T00:00:00Z", vocabulary=VOC)
    assert dims(got) == {"datasets", "dataItems", "rowCount"}
    assert dims(transfer_within(["not", "a", "dict"], a, at="2026-06-01T00:00:00Z")) == {"manifest"}


def test_derived_within_rules():
    # the upstream admitted its data to did:web:org.example, the discloser of the derived approvals below
    up = _approval(dataCategories=["pd:MentalHealth"], sensitivity="SpecialCategory", onwardSharing="Prohibited",
                   retention={"receivedData": "P1Y", "derivedData": "P3Y"}, discloser=DIDS[1],
                   recipients=["did:web:org.example"], lawfulBases=[
                       {"party": party, "regime": "UKGDPR",
                        "legalBases": ["https://www.legislation.gov.uk/eur/2016/679/article/6/1/e"]}
                       for party in (DIDS[1], "did:web:org.example")])
    up_cred = up.to_credential("did:web:org.example", id="https://org.example/a/1")
    ref = [{"id": "https://org.example/a/1", "digest": credential_digest(up_cred)}]
    good = _approval(upstream=ref, purposes=["cead:JusticeStatistics"], onwardSharing="Prohibited",
                     retention={"receivedData": "P3Y"})   # anonymised by its threshold protocol
    assert derived_within(good, [up_cred]) == []
    assert derived_within(good, [up]) == []
    bad = _approval(upstream=ref, purposes=["dpv:ServiceProvision"], retention={"receivedData": "P5Y"},
                    privacyProtocol=[], dataCategories=["pd:Age"])
    got = derived_within(bad, [up_cred])
    assert dims(got) == {"purposes", "maxRetention", "onwardSharing", "maxSensitivity", "dataCategories"}
    # a compatibility assessment (or a new gateway) lifts only the purpose rule
    assessed = _approval(upstream=ref, purposes=["dpv:ServiceProvision"], retention={"receivedData": "P5Y"},
                         privacyProtocol=[], dataCategories=["pd:Age"],
                         compatibilityAssessment={"reference": "https://org.example/ca/1", "date": "2026-01-01",
                                                  "outcome": "Compatible"})
    assert "purposes" not in dims(derived_within(assessed, [up_cred]))
    # the upstream must be the one referenced
    other = _approval().to_credential("did:web:org.example", id="https://org.example/a/1")
    assert "upstream" in dims(derived_within(good, [other]))
    assert dims(derived_within(good, [])) == {"upstream"}


# ------------------------------------------------------------------------------------------------ properties

def _below(pool: list[str], term: str) -> list[str]:
    """Pool members lying within ``term`` (itself included)."""
    return [t for t in pool if VOC.within(t, term)]


HIER = {"datasets": DATASETS, "purposes": PURPOSES, "data_categories": CATEGORIES}
SETS = {"data_items": ITEMS, "recipients": DIDS, "regimes": ["UKGDPR", "DPA2018Part3"],
        "actions": vocab.ACTIONS[:4]}
SCALES = {"max_sensitivity": vocab.SENSITIVITY, "max_dpia_risk": vocab.DPIA_RISK,
          "onward_sharing": vocab.ONWARD_SHARING}
NUMBERS = ("max_rows_per_transfer", "max_transfers_per_year", "max_delegation_depth")
RETENTIONS = ["P1M", "P6M", "P1Y", "P2Y", "P7Y"]


def _protocol(min_cells: int, epsilon: float | None) -> list[dict]:
    out = [{"kind": "threshold", "minCellCount": min_cells}]
    if epsilon is not None:
        out.append({"kind": "differentialPrivacy", "epsilon": epsilon})
    return out


@st.composite
def scopes(draw) -> Scope:
    maybe = lambda strat: draw(st.none() | strat)  # noqa: E731
    data: dict = {}
    for name, pool in {**HIER, **SETS}.items():
        data[name] = maybe(st.lists(st.sampled_from(pool), unique=True, max_size=3))
    data["recipient_requirements"] = maybe(st.lists(st.sampled_from(CERTS), unique=True, max_size=2))
    data["required_co_signers"] = maybe(st.lists(st.sampled_from(DIDS), unique=True, max_size=2))
    for name, scale in SCALES.items():
        data[name] = maybe(st.sampled_from(scale))
    for name in NUMBERS:
        data[name] = maybe(st.integers(0, 50))
    data["max_retention"] = maybe(st.sampled_from(RETENTIONS))
    if draw(st.booleans()):
        start = draw(st.integers(0, 100))
        data["not_before"] = T0 + timedelta(days=start)
        data["not_after"] = T0 + timedelta(days=start + draw(st.integers(0, 400)))
    if draw(st.booleans()):
        data["privacy_protocol"] = _protocol(draw(st.integers(1, 20)), draw(st.none() | st.sampled_from([0.5, 1.0,
                                                                                                         2.0])))
    return Scope(**data)


@st.composite
def narrowed(draw, parent: Scope) -> Scope:
    """A scope inside ``parent``, narrowing each dimension by a random amount (possibly not at all)."""
    d = {}
    for name in HIER:
        values = getattr(parent, name)
        pool = HIER[name]
        if values is None:
            d[name] = draw(st.none() | st.lists(st.sampled_from(pool), unique=True, max_size=3))
        else:
            below = sorted({t for v in values for t in _below(pool, v)} | set(values))
            d[name] = draw(st.lists(st.sampled_from(below), unique=True, max_size=3)) if below else []
    for name, pool in SETS.items():
        values = getattr(parent, name)
        d[name] = (draw(st.none() | st.lists(st.sampled_from(pool), unique=True, max_size=3)) if values is None
                   else draw(st.lists(st.sampled_from(values), unique=True)) if values else [])
    # requirements grow
    for name, pool in (("recipient_requirements", CERTS), ("required_co_signers", DIDS)):
        values = getattr(parent, name) or []
        extra = draw(st.lists(st.sampled_from(pool), unique=True, max_size=2))
        d[name] = sorted(set(values) | set(extra)) if (values or extra) else getattr(parent, name)
    if parent.recipient_requirements and vocab.expand("cead:CyberEssentials") in parent.recipient_requirements \
            and draw(st.booleans()):   # swap CE for the stricter CE+
        d["recipient_requirements"] = [c for c in d["recipient_requirements"] if not c.endswith("#CyberEssentials")]
        d["recipient_requirements"].append(vocab.expand("cead:CyberEssentialsPlus"))
    for name, scale in SCALES.items():
        value = getattr(parent, name)
        top = len(scale) - 1 if value is None else scale.index(value)
        d[name] = draw(st.sampled_from(scale[:top + 1])) if value is not None or draw(st.booleans()) else None
    for name in NUMBERS:
        value = getattr(parent, name)
        d[name] = draw(st.integers(0, value if value is not None else 60)) \
            if value is not None or draw(st.booleans()) else None
    value = parent.max_retention
    allowed = [r for r in RETENTIONS if value is None or vocab.duration_seconds(r) <= vocab.duration_seconds(value)]
    d["max_retention"] = draw(st.sampled_from(allowed)) if value is not None or draw(st.booleans()) else None
    if parent.not_before is not None:
        span = (parent.not_after - parent.not_before).days
        a = draw(st.integers(0, span))
        b = draw(st.integers(a, span))
        d["not_before"], d["not_after"] = parent.not_before + timedelta(days=a), parent.not_before + timedelta(days=b)
    if parent.privacy_protocol:
        t = next(p for p in parent.privacy_protocol if p.kind == "threshold")
        dp = next((p for p in parent.privacy_protocol if p.kind == "differentialPrivacy"), None)
        eps = None if dp is None else draw(st.sampled_from([e for e in (0.25, 0.5, 1.0, 2.0) if e <= dp.epsilon]))
        d["privacy_protocol"] = _protocol(draw(st.integers(t.min_cell_count, 25)), eps)
    elif draw(st.booleans()):
        d["privacy_protocol"] = _protocol(draw(st.integers(1, 20)), None)
    return Scope(**d)


PROPS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(scopes())
def test_reflexive(s):
    assert within(s, s, vocabulary=VOC) == []


@PROPS
@given(st.data())
def test_narrowing_stays_within_and_is_transitive(data):
    c = data.draw(scopes())
    b = data.draw(narrowed(c))
    a = data.draw(narrowed(b))
    assert within(b, c, vocabulary=VOC) == []
    assert within(a, b, vocabulary=VOC) == []
    assert within(a, c, vocabulary=VOC) == []     # transitive along the chain


@PROPS
@given(st.data())
def test_narrowing_never_widens_against_any_parent(data):
    """If s lies within an arbitrary p, every narrowing of s does too (monotone)."""
    p = data.draw(scopes())
    s = data.draw(scopes())
    n = data.draw(narrowed(s))
    if within(s, p, vocabulary=VOC) == []:
        assert within(n, p, vocabulary=VOC) == []
    # and the reverse never hides a problem: what n violates, s violates too
    assert dims(within(n, p, vocabulary=VOC)) <= dims(within(s, p, vocabulary=VOC))


WIDEN = {
    "datasets": lambda s: [*s.datasets, OTHER] if s.datasets is not None and OTHER not in s.datasets else None,
    "purposes": lambda s: [*s.purposes, PURPOSES[0]] if s.purposes is not None and PURPOSES[0] not in s.purposes
    else None,
    "dataItems": lambda s: [*s.data_items, "zz"] if s.data_items is not None else None,
    "maxSensitivity": lambda s: "unrestricted" if s.max_sensitivity is not None else None,
    "maxRowsPerTransfer": lambda s: s.max_rows_per_transfer + 1 if s.max_rows_per_transfer is not None else None,
    "maxRetention": lambda s: "P99Y" if s.max_retention is not None else None,
    "notAfter": lambda s: s.not_after + timedelta(days=1) if s.not_after is not None else None,
    "privacyProtocol": lambda s: _protocol(s.privacy_protocol[0].min_cell_count - 1, None)
    if s.privacy_protocol and s.privacy_protocol[0].min_cell_count > 1 else None,
    "recipientRequirements": lambda s: [] if s.recipient_requirements else None,
}
FIELD = {"datasets": "datasets", "purposes": "purposes", "dataItems": "data_items",
         "maxSensitivity": "max_sensitivity", "maxRowsPerTransfer": "max_rows_per_transfer",
         "maxRetention": "max_retention", "notAfter": "not_after", "privacyProtocol": "privacy_protocol",
         "recipientRequirements": "recipient_requirements"}


@PROPS
@given(scopes(), st.sampled_from(sorted(WIDEN)))
def test_every_widening_is_caught_in_its_dimension(s, dim):
    widened = WIDEN[dim](s)
    assume(widened is not None)
    wider = s.model_copy(update={FIELD[dim]: None if widened == "unrestricted" else widened})
    assert dims(within(wider, s, vocabulary=VOC)) == {dim}
    assert within(s, wider, vocabulary=VOC) == []
