"""The provider's differentially private release with OpenDP, on a real table, charged to the owner's ledger."""
from __future__ import annotations

import csv
import io
import random
import statistics
from datetime import datetime, timezone

import pytest

from issuer import db
from issuer.ledger import SqlLedger
from issuer.release import noisy_table, release
from verifier.protocols import ReleaseContext
from verifier.results import CeadError

AREAS = [("Glasgow City",), ("Fife",), ("Dundee City",)]
PROTO = {"kind": "differentialPrivacy", "epsilon": 1.0, "mechanism": "laplace", "unitOfPrivacy": "person",
         "maxContributions": 1, "budget": {"period": "P1Y", "epsilon": 2.0, "maxReleases": 4,
                                           "start": "2026-04-01T00:00:00Z"}}


def people(n=3000, seed=3):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        area = rng.choice(["Glasgow City"] * 6 + ["Fife"] * 3 + ["Dundee City"])
        out.append({"person": f"p{i}", "area": area, "payment": rng.uniform(0, 500)})
        if i % 10 == 0:                              # some people appear twice: bounded to one record each
            out.append({"person": f"p{i}", "area": area, "payment": 40.0})
    return out


def parse(data: bytes) -> dict:
    return {r["area"]: float(r["count"] if "count" in r else r["total"])
            for r in csv.DictReader(io.StringIO(data.decode()))}


def test_laplace_counts_are_noisy_and_close_to_the_truth():
    recs = people()
    truth = {a: len({r["person"] for r in recs if r["area"] == a}) for (a,) in AREAS}
    runs = [parse(noisy_table(recs, PROTO, group_by=["area"], groups=AREAS, unit_column="person"))
            for _ in range(30)]
    for a in truth:
        values = [r[a] for r in runs]
        assert len(set(values)) > 1                             # noise was added
        assert abs(statistics.mean(values) - truth[a]) < 3      # scale 1: mean error well under 3
    # only the public groups are released, whatever the data hold
    out = parse(noisy_table(recs + [{"person": "x", "area": "Nowhere"}], PROTO, group_by=["area"], groups=AREAS,
                            unit_column="person"))
    assert set(out) == {a for (a,) in AREAS}


def test_gaussian_sum_with_clipping_and_zcdp():
    proto = {"kind": "differentialPrivacy", "rho": 0.5, "mechanism": "gaussian", "unitOfPrivacy": "person",
             "clipping": {"lower": 0, "upper": 100}}
    recs = people()
    got = parse(noisy_table(recs, proto, group_by=["area"], groups=AREAS, unit_column="person",
                            value_column="payment", output_column="total"))
    seen, truth = set(), {a: 0.0 for (a,) in AREAS}
    for r in recs:
        if r["person"] not in seen:
            seen.add(r["person"])
            truth[r["area"]] += min(max(r["payment"], 0), 100)
    for a in truth:
        assert abs(got[a] - truth[a]) < 1000                      # scale 100: within 10 sd
    approx = {**proto, "rho": None, "epsilon": 1.0, "delta": 1e-6}
    approx.pop("rho")
    assert parse(noisy_table(recs, approx, group_by=["area"], groups=AREAS, unit_column="person"))
    with pytest.raises(CeadError):
        noisy_table(recs, {**proto, "clipping": None}, group_by=["area"], groups=AREAS, unit_column="person",
                    value_column="payment")


def test_release_charges_the_ledger_first_and_the_fifth_is_refused(tmp_path):
    ledger = SqlLedger(db.migrate(f"sqlite:///{tmp_path / 'sss.db'}"))
    ctx = ReleaseContext(recipient="did:web:glasgow.example", ledger=ledger,
                         dataset="https://data.socialsecurity.gov.scot.example/dataset/scp", approval="urn:a",
                         now=datetime(2026, 11, 26, tzinfo=timezone.utc))
    small = {**PROTO, "epsilon": 0.5}
    recs = people(300)
    for _ in range(4):
        data, problems = release(recs, small, ctx, group_by=["area"], groups=AREAS, unit_column="person")
        assert problems == [] and data
    data, problems = release(recs, small, ctx, group_by=["area"], groups=AREAS, unit_column="person")
    assert data is None and {p.code for p in problems} == {"protocol.release_limit", "protocol.budget_exhausted"}
    [row] = {(r["mechanism"], r["unit"], r["epsilon"]) for r in ledger.releases(ctx.dataset)}
    assert row == ("laplace", "person", 0.5)
