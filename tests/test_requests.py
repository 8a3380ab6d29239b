"""Data-sharing requests between nodes over real HTTPS on 127.0.0.1, and the IAO's approvals interface.

Three nodes: a controller (delegates approval authority to the IAO's node and certifies the requester), the IAO's
node (receives requests at ``POST /requests``, approves them) and the requester (sends requests, receives the
approval in its inbox, pulls data through ``CeadMiddleware``).
"""
from __future__ import annotations

import json
import uuid
from contextlib import ExitStack
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask, jsonify
from sqlmodel import Session, select

from helpers_https import https_server
from issuer import issuing
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
    import time
    w = world
    node = w["iao"]["node"]
    node.config["standing_approvals"] = [{"name": "school-meals", "delegation": w["delegation"].id,
                                          "conditions": the_rest(w), "valid_for": "P6M"}]

    def settled(request_id, wanted, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = sharing.get_request(w["iao"]["wallet"], request_id)
            if row.status == wanted and row.standing_note:
                return row
            time.sleep(0.2)
        raise AssertionError(f"request {request_id} is {row.status} ({row.standing_note})")

    try:
        inside = send(w)
        row = settled(inside["id"], "approved")
        assert row.decided_by == "standing:school-meals" and "automatically" in row.standing_note
        held = w["requester"]["wallet"].search(type="DataSharingApprovalCredential")
        assert row.approval_id in [r.credential_id for r in held]

        outside = send(w, make_request(w, datasets=["https://data.example.gov.scot/dataset/council-tax"]))
        row = settled(outside["id"], "pending")
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
