"""Provenance of a derived dataset: the organisation disclosing the output must have received (as a recipient or
a processor) the input of every upstream approval, in the scope algebra and in the transfer decision."""
from __future__ import annotations

import json
from pathlib import Path

from schemas.models import DataSharingApproval, credential_digest
from verifier.scope import derived_within
from transfer_world import Party, codes

EXAMPLES = Path(__file__).resolve().parent.parent / "schemas" / "examples"
BASIS = ["https://www.legislation.gov.uk/eur/2016/679/article/6/1/e"]
SOURCE, ORG, OTHER, FINAL = ("did:web:source.example", "did:web:org.example", "did:web:other.example",
                             "did:web:final.example")


def approval(discloser: str, recipients: list[str], processors: list[str] = (), **over) -> DataSharingApproval:
    data = {"agreement": {"id": f"https://{discloser.split(':')[2]}/dsa/1", "digest": "sha256-" + "A" * 43},
            "discloser": discloser, "recipients": recipients, "processors": list(processors),
            "datasets": ["https://data.example/dataset/d1"], "dataItems": ["a"], "dataCategories": ["pd:Age"],
            "purposes": ["dpv:ProvideOfficialStatistics"],
            "lawfulBases": [{"party": p, "regime": "UKGDPR", "legalBases": BASIS} for p in [discloser, *recipients]],
            "dpia": {"outcome": "LowRisk"}, "sensitivity": "Personal", "cadence": "R/2026-01-01T00:00:00Z/P1M",
            "retention": {"receivedData": "P1Y"}, "onwardSharing": "WithApproval",
            "notBefore": "2026-01-01T00:00:00Z", "notAfter": "2026-12-31T23:59:59Z"}
    data.update(over)
    return DataSharingApproval.model_validate(data)


def derived(discloser: str, upstream: list[DataSharingApproval]) -> tuple[DataSharingApproval, list[dict]]:
    creds = [u.to_credential(u.discloser, id=f"https://{u.discloser.split(':')[2]}/a/{i}")
             for i, u in enumerate(upstream)]
    refs = [{"id": c["id"], "digest": credential_digest(c)} for c in creds]
    return approval(discloser, [FINAL], upstream=refs), creds


def test_discloser_received_the_input_as_recipient_or_processor():
    as_recipient, creds = derived(ORG, [approval(SOURCE, [ORG, OTHER])])
    assert derived_within(as_recipient, creds) == []
    as_processor, creds = derived(ORG, [approval(SOURCE, [OTHER], processors=[ORG])])
    assert derived_within(as_processor, creds) == []


def test_discloser_not_upstream_recipient_is_a_violation_of_its_own():
    mismatch, creds = derived(OTHER, [approval(SOURCE, [ORG])])
    [v] = derived_within(mismatch, creds)
    assert v.dimension == "discloser" and v.offending == [OTHER]
    assert OTHER in v.message and "https://source.example/dsa/1" in v.message
    # every upstream approval counts: one that admitted the data elsewhere is enough to refuse
    second = approval("did:web:second.example", [FINAL])
    mixed, creds = derived(ORG, [approval(SOURCE, [ORG]), second])
    [v] = derived_within(mixed, creds)
    assert v.dimension == "discloser" and "https://second.example/dsa/1" in v.message
    # the discloser being the upstream's discloser (it sent the data, it did not receive them) is not enough
    own, creds = derived(SOURCE, [approval(SOURCE, [ORG])])
    assert [v.dimension for v in derived_within(own, creds)] == ["discloser"]
    # typed models are checked the same way
    assert [v.dimension for v in derived_within(mismatch, [approval(SOURCE, [ORG])])] == ["discloser"]


def test_the_child_poverty_example_satisfies_the_rule():
    load = lambda name: json.loads((EXAMPLES / name).read_text())  # noqa: E731
    up = DataSharingApproval.from_credential(load("child-poverty-approval.json"))
    down = DataSharingApproval.from_credential(load("child-poverty-derived-approval.json"))
    assert down.discloser in up.recipients
    assert "discloser" not in {v.dimension for v in derived_within(down, [up])}


def test_decision_denies_a_discloser_that_did_not_receive_the_upstream_data(w):
    source, elsewhere = Party("prov-source"), Party("prov-elsewhere")
    source_dataset = "https://data.source.example/dataset/prov-input"
    decider = w.decider(controllers=[*w.policy_data()["controllers"],
                                     {"dataset": source_dataset, "controller": source.did}])

    def upstream_to(recipient: Party):
        return w.make_approval(source, discloser=source.did, recipients=[recipient.did], datasets=[source_dataset],
                               lawfulBases=[{"party": p.did, "regime": "UKGDPR", "legalBases": BASIS}
                                            for p in (source, recipient)], onwardSharing="Permitted")

    request = w.request()
    for upstream, allowed in ((upstream_to(w.controller), True), (upstream_to(elsewhere), False)):
        output = w.make_approval(w.controller, upstream=[w.ref(upstream)])
        decision = decider.decide(w.present(request, [output, upstream, w.cert]), request)
        assert decision.allowed is allowed, decision.to_dict()
        if not allowed:
            assert codes(decision) == {"provenance.discloser_not_upstream_recipient"}
            [problem] = decision.reasons
            assert problem.detail["offending"] == [w.controller.did]


def test_a_delegate_cannot_widen_its_recipients_by_naming_a_processor(w):
    """A delegation limited to recipient R: an approval naming another party X as processor is wider than it (a
    processor receives the data), so X cannot then disclose a derived dataset as if it had been admitted."""
    from transfer_world import OTHER_DATASET
    outsider, derived_dataset = Party("prov-processor"), "https://derived.example/dataset/prov-x"
    limited = w.delegation(w.controller, w.iao, recipients=[w.recipient.did])
    lawful = [{"party": p.did, "regime": "UKGDPR", "legalBases": BASIS} for p in (w.controller, w.recipient)]
    decider = w.decider(controllers=[*w.policy_data()["controllers"],
                                     {"dataset": derived_dataset, "controller": outsider.did}])
    for processors, expected in (([], "provenance.discloser_not_upstream_recipient"),
                                 ([outsider.did], "approval.exceeds_delegation")):
        upstream = w.make_approval(w.iao, chain=[limited], datasets=[OTHER_DATASET], lawfulBases=lawful,
                                   processors=processors)
        output = w.make_approval(outsider, discloser=outsider.did, datasets=[derived_dataset],
                                 upstream=[w.ref(upstream)],
                                 lawfulBases=[{"party": p.did, "regime": "UKGDPR", "legalBases": BASIS}
                                              for p in (outsider, w.recipient)])
        request = w.request(dataset=derived_dataset)
        decision = decider.decide(w.present(request, [output, upstream, limited, w.cert]), request)
        assert not decision.allowed and expected in codes(decision), decision.to_dict()
