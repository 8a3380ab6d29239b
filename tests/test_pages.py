"""The organisation's web pages: landing page, DPO sign-in, register, status changes, issuing form, wallet pages."""
from __future__ import annotations

import io
import json
import re
import stat
from datetime import timedelta
from html import unescape
from urllib.parse import unquote, urlsplit

import pytest
import yaml
import zxingcpp
from PIL import Image
from sqlmodel import select

from issuer import db, issuing, staff, tokens
from issuer.pages import SECRET_FILE
from schemas.models import credential_digest
from wallet.app import create_node_app
from wallet.store import Wallet, make_verifier

from issuer_fixtures import CERT_SUBJECT, certification, delegation, make_node, served_nodes, token
from schemas.words import moment_words
from test_wallet_support import (StaticFetcher, StatusListFixture, approval_subject, certification_subject, identity,
                                 now, vc, CYBER_ESSENTIALS)

MEALS, PUPILS = "https://data.fife.example/meals", "https://data.fife.example/pupils"


@pytest.fixture
def env(tmp_path):
    node = make_node(tmp_path / "h", public_url="https://fife.example")
    fetcher = StaticFetcher()
    wallet = Wallet.from_node(node, verifier=make_verifier(fetcher))
    app = create_node_app(node, wallet=wallet)
    return dict(node=node, wallet=wallet, fetcher=fetcher, client=app.test_client())


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the page carries a CSRF token"
    return match.group(1)


def sign_in(client, secret: str, **kw):
    page = client.get("/dpo/sign-in", **kw)
    return client.post("/dpo/sign-in", data={"token": secret, "csrf": csrf_of(page.text)}, **kw)


def signed_in(env, scopes="issue:certification,issue:delegation,issue:approval,status:change", name="dpo"):
    secret = token(env["node"], scopes, name=name)
    assert sign_in(env["client"], secret).status_code == 302
    return secret


def status_of(node, credential_id):
    with node.session() as s:
        return s.get(db.IssuedCredential, credential_id).status


# ---- public landing page -----------------------------------------------------------------------------------

def test_landing_page_is_public_and_shows_who_we_are(env):
    node, client = env["node"], env["client"]
    issuing.issue(node, certification(node.did), issued_by="cli")      # opens the revocation list
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert node.did in page.text and "Fife Council" in page.text
    assert 'href="/.well-known/did.json"' in page.text and client.get("/.well-known/did.json").status_code == 200
    assert f"{node.did}#key-1" in page.text and node.config["keys"][0]["public"] in page.text
    assert "https://fife.example/status/1" in page.text and "https://fife.example/inbox" in page.text
    assert "cead verify" in page.text
    assert "keys/" not in page.text and "PRIVATE" not in page.text            # no key files, no key material
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"


# ---- sign-in ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/dpo/register", "/dpo/issue", "/dpo/register.csv", "/wallet/"])
def test_pages_redirect_to_sign_in_without_a_session(env, path):
    response = env["client"].get(path)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/dpo/sign-in" and unquote(location.query) == f"next={path}"


def test_a_wrong_or_revoked_token_is_refused(env):
    client, node = env["client"], env["node"]
    wrong = sign_in(client, "cead_not-a-real-token")
    assert wrong.status_code == 401 and "auth.invalid" in wrong.text and "Traceback" not in wrong.text
    assert client.get("/dpo/register").status_code == 302
    secret = token(node, "status:change", name="gone")
    tokens.revoke_token(node.engine, "gone")
    assert sign_in(client, secret).status_code == 401


def test_revoking_the_token_ends_the_session(env):
    signed_in(env, name="alice")
    assert env["client"].get("/dpo/register").status_code == 200
    tokens.revoke_token(env["node"].engine, "alice")
    assert env["client"].get("/dpo/register").status_code == 302


def test_sign_in_needs_the_form_token_and_stays_on_this_site(env):
    client, node = env["client"], env["node"]
    secret = token(node, "status:change")
    refused = client.post("/dpo/sign-in", data={"token": secret})
    assert refused.status_code == 403 and "web.csrf_invalid" in refused.text
    page = client.get("/dpo/sign-in")
    response = client.post("/dpo/sign-in", data={"token": secret, "csrf": csrf_of(page.text),
                                                 "next": "//evil.example/x"})
    assert response.status_code == 302 and response.headers["Location"] == "/signed-in"


def test_session_cookie_is_signed_httponly_strict_and_secure_over_https(env, tmp_path):
    client, node = env["client"], env["node"]
    secret = token(node, "status:change")
    page = client.get("/dpo/sign-in")
    response = client.post("/dpo/sign-in", data={"token": secret, "csrf": csrf_of(page.text)})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    assert secret not in cookie
    with db.session(node.engine) as s:
        assert s.exec(select(db.Token)).first().token_hash not in cookie
    https = create_node_app(node, wallet=env["wallet"]).test_client()
    response = sign_in(https, secret, base_url="https://fife.example")
    assert response.status_code == 302 and "; Secure" in response.headers["Set-Cookie"]
    assert stat.S_IMODE((node.home / SECRET_FILE).stat().st_mode) == 0o600


def test_sign_out_ends_the_session(env):
    client = env["client"]
    signed_in(env)
    page = client.get("/dpo/register")
    assert client.post("/dpo/sign-out", data={"csrf": csrf_of(page.text)}).status_code == 302
    assert client.get("/dpo/register").status_code == 302


# ---- register and status changes ---------------------------------------------------------------------------

def test_register_lists_what_was_issued_with_a_csv(env):
    node, client = env["node"], env["client"]
    issued = issuing.issue(node, certification(node.did), issued_by="cli")
    signed_in(env)
    page = client.get("/dpo/register")
    assert page.status_code == 200 and issued.id in page.text and "Organisation certification" in page.text
    assert CERT_SUBJECT["id"] in page.text and 'class="badge active"' in page.text
    # when it was issued, in words (the CSV keeps the ISO 8601 time, for machines)
    from schemas.words import moment_words
    row = next(r for r in issuing.register(node) if r.id == issued.id)
    assert moment_words(row.issued_at) in page.text and row.issued_at not in page.text
    assert page.headers["Cache-Control"] == "no-store"
    csv_file = client.get("/dpo/register.csv")
    assert csv_file.mimetype == "text/csv" and "attachment" in csv_file.headers["Content-Disposition"]
    assert issued.id in csv_file.text and csv_file.text.startswith("id,types,subject,subject_name,")
    # the certified organisation by its legal name (as the certification states it), above its DID
    assert f'<span class="cead-subject-name">{CERT_SUBJECT["legalName"]}</span>' in page.text
    assert f',{CERT_SUBJECT["id"]},{CERT_SUBJECT["legalName"]},' in csv_file.text


def test_the_register_names_an_approvals_recipients_when_the_node_knows_them(env, tmp_path):
    """An approval names its recipients by DID only; the register adds the names the node knows (names.json, the
    certifications held or received with requests) above them, and nothing for a DID it does not know."""
    from issuer.app import create_app
    node, client = env["node"], env["client"]
    known, unknown = "did:web:council.example", "did:web:stranger.example"
    (node.home / "names.json").write_text(json.dumps({known: "Example Council"}), encoding="utf-8")
    subject = approval_subject(node.did, known)
    subject["recipients"].append(unknown)
    subject["lawfulBases"].append({**subject["lawfulBases"][-1], "party": unknown})
    issued = issuing.issue(node, {"@context": ["https://www.w3.org/ns/credentials/v2", "https://w3id.org/cead/v1"],
                                  "type": ["VerifiableCredential", "DataSharingApprovalCredential"],
                                  "credentialSubject": subject}, issued_by="cli")
    row = next(r for r in issuing.register(node) if r.id == issued.id)
    assert row.subject == f"{known} {unknown}" and row.subject_name is None     # stored as the credential says
    signed_in(env)
    page = client.get("/dpo/register").text
    assert '<span class="cead-subject-name">Example Council</span>' in page and unknown in page
    assert "stranger" not in page.split('cead-subject-name">', 1)[1].split("</span>", 1)[0]
    # the issuer's app alone (no wallet mounted) shows the DIDs, without names and without failing
    alone = create_app(node).test_client()
    env_alone = dict(env, client=alone)
    signed_in(env_alone, name="dpo2")
    page = alone.get("/dpo/register")
    assert page.status_code == 200 and known in page.text and "Example Council" not in page.text


def test_revoke_through_the_page_needs_csrf_confirmation_and_scope(env):
    node, client = env["node"], env["client"]
    issued = issuing.issue(node, certification(node.did), issued_by="cli")
    signed_in(env, name="dpo")
    csrf = csrf_of(client.get("/dpo/register").text)
    form = {"credential_id": issued.id, "action": "revoke"}

    no_csrf = client.post("/dpo/status", data={**form, "confirm": "yes"})
    assert no_csrf.status_code == 403 and "web.csrf_invalid" in no_csrf.text
    forged = client.post("/dpo/status", data={**form, "confirm": "yes", "csrf": "x" + csrf})
    assert forged.status_code == 403 and status_of(node, issued.id) == "active"

    confirm = client.post("/dpo/status", data={**form, "csrf": csrf})
    assert confirm.status_code == 200 and "Revoke permanently" in confirm.text
    assert status_of(node, issued.id) == "active"

    done = client.post("/dpo/status", data={**form, "csrf": csrf, "confirm": "yes", "reason": "left the scheme"})
    assert done.status_code == 302 and status_of(node, issued.id) == "revoked"
    with node.session() as s:
        event = s.exec(select(db.StatusEvent)).one()
    assert (event.action, event.by, event.reason) == ("revoke", "dpo", "left the scheme")
    after = client.get("/dpo/register")
    assert f"{issued.id} is now revoked." in after.text and 'class="badge revoked"' in after.text

    again = client.post("/dpo/status", data={"credential_id": issued.id, "action": "reinstate", "csrf": csrf})
    assert again.status_code == 409 and "status.revoked_permanent" in again.text


def test_status_change_is_refused_without_the_scope(env):
    node, client = env["node"], env["client"]
    issued = issuing.issue(node, certification(node.did), issued_by="cli")
    signed_in(env, scopes="issue:certification", name="issuer-only")
    page = client.get("/dpo/register")
    assert "does not carry the" in page.text and "Revoke" not in page.text
    response = client.post("/dpo/status", data={"credential_id": issued.id, "action": "revoke", "confirm": "yes",
                                                "csrf": csrf_of(page.text)})
    assert response.status_code == 403 and "auth.scope" in response.text
    assert status_of(node, issued.id) == "active"


def test_suspend_and_reinstate_from_the_register(env):
    node, client = env["node"], env["client"]
    plain = issuing.issue(node, certification(node.did), issued_by="cli")
    suspendable = issuing.issue(node, certification(node.did), {"credentialStatus": {
        "type": "BitstringStatusListEntry", "statusPurpose": ["revocation", "suspension"]}}, issued_by="cli")
    signed_in(env)
    page = client.get("/dpo/register")
    assert page.text.count('value="suspend"') == 1                   # only the suspendable one offers it
    csrf = csrf_of(page.text)
    client.post("/dpo/status", data={"credential_id": suspendable.id, "action": "suspend", "csrf": csrf})
    assert status_of(node, suspendable.id) == "suspended" and status_of(node, plain.id) == "active"
    assert 'value="reinstate"' in client.get("/dpo/register").text
    client.post("/dpo/status", data={"credential_id": suspendable.id, "action": "reinstate", "csrf": csrf})
    assert status_of(node, suspendable.id) == "active"
    missing = client.post("/dpo/status", data={"credential_id": "urn:uuid:nope", "action": "revoke", "csrf": csrf})
    assert missing.status_code == 404 and "credential.not_found" in missing.text


# ---- issuing ------------------------------------------------------------------------------------------------

def _issue(client, **fields):
    csrf = csrf_of(client.get("/dpo/issue").text)
    return client.post("/dpo/issue", data={"csrf": csrf, **fields})


def test_issue_a_certification_from_a_yaml_subject(env):
    node, client = env["node"], env["client"]
    signed_in(env)
    subject = {**CERT_SUBJECT, "legalName": "NHS Fife <script>alert(1)</script>"}
    response = _issue(client, kind="certification", body=yaml.safe_dump(subject), format="eddsa-jcs-2022",
                      valid_until="2030-01-01T00:00:00Z")
    assert response.status_code == 201, response.text
    assert "<script>alert(1)" not in response.text and "&lt;script&gt;" in response.text
    href = unescape(re.search(r'href="(data:[^"]+)" download="([^"]+)"', response.text).group(1))
    media, _, data = href.partition(",")
    assert media == "data:application/vc;charset=utf-8"
    credential = json.loads(unquote(data))
    assert credential["issuer"] == node.did and credential["proof"]["cryptosuite"] == "eddsa-jcs-2022"
    assert credential["validUntil"] == "2030-01-01T00:00:00Z"
    assert credential["credentialSubject"]["issueDate"] == "2025-01-01"          # YAML dates stay strings
    row = issuing.register(node)[0]
    assert row.id == credential["id"] and row.issued_by == "dpo" and row.digest == credential_digest(credential)


def test_issue_a_jwt_with_suspension(env):
    signed_in(env)
    response = _issue(env["client"], kind="certification", body=json.dumps(certification(env["node"].did)),
                      format="vc+jwt-es256", suspendable="yes")
    assert response.status_code == 201, response.text
    assert "data:application/vc+jwt" in response.text
    row = issuing.register(env["node"])[0]
    assert row.format == "vc+jwt" and len(json.loads(row.status_entries)) == 2


def test_a_too_wide_delegation_names_the_dimension(tmp_path):
    """The DPO's node holds a real delegation from the council (the guard rail verifies it: served over HTTPS on
    127.0.0.1), and sub-delegates under it on the issuing page."""
    with served_nodes(tmp_path, "council", "dpo") as nodes:
        council, node = nodes["council"], nodes["dpo"]
        env = dict(node=node, client=create_node_app(node, wallet=Wallet.from_node(node)).test_client())
        client = env["client"]
        signed_in(env)
        parent = delegation(council, node.did, {"datasets": [MEALS]}, role="DataProtectionOfficer").credential

        def child(datasets):
            return {"id": "did:web:approver.example", "role": "InformationAssetOwner",
                    "onBehalfOf": council.did, "allowedActions": ["ApproveDisclosure"],
                    "parentDelegation": {"id": parent["id"], "digest": credential_digest(parent)},
                    "scope": {"datasets": datasets}}

        wide = _issue(client, kind="delegation", body=json.dumps(child([MEALS, PUPILS])),
                      delegation=json.dumps(parent), format="vc+jwt")
        assert wide.status_code == 422 and "scope.too_wide" in wide.text
        assert "<strong>datasets</strong>" in wide.text and PUPILS in wide.text
        assert json.dumps(child([MEALS, PUPILS])) in unescape(wide.text)               # the form keeps what was typed
        assert issuing.register(node) == []
        narrow = _issue(client, kind="delegation", body=json.dumps(child([MEALS])), delegation=json.dumps(parent))
        assert narrow.status_code == 201, narrow.text
        unknown = _issue(client, kind="delegation", body=json.dumps(child([MEALS])), delegation="urn:uuid:nope")
        assert unknown.status_code == 422 and "delegation.invalid" in unknown.text
        # the same delegation with its scope widened after signing is no delegation: nothing is signed under it
        forged = {**parent, "credentialSubject": {**parent["credentialSubject"], "scope": {"datasets": [MEALS, PUPILS]}}}
        refused = _issue(client, kind="delegation", body=json.dumps({**child([MEALS, PUPILS]), "parentDelegation": {
            "id": parent["id"], "digest": credential_digest(forged)}}), delegation=json.dumps(forged))
        assert refused.status_code == 422 and "delegation.invalid" in refused.text, refused.text
        assert len(issuing.register(node)) == 1                                          # the narrow one only


@pytest.mark.parametrize("fields, status, code", [
    (dict(kind="certification", body="[1, 2]"), 400, "web.form_invalid"),
    (dict(kind="certification", body="a: [unclosed"), 400, "web.form_invalid"),
    (dict(kind="certification", body="a: &x [1, 2]\nb: *x\n"), 400, "web.form_invalid"),
    (dict(kind="certification", body="[" * 50_000), 400, "web.form_invalid"),
    (dict(kind="certification", body="a: " + "[" * 50_000), 400, "web.form_invalid"),
    (dict(kind="certification", body=""), 400, "web.form_invalid"),
    (dict(kind="passport", body="{}"), 400, "web.form_invalid"),
    (dict(kind="certification", body="{}", format="rsa"), 400, "web.form_invalid"),
    (dict(kind="certification", body=json.dumps({"id": "did:web:x.example"})), 422, "schema.invalid"),
    (dict(kind="approval", body=json.dumps(certification("did:web:fife.example"))), 422, "credential.type_unknown"),
    (dict(kind="certification", body=json.dumps({**certification("did:web:fife.example"),
                                                 "issuer": "did:web:evil.example"})), 422, "credential.issuer_mismatch"),
])
def test_bad_issue_input_is_a_friendly_page(env, fields, status, code):
    signed_in(env)
    response = _issue(env["client"], format=fields.pop("format", "eddsa-rdfc-2022"), **fields)
    assert response.status_code == status and code in response.text, response.text[:2000]
    assert response.mimetype == "text/html" and "Traceback" not in response.text
    assert issuing.register(env["node"]) == []


def test_issuing_needs_the_scope_for_the_type(env):
    signed_in(env, scopes="issue:approval", name="approver")
    response = _issue(env["client"], kind="certification", body=json.dumps(CERT_SUBJECT))
    assert response.status_code == 403 and "auth.scope" in response.text
    assert issuing.register(env["node"]) == []


# ---- wallet pages ------------------------------------------------------------------------------------------

def _hold(env):
    """An approval expiring in 10 days and a certification that the issuer later revokes."""
    issuer, node = identity(), env["node"]
    lists = StatusListFixture(issuer, env["fetcher"])
    approval = vc(issuer, "DataSharingApprovalCredential", approval_subject(issuer.did, node.did),
                  valid_for=timedelta(days=11))
    cert = vc(issuer, "OrganisationCertificationCredential", certification_subject(node.did, CYBER_ESSENTIALS),
              status=lists.entry(7))
    records = [env["wallet"].import_credential(c) for c in (approval, cert)]
    assert all(r.ok for r in records), [r.problems for r in records]
    lists.revoke(7)
    return issuer, records[0].record, records[1].record


def test_wallet_holdings_show_credentials_and_warnings(env):
    client = env["client"]
    issuer, approval, cert = _hold(env)
    signed_in(env)
    page = client.get("/wallet/")
    assert page.status_code == 200
    assert "DataSharingApprovalCredential" in page.text and "OrganisationCertificationCredential" in page.text
    assert issuer.did in page.text and "https://data.example.gov.scot/dataset/school-meals" in page.text
    assert 'data-code="wallet.expiring"' in page.text and 'data-code="wallet.status_changed"' not in page.text
    checked = client.post("/wallet/check-status", data={"csrf": csrf_of(page.text)})
    assert checked.status_code == 302
    page = client.get("/wallet/")
    assert 'data-code="wallet.status_changed"' in page.text and "Now revoked" in page.text
    only = client.get("/wallet/?type=OrganisationCertificationCredential")
    assert "DataSharingApprovalCredential</td>" not in only.text and cert.id in only.text
    detail = client.get(f"/wallet/{cert.id}")
    assert detail.status_code == 200 and 'data-code="wallet.status_changed"' in detail.text
    assert cert.credential_id in detail.text
    raw = client.get(f"/wallet/{approval.id}/credential")
    assert raw.mimetype == "application/vc+jwt" and raw.text == approval.raw
    missing = client.get("/wallet/nothing-here")
    assert missing.status_code == 404 and "wallet.not_found" in missing.text and missing.mimetype == "text/html"


def _warnings_of(page: str) -> dict[str, str]:
    """The warnings on a wallet page, by code: their text as read (tags dropped), the issuer's DID apart."""
    found = re.findall(r'class="[^"]*warning[^"]*" data-code="([^"]+)">(.*?)</(?:div|p)>', page, re.S)
    return {code: unescape(re.sub(r"<[^>]+>", " ", text)) for code, text in found}


def test_wallet_warnings_name_the_kind_and_the_issuer_in_words_and_an_ended_approval_is_warned(env):
    """The wallet's warnings in the words the pages use, dates in words, and an approval whose notAfter has passed
    warned as expired, as its badge says. In the list, whose row names the kind and the sender already, a warning
    says what happened; on the credential's own page it says it whole: the kind of credential by name (not its
    type code), the issuer by the name the node knows (its DID beside it, in the small monospace of identifiers)."""
    from test_wallet_support import _ts
    client, node = env["client"], env["node"]
    issuer, approval, cert = _hold(env)
    (node.home / "names.json").write_text(json.dumps({issuer.did: "Lothian Health Board"}))
    subject = approval_subject(issuer.did, node.did)
    subject["notAfter"] = _ts(now() - timedelta(days=2))            # its period is over; its validUntil is not
    ended = env["wallet"].import_credential(vc(issuer, "DataSharingApprovalCredential", subject,
                                               valid_for=timedelta(days=3650)))
    assert ended.ok, ended.problems
    signed_in(env)
    page = client.get("/wallet/")
    assert page.status_code == 200
    client.post("/wallet/check-status", data={"csrf": csrf_of(page.text)})
    page = client.get("/wallet/").text
    warned = _warnings_of(page)
    assert set(warned) == {"wallet.expiring", "wallet.expired", "wallet.status_changed"}, warned
    ends = moment_words(approval.valid_until)
    assert warned["wallet.expiring"].strip() == f"⚠ Expires on {ends}, within 30 days.", warned
    assert warned["wallet.expired"].strip().startswith("⚠ Expired on "), warned
    assert warned["wallet.expired"].strip().endswith("(the end of the period it approves)."), warned
    assert warned["wallet.status_changed"].strip() == "⚠ Now revoked (it was valid when it arrived).", warned
    for record in (approval, cert, ended.record):                   # each row names its sender and its kind
        at = page.index(f'/wallet/{record.id}"')
        row = page[page.rindex("<tr>", 0, at):at]
        assert re.search(r'data-heading="From">Lothian Health Board<', row), row
        assert re.search(r'data-heading="Type">(Data-sharing approval|Organisation certification)<', row), row
        assert "Credential<" not in row and "T00:" not in row                        # no type codes, no ISO times
    row = page[page.rindex("<tr>", 0, page.index(f'/wallet/{ended.record.id}"')):page.index(f'/wallet/{ended.record.id}"')]
    assert ">expired<" in row                                          # the badge says the same
    wholes = {"wallet.expiring": f"Data-sharing approval from Lothian Health Board expires on {ends}, within 30 days.",
              "wallet.expired": "Data-sharing approval from Lothian Health Board expired on ",
              "wallet.status_changed": "Organisation certification from Lothian Health Board is now revoked (it was "
                                       "valid when it arrived)."}
    for record, code in ((approval, "wallet.expiring"), (ended.record, "wallet.expired"), (cert, "wallet.status_changed")):
        detail = client.get(f"/wallet/{record.id}").text
        text = _warnings_of(detail)[code]
        assert wholes[code] in text, text
        assert "Credential" not in text and "T00:" not in text, text     # no type codes, no ISO times
        assert text.count(issuer.did) == 1, text                         # the DID once, beside the name
        assert re.findall(r'<span class="cead-id cead-id-beside">([^<]+)</span>', detail) == [issuer.did]
    assert "(the end of the period it approves)." in _warnings_of(client.get(f"/wallet/{ended.record.id}").text)[
        "wallet.expired"]


def test_summary_qr_leads_to_the_verification_page(env):
    client = env["client"]
    _, approval, cert = _hold(env)
    signed_in(env)
    summary = client.get(f"/wallet/{approval.id}/summary")
    verify_url = unescape(re.search(r'class="mono" href="([^"]+)"', summary.text).group(1))
    assert verify_url.startswith("https://fife.example/verify/")
    png = client.get(f"/wallet/{approval.id}/summary.png")
    assert png.mimetype == "image/png"
    assert [b.text for b in zxingcpp.read_barcodes(Image.open(io.BytesIO(png.data)))] == [verify_url]
    svg = client.get(f"/wallet/{approval.id}/summary.svg")
    assert svg.mimetype == "image/svg+xml" and f'href="{verify_url}"' in unescape(svg.text)

    public = create_node_app(env["node"], wallet=env["wallet"]).test_client()   # the scanner: no session
    path = urlsplit(verify_url).path
    page = public.get(path)
    assert page.status_code == 200 and 'badge ok">valid now' in page.text and "Data-sharing approval" in page.text
    assert "What was verified" in page.text and "Every condition of the approval" in page.text
    assert public.get(path + "/credential").text == approval.raw
    tampered = public.get(path[:-2] + ("AA" if not path.endswith("AA") else "BB"))
    assert tampered.status_code == 404 and "web.link_invalid" in tampered.text

    env["wallet"].check_status()
    revoked = public.get(urlsplit(unescape(re.search(
        r'class="mono" href="([^"]+)"', client.get(f"/wallet/{cert.id}/summary").text).group(1))).path)
    assert "REVOKED" in revoked.text and "status.revoked" in revoked.text and 'id="status-banner" role="alert"' in revoked.text
    env["wallet"].delete(approval.id)
    assert public.get(path).status_code == 404


def test_an_insecure_web_secret_is_refused(env):
    from issuer.app import create_app
    from verifier.results import CeadError
    (env["node"].home / SECRET_FILE).chmod(0o644)
    with pytest.raises(CeadError) as err:
        create_app(env["node"])
    assert err.value.code == "web.secret_insecure"


def test_the_register_names_who_issued_by_their_full_name(env):
    """A credential issued by a staff account shows who issued it by the account's full name, not its username;
    a token's name, or the command line, as recorded."""
    from issuer import staff
    node, client = env["node"], env["client"]
    staff.create_account(node.engine, "ian", "Ian Owner", "iao", "a long enough passphrase 1")
    issuing.issue(node, certification(node.did), issued_by="ian")
    issuing.issue(node, certification(node.did, id="did:web:other.example"), issued_by="cli")
    signed_in(env)
    page = client.get("/dpo/register").text
    assert '<td data-heading="By">Ian Owner</td>' in page and '<td data-heading="By">cli</td>' in page


# ---- staff roles: who may change which credential's status; the register's CSV ------------------------------------

PASSWORD = "correct horse battery staple"
SUSPENDABLE = {"credentialStatus": {"type": "BitstringStatusListEntry", "statusPurpose": ["revocation", "suspension"]}}


def _approval(node):
    return {"@context": ["https://www.w3.org/ns/credentials/v2", "https://w3id.org/cead/v1"],
            "type": ["VerifiableCredential", "DataSharingApprovalCredential"],
            "credentialSubject": approval_subject(node.did, "did:web:council.example")}


def _staff(env, username: str, role: str):
    staff.migrate(env["node"].engine)
    staff.create_account(env["node"].engine, username, username.title(), role, PASSWORD)
    client = env["client"]
    page = client.get("/dpo/sign-in")
    assert client.post("/dpo/sign-in", data={"username": username, "password": PASSWORD,
                                             "csrf": csrf_of(page.text)}).status_code == 302
    return client


def test_an_iao_changes_approvals_but_not_the_dpo_s_certifications_or_delegations(env):
    """The role table: an IAO suspends, reinstates and revokes approvals; delegations and certifications are the
    DPO's. ``/dpo/status`` took any credential the node issued from anyone with ``status:change``, so an IAO could
    reinstate a delegation (its own) or a standing approval's template the DPO had suspended, or revoke the
    organisation's certification. The API's tokens follow the same rule."""
    node = env["node"]
    cert = issuing.issue(node, certification(node.did), SUSPENDABLE, issued_by="cli")
    approval = issuing.issue(node, _approval(node), SUSPENDABLE, issued_by="cli")
    issuing.change_status(node, cert.id, "suspend", by="dpo")
    client = _staff(env, "ivo", "iao")
    register = client.get("/dpo/register")
    csrf = csrf_of(register.text)
    assert "for the Data Protection Officer" in register.text           # no buttons it may not use
    for action in ("reinstate", "revoke"):
        refused = client.post("/dpo/status", data={"credential_id": cert.id, "action": action, "confirm": "yes",
                                                   "csrf": csrf})
        assert refused.status_code == 403 and "auth.scope" in refused.text and "issue:certification" in refused.text
    assert status_of(node, cert.id) == "suspended"
    done = client.post("/dpo/status", data={"credential_id": approval.id, "action": "suspend", "csrf": csrf})
    assert done.status_code == 302 and status_of(node, approval.id) == "suspended"

    api = env["client"]
    secret = token(node, "status:change", name="ops")
    body = {"credentialId": cert.id, "credentialStatus": {"type": "BitstringStatusListEntry",
                                                           "statusPurpose": "suspension"}, "status": False}
    answer = api.post("/credentials/status", json=body, headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 403 and answer.json["error"]["code"] == "auth.scope"
    assert status_of(node, cert.id) == "suspended"
    answer = api.post("/credentials/status", json={**body, "credentialId": approval.id},
                      headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 200 and status_of(node, approval.id) == "active"
    dpo = token(node, "status:change,issue:certification", name="dpo-token")
    answer = api.post("/credentials/status", json=body, headers={"Authorization": f"Bearer {dpo}"})
    assert answer.status_code == 200 and status_of(node, cert.id) == "active"


@pytest.mark.parametrize("lead", ["=", "+", "-", "@", "\t", "\r"])
def test_the_register_csv_neutralises_every_formula_lead(env, lead):
    """A spreadsheet runs a cell that starts with =, +, -, @, a tab or a carriage return (OWASP's list, which
    ``cead audit``'s CSV already followed); the register's CSV missed the tab and the carriage return, and a
    certification's legalName is whatever its request said."""
    import csv
    node, client = env["node"], env["client"]
    issued = issuing.issue(node, certification(node.did, legalName=f"{lead}HYPERLINK(\"https://x.example\")"),
                           issued_by="cli")
    staff_client = _staff(env, "dee", "dpo")
    rows = list(csv.DictReader(io.StringIO(staff_client.get("/dpo/register.csv").text)))
    name = next(r["subject_name"] for r in rows if r["id"] == issued.id)
    assert name == "'" + lead + 'HYPERLINK("https://x.example")'


def test_a_status_badge_says_in_words_where_a_credential_stands():
    """``schemas.words.status_words``: what every status badge says (register, wallet, desk). Revoked is final
    whatever else holds; past the end of its time a credential is expired, suspended or not; no status list, or an
    active one, is in force."""
    from datetime import datetime, timezone
    from schemas.words import in_force_window, status_words
    now = datetime(2026, 12, 4, 12, tzinfo=timezone.utc)
    assert status_words("active", now=now) == "valid" and status_words("none", now=now) == "valid"
    assert status_words("active", now=now, in_force="approved") == "approved"
    assert status_words("suspended", now=now) == "suspended" and status_words("unknown", now=now) == "status not known"
    assert status_words("revoked", valid_until="2025-01-01T00:00:00Z", now=now) == "revoked"
    assert status_words("suspended", valid_until="2025-12-31T23:59:59Z", now=now) == "expired"
    assert status_words("active", valid_until="2026-12-04T11:59:59Z", now=now) == "expired"
    assert status_words("active", valid_from="2027-01-01T00:00:00Z", now=now) == "not yet in force"
    # an approval's notBefore/notAfter (a delegation's scope) narrow its validity
    starts, ends = in_force_window({"validFrom": "2026-01-01T00:00:00Z", "credentialSubject": {
        "notBefore": "2026-02-01T00:00:00Z", "notAfter": "2026-06-30T23:59:59Z"}})
    assert (starts.isoformat(), ends.isoformat()) == ("2026-02-01T00:00:00+00:00", "2026-06-30T23:59:59+00:00")
    assert in_force_window({"credentialSubject": {"scope": {"notAfter": "2027-01-01T00:00:00Z"}}})[1].year == 2027
    assert in_force_window({"credentialSubject": {"notAfter": 5}}) == (None, None)     # not a time: no bound


def test_the_register_says_an_approval_past_its_not_after_has_expired(env):
    """An approval whose notAfter has passed is in the register as active (no status list says "expired"); the
    register's badge and its count say expired, and its Valid until is the notAfter the approval states."""
    node, client = env["node"], env["client"]
    subject = {**approval_subject(node.did, "did:web:council.example"),
               "notBefore": "2025-01-01T00:00:00Z", "notAfter": "2025-12-31T23:59:59Z"}
    issued = issuing.issue(node, {"@context": ["https://www.w3.org/ns/credentials/v2", "https://w3id.org/cead/v1"],
                                  "type": ["VerifiableCredential", "DataSharingApprovalCredential"],
                                  "credentialSubject": subject}, issued_by="cli")
    assert status_of(node, issued.id) == "active"
    signed_in(env)
    page = client.get("/dpo/register").text
    row = page.split(issued.id, 1)[1].split("</tr>", 1)[0]
    assert '<span class="badge revoked">expired</span>' in row and "31 December 2025" in row
    assert "1 issued: 1 expired." in " ".join(page.split())          # a count of none is left out
    assert "0 active" not in page and "0 revoked" not in page
