"""The analyst's request wizard without a browser: datasets picked from the node's imported DCAT catalogue (title
and publisher) with their CSVW columns; purpose suggestions from the analyst's own words, shown as suggestions;
lawful-basis rule refusals beside the field they concern with their citation, what was typed kept and nothing
sent. (The whole journey in a real browser is tests/test_desk_browser.py.)"""
from __future__ import annotations

import io
import re
from html import unescape

import pytest

from issuer import catalogue, staff
from wallet.app import create_node_app
from wallet.store import Wallet

from issuer_fixtures import make_node
from test_pages import csrf_of
from test_sharing import world  # noqa: F401 (the three-node HTTPS world)

PASSWORD = "correct horse battery staple"
MEALS = "https://data.fife.example/dataset/school-meals"
HEALTH = "https://data.fife.example/dataset/pupil-health"
PURPOSE = "https://w3id.org/cead/vocab#FreeSchoolMealAutoEnrolment"
PUBLIC_TASK = "https://www.legislation.gov.uk/eur/2016/679/article/6/1/e"
LEGIT = "https://www.legislation.gov.uk/eur/2016/679/article/6/1/f"
NOWHERE = "https://127.0.0.1:9"          # nothing listens: a request that got as far as sending would fail (502)
CATALOGUE = "\n".join([
    "@prefix dcat: <http://www.w3.org/ns/dcat#> .", "@prefix dct: <http://purl.org/dc/terms/> .",
    "@prefix foaf: <http://xmlns.com/foaf/0.1/> .", "@prefix csvw: <http://www.w3.org/ns/csvw#> .",
    "<https://data.fife.example/org/fife> foaf:name \"Fife Council\" .",
    f"<{MEALS}> a dcat:Dataset ; dct:title \"School meals register\" ; dct:publisher <https://data.fife.example/org/fife> ;",
    "  dcat:distribution [ a dcat:Distribution ; csvw:tableSchema [ csvw:column (",
    "    [ csvw:name \"pupil_ref\" ; csvw:titles \"Pupil reference\" ]",
    "    [ csvw:name \"meal_entitlement\" ; csvw:titles \"Meal entitlement\" ; dct:description \"Yes or no\" ] ) ] ] .",
    f"<{HEALTH}> a dcat:Dataset ; dct:title \"Pupil health records\" ; dct:publisher <https://data.fife.example/org/fife> ."])


@pytest.fixture
def env(tmp_path):
    node = make_node(tmp_path / "h", public_url="https://example-council.example")
    path = tmp_path / "catalogue.ttl"
    path.write_text(CATALOGUE)
    catalogue.import_catalogue(node, str(path))
    staff.migrate(node.engine)
    staff.create_account(node.engine, "ana", "Ana Analyst", "analyst", PASSWORD)
    client = create_node_app(node, wallet=Wallet.from_node(node)).test_client()
    page = client.get("/dpo/sign-in")
    assert client.post("/dpo/sign-in", data={"username": "ana", "password": PASSWORD,
                                             "csrf": csrf_of(page.text)}).status_code == 302
    return {"node": node, "client": client}


def _form(client, **fields):
    page = client.get("/wallet/requests/new")
    data = {"csrf": csrf_of(page.text), "holder_url": NOWHERE, "datasets": [MEALS],
            "columns": ["pupil_ref", "meal_entitlement"], "purpose": PURPOSE, "regime": "UKGDPR",
            "legal_basis": PUBLIC_TASK, "condition": "", "cadence": "R/2026-01-01T00:00:00Z/P1M",
            "who_benefits": "Families entitled to free school meals.", "how": "Pupils are enrolled automatically.",
            "retention": "P1Y", "protocol": "threshold", "min_cell_count": "10", "confirm": "y", "action": "send",
            "agreement_file": (io.BytesIO(b"Our data sharing agreement."), "dsa.docx")}
    data.update(fields)
    return client.post("/wallet/requests/new", data={k: v for k, v in data.items() if v is not None},
                       content_type="multipart/form-data")


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def _error(html: str, field: str) -> str:
    match = re.search(rf'id="{field}-error">(.*?)</p>', html, re.S)
    return unescape(match.group(1)) if match else ""


def test_datasets_come_from_the_catalogue_by_title_and_publisher(env):
    page = env["client"].get("/wallet/requests/new")
    assert page.status_code == 200
    text = _text(page.text)
    assert "School meals register \u2014 Fife Council" in text and "Pupil health records \u2014 Fife Council" in text
    assert f'value="{MEALS}"' in page.text and 'type="checkbox"' in page.text
    assert "pupil_ref" not in page.text                       # columns only once their dataset is chosen


def test_show_columns_keeps_what_was_typed_and_sends_nothing(env):
    shown = _form(env["client"], action="columns", columns=None, who_benefits="Typed before pressing the button.")
    assert shown.status_code == 200 and "There is a problem" not in shown.text
    text = _text(shown.text)
    assert "Columns of School meals register" in text and "Pupil reference (pupil_ref)" in text
    assert "Yes or no" in text                                 # the column's description from the catalogue
    assert "Typed before pressing the button." in text and f'value="{NOWHERE}"' in shown.text
    assert re.search(rf'value="{MEALS}"[^>]*checked|checked[^>]*value="{MEALS}"', shown.text)


def test_suggestions_from_the_analyst_s_words_are_labelled_and_never_applied(env):
    page = _form(env["client"], action="suggest", purpose="",
                 justification="We want to enrol pupils for free school meals automatically.")
    assert page.status_code == 200
    box = _text(page.text.split('id="suggestions"', 1)[1].split("</div></div>", 1)[0])
    assert "Suggestions, not decisions" in box and "Free school meal auto-enrolment" in box
    assert "UK GDPR Art 6(1)(e) public task" in box and "meals" in box
    assert not re.search(rf'<option selected value="{re.escape(PURPOSE)}"|value="{re.escape(PURPOSE)}" selected',
                         page.text)                               # not chosen for the analyst


def test_a_rule_refusal_is_shown_beside_its_field_with_the_citation(env):
    refused = _form(env["client"], legal_basis=LEGIT, justification="Kept as typed.")
    assert refused.status_code == 422, _text(refused.text)[:2000]
    error = _error(refused.text, "legal_basis")
    assert "legitimate interests" in error.lower() and "The law: UK GDPR Article 6(1)(f)." in error   # cited by name
    assert "Kept as typed." in refused.text and f'value="{LEGIT}" selected' in refused.text.replace(
        f'selected value="{LEGIT}"', f'value="{LEGIT}" selected')
    assert "sharing.unreachable" not in refused.text           # refused before anything was sent
    # law enforcement claimed by a council for school meals: beside the regime and the purpose
    part3 = _form(env["client"], regime="DPA2018Part3",
                  legal_basis="https://www.legislation.gov.uk/ukpga/2018/12/section/35")
    assert part3.status_code == 422
    assert "competent authority" in _error(part3.text, "regime")
    assert "law-enforcement" in _error(part3.text, "purpose") and "Data Protection Act 2018 section 31" in _error(part3.text, "purpose")


def test_datasets_and_columns_are_required_beside_their_fields(env):
    empty = _form(env["client"], datasets=None, columns=None)
    assert empty.status_code == 400
    assert "Choose at least one dataset" in _error(empty.text, "datasets")
    assert "Choose the columns" in _error(empty.text, "columns")
    typed = _form(env["client"], datasets=None, columns=None, other_datasets="https://other.example/ds",
                  other_columns="postcode")
    assert typed.status_code == 502 and "sharing.unreachable" in typed.text   # valid and lawful: it was sent


def test_the_guard_rail_s_refusal_is_shown_beside_the_approval_form_s_field(world):  # noqa: F811
    """The IAO approves on legitimate interests: the issuer's rulebook guard rail refuses to sign, and the page
    shows the rule beside "Your organisation's lawful basis", with its citation, keeping what was typed."""
    from issuer import issuing
    from wallet import sharing
    from test_desk import account_sign_in
    from test_sharing import send
    w = world
    node, wallet = w["iao"]["node"], w["iao"]["wallet"]
    staff.migrate(node.engine)
    staff.create_account(node.engine, "lee", "Lee Owner", "iao", "correct horse battery staple")
    request_id = send(w)["id"]
    client = create_node_app(node, wallet=wallet).test_client()
    assert account_sign_in(client, "lee").status_code == 302
    page = client.get(f"/wallet/requests/{request_id}")
    before = len(issuing.register(node))
    refused = client.post(f"/wallet/requests/{request_id}/approve", data={
        "csrf": csrf_of(page.text), "delegation": w["delegation"].id, "controller_basis": LEGIT,
        "data_categories": "https://w3id.org/cead/vocab#SchoolEnrolment", "protocol": "threshold",
        "min_cell_count": "10", "retention": "P1Y", "cadence": "R/2025-01-01T00:00:00Z/P1M",
        "sensitivity": "Pseudonymised", "dpia_outcome": "LowRisk", "onward_sharing": "Prohibited",
        "not_before": "2026-01-01", "not_after": "2027-06-30", "max_rows": "777"})
    assert refused.status_code == 422, _text(refused.text)[:3000]
    error = _error(refused.text, "controller_basis")
    assert "legitimate interests" in error.lower() and "UK GDPR Article 6(1)(f)" in error
    assert 'value="777"' in refused.text                                   # what was typed is kept
    assert len(issuing.register(node)) == before                          # nothing signed
    assert sharing.get_request(wallet, request_id).status == "pending"



def test_the_attached_dpia_is_pinned_by_digest_in_the_approval(world):  # noqa: F811
    """A request with a DPIA attached: the approval form starts with the DPIA's reference, which carries its digest,
    and the approval as issued (and its summary) pins it."""
    from test_desk import account_sign_in
    from test_sharing import make_request, send
    from wallet import approval_view
    from wallet import sharing
    from wallet.names import Directory
    w = world
    node, wallet = w["iao"]["node"], w["iao"]["wallet"]
    staff.migrate(node.engine)
    staff.create_account(node.engine, "dee", "Dee Owner", "iao", PASSWORD)
    digest = "sha256-" + "Q" * 43
    case = {"documents": [{"kind": "dpia", "title": "dpia.pdf", "id": f"urn:cead:document:{digest}",
                           "digest": digest, "size": 10}]}
    request_id = send(w, make_request(w, case=case))["id"]
    client = create_node_app(node, wallet=wallet).test_client()
    assert account_sign_in(client, "dee").status_code == 302
    page = client.get(f"/wallet/requests/{request_id}")
    assert f'value="urn:cead:document:{digest}"' in page.text
    done = client.post(f"/wallet/requests/{request_id}/approve", data={
        "csrf": csrf_of(page.text), "delegation": w["delegation"].id, "controller_basis": PUBLIC_TASK,
        "data_categories": "https://w3id.org/cead/vocab#SchoolEnrolment", "protocol": "threshold",
        "min_cell_count": "10", "retention": "P1Y", "cadence": "R/2025-01-01T00:00:00Z/P1M",
        "sensitivity": "Pseudonymised", "dpia_outcome": "LowRisk", "onward_sharing": "Prohibited",
        "dpia_reference": f"urn:cead:document:{digest}", "not_before": "2026-01-01", "not_after": "2027-06-30"})
    assert done.status_code == 302, _text(done.text)[:2000]
    approval_id = sharing.get_request(wallet, request_id).approval_id
    [held] = [r for r in w["requester"]["wallet"].search(type="DataSharingApprovalCredential")
              if r.credential_id == approval_id]
    assert held.document["credentialSubject"]["dpia"]["reference"] == f"urn:cead:document:{digest}"
    dpia = next(s for s in approval_view.conditions(held.document, Directory({})) if s.key == "dpia")
    assert any(f"pinned by its digest {digest}" in line for line in dpia.lines)


def test_a_search_narrows_the_catalogue_keeping_the_chosen_datasets(env):
    found = _form(env["client"], action="search", dataset_search="health", datasets=[MEALS])
    assert found.status_code == 200 and "There is a problem" not in found.text
    text = _text(found.text)
    assert "Pupil health records \u2014 Fife Council" in text               # matches the words
    assert "School meals register \u2014 Fife Council" in text              # chosen: always listed
    assert 'value="health"' in found.text
    none = _form(env["client"], action="search", dataset_search="housing", datasets=None)
    assert "Pupil health records" not in none.text and "School meals register" not in none.text


def test_how_often_can_be_said_in_words(env):
    from datetime import date

    from wallet.forms import cadence_from_words
    assert cadence_from_words("Quarterly", date(2026, 12, 3)) == "R/2026-12-01T00:00:00Z/P3M"
    assert cadence_from_words("once", date(2026, 12, 3)) == "R1/2026-12-01T00:00:00Z/P1D"
    assert cadence_from_words("R/2025-01-01T00:00:00Z/P1W") == "R/2025-01-01T00:00:00Z/P1W"   # as written
    # a start date in words, and back: what the approval form shows for a request's cadence
    from wallet.forms import cadence_in_words, duration_in_words
    assert cadence_from_words("Monthly from 1 April 2027") == "R/2027-04-01T00:00:00Z/P1M"
    assert cadence_from_words("monthly from 31 February 2027") == "monthly from 31 February 2027"   # no such day
    assert cadence_in_words("R/2026-11-01T00:00:00Z/P3M") == "quarterly from 1 November 2026"
    for iso in ("R/2026-11-23T14:44:53Z/P1M", "R12/2026-01-01T00:00:00Z/P1M", "R/2026-01-01T00:00:00Z/P5D"):
        assert cadence_in_words(iso) == iso          # no words say exactly that: shown as written
    assert [duration_in_words(v) for v in ("P1Y", "P18M", "P90D", "P1Y6M")] == ["1 year", "18 months", "90 days",
                                                                                   "P1Y6M"]
    page = env["client"].get("/wallet/requests/new")
    assert 'value="monthly"' in page.text and "In words: once, daily, weekly" in _text(page.text)
    sent = _form(env["client"], cadence="quarterly")
    assert sent.status_code == 502 and "sharing.unreachable" in sent.text     # valid: it was sent
    vague = _form(env["client"], cadence="every so often")
    assert vague.status_code in (200, 400, 422) and "in words (for example monthly" in _error(vague.text, "cadence")
    from wallet.forms import duration_from_words
    assert [duration_from_words(v) for v in ("1 year", "18 Months", "90 days", "P2Y", "a while")] == \
        ["P1Y", "P18M", "P90D", "P2Y", "a while"]
    kept = _form(env["client"], retention="18 months")
    assert kept.status_code == 502 and "sharing.unreachable" in kept.text     # valid: it was sent
    unclear = _form(env["client"], retention="a while")
    assert "such as 1 year, 6 months or 90 days" in _error(unclear.text, "retention")


def test_a_citation_is_named_as_people_write_it_and_never_guessed():
    from schemas.words import law_words
    base = "https://www.legislation.gov.uk/"
    assert law_words(base + "eur/2016/679/article/6/1/f") == "UK GDPR Article 6(1)(f)"
    assert law_words(base + "ukpga/2018/12/section/36/4") == "Data Protection Act 2018 section 36(4)"
    assert law_words(base + "ukpga/2018/12/schedule/19/paragraph/44") == \
        "Data Protection Act 2018 Schedule 19 paragraph 44"
    assert law_words(base + "ukpga/2017/30/part/5") == "Digital Economy Act 2017 Part 5"
    for unknown in (base + "ukpga/2010/15/section/1", base + "eur/2016/679/article", "https://example.org/a/6"):
        assert law_words(unknown) == unknown                     # an Act or a path it cannot read: as given


def test_the_wizard_keeps_a_document_by_its_digest_never_by_a_path(env):
    """A document attached on an earlier try comes back as its digest (``agreement_pin``), the name of a file in
    ``HOME/documents``. The page took any text there as a path: ``../web-secret`` or ``/etc/hostname`` showed as
    "Attached already" with its size (a file probe for any analyst) and would have been pinned into the request."""
    node, client = env["node"], env["client"]          # the catalogue imported, Ana (an analyst) signed in
    kept = _form(client, action="columns", agreement_file=(io.BytesIO(b"Our agreement."), "dsa.docx"))
    digest = kept.text.split('name="agreement_pin" value="', 1)[1].split('"', 1)[0]
    again = _form(client, action="columns", agreement_file=None, agreement_pin=digest, agreement_title="dsa.docx")
    assert "Attached already: dsa.docx (14 bytes)" in _text(again.text)         # a real pin still works
    for probe in ("../web-secret", str(node.home / "web-secret"), "../config.yaml", "/etc/hostname"):
        page = _form(client, action="columns", agreement_file=None, agreement_pin=probe, agreement_title="x")
        assert page.status_code == 200 and "Attached already" not in _text(page.text), probe
        assert probe not in page.text
