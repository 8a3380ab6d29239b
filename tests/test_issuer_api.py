"""The issuer's HTTP API: bad input, concurrency (SQLite, PostgreSQL), and the full loop over real HTTPS."""
import json
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from issuer import db, issuing
from issuer.app import create_app
from issuer.node import Node
from verifier.credential import Verifier
from verifier.did import Resolver
from verifier.results import CeadError

from issuer_fixtures import (PASS, certification, counts, delegation, https_node, postgresql_node,
                             served_nodes, token)


def post(client, path, body, tok, raw=None, content_type="application/json"):
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    data = raw if raw is not None else json.dumps(body)
    return client.post(path, data=data, headers=headers, content_type=content_type)


def test_bad_input_is_refused_with_json_and_nothing_stored(node):
    client = create_app(node, max_body=64 * 1024).test_client()
    tok = token(node)
    narrow = token(node, "issue:approval", name="narrow")
    good = certification(node.did)
    cases = [
        (dict(raw=b"{not json"), tok, 400, "request.malformed_json"),
        (dict(body=[1, 2]), tok, 400, "request.invalid"),
        (dict(body={"options": {}}), tok, 400, "request.invalid"),
        # another type is the general profile (issue:any); this one is not even a well-formed credential (its
        # subject is a certification's, and a verifier would refuse it), so it is refused before any scope is asked
        (dict(body={"credential": {**good, "type": ["VerifiableCredential", "MadeUpCredential"]}}), tok, 400,
         "credential.invalid"),
        (dict(body={"credential": {k: v for k, v in good.items() if k != "credentialSubject"}}), tok, 400,
         "credential.invalid"),
        (dict(body={"credential": {**good, "credentialSubject": {"id": "did:web:x.example"}}}), tok, 400,
         "schema.invalid"),
        (dict(body={"credential": {**good, "issuer": "did:web:evil.example"}}), tok, 400,
         "credential.issuer_mismatch"),
        (dict(body={"credential": good, "options": {"cryptosuite": "rsa-2048"}}), tok, 400, "options.invalid"),
        (dict(body={"credential": {**good, "padding": "x" * 70_000}}), tok, 413, "request.too_large"),
        (dict(body={"credential": good}), None, 401, "auth.missing"),
        (dict(body={"credential": good}), "cead_forged", 401, "auth.invalid"),
        (dict(body={"credential": good}), narrow, 403, "auth.scope"),
    ]
    for kwargs, tk, status, code in cases:
        resp = post(client, "/credentials/issue", kwargs.get("body"), tk, raw=kwargs.get("raw"))
        assert resp.status_code == status, (code, resp.get_json())
        assert resp.get_json()["error"]["code"] == code
        assert resp.get_json()["error"]["message"]
    assert counts(node) == (0, 0)
    resp = post(client, "/credentials/status", {"credentialId": "urn:uuid:x",
                                                "credentialStatus": [{"status": "revoked"}]}, narrow)
    assert resp.status_code == 403
    resp = post(client, "/credentials/status", {"credentialId": "urn:uuid:x",
                                                "credentialStatus": [{"status": "revoked"}]}, tok)
    assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "credential.not_found"


def test_issue_duplicate_id_and_status_endpoint(node):
    client = create_app(node).test_client()
    tok = token(node)
    cred = {**certification(node.did), "id": "urn:uuid:" + str(uuid.uuid4())}
    resp = post(client, "/credentials/issue", {"credential": cred, "options": {"format": "vc+jwt"}}, tok)
    assert resp.status_code == 201
    vc = resp.get_json()["verifiableCredential"]
    assert vc["type"] == "EnvelopedVerifiableCredential" and vc["id"].startswith("data:application/vc+jwt,ey")
    # the same request again is a retry: the same credential (issuer.idempotency); another one with its id is refused
    again = post(client, "/credentials/issue", {"credential": cred, "options": {"format": "vc+jwt"}}, tok)
    assert again.status_code == 201 and again.get_json() == resp.get_json()
    again = post(client, "/credentials/issue", {"credential": cred, "options": {"format": "vc+jwt", "alg": "EdDSA"}},
                 tok)
    assert again.status_code == 400 and again.get_json()["error"]["code"] == "credential.duplicate_id"
    assert counts(node) == (1, 1)
    resp = post(client, "/credentials/status", {"credentialId": cred["id"],
                                                "credentialStatus": [{"type": "BitstringStatusListCredential",
                                                                      "status": "revoked"}]}, tok)
    assert resp.status_code == 200 and resp.get_json()["status"] == "revoked"
    # public: the list, with caching headers; a conditional GET gets 304
    entry = json.loads(issuing.register(node)[0].status_entries)[0]
    path = "/" + entry["statusListCredential"].split("/", 3)[3]
    listing = client.get(path)
    assert listing.status_code == 200 and "max-age" in listing.headers["Cache-Control"]
    assert client.get(path, headers={"If-None-Match": listing.headers["ETag"]}).status_code == 304
    assert client.get("/status/999").status_code == 404
    assert client.get("/.well-known/did.json").get_json()["id"] == node.did


def _update(cid, purpose, status, entry_type="BitstringStatusListEntry"):
    """A VC-API UpdateCredentialStatusRequest."""
    return {"credentialId": cid, "credentialStatus": {"type": entry_type, "statusPurpose": purpose},
            "status": status}


@pytest.mark.parametrize("body, action", [
    (_update("urn:uuid:a", "revocation", True), "revoke"),
    (_update("urn:uuid:a", "suspension", True), "suspend"),
    (_update("urn:uuid:a", "suspension", False), "reinstate"),
    (_update("urn:uuid:a", "suspension", True, "BitstringStatusList"), "suspend"),   # the VC-API's own example
    ({"credentialId": "urn:uuid:a", "credentialStatus": [{"type": "BitstringStatusListCredential",
                                                          "status": "active"}]}, "reinstate"),   # the earlier form
])
def test_status_request_shapes(body, action):
    assert issuing.parse_status_request(body) == ("urn:uuid:a", action)


@pytest.mark.parametrize("body, field, words", [
    (_update("urn:uuid:a", "revocation", False), "status", "Revocation is final"),
    (_update("urn:uuid:a", "suspension", "true"), "status", "true"),
    (_update("urn:uuid:a", "suspension", 1), "status", "true"),
    (_update("urn:uuid:a", "refresh", True), "credentialStatus.statusPurpose", "revocation or suspension"),
    (_update("urn:uuid:a", "suspension", True, "MadeUpEntry"), "credentialStatus.type", "BitstringStatusListEntry"),
    (_update("urn:uuid:a", ["suspension"], True, ["BitstringStatusListEntry"]), "credentialStatus.type", "type"),
    ({**_update("urn:uuid:a", "suspension", True), "credentialStatus": [{"statusPurpose": "suspension"}]},
     "credentialStatus", "object"),
])
def test_status_request_refusals(body, field, words):
    with pytest.raises(CeadError) as err:
        issuing.parse_status_request(body)
    assert err.value.code == "request.invalid" and err.value.detail.get("field") == field
    assert words in err.value.message


def test_status_endpoint_takes_the_vc_api_update_request(node):
    """VC-API UpdateCredentialStatusRequest over HTTP: suspend, reinstate and revoke a suspendable credential;
    clearing a revocation is a 400 that changes nothing."""
    client = create_app(node).test_client()
    tok = token(node)
    cred = {**certification(node.did), "id": "urn:uuid:" + str(uuid.uuid4())}
    options = {"credentialStatus": {"type": "BitstringStatusListEntry", "statusPurpose": ["revocation", "suspension"]}}
    assert post(client, "/credentials/issue", {"credential": cred, "options": options}, tok).status_code == 201
    for purpose, status, expected in (("suspension", True, "suspended"), ("suspension", False, "active"),
                                      ("revocation", True, "revoked")):
        resp = post(client, "/credentials/status", _update(cred["id"], purpose, status), tok)
        assert resp.status_code == 200 and resp.get_json()["status"] == expected, resp.get_json()
    resp = post(client, "/credentials/status", _update(cred["id"], "revocation", False), tok)
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "request.invalid"
    assert "final" in resp.get_json()["error"]["message"]
    assert issuing.register(node)[0].status == "revoked"


def _concurrent_issue(node, n=8):
    client = create_app(node).test_client()
    tok = token(node, name=f"t-{uuid.uuid4()}")
    barrier = threading.Barrier(n)

    def one(_):
        barrier.wait()
        return post(client, "/credentials/issue", {"credential": certification(node.did),
                                                   "options": {"format": "vc+jwt"}}, tok)

    with ThreadPoolExecutor(n) as pool:
        responses = list(pool.map(one, range(n)))
    assert [r.status_code for r in responses] == [201] * n, [r.get_json() for r in responses]
    rows = issuing.register(node)
    assert len(rows) == n
    entries = [json.loads(r.status_entries)[0] for r in rows]
    assert len({(e["statusListCredential"], e["statusListIndex"]) for e in entries}) == n
    assert all(isinstance(e["statusListIndex"], str) for e in entries)


def test_concurrent_issuers_sqlite(node):
    _concurrent_issue(node)


@pytest.mark.skipif(not os.environ.get("CEAD_TEST_DATABASE_URL"), reason="set CEAD_TEST_DATABASE_URL for PostgreSQL")
def test_concurrent_issuers_postgresql(tmp_path):
    with postgresql_node(tmp_path / "pg") as node:
        _concurrent_issue(node)


def test_full_loop_over_https(tmp_path):
    from verifier.credential import Verifier
    from verifier.did import Resolver
    from verifier.http import Fetcher
    from verifier.status import StatusLists

    with https_node(tmp_path / "h") as (node, base_url, ca_bundle):
        tok = token(node)
        fetcher = Fetcher(allow_private=True, ca_bundle=ca_bundle)
        resolver = Resolver(fetcher)
        assert resolver.resolve(node.did)["id"] == node.did == "did:web:localhost%3A" + base_url.rsplit(":", 1)[1]
        verifier = Verifier(resolver=resolver, status=StatusLists(fetcher, ttl=0))

        import requests
        issued = []
        for options in ({"cryptosuite": "eddsa-rdfc-2022"}, {"cryptosuite": "eddsa-jcs-2022"},
                        {"format": "vc+jwt"}, {"format": "vc+jwt", "alg": "ES256"}):
            resp = requests.post(base_url + "/credentials/issue", json={"credential": certification(node.did),
                                 "options": options}, headers={"Authorization": f"Bearer {tok}"},
                                 verify=ca_bundle, timeout=10)
            assert resp.status_code == 201, resp.text
            vc = resp.json()["verifiableCredential"]
            result = verifier.verify_credential(vc)
            assert result.verified, (options, [p.to_dict() for p in result.problems])
            issued.append((vc, result.document["id"]))

        for vc, cid in issued:
            resp = requests.post(base_url + "/credentials/status", json={"credentialId": cid, "credentialStatus": [
                {"type": "BitstringStatusListCredential", "status": "revoked"}]},
                headers={"Authorization": f"Bearer {tok}"}, verify=ca_bundle, timeout=10)
            assert resp.status_code == 200
            result = verifier.verify_credential(vc)
            assert not result.verified and "status.revoked" in [p.code for p in result.problems]


def test_guard_rail_refuses_a_delegation_wider_than_the_signers(tmp_path):
    """The signer (a DPO's node) holds a real delegation from the council, both served over HTTPS on 127.0.0.1."""
    from schemas.models import credential_digest
    with served_nodes(tmp_path, "council", "dpo") as nodes:
        council, node = nodes["council"], nodes["dpo"]
        client = create_app(node).test_client()
        tok = token(node)
        meals, pupils = "https://data.fife.example/meals", "https://data.fife.example/pupils"
        parent = delegation(council, node.did, {"datasets": [meals]}, role="DataProtectionOfficer").credential

        def child(datasets):
            subject = {"id": "did:web:approver.example", "role": "InformationAssetOwner",
                       "onBehalfOf": council.did, "allowedActions": ["ApproveDisclosure"],
                       "parentDelegation": {"id": parent["id"], "digest": credential_digest(parent)},
                       "scope": {"datasets": datasets}}
            return {"@context": parent["@context"], "type": parent["type"], "credentialSubject": subject}

        wide = post(client, "/credentials/issue", {"credential": child([meals, pupils]),
                                                   "options": {"format": "vc+jwt", "delegation": parent}}, tok)
        assert wide.status_code == 400, wide.get_json()
        error = wide.get_json()["error"]
        assert error["code"] == "scope.too_wide" and error["detail"]["dimensions"] == ["datasets"]
        assert "datasets" in error["message"]
        assert counts(node) == (0, 0)
        narrow = post(client, "/credentials/issue", {"credential": child([meals]),
                                                     "options": {"format": "vc+jwt", "delegation": parent}}, tok)
        assert narrow.status_code == 201, narrow.get_json()
        # a real delegation, but to someone else
        not_mine = delegation(council, "did:web:someone.example", {"datasets": [meals]}).credential
        resp = post(client, "/credentials/issue", {"credential": child([meals]),
                                                   "options": {"format": "vc+jwt", "delegation": not_mine}}, tok)
        assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "delegation.invalid"
        assert "not held by this node" in resp.get_json()["error"]["message"]


def _racing_status_changes(node, rounds=6):
    """Revoke and reinstate the same suspended credential at once: the register must agree with the list."""
    for _ in range(rounds):
        issued = issuing.issue(node, certification(node.did), {"credentialStatus": {
            "type": "BitstringStatusListEntry", "statusPurpose": ["revocation", "suspension"]}})
        issuing.change_status(node, issued.id, "suspend")
        barrier = threading.Barrier(2)

        def act(action):
            barrier.wait()
            try:
                issuing.change_status(node, issued.id, action)
            except Exception as exc:  # the reinstate may come second and be refused: that is the point
                return getattr(exc, "code", repr(exc))
            return "ok"
        with ThreadPoolExecutor(2) as pool:
            outcomes = list(pool.map(act, ["revoke", "reinstate"]))
        assert outcomes[0] == "ok" and outcomes[1] in ("ok", "status.revoked_permanent"), outcomes
        with node.session() as s:
            row = s.get(db.IssuedCredential, issued.id)
            revoked_bit = s.exec(sa.select(db.StatusEntry.value).where(
                db.StatusEntry.credential_id == issued.id, db.StatusEntry.purpose == "revocation")).first()[0]
        assert revoked_bit is True and row.status == "revoked", (row.status, outcomes)


def test_racing_revoke_and_reinstate_sqlite(node):
    _racing_status_changes(node)


@pytest.mark.skipif(not os.environ.get("CEAD_TEST_DATABASE_URL"), reason="set CEAD_TEST_DATABASE_URL for PostgreSQL")
def test_racing_revoke_and_reinstate_postgresql(tmp_path):
    with postgresql_node(tmp_path / "pg") as node:
        _racing_status_changes(node, rounds=12)


@pytest.mark.parametrize("options", [{"cryptosuite": "eddsa-jcs-2022"}, {"format": "vc+jwt"}])
@pytest.mark.parametrize("change, code", [
    ({"@context": ["https://www.w3.org/ns/credentials/v2", "https://w3id.org/cead/v1",
                   "https://contexts.example/not-pinned"]}, "credential.context_unknown"),
    ({"credentialSchema": {"id": "https://schemas.example/unknown.json", "type": "JsonSchema"}},
     "credential.schema_unknown"),
])
def test_the_issuer_never_signs_what_verifiers_would_refuse(node, options, change, code):
    """JCS and JWT need no JSON-LD processing to sign, so without this check the node signed credentials that
    every verifier then refused (an unpinned context, an unknown credentialSchema)."""
    client = create_app(node).test_client()
    before = counts(node)
    response = post(client, "/credentials/issue", {"credential": {**certification(node.did), **change},
                                                   "options": options}, token(node))
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "credential.invalid" and code in error["message"]
    assert counts(node) == before


# ---- what a caller can get signed: bad input is a 4xx and never a 500 ---------------------------------------------

FORMATS = [{}, {"format": "vc+jwt"}, {"cryptosuite": "eddsa-jcs-2022"}]


def issue(client, tok, credential, options):
    return client.post("/credentials/issue", data=json.dumps({"credential": credential, "options": options}),
                       headers={"Authorization": f"Bearer {tok}"}, content_type="application/json")


def test_a_vc_claim_cannot_smuggle_another_credential_into_a_jwt(tmp_path):
    """A VC 1.1 reader takes a JWT's ``vc`` claim as the whole credential. A token that may only issue
    certifications must not get a verifying approval (unchecked subject, no status entry) signed that way."""
    node, _ = Node.init(tmp_path / "k", "Service", PASS, did_method="key", public_url="https://k.example")
    smuggled = {"@context": ["https://www.w3.org/ns/credentials/v2", "https://w3id.org/cead/v1"],
                "type": ["VerifiableCredential", "DataSharingApprovalCredential"], "issuer": node.did,
                "validFrom": "2025-01-01T00:00:00Z",
                "credentialSubject": {"recipients": ["did:web:evil.example"], "anything": "goes"}}
    with pytest.raises(issuing.CeadError) as err:
        issuing.issue(node, {**certification(node.did), "vc": smuggled}, {"format": "vc+jwt"},
                      scopes=["issue:certification"])
    assert err.value.code == "credential.invalid" and err.value.detail["field"] == "vc"
    assert counts(node) == (0, 0)
    # what is still signed verifies as exactly what the node checked
    issued = issuing.issue(node, certification(node.did), {"format": "vc+jwt"}, scopes=["issue:certification"])
    result = Verifier(Resolver()).verify_credential(issued.credential)
    assert result.verified and "OrganisationCertificationCredential" in result.document["type"]


@pytest.mark.parametrize("claim, value", [("vc", {"type": "VerifiableCredential"}), ("vp", {}),
                                          ("iss", "did:web:evil.example"), ("exp", 1), ("nbf", 4102444800),
                                          ("sub", "did:web:evil.example"), ("cnf", {"kid": "x"})])
def test_jwt_claims_in_the_request_are_refused(node, claim, value):
    client = create_app(node).test_client()
    tok = token(node)
    for options in FORMATS:
        resp = issue(client, tok, {**certification(node.did), claim: value}, options)
        assert resp.status_code == 400, (claim, options, resp.get_json())
        assert resp.get_json()["error"]["code"] == "credential.invalid"
        assert resp.get_json()["error"]["detail"]["field"] == claim
    assert counts(node) == (0, 0)


@pytest.mark.parametrize("changes, field", [
    ({"validUntil": "garbage"}, "validUntil"),
    ({"validFrom": "2025-01-01T00:00:00"}, "validFrom"),                       # no time zone
    ({"validFrom": ["2025-01-01T00:00:00Z"]}, "validFrom"),
    ({"validFrom": "2030-01-01T00:00:00Z", "validUntil": "2026-01-01T00:00:00Z"}, "validUntil"),
    ({"validUntil": "2000-01-01T00:00:00Z"}, "validUntil"),                    # before the default validFrom (now)
    ({"type": ["VerifiableCredential", "OrganisationCertificationCredential", 5]}, "type"),
    ({"type": ["VerifiableCredential", "OrganisationCertificationCredential", {"id": "x"}]}, "type"),
])
def test_credentials_that_could_never_verify_are_refused_not_signed(node, changes, field):
    client = create_app(node).test_client()
    tok = token(node)
    for options in FORMATS:
        resp = issue(client, tok, {**certification(node.did), **changes}, options)
        assert resp.status_code == 400, (changes, options, resp.get_json())
        error = resp.get_json()["error"]
        assert error["code"] == "credential.invalid" and error["detail"]["field"] == field
    assert counts(node) == (0, 0)


def test_a_valid_window_is_still_accepted(node):
    client = create_app(node).test_client()
    tok = token(node)
    cred = {**certification(node.did), "validFrom": "2025-01-01T00:00:00Z", "validUntil": "2031-01-01T00:00:00+01:00"}
    assert issue(client, tok, cred, {"format": "vc+jwt"}).status_code == 201


def test_an_issuer_object_naming_two_ids_is_refused(node):
    client = create_app(node).test_client()
    tok = token(node)
    for issuer in ({"id": node.did, "@id": "did:web:evil.example"}, {"@id": "did:web:evil.example"}):
        for options in FORMATS:
            resp = issue(client, tok, {**certification(node.did), "issuer": issuer}, options)
            assert resp.status_code == 400, (issuer, options, resp.get_json())
            assert resp.get_json()["error"]["code"] == "credential.issuer_mismatch"
    assert counts(node) == (0, 0)
    assert issue(client, tok, {**certification(node.did), "issuer": {"@id": node.did, "name": "Fife"}},
                 {"format": "vc+jwt"}).status_code == 201


def test_a_status_list_id_too_large_for_the_database_is_a_404(node):
    client = create_app(node).test_client()
    for path in ("/status/99999999999999999999999", f"/status/{2 ** 63}"):
        resp = client.get(path)
        assert resp.status_code == 404, resp.get_data()
        assert resp.get_json()["error"]["code"] == "status.list_not_found"
    cred = {**certification(node.did), "id": f"urn:uuid:{uuid.uuid4()}"}
    issuing.issue(node, cred)
    assert client.get("/status/1").status_code == 200


SUSPENDABLE = {"credentialStatus": {"type": "BitstringStatusListEntry",
                                    "statusPurpose": ["revocation", "suspension"]}}


def ended_words(credential_id: str, action: str) -> str:
    """What every path (the API, `cead suspend`/`reinstate`, the register) says when asked to ``action`` a
    delegation whose scope ended at the end of 2025 (``issuing.period_over``)."""
    return (f"Delegation of approval authority {credential_id} ended on 31 December 2025, 23:59 UTC: it is no longer "
            f"in force, so there is nothing to {action}. It can still be revoked, which is final.")


def _state(node, credential_id):
    """(register status, suspension bit, revocation bit, number of status events) of ``credential_id``."""
    with node.session() as s:
        row = s.get(db.IssuedCredential, credential_id)
        bits = dict(s.exec(sa.select(db.StatusEntry.purpose, db.StatusEntry.value).where(
            db.StatusEntry.credential_id == credential_id)).all())
        events = len(s.exec(sa.select(db.StatusEvent.id).where(db.StatusEvent.credential_id == credential_id)).all())
    return row.status, bits["suspension"], bits["revocation"], events


def _period_over_refused_but_revocable(node):
    """A credential whose period is over (here a delegation whose scope ended in 2025: the badge "expired") is no
    longer in force either way: the API refuses to suspend or reinstate it, `status.period_over` (a 400 on this
    VC-API endpoint, as every refusal of the request is; the pages answer 409), in the register's words, and changes
    nothing; revoking it still works (final, and read from the status list). One still in force is suspended."""
    client, tok = create_app(node).test_client(), token(node)
    scope = {"datasets": ["https://data.fife.example/meals"]}
    ended = delegation(node, "did:web:iao.example", {**scope, "notAfter": "2025-12-31T23:59:59Z"},
                       options=SUSPENDABLE)
    live = delegation(node, "did:web:iao.example", scope, options=SUSPENDABLE)
    for wanted, action in ((True, "suspend"), (False, "reinstate")):
        refused = post(client, "/credentials/status", _update(ended.id, "suspension", wanted), tok)
        assert refused.status_code == 400, refused.get_json()
        error = refused.get_json()["error"]
        assert (error["code"], error["message"]) == ("status.period_over", ended_words(ended.id, action))
        with pytest.raises(CeadError) as err:                      # the same for any caller of change_status
            issuing.change_status(node, ended.id, action, by="cli")
        assert (err.value.code, err.value.message) == ("status.period_over", ended_words(ended.id, action))
    assert _state(node, ended.id) == ("active", False, False, 0)       # nothing changed, nothing logged

    assert post(client, "/credentials/status", _update(live.id, "suspension", True), tok).get_json() == {
        "credentialId": live.id, "status": "suspended"}
    revoked = post(client, "/credentials/status", _update(ended.id, "revocation", True), tok)
    assert revoked.status_code == 200 and revoked.get_json() == {"credentialId": ended.id, "status": "revoked"}
    assert _state(node, ended.id) == ("revoked", False, True, 1)
    # revoked and over: revocation is final, and that is what it says
    again = post(client, "/credentials/status", _update(ended.id, "suspension", True), tok)
    assert again.get_json()["error"]["code"] == "status.revoked_permanent"


def test_a_credential_whose_period_is_over_is_not_suspended_by_the_api_sqlite(node):
    _period_over_refused_but_revocable(node)


@pytest.mark.skipif(not os.environ.get("CEAD_TEST_DATABASE_URL"), reason="set CEAD_TEST_DATABASE_URL for PostgreSQL")
def test_a_credential_whose_period_is_over_is_not_suspended_by_the_api_postgresql(tmp_path):
    with postgresql_node(tmp_path / "pg") as node:
        _period_over_refused_but_revocable(node)
