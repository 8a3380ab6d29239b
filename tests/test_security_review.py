"""Findings of the security review (docs/security.md), each kept fixed by a test: who may change which credential's
status, which files the request wizard may name, and where the node sends what another party asked it to."""
from __future__ import annotations

import json

import pytest

from issuer import issuing, staff

from issuer_fixtures import certification, token
from test_pages import approval_subject, csrf_of, env, status_of  # noqa: F401 (the pages' node)

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


def test_an_iao_changes_approvals_but_not_the_dpo_s_certifications_or_delegations(env):  # noqa: F811
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


def test_the_wizard_keeps_a_document_by_its_digest_never_by_a_path(tmp_path):
    """A document attached on an earlier try comes back as its digest (``agreement_pin``), the name of a file in
    ``HOME/documents``. The page took any text there as a path: ``../web-secret`` or ``/etc/hostname`` showed as
    "Attached already" with its size (a file probe for any analyst) and would have been pinned into the request."""
    import io

    from issuer import catalogue
    from issuer_fixtures import make_node
    from test_wizard import CATALOGUE, _form, _text
    from wallet.app import create_node_app
    from wallet.store import Wallet
    node = make_node(tmp_path / "h", public_url="https://example-council.example")
    (tmp_path / "catalogue.ttl").write_text(CATALOGUE)
    catalogue.import_catalogue(node, str(tmp_path / "catalogue.ttl"))
    client = _staff({"node": node, "client": create_node_app(node, wallet=Wallet.from_node(node)).test_client()},
                    "ana", "analyst")
    kept = _form(client, action="columns", agreement_file=(io.BytesIO(b"Our agreement."), "dsa.docx"))
    digest = kept.text.split('name="agreement_pin" value="', 1)[1].split('"', 1)[0]
    again = _form(client, action="columns", agreement_file=None, agreement_pin=digest, agreement_title="dsa.docx")
    assert "Attached already: dsa.docx (14 bytes)" in _text(again.text)         # a real pin still works
    for probe in ("../web-secret", str(node.home / "web-secret"), "../config.yaml", "/etc/hostname"):
        page = _form(client, action="columns", agreement_file=None, agreement_pin=probe, agreement_title="x")
        assert page.status_code == 200 and "Attached already" not in _text(page.text), probe
        assert probe not in page.text


@pytest.mark.parametrize("lead", ["=", "+", "-", "@", "\t", "\r"])
def test_the_register_csv_neutralises_every_formula_lead(env, lead):  # noqa: F811
    """A spreadsheet runs a cell that starts with =, +, -, @, a tab or a carriage return (OWASP's list, which
    ``cead audit``'s CSV already followed); the register's CSV missed the tab and the carriage return, and a
    certification's legalName is whatever its request said."""
    import csv
    import io
    node, client = env["node"], env["client"]
    issued = issuing.issue(node, certification(node.did, legalName=f"{lead}HYPERLINK(\"https://x.example\")"),
                           issued_by="cli")
    staff_client = _staff(env, "dee", "dpo")
    rows = list(csv.DictReader(io.StringIO(staff_client.get("/dpo/register.csv").text)))
    name = next(r["subject_name"] for r in rows if r["id"] == issued.id)
    assert name == "'" + lead + 'HYPERLINK("https://x.example")'


def test_names_and_release_ids_admit_no_trailing_newline():
    """`$` matches before a final newline: a standing approval's name, a provider series name or a release id
    with one would pass as valid and reach file names and URLs."""
    from wallet.provider.config import NAME as SERIES
    from wallet.provider.sources import RELEASE_ID
    from wallet.standing import NAME
    for pattern, good in ((NAME, "school-meals"), (SERIES, "homelessness-monthly"), (RELEASE_ID, "2026-01")):
        assert pattern.match(good) and not pattern.match(good + "\n")
