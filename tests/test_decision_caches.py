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


def test_chain_comparisons_kept_per_credential_follow_the_vocabulary():
    """A delegation compared with its parent is kept by both digests and the vocabulary's version: once the
    vocabulary says the extra dataset lies within the parent's, the same credentials compare afresh and pass."""
    with world() as w:
        decider = w.decider()
        pupils = "https://data.elsewhere.example/dataset/pupils"
        wide = w.delegation(w.iao, w.deputy, parent=w.d1, max_depth=0, datasets=[DATASET, pupils])
        wide_approval = w.make_approval(w.deputy, chain=[w.d1, wide])
        for _ in range(2):   # the second decision is answered from the kept comparison
            request = w.request()
            decision = decider.decide(w.present(request, [wide_approval, w.d1, wide, w.cert]), request)
            assert not decision.allowed and "delegation.widens_parent" in codes(decision)
        before = decider.vocabulary.version
        decider.vocabulary.add(pupils, DATASET)
        assert decider.vocabulary.version != before
        request = w.request()
        decision = decider.decide(w.present(request, [wide_approval, w.d1, wide, w.cert]), request)
        assert "delegation.widens_parent" not in codes(decision), codes(decision)
        assert decision.allowed, codes(decision)


def test_status_entries_read_once_are_checked_like_a_fresh_read():
    """The status entries kept beside a cached proof give the same answer as reading the credential again."""
    from verifier.status import read_status
    with world() as w:
        decider = w.decider()
        request = w.request()
        assert decider.decide(w.present(request), request).allowed
        document = w.doc(w.d2)
        assert decider.status.check_read(read_status(document)) == decider.status.check(document) == []
        w.status.set(document, "suspension")
        problems = decider.status.check_read(read_status(document))
        assert [p.code for p in problems] == ["status.suspended"] == [p.code for p in decider.status.check(document)]
        assert read_status({"credentialStatus": "not an object"}).problem.code == "status.entry_invalid"


def test_the_rulebook_answer_kept_per_approval_follows_the_vocabulary_legal_bases():
    """The lawful-basis rules' answer for an approval is kept by its digest and the vocabulary's legal bases: a
    basis the organisation's vocabulary learns is taken into account on the next decision."""
    with world() as w:
        decider = w.decider()
        own = "https://fife.example/legal/housing-scotland-act-1987-s1"
        bases = [{"party": w.controller.did, "regime": "UKGDPR",
                  "legalBases": ["https://www.legislation.gov.uk/eur/2016/679/article/6/1/e", own]},
                 {"party": w.recipient.did, "regime": "UKGDPR",
                  "legalBases": ["https://www.legislation.gov.uk/eur/2016/679/article/6/1/e"]}]
        approval = w.make_approval(w.deputy, chain=[w.d1, w.d2], lawfulBases=bases)
        for _ in range(2):
            request = w.request()
            decision = decider.decide(w.present(request, [approval, w.d1, w.d2, w.cert]), request)
            assert not decision.allowed and "lawful.basis_unknown" in codes(decision), codes(decision)
        decider.vocabulary.load({"legalBases": {own: {"label": "Housing (Scotland) Act 1987 s.1",
                                                      "kind": "gateway"}}})
        request = w.request()
        decision = decider.decide(w.present(request, [approval, w.d1, w.d2, w.cert]), request)
        assert "lawful.basis_unknown" not in codes(decision), codes(decision)
