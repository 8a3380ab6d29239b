"""Data-sharing requests between nodes over real HTTPS on 127.0.0.1, and the IAO's approvals interface.

Three nodes: a controller (delegates approval authority to the IAO's node and certifies the requester), the IAO's
node (receives requests at ``POST /requests``, approves them) and the requester (sends requests, receives the
approval in its inbox, pulls data through ``CeadMiddleware``).
"""
from __future__ import annotations

import json
import time
import uuid
from contextlib import ExitStack
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask, jsonify
from sqlmodel import Session, select

from helpers_https import https_server
from issuer import db, issuing
from issuer.node import Node
from schemas.models import credential_digest
from verifier.binding import origin, request_binding
from verifier.decision import Decider
from verifier.middleware import CeadMiddleware
from verifier.policy import parse_policy
from verifier.results import CeadError
from wallet import sharing
from wallet.app import create_node_app
from wallet.client import CeadAuth
from wallet.present import build_presentation
from wallet.store import Wallet, WalletRequest

from issuer_fixtures import token
from test_pages import csrf_of, sign_in
from test_wallet_support import CYBER_ESSENTIALS, approval_subject, certification_subject

DATASET = "https://data.example.gov.scot/dataset/school-meals"
PURPOSE = "cead:FreeSchoolMealAutoEnrolment"
PASSPHRASE = b"requests test passphrase"
V2 = ["https://www.w3.org/ns/credentials/v2", "https://w3id.org/cead/v1"]


class Late:
    app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


def _credential(kind: str, subject: dict) -> dict:
    return {"@context": V2, "type": ["VerifiableCredential", kind], "credentialSubject": subject}


def settled(w, request_id: str, wanted: str, timeout: float = 60.0):
    """The IAO's request ``request_id`` once its standing approvals have considered it and it is ``wanted``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = sharing.get_request(w["iao"]["wallet"], request_id)
        if row.status == wanted and row.standing_note:
            return row
        time.sleep(0.2)
    raise AssertionError(f"request {request_id} is {row.status} ({row.standing_note})")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("requests")
    with ExitStack() as stack:
        servers = {name: (Late(),) for name in ("controller", "iao", "requester", "api")}
        for name in servers:
            late = servers[name][0]
            base, ca = stack.enter_context(https_server(late))
            servers[name] = (late, base, ca)
        bundle = tmp / "ca-bundle.pem"
        bundle.write_text("".join(open(s[2]).read() for s in servers.values()))
        network = {"allow_private": True, "ca_bundle": str(bundle)}
        w = {"bundle": str(bundle)}
        for name in ("controller", "iao", "requester"):
            late, base, _ = servers[name]
            node, _ = Node.init(tmp / name, name.title(), PASSPHRASE, domain=urlsplit(base).netloc,
                                public_url=base, network=network)
            wallet = Wallet.from_node(node)
            late.app = create_node_app(node, wallet=wallet)
            w[name] = {"node": node, "wallet": wallet, "url": base}
        controller, iao, requester = (w[k]["node"] for k in ("controller", "iao", "requester"))
        # the controller delegates approval authority for the dataset to the IAO's node, and certifies the requester
        delegation = issuing.issue(controller, _credential("DelegatedAuthorityCredential", {
            "id": iao.did, "role": "InformationAssetOwner", "onBehalfOf": controller.did,
            "allowedActions": ["ApproveDisclosure"], "scope": {"datasets": [DATASET]}}))
        assert w["iao"]["wallet"].import_credential(delegation.credential).ok
        w["delegation"] = delegation
        cert = issuing.issue(controller, _credential("OrganisationCertificationCredential",
                                                     certification_subject(requester.did, CYBER_ESSENTIALS)))
        assert w["requester"]["wallet"].import_credential(cert.credential).ok
        # a data API at the requester's reach, controlled by the controller
        policy = parse_policy({"controllers": [{"dataset": DATASET, "controller": controller.did}],
                               "network": network, "caches": {"status_lists": {"size": 16, "ttl": 0}}})
        api = Flask("data-api")
        api.get("/meals")(lambda: jsonify({"rows": 3}))
        api.wsgi_app = CeadMiddleware(api.wsgi_app, Decider(policy), dataset_for=lambda env: DATASET)
        servers["api"][0].app = api
        w["api"] = servers["api"][1]
        w["late"] = {name: servers[name][0] for name in servers}     # to take a node down for a while
        yield w


def make_request(w, **changes) -> dict:
    requester = w["requester"]["node"].did
    body = {"requester": requester, "datasets": [DATASET], "dataItems": ["pupil_id", "entitlement"],
            "purposes": [PURPOSE],
            "lawfulBasis": {"party": requester, "regime": "UKGDPR",
                            "legalBases": ["https://www.legislation.gov.uk/eur/2016/679/article/6/1/e"]},
            "cadence": "R/2025-01-01T00:00:00Z/P1M",
            "agreement": {"id": f"urn:uuid:{uuid.uuid4()}", "digest": "sha256-" + "A" * 43},
            "justification": "Auto-enrolment for free school meals.", "replyTo": w["requester"]["url"] + "/inbox"}
    body.update(changes)
    return body


def the_rest(w, **changes) -> dict:
    """What the approver states beyond the request (their own lawful basis, DPIA, retention...)."""
    subject = approval_subject(w["controller"]["node"].did, w["requester"]["node"].did, datasets=[DATASET],
                               purposes=[PURPOSE])
    rest = {k: v for k, v in subject.items() if k not in sharing.FROM_REQUEST or k == "lawfulBases"}
    rest.update(changes)
    return rest


def rows(w) -> list[WalletRequest]:
    with Session(w["iao"]["node"].engine) as s:
        return list(s.exec(select(WalletRequest)))


def send(w, request: dict | None = None) -> dict:
    return sharing.send_request(w["requester"]["wallet"], w["iao"]["url"] + "/requests", request or make_request(w),
                                verify=w["bundle"])


def test_a_request_is_stored_approved_delivered_and_then_presented(world):
    w = world
    answer = send(w)
    assert answer["status"] == "pending"
    stored = sharing.get_request(w["iao"]["wallet"], answer["id"])
    assert stored.requester == w["requester"]["node"].did and stored.request["datasets"] == [DATASET]
    assert [c["scheme"] for c in stored.certification_list] == [CYBER_ESSENTIALS]

    draft = sharing.draft_subject(w["iao"]["node"], w["iao"]["wallet"], answer["id"],
                                  delegation=w["delegation"].id)
    assert draft["discloser"] == w["controller"]["node"].did
    assert draft["recipients"] == [w["requester"]["node"].did]
    assert draft["delegationChain"] == [{"id": w["delegation"].id,
                                         "digest": credential_digest(w["delegation"].credential)}]

    done = sharing.approve(w["iao"]["node"], w["iao"]["wallet"], answer["id"], the_rest(w),
                           delegation=w["delegation"].id)
    assert done.request.status == "approved" and done.request.approval_id == done.issued.id
    assert len(done.delivered["stored"]) == 2        # the approval and the delegation it pins
    held = w["requester"]["wallet"].search(type="DataSharingApprovalCredential")
    assert done.issued.id in [r.credential_id for r in held]

    response = requests.get(w["api"] + "/meals", auth=CeadAuth(w["requester"]["wallet"], dataset=DATASET,
                                                                purpose=PURPOSE), verify=w["bundle"])
    assert response.status_code == 200, response.text

    with pytest.raises(CeadError) as again:
        sharing.approve(w["iao"]["node"], w["iao"]["wallet"], answer["id"], the_rest(w),
                        delegation=w["delegation"].id)
    assert again.value.code == "sharing.not_pending"


def _bound_body(w, request: dict, url: str) -> dict:
    wallet = w["requester"]["wallet"]
    vp = build_presentation(wallet.holder, wallet.key, wallet.kid, [], audience=origin(url),
                            nonce=request_binding("POST", url, None, manifest=request))
    return {"request": request, "presentation": vp}


def test_tampered_replayed_or_malformed_requests_are_refused_and_nothing_is_stored(world):
    w = world
    url = w["iao"]["url"] + "/requests"
    before = len(rows(w))
    request = make_request(w)
    body = _bound_body(w, request, url)

    tampered = {**body, "request": {**request, "dataItems": ["pupil_id", "entitlement", "home_postcode"]}}
    answer = requests.post(url, json=tampered, verify=w["bundle"])
    assert answer.status_code == 401
    assert answer.json()["problems"][0]["code"].startswith(("presentation.", "jose."))

    elsewhere = requests.post(w["requester"]["url"] + "/requests", json=body, verify=w["bundle"])
    assert elsewhere.status_code == 401

    malformed = make_request(w)
    del malformed["replyTo"]
    answer = requests.post(url, json=_bound_body(w, malformed, url), verify=w["bundle"])
    assert answer.status_code == 400
    problem = answer.json()["problems"][0]
    assert problem["code"] == "sharing.invalid" and problem["detail"]["field"] == "replyTo"

    other = make_request(w, requester=w["controller"]["node"].did,
                         lawfulBasis={**request["lawfulBasis"], "party": w["controller"]["node"].did})
    answer = requests.post(url, json=_bound_body(w, other, url), verify=w["bundle"])
    assert answer.status_code == 403 and answer.json()["problems"][0]["code"] == "sharing.not_requester"

    for junk in (b"not json", b"[]", b'{"request": {}}'):
        answer = requests.post(url, data=junk, verify=w["bundle"])
        assert answer.status_code == 400 and answer.json()["problems"][0]["code"] == "sharing.invalid"
    assert len(rows(w)) == before

    # the sending wallet checks the request first, naming the field
    with pytest.raises(CeadError) as bad:
        send(w, make_request(w, cadence="every now and then"))
    assert bad.value.code == "sharing.invalid" and bad.value.detail["field"] == "cadence"

    # the same presentation, sent again to the same URL, is a replay
    assert requests.post(url, json=body, verify=w["bundle"]).status_code == 201
    again = requests.post(url, json=body, verify=w["bundle"])
    assert again.status_code == 409 and again.json()["problems"][0]["code"] == "sharing.duplicate"
    assert len(rows(w)) == before + 1


def test_a_too_wide_approval_is_refused_by_the_guard_rail_and_stays_pending(world):
    w = world
    answer = send(w, make_request(w, datasets=["https://data.example.gov.scot/dataset/pupils"]))
    with pytest.raises(CeadError) as err:
        sharing.approve(w["iao"]["node"], w["iao"]["wallet"], answer["id"], the_rest(w),
                        delegation=w["delegation"].id)
    assert err.value.code == "scope.too_wide" and "datasets" in err.value.detail["dimensions"]
    assert sharing.get_request(w["iao"]["wallet"], answer["id"]).status == "pending"
    refused = sharing.refuse(w["iao"]["wallet"], answer["id"], "Outside the delegated datasets.")
    assert refused.status == "refused" and refused.reason == "Outside the delegated datasets."


def test_the_pages_list_the_request_and_approve_it_through_the_form(world):
    import json
    w = world
    first = send(w)
    wide = send(w, make_request(w, datasets=["https://data.example.gov.scot/dataset/pupils"]))
    client = create_node_app(w["iao"]["node"], wallet=w["iao"]["wallet"]).test_client()
    assert client.get("/wallet/requests").status_code == 302           # sign-in first

    reader = token(w["iao"]["node"], "status:change", name="reader")
    assert sign_in(client, reader).status_code == 302
    listing = client.get("/wallet/requests")
    assert listing.status_code == 200 and first["id"] in listing.text and DATASET in listing.text
    page = client.get(f"/wallet/requests/{first['id']}")
    assert "Cyber Essentials" in page.text          # the certification presented, by its name
    form = {"csrf": csrf_of(page.text), "delegation": w["delegation"].id}
    subject = json.dumps({**sharing.draft_subject(w["iao"]["node"], w["iao"]["wallet"], first["id"],
                                                  delegation=w["delegation"].id), **the_rest(w)})
    denied = client.post(f"/wallet/requests/{first['id']}/approve", data={**form, "subject": subject})
    assert denied.status_code == 403 and "auth.scope" in denied.text
    assert client.post(f"/wallet/requests/{first['id']}/approve", data={"subject": subject}).status_code == 403

    client.post("/dpo/sign-out", data={"csrf": form["csrf"]})
    approver = token(w["iao"]["node"], "issue:approval", name="iao")
    assert sign_in(client, approver).status_code == 302
    page = client.get(f"/wallet/requests/{first['id']}")
    assert page.status_code == 200 and "Approve" in page.text and w["delegation"].id in page.text
    assert 'name="data_categories"' in page.text and 'name="min_cell_count"' in page.text   # the guided form
    form["csrf"] = csrf_of(page.text)
    done = client.post(f"/wallet/requests/{first['id']}/approve", data={**form, "subject": subject})
    assert done.status_code == 302
    row = sharing.get_request(w["iao"]["wallet"], first["id"])
    assert row.status == "approved" and row.decided_by == "iao"
    assert row.approval_id in [r.credential_id for r in w["requester"]["wallet"].search(
        type="DataSharingApprovalCredential")]

    wide_subject = json.dumps({**sharing.draft_subject(w["iao"]["node"], w["iao"]["wallet"], wide["id"],
                                                       delegation=w["delegation"].id), **the_rest(w)})
    refused = client.post(f"/wallet/requests/{wide['id']}/approve", data={**form, "subject": wide_subject})
    assert refused.status_code == 422 and "scope.too_wide" in refused.text and "datasets" in refused.text
    assert sharing.get_request(w["iao"]["wallet"], wide["id"]).status == "pending"
    bad = client.post(f"/wallet/requests/{wide['id']}/approve", data={**form, "subject": "[1, 2"})
    assert bad.status_code == 400 and "web.form_invalid" in bad.text
    gone = client.post(f"/wallet/requests/{wide['id']}/refuse", data={"csrf": form["csrf"], "reason": "Too wide."})
    assert gone.status_code == 302 and sharing.get_request(w["iao"]["wallet"], wide["id"]).status == "refused"
    assert client.get("/wallet/requests/nope").status_code == 404


def test_the_approval_form_names_every_field_a_delegation_can_require(world):
    """The form's "Add what you decide" list left out maxRowsPerTransfer, which a delegation with a row ceiling
    requires (an approval without it is unrestricted, so wider): every approval field a delegation's scope can
    restrict is either prefilled from the request or listed."""
    from schemas.models import Scope
    from wallet.pages import APPROVER_FIELDS
    # the approval field each scope dimension is read from (DataSharingApproval.scope())
    source = {"datasets": "datasets", "data_items": "dataItems", "data_categories": "dataCategories",
              "data_subjects": "dataSubjects", "purposes": "purposes", "legal_bases": "lawfulBases",
              "regimes": "lawfulBases", "recipients": "recipients", "recipient_requirements": "recipientRequirements",
              "required_co_signers": "coSigners", "privacy_protocol": "privacyProtocol", "not_before": "notBefore",
              "not_after": "notAfter", "max_sensitivity": "sensitivity", "max_dpia_risk": "dpia",
              "max_rows_per_transfer": "maxRowsPerTransfer", "max_transfers_per_year": "cadence",
              "max_retention": "retention", "onward_sharing": "onwardSharing"}
    fixed = {"actions", "max_delegation_depth"}          # the same for every approval
    assert set(Scope.model_fields) == set(source) | fixed
    listed = {field.split(" ")[0] for field in APPROVER_FIELDS}
    assert {f for f in source.values() if f not in sharing.FROM_REQUEST} <= listed
    # the guided form has a field for every dimension the approver sets (the rest come from the request)
    from wallet.desk import DIMENSION_FIELDS
    camel = {k: "".join(w.title() if i else w for i, w in enumerate(k.split("_"))) for k in source}
    fields = {DIMENSION_FIELDS[camel[k]] for k in source
              if camel[k] in DIMENSION_FIELDS and DIMENSION_FIELDS[camel[k]] is not None}
    requested = {k for k in source if DIMENSION_FIELDS.get(camel[k]) is None}
    assert {source[k] for k in requested} <= set(sharing.FROM_REQUEST)

    first = send(world)
    client = create_node_app(world["iao"]["node"], wallet=world["iao"]["wallet"]).test_client()
    assert sign_in(client, token(world["iao"]["node"], "issue:approval", name="iao-form")).status_code == 302
    page = client.get(f"/wallet/requests/{first['id']}")
    assert page.status_code == 200
    assert all(f'name="{f}"' in page.text for f in fields), [f for f in fields if f'name="{f}"' not in page.text]



def test_receiving_and_deciding_a_request_notify_the_iao_nodes_subscribers(world):
    """issuer.notifications: a request arriving and its refusal each queue one message for a subscriber that asked
    for them, in the IAO node's outbox (delivery itself is tested in tests/test_notifications.py)."""
    from issuer import notifications
    w = world
    node = w["iao"]["node"]
    node.config["notifications"] = [{"name": "ig", "url": "https://hooks.example/ig",
                                     "events": ["request.received", "request.decided"]}]
    try:
        answer = send(w)
        sharing.refuse(w["iao"]["wallet"], answer["id"], "Not needed for this purpose.", by="iao@fife")
        events = [(n.event, n.subject) for n in notifications.outbox(node)]
        assert ("request.received", answer["id"]) in events and ("request.decided", answer["id"]) in events
        decided = next(json.loads(n.body) for n in notifications.outbox(node) if n.event == "request.decided")
        assert decided["data"]["decision"] == "refused" and decided["data"]["by"] == "iao@fife"
        # the new request in words beside its identifiers (a Teams card shows these facts to the IAO)
        received = next(json.loads(n.body) for n in notifications.outbox(node) if n.event == "request.received")
        assert received["data"]["purposes"] == "Free school meal auto-enrolment"
        assert received["data"]["from"].startswith("the organisation at ")    # no certifier trusted: no name
        assert received["data"]["requester"].startswith("did:web:")
    finally:
        del node.config["notifications"]


def test_a_standing_approval_approves_routine_requests_and_queues_the_rest(world):
    """wallet.standing: with a standing approval under the IAO node's delegation, a request inside it is approved
    automatically (decided by standing:<name>, delivered to the requester); one outside it stays pending for a
    person, with the reason recorded."""
    w = world
    node = w["iao"]["node"]
    node.config["standing_approvals"] = [{"name": "school-meals", "delegation": w["delegation"].id,
                                          "conditions": the_rest(w), "valid_for": "P6M"}]

    try:
        inside = send(w)
        row = settled(w, inside["id"], "approved")
        assert row.decided_by == "standing:school-meals" and "automatically" in row.standing_note
        held = w["requester"]["wallet"].search(type="DataSharingApprovalCredential")
        assert row.approval_id in [r.credential_id for r in held]

        outside = send(w, make_request(w, datasets=["https://data.example.gov.scot/dataset/council-tax"]))
        row = settled(w, outside["id"], "pending")
        assert row.standing_note.startswith("Not approved automatically: school-meals: ")
        assert row.approval_id is None
    finally:
        del node.config["standing_approvals"]


def test_a_requester_s_reply_to_never_points_the_data_holder_s_node_at_its_own_network(world):
    """The approval (or a refusal's answer) goes to the requester's ``replyTo``, an address the requester chose:
    the data holder's node sends it only where its network rules let it fetch (no loopback, private or link-local
    address unless ``network.allow_private``), so a request cannot make it post into its own internal network.
    (Here the nodes all run on 127.0.0.1 with allow_private; the holder's rules are then set as in production.)"""
    from issuer.node import parse_network
    from wallet import answers
    w = world
    node, wallet = w["iao"]["node"], w["iao"]["wallet"]
    approved = send(w)
    sharing.approve(node, wallet, approved["id"], the_rest(w), delegation=w["delegation"].id)
    refused = send(w)
    sharing.refuse(wallet, refused["id"], "Not for this purpose.", by="iao@fife")
    kept = node.network
    node.network = parse_network({**kept.model_dump(), "allow_private": False}, node.home)
    try:
        with pytest.raises(CeadError) as err:
            sharing.redeliver(node, wallet, approved["id"])
        assert err.value.code == "sharing.undelivered"
        assert "non-public address 127.0.0.1" in err.value.message and "allow_private" in err.value.message
        with pytest.raises(CeadError) as err:
            answers.send_answer(node, wallet, sharing.get_request(wallet, refused["id"]))
        assert err.value.code == "sharing.unreachable" and err.value.message.startswith("Not sent to https://")
        assert err.value.detail["cause"] == "http.address_refused"
    finally:
        node.network = kept
    assert sharing.redeliver(node, wallet, approved["id"]).delivered      # where the rules allow it, it goes
    assert answers.send_answer(node, wallet, sharing.get_request(wallet, refused["id"]))


def test_cead_request_list_says_what_is_asked_by_name(world):
    """The IAO's command-line list: each request's purposes (and datasets, organisations) by name where the node
    knows one, as its pages do, not compact identifiers."""
    from click.testing import CliRunner
    from cead.cli import main
    w = world
    answer = send(w)
    listed = CliRunner().invoke(main, ["request", "list", "--home", str(w["iao"]["node"].home)],
                                env={"CEAD_PASSPHRASE": PASSPHRASE.decode()})
    assert listed.exit_code == 0, listed.output
    line = next(x for x in listed.output.splitlines() if x.startswith(answer["id"]))
    assert "for Free school meal auto-enrolment" in line and "cead:" not in line


# ---- approving: replays, a second person, failures and crashes on the way, redelivery -----------------------------

def test_a_replay_with_the_presentation_re_encoded_is_still_a_replay(world):
    """The replay check must not be beaten by padding the vp+jwt with whitespace (the verifier strips it) or by
    re-encoding its signature; the signed content is what identifies a presentation."""
    w = world
    url = w["iao"]["url"] + "/requests"
    body = _bound_body(w, make_request(w), url)
    status, answer = sharing.receive(w["iao"]["wallet"], json.dumps(body).encode(), url)
    assert status == 201, answer
    before = len(rows(w))
    vp = body["presentation"]
    head, payload, signature = vp.split(".")
    variants = [" " + vp, vp + "\n", f"{head}.{payload}.{signature} \t"]
    for variant in variants:
        status, answer = sharing.receive(w["iao"]["wallet"], json.dumps({**body, "presentation": variant}).encode(),
                                         url)
        assert status == 409 and answer["problems"][0]["code"] == "sharing.duplicate", (variant, answer)
    assert len(rows(w)) == before


def _received(w) -> str:
    status, answer = sharing.receive(w["iao"]["wallet"], json.dumps(_bound_body(w, make_request(w), w["iao"]["url"] +
                                                                                 "/requests")).encode(),
                                     w["iao"]["url"] + "/requests")
    assert status == 201, answer
    return answer["id"]


def test_a_refusal_while_an_approval_is_being_signed_is_turned_away(world, monkeypatch):
    """Two people at once: the approval is recorded as started before anything is signed, so a refusal in another
    tab finds the request taken (and says so) instead of racing the signature."""
    w = world
    node, wallet = w["iao"]["node"], w["iao"]["wallet"]
    request_id = _received(w)
    real_issue, refused = issuing.issue, []

    def issue_while_another_refuses(*args, **kwargs):
        assert sharing.get_request(wallet, request_id).status == "approving"
        with pytest.raises(CeadError) as err:
            sharing.refuse(wallet, request_id, "Refused in another tab.")
        refused.append(err.value.code)
        return real_issue(*args, **kwargs)

    monkeypatch.setattr(issuing, "issue", issue_while_another_refuses)
    done = sharing.approve(node, wallet, request_id, the_rest(w), delegation=w["delegation"].id)
    assert refused == ["sharing.not_pending"]
    assert done.request.status == "approved" and done.request.approval_id == done.issued.id
    assert done.request.delivered_at is not None


def test_an_approval_that_fails_after_it_was_issued_is_revoked_and_the_request_reopened(world, monkeypatch):
    """Anything that fails between signing and recording (here: right after the register row was written) must
    not leave a valid approval behind that nothing records or delivers."""
    w = world
    node, wallet = w["iao"]["node"], w["iao"]["wallet"]
    request_id = _received(w)
    real_issue, issued = issuing.issue, []

    def issue_then_fail(*args, **kwargs):
        issued.append(real_issue(*args, **kwargs))
        raise CeadError("internal.error", "The database went away.")

    monkeypatch.setattr(issuing, "issue", issue_then_fail)
    with pytest.raises(CeadError) as err:
        sharing.approve(node, wallet, request_id, the_rest(w), delegation=w["delegation"].id)
    assert err.value.code == "internal.error"
    row = sharing.get_request(wallet, request_id)
    assert row.status == "pending" and row.approval_id is None and row.decided_at is None
    with node.session() as s:
        assert s.get(db.IssuedCredential, issued[0].id).status == "revoked"
    monkeypatch.setattr(issuing, "issue", real_issue)
    again = sharing.approve(node, wallet, request_id, the_rest(w), delegation=w["delegation"].id)
    assert again.request.status == "approved" and again.issued.id != issued[0].id


def test_an_approval_interrupted_by_a_crash_is_reopened_and_what_was_signed_revoked(world):
    """The node stops after signing, before recording (the state a crash leaves: the request "approving" under the
    approval's id, the approval in the register). Reopening too soon is refused (it may still be running); after
    INTERRUPTED_AFTER it revokes the approval and the request can be approved afresh."""
    from datetime import datetime, timezone
    w = world
    node, wallet = w["iao"]["node"], w["iao"]["wallet"]
    request_id = _received(w)
    credential = issuing.build_credential(node, sharing.APPROVAL, {
        **sharing.draft_subject(node, wallet, request_id, delegation=w["delegation"].id), **the_rest(w)})
    credential["id"] = "urn:uuid:4d1c6f0e-0000-4000-8000-00000000c4a5"
    sharing._decide(wallet, request_id, sharing.APPROVING, approval_id=credential["id"], decided_by="iao")
    issuing.issue(node, credential, {"delegation": w["delegation"].credential})
    # ... and here the process died

    row = sharing.get_request(wallet, request_id)
    assert row.status == "approving" and not sharing.is_interrupted(row)
    with pytest.raises(CeadError) as err:
        sharing.reopen(node, wallet, request_id)
    assert err.value.code == "sharing.in_progress"
    with pytest.raises(CeadError) as err:
        sharing.approve(node, wallet, request_id, the_rest(w), delegation=w["delegation"].id)
    assert err.value.code == "sharing.not_pending"

    later = datetime.now(timezone.utc) + sharing.INTERRUPTED_AFTER
    assert sharing.is_interrupted(row, later)
    reopened = sharing.reopen(node, wallet, request_id, by="dpo", now=later)
    assert reopened.status == "pending" and reopened.approval_id is None
    with node.session() as s:
        assert s.get(db.IssuedCredential, credential["id"]).status == "revoked"
    done = sharing.approve(node, wallet, request_id, the_rest(w), delegation=w["delegation"].id)
    assert done.request.status == "approved" and done.issued.id != credential["id"]
    with pytest.raises(CeadError) as err:
        sharing.reopen(node, wallet, request_id, now=later)
    assert err.value.code == "sharing.not_pending"


def test_a_failed_delivery_is_delivered_again_once_the_requester_is_back(world):
    """The requester's node is down when the IAO approves: the approval is kept (approved, not delivered), the page
    offers "Deliver again", and delivering again hands the same approval and its chain to the inbox."""
    w = world
    node, wallet = w["iao"]["node"], w["iao"]["wallet"]
    request_id = _received(w)
    requester = w["late"]["requester"]
    running = requester.app

    def down(environ, start_response):
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
        return [b"maintenance"]

    requester.app = down
    try:
        with pytest.raises(CeadError) as err:
            sharing.approve(node, wallet, request_id, the_rest(w), delegation=w["delegation"].id)
    finally:
        requester.app = running
    assert err.value.code == "sharing.undelivered" and "again" in err.value.message
    row = sharing.get_request(wallet, request_id)
    assert row.status == "approved" and row.delivered_at is None and row.approval_id == err.value.detail["approval"]
    held = lambda: [r.credential_id for r in w["requester"]["wallet"].search(type="DataSharingApprovalCredential")]
    assert row.approval_id not in held()

    client = create_node_app(node, wallet=wallet).test_client()
    assert sign_in(client, token(node, "issue:approval", name="iao-2")).status_code == 302
    page = client.get(f"/wallet/requests/{request_id}")
    assert "Not delivered yet" in page.text and "Deliver again" in page.text
    sent = client.post(f"/wallet/requests/{request_id}/deliver", data={"csrf": csrf_of(page.text)})
    assert sent.status_code == 302
    assert row.approval_id in held()
    row = sharing.get_request(wallet, request_id)
    assert row.delivered_at is not None
    assert "Delivered to" in client.get(f"/wallet/requests/{request_id}").text
    again = sharing.redeliver(node, wallet, request_id)                  # the inbox keeps one copy
    assert again.issued is None and held().count(row.approval_id) == 1

    pending = _received(w)
    with pytest.raises(CeadError) as err:
        sharing.redeliver(node, wallet, pending)
    assert err.value.code == "sharing.not_approved"


def test_a_delegation_named_by_an_id_with_two_dots_is_found_not_read_as_a_jwt(world):
    """``resolve_delegation`` took any string with two dots for a compact JWT, so a delegation whose id is e.g.
    ``https://fife.gov.scot/delegations/7`` could never be chosen by id."""
    w = world
    controller, iao = w["controller"]["node"], w["iao"]["node"]
    ident = "https://fife.gov.scot/delegations/7"
    delegation = issuing.issue(controller, {**_credential("DelegatedAuthorityCredential", {
        "id": iao.did, "role": "InformationAssetOwner", "onBehalfOf": controller.did,
        "allowedActions": ["ApproveDisclosure"], "scope": {"datasets": [DATASET]}}), "id": ident})
    assert delegation.id == ident
    assert w["iao"]["wallet"].import_credential(delegation.credential).ok
    assert sharing.resolve_delegation(iao, w["iao"]["wallet"], ident) == delegation.credential
    url = w["iao"]["url"] + "/requests"
    status, answer = sharing.receive(w["iao"]["wallet"], json.dumps(_bound_body(w, make_request(w), url)).encode(),
                                     url)
    assert status == 201, answer
    draft = sharing.draft_subject(iao, w["iao"]["wallet"], answer["id"], delegation=ident)
    assert draft["delegationChain"][0]["id"] == ident and draft["discloser"] == controller.did


def test_a_request_in_snake_case_is_stored_in_its_wire_form_so_it_can_be_decided(world):
    """The request model also accepts field names (populate_by_name): a request sent with ``data_items`` and
    ``reply_to`` passed the checks but was stored as sent, so the draft and approval (``req["dataItems"]``,
    ``req["replyTo"]``) failed with a KeyError: a 500 on the IAO's page."""
    w = world
    url = w["iao"]["url"] + "/requests"
    request = make_request(w)
    request["data_items"] = request.pop("dataItems")
    request["reply_to"] = request.pop("replyTo")
    status, answer = sharing.receive(w["iao"]["wallet"], json.dumps(_bound_body(w, request, url)).encode(), url)
    assert status in (201, 400), answer
    if status == 201:
        stored = sharing.get_request(w["iao"]["wallet"], answer["id"]).request
        assert stored["dataItems"] == ["pupil_id", "entitlement"] and stored["replyTo"].endswith("/inbox")
        draft = sharing.draft_subject(w["iao"]["node"], w["iao"]["wallet"], answer["id"],
                                      delegation=w["delegation"].id)
        assert draft["dataItems"] == ["pupil_id", "entitlement"]



# ---- what an approval revokes, and reopen racing a slow approval --------------------------------------------------
def _unrelated_credential(w):
    """A credential the IAO's node issued that has nothing to do with any request (a certification)."""
    return issuing.issue(w["iao"]["node"], _credential("OrganisationCertificationCredential", certification_subject(
        w["requester"]["node"].did, CYBER_ESSENTIALS)))


def _status_of(node, ident: str) -> str:
    with node.session() as s:
        return s.get(db.IssuedCredential, ident).status


@pytest.mark.parametrize("overrides, field", [
    ("whole", "credentialSubject"),        # a whole credential, naming another credential's id
    ({"id": "unrelated"}, "id"),
    ({"id": 5}, "id"),
    ({"id": {"a": 1}}, "id"),
    ({"type": ["VerifiableCredential", "DataSharingApprovalCredential"]}, "type"),
])
def test_approval_overrides_are_a_subject_and_never_choose_the_approvals_id(world, overrides, field):
    """The overrides were laid over the draft and handed to build_credential, which takes anything with a
    credentialSubject as a whole credential, id included: approve then recorded that id, and when issuing failed
    (here: the id was taken) revoked whatever the node had issued under it, an unrelated credential. A non-string
    id left the request stuck "approving" or hit the database raw. Now only subject fields are taken (anything
    else is sharing.invalid naming the field, before anything is recorded) and the approval's id is always fresh."""
    w = world
    node, wallet = w["iao"]["node"], w["iao"]["wallet"]
    other = _unrelated_credential(w)
    if overrides == "whole":
        overrides = {"credentialSubject": {}, "type": ["VerifiableCredential", sharing.APPROVAL], "id": other.id}
    elif overrides.get("id") == "unrelated":
        overrides = {"id": other.id}
    request_id = _received(w)
    with pytest.raises(CeadError) as err:
        sharing.approve(node, wallet, request_id, {**the_rest(w), **overrides}, delegation=w["delegation"].id)
    assert err.value.code == "sharing.invalid" and err.value.detail["field"] == field
    row = sharing.get_request(wallet, request_id)
    assert row.status == "pending" and row.approval_id is None
    assert _status_of(node, other.id) == "active"
    # the same through the approvals page: a clean 400, the unrelated credential untouched
    client = create_node_app(node, wallet=wallet).test_client()
    assert sign_in(client, token(node, "issue:approval", name=f"iao-{uuid.uuid4().hex[:8]}")).status_code == 302
    page = client.get(f"/wallet/requests/{request_id}")
    answer = client.post(f"/wallet/requests/{request_id}/approve", data={
        "csrf": csrf_of(page.text), "delegation": w["delegation"].id, "subject": json.dumps(overrides)})
    assert answer.status_code == 400 and "sharing.invalid" in answer.text
    assert _status_of(node, other.id) == "active" and sharing.get_request(wallet, request_id).status == "pending"
    done = sharing.approve(node, wallet, request_id, the_rest(w), delegation=w["delegation"].id)
    assert done.issued.id.startswith("urn:uuid:") and done.issued.id != other.id


def test_undoing_an_approval_revokes_only_what_that_approval_issued(world):
    """A request left "approving" under the id of a credential the approval did not issue (a row from before ids
    were always fresh, or any other way): reopening puts it back to pending but leaves that credential alone."""
    from datetime import datetime, timezone
    w = world
    node, wallet = w["iao"]["node"], w["iao"]["wallet"]
    other = _unrelated_credential(w)
    request_id = _received(w)
    sharing._decide(wallet, request_id, sharing.APPROVING, approval_id=other.id, decided_by="iao")
    later = datetime.now(timezone.utc) + sharing.INTERRUPTED_AFTER
    assert sharing.reopen(node, wallet, request_id, now=later).status == "pending"
    assert _status_of(node, other.id) == "active"


@pytest.mark.parametrize("when", ["signing", "signed"])
def test_reopen_and_a_slow_approval_finishing_never_both_win(world, monkeypatch, when):
    """reopen checked "approving" and then revoked without holding the row: an approval that was only slow could
    finish in between, leaving the request approved with its approval revoked. Now reopen claims the row first
    (approving -> reopening), so the finishing approval cannot be recorded and revokes what it issued."""
    import threading
    from datetime import datetime, timezone
    w = world
    node, wallet = w["iao"]["node"], w["iao"]["wallet"]
    request_id = _received(w)
    real_issue, real_change = issuing.issue, issuing.change_status
    go, issued, outcome = threading.Event(), [], {}
    main = threading.current_thread()

    def slow_issue(*args, **kwargs):
        if when == "signing":
            assert go.wait(30)
        issued.append(real_issue(*args, **kwargs))
        if when == "signed":
            assert go.wait(30)
        return issued[-1]

    def change_status(*args, **kwargs):
        if threading.current_thread() is main:   # reopen is revoking: let the approval finish first (old race)
            go.set()
            approving.join(30)
        return real_change(*args, **kwargs)

    def run():
        try:
            outcome["approved"] = sharing.approve(node, wallet, request_id, the_rest(w), delegation=w["delegation"].id)
        except CeadError as exc:
            outcome["error"] = exc.code

    monkeypatch.setattr(issuing, "issue", slow_issue)
    monkeypatch.setattr(issuing, "change_status", change_status)
    approving = threading.Thread(target=run)
    approving.start()
    for _ in range(300):
        if sharing.get_request(wallet, request_id).status == "approving" and (when == "signing" or issued):
            break
        threading.Event().wait(0.05)
    later = datetime.now(timezone.utc) + sharing.INTERRUPTED_AFTER
    try:
        reopened = sharing.reopen(node, wallet, request_id, now=later).status
    except CeadError as exc:
        reopened = exc.code
    go.set()
    approving.join(30)
    assert not approving.is_alive()
    row = sharing.get_request(wallet, request_id)
    status = _status_of(node, issued[0].id)
    assert not (row.status == "approved" and status == "revoked"), (reopened, outcome, row.status)
    assert reopened == "pending" and outcome == {"error": "sharing.not_pending"}
    assert row.status == "pending" and row.approval_id is None and status == "revoked"


def test_approving_under_a_delegation_that_has_ended_is_refused_in_words_before_the_request_is_claimed(
        world, monkeypatch):
    """The IAO node's delegation has ended (its scope's notAfter passed; its validity runs on). Approving under it
    put the request into "approving" (so another person saw it being approved) before the guard rail refused it
    with its own terms. The wallet knows the end already (WalletCredential.ends, the rule the rest of the wallet
    uses): it now refuses before claiming the request, with delegation.not_in_force naming the delegation from whom
    to whom, the day it ended in words and the fix; the request stays pending throughout."""
    from datetime import datetime, timedelta, timezone
    from schemas.words import moment_words
    w = world
    controller, iao, wallet = w["controller"]["node"], w["iao"]["node"], w["iao"]["wallet"]
    ended_at = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=3)
    ended = issuing.issue(controller, _credential("DelegatedAuthorityCredential", {
        "id": iao.did, "role": "InformationAssetOwner", "onBehalfOf": controller.did,
        "allowedActions": ["ApproveDisclosure"],
        "scope": {"datasets": [DATASET], "notAfter": ended_at.isoformat().replace("+00:00", "Z")}}))
    assert wallet.import_credential(ended.credential).ok
    answer = send(w)
    states = []
    real = sharing._decide
    monkeypatch.setattr(sharing, "_decide", lambda *a, **k: states.append(a[2]) or real(*a, **k))
    with pytest.raises(CeadError) as err:
        sharing.approve(iao, wallet, answer["id"], the_rest(w), delegation=ended.id)
    e = err.value
    assert e.code == "delegation.not_in_force" and e.detail["status"] == "expired", e.message
    assert f"the delegation {ended.id} from {controller.did} to {iao.did} (Information Asset Owner)" in e.message
    assert f"ended on {moment_words(ended_at)}" in e.message and "its notAfter" in e.message
    assert "Nothing was signed. Ask your Data Protection Officer" in e.message and "new delegation" in e.message
    assert states == [] and sharing.get_request(wallet, answer["id"]).status == "pending"
    monkeypatch.undo()
    # the same request is approved under the delegation in force
    done = sharing.approve(iao, wallet, answer["id"], the_rest(w), delegation=w["delegation"].id, verify=w["bundle"])
    assert done.request.status == "approved"
