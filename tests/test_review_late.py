"""Review round (late additions): data-sharing requests, status list ttl."""
from __future__ import annotations

import json
import uuid

import pytest

from issuer import db, issuing
from verifier.results import CeadError
from wallet import sharing

from test_requests import _bound_body, make_request, rows, the_rest, world  # noqa: F401  (the fixture)


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
    from issuer_fixtures import token
    from test_pages import csrf_of, sign_in
    from wallet.app import create_node_app
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


def _status_env():
    from datetime import timedelta
    from test_status import Clock, FakeFetcher, FakeVerifier
    from verifier.status import StatusLists
    fetcher, clock = FakeFetcher(), Clock()
    return fetcher, clock, StatusLists(fetcher, FakeVerifier(), ttl=60, max_staleness=timedelta(minutes=10),
                                       clock=clock)


@pytest.mark.parametrize("field,value,expected", [("ttl", 10 ** 400, []),
                                                  ("validUntil", "next Tuesday", ["status.list_invalid"]),
                                                  ("validUntil", "2030-01-01T00:00:00", ["status.list_invalid"])])
def test_a_status_list_ttl_too_big_for_a_float_or_an_unreadable_valid_until(field, value, expected):
    """A ttl too long for a float is simply longer than any cache lives (not an internal error); a validUntil that
    is not a date-time with a zone (a VC 1.1 list is not format-checked for it) makes the list invalid."""
    from test_status import URL, credential, publish
    from verifier.status import make_entry
    fetcher, _, checker = _status_env()
    publish(fetcher)
    target = fetcher.lists[URL]["credentialSubject"] if field == "ttl" else fetcher.lists[URL]
    target[field] = value
    problems = checker.check(credential(make_entry(URL, 5, "revocation")))
    assert [p.code for p in problems] == expected


def test_a_delegation_named_by_an_id_with_two_dots_is_found_not_read_as_a_jwt(world):
    """``resolve_delegation`` took any string with two dots for a compact JWT, so a delegation whose id is e.g.
    ``https://fife.gov.scot/delegations/7`` could never be chosen by id."""
    from test_requests import DATASET, _credential
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


# ---- review: what an approval revokes, and reopen racing a slow approval ---------------------------------------
def _unrelated_credential(w):
    """A credential the IAO's node issued that has nothing to do with any request (a certification)."""
    from test_requests import _credential
    from test_wallet_support import CYBER_ESSENTIALS, certification_subject
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
    from issuer_fixtures import token
    from test_pages import csrf_of, sign_in
    from wallet.app import create_node_app
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
