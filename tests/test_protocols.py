"""Privacy protocols: the static 'at least as strict' order and the transfer-time checks (manifest and payload)."""
from __future__ import annotations

import pytest

from verifier.protocols import at_least_as_strict, check_transfer

A, B, C, D, E, F, G = (f"did:web:{n}.example" for n in "abcdefg")


def codes(problems) -> list[str]:
    return sorted(p.code for p in problems)


def dims(violations) -> set[str]:
    return {v.dimension for v in violations}


# ------------------------------------------------------------------------------------------------ static order

@pytest.mark.parametrize("candidate,reference,expected", [
    ({"kind": "threshold", "minCellCount": 10}, {"kind": "threshold", "minCellCount": 10}, set()),
    ({"kind": "threshold", "minCellCount": 11}, {"kind": "threshold", "minCellCount": 10}, set()),
    ({"kind": "threshold", "minCellCount": 5}, {"kind": "threshold", "minCellCount": 10},
     {"privacyProtocol.threshold.minCellCount"}),
    ({"kind": "threshold", "minCellCount": 10}, {"kind": "threshold", "minCellCount": 10,
                                                 "secondarySuppression": True},
     {"privacyProtocol.threshold.secondarySuppression"}),
    ({"kind": "threshold", "minCellCount": 10, "zerosAllowed": True}, {"kind": "threshold", "minCellCount": 10},
     {"privacyProtocol.threshold.zerosAllowed"}),
    ({"kind": "dominance", "n": 2, "k": 80}, {"kind": "dominance", "n": 1, "k": 85}, set()),
    ({"kind": "dominance", "n": 1, "k": 90}, {"kind": "dominance", "n": 2, "k": 85},
     {"privacyProtocol.dominance.n", "privacyProtocol.dominance.k"}),
    ({"kind": "pseudonymisation", "keyHolder": B}, {"kind": "pseudonymisation", "keyHolder": A},
     {"privacyProtocol.pseudonymisation.keyHolder"}),
    ({"kind": "treOnly", "environments": ["https://tre.example/a"]},
     {"kind": "treOnly", "environments": ["https://tre.example/a", "https://tre.example/b"]}, set()),
    ({"kind": "treOnly"}, {"kind": "treOnly", "environments": ["https://tre.example/a"]},
     {"privacyProtocol.treOnly.environments"}),
    ({"kind": "treOnly", "outputChecking": False}, {"kind": "treOnly"}, {"privacyProtocol.treOnly.outputChecking"}),
])
def test_single_kind(candidate, reference, expected):
    assert dims(at_least_as_strict(candidate, reference)) == expected


def test_differential_privacy_epsilon_delta_rho():
    ref = {"kind": "differentialPrivacy", "epsilon": 1.0, "delta": 1e-6}
    assert at_least_as_strict({"kind": "differentialPrivacy", "epsilon": 0.5}, ref) == []
    assert dims(at_least_as_strict({"kind": "differentialPrivacy", "epsilon": 0.5, "delta": 1e-5}, ref)) == {
        "privacyProtocol.differentialPrivacy.delta"}
    # rho-zCDP converts to (rho + 2 sqrt(rho ln(1/delta)), delta)-DP: rho=0.01 gives about 0.76 at delta=1e-6
    assert at_least_as_strict({"kind": "differentialPrivacy", "rho": 0.01}, ref) == []
    assert dims(at_least_as_strict({"kind": "differentialPrivacy", "rho": 0.1}, ref)) == {
        "privacyProtocol.differentialPrivacy.rho"}
    # zCDP never gives pure DP; pure eps-DP gives eps^2/2-zCDP; approximate DP gives no zCDP
    assert at_least_as_strict({"kind": "differentialPrivacy", "rho": 0.001},
                              {"kind": "differentialPrivacy", "epsilon": 1.0}) != []
    assert at_least_as_strict({"kind": "differentialPrivacy", "epsilon": 0.4},
                              {"kind": "differentialPrivacy", "rho": 0.1}) == []
    assert at_least_as_strict({"kind": "differentialPrivacy", "epsilon": 0.4, "delta": 1e-9},
                              {"kind": "differentialPrivacy", "rho": 0.1}) != []


def test_differential_privacy_budget():
    ref = {"kind": "differentialPrivacy", "epsilon": 1.0, "budget": {"period": "P1Y", "epsilon": 4, "maxReleases": 4}}
    ok = {"kind": "differentialPrivacy", "epsilon": 1.0, "budget": {"period": "P2Y", "epsilon": 3, "maxReleases": 2}}
    assert at_least_as_strict(ok, ref) == []
    worse = {"kind": "differentialPrivacy", "epsilon": 1.0,
             "budget": {"period": "P6M", "epsilon": 5, "maxReleases": 12}}
    assert dims(at_least_as_strict(worse, ref)) == {
        "privacyProtocol.differentialPrivacy.budget.period", "privacyProtocol.differentialPrivacy.budget.epsilon",
        "privacyProtocol.differentialPrivacy.budget.maxReleases"}
    assert dims(at_least_as_strict({"kind": "differentialPrivacy", "epsilon": 1.0}, ref)) == {
        "privacyProtocol.differentialPrivacy.budget"}


def test_secure_aggregation_and_psi_parties():
    ref = {"kind": "secureAggregation", "inputParties": [A, B, C], "computeParties": [E, F, G],
           "outputParties": [D], "collusionThreshold": 2}
    assert at_least_as_strict({**ref, "collusionThreshold": 3, "threatModel": "malicious"}, ref) == []
    got = at_least_as_strict({**ref, "outputParties": [D, A], "collusionThreshold": 1}, ref)
    assert dims(got) == {"privacyProtocol.secureAggregation.outputParties",
                         "privacyProtocol.secureAggregation.collusionThreshold"}
    assert [v.offending for v in got if v.dimension.endswith("outputParties")] == [[A]]
    psi = {"kind": "psiCardinality", "parties": [A, B], "learners": [B]}
    assert at_least_as_strict(psi, {**psi, "learners": [A, B]}) == []
    assert dims(at_least_as_strict({**psi, "learners": [A, B]}, psi)) == {"privacyProtocol.psiCardinality.learners"}
    assert dims(at_least_as_strict(psi, {**psi, "threatModel": "malicious"})) == {
        "privacyProtocol.psiCardinality.threatModel"}


def test_combinations_every_reference_needs_a_stricter_candidate():
    ref = [{"kind": "threshold", "minCellCount": 10}, {"kind": "differentialPrivacy", "epsilon": 1.0}]
    assert at_least_as_strict([{"kind": "differentialPrivacy", "epsilon": 0.5},
                               {"kind": "threshold", "minCellCount": 10},
                               {"kind": "treOnly"}], ref) == []
    [v] = at_least_as_strict([{"kind": "threshold", "minCellCount": 20}], ref)
    assert v.dimension == "privacyProtocol.differentialPrivacy" and "missing" in v.message
    assert at_least_as_strict([{"kind": "threshold", "minCellCount": 3}], None) == []
    # two candidates of one kind: the stricter one satisfies the reference
    assert at_least_as_strict([{"kind": "threshold", "minCellCount": 3}, {"kind": "threshold", "minCellCount": 10}],
                              ref[:1]) == []


@pytest.mark.parametrize("bad", [
    {"kind": "threshold"}, {"kind": "threshold", "minCellCount": 0}, {"kind": "nope"}, "threshold",
    {"kind": "differentialPrivacy", "epsilon": 1, "rho": 1}, {"kind": "differentialPrivacy"},
    {"kind": "secureAggregation", "inputParties": [A], "computeParties": [B], "outputParties": [C],
     "collusionThreshold": 2},
    {"kind": "psiCardinality", "parties": [A, B], "learners": [C]},
    {"kind": "threshold", "minCellCount": 10, "extra": 1},
])
def test_malformed_protocols_are_violations_not_exceptions(bad):
    [v] = at_least_as_strict(bad, {"kind": "threshold", "minCellCount": 1})
    assert v.dimension == "privacyProtocol" and "malformed" in v.message
    assert codes(check_transfer(bad, {}, b"count\n10\n")) == ["protocol.malformed"]


# ------------------------------------------------------------------------------------------------ transfer time

THRESHOLD = {"kind": "threshold", "minCellCount": 10}


def test_payload_threshold():
    manifest = {"columns": ["area", "count"], "rowCount": 3}
    assert check_transfer(THRESHOLD, manifest, b"area,count\nx,10\ny,*\nz,250\n") == []
    [p] = check_transfer(THRESHOLD, manifest, b"area,count\nx,10\ny,9\nz,250\n")
    assert p.code == "protocol.cell_below_threshold"
    assert p.detail == {"row": 2, "column": "count", "threshold": 10} and "Row 2" in p.message
    # zeros count as small unless the protocol allows structural zeros
    assert codes(check_transfer(THRESHOLD, manifest, b"area,count\nx,0\ny,10\nz,10\n")) == [
        "protocol.cell_below_threshold"]
    assert check_transfer({**THRESHOLD, "zerosAllowed": True}, manifest, b"area,count\nx,0\ny,10\nz,10\n") == []


def test_payload_count_columns_from_manifest():
    manifest = {"countColumns": ["male", "female"], "columns": ["area", "male", "female"]}
    [p] = check_transfer(THRESHOLD, manifest, b"area,male,female\nx,12,4\n")
    assert p.detail["column"] == "female"
    assert codes(check_transfer(THRESHOLD, {"countColumns": ["total"]}, b"area,male\nx,12\n")) == [
        "protocol.payload_unparseable"]
    assert codes(check_transfer(THRESHOLD, {}, b"area,rate\nx,0.5\n")) == ["protocol.payload_unparseable"]


def test_which_columns_are_counts_is_not_the_manifests_to_decide():
    """On a pull the manifest is the recipient's: it may add count columns, never exempt one. Without countColumns
    in the approval, every column of whole numbers is a count; with them, those are (and a 'count' column)."""
    table = b"year,ageBand,households\n2024,16-24,3\n2024,25-34,1\n"
    steered = {"columns": ["year", "ageBand", "households"], "countColumns": ["year"]}
    found = check_transfer(THRESHOLD, steered, table)
    assert codes(found) == ["protocol.cell_below_threshold"] * 2
    assert {p.detail["column"] for p in found} == {"households"} and "whole numbers" in found[0].message
    assert codes(check_transfer(THRESHOLD, {}, b"area,people\nx,12\n")) == []           # 12 >= 10: read as a count
    named = {**THRESHOLD, "countColumns": ["households"]}
    found = check_transfer(named, {"countColumns": []}, table)
    assert [p.detail["column"] for p in found] == ["households", "households"] and "whole numbers" not in \
        found[0].message
    # a numeric dimension is not a count once the approval names the counts
    assert check_transfer(named, {}, b"quarter,households\n1,12\n2,30\n") == []
    assert codes(check_transfer(THRESHOLD, {}, b"quarter,households\n1,12\n2,30\n")) == [
        "protocol.cell_below_threshold"] * 2
    assert codes(check_transfer(named, {}, b"area,count\nx,12\n")) == ["protocol.payload_unparseable"]
    assert codes(check_transfer(THRESHOLD, {"countColumns": "households"}, table)) == ["protocol.payload_unparseable"]


def test_count_column_is_checked_even_when_the_manifest_names_other_count_columns():
    """Threshold: the recipient's manifest cannot steer the check away from the count column."""
    from schemas.models import Threshold

    table = b"localAuthority,count,total\nFife,3,140\nGlasgow,40,140\n"
    protocol = [Threshold(min_cell_count=10)]
    honest = {"columns": ["localAuthority", "count", "total"], "countColumns": ["count"]}
    steered = {"columns": ["localAuthority", "count", "total"], "countColumns": ["total"]}
    assert "protocol.cell_below_threshold" in {p.code for p in check_transfer(protocol, honest, table)}
    assert "protocol.cell_below_threshold" in {p.code for p in check_transfer(protocol, steered, table)}


def test_odd_manifests_and_huge_counts_are_named_not_internal_errors():
    assert codes(check_transfer(THRESHOLD, {"columns": 5}, b"area,count\nx,12\n")) == ["protocol.payload_unparseable"]
    huge = "9" * 5000
    assert check_transfer(THRESHOLD, {}, f"area,count\nx,{huge}\n".encode()) == []


def test_an_approval_cannot_check_fewer_count_columns_than_its_delegation():
    reference = {**THRESHOLD, "countColumns": ["households", "people"]}
    assert dims(at_least_as_strict({**THRESHOLD, "countColumns": ["households"]}, reference)) == {
        "privacyProtocol.threshold.countColumns"}
    assert at_least_as_strict({**THRESHOLD, "countColumns": ["people", "households", "x"]}, reference) == []
    assert dims(at_least_as_strict(THRESHOLD, reference)) == {"privacyProtocol.threshold.countColumns"}
    # the reference names none (every column holding a whole number is checked): naming some would exempt others
    assert dims(at_least_as_strict({**THRESHOLD, "countColumns": ["year"]}, THRESHOLD)) == {
        "privacyProtocol.threshold.countColumns"}
    assert at_least_as_strict(THRESHOLD, THRESHOLD) == []


def test_a_column_is_never_dropped_from_the_check_for_one_odd_cell():
    """Without named count columns, a column holding a whole number is a count column; a cell in it that is
    neither a count nor a suppression marker makes the payload unparseable rather than exempting the column."""
    for odd in ("<5", '"1,204"', "-"):
        table = f"year,ageBand,applications\n2024,16-24,3\n2024,25-34,{odd}\n".encode()
        assert set(codes(check_transfer(THRESHOLD, {}, table))) == {"protocol.cell_below_threshold",
                                                                    "protocol.payload_unparseable"}, odd


@pytest.mark.parametrize("payload", [
    b"", b"\xff\xfe\x00garbage", b"area,count\nx,10,extra\n", b"area,count\nx,ten\n", b"area,count\nx,-3\n",
    b"area,count\nx,1.5\n", b"area,area\nx,10\n", b'area,count\n"x,10\n', b"area,count\nx,\xd9\xa3\xd9\xa3\n",
])
def test_unparseable_payload_is_a_problem(payload):
    got = check_transfer(THRESHOLD, {}, payload)
    assert got and set(codes(got)) == {"protocol.payload_unparseable"}


def test_payload_missing_columns_and_row_count():
    assert codes(check_transfer(THRESHOLD, {}, None)) == ["protocol.payload_missing"]
    got = check_transfer(THRESHOLD, {"columns": ["area", "count"], "rowCount": 5}, b"area,count,name\nx,10,Bob\n",
                         approved_columns=["area", "count"])
    assert codes(got) == ["protocol.column_not_approved", "protocol.column_not_approved",
                          "protocol.manifest_mismatch"]
    assert all(p.detail.get("columns", ["name"]) == ["name"] for p in got)


def test_secondary_suppression_with_published_total():
    proto = {**THRESHOLD, "secondarySuppression": True}
    manifest = {"countColumns": ["a", "b", "c"], "totalColumn": "total"}
    [p] = check_transfer(proto, manifest, b"area,a,b,c,total\nx,*,20,30,55\n")
    assert p.code == "protocol.secondary_suppression_missing"
    assert p.detail == {"row": 1, "column": "a", "interval": [5, 5], "protection": 10}
    assert check_transfer(proto, manifest, b"area,a,b,c,total\nx,*,*,30,55\n") == []
    assert check_transfer(proto, manifest, b"area,a,b,c,total\nx,*,20,30,*\n") == []
    # the total column is recognised by its name without the manifest saying so (the manifest may only add)
    assert codes(check_transfer(proto, {}, b"area,a,b,c,total\nx,*,20,30,55\n")) == [
        "protocol.secondary_suppression_missing"]


DP = {"kind": "differentialPrivacy", "epsilon": 0.5, "budget": {"period": "P1Y", "epsilon": 2.0, "maxReleases": 4}}
RUN = {"protocolRun": {"kind": "differentialPrivacy", "epsilon": 0.5}}


def test_the_recipients_budget_figures_mean_nothing():
    """The fifth release of the year is refused by the owner's ledger whatever the manifest says was spent."""
    from datetime import datetime, timezone
    from verifier.protocols import ReleaseContext, charge

    class Books:                          # the smallest ledger: the arithmetic every ledger applies
        def __init__(self):
            self.rows = []

        def charge(self, release, budget, now=None):
            from verifier.ledger import affordable
            problems = affordable(release, budget, [r.to_json() for r in self.rows], now)
            if not problems:
                self.rows.append(release)
            return problems

    books = Books()
    ctx = ReleaseContext(recipient=B, ledger=books, dataset="https://data.example/ds", approval="urn:a",
                         anchor=datetime(2026, 4, 1, tzinfo=timezone.utc), now=datetime(2026, 6, 1, tzinfo=timezone.utc))
    lying = {**RUN, "epsilonSpent": 0, "releasesInPeriod": 0}
    for _ in range(4):
        assert check_transfer(DP, lying, None, context=ctx) == [] and charge(DP, ctx) == []
    assert check_transfer(DP, lying, None, context=ctx) == []        # the manifest's figures are not a check
    limit, spent = sorted(charge(DP, ctx), key=lambda p: p.code, reverse=True)
    assert limit.code == "protocol.release_limit" and limit.detail["releases"] == 4 and limit.detail["limit"] == 4
    assert spent.code == "protocol.budget_exhausted" and spent.detail["spent"] == 2.0
    assert len(books.rows) == 4
    assert codes(charge(DP, ReleaseContext(recipient=B))) == ["protocol.ledger_unavailable"]
    assert charge(THRESHOLD, ReleaseContext(recipient=B)) == []     # no DP: nothing to charge


def test_dp_run_must_be_stated_and_not_weaker():
    assert codes(check_transfer(DP, {"epsilonSpent": 0, "releasesInPeriod": 0}, None)) == ["protocol.run_missing"]
    got = check_transfer(DP, {"protocolRun": {"kind": "differentialPrivacy", "epsilon": 1.0}, "epsilonSpent": 0,
                              "releasesInPeriod": 0}, None)
    assert codes(got) == ["protocol.run_weaker_than_approved"]
    assert codes(check_transfer(DP, {"protocolRun": {"kind": "bogus"}}, None)) == ["protocol.malformed"]


def test_output_parties_and_learners():
    psi = {"kind": "psiCardinality", "parties": [A, B], "learners": [B]}
    assert check_transfer(psi, {"protocolRun": psi, "recipient": B}, None) == []
    assert codes(check_transfer(psi, {"protocolRun": psi, "recipient": A}, None)) == [
        "protocol.output_party_not_allowed"]
    assert codes(check_transfer(psi, {"protocolRun": {**psi, "learners": [A, B]}, "recipient": B}, None)) == [
        "protocol.output_party_not_allowed"]
    agg = {"kind": "secureAggregation", "inputParties": [A, B, C], "computeParties": [E, F], "outputParties": [D],
           "collusionThreshold": 2}
    assert check_transfer(agg, {"protocolRun": agg, "recipient": D}, None) == []
    assert codes(check_transfer(agg, {"protocolRun": {**agg, "collusionThreshold": 1}, "recipient": D}, None)) == [
        "protocol.run_weaker_than_approved"]


def test_tre_only_needs_the_accredited_tre_itself():
    from verifier.protocols import ReleaseContext
    tre_did = "did:web:safe-haven.ed.ac.uk.example"
    tre = {"kind": "treOnly", "environments": [tre_did]}
    accredited = {"https://w3id.org/cead/vocab#DEAAccreditedProcessor"}
    assert check_transfer(tre, {}, None, context=ReleaseContext(recipient=tre_did,
                                                                recipient_accreditations=accredited)) == []
    # a manifest string naming the environment is not evidence: the laptop stays refused
    got = check_transfer(tre, {"environment": tre_did}, None,
                         context=ReleaseContext(recipient="did:web:laptop.example", recipient_accreditations=set()))
    assert codes(got) == ["protocol.tre_not_accredited", "protocol.tre_required"]
    # the TRE itself without a valid accreditation credential is refused too
    assert codes(check_transfer(tre, {}, None, context=ReleaseContext(recipient=tre_did))) == [
        "protocol.tre_not_accredited"]
    # any accredited TRE, when none is listed
    assert check_transfer({"kind": "treOnly"}, {}, None, context=ReleaseContext(
        recipient=A, recipient_accreditations=accredited)) == []


def test_bad_manifest():
    assert codes(check_transfer(THRESHOLD, "not a dict", b"count\n10\n")) == ["protocol.malformed"]
    assert check_transfer([], {}, None) == []



def test_a_json_body_is_not_a_table_of_counts():
    assert codes(check_transfer(THRESHOLD, {}, b'{"count": 3}')) == ["protocol.payload_unparseable"]


# ------------------------------------------------------------------------------------------------ fixed orders

def test_secure_aggregation_over_one_council_is_refused():
    """Fewer input parties is weaker: an aggregate of one council reveals that council."""
    one = {"kind": "secureAggregation", "inputParties": [A], "computeParties": [E, F, G], "outputParties": [D],
           "collusionThreshold": 2}
    assert codes(check_transfer(one, {"protocolRun": one, "recipient": D}, None)) == ["protocol.malformed"]
    three = {**one, "inputParties": [A, B, C]}
    # a delegation allowing three councils cannot be narrowed to an approval of one or two
    [v] = at_least_as_strict({**three, "inputParties": [A, B], "minInputParties": 2}, three)
    assert v.dimension == "privacyProtocol.secureAggregation.minInputParties"
    [v] = at_least_as_strict(one, three)
    assert v.dimension == "privacyProtocol" and "minInputParties" in v.message
    # ... and a run over fewer parties than approved is weaker than the approval
    run = {**three, "inputParties": [A, B], "minInputParties": 2}
    assert codes(check_transfer(three, {"protocolRun": run, "recipient": D}, None)) == [
        "protocol.run_weaker_than_approved"]


def test_compute_parties_counted_by_independent_organisation():
    """A compute party in the output party's own organisation counts as colluding already; several DIDs of one
    organisation count once."""
    from verifier.protocols import organisations_to_collude
    from schemas.models import SecureAggregation
    sg_out, sg_mpc = "did:web:gov.scot.example:homelessness-statistics", "did:web:gov.scot.example:mpc-node"
    ed, strath = "did:web:mpc.ed.ac.uk.example", "did:web:mpc.strath.ac.uk.example"
    leaky = {"kind": "secureAggregation", "inputParties": [A, B, C], "computeParties": [ed, strath, sg_mpc],
             "outputParties": [sg_out], "collusionThreshold": 2}
    assert organisations_to_collude(SecureAggregation.model_validate(leaky)) == 1
    [p] = check_transfer(leaky, {"protocolRun": leaky, "recipient": sg_out}, None)
    assert p.code == "protocol.compute_parties_not_independent" and p.detail["organisations"] == 1
    one_org = {**leaky, "computeParties": [ed, "did:web:mpc.ed.ac.uk.example:second", "did:web:mpc.ed.ac.uk.example:third"]}
    assert organisations_to_collude(SecureAggregation.model_validate(one_org)) == 1
    assert codes(check_transfer(one_org, {"protocolRun": one_org, "recipient": sg_out}, None)) == [
        "protocol.compute_parties_not_independent"]
    fine = {**leaky, "computeParties": [ed, strath, "did:web:mpc.abdn.ac.uk.example"]}
    assert check_transfer(fine, {"protocolRun": fine, "recipient": sg_out}, None) == []
    # the order: a delegation needing 2 independent organisations is not met by an approval whose parties give 1
    assert {v.dimension for v in at_least_as_strict(leaky, fine)} >= {
        "privacyProtocol.secureAggregation.collusionThreshold"}
    assert at_least_as_strict(fine, fine) == []


def test_unit_of_privacy_and_mechanism_orders():
    ref = {"kind": "differentialPrivacy", "epsilon": 1.0, "mechanism": "laplace", "unitOfPrivacy": "person"}
    assert at_least_as_strict({**ref, "unitOfPrivacy": "household"}, ref) == []
    assert {v.dimension for v in at_least_as_strict({**ref, "unitOfPrivacy": "record"}, ref)} == {
        "privacyProtocol.differentialPrivacy.unitOfPrivacy"}
    gauss = {"kind": "differentialPrivacy", "epsilon": 1.0, "delta": 1e-9, "mechanism": "gaussian",
             "unitOfPrivacy": "person"}
    assert {v.dimension for v in at_least_as_strict(gauss, ref)} >= {"privacyProtocol.differentialPrivacy.mechanism"}
    psi = {"kind": "psiCardinality", "parties": [A, B], "learners": [B], "minSetSize": 1000}
    assert {v.dimension for v in at_least_as_strict({**psi, "minSetSize": 10}, psi)} == {
        "privacyProtocol.psiCardinality.minSetSize"}
