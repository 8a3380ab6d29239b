"""Review round (late additions): data-sharing requests, status list ttl."""
from __future__ import annotations

import json

import pytest
from sqlmodel import Session

from issuer import db, service
from verifier.results import CeadError
from wallet import requests as sharing

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


def test_an_approval_issued_for_a_request_decided_meanwhile_is_revoked(world, monkeypatch):
    """Two approvers at once: both pass the pending check and both issue; the one that loses the race must not
    leave a valid approval behind (nothing records or delivers it)."""
    w = world
    node, wallet = w["iao"]["node"], w["iao"]["wallet"]
    status, answer = sharing.receive(wallet, json.dumps(_bound_body(w, make_request(w), w["iao"]["url"] +
                                                                    "/requests")).encode(),
                                     w["iao"]["url"] + "/requests")
    assert status == 201, answer
    real_issue = service.issue
    issued = []

    def issue_while_another_refuses(*args, **kwargs):
        result = real_issue(*args, **kwargs)
        issued.append(result)
        sharing.refuse(wallet, answer["id"], "Refused in another tab.")
        return result

    monkeypatch.setattr(service, "issue", issue_while_another_refuses)
    with pytest.raises(CeadError) as err:
        sharing.approve(node, wallet, answer["id"], the_rest(w), delegation=w["delegation"].id)
    assert err.value.code == "sharing.not_pending"
    row = sharing.get_request(wallet, answer["id"])
    assert row.status == "refused" and row.approval_id is None
    with node.session() as s:
        assert s.get(db.IssuedCredential, issued[0].id).status == "revoked"


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
    delegation = service.issue(controller, {**_credential("DelegatedAuthorityCredential", {
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
