"""The printable summary and the public verification page say every condition of an approval in plain words, and
exactly what was verified (signature, status read now, the approver's authority chain, certifications, rules); a
revoked or suspended approval says so first; a condition Cead does not know is shown, never dropped."""
from __future__ import annotations

import re
from html import unescape
from urllib.parse import urlsplit

import pytest

from schemas.models import credential_digest
from wallet import approval_view
from wallet.app import create_node_app
from wallet.names import Directory
from wallet.store import Wallet, make_verifier

from issuer_fixtures import make_node, token
from test_pages import sign_in
from test_wallet_support import (CYBER_ESSENTIALS, StaticFetcher, StatusListFixture, approval_subject,
                                 certification_subject, identity, vc)

FULL_PROTOCOL = [
    {"kind": "threshold", "minCellCount": 10, "secondarySuppression": True, "countColumns": ["pupils"]},
    {"kind": "differentialPrivacy", "epsilon": 1.0, "delta": 1e-6, "mechanism": "gaussian",
     "unitOfPrivacy": "person", "maxContributions": 2, "clipping": {"lower": 0, "upper": 50},
     "budget": {"period": "P1Y", "epsilon": 4.0, "maxReleases": 12}},
]


@pytest.fixture
def env(tmp_path):
    node = make_node(tmp_path / "h", public_url="https://fife.example")
    fetcher = StaticFetcher()
    wallet = Wallet.from_node(node, verifier=make_verifier(fetcher))
    app = create_node_app(node, wallet=wallet)
    return dict(node=node, wallet=wallet, fetcher=fetcher, client=app.test_client(), public=app.test_client())


def _id(cred):
    from wallet.store import jwt_payload
    return jwt_payload(cred)["id"] if isinstance(cred, str) else cred["id"]


def _world(env, *, extra: dict | None = None, revoke: str | None = None):
    """The controller delegates to its DPO, the DPO to an IAO, who approves for this node (the recipient), which
    holds a Cyber Essentials certification the approval requires."""
    controller, dpo, iao = identity(), identity(), identity()
    lists = StatusListFixture(iao, env["fetcher"])
    first = vc(controller, "DelegatedAuthorityCredential", {
        "id": dpo.did, "role": "DataProtectionOfficer", "onBehalfOf": controller.did,
        "allowedActions": ["ApproveDisclosure", "SubDelegate"],
        "scope": {"datasets": ["https://data.fife.example/meals"], "maxDelegationDepth": 2}})
    second = vc(dpo, "DelegatedAuthorityCredential", {
        "id": iao.did, "role": "InformationAssetOwner", "onBehalfOf": controller.did,
        "parentDelegation": {"id": _id(first), "digest": credential_digest(first)},
        "allowedActions": ["ApproveDisclosure"], "scope": {"datasets": ["https://data.fife.example/meals"],
                                                            "maxDelegationDepth": 1}})
    subject = approval_subject(controller.did, env["node"].did, datasets=["https://data.fife.example/meals"],
                               requirements=[CYBER_ESSENTIALS], chain=[first, second])
    subject.update({"privacyProtocol": FULL_PROTOCOL, "maxRowsPerTransfer": 5000, "processors": [],
                    "dpia": {"outcome": "LowRisk", "reference": "urn:cead:document:sha256-" + "D" * 43,
                             "date": "2026-01-05"},
                    "retention": {"receivedData": "P1Y", "derivedData": "P5Y"}, "coSigners": [],
                    **(extra or {})})
    approval = vc(iao, "DataSharingApprovalCredential", subject, status=lists.entry(3))
    cert = vc(controller, "OrganisationCertificationCredential",
              certification_subject(env["node"].did, CYBER_ESSENTIALS))
    for c in (first, second, cert):
        assert env["wallet"].import_credential(c).ok
    held = env["wallet"].import_credential(approval)
    assert held.ok, held.problems
    if revoke == "revoke":
        lists.revoke(3)
    return held.record, (controller, dpo, iao)


def _signed_in(env):
    secret = token(env["node"], "issue:approval", name="dpo")
    assert sign_in(env["client"], secret).status_code == 302


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def test_every_condition_is_in_plain_words_with_what_was_verified(env):
    record, (controller, dpo, iao) = _world(env)
    _signed_in(env)
    page = env["client"].get(f"/wallet/{record.id}/summary")
    assert page.status_code == 200, page.text[:2000]
    text = _text(page.text)
    for words in ("Only for", "Free school meal",                       # purpose, by name
                  "relies on UK GDPR Art 6(1)(e) public task under UK GDPR", "residual risk: low risk (assessed 5 January 2026)",              # lawful basis with its citation
                  "Only the columns pupil_id and entitlement",
                  "The data sharing agreement", "pinned by its digest sha256-AAAA",
                  "pinned by its digest sha256-DDDD",                   # the DPIA's digest
                  "at least 10 people", "Secondary suppression: yes", "the columns pupils",
                  "differential privacy (epsilon 1.0, delta 1e-06)", "clipped to between 0 and 50",
                  "Privacy budget per 1 year: at most epsilon 4.0 in total, at most 12 releases",
                  "unit of privacy is one person, contributing at most 2",
                  "At most 5000 rows", "1 year", "5 years", "may not share the data",
                  "monthly from 1 January 2025, no set number of transfers (about 12 a year", "No co-signers", "No processors",
                  "Cyber Essentials", "Delegation 1 is pinned by its digest sha256-"):
        assert words in text, words
    assert 'href="https://www.legislation.gov.uk/eur/2016/679/article/6/1/e"' in page.text
    # what was verified, each line named
    for words in ("Signature", "checks out", "Current status", "not revoked and not suspended",
                  "Data Protection Officer", "Information Asset Owner", "Within the delegation",
                  "Lawful-basis rules"):
        assert words in text, words
    assert 'class="cead-bad"' not in page.text, text
    assert "valid now" in text and "Other condition" not in text


def test_the_public_page_says_revoked_first_and_what_failed(env):
    record, _ = _world(env, revoke="revoke")
    _signed_in(env)
    summary = env["client"].get(f"/wallet/{record.id}/summary")
    url = unescape(re.search(r'class="mono" href="([^"]+)"', summary.text).group(1))
    page = env["public"].get(urlsplit(url).path)
    assert page.status_code == 200
    banner = _text(page.text.split('id="status-banner"', 1)[1].split("</div>", 3)[0])
    assert "REVOKED" in banner and "does not allow any sharing" in banner
    assert page.text.index('id="status-banner"') < page.text.index("Every condition")
    assert "status.revoked" in page.text or "revoked" in _text(page.text)
    assert "valid now" not in _text(page.text).replace("NOT valid now", "")


def test_an_unknown_condition_is_shown_never_dropped(env):
    controller, iao = identity(), identity()
    names = Directory({})
    subject = approval_subject(controller.did, iao.did)
    subject["maxQueriesPerDay"] = 7
    subject["privacyProtocol"] = [{"kind": "threshold", "minCellCount": 5, "roundTo": 5},
                                  {"kind": "quantumShuffle", "strength": 3}]
    document = {"type": ["VerifiableCredential", "DataSharingApprovalCredential"], "credentialSubject": subject}
    sections = approval_view.conditions(document, names)
    other = [s for s in sections if s.unknown]
    assert [s.key for s in other] == ["maxQueriesPerDay"] and "7" in other[0].lines[0]
    protocol = next(s for s in sections if s.key == "privacyProtocol").lines
    assert any("roundTo: 5" in line for line in protocol)                    # an unknown protocol parameter
    assert any("quantumShuffle" in line and "strength" in line for line in protocol)   # an unknown protocol


def test_an_unknown_condition_is_shown_on_the_pages(env):
    record, _ = _world(env, extra={"maxQueriesPerDay": 7})
    _signed_in(env)
    page = env["client"].get(f"/wallet/{record.id}/summary")
    text = _text(page.text)
    assert "Other condition: maxQueriesPerDay" in text and "not known to Cead" in text


def test_a_missing_delegation_fails_the_authority_check(env):
    record, _ = _world(env)
    [first] = [r for r in env["wallet"].search(type="DelegatedAuthorityCredential")
               if "DataProtectionOfficer" in r.raw or r.document["credentialSubject"]["role"] == "DataProtectionOfficer"]
    env["wallet"].delete(first.id)
    report = approval_view.verification(env["wallet"], record, Directory({}))
    assert not report.verified
    bad = [line for line in report.lines if line.state == "bad"]
    assert any("is not held here" in line.text for line in bad)


def test_duration_words():
    assert approval_view.duration_words("P1Y6M") == "1 year and 6 months"
    assert approval_view.duration_words("P90D") == "90 days"
    assert approval_view.duration_words("soon") == "soon"
    # a cadence in words, without the ISO 8601 code beside them
    assert approval_view.cadence_words("R/2026-01-01T00:00:00Z/P1M") == \
        "Data may be sent monthly from 1 January 2026, no set number of transfers (about 12 a year)."
    assert approval_view.cadence_words("R1/2026-03-01T00:00:00Z/P1D") == "Data may be sent once, from 1 March 2026."


def test_a_delegation_is_described_in_words_with_every_limit():
    names = Directory({"did:web:fife.example": "Fife Council", "did:web:iao.example": "Education Service"})
    document = {"type": ["VerifiableCredential", "DelegatedAuthorityCredential"], "credentialSubject": {
        "id": "did:web:iao.example", "role": "InformationAssetOwner", "onBehalfOf": "did:web:fife.example",
        "allowedActions": ["ApproveDisclosure"], "scope": {
            "datasets": ["https://data.fife.example/meals"], "maxRetention": "P2Y", "maxRowsPerTransfer": 100,
            "privacyProtocol": [{"kind": "threshold", "minCellCount": 10}], "maxDpiaRisk": "LowRisk",
            "maxSensitivity": "Pseudonymised", "onwardSharing": "WithApproval"}, "newThing": True}}
    sections = {s.key: s for s in approval_view.conditions(document, names)}
    assert sections["id"].lines == ["Education Service as information asset owner."]
    assert sections["onBehalfOf"].lines[0].startswith("Fife Council")
    assert sections["allowedActions"].lines == ["approve disclosures."]
    limits = " ".join(sections["scope"].lines)
    assert "Retention, at most: 2 years." in limits and "Rows per transfer, at most: 100." in limits
    assert "people (smaller counts are suppressed at the gateway)." in limits and ".." not in limits
    assert "at least 10 people" in limits and "https://data.fife.example/meals" in limits
    assert "DPIA residual risk, at most: low risk." in limits and "Sensitivity, at most: pseudonymised." in limits
    assert "Onward sharing, at most: only with a further approval." in limits      # words, never the codes
    assert sections["newThing"].unknown


def test_a_line_that_begins_with_an_unnamed_organisation_begins_with_a_capital():
    """An organisation the node has no name for is "the organisation at HOST"; a line that begins with it reads
    "The organisation at ...", as a sentence does."""
    names = Directory({})
    approval = {"type": ["VerifiableCredential", "DataSharingApprovalCredential"], "credentialSubject": {
        "discloser": "did:web:fife.example", "lawfulBases": [
            {"party": "did:web:fife.example", "regime": "UKGDPR", "legalBases": ["cead:UKGDPR-6-1-e"]}]}}
    delegation = {"type": ["VerifiableCredential", "DelegatedAuthorityCredential"], "credentialSubject": {
        "id": "did:web:iao.example", "role": "InformationAssetOwner", "onBehalfOf": "did:web:fife.example",
        "allowedActions": ["ApproveDisclosure"]}}
    sections = {s.key: s for s in approval_view.conditions(approval, names)}
    assert sections["discloser"].lines == ["The organisation at fife.example (the controller)."]
    assert sections["lawfulBases"].lines[0].startswith("The organisation at fife.example relies on ")
    sections = {s.key: s for s in approval_view.conditions(delegation, names)}
    assert sections["onBehalfOf"].lines == ["The organisation at fife.example (the controller)."]
