"""What the decision keeps between decisions is keyed by the exact credential verified, and never skips a check:
scopes built once per credential digest are still checked on every decision, against whichever parent the
presentation names (issue 12: "a cached result is keyed by the exact bytes verified and never skips status,
scope or binding checks")."""
from __future__ import annotations

from transfer_world import DATASET, DPV, codes, world


def test_a_widening_delegation_is_denied_every_time_with_warm_scope_caches():
    with world() as w:
        decider = w.decider()
        wide = w.delegation(w.iao, w.deputy, parent=w.d1, max_depth=0,
                            datasets=[DATASET, "https://data.elsewhere.example/dataset/pupils"])
        wide_approval = w.make_approval(w.deputy, chain=[w.d1, wide])
        narrow_purpose = w.make_approval(w.deputy, chain=[w.d1, w.d2], purposes=[DPV + "ScientificResearch"])
        for _ in range(3):    # the standard chain warms the cache of d1's, d2's and the approval's scopes
            request = w.request()
            assert decider.decide(w.present(request), request).allowed
            request = w.request()
            decision = decider.decide(w.present(request, [wide_approval, w.d1, wide, w.cert]), request)
            assert not decision.allowed and "delegation.widens_parent" in codes(decision)
            request = w.request()
            decision = decider.decide(w.present(request, [narrow_purpose, w.d1, w.d2, w.cert]), request)
            assert not decision.allowed and "approval.exceeds_delegation" in codes(decision)


def test_status_is_checked_on_every_decision_with_warm_caches():
    with world() as w:
        decider = w.decider()      # status lists with ttl 0: read afresh
        request = w.request()
        assert decider.decide(w.present(request), request).allowed
        w.status.set(w.doc(w.d2), "revocation")
        request = w.request()
        decision = decider.decide(w.present(request), request)
        assert not decision.allowed and "status.revoked" in codes(decision)
