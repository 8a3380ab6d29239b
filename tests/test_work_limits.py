"""Work limits proportional to what an approval allows (issue 11): a table larger than the approval can need is
refused unread, manifest columns are bounded, and a rowCount that is no count has its own code."""
from __future__ import annotations

import pytest

from verifier.decision import TransferRequest, limits
from verifier.decision import protocol as protocol_stage
from verifier.results import CeadError
from transfer_world import API, codes

HEADER = b"ageBand,localAuthority,outcome,count\n"


def decide(w, credentials, request):
    return w.decider().decide(w.present(request, credentials), request)


def test_a_table_larger_than_the_approval_can_need_is_refused_unread(w, monkeypatch):
    approval = w.make_approval(w.controller, privacyProtocol={"kind": "threshold", "minCellCount": 10},
                               maxRowsPerTransfer=2)
    good = HEADER + b"16-24,Fife,housed,12\n25-34,Fife,housed,40\n"
    assert decide(w, [approval, w.cert], w.request("POST", body=good, rowCount=2)).allowed
    limit = limits.TABLE_OVERHEAD + 3 * 4 * limits.CELL_BYTES     # header + 2 rows, 4 columns
    huge = HEADER + b"16-24,Fife,housed,12\n" * (limit // 20)        # ~ the 10 MB case, scaled down
    assert len(huge) > limit
    read = []
    original = protocol_stage.check_transfer
    monkeypatch.setattr(protocol_stage, "check_transfer", lambda *a, **kw: read.append(1) or original(*a, **kw))
    decision = decide(w, [approval, w.cert], w.request("POST", body=huge, rowCount=2))
    assert not decision.allowed and "transfer.body_too_large" in codes(decision)
    assert read == []                                               # the protocol stage never parsed it
    reason = next(r for r in decision.to_dict()["reasons"] if r["code"] == "transfer.body_too_large")
    assert reason["detail"]["limit"] == limit
    # the manifest's own rowCount, when smaller, bounds it too
    assert limits.table_limit(approval_model(approval), {"rowCount": 0, "columns": ["a"]}) == \
        limits.TABLE_OVERHEAD + limits.CELL_BYTES
    # a pulled response is held to the same bound before it is read
    problems = protocol_stage.check_response(approval_model(approval), {"columns": ["ageBand", "localAuthority",
                                                                                   "outcome", "count"]}, huge)
    assert [p.code for p in problems] == ["transfer.body_too_large"]


def approval_model(credential):
    from schemas import models
    from verifier.jose import unverified_claims
    doc = unverified_claims(credential) if isinstance(credential, str) else credential
    return models.DataSharingApproval.from_credential(doc)


def test_manifest_columns_are_bounded(w):
    many = [f"c{i}" for i in range(limits.MAX_COLUMNS + 1)]
    with pytest.raises(CeadError) as info:
        TransferRequest("GET", f"{API}/datasets/homelessness", manifest={"columns": many})
    assert info.value.code == "transfer.too_many_columns"
    assert limits.manifest_problems({"columns": many})[0].code == "transfer.too_many_columns"
    assert limits.manifest_problems({"columns": many[:limits.MAX_COLUMNS]}) == []


@pytest.mark.parametrize("row_count", [-1, 2.5, "12", True])
def test_a_row_count_that_is_no_count_has_its_own_code(w, row_count):
    limited = [w.make_approval(w.controller, maxRowsPerTransfer=1000), w.cert]   # a limit, so rowCount is read
    decision = decide(w, limited, w.request(rowCount=row_count, response_checked=True))
    assert not decision.allowed
    found = codes(decision)
    assert "transfer.row_count_invalid" in found and "transfer.row_count_missing" not in found
    missing = decide(w, limited, w.request(rowCount=None, response_checked=True))
    assert "transfer.row_count_missing" in codes(missing)
    # and whatever the approval
    assert "transfer.row_count_invalid" in codes(decide(w, w.bundle(), w.request(rowCount=row_count)))
