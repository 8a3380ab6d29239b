"""The standing-approvals page (wallet/standing_pages.py) between real nodes over HTTPS on 127.0.0.1: a DPO signs a
standing approval through the guided form (errors beside the fields, what was typed kept, nothing signed), routine
requests inside it are then approved automatically and listed under it with the time, one outside it is listed with
the reason, suspending it stops it at once, and only a DPO or admin may sign or suspend. (In Chromium, with
axe-core and at 390 px: tests/test_desk_browser.py.)"""
from __future__ import annotations

import re

import pytest

from issuer import issuing, staff
from wallet import sharing
from wallet import standing
from wallet.app import create_node_app

from test_pages import csrf_of
from test_sharing import DATASET, make_request, send, settled, world  # noqa: F401 (the three-node HTTPS world)

PASSWORD = "correct horse battery staple"
PURPOSE = "https://w3id.org/cead/vocab#FreeSchoolMealAutoEnrolment"
OFFICIAL_ID = "https://w3id.org/dpv/pd#OfficialID"
PUBLIC_TASK = "https://www.legislation.gov.uk/eur/2016/679/article/6/1/e"


def sign_in(client, username: str):
    page = client.get("/dpo/sign-in")
    assert client.post("/dpo/sign-in", data={"username": username, "password": PASSWORD,
                                             "csrf": csrf_of(page.text)}).status_code == 302


def form(w, csrf: str, **changes) -> dict:
    data = {"csrf": csrf, "name": "school-meals-auto", "parent": w["sub_delegable"].id, "datasets": [DATASET],
            "columns": "pupil_id\nentitlement", "purposes": [PURPOSE], "recipients": "", "basis": PUBLIC_TASK,
            "condition": "", "data_categories": [OFFICIAL_ID], "protocol": "threshold", "min_cell_count": "10",
            "max_transfers": "12", "max_rows": "", "retention": "P1Y", "onward_sharing": "Prohibited",
            "sensitivity": "Personal", "dpia_outcome": "LowRisk", "not_before": "2025-01-01",
            "not_after": "2029-12-31", "valid_for": "P6M", "confirm": "y"}
    data.update(changes)
    return data


@pytest.fixture(scope="module")
def desk(world):  # noqa: F811
    node, wallet = world["iao"]["node"], world["iao"]["wallet"]
    staff.migrate(node.engine)
    staff.create_account(node.engine, "dora", "Dora Protection", "dpo", PASSWORD)
    staff.create_account(node.engine, "ivan", "Ivan Owner", "iao", PASSWORD)
    staff.create_account(node.engine, "anne", "Anne Analyst", "analyst", PASSWORD)
    # the controller lets the IAO's node delegate further (a standing approval is a sub-delegation)
    world["sub_delegable"] = issuing.issue(world["controller"]["node"], {
        "@context": ["https://www.w3.org/ns/credentials/v2", "https://w3id.org/cead/v1"],
        "type": ["VerifiableCredential", "DelegatedAuthorityCredential"],
        "credentialSubject": {"id": node.did, "role": "InformationAssetOwner",
                              "onBehalfOf": world["controller"]["node"].did,
                              "allowedActions": ["ApproveDisclosure", "SubDelegate"],
                              "scope": {"datasets": [DATASET], "maxDelegationDepth": 2}}})
    assert wallet.import_credential(world["sub_delegable"].credential).ok
    return create_node_app(node, wallet=wallet)


def test_a_dpo_signs_a_standing_approval_and_routine_requests_are_approved_under_it(world, desk):  # noqa: F811
    w = world
    node = w["iao"]["node"]
    dpo = desk.test_client()
    sign_in(dpo, "dora")
    page = dpo.get("/wallet/standing")
    assert page.status_code == 200 and "There are no standing approvals" in page.text
    assert "Sign a new standing approval" in page.text and 'name="min_cell_count"' in page.text
    csrf = csrf_of(page.text)
    before = len(issuing.register(node))

    # errors beside their fields, what was typed kept, nothing signed
    bad = dpo.post("/wallet/standing", data=form(w, csrf, name="School Meals!", columns="", confirm="",
                                                 min_cell_count="", retention="a year"))
    assert bad.status_code == 400 and "There is a problem" in bad.text
    for field, words in (("name", "lower-case letters"), ("columns", "List the columns"),
                         ("confirm", "Tick to confirm"), ("min_cell_count", "minimum number of people"),
                         ("retention", "P1Y")):
        assert re.search(f'id="{field}-error">[^<]*{words}', bad.text), field
    assert 'value="School Meals!"' in bad.text and 'value="a year"' in bad.text
    assert len(issuing.register(node)) == before and standing.rules(node) == []

    # wider than the delegation it rests on: refused by the guard rail before signing, said beside the datasets
    wider = dpo.post("/wallet/standing", data=form(w, csrf, datasets=[DATASET, "https://data.example.gov.scot/"
                                                                      "dataset/council-tax"]))
    assert wider.status_code == 422 and "scope.too_wide" in wider.text and 'id="datasets-error"' in wider.text
    assert len(issuing.register(node)) == before and standing.rules(node) == []
    # under a delegation that does not allow delegating further: refused, saying so beside the choice
    flat = dpo.post("/wallet/standing", data=form(w, csrf, parent=w["delegation"].id))
    assert flat.status_code == 422 and "does not let this node delegate further" in flat.text
    assert 'id="parent-error"' in flat.text and len(issuing.register(node)) == before

    made = dpo.post("/wallet/standing", data=form(w, csrf))
    assert made.status_code == 302, re.sub(r"\s+", " ", re.search(r"There is a problem.*?</ul>", made.text, re.S).group(0))
    [rule] = standing.rules(node)
    assert rule["name"] == "school-meals-auto" and rule["source"] == "page" and rule["created_by"] == "dora"
    template = w["iao"]["wallet"].get(rule["delegation"]).document
    assert template["credentialSubject"]["parentDelegation"]["id"] == w["sub_delegable"].id
    assert template["credentialSubject"]["scope"]["dataItems"] == ["pupil_id", "entitlement"]
    assert ("dora", "signed standing approval") in [(e.who, e.action) for e in staff.audit_log(node.engine)]
    assert "Signed on this page by Dora Protection," in dpo.get("/wallet/standing").text   # by name, not "dora"

    inside = send(w)
    row = settled(w, inside["id"], "approved")
    assert row.decided_by == "standing:school-meals-auto"
    outside = send(w, make_request(w, dataItems=["pupil_id", "entitlement", "home_address"]))
    row = settled(w, outside["id"], "pending")

    shown = dpo.get("/wallet/standing").text
    assert "Only requests for" in shown and "the columns pupil_id, entitlement and no others" in shown
    assert "only counts of at least 10 people per cell are released" in shown
    assert "At most 12 transfers a year." in shown and "keeps the data for at most 1 year." in shown and "Each automatic approval lasts 6 months" in shown
    approved = re.search(r'<tr data-approved="%s">(.*?)</tr>' % inside["id"], shown, re.S)
    assert approved and re.search(r"\b\d{1,2} [A-Z][a-z]+ \d{4}, \d{2}:\d{2} UTC", approved.group(1))
    reason = re.search(r'<tr data-outside="%s">(.*?)</tr>' % outside["id"], shown, re.S)
    assert reason and "home_address" in reason.group(1)

    # suspended: the next routine request waits for a person, with the reason
    csrf = csrf_of(shown)
    assert dpo.post("/wallet/standing/school-meals-auto/status", data={"csrf": csrf, "action": "suspend"}
                    ).status_code == 302
    assert "school-meals-auto" in dpo.get("/wallet/standing").text and \
        "Nothing is approved under it while it is suspended" in dpo.get("/wallet/standing").text
    later = send(w)
    row = settled(w, later["id"], "pending")
    assert "suspended" in row.standing_note
    # revoking needs the box ticked
    refused = dpo.post("/wallet/standing/school-meals-auto/status", data={"csrf": csrf, "action": "revoke"})
    assert refused.status_code == 400 and "Tick the box" in refused.text


def test_only_a_dpo_or_admin_may_sign_or_suspend(world, desk):  # noqa: F811
    iao = desk.test_client()
    sign_in(iao, "ivan")
    page = iao.get("/wallet/standing")
    assert page.status_code == 200 and "Sign a new standing approval" not in page.text
    assert "Only a Data Protection Officer or an administrator" in page.text
    csrf = csrf_of(page.text)
    denied = iao.post("/wallet/standing", data=form(world, csrf, name="by-an-iao"))
    assert denied.status_code == 403 and "auth.scope" in denied.text
    assert not any(r["name"] == "by-an-iao" for r in standing.rules(world["iao"]["node"]))
    analyst = desk.test_client()
    sign_in(analyst, "anne")
    assert analyst.get("/wallet/standing").status_code == 403


def test_the_standing_page_names_the_controller_as_the_decision_page_does(world, desk):  # noqa: F811
    """An organisation has one name on every page: the certifications that came with the requests received (from
    a certifier the node trusts) name it on the standing-approvals page too, not only on the request's own page."""
    import json
    from test_wallet_support import CYBER_ESSENTIALS
    w = world
    node, controller = w["iao"]["node"], w["controller"]["node"].did
    policy = node.home / "policy.yaml"
    policy.write_text(json.dumps({"certification_bodies": {CYBER_ESSENTIALS: [controller]}}))
    try:
        send(w)       # the requester's certification, by the controller: "Example Certification Ltd" certifies
        dpo = desk.test_client()
        sign_in(dpo, "dora")
        page = dpo.get("/wallet/standing").text
        assert "The delegation from Example Certification Ltd for" in page
        assert "The delegation from the organisation at" not in page
    finally:
        policy.unlink()


def test_a_suspended_standing_approval_never_claims_a_request_and_the_page_says_an_automatic_approval_is_tried(
        world, desk, monkeypatch):  # noqa: F811
    """Seen in the browser tests: with a standing approval suspended, every request was still tried under it in the
    background, marked "approving" before the guard rail refused the suspended template, so an IAO who opened it
    meanwhile saw it "being approved right now" and no form. The node knows the template is suspended (it signed it:
    its register says so), so the rule is skipped before the request is claimed, with the reason in the standing
    note; and while an automatic approval is being tried, the page says so plainly and offers "Check again"."""
    w = world
    node, wallet = w["iao"]["node"], w["iao"]["wallet"]
    dpo = desk.test_client()
    sign_in(dpo, "dora")
    csrf = csrf_of(dpo.get("/wallet/standing").text)
    made = dpo.post("/wallet/standing", data=form(w, csrf, name="meals-paused"))
    assert made.status_code == 302
    rule = next(r for r in standing.rules(node) if r["name"] == "meals-paused")
    assert dpo.post("/wallet/standing/meals-paused/status", data={"csrf": csrf, "action": "suspend"}
                    ).status_code == 302
    claimed = []
    real = sharing._decide
    monkeypatch.setattr(sharing, "_decide", lambda wallet_, request_id, status, *a, **k: claimed.append(
        (request_id, status)) or real(wallet_, request_id, status, *a, **k))
    asked = send(w)
    row = settled(w, asked["id"], "pending")
    assert (asked["id"], sharing.APPROVING) not in claimed and row.decided_by is None and row.approval_id is None
    note = row.standing_note
    assert note.startswith("Not approved automatically: ") and "meals-paused: delegation.not_in_force: " in note
    assert f"the delegation {rule['delegation']} from {node.did} to {node.did}" in note and "is suspended" in note
    assert "reinstate it" in note
    monkeypatch.undo()
    # the history on the standing-approvals page lists it under the rule, with the reason
    shown = dpo.get("/wallet/standing").text
    assert re.search(r'<tr data-outside="%s">.*?is suspended' % asked["id"], shown, re.S)

    # while an automatic approval is tried (claimed by hand here, as the background thread does), the IAO's page
    # says so and offers to check again; no reload happens by itself
    iao = desk.test_client()
    sign_in(iao, "ivan")
    sharing._decide(wallet, asked["id"], sharing.APPROVING, approval_id="urn:uuid:trying", decided_by="standing:"
                    "meals-paused")
    try:
        page = iao.get(f"/wallet/requests/{asked['id']}")
        text = re.sub(r"\s+", " ", page.text)
        assert page.status_code == 200 and "Being approved" in text and "Interrupted approval" not in text
        assert "An automatic approval is being tried under the standing approval meals-paused" in text
        assert "comes back to you here with the reason" in text
        assert re.search(r'<a id="check-again"[^>]*href="/wallet/requests/%s"[^>]*>Check again</a>' % asked["id"],
                         page.text)
        assert 'http-equiv="refresh"' not in page.text and "Reopen the request" not in text
    finally:
        sharing._decide(wallet, asked["id"], sharing.PENDING, when=sharing.APPROVING, started="urn:uuid:trying",
                        approval_id=None, decided_by=None, decided_at=None)
    # a person's approval under way: by whom, and the same way to check again
    sharing._decide(wallet, asked["id"], sharing.APPROVING, approval_id="urn:uuid:by-hand", decided_by="ivan")
    try:
        text = re.sub(r"\s+", " ", iao.get(f"/wallet/requests/{asked['id']}").text)
        assert "This request is being approved by Ivan Owner right now" in text and "Check again" in text
        assert "automatic approval" not in text
    finally:
        sharing._decide(wallet, asked["id"], sharing.PENDING, when=sharing.APPROVING, started="urn:uuid:by-hand",
                        approval_id=None, decided_by=None, decided_at=None)
