"""The DPO's guided delegation page (wallet.delegate_pages): a delegation of approval authority made in plain
questions, signed through the issuer's guard rails, delivered to the IAO's node, and refused with reasons beside
the fields when it cannot be signed. Real HTTPS nodes (tests/test_sharing.py's world)."""
from __future__ import annotations

import re
from datetime import date, timedelta
from html import unescape

from issuer import issuing, staff
from schemas import vocab
from wallet import desk
from wallet.app import create_node_app

from test_pages import csrf_of
from test_sharing import DATASET, world  # noqa: F401 (the three-node HTTPS world)

PASSWORD = "correct horse battery staple"
PURPOSE = "https://w3id.org/cead/vocab#FreeSchoolMealAutoEnrolment"


def _dpo(w, username: str):
    node, wallet = w["controller"]["node"], w["controller"]["wallet"]
    staff.migrate(node.engine)
    staff.create_account(node.engine, username, "Dee Protection", "dpo", PASSWORD)
    client = create_node_app(node, wallet=wallet).test_client()
    page = client.get("/dpo/sign-in")
    assert client.post("/dpo/sign-in", data={"username": username, "password": PASSWORD,
                                             "csrf": csrf_of(page.text)}).status_code == 302
    return node, client


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def _beside(html: str, field: str) -> str:
    """The message shown beside a field (``id="FIELD-error"``), as text."""
    assert f'id="{field}-error"' in html, field
    return _text(html.split(f'id="{field}-error"', 1)[1].split(">", 1)[1].split("</p>", 1)[0]).strip()


def _form(csrf: str, **changes) -> dict:
    data = {"csrf": csrf, "delegate": "", "delegate_name": "Ian Owner", "role": "InformationAssetOwner",
            "parent": "", "other_datasets": DATASET, "columns": "pupil_ref\nmeal_entitlement",
            "purposes": PURPOSE, "protocol": "threshold", "min_cell_count": "10", "max_rows": "5000",
            "retention": "2 years", "onward_sharing": "Prohibited", "sensitivity": "Pseudonymised",
            "dpia_outcome": "LowRisk", "valid_until": (date.today() + timedelta(days=200)).isoformat(),
            "suspendable": "y", "confirm": "y"}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_a_dpo_delegates_in_plain_questions_and_the_iao_s_node_receives_it(world):  # noqa: F811
    w = world
    node, client = _dpo(w, "dee")
    iao, iao_wallet = w["iao"]["node"], w["iao"]["wallet"]
    page = client.get("/wallet/delegate")
    assert page.status_code == 200
    text = _text(page.text)
    assert "Delegate approval authority" in text and "The weakest privacy protocol they may approve" in text
    assert 'href="/wallet/delegate"' in page.text                        # in the DPO's navigation
    assert "it asks in plain questions" in client.get("/dpo/issue").text     # and offered where JSON is asked for
    before = len(issuing.register(node))
    done = client.post("/wallet/delegate", data=_form(csrf_of(page.text), delegate=iao.did,
                                                      deliver_to=w["iao"]["url"]))
    assert done.status_code == 201, _text(done.text)[:3000]
    shown = _text(done.text)
    assert "Delegation signed" in shown and "Delivered to Ian Owner" in shown
    assert "pupil_ref" in shown and "2 years" in shown and "at least 10 people" in shown   # what it allows, in words
    assert len(issuing.register(node)) == before + 1
    held = [r for r in iao_wallet.search(type="DelegatedAuthorityCredential") if r.issuer == node.did
            and (r.document["credentialSubject"].get("name") == "Ian Owner")]
    assert len(held) == 1                                                  # delivered to the IAO's node's inbox
    subject = held[0].document["credentialSubject"]
    assert subject["id"] == iao.did and subject["onBehalfOf"] == node.did
    assert subject["allowedActions"] == ["ApproveDisclosure"]
    scope = subject["scope"]
    assert scope["datasets"] == [DATASET] and scope["dataItems"] == ["pupil_ref", "meal_entitlement"]
    assert [vocab.expand(p) for p in scope["purposes"]] == [PURPOSE] and scope["maxRetention"] == "P2Y" and scope["maxRowsPerTransfer"] == 5000
    assert [(p["kind"], p["minCellCount"]) for p in scope["privacyProtocol"]] == [("threshold", 10)]
    assert desk.delegation_status(iao_wallet, held[0].credential)["usable"]   # verified, suspendable, in force
    assert "suspension" in str(held[0].document.get("credentialStatus"))


def test_what_cannot_be_signed_comes_back_as_typed_with_the_reason_beside_it(world):  # noqa: F811
    w = world
    node, client = _dpo(w, "dora")
    csrf = csrf_of(client.get("/wallet/delegate").text)
    before = len(issuing.register(node))
    # questions left unanswered: each named beside its field, what was typed kept
    bad = client.post("/wallet/delegate", data=_form(csrf, delegate="iao.council.gov.scot", other_datasets="",
                                                     purposes=None, confirm=None, retention="ages"))
    assert bad.status_code == 400
    for field in ("delegate", "datasets", "purposes", "retention", "confirm"):
        assert f'id="{field}-error"' in bad.text, field
    assert "did:web:" in _text(bad.text) and 'value="Ian Owner"' in bad.text
    # a did:key no one could hold: the issuer's own check refuses it before signing
    refused = client.post("/wallet/delegate", data=_form(csrf, delegate="did:key:zzz"))
    assert refused.status_code == 422 and "is not a usable DID" in _beside(refused.text, "delegate")
    # what the credential's own model refuses is said beside the question it comes from, in words
    refused = client.post("/wallet/delegate", data=_form(csrf, delegate="did:web:",
                                                         other_datasets="https://data.example/a b"))
    assert refused.status_code == 422
    assert _beside(refused.text, "delegate") == "'did:web:' is not a DID."
    assert "is not an absolute IRI" in _beside(refused.text, "other_datasets")
    assert "Value error" not in refused.text and "DelegatedAuthorityCredential" not in refused.text
    # an authority that is not there: said beside "Under which authority", not a bare error page
    gone = client.post("/wallet/delegate", data=_form(csrf, delegate="did:web:example.org", parent="urn:uuid:gone"))
    assert gone.status_code == 422 and "Choose another authority." in _beside(gone.text, "parent")
    assert len(issuing.register(node)) == before                          # nothing signed


def test_only_a_dpo_or_administrator_may_delegate(world):  # noqa: F811
    w = world
    node, wallet = w["controller"]["node"], w["controller"]["wallet"]
    staff.migrate(node.engine)
    staff.create_account(node.engine, "ivo", "Ivo Owner", "iao", PASSWORD)
    client = create_node_app(node, wallet=wallet).test_client()
    page = client.get("/dpo/sign-in")
    client.post("/dpo/sign-in", data={"username": "ivo", "password": PASSWORD, "csrf": csrf_of(page.text)})
    assert client.get("/wallet/delegate").status_code == 403
    assert 'href="/wallet/delegate"' not in client.get("/wallet/requests").text


def test_a_delegate_who_may_sub_delegate_can_only_narrow(world):  # noqa: F811
    """Under a delegation the node holds (with SubDelegate), the form offers it as the authority; a wider
    sub-delegation is refused with the reason beside the question it concerns, and a narrower one rests on it."""
    from test_sharing import _credential
    w = world
    controller, iao, wallet = w["controller"]["node"], w["iao"]["node"], w["iao"]["wallet"]
    parent = issuing.issue(controller, _credential("DelegatedAuthorityCredential", {
        "id": iao.did, "role": "InformationAssetOwner", "onBehalfOf": controller.did,
        "allowedActions": ["ApproveDisclosure", "SubDelegate"],
        "scope": {"datasets": [DATASET], "maxRetention": "P1Y", "maxDelegationDepth": 2}}))
    assert wallet.import_credential(parent.credential).ok
    staff.migrate(iao.engine)
    staff.create_account(iao.engine, "sid", "Sid Officer", "dpo", PASSWORD)
    client = create_node_app(iao, wallet=wallet).test_client()
    page = client.get("/dpo/sign-in")
    client.post("/dpo/sign-in", data={"username": "sid", "password": PASSWORD, "csrf": csrf_of(page.text)})
    page = client.get("/wallet/delegate")
    assert f'value="{parent.id}"' in page.text                            # offered as the authority
    w_did = w["requester"]["node"].did
    before = len(issuing.register(iao))
    wider = client.post("/wallet/delegate", data=_form(csrf_of(page.text), delegate=w_did, parent=parent.id,
                                                       retention="3 years"))
    assert wider.status_code == 422
    error = _text(wider.text.split('id="retention-error"', 1)[1].split("</p>", 1)[0])
    assert "Wider than the delegation it rests on" in error, _text(wider.text)[:2000]
    assert len(issuing.register(iao)) == before                           # nothing signed
    narrower = client.post("/wallet/delegate", data=_form(csrf_of(page.text), delegate=w_did, parent=parent.id,
                                                          retention="6 months"))
    assert narrower.status_code == 201, _text(narrower.text)[:2000]
    assert len(issuing.register(iao)) == before + 1
    signed = next(r for r in issuing.register(iao) if r.subject == w_did)
    assert signed.id in narrower.text and "6 months" in _text(narrower.text)
