"""A delegation may name its delegate (``credentialSubject.name``: "Jane Smith", "Head of Housing Analysis"), and the
pages then show "Jane Smith (Information Asset Owner for Fife Council)" instead of the delegate node's address, but
only from a delegation that verifies and whose issuer could name the delegate (the controller it acts for, or the
delegate of its verified parent). A tampered delegation, a delegation from anyone else, a revoked one or one whose
parent is not held names no one."""
from __future__ import annotations

import copy
import json
import re
from datetime import timedelta
from html import unescape
from urllib.parse import unquote

import pytest

from issuer import issuing
from schemas import models
from schemas.models import credential_digest
from verifier.http import Fetcher
from wallet.app import create_node_app
from wallet.names import Directory
from wallet.store import Wallet, jwt_payload, make_verifier

from issuer_fixtures import make_node, token
from test_issuer_cli_usability import DELEGATE, EXAMPLES, police, run
from test_pages import _issue, sign_in, signed_in
from test_sharing import DATASET, _credential, send, world  # noqa: F401 (the three-node HTTPS world)
from test_wallet_support import StaticFetcher, approval_subject, identity, vc

JANE = "Jane Smith (Information Asset Owner for Fife Council)"


def named(w, issuer, delegate, name="Jane Smith", *, parent=None, fmt="jwt", on_behalf_of=None, **kw):
    """A delegation from ``issuer`` to ``delegate`` that names them, for the world's controller."""
    subject = models.DelegatedAuthority.model_validate({
        "id": delegate.did, "name": name, "role": "InformationAssetOwner",
        "onBehalfOf": on_behalf_of or w.controller.did, "allowedActions": ["ApproveDisclosure", "SubDelegate"],
        "scope": w.scope(), **({"parentDelegation": w.ref(parent)} if parent is not None else {})})
    return w.issue(issuer, subject, fmt=fmt, **kw)


def verifier_for(w):
    return make_verifier(Fetcher(allow_private=True, ca_bundle=w.ca_bundle))


def directory(w, *credentials) -> Directory:
    d = Directory({w.controller.did: "Fife Council"})
    d.learn_delegations(credentials, verifier_for(w))
    return d


# ---- the credential -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["jwt", "ldp"])
def test_a_named_delegation_signs_and_verifies_in_both_formats(w, fmt):
    """vc+jwt, and Data Integrity eddsa-rdfc-2022: ``name`` is a term of the VC 2.0 context (schema.org/name), so
    the RDF canonicalisation signs it (no undefined term), and the delegation's JSON Schema admits it."""
    cred = named(w, w.controller, w.iao, fmt=fmt)
    doc = jwt_payload(cred) if fmt == "jwt" else cred
    assert doc["credentialSubject"]["name"] == "Jane Smith"
    assert fmt == "jwt" or cred["proof"]["cryptosuite"] == "eddsa-rdfc-2022"
    result = verifier_for(w).verify_credential(cred)
    assert result.verified, [(p.code, p.message) for p in result.problems]
    if fmt == "ldp":        # the name is in what was signed: changing it breaks the proof
        forged = copy.deepcopy(cred)
        forged["credentialSubject"]["name"] = "Someone Else"
        assert "proof.signature_invalid" in {p.code for p in verifier_for(w).verify_credential(forged).problems}


def test_the_name_is_bounded_and_an_unnamed_delegation_stays_valid(w):
    base = {"id": w.iao.did, "role": "InformationAssetOwner", "onBehalfOf": w.controller.did,
            "allowedActions": ["ApproveDisclosure"], "scope": {"datasets": ["https://data.fife.example/x"]}}
    assert models.DelegatedAuthority.model_validate(base).name is None
    for bad in ("", " Jane", "Jane\nSmith", "x" * 201):
        with pytest.raises(ValueError):
            models.DelegatedAuthority.model_validate({**base, "name": bad})
    assert models.DelegatedAuthority.model_validate({**base, "name": "x" * 200}).name == "x" * 200
    schema = json.loads((EXAMPLES.parent / "jsonschema" / "delegated-authority.json").read_text())
    name = schema["$defs"]["DelegatedAuthority"]["properties"]["name"]["anyOf"][0]
    assert name["maxLength"] == 200 and name["type"] == "string"
    # the JSON Schema refuses what the model refuses, in a signed credential too (the verifier checks it)
    long = vc(identity(), "DelegatedAuthorityCredential", {**base, "name": "x" * 201})
    doc = jwt_payload(long)
    doc["@context"] = ["https://www.w3.org/ns/credentials/v2", "https://w3id.org/cead/v1"]
    doc["credentialSchema"] = {"id": models.DelegatedAuthority.schema_id(), "type": "JsonSchema"}
    problems = make_verifier(StaticFetcher()).check_document(doc)
    assert any(p.code == "credential.schema_invalid" for p in problems), problems
    unnamed = w.delegation(w.controller, w.iao)           # the world's own delegations have no name
    assert verifier_for(w).verify_credential(unnamed).verified
    assert directory(w, unnamed).name(w.iao.did).label == w.iao.did


# ---- whose names the Directory believes -----------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["jwt", "ldp"])
def test_the_directory_names_the_delegate_of_a_verified_delegation(w, fmt):
    cred = named(w, w.controller, w.iao, fmt=fmt)
    found = directory(w, cred).name(w.iao.did)
    assert found.label == JANE and found.iri == w.iao.did        # the DID stays behind the name


def test_a_sub_delegation_names_its_delegate_through_its_verified_parent(w):
    first = named(w, w.controller, w.iao)
    second = named(w, w.iao, w.deputy, "Head of Housing Analysis", parent=first)
    d = directory(w, first, second)
    assert d.name(w.deputy.did).label == "Head of Housing Analysis (Information Asset Owner for Fife Council)"
    # without its parent there is no telling the issuer could delegate at all
    assert directory(w, second).name(w.deputy.did).label == w.deputy.did
    # a parent that names someone else as delegate than the sub-delegation's issuer
    other = named(w, w.controller, w.stranger)
    wrong = named(w, w.iao, w.deputy, "Head of Housing Analysis", parent=other)
    assert directory(w, other, wrong).name(w.deputy.did).label == w.deputy.did


def test_a_tampered_delegation_names_no_one(w):
    cred = named(w, w.controller, w.iao, fmt="ldp")
    forged = copy.deepcopy(cred)
    forged["credentialSubject"]["name"] = "Chief Executive"
    assert directory(w, forged).name(w.iao.did).label == w.iao.did
    header, payload, signature = named(w, w.controller, w.iao).split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    assert directory(w, f"{header}.{payload}.{flipped}").name(w.iao.did).label == w.iao.did


def test_a_delegation_from_anyone_but_the_controller_names_no_one(w):
    """Signed properly, but by a stranger claiming to act for the controller: it verifies as a credential, and
    still names no one."""
    rogue = named(w, w.stranger, w.iao, "Chief Executive")
    assert verifier_for(w).verify_credential(rogue).verified
    assert directory(w, rogue).name(w.iao.did).label == w.iao.did
    # a stranger delegating for itself is believed, and says so: the label names whom it acts for
    own = named(w, w.stranger, w.iao, "Chief Executive", on_behalf_of=w.stranger.did)
    assert directory(w, own).name(w.iao.did).label == f"Chief Executive (Information Asset Owner for {w.stranger.did})"
    # and it never hides the controller's own word: both are shown, the controller known by name first; for one
    # controller, its newest delegation speaks
    older = named(w, w.controller, w.iao, "J. Smith", valid_from=w.now - timedelta(days=10))
    both = directory(w, own, older, named(w, w.controller, w.iao)).name(w.iao.did).label
    assert both == f"{JANE}; Chief Executive (Information Asset Owner for {w.stranger.did})"


def test_a_revoked_delegation_names_no_one_and_no_verifier_believes_nothing(w):
    cred = named(w, w.controller, w.iao)
    w.status.set(jwt_payload(cred), "revocation")
    assert directory(w, cred).name(w.iao.did).label == w.iao.did
    d = Directory({})
    d.learn_delegations([named(w, w.controller, w.iao)], None)
    assert d.name(w.iao.did).label == w.iao.did


# ---- the pages ----------------------------------------------------------------------------------------------------

def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def test_the_analysts_approval_summary_shows_the_approver_by_name(tmp_path):
    """The analyst's node holds an approval signed by the IAO's node and the chain it pins (controller -> DPO ->
    IAO, each naming its delegate): the summary says who approved by name, the DID behind the disclosure."""
    node = make_node(tmp_path / "h", public_url="https://analysts.example")
    wallet = Wallet.from_node(node, verifier=make_verifier(StaticFetcher()))
    client = create_node_app(node, wallet=wallet).test_client()
    controller, dpo, iao = identity(), identity(), identity()
    (node.home / "names.json").write_text(json.dumps({controller.did: "NHS Fife"}))
    first = vc(controller, "DelegatedAuthorityCredential", {
        "id": dpo.did, "name": "Alex Morgan", "role": "DataProtectionOfficer", "onBehalfOf": controller.did,
        "allowedActions": ["ApproveDisclosure", "SubDelegate"],
        "scope": {"datasets": ["https://data.fife.example/meals"], "maxDelegationDepth": 2}})
    second = vc(dpo, "DelegatedAuthorityCredential", {
        "id": iao.did, "name": "Jane Smith", "role": "InformationAssetOwner", "onBehalfOf": controller.did,
        "parentDelegation": {"id": jwt_payload(first)["id"], "digest": credential_digest(first)},
        "allowedActions": ["ApproveDisclosure"], "scope": {"datasets": ["https://data.fife.example/meals"],
                                                            "maxDelegationDepth": 1}})
    approval = vc(iao, "DataSharingApprovalCredential", approval_subject(
        controller.did, node.did, datasets=["https://data.fife.example/meals"], chain=[first, second]))
    for c in (first, second):
        assert wallet.import_credential(c).ok
    held = wallet.import_credential(approval)
    assert held.ok, held.problems
    assert sign_in(client, token(node, "issue:approval", name="analyst")).status_code == 302
    page = client.get(f"/wallet/{held.record.id}/summary")
    assert page.status_code == 200
    text = _text(page.text)
    jane = "Jane Smith (Information Asset Owner for NHS Fife)"
    assert f"Data-sharing approval from {jane}" in text
    assert f"Issued by {jane} under a chain of 2 delegations from the controller, NHS Fife" in text
    # each delegation line says whom it delegates to, their role and for whom once (the name already says both)
    alex = "Alex Morgan (Data Protection Officer for NHS Fife)"
    assert f"Delegation 1 (passed) : NHS Fife delegated approval authority to {alex}: signature checked" in text, text
    assert f"Delegation 2 (passed) : {alex} delegated approval authority to {jane}: signature checked" in text, text
    assert " as Information Asset Owner on behalf of" not in text and " as Data Protection Officer" not in text
    issued_by = text.split("Issued by", 2)[-1]
    assert issued_by.startswith(f" {jane} Identifiers {iao.did}")           # the DID behind the disclosure
    assert "the organisation at" not in text and "Other field" not in text


# ---- giving the name: the DPO's page and the command line ----------------------------------------------------------

def test_the_dpo_names_the_delegate_on_the_issue_page(tmp_path):
    node = make_node(tmp_path / "h", public_url="https://fife.example")
    client = create_node_app(node, wallet=Wallet.from_node(node, verifier=make_verifier(StaticFetcher()))
                             ).test_client()
    env = {"node": node, "client": client}
    signed_in(env)
    assert 'name="delegate_name"' in client.get("/dpo/issue?kind=delegation").text
    subject = {"id": DELEGATE, "role": "InformationAssetOwner", "onBehalfOf": node.did,
               "allowedActions": ["ApproveDisclosure"], "scope": {"datasets": ["https://data.fife.example/meals"]}}
    response = _issue(client, kind="delegation", body=json.dumps(subject), delegate_name="  Jane Smith ",
                      format="eddsa-rdfc-2022")
    assert response.status_code == 201, _text(response.text)
    href = unescape(re.search(r'href="(data:[^"]+)" download=', response.text).group(1))
    credential = json.loads(unquote(href.partition(",")[2]))
    assert credential["credentialSubject"]["name"] == "Jane Smith"
    assert issuing.register(node)[0].id == credential["id"]
    # the DPO's register says who it was issued to: the name the delegation states, above the delegate's DID
    assert issuing.register(node)[0].subject_name == "Jane Smith"
    register = client.get("/dpo/register").text
    assert '<span class="cead-subject-name">Jane Smith</span>' in register and DELEGATE in register
    refused = _issue(client, kind="certification", body=json.dumps({"id": DELEGATE}), delegate_name="Jane Smith")
    assert refused.status_code == 400 and "Delegate" in _text(refused.text)
    assert len(issuing.register(node)) == 1


def test_the_command_line_names_the_delegate(tmp_path):
    home = police(tmp_path)
    out = tmp_path / "d.json"
    result = run("issue", "delegation", "--home", home, "--file", EXAMPLES / "police-delegation.json",
                 "--subject", DELEGATE, "--delegate-name", "Jane Smith", "--out", out)
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["credentialSubject"]["name"] == "Jane Smith"
    assert f"{DELEGATE} (Jane Smith)" in run("issued", "list", "--home", home).output   # the register names them
    refused = run("issue", "approval", "--home", home, "--file", EXAMPLES / "police-approval.json",
                  "--delegate-name", "Jane Smith")
    assert refused.exit_code == 1 and "--delegate-name" in refused.stderr


def test_the_iao_decision_page_names_who_delegated(world):  # noqa: F811
    """The IAO's node holds a sub-delegation from the controller's DPO (a person, did:key) and the delegation to
    the DPO it rests on, which names them: the decision page says who delegated by name, the DID behind the
    disclosure."""
    w = world
    controller, node, wallet = w["controller"]["node"], w["iao"]["node"], w["iao"]["wallet"]
    dpo = identity()
    first = issuing.issue(controller, _credential("DelegatedAuthorityCredential", {
        "id": dpo.did, "name": "Alex Morgan", "role": "DataProtectionOfficer", "onBehalfOf": controller.did,
        "allowedActions": ["ApproveDisclosure", "SubDelegate"], "scope": {"datasets": [DATASET],
                                                                           "maxDelegationDepth": 1}}))
    second = vc(dpo, "DelegatedAuthorityCredential", {
        "id": node.did, "name": "Jane Smith", "role": "InformationAssetOwner", "onBehalfOf": controller.did,
        "parentDelegation": {"id": first.id, "digest": credential_digest(first.credential)},
        "allowedActions": ["ApproveDisclosure"], "scope": {"datasets": [DATASET], "maxDelegationDepth": 0}})
    for c in (first.credential, second):
        assert wallet.import_credential(c).ok
    (node.home / "names.json").write_text(json.dumps({controller.did: "Fife Council"}))
    asked = send(w)
    client = create_node_app(node, wallet=wallet).test_client()
    assert sign_in(client, token(node, "issue:approval", name="iao")).status_code == 302
    page = client.get(f"/wallet/requests/{asked['id']}?delegation={jwt_payload(second)['id']}")
    assert page.status_code == 200
    text = _text(page.text)
    assert "delegated by Alex Morgan (Data Protection Officer for Fife Council). Its status now: active" in text, text
    assert "Identifier of who delegated " + dpo.did in text
