"""Rounding and cell-key perturbation: described in a privacy protocol, ordered ("at least as strict"), and checked
on real outputs: a rounded table's every count is a multiple of the base; a cell-key perturbed table is reproduced
from the provider's record keys and the approved ptable, at the provider, where the data are."""
from __future__ import annotations

import pytest

from schemas.models import CellKeyPerturbation
from verifier.disclosure import cellkey, read_table
from verifier.protocols import ReleaseContext, at_least_as_strict, check_transfer, parse_protocols

# counts 0..3 (3 also for every larger count); a cell key in [previous upper, upper) picks the perturbation
PTABLE = [{"count": 0, "perturbation": 0, "upper": 1},
          {"count": 1, "perturbation": 1, "upper": 0.5}, {"count": 1, "perturbation": 0, "upper": 1},
          {"count": 2, "perturbation": -1, "upper": 0.3}, {"count": 2, "perturbation": 0, "upper": 0.7},
          {"count": 2, "perturbation": 1, "upper": 1},
          {"count": 3, "perturbation": -2, "upper": 0.2}, {"count": 3, "perturbation": 0, "upper": 0.8},
          {"count": 3, "perturbation": 2, "upper": 1}]
CELL_KEY = {"kind": "cellKeyPerturbation", "modulus": 100, "ptable": PTABLE}
# the provider's records: each cell's record keys (drawn once per record and kept with it)
RECORD_KEYS = {("Fife", "16-24"): [10, 20, 30, 40, 5],     # 5 records, key 105 % 100 = 0.05 -> -2: 3
               ("Fife", "25-34"): [50, 45],                 # 2 records, key 0.95 -> +1: 3
               ("Dundee", "16-24"): [30],                   # 1 record, key 0.30 -> +1: 2
               ("Dundee", "25-34"): [25, 25, 25, 10]}       # 4 records, key 0.85 -> +2: 6
PERTURBED = b"area,age_band,count\nFife,16-24,3\nFife,25-34,3\nDundee,16-24,2\nDundee,25-34,6\n"
TRUE = b"area,age_band,count\nFife,16-24,5\nFife,25-34,2\nDundee,16-24,1\nDundee,25-34,4\n"


def codes(problems):
    return [p.code for p in problems]


def test_rounding_every_published_count_is_a_multiple_of_the_base():
    protocol = {"kind": "rounding", "base": 5}
    assert check_transfer(protocol, {}, b"area,count\nFife,15\nDundee,*\nPerth,0\nAngus,1205\n") == []
    problems = check_transfer(protocol, {}, b"area,count\nFife,15\nDundee,7\nPerth,12\n")
    assert codes(problems) == ["disclosure.not_rounded"] * 2
    assert [p.detail["row"] for p in problems] == [2, 3] and problems[0].detail["base"] == 5
    # the approval's count columns, and any the manifest adds, are checked; not only a column called count
    wide = b"area,households,people\nFife,10,23\n"
    assert codes(check_transfer({**protocol, "countColumns": ["households", "people"]}, {}, wide)) \
        == ["disclosure.not_rounded"]
    assert codes(check_transfer(protocol, {"countColumns": ["people"]}, wide)) == ["disclosure.not_rounded"]
    assert codes(check_transfer(protocol, {}, wide)) == ["protocol.payload_unparseable"]   # no count column known
    assert codes(check_transfer(protocol, {}, None)) == ["protocol.payload_missing"]
    assert codes(check_transfer(protocol, {}, b"area,count\nFife,ten\n")) == ["protocol.payload_unparseable"]


def test_rounding_order_a_coarser_base_that_the_approved_divides():
    assert at_least_as_strict({"kind": "rounding", "base": 10}, {"kind": "rounding", "base": 5}) == []
    assert [v.dimension for v in at_least_as_strict({"kind": "rounding", "base": 5}, {"kind": "rounding", "base": 10})] \
        == ["privacyProtocol.rounding.base"]
    # 15 is coarser than 10 but its multiples (15, 45, ...) are not multiples of 10
    assert at_least_as_strict({"kind": "rounding", "base": 15}, {"kind": "rounding", "base": 10})
    assert at_least_as_strict({"kind": "rounding", "base": 10},
                              {"kind": "rounding", "base": 5, "countColumns": ["count", "people"]})
    assert at_least_as_strict([{"kind": "threshold", "minCellCount": 10}], {"kind": "rounding", "base": 5})


def test_the_ptable_must_be_complete_and_never_publish_a_negative_count():
    CellKeyPerturbation.model_validate(CELL_KEY)
    with pytest.raises(ValueError, match="every count"):
        parse_protocols({**CELL_KEY, "ptable": [e for e in PTABLE if e["count"] != 1]})
    with pytest.raises(ValueError, match="ending at 1"):
        parse_protocols({**CELL_KEY, "ptable": [e for e in PTABLE if e != PTABLE[-1]]})
    with pytest.raises(ValueError, match="negative"):
        parse_protocols({**CELL_KEY, "ptable": [{"count": 0, "perturbation": -1, "upper": 1}]})


def test_cell_key_perturbation_is_reproduced_from_the_providers_record_keys():
    context = ReleaseContext(record_keys=RECORD_KEYS)
    assert check_transfer(CELL_KEY, {}, PERTURBED, context=context) == []
    # the true counts were not perturbed: every cell differs from what the ptable gives
    assert codes(check_transfer(CELL_KEY, {}, TRUE, context=context)) == ["disclosure.cell_key_mismatch"] * 4
    # one value changed after perturbation (e.g. an unperturbed count slipped in): that cell, and only it
    changed = PERTURBED.replace(b"Dundee,25-34,6", b"Dundee,25-34,4")
    problems = check_transfer(CELL_KEY, {}, changed, context=context)
    assert codes(problems) == ["disclosure.cell_key_mismatch"] and problems[0].detail["row"] == 4
    assert "6" not in problems[0].message     # the refusal does not tell the recipient the right value
    # a cell the provider holds no record of publishes the count-0 row's value (0 here)
    assert check_transfer(CELL_KEY, {}, PERTURBED + b"Perth,16-24,0\n", context=context) == []
    assert codes(check_transfer(CELL_KEY, {}, PERTURBED + b"Perth,16-24,1\n", context=context)) \
        == ["disclosure.cell_key_mismatch"]
    # where the record keys are not (a gateway away from the data), the output cannot be checked: refused
    assert codes(check_transfer(CELL_KEY, {}, PERTURBED)) == ["protocol.perturbation_unverifiable"]


def test_the_same_cell_is_perturbed_the_same_way_and_the_noise_is_bounded():
    import random
    protocol = CellKeyPerturbation.model_validate({**CELL_KEY, "modulus": 2**32})
    rng = random.Random(14)
    keys = [rng.randrange(2**32) for _ in range(40)]
    assert cellkey.perturb(protocol, keys) == cellkey.perturb(protocol, list(reversed(keys)))
    assert all(abs(cellkey.perturb(protocol, keys[:n]) - n) <= protocol.max_perturbation for n in range(41))
    table = read_table(b"cell,count\na,2\n")
    assert cellkey.check(table, ["count"], protocol, {("a",): []}) != []


def test_cell_key_order_requires_the_approved_ptable():
    assert at_least_as_strict(CELL_KEY, CELL_KEY) == []
    other = {**CELL_KEY, "ptable": [{**e, "perturbation": 0} for e in PTABLE]}
    assert [v.dimension for v in at_least_as_strict(other, CELL_KEY)] == ["privacyProtocol.cellKeyPerturbation.ptable"]
    assert at_least_as_strict({**CELL_KEY, "modulus": 1000}, CELL_KEY)


def test_a_gateway_checks_a_perturbed_output_with_the_providers_record_keys(tmp_path):
    """Whole decisions (signed approval, Data Integrity over the new protocol terms, real SQLite ledger): the
    provider's node offers its records' keys alongside its ledger, so its gateway reproduces the perturbed table."""
    from issuer import db
    from issuer.ledger import SqlLedger
    from transfer_world import codes as decision_codes, world

    class ProviderBooks(SqlLedger):      # the provider's node: its ledger, and the keys kept with its records
        def record_keys(self, dataset):
            return RECORD_KEYS

    with world() as w:
        approval = w.make_approval(w.deputy, chain=[w.d1, w.d2], fmt="ldp", privacyProtocol=[CELL_KEY])
        engine = db.migrate(f"sqlite:///{tmp_path / 'fife.db'}")

        def push(body, ledger):
            body = body.replace(b"area,age_band", b"localAuthority,ageBand")
            request = w.request("POST", body=body, columns=["localAuthority", "ageBand", "count"], rowCount=4)
            decider = w.decider()
            decider.ledger = ledger
            return decider.decide(w.present(request, [approval, w.d1, w.d2, w.cert]), request)

        allowed = push(PERTURBED, ProviderBooks(engine))
        assert allowed.allowed, allowed.to_dict()
        assert decision_codes(push(TRUE, ProviderBooks(engine))) == {"disclosure.cell_key_mismatch"}
        assert decision_codes(push(PERTURBED, SqlLedger(engine))) == {"protocol.perturbation_unverifiable"}
