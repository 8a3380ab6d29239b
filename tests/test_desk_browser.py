"""The approver's desk end to end in a real headless Chromium (Playwright, the Debian ``chromium`` package), over real
HTTPS on 127.0.0.1 between three nodes:

- the controller (the DPO's organisation) delegates approval authority for a dataset to the IAO's node, certifies the
  requester (Cyber Essentials), and later suspends a second delegation;
- the requester's analyst signs in and sends a request through the wizard, with the data sharing agreement attached;
- the IAO signs in at the data holder's node, sees who is asking (certifications, whether the node's trust policy
  trusts the certifier), the delegation fit, rule results and the ICO checklist, and approves through the guided
  form with a minimum cell count of 10; the requester's wallet then holds the approval;
- a request outside the IAO's delegation cannot be approved, and one under a suspended delegation is refused before
  signing, naming the cause.

- a DPO signs in through the organisation's OpenID provider (a real one, pyop, on another site), signs a standing
  approval through its guided form (errors first, then valid), and a routine request is then approved
  automatically and listed under it.

axe-core (tests/assets/axe.min.js) checks every page for WCAG 2.x A/AA violations, and each page is also checked at
390 px wide for sideways scrolling. Screenshots go to tests/artefacts/desk/ (gitignored).
"""
from __future__ import annotations

import json
import os
import uuid
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from helpers_https import https_server
from oidc_provider import CLIENT_ID, CLIENT_SECRET, LocalProvider
from issuer import catalogue, issuing, staff
from issuer.node import Node
from test_sharing import Late, _credential
from test_wallet_support import CYBER_ESSENTIALS, certification_subject
from wallet import sharing
from wallet.app import create_node_app
from wallet.store import Wallet

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--lang=en-GB"]
AXE = Path(__file__).parent / "assets" / "axe.min.js"
ARTEFACTS = Path(__file__).parent / "artefacts" / "desk"
DATASET = "https://data.example.gov.scot/dataset/school-meals"
OTHER = "https://data.example.gov.scot/dataset/pupil-health"
SUSPENDED_DS = "https://data.example.gov.scot/dataset/clothing-grants"
PURPOSE = "https://w3id.org/cead/vocab#FreeSchoolMealAutoEnrolment"
PASSWORD = "a long staff password 1"
HOLDER_CATALOGUE = "\n".join([
    "@prefix dcat: <http://www.w3.org/ns/dcat#> .", "@prefix dct: <http://purl.org/dc/terms/> .",
    "@prefix foaf: <http://xmlns.com/foaf/0.1/> .", "@prefix csvw: <http://www.w3.org/ns/csvw#> .",
    "<https://data.example.gov.scot/org/fife> foaf:name \"Fife Council\" .",
    f"<{DATASET}> a dcat:Dataset ; dct:title \"School meals register\" ;",
    "  dct:publisher <https://data.example.gov.scot/org/fife> ; dcat:distribution [ a dcat:Distribution ;",
    "  csvw:tableSchema [ csvw:column ( [ csvw:name \"pupil_ref\" ; csvw:titles \"Pupil reference\" ]",
    "    [ csvw:name \"meal_entitlement\" ; csvw:titles \"Meal entitlement\" ]",
    "    [ csvw:name \"home_postcode\" ; csvw:titles \"Home postcode\" ] ) ] ] .",
    f"<{OTHER}> a dcat:Dataset ; dct:title \"Pupil health records\" ; dct:publisher <https://data.example.gov.scot/org/fife> ."])

if not os.path.exists(CHROMIUM):
    if os.environ.get("CEAD_REQUIRE_CHROMIUM"):
        raise RuntimeError(f"{CHROMIUM} is missing in CI: .ci/run installs the Debian chromium package")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run installs it in CI)",
                allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("desk")
    with ExitStack() as stack:
        servers = {}
        for name in ("controller", "iao", "requester"):
            late = Late()
            base, ca = stack.enter_context(https_server(late))
            servers[name] = (late, base, ca)
        # the IAO's organisation's OpenID provider (tests/oidc_provider.py), on another site than the nodes
        op, op_late = LocalProvider(), Late()
        op_base, op_ca = stack.enter_context(https_server(op_late))
        op_base = op_base.replace("://localhost:", "://127.0.0.1:")
        bundle = tmp / "ca-bundle.pem"
        bundle.write_text("".join(open(s[2]).read() for s in servers.values()) + open(op_ca).read())
        network = {"allow_private": True, "ca_bundle": str(bundle)}
        w = {"bundle": str(bundle)}
        names = {"controller": "Fife Council", "iao": "Fife Council Education Service", "requester": "Example Council"}
        for name, (late, base, _) in servers.items():
            node, _ = Node.init(tmp / name, names[name], b"desk test passphrase", domain=urlsplit(base).netloc,
                                public_url=base, network=network)
            wallet = Wallet.from_node(node)
            if name == "iao":
                secret = tmp / "oidc-secret"
                secret.write_text(CLIENT_SECRET)
                secret.chmod(0o600)
                node.config["oidc"] = {"issuer": op_base, "client_id": CLIENT_ID, "client_secret_file": str(secret),
                                       "roles": {"Cead.IAO": "iao", "Cead.DPO": "dpo"},
                                       "button": "Sign in with Microsoft"}
                op.start(op_base, base + "/dpo/sign-in/oidc/callback")
                op_late.app = op.wsgi()
            late.app = create_node_app(node, wallet=wallet)
            w[name] = {"node": node, "wallet": wallet, "url": base}
        w["op"] = op
        controller, iao, requester = (w[k]["node"] for k in ("controller", "iao", "requester"))
        delegation = issuing.issue(controller, _credential("DelegatedAuthorityCredential", {
            "id": iao.did, "role": "InformationAssetOwner", "onBehalfOf": controller.did,
            "allowedActions": ["ApproveDisclosure"], "scope": {"datasets": [DATASET]}}),
            {"credentialStatus": {"type": "BitstringStatusListEntry", "statusPurpose": ["revocation", "suspension"]}})
        assert w["iao"]["wallet"].import_credential(delegation.credential).ok
        w["delegation"] = delegation
        cert = issuing.issue(controller, _credential("OrganisationCertificationCredential", {
            **certification_subject(requester.did, CYBER_ESSENTIALS),
            "certificationBody": {"id": controller.did, "name": "Fife Council"}}))
        assert w["requester"]["wallet"].import_credential(cert.credential).ok
        # the data holder's trust policy trusts the controller to certify Cyber Essentials; its catalogue names the data
        (iao.home / "policy.yaml").write_text(json.dumps({"certification_bodies": {CYBER_ESSENTIALS: [controller.did]}}))
        (iao.home / "catalogue.json").write_text(json.dumps({"@id": "https://data.example.gov.scot/catalogue",
                                                             "dcat:dataset": [{"@id": DATASET, "dct:title": "School meals register"},
                                                                              {"@id": OTHER, "dct:title": "Pupil health records"}]}))
        # the requester imported the data holder's DCAT catalogue (with a CSVW table schema for the school meals)
        (tmp / "holder-catalogue.ttl").write_text(HOLDER_CATALOGUE)
        catalogue.import_catalogue(requester, str(tmp / "holder-catalogue.ttl"))
        staff.create_account(requester.engine, "ana", "Ana Analyst", "analyst", PASSWORD)
        staff.create_account(iao.engine, "ian", "Ian Owner", "iao", PASSWORD)
        staff.create_account(iao.engine, "ada", "Ada Admin", "admin", PASSWORD)
        yield w


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def person(browser, width: int = 1200):
    # a browser set up as in a Scottish public body (en-GB, UK time; headless Chromium still draws date inputs
    # in its built-in US format, so the pages' hints never show a date format)
    return browser.new_context(ignore_https_errors=True, viewport={"width": width, "height": 900}, bypass_csp=True,
                               locale="en-GB", timezone_id="Europe/London")


def columns_of(page, fieldset: str) -> int:
    """How many columns the checkboxes of a fieldset are laid out in, as rendered (their distinct left edges)."""
    return page.evaluate("""(sel) => new Set([...document.querySelectorAll(sel + ' .ds_checkbox')]
        .map(e => Math.round(e.getBoundingClientRect().left))).size""", fieldset)


def check(page, name: str) -> None:
    """A screenshot, no axe-core WCAG A/AA violation, and nothing wider than the window."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=True)
    page.evaluate(AXE.read_text())
    result = page.evaluate("""async () => await axe.run(document, {runOnly: {type: 'tag',
        values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']}})""")
    problems = [(v["id"], v["help"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]]
    assert problems == [], f"{name}: {problems}"
    # the page itself must not scroll sideways; a wide table scrolls inside its own box (.cead-scroll), and so must
    # everything in it, including visually-hidden texts (absolutely positioned: they escape a box that is not
    # their containing block and widen the page)
    wide = page.evaluate("""() => document.documentElement.scrollWidth <= window.innerWidth + 1 ? null :
        {width: document.documentElement.scrollWidth, offenders: [...document.querySelectorAll('body *')].filter(e =>
            e.getBoundingClientRect().right > window.innerWidth + 1 && (!e.closest('.cead-scroll')
            || getComputedStyle(e).position === 'absolute')).slice(0, 5).map(e =>
            e.tagName + '.' + e.className + '#' + e.id)}""")
    assert wide is None, f"{name} scrolls sideways at {page.viewport_size['width']} px: {wide}"
    # a choice reads as words, never as the vocabulary's code for it ("LowRisk", "SpecialCategory")
    codes = page.evaluate("""() => [...document.querySelectorAll('select option, .ds_radio__label, .ds_checkbox__label')]
        .map(e => e.textContent.trim()).filter(t => /^[A-Z][a-z]+(?:[A-Z][a-z]+)+$/.test(t))""")
    assert codes == [], f"{name}: choices shown as codes, not words: {codes}"
    # on a phone a list (.cead-boxes) shows each row as a box, every cell (its action too) within the window and
    # labelled with its column's heading: nothing to scroll sideways to
    if page.viewport_size["width"] < 768:
        cells = page.evaluate("""() => [...document.querySelectorAll('table.cead-boxes td')].map(e => [
            e.getBoundingClientRect().right, e.getAttribute('data-heading'), e.classList.contains('cead-box-action'),
            getComputedStyle(e, '::before').content])""")
        outside = [c for c in cells if c[0] > page.viewport_size["width"] + 1]
        assert not outside, f"{name}: list cells outside the window on a phone: {outside[:3]}"
        unlabelled = [c for c in cells if not c[2] and (not c[1] or c[3] in ("none", '""'))]
        assert not unlabelled, f"{name}: list cells without their column's heading on a phone: {unlabelled[:3]}"


def sign_in(page, base: str, username: str) -> None:
    page.goto(base + "/dpo/sign-in")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button:has-text('Sign in')")


def send_direct(w, datasets: list[str]) -> str:
    requester = w["requester"]["node"].did
    body = {"requester": requester, "datasets": datasets, "dataItems": ["pupil_ref", "meal_entitlement"],
            "purposes": [PURPOSE],
            "lawfulBasis": {"party": requester, "regime": "UKGDPR",
                            "legalBases": ["https://www.legislation.gov.uk/eur/2016/679/article/6/1/e"]},
            "cadence": "R/2026-01-01T00:00:00Z/P1M",
            "agreement": {"id": f"urn:uuid:{uuid.uuid4()}", "digest": "sha256-" + "B" * 43},
            "justification": "Auto-enrolment.", "replyTo": w["requester"]["url"] + "/inbox"}
    return sharing.send_request(w["requester"]["wallet"], w["iao"]["url"] + "/requests", body,
                                verify=w["bundle"])["id"]


def test_an_analyst_asks_and_the_iao_approves_through_the_pages(world, browser):
    w = world
    analyst = person(browser).new_page()
    sign_in(analyst, w["requester"]["url"], "ana")
    assert analyst.url.endswith("/wallet/requests"), analyst.url
    check(analyst, "01-analyst-requests")
    analyst.goto(w["requester"]["url"] + "/wallet/requests/new")
    check(analyst, "02-wizard")

    # datasets from the catalogue, by title and publisher; a first try without the agreement: errors beside the
    # fields, and what was typed is kept
    assert "School meals register \u2014 Fife Council" in analyst.inner_text("#datasets")
    analyst.fill("#holder_url", w["iao"]["url"])
    analyst.click("label:has-text('School meals register')")
    analyst.click("button:has-text('Send the request')")
    assert analyst.locator(".ds_error-summary").is_visible()
    assert "Attach the data sharing agreement" in analyst.inner_text("#agreement_file-error")
    assert "Say who benefits" in analyst.inner_text("#who_benefits-error")
    assert "Choose the columns" in analyst.inner_text("#columns-error")
    assert analyst.input_value("#holder_url") == w["iao"]["url"]
    assert analyst.is_checked(f"input[name=datasets][value='{DATASET}']")
    check(analyst, "03-wizard-errors")
    assert sharing.list_requests(w["iao"]["wallet"]) == []          # nothing was sent

    # the chosen dataset's columns, from the catalogue's table schema
    analyst.click("button:has-text('Show the columns')")
    assert "Columns of School meals register" in analyst.inner_text("#columns")
    analyst.click("label:has-text('Pupil reference')")
    analyst.click("label:has-text('Meal entitlement')")
    check(analyst, "03a-wizard-columns")

    # a suggestion from the analyst's own words, shown as one and not applied
    analyst.fill("#justification", "We want to enrol pupils for free school meals automatically, so families "
                                   "do not have to apply.")
    analyst.click("button:has-text('Suggest a purpose')")
    box = analyst.inner_text("#suggestions")
    assert "Suggestions, not decisions" in box and "Free school meal auto-enrolment" in box
    assert analyst.input_value("#purpose") == "" and analyst.is_checked("input[name=columns][value=pupil_ref]")
    check(analyst, "03b-wizard-suggestions")
    analyst.select_option("#purpose", PURPOSE)

    # a lawful basis the rulebook refuses: shown beside the field with its citation, nothing sent
    analyst.select_option("#legal_basis", "https://www.legislation.gov.uk/eur/2016/679/article/6/1/f")
    analyst.fill("#who_benefits", "Families entitled to free school meals who have not applied.")
    analyst.fill("#how", "Entitled pupils are enrolled without their families having to apply.")
    analyst.click("label[for=confirm]")
    analyst.set_input_files("#agreement_file", files=[{"name": "dsa.docx", "mimeType": "application/octet-stream",
                                                        "buffer": b"Data sharing agreement between Example Council "
                                                                  b"and Fife Council, version 1."}])
    analyst.click("button:has-text('Send the request')")
    refusal = analyst.inner_text("#legal_basis-error")
    assert "legitimate interests" in refusal.lower() and "The law: UK GDPR Article 6(1)(f)." in refusal
    assert analyst.input_value("#how").startswith("Entitled pupils")
    check(analyst, "03c-wizard-rule-refused")
    assert sharing.list_requests(w["iao"]["wallet"]) == []
    analyst.select_option("#legal_basis", "https://www.legislation.gov.uk/eur/2016/679/article/6/1/e")
    analyst.fill("#evidence", "Take-up is about 70% of entitlement.")
    for safe in ("people", "projects", "settings", "data", "outputs"):
        analyst.fill(f"#safe_{safe}", f"Answered for safe {safe}.")
    analyst.fill("#transparency", "The council's privacy notice for school meals covers this sharing.")
    analyst.fill("#rights", "Requests go to the council's data protection officer.")
    analyst.fill("#review", "Every year, by the IG board.")
    agreement = b"Data sharing agreement between Example Council and Fife Council, version 1."
    assert "Attached already: dsa.docx" in analyst.inner_text("main")        # kept from the refused try
    analyst.click("button:has-text('Send the request')")
    assert "Request sent" in analyst.inner_text("main"), analyst.inner_text("main")
    check(analyst, "04-request-sent")
    [row] = sharing.list_requests(w["iao"]["wallet"])
    from wallet.wizard import digest_of
    assert row.request["agreement"]["digest"] == digest_of(agreement)                       # pinned, not a placeholder
    assert (w["requester"]["node"].home / "documents" / digest_of(agreement)).read_bytes() == agreement

    iao = person(browser).new_page()
    sign_in(iao, w["iao"]["url"], "ian")
    assert "Example Council" in iao.inner_text("main")                  # names, not DIDs
    check(iao, "05-iao-requests")
    iao.click(f"tr[data-request='{row.id}'] a")
    main = iao.inner_text("main")
    assert "Request from Example Council" in main and "School meals register" in main
    certs = iao.inner_text("#certifications")
    assert "Cyber Essentials (NCSC)" in certs and "Yes" in certs                # trusted by this node's policy
    assert "active" in iao.inner_text("#delegation-fit + p") and "Datasets" in iao.inner_text("#fit")
    assert "An Article 6 lawful basis" in iao.inner_text("#rule-results")
    checklist = iao.inner_text("#ico-checklist + ul")
    assert "Transparency" in checklist and "privacy notice" in checklist
    assert "pupil_ref" in iao.inner_text("#minimisation + ul")                 # flagged as an identifier
    assert "Low risk" in iao.inner_text("#dpia_outcome") and "Special category data" in iao.inner_text("#sensitivity")
    check(iao, "06-decision-page")
    assert columns_of(iao, "#data_categories") == 3          # a long list of boxes in columns at 1200 px

    iao.click("label:has-text('School enrolment')")
    iao.fill("#min_cell_count", "10")
    iao.click("button:has-text('Approve, sign and deliver')")
    assert "Approved and delivered to Example Council" in iao.inner_text("main"), iao.inner_text("main")
    check(iao, "07-approved")
    held = w["requester"]["wallet"].search(type="DataSharingApprovalCredential")
    assert len(held) == 1
    subject = held[0].document["credentialSubject"]
    protocol = subject["privacyProtocol"]
    protocol = protocol[0] if isinstance(protocol, list) else protocol
    assert protocol["kind"] == "threshold" and protocol["minCellCount"] == 10
    parties = [lb["party"] for lb in subject["lawfulBases"]]
    assert sorted(parties) == sorted({w["requester"]["node"].did, subject["discloser"]})   # each party once
    assert sharing.get_request(w["iao"]["wallet"], row.id).decided_by == "ian"
    log = [(e.who, e.action) for e in staff.audit_log(w["iao"]["node"].engine, target=row.id)]
    assert ("ian", "approved") in log

    # the requester's printable summary and the public verification page: every condition in plain words and
    # exactly what was verified
    analyst.goto(f"{w['requester']['url']}/wallet/{held[0].id}/summary")
    summary = analyst.inner_text("main")
    for words in ("Every condition of the approval", "Free school meal auto-enrolment", "UK GDPR Art 6(1)(e)",
                  "Only the columns pupil_ref and meal_entitlement", "School meals register",
                  "every released count describes at least 10 people", "pinned by its digest",
                  "What was verified", "Signature", "Current status", "not revoked and not suspended",
                  "Information Asset Owner", "Within the delegation"):
        assert words in summary, words
    check(analyst, "07a-summary")
    phone_analyst = person(browser, width=390).new_page()
    sign_in(phone_analyst, w["requester"]["url"], "ana")
    phone_analyst.goto(f"{w['requester']['url']}/wallet/{held[0].id}/summary")
    check(phone_analyst, "07c-summary-390px")
    phone_analyst.goto(f"{w['requester']['url']}/wallet/requests/new")
    phone_analyst.click("label:has-text('School meals register')")
    phone_analyst.fill("#justification", "Free school meals for pupils, enrolled automatically.")
    phone_analyst.click("button:has-text('Show the columns')")
    phone_analyst.click("button:has-text('Suggest a purpose')")
    assert "Pupil reference" in phone_analyst.inner_text("#columns")
    check(phone_analyst, "07d-wizard-columns-suggestions-390px")
    link = analyst.get_attribute("main a.mono[href*='/verify/']", "href")
    scanner = person(browser).new_page()                 # no session: whoever scans the printout
    scanner.goto(link)
    assert "valid now" in scanner.inner_text("#status-banner")
    check(scanner, "07b-verify")

    # the approval's status is shown and can be suspended from the same page
    iao.click("button:has-text('Suspend')")
    assert "now suspended" in iao.inner_text("main")
    check(iao, "08-approval-suspended")
    scanner.goto(link)                                   # the verification page reads the status list afresh
    assert "SUSPENDED" in scanner.inner_text("#status-banner")
    check(scanner, "08a-verify-suspended")
    small = person(browser, width=390).new_page()
    small.goto(link)
    check(small, "08b-verify-suspended-390px")

    # the same page at a phone's width
    phone = person(browser, width=390).new_page()
    sign_in(phone, w["iao"]["url"], "ian")
    phone.goto(f"{w['iao']['url']}/wallet/requests/{row.id}")
    check(phone, "09-decision-page-390px")
    # who decided, by name and role as the staff account gives them (not the username and a role code)
    main = phone.inner_text("main")
    assert "Decided by Ian Owner," in main and "approved by Ian Owner (Information Asset Owner)." in main, main
    assert "suspended approval by Ian Owner (Information Asset Owner)." in main and "by ian" not in main
    # on the phone: reinstated and suspended again, each saying when gateways see it, and the register after
    phone.click("button:has-text('Reinstate')")
    assert "The approval is now active. Gateways that rely on it see this within about 5 minutes" in \
        phone.inner_text("main")
    check(phone, "09a-approval-reinstated-390px")
    assert "within about 5 minutes" in phone.inner_text("#suspend-seen")
    phone.click("button:has-text('Suspend')")
    assert "until then a suspended approval may still be accepted" in phone.inner_text("main")
    check(phone, "09b-approval-suspended-390px")
    phone.goto(f"{w['iao']['url']}/dpo/register")
    assert "within about 5 minutes" in phone.inner_text("#seen-by-gateways")
    check(phone, "09c-register-suspended-390px")


def test_a_request_outside_the_delegation_cannot_be_approved(world, browser):
    w = world
    request_id = send_direct(w, [OTHER])
    iao = person(browser).new_page()
    sign_in(iao, w["iao"]["url"], "ian")
    iao.goto(f"{w['iao']['url']}/wallet/requests/{request_id}")
    assert "No" in iao.inner_text("#fit") and "Pupil health records" in iao.inner_text("#fit")
    check(iao, "10-outside-delegation")
    phone = person(browser, width=390).new_page()
    sign_in(phone, w["iao"]["url"], "ian")
    phone.goto(f"{w['iao']['url']}/wallet/requests/{request_id}")
    assert columns_of(phone, "#data_categories") == 1        # the long list of boxes in one column on a phone
    before = len(issuing.register(w["iao"]["node"]))
    iao.click("label:has-text('School enrolment')")
    iao.click("button:has-text('Approve, sign and deliver')")
    assert "Outside your delegation" in iao.inner_text("main")
    assert iao.input_value("#min_cell_count") == "10"                       # what was typed is kept
    check(iao, "11-outside-delegation-refused")
    assert sharing.get_request(w["iao"]["wallet"], request_id).status == "pending"
    assert len(issuing.register(w["iao"]["node"])) == before                # nothing signed


def test_a_request_under_a_suspended_delegation_is_refused_before_signing(world, browser):
    w = world
    controller, iao_node = w["controller"]["node"], w["iao"]["node"]
    second = issuing.issue(controller, _credential("DelegatedAuthorityCredential", {
        "id": iao_node.did, "role": "InformationAssetOwner", "onBehalfOf": controller.did,
        "allowedActions": ["ApproveDisclosure"], "scope": {"datasets": [SUSPENDED_DS]}}),
        {"credentialStatus": {"type": "BitstringStatusListEntry", "statusPurpose": ["revocation", "suspension"]}})
    assert w["iao"]["wallet"].import_credential(second.credential).ok
    issuing.change_status(controller, second.id, "suspend", by="dpo")
    request_id = send_direct(w, [SUSPENDED_DS])
    iao = person(browser).new_page()
    sign_in(iao, w["iao"]["url"], "ian")
    iao.goto(f"{w['iao']['url']}/wallet/requests/{request_id}?delegation={second.id}")
    warning = iao.inner_text("#delegation-unusable")
    assert "suspended" in warning and "Fife Council" in warning                 # whom to escalate to
    check(iao, "12-suspended-delegation")
    before = len(issuing.register(iao_node))
    iao.click("label:has-text('School enrolment')")
    iao.click("button:has-text('Approve, sign and deliver')")
    error = iao.inner_text("#delegation-error")
    assert "This delegation is suspended, so it cannot be used: nothing was signed" in error
    check(iao, "13-suspended-refused")
    assert len(issuing.register(iao_node)) == before
    assert sharing.get_request(w["iao"]["wallet"], request_id).status == "pending"


def test_every_other_page_passes_axe_and_fits_a_phone(world, browser):
    """The pages beyond the desk: start page, sign-in, register, issuing, staff accounts, wallet, one credential,
    its printable summary and its public verification page, each at desktop and phone width."""
    w = world
    base = w["iao"]["url"]
    for width in (1200, 390):
        visitor = person(browser, width).new_page()
        visitor.goto(base + "/")
        check(visitor, f"20-home-{width}")
        visitor.goto(base + "/dpo/sign-in")
        check(visitor, f"21-sign-in-{width}")
        admin = person(browser, width).new_page()
        sign_in(admin, base, "ada")
        held = next(r for r in w["iao"]["wallet"].search(type="DelegatedAuthorityCredential")
                    if r.credential_id == w["delegation"].id)          # the active one (another is suspended)
        for path, name in (("/dpo/register", "22-register"), ("/dpo/issue", "23-issue"),
                           ("/wallet/delegate", "23a-delegate"),
                           ("/dpo/staff", "24-staff"), ("/wallet/", "25-wallet"),
                           ("/wallet/requests", "29-requests"), ("/wallet/requests/new", "30-wizard"),
                           (f"/wallet/{held.id}", "26-credential"), (f"/wallet/{held.id}/summary", "27-summary")):
            admin.goto(base + path)
            assert admin.title() and "Something went wrong" not in admin.inner_text("main"), path
            if name == "23-issue":          # kinds of credential by name, not their type names
                assert "Delegation of approval authority" in admin.inner_text("#kind")
                assert not any(t in admin.inner_text("main") for t in (
                    "DelegatedAuthorityCredential", "DataSharingApprovalCredential", "OrganisationCertification"))
            check(admin, f"{name}-{width}")
        if width == 1200:   # the DPO's guided delegation, signed: what it allows, in words
            admin.goto(base + "/wallet/delegate")
            admin.fill("#delegate", "did:web:deputy.example")
            admin.click("label:has-text('School meals register')")
            admin.click("label:has-text('Free school meal auto-enrolment')")
            admin.click("label[for=confirm]")
            admin.click("button:has-text('Sign the delegation')")
            assert "Delegation signed" in admin.inner_text("h1"), admin.inner_text("main")[:2000]
            assert "School meals register" in admin.inner_text("main")
            check(admin, "23b-delegated-1200")
            admin.goto(base + f"/wallet/{held.id}/summary")
        link = admin.get_attribute("main a[href*='/verify/']", "href")
        visitor.goto(link)
        assert "verified" in visitor.inner_text("main")
        check(visitor, f"28-verify-{width}")


def tick(page, selector: str) -> None:
    """Tick a design-system checkbox as a person does: by its label."""
    page.click(f"label[for='{page.get_attribute(selector, 'id')}']")
    assert page.is_checked(selector)


def test_a_dpo_signs_in_with_the_organisations_account_and_signs_a_standing_approval(world, browser):
    """OpenID Connect sign-in in Chromium (the provider on 127.0.0.1, the node on localhost: another site, so the
    SameSite cookies are exercised as with Entra ID), then the standing-approvals page: the guided form with errors
    beside the fields and what was typed kept, a standing approval signed, a routine request approved under it."""
    from wallet import standing
    w = world
    controller, iao_node = w["controller"]["node"], w["iao"]["node"]
    sub = issuing.issue(controller, _credential("DelegatedAuthorityCredential", {
        "id": iao_node.did, "role": "InformationAssetOwner", "onBehalfOf": controller.did,
        "allowedActions": ["ApproveDisclosure", "SubDelegate"],
        "scope": {"datasets": [DATASET], "maxDelegationDepth": 2}}))
    assert w["iao"]["wallet"].import_credential(sub.credential).ok
    w["op"].user = "dee"                                   # Cead.Analyst and Cead.DPO: the DPO role wins
    dpo = person(browser).new_page()
    dpo.goto(w["iao"]["url"] + "/dpo/sign-in?next=/wallet/standing")
    dpo.click("#oidc-sign-in")
    dpo.wait_for_url("**/wallet/standing")
    assert "Signed in as Dee Protection (Data Protection Officer)" in dpo.inner_text("header")
    assert "There are no standing approvals" in dpo.inner_text("main")
    check(dpo, "40-standing-empty")

    dpo.fill("#name", "school-meals-auto")
    dpo.select_option("#parent", sub.id)
    tick(dpo, f"input[name=datasets][value='{DATASET}']")
    tick(dpo, f"input[name=purposes][value='{PURPOSE}']")
    dpo.click("button:has-text('Sign the standing approval')")       # no columns, no categories, not ticked
    assert dpo.locator(".ds_error-summary").is_visible()
    assert "List the columns" in dpo.inner_text("#columns-error")
    assert "Tick to confirm" in dpo.inner_text("#confirm-error")
    assert dpo.input_value("#name") == "school-meals-auto" and dpo.input_value("#parent") == sub.id
    assert dpo.is_checked(f"input[name=datasets][value='{DATASET}']")
    check(dpo, "41-standing-errors")
    assert standing.rules(iao_node) == []

    dpo.fill("#columns", "pupil_ref\nmeal_entitlement")
    tick(dpo, "input[name=data_categories][value='https://w3id.org/dpv/pd#OfficialID']")
    dpo.select_option("#sensitivity", "Personal")
    dpo.click("label[for=confirm]")
    dpo.click("button:has-text('Sign the standing approval')")
    assert "signed and in force" in dpo.inner_text("main"), dpo.inner_text("main")
    [rule] = standing.rules(iao_node)
    assert rule["created_by"] == "dee@fife.example"

    request_id = send_direct(w, [DATASET])
    for _ in range(300):
        row = sharing.get_request(w["iao"]["wallet"], request_id)
        if row.standing_note:
            break
        import time
        time.sleep(0.2)
    assert row.status == "approved" and row.decided_by == "standing:school-meals-auto", row.standing_note
    dpo.goto(w["iao"]["url"] + "/wallet/standing")
    assert request_id in dpo.inner_html("main") and "Approved automatically (1)" in dpo.inner_text("main")
    check(dpo, "42-standing-in-force")
    phone = person(browser, width=390).new_page()
    phone.goto(w["iao"]["url"] + "/dpo/sign-in?next=/wallet/standing")
    phone.click("#oidc-sign-in")
    phone.wait_for_url("**/wallet/standing")
    check(phone, "43-standing-390px")
    # suspended from the page: its status shows, and nothing more is approved under it
    dpo.click("button:has-text('Suspend school-meals-auto')")
    assert "is now suspended" in dpo.inner_text("main")
    check(dpo, "44-standing-suspended")
    # a routine request now is never claimed for an automatic approval under it: it waits for a person, with why
    waiting = considered(w, send_direct(w, [DATASET]))
    row = sharing.get_request(w["iao"]["wallet"], waiting)
    assert row.status == "pending" and "is suspended" in row.standing_note, row.standing_note
    # while an automatic approval is tried (claimed here by hand, as the node does under a rule in force), the
    # request's page says so in plain words and offers "Check again"; it does not reload by itself
    sharing._decide(w["iao"]["wallet"], waiting, sharing.APPROVING, approval_id="urn:uuid:trying",
                    decided_by="standing:school-meals-auto")
    try:
        for width in (1200, 390):
            iao = person(browser, width=width).new_page()
            sign_in(iao, w["iao"]["url"], "ian")
            iao.goto(w["iao"]["url"] + f"/wallet/requests/{waiting}")
            said = iao.inner_text("main")
            assert "An automatic approval is being tried under the standing approval school-meals-auto" in said
            check(iao, f"46-being-approved-automatically-{width}px")
            iao.click("#check-again")
            iao.wait_for_load_state()
            assert iao.url.endswith(f"/wallet/requests/{waiting}") and "Check again" in iao.inner_text("main")
    finally:
        sharing._decide(w["iao"]["wallet"], waiting, sharing.PENDING, when=sharing.APPROVING,
                        started="urn:uuid:trying", approval_id=None, decided_by=None, decided_at=None)
    # someone the organisation has given no Cead role: refused, with what to ask for, on the page
    w["op"].user = "nora"
    nobody = person(browser).new_page()
    nobody.goto(w["iao"]["url"] + "/dpo/sign-in")
    nobody.click("#oidc-sign-in")
    summary = nobody.inner_text(".ds_error-summary")
    assert "Nora Nobody" in summary and "Ask your administrator to assign one of" in summary
    assert "staff.oidc_no_role" in nobody.inner_text("main")
    check(nobody, "45-oidc-no-role")


def test_an_approval_from_a_person_with_a_did_key_fits_a_phone_and_names_everyone_once(world, browser):
    """An approval signed by an IAO's own key (did:key, about 100 characters without a break) under a chain that
    names its delegates: the summary fits a phone (the key behind a disclosure, never widening the page) and each
    delegation line says whom it delegates to, their role and their organisation once."""
    from schemas.models import credential_digest
    from test_wallet_support import approval_subject, identity, vc
    from wallet.store import jwt_payload
    w = world
    requester = w["requester"]["node"]
    controller, dpo, iao = identity(), identity(), identity()
    names = requester.home / "names.json"
    known = json.loads(names.read_text()) if names.exists() else {}
    names.write_text(json.dumps({**known, controller.did: "NHS Fife"}))
    first = vc(controller, "DelegatedAuthorityCredential", {
        "id": dpo.did, "name": "Alex Morgan", "role": "DataProtectionOfficer", "onBehalfOf": controller.did,
        "allowedActions": ["ApproveDisclosure", "SubDelegate"], "scope": {"datasets": [DATASET],
                                                                           "maxDelegationDepth": 2}})
    second = vc(dpo, "DelegatedAuthorityCredential", {
        "id": iao.did, "name": "Jane Smith", "role": "InformationAssetOwner", "onBehalfOf": controller.did,
        "parentDelegation": {"id": jwt_payload(first)["id"], "digest": credential_digest(first)},
        "allowedActions": ["ApproveDisclosure"], "scope": {"datasets": [DATASET], "maxDelegationDepth": 1}})
    approval = vc(iao, "DataSharingApprovalCredential", approval_subject(
        controller.did, requester.did, datasets=[DATASET], chain=[first, second]))
    wallet = w["requester"]["wallet"]
    for c in (first, second):
        assert wallet.import_credential(c).ok
    held = wallet.import_credential(approval)
    assert held.ok, held.problems
    jane = "Jane Smith (Information Asset Owner for NHS Fife)"
    for width in (1200, 390):
        page = person(browser, width).new_page()
        sign_in(page, w["requester"]["url"], "ana")
        page.goto(f"{w['requester']['url']}/wallet/{held.record.id}/summary")
        check(page, f"31-summary-did-key-{width}")
        checks = page.inner_text("ul.cead-check-list")
        assert f"Data-sharing approval from {jane}" in page.inner_text("h1")
        assert f"Alex Morgan (Data Protection Officer for NHS Fife) delegated approval authority to {jane}:" in checks
        assert "on behalf of" not in checks, checks
        signature = page.locator("ul.cead-check-list li").first
        assert signature.inner_text().startswith("Signature") and iao.did not in signature.inner_text()
        signature.locator("summary").click()                # the key, for whoever checks it by other means
        assert iao.kid in signature.inner_text()
        check(page, f"31-summary-did-key-{width}-key-shown")


def _logged(node, approval: str | None, holder: str | None, *, reasons: tuple[str, ...] = ()) -> None:
    """A decision of the node's gateway, sealed as the gateway seals it (``verifier.receipts.seal`` with the node's
    receipt signer into its receipt store, hence its public log); refused when ``reasons`` are given."""
    from datetime import datetime, timezone
    from types import SimpleNamespace
    from issuer.evidence import receipts as store
    from verifier.receipts import payload_evidence, seal
    allowed = not reasons
    decision = SimpleNamespace(
        allowed=allowed, reasons=[SimpleNamespace(code=c) for c in reasons],
        relied_on=[f"{approval} sha256-abc"] if approval else [], holder=holder, approval_id=approval, method="GET",
        url="https://api.fife.example/meals", decided_at=datetime.now(timezone.utc),
        manifest={"dataset": DATASET, "purpose": PURPOSE},
        evidence={"binding": f"urn:uuid:{uuid.uuid4()}", "manifestSha256": "00" * 32, "payload": payload_evidence(
            b"pupil_ref,meal_entitlement\nP1,yes\nP2,no\n" if allowed else None, "text/csv", "pull")},
        receipt=None)
    seal(store.signer_for(node), decision, store.sink(node))


def test_the_node_s_public_page_of_transfers_fits_a_phone(world, browser):
    """``/log/transfers`` (public, no sign-in): every decision the node's gateway logged, under the approval it was
    made under, in the pages' look; at 390 px each decision is a box, each value under its column's name, and the
    page does not scroll sideways. At 1200 px each time is on one line. A recipient or dataset the node knows a name
    for (its names.json, its catalogue) reads by that name, its identifier beside it in smaller monospace; one it
    does not know, by its identifier."""
    w = world
    node, requester = w["iao"]["node"], w["requester"]["node"].did
    stranger = "did:web:stranger.example"
    names = node.home / "names.json"
    known = json.loads(names.read_text()) if names.exists() else {}
    names.write_text(json.dumps({**known, requester: "Example Council"}))
    approval = f"urn:uuid:{uuid.uuid4()}"
    _logged(node, approval, requester)
    _logged(node, approval, requester, reasons=("transfer.volume_exceeded", "transfer.column_not_approved"))
    _logged(node, approval, stranger)
    _logged(node, None, None, reasons=("presentation.missing",))
    for width in (1200, 390):
        visitor = person(browser, width).new_page()
        visitor.goto(w["iao"]["url"] + "/log/transfers")
        check(visitor, f"50-transfers-{width}")
        assert visitor.evaluate("document.documentElement.scrollWidth") <= width
        main = visitor.inner_text("main")
        assert "Transfers under each approval" in visitor.inner_text("h1") and approval in main
        assert "more rows than the approval allows in one transfer (transfer.volume_exceeded)" in main
        assert "no presentation was sent with the request (presentation.missing)" in main
        assert visitor.locator("table.cead-boxes").count() == 2        # the approval's, and the bare requests'
        shown = visitor.evaluate("getComputedStyle(document.querySelector('table.cead-boxes td')).display")
        assert shown == ("block" if width < 768 else "table-cell"), shown
        cells = visitor.evaluate("""() => [...document.querySelectorAll('td[data-heading=Recipient], td[data-heading=Dataset]')]
            .filter(td => td.querySelector('.cead-id')).map(td => {
                const name = td.querySelector('.cead-name'), id = td.querySelector('.cead-id');
                return {name: name && name.textContent, nameFont: name && getComputedStyle(name).fontFamily,
                        nameSize: name && parseFloat(getComputedStyle(name).fontSize), id: id.textContent,
                        idFont: getComputedStyle(id).fontFamily, idSize: parseFloat(getComputedStyle(id).fontSize)};
            })""")
        by_id = {c["id"]: c for c in cells}
        assert by_id[requester]["name"] == "Example Council" and by_id[DATASET]["name"] == "School meals register"
        assert by_id[stranger]["name"] is None                          # not known: the identifier alone
        for c in (by_id[requester], by_id[DATASET]):
            assert "monospace" not in c["nameFont"] and "monospace" in c["idFont"], c
            assert c["idSize"] < c["nameSize"], c
        if width >= 768:   # each time on one line: the text's line boxes all at one height
            lines = visitor.evaluate("""() => [...document.querySelectorAll('td[data-heading=When]')].map(td => {
                const r = document.createRange(); r.selectNodeContents(td);
                return new Set([...r.getClientRects()].map(b => Math.round(b.top))).size; })""")
            assert lines and set(lines) == {1}, lines
            fits = visitor.evaluate("""() => [...document.querySelectorAll('.cead-scroll')].every(
                box => box.scrollWidth <= box.clientWidth + 1)""")
            assert fits, "a table of transfers scrolls sideways at 1200 px"


def approve_through_the_page(page, w, request_id: str, *, not_before: str | None = None,
                             not_after: str | None = None) -> str:
    """The IAO approves a request on its decision page (the form's defaults, School enrolment ticked, the window
    when given); returns the approval's id."""
    considered(w, request_id)       # a standing approval's attempt holds the request ("being approved") meanwhile
    page.goto(f"{w['iao']['url']}/wallet/requests/{request_id}")
    page.click("label:has-text('School enrolment')")
    if not_before:
        page.fill("#not_before", not_before)
    if not_after:
        page.fill("#not_after", not_after)
    page.click("button:has-text('Approve, sign and deliver')")
    assert "Approved and delivered to" in page.inner_text("main"), page.inner_text("main")[:2000]
    return sharing.get_request(w["iao"]["wallet"], request_id).approval_id


def refused_window(page, w, request_id: str) -> str:
    """The decision page's answer to an approval for 2025 (a period over): the error beside "Valid until"."""
    considered(w, request_id)
    page.goto(f"{w['iao']['url']}/wallet/requests/{request_id}")
    page.click("label:has-text('School enrolment')")
    page.fill("#not_before", "2025-01-01")
    page.fill("#not_after", "2025-12-31")
    page.click("button:has-text('Approve, sign and deliver')")
    assert sharing.get_request(w["iao"]["wallet"], request_id).status == "pending"      # nothing signed
    return page.inner_text("#not_after-error")


def approve_ended(w, request_id: str) -> str:
    """An approval whose period (2025) is over: the decision page refuses to sign one (it could never be used), so
    the IAO's node signs it directly, with the conditions the page gives (School enrolment, public task), under the
    IAO's delegation, suspendable, by Ian Owner; returns the approval's id."""
    from test_wallet_support import approval_subject
    from wallet.desk_pages import SUSPENDABLE
    node, wallet = w["iao"]["node"], w["iao"]["wallet"]
    considered(w, request_id)
    draft = sharing.draft_subject(node, wallet, request_id, delegation=w["delegation"].id)
    subject = approval_subject(draft["discloser"], w["requester"]["node"].did, datasets=[DATASET], purposes=[PURPOSE])
    rest = {k: v for k, v in subject.items() if k not in sharing.FROM_REQUEST}
    rest.update(lawfulBases=[*draft["lawfulBases"], {"party": draft["discloser"], "regime": "UKGDPR", "legalBases": [
        "https://www.legislation.gov.uk/eur/2016/679/article/6/1/e"]}],dataCategories=["https://w3id.org/cead#SchoolEnrolment"], privacyProtocol=[{"kind": "threshold", "minCellCount": 10}],
                notBefore="2025-01-01T00:00:00Z", notAfter="2025-12-31T23:59:59Z")
    sharing.approve(node, wallet, request_id, rest, delegation=w["delegation"].id, options=SUSPENDABLE, issued_by="ian")
    return sharing.get_request(wallet, request_id).approval_id


def tag_of(page, selector: str) -> str:
    return page.inner_text(f"{selector} .ds_tag").strip()


def test_an_approval_no_longer_in_force_never_reads_approved(world, browser):
    """An approval the IAO suspended, one revoked and one whose time has run out read "suspended", "revoked" and
    "expired" wherever they are badged, in words: the approval's own page (the badge under its title and "Status
    now"), the list of requests, the DPO's register, and the requester's wallet (its list and the credential's
    page). One still in force reads "approved" on the desk and "in force" as its status now."""
    w = world
    base = w["iao"]["url"]
    iao = person(browser).new_page()
    sign_in(iao, base, "ian")
    ids = {name: send_direct(w, [DATASET]) for name in ("suspended", "revoked", "expired", "in force")}
    approvals = {name: approve_through_the_page(iao, w, rid) for name, rid in ids.items() if name != "expired"}
    approvals["expired"] = approve_ended(w, ids["expired"])
    # the page itself refuses a period already over, saying why beside the date
    page_says = refused_window(iao, w, send_direct(w, [DATASET]))
    assert "31 December 2025 is before today: the approval would already have ended" in page_says, page_says
    check(iao, "59-approval-window-over")
    iao.goto(f"{base}/wallet/requests/{ids['suspended']}")
    iao.click("button:has-text('Suspend')")
    assert "now suspended" in iao.inner_text("main")
    iao.goto(f"{base}/wallet/requests/{ids['revoked']}")
    iao.fill("#revoke-reason", "The sharing agreement ended.")
    iao.click("label[for=confirm]")
    iao.click("button[value=revoke]")
    assert "now revoked" in iao.inner_text("main")

    for width in (1200, 390):
        page = person(browser, width).new_page()
        sign_in(page, base, "ian")
        for name, rid in ids.items():
            page.goto(f"{base}/wallet/requests/{rid}")
            badge, now = tag_of(page, "h1 + p"), tag_of(page, "h2#approval + p")   # under the title; "Status now"
            assert (badge, now) == (("approved", "in force") if name == "in force" else (name, name)), (name, badge)
            check(page, f"60-approval-{name.replace(' ', '-')}-{width}")
            if name == "expired":          # nothing to suspend once its period is over; revoking and renewing stay
                assert page.locator("button[value=suspend]").count() == 0
                assert "nothing to suspend or reinstate" in page.inner_text("#period-over")
                assert "until 31 December 2025: that period is over." in page.inner_text("main")
                assert page.locator("button[value=revoke]").count() == 1
            elif name == "in force":
                assert page.locator("button[value=suspend]").count() == 1
        page.goto(f"{base}/wallet/requests")
        for name, rid in ids.items():
            assert tag_of(page, f"tr[data-request='{rid}']") == ("approved" if name == "in force" else name), name
        check(page, f"61-requests-list-{width}")

    for width in (1200, 390):
        admin = person(browser, width).new_page()
        sign_in(admin, base, "ada")
        admin.goto(base + "/dpo/register")
        for name, approval in approvals.items():
            status = admin.inner_text(f"{register_row(approval)} td[data-heading=Status]").strip()
            assert status == ("active" if name == "in force" else name), (name, status)
        ended = admin.inner_text(f"{register_row(approvals['expired'])} td[data-heading='Valid until']")
        assert ended.startswith("31 December 2025"), ended         # its notAfter, when the register has no more
        # an approval whose period is over is not offered suspension (it is no longer in force either way), only
        # revocation; one in force still is
        actions = admin.locator(f"{register_row(approvals['expired'])} td.cead-box-action")
        assert actions.locator("button").all_inner_texts() == ["Revoke…"], actions.inner_text()
        assert "Its period is over: nothing to suspend." in actions.inner_text()
        assert admin.locator(f"{register_row(approvals['in force'])} td.cead-box-action button").all_inner_texts() \
            == ["Suspend", "Revoke…"]
        check(admin, f"62-register-statuses-{width}")
        # "Revoke…" asks first, in the register's words: the kind by name and its id, issued to whom, by whom
        admin.click(f"{register_row(approvals['in force'])} button:has-text('Revoke…')")
        facts = admin.inner_text("dl.facts")
        assert "Data-sharing approval" in facts and approvals["in force"] in facts, facts
        assert "Example Council" in facts and "Ian Owner" in facts, facts
        check(admin, f"62a-revoke-confirm-{width}")
        admin.click("a:has-text('Cancel')")
        assert admin.url.endswith("/dpo/register")
        if width == 1200:    # each id in full under its kind, in a few lines, and the register within the page
            assert max(lines_of(admin, "td[data-heading=Credential] .cead-id")) <= 3
            assert boxes_fit(admin), "the register scrolls sideways at 1200 px"

    # the requester's wallet, once it has read the status lists again
    wallet = w["requester"]["wallet"]
    held = {name: next(r.id for r in wallet.search(type="DataSharingApprovalCredential")
                       if r.credential_id == approval) for name, approval in approvals.items()}
    for width in (1200, 390):
        analyst = person(browser, width).new_page()
        sign_in(analyst, w["requester"]["url"], "ana")
        analyst.goto(w["requester"]["url"] + "/wallet/")
        analyst.click("button:has-text('Re-check status lists now')")
        for name, ident in held.items():
            row = analyst.locator(f"tr:has(a[href$='/wallet/{ident}'])")
            shown = row.locator("td[data-heading=Status]").inner_text().strip()
            assert shown == ("valid" if name == "in force" else name), (name, shown)
            if name == "expired":
                assert row.locator("td[data-heading='Valid until']").inner_text().startswith("31 December 2025")
        check(analyst, f"63-holdings-statuses-{width}")
        analyst.goto(f"{w['requester']['url']}/wallet/{held['expired']}")
        assert analyst.inner_text("#credential-status").startswith("expired")
        check(analyst, f"64-held-expired-{width}")


def test_the_register_shows_names_as_text_and_identifiers_in_monospace(world, browser):
    """The DPO's register: an organisation's name (as a certification states it, or as the node knows a recipient)
    in the pages' ordinary type, its DID under it in the smaller monospace of identifiers."""
    w = world
    base = w["iao"]["url"]
    requester = w["requester"]["node"].did
    issuing.issue(w["iao"]["node"], _credential("OrganisationCertificationCredential", {
        **certification_subject(requester, CYBER_ESSENTIALS),
        "certificationBody": {"id": w["iao"]["node"].did, "name": "Fife Council Education Service"}}))
    for width in (1200, 390):
        admin = person(browser, width).new_page()
        sign_in(admin, base, "ada")
        admin.goto(base + "/dpo/register")
        check(admin, f"65-register-names-{width}")
        fonts = admin.evaluate("""() => [...document.querySelectorAll('td[data-heading="Issued to"]')]
            .filter(td => td.querySelector('.cead-subject-name')).map(td => [
                td.querySelector('.cead-subject-name').textContent,
                getComputedStyle(td.querySelector('.cead-subject-name')).fontFamily,
                getComputedStyle(td.querySelector('.cead-id')).fontFamily,
                getComputedStyle(document.querySelector('main p')).fontFamily])""")
        assert any(name == "Example Council" for name, *_ in fonts), fonts
        for name, font, id_font, body_font in fonts:
            assert font == body_font and "monospace" not in font, (name, font)
            assert "monospace" in id_font, (name, id_font)


def register_row(credential_id: str) -> str:
    """The selector of the register's row for ``credential_id`` (its full id, under its kind and format)."""
    return f"tr:has(td[data-heading=Credential] .cead-id:text-is('{credential_id}'))"


def lines_of(page, selector: str) -> list[int]:
    """How many lines the text of each cell matching ``selector`` takes, as drawn (distinct tops of its line
    boxes)."""
    return page.evaluate("""(sel) => [...document.querySelectorAll(sel)].map(td => {
        const r = document.createRange(); r.selectNodeContents(td);
        return new Set([...r.getClientRects()].map(b => Math.round(b.top))).size; })""", selector)


def boxes_fit(page) -> bool:
    """Every scrolling box's content within its box (nothing to scroll sideways to)."""
    return page.evaluate("""() => [...document.querySelectorAll('.cead-scroll')].every(
        box => box.scrollWidth <= box.clientWidth + 1)""")


def considered(w, request_id: str) -> str:
    """``request_id`` once the node's standing approvals (if any, from an earlier test) have considered it: until
    then it may be claimed for an automatic approval, and deciding it would race that."""
    import time
    from wallet import standing
    if standing.rules(w["iao"]["node"]):
        for _ in range(300):
            if sharing.get_request(w["iao"]["wallet"], request_id).standing_note:
                break
            time.sleep(0.2)
    return request_id


def test_precedents_warnings_and_dates_read_as_words_on_one_line(world, browser):
    """What the people who decide read, at 1200 and 390 px in an en-GB browser:

    - the decision page's "What was decided before" says why each earlier decision is near by names (the dataset's
      catalogue title, the lawful basis and purpose by their plain names), the identifiers behind a disclosure;
    - the requester's wallet lists an approval whose notAfter has passed with the warning "Expired on <date in
      words>" (its row's Type and From say what and whose); the credential's own page says it whole, "Data-sharing
      approval from <name> expired on <date in words>", the DID under the name in the small monospace of
      identifiers;
    - the dates of the requests list (Received), the register (Issued, Valid until), the wallet (Valid until) and the
      staff log (When) each stay on one line at 1200 px, with each table within its box; at 390 px nothing widens
      the page (each list a column of boxes)."""
    w = world
    base, iao_did = w["iao"]["url"], w["iao"]["node"].did
    names = w["requester"]["node"].home / "names.json"
    known = json.loads(names.read_text()) if names.exists() else {}
    names.write_text(json.dumps({**known, iao_did: "Fife Council Education Service"}))
    earlier = considered(w, send_direct(w, [DATASET]))
    sharing.refuse(w["iao"]["wallet"], earlier, "Use the pupil reference only, not names.", by="ian")
    iao = person(browser).new_page()
    sign_in(iao, base, "ian")
    ended = approve_ended(w, send_direct(w, [DATASET]))
    approved_id = considered(w, send_direct(w, [DATASET]))          # decided on the page: the staff log records it
    approve_through_the_page(iao, w, approved_id)
    now = considered(w, send_direct(w, [DATASET]))
    held = next(r for r in w["requester"]["wallet"].search(type="DataSharingApprovalCredential")
                if r.credential_id == ended)

    for width in (1200, 390):
        page = person(browser, width).new_page()
        sign_in(page, base, "ian")
        page.goto(f"{base}/wallet/requests/{now}")
        near = page.locator("#precedents + ul")
        why = [t.strip() for t in near.locator(".cead-why-near").all_inner_texts()]
        assert why and all("https://" not in t and "cead:" not in t and "legalBases" not in t for t in why), why
        assert any("the same dataset (School meals register)" in t for t in why), why
        assert any("the same lawful basis (UK GDPR Art 6(1)(e) public task)" in t for t in why), why
        assert any("the same purpose (Free school meal auto-enrolment)" in t for t in why), why
        near.locator("details summary").first.click()                 # the identifiers, for whoever checks them
        assert DATASET in near.locator("details").first.inner_text()
        page.locator("#precedents").scroll_into_view_if_needed()
        check(page, f"70-precedents-in-words-{width}")

        page.goto(f"{base}/wallet/requests")
        check(page, f"71-requests-list-dates-{width}")
        if width == 1200:
            assert set(lines_of(page, "td[data-heading=Received]")) == {1}
            assert boxes_fit(page), "the requests list scrolls sideways at 1200 px"

        analyst = person(browser, width).new_page()
        sign_in(analyst, w["requester"]["url"], "ana")
        analyst.goto(w["requester"]["url"] + "/wallet/")
        row = analyst.locator(f"tr:has(a[href$='/wallet/{held.id}'])")
        warning = row.locator("[data-code='wallet.expired']")
        # in the list the row's own Type and From say what and whose; the warning says what happened
        said = warning.inner_text().strip()
        assert said == "⚠ Expired on 31 December 2025, 23:59 UTC (the end of the period it approves).", said
        assert row.locator("td[data-heading=From]").inner_text().startswith("Fife Council Education Service")
        assert "DataSharingApprovalCredential" not in analyst.inner_text("main")
        check(analyst, f"72-wallet-warnings-{width}")
        if width == 1200:
            assert set(lines_of(analyst, "td[data-heading='Valid until']")) == {1}
            assert boxes_fit(analyst), "the wallet's list scrolls sideways at 1200 px"
        analyst.goto(f"{w['requester']['url']}/wallet/{held.id}")
        warning = analyst.locator("[data-code='wallet.expired']")
        assert warning.inner_text().startswith(
            "⚠ Data-sharing approval from Fife Council Education Service expired on 31 December 2025, 23:59 UTC "
            "(the end of the period it approves)."), warning.inner_text()
        did = warning.locator(".cead-id-beside")            # on the credential's own page, the sender's DID under it
        assert did.inner_text() == iao_did
        sizes = analyst.evaluate("""(el) => [getComputedStyle(el).fontFamily, parseFloat(getComputedStyle(el).fontSize),
            parseFloat(getComputedStyle(el.parentElement).fontSize)]""", did.element_handle())
        assert "monospace" in sizes[0] and sizes[1] < sizes[2], sizes
        check(analyst, f"73-credential-warning-{width}")

        admin = person(browser, width).new_page()
        sign_in(admin, base, "ada")
        admin.goto(base + "/dpo/register")
        check(admin, f"74-register-dates-{width}")
        if width == 1200:
            assert set(lines_of(admin, "td[data-heading=Issued]")) == {1}
            assert set(lines_of(admin, "td[data-heading='Valid until']")) == {1}
            assert boxes_fit(admin), "the register scrolls sideways at 1200 px"
        admin.goto(base + "/dpo/staff")
        check(admin, f"75-staff-dates-{width}")
        if width == 1200:
            assert set(lines_of(admin, "td[data-heading=When]")) == {1}
            assert set(lines_of(admin, "td[data-heading=Since]")) == {1}
            assert boxes_fit(admin), "the staff pages' tables scroll sideways at 1200 px"
        # the audit log for an auditor: who by name, the username under it in the identifiers' small monospace;
        # the role by its label; the action in words; the request by who asks and for which dataset, its id under it
        approved = admin.locator(f"table.cead-audit-log tr:has(td[data-code=approved]):has-text('{approved_id}')")
        assert approved.locator("td[data-heading=Action]").inner_text() == "approved a data-sharing request"
        assert approved.locator("td[data-heading=Role]").inner_text() == "Information Asset Owner"
        who = approved.locator("td[data-heading=Who]")
        assert who.locator(".cead-id").inner_text() == "ian" and who.inner_text().startswith("Ian Owner")
        sizes = admin.evaluate("""(el) => [getComputedStyle(el).fontFamily, parseFloat(getComputedStyle(el).fontSize),
            parseFloat(getComputedStyle(el.parentElement).fontSize), getComputedStyle(el).display]""",
                               who.locator(".cead-id").element_handle())
        assert "monospace" in sizes[0] and sizes[1] < sizes[2] and sizes[3] == "block", sizes
        on = approved.locator("td[data-heading=On]")
        assert on.inner_text().startswith("the request from ") and "School meals register" in on.inner_text()
        assert on.locator(".cead-id").inner_text() == approved_id
        if width == 390:     # each entry a box, as the other lists
            assert admin.evaluate("(el) => getComputedStyle(el).display", approved.element_handle()) == "block"
