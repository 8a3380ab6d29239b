"""The decision's stages: each a function returning its problems, testable alone; a new stage is one function
added to the list (``verifier.decision.APPROVAL_STAGES`` or ``Decider(stages=...)``)."""
from __future__ import annotations

from verifier import decision as decision_pkg
from verifier.decision import APPROVAL_STAGES, Attempt, Decider, DecisionContext
from verifier.decision import approval, certification, delegation, transfer
from verifier.decision.codes import http_status, status_of
from verifier.decision.presentation import check_credentials, check_presentation
from verifier.policy import parse_policy
from verifier.results import Problem


def _context(w, decider: Decider, request, credentials=None):
    vp = w.present(request, credentials)
    ctx = decider.context(request, decider.clock())
    assert check_presentation(ctx, vp) == []
    return ctx


def test_each_stage_alone_on_a_good_presentation_finds_nothing(w):
    decider, request = w.decider(), w.request()
    ctx = _context(w, decider, request)
    assert ctx.holder == w.recipient.did and len(ctx.creds) == 4
    assert check_credentials(ctx) == []
    found, problems = approval.candidates(ctx)
    assert problems == [] and [c.id for c in found] == [w.doc(w.approval)["id"]]
    attempt = Attempt(ctx, found[0])
    for stage in APPROVAL_STAGES:
        assert stage(attempt) == [], stage.__name__
    assert len(attempt.links) == 2                      # the delegation stage found the two-link chain
    assert len(set(attempt.relied_on)) == 4             # approval, two delegations, the certification


def test_a_stage_alone_reports_its_own_problem(w):
    decider, request = w.decider(), w.request()
    ctx = _context(w, decider, request, [w.approval, w.d1, w.d2])   # no certification
    attempt = Attempt(ctx, approval.candidates(ctx)[0][0])
    assert approval.check_approval(attempt) == []
    assert delegation.check_delegation(attempt) == []
    assert [p.code for p in certification.check_recipient(attempt)] == ["certification.missing"]
    stranger = w.request(purpose="https://example.org/not-a-purpose")
    ctx = _context(w, decider, stranger)
    attempt = Attempt(ctx, approval.candidates(ctx)[0][0])
    assert "transfer.purpose_not_approved" in {p.code for p in transfer.check_transfer(attempt)}


def test_an_added_stage_is_run_and_its_problem_denies(w):
    seen = []

    def lawful_basis(attempt: Attempt) -> list[Problem]:
        seen.append(attempt.approval.id)
        return [Problem("approval.invalid", "a toy stage says no")]

    decider = Decider(parse_policy(w.policy_data()), stages=[*APPROVAL_STAGES, lawful_basis])
    request = w.request()
    decision = decider.decide(w.present(request), request)
    assert not decision.allowed and [p.code for p in decision.reasons] == ["approval.invalid"]
    assert seen == [w.doc(w.approval)["id"]]
    assert isinstance(decider.context(request, decider.clock()), DecisionContext)
    assert decision_pkg.APPROVAL_STAGES is APPROVAL_STAGES   # the module-level list is the default


def test_each_code_has_one_http_status():
    assert status_of("presentation.missing") == 401 and status_of("transfer.volume_exceeded") == 403
    deny = decision_pkg.Decision(False, [Problem("presentation.missing", "x")])
    assert http_status(deny) == 401
    deny.reasons.append(Problem("transfer.volume_exceeded", "y"))
    assert http_status(deny) == 403
    assert http_status(decision_pkg.Decision(True, [])) == 200
