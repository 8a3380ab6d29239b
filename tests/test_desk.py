"""The approver's desk without a browser: staff accounts and roles, the audit log, asking for changes and refusing
with reasons, forms that keep what was typed, names for identifiers, column flags and the ICO checklist.
(The whole journey in a real browser, with axe-core, is tests/test_desk_browser.py.)"""
from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from issuer import staff
from verifier.results import CeadError
from wallet import desk
from wallet import sharing
from wallet.app import create_node_app
from wallet.casefile import RequestCase
from wallet.names import Directory

from test_pages import csrf_of
from test_sharing import DATASET, _credential, make_request, send, the_rest, world  # noqa: F401 (the three-node HTTPS world)

PASSWORD = "correct horse battery staple"


def account_sign_in(client, username: str, password: str = PASSWORD):
    page = client.get("/dpo/sign-in")
    return client.post("/dpo/sign-in", data={"username": username, "password": password,
                                             "csrf": csrf_of(page.text)})


def test_passwords_are_argon2id_hashes_and_wrong_or_disabled_accounts_cannot_sign_in(tmp_path):
    from issuer.db import make_engine
    engine = make_engine(f"sqlite:///{tmp_path / 'staff.db'}")
    staff.migrate(engine)
    row = staff.create_account(engine, "Morag", "Morag Example", "dpo", PASSWORD)
    assert row.username == "morag" and row.password_hash.startswith("$argon2id$") and PASSWORD not in row.password_hash
    who = staff.authenticate(engine, "morag", PASSWORD)
    assert who.role == "dpo" and who.may("issue:delegation") and not who.may("staff:manage")
    for username, password in (("morag", "wrong password here"), ("nobody", PASSWORD)):
        with pytest.raises(CeadError) as refused:
            staff.authenticate(engine, username, password)
        assert refused.value.code == "staff.sign_in_failed"
    staff.set_disabled(engine, "morag", True)
    with pytest.raises(CeadError):
        staff.authenticate(engine, "morag", PASSWORD)
    for bad, field in ((("x y", "N", "iao", PASSWORD)), "username"), (("ok", "N", "boss", PASSWORD), "role"), \
            (("ok", "N", "iao", "short"), "password"):
        with pytest.raises(CeadError) as exc:
            staff.create_account(engine, *bad)
        assert exc.value.code == "staff.invalid" and exc.value.detail["field"] == field
    with pytest.raises(CeadError) as taken:
        staff.create_account(engine, "MORAG", "Other", "iao", PASSWORD)
    assert taken.value.code == "staff.exists"


def test_cead_staff_add_list_disable(tmp_path, monkeypatch):
    from cead.cli import main  # noqa: F401 (the assembled command line)
    from issuer.node import Node
    from issuer.staff.cli import staff as staff_cli
    Node.init(tmp_path / "n", "Test Council", b"a passphrase for tests", domain="example.gov.scot")
    runner = CliRunner()
    monkeypatch.setenv("CEAD_STAFF_PASSWORD", PASSWORD)
    added = runner.invoke(staff_cli, ["add", "--home", str(tmp_path / "n"), "--username", "ian", "--name",
                                      "Ian Owner", "--role", "iao"])
    assert added.exit_code == 0 and "Account ian (Information Asset Owner) added." in added.output
    listed = runner.invoke(staff_cli, ["list", "--home", str(tmp_path / "n")])
    assert "ian\tIan Owner\tiao" in listed.output and "active" in listed.output
    assert runner.invoke(staff_cli, ["disable", "--home", str(tmp_path / "n"), "ian"]).exit_code == 0
    assert "disabled" in runner.invoke(staff_cli, ["list", "--home", str(tmp_path / "n")]).output
    monkeypatch.setenv("CEAD_STAFF_PASSWORD", "short")
    short = runner.invoke(staff_cli, ["add", "--home", str(tmp_path / "n"), "--username", "amy", "--name", "Amy",
                                      "--role", "analyst"])
    assert short.exit_code != 0 and "staff.invalid" in short.output


def test_roles_decide_who_may_approve_and_every_decision_is_audited(world):  # noqa: F811
    w = world
    node, wallet = w["iao"]["node"], w["iao"]["wallet"]
    staff.migrate(node.engine)
    staff.create_account(node.engine, "ana", "Ana Analyst", "analyst", PASSWORD)
    staff.create_account(node.engine, "ida", "Ida Owner", "iao", PASSWORD)
    first = send(w)
    client = create_node_app(node, wallet=wallet).test_client()

    assert account_sign_in(client, "ida", "not the password").status_code == 401
    assert account_sign_in(client, "ana").status_code == 302
    page = client.get(f"/wallet/requests/{first['id']}")
    assert page.status_code == 200 and "deciding needs the Information Asset Owner role" in page.text
    csrf = csrf_of(page.text)
    denied = client.post(f"/wallet/requests/{first['id']}/decide", data={"csrf": csrf, "decision": "refuse",
                                                                          "reason": "No."})
    assert denied.status_code == 403 and "auth.scope" in denied.text
    client.post("/dpo/sign-out", data={"csrf": csrf})

    assert account_sign_in(client, "ida").status_code == 302
    page = client.get(f"/wallet/requests/{first['id']}")
    csrf = csrf_of(page.text)
    # no reason: shown beside the field and in the summary, the choice kept, nothing decided
    empty = client.post(f"/wallet/requests/{first['id']}/decide", data={"csrf": csrf, "decision": "changes",
                                                                         "reason": ""})
    assert empty.status_code == 400 and 'id="reason-error"' in empty.text and "There is a problem" in empty.text
    assert re.search(r'value="changes"[^>]*checked|checked[^>]*value="changes"', empty.text)
    assert sharing.get_request(wallet, first["id"]).status == "pending"
    asked = client.post(f"/wallet/requests/{first['id']}/decide", data={
        "csrf": csrf, "decision": "changes", "reason": "Drop pupil_id: counts by school are enough."})
    assert asked.status_code == 302
    row = sharing.get_request(wallet, first["id"])
    assert row.status == "changes requested" and row.reason.startswith("Drop pupil_id") and row.decided_by == "ida"
    shown = client.get(f"/wallet/requests/{first['id']}").text
    assert "changes requested" in shown and "Drop pupil_id" in shown and "asked for changes by Ida Owner (Information Asset Owner)" in shown
    # the reasons were delivered back to the requester's node, and its request pages show them
    from wallet import answers
    [answer] = [a for a in answers.list_answers(w["requester"]["wallet"]) if a.request_ref == first["id"]]
    assert answer.status == "changes requested" and answer.reasons.startswith("Drop pupil_id")
    assert answer.sender == node.did
    requester_client = create_node_app(w["requester"]["node"], wallet=w["requester"]["wallet"]).test_client()
    staff.migrate(w["requester"]["node"].engine)
    staff.create_account(w["requester"]["node"].engine, "amy", "Amy Analyst", "analyst", PASSWORD)
    assert account_sign_in(requester_client, "amy").status_code == 302
    listing = requester_client.get("/wallet/requests").text
    assert "Answers to your requests" in listing and "Drop pupil_id" in listing

    second = send(w)
    refused = client.post(f"/wallet/requests/{second['id']}/decide", data={
        "csrf": csrf, "decision": "refuse", "reason": "No lawful basis for the health columns."})
    assert refused.status_code == 302 and sharing.get_request(wallet, second["id"]).status == "refused"
    # the same request again: the page shows this node's own earlier refusal and its reasons as a precedent
    third = send(w)
    again = client.get(f"/wallet/requests/{third['id']}").text
    precedents = again[again.index('id="precedents"'):again.index('id="approve"')]
    assert "No lawful basis for the health columns." in precedents and "By this node" in precedents
    assert "the same organisation asked for the same datasets for the same purposes" in precedents
    pack = client.get(f"/wallet/requests/{third['id']}/board-pack.html")
    assert pack.status_code == 200 and "text/html" in pack.content_type
    # the board reads names and dates, identifiers beside them: the requester as its trusted certifier names it
    import json
    from test_wallet_support import CYBER_ESSENTIALS
    policy = node.home / "policy.yaml"
    policy.write_text(json.dumps({"certification_bodies": {CYBER_ESSENTIALS: [w["controller"]["node"].did]}}))
    try:
        pack = client.get(f"/wallet/requests/{third['id']}/board-pack.html").text
        agreement = client.get(f"/wallet/requests/{third['id']}/agreement.docx").data
    finally:
        policy.unlink()
    import io
    from docx import Document
    words = "\n".join(p.text for p in Document(io.BytesIO(agreement)).paragraphs)
    assert "Receiving organisation: Example Council (did:web:" in words             # to be signed: names
    assert "Purpose: Free school meal auto-enrolment" in words and "cead:" not in words
    assert "UK GDPR Art 6(1)(e) public task" in words and "under UKGDPR" not in words
    assert "<td>Example Council <span class='muted'>did:web:" in pack                 # not the DID alone
    assert "until 1 January 2030" in pack and "2030-01-01" not in pack
    assert "Lawful basis (UK GDPR" in pack and "(UKGDPR)" not in pack
    assert "Refused, " in pack and "by this organisation" in pack              # the earlier refusal, in words
    second_pack = client.get(f"/wallet/requests/{second['id']}/board-pack.html").text
    assert "Refused by Ida Owner on " in second_pack                           # a person, not a user name
    docx = client.get(f"/wallet/requests/{third['id']}/agreement.docx")
    assert docx.status_code == 200 and docx.data[:2] == b"PK" and docx.headers["X-Cead-Digest"].startswith("sha256-")
    actions = [(e.who, e.role, e.action) for e in staff.audit_log(node.engine)]
    assert ("ida", "iao", "refused") in actions and ("ida", "iao", "asked for changes") in actions
    assert ("ida", "iao", "signed in") in actions and ("ida", None, "sign-in refused") in actions


def _audit_rows(page: str) -> list[dict]:
    """The staff page's audit log: each row's cells by heading, as text and as HTML."""
    table = page[page.index("cead-audit-log"):]
    table = table[:table.index("</table>")]
    rows = []
    for tr in re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]:
        cells = dict(re.findall(r'<td data-heading="([^"]+)"[^>]*>(.*?)</td>', tr, re.S))
        rows.append(cells)
    return rows


def test_the_staff_audit_log_says_who_did_what_and_on_what_in_words(world):  # noqa: F811
    """For an auditor: who by full name (username under it, in the identifiers' monospace), the role by its label,
    the action as a phrase (an unknown code as it is written), and what it was done on by name (a request by who
    asks and for which dataset, a credential by its kind and subject, a person by name), the identifier under it;
    ``cead staff log`` says the same, and its --json keeps the codes and adds the words."""
    import html
    import json
    from cead.cli import main
    from issuer import issuing
    w = world
    node, wallet = w["iao"]["node"], w["iao"]["wallet"]
    staff.migrate(node.engine)
    staff.create_account(node.engine, "isla", "Isla Owner", "iao", PASSWORD)
    staff.create_account(node.engine, "adele", "Adele Admin", "admin", PASSWORD)
    request_id = send(w)["id"]
    client = create_node_app(node, wallet=wallet).test_client()
    assert account_sign_in(client, "isla").status_code == 302
    csrf = csrf_of(client.get(f"/wallet/requests/{request_id}").text)
    assert client.post(f"/wallet/requests/{request_id}/decide", data={
        "csrf": csrf, "decision": "refuse", "reason": "Counts by school are enough."}).status_code == 302
    client.post("/dpo/sign-out", data={"csrf": csrf})
    assert account_sign_in(client, "isla", "not the password").status_code == 401
    # a delegation this node signed, revoked from the register by the administrator
    issued = issuing.issue(node, _credential("DelegatedAuthorityCredential", {
        "id": "did:web:deputy.example", "name": "Dee Deputy", "role": "InformationAssetOwner",
        "onBehalfOf": node.did, "allowedActions": ["ApproveDisclosure"], "scope": {"datasets": [DATASET]}}),
        {"credentialStatus": {"type": "BitstringStatusListEntry", "statusPurpose": ["revocation", "suspension"]}})
    assert account_sign_in(client, "adele").status_code == 302
    csrf = csrf_of(client.get("/dpo/register").text)
    assert client.post("/dpo/status", data={"csrf": csrf, "credential_id": issued.id, "action": "revoke",
                                            "confirm": "yes"}).status_code == 302
    made = client.post("/dpo/staff", data={"csrf": csrf, "username": "nell", "full_name": "Nell New",
                                           "role": "analyst", "password": PASSWORD})
    assert made.status_code == 302
    staff.record(node.engine, "adele", "exported the moon", role="admin", target="moon-1")   # a code no page writes

    names = node.home / "names.json"            # the names this node knows: the requester's and the dataset's
    assert not names.exists()
    names.write_text(json.dumps({w["requester"]["node"].did: "Requesting Council", DATASET: "School meals register"}))
    try:
        page = client.get("/dpo/staff")
        out = CliRunner().invoke(main, ["staff", "log", "--home", str(node.home), "--limit", "200"])
        as_json = CliRunner().invoke(main, ["staff", "log", "--home", str(node.home), "--json"])
    finally:
        names.unlink()
    assert page.status_code == 200
    rows = _audit_rows(page.text)
    text = [{k: html.unescape(re.sub(r"<[^>]+>", " ", v)).split() for k, v in r.items()} for r in rows]
    said = [{k: " ".join(v) for k, v in r.items()} for r in text]

    def row(action: str, target: str) -> dict:
        [found] = [r for r, s in zip(rows, said) if s.get("Action") == action and target in r.get("On", "")]
        return found

    refused = row("refused a data-sharing request", request_id)
    assert refused["Who"] == 'Isla Owner<span class="cead-id cead-id-beside">isla</span>'
    assert refused["Role"] == "Information Asset Owner"
    assert refused["On"] == ("the request from Requesting Council for School meals register"
                             f'<span class="cead-id cead-id-beside">{request_id}</span>')
    revoked = row("revoked a credential", issued.id)
    assert revoked["Who"].startswith("Adele Admin<") and revoked["Role"] == "Administrator"
    assert revoked["On"] == ('Delegation of approval authority for Dee Deputy'
                             f'<span class="cead-id cead-id-beside">{issued.id}</span>')
    assert row("added a staff account", ">nell<")["On"] == 'Nell New<span class="cead-id cead-id-beside">nell</span>'
    signed_in = [(r["Who"].split("<")[0], r["Role"]) for r, t in zip(rows, said) if t["Action"] == "signed in"]
    assert {("Isla Owner", "Information Asset Owner"), ("Adele Admin", "Administrator")} <= set(signed_in)
    [typed] = [r for r, t in zip(rows, said) if t["Action"].startswith("a sign-in with this username was refused")
               and r["Who"] == "isla"]            # the username typed, not read as Isla Owner having tried
    assert typed["Role"] == "" and typed["On"] == ""
    unknown = row("exported the moon", "moon-1")                                           # shown as itself, no error
    assert unknown["On"] == '<span class="cead-id">moon-1</span>'
    assert not any(s.get("Action") in ("refused", "revoke credential", "created staff account")
                   for s in said)                                                # no code where words exist
    assert not any(s.get("Role") in staff.ROLES for s in said)

    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert any(line.endswith("\tIsla Owner (isla)\tInformation Asset Owner\trefused a data-sharing request\t"
                             f"the request from Requesting Council for School meals register ({request_id})")
               for line in lines), lines[:8]
    assert any(line.endswith(f"\tAdele Admin (adele)\tAdministrator\trevoked a credential\tDelegation of approval "
                             f"authority for Dee Deputy ({issued.id})") for line in lines), lines[:8]
    assert any(line.endswith("\tAdele Admin (adele)\tAdministrator\texported the moon\tmoon-1") for line in lines)
    assert as_json.exit_code == 0, as_json.output
    entries = json.loads(as_json.output)
    [moon] = [e for e in entries if e["action"] == "exported the moon"]
    assert moon == {"at": moon["at"], "who": "adele", "role": "admin", "action": "exported the moon",
                    "target": "moon-1", "detail": None, "who_name": "Adele Admin", "role_label": "Administrator",
                    "action_words": "exported the moon", "target_words": None}
    [gone] = [e for e in entries if e["action"] == "revoke credential"]
    assert (gone["who"], gone["role"], gone["target"]) == ("adele", "admin", issued.id)
    assert (gone["action_words"], gone["target_words"]) == ("revoked a credential",
                                                            "Delegation of approval authority for Dee Deputy")


def test_every_action_code_the_code_writes_has_words():
    """Every action code recorded anywhere (``audit(...)`` and ``record(...)`` calls, their f-strings expanded
    over the values they take) has a phrase in ``staff.ACTION_WORDS``; an unknown code is itself."""
    import ast
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    found = set()
    for path in [*root.joinpath("issuer").rglob("*.py"), *root.joinpath("wallet").rglob("*.py")]:
        for call in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(call, ast.Call) and getattr(call.func, "id", getattr(call.func, "attr", None))
                    in ("audit", "record")):
                continue
            args = [a for a in call.args if isinstance(a, (ast.Constant, ast.JoinedStr))]
            if getattr(call.func, "id", getattr(call.func, "attr", None)) == "record":
                args = call.args[2:3] if len(call.args) >= 3 else []
            else:
                args = call.args[:1]
            for a in args:
                if isinstance(a, ast.Constant) and isinstance(a.value, str):
                    found.add(a.value)
                elif isinstance(a, ast.JoinedStr):
                    found.add(ast.unparse(a))
    plain = {f for f in found if not f.startswith("f")}
    assert {"signed in", "sign-in refused", "approved", "refused", "sent request"} <= plain    # the search works
    assert plain <= set(staff.ACTION_WORDS), plain - set(staff.ACTION_WORDS)
    # the f-strings, with every value each takes
    from issuer.issuing import KINDS
    expanded = {f"{a} credential" for a in ("revoke", "suspend", "reinstate")} \
        | {f"issued {k}" for k in [*KINDS.values(), "credential"]} \
        | {f"{h} staff account at first OpenID Connect sign-in" for h in ("created", "linked")} \
        | {f"{a} standing approval" for a in ("revoke", "suspend", "reinstate")} \
        | {f"{a.rstrip('e')}ed approval" for a in ("revoke", "suspend", "reinstate")}
    assert len([f for f in found if f.startswith("f")]) == 5, sorted(f for f in found if f.startswith("f"))
    assert expanded <= set(staff.ACTION_WORDS), expanded - set(staff.ACTION_WORDS)
    assert staff.action_words("a code nobody wrote") == "a code nobody wrote" and staff.action_words(None) == ""
    assert staff.role_words("iao") == "Information Asset Owner" and staff.role_words("robot") == "robot"


def test_an_answer_is_taken_only_bound_to_its_url_addressed_to_the_holder_and_once(world):  # noqa: F811
    import requests as http
    from verifier.binding import origin, request_binding
    from wallet import answers
    from wallet.present import build_presentation
    w = world
    holder, requester = w["iao"]["wallet"], w["requester"]["wallet"]
    url = w["requester"]["url"] + answers.PATH
    answer = {"requestId": "abc", "requester": requester.holder, "status": "refused", "reasons": "No.",
              "datasets": [], "agreement": None, "decidedAt": "2026-12-03T00:00:00Z"}

    def post(body_answer, bound_to=None):
        vp = build_presentation(holder.holder, holder.key, holder.kid, [], audience=origin(url),
                                nonce=request_binding("POST", url, None, manifest=bound_to or body_answer))
        return http.post(url, json={"answer": body_answer, "presentation": vp}, verify=w["bundle"])

    before = len(answers.list_answers(requester))
    assert post({**answer, "reasons": "Changed in transit."}, bound_to=answer).status_code == 401
    assert post({**answer, "requester": holder.holder}).status_code == 403
    assert post({**answer, "status": "approved"}).status_code == 400
    assert len(answers.list_answers(requester)) == before
    vp = build_presentation(holder.holder, holder.key, holder.kid, [], audience=origin(url),
                            nonce=request_binding("POST", url, None, manifest=answer))
    first = http.post(url, json={"answer": answer, "presentation": vp}, verify=w["bundle"])
    again = http.post(url, json={"answer": answer, "presentation": vp}, verify=w["bundle"])
    assert first.status_code == 201 and again.status_code == 409
    assert len(answers.list_answers(requester)) == before + 1


def _approval_form(w, username: str, full_name: str, **fields) -> tuple:
    """An IAO signed in on a new request's decision page: (client, request id, the register's size, the approval
    form with the page's CSRF token and ``fields`` over a complete set of answers)."""
    node, wallet = w["iao"]["node"], w["iao"]["wallet"]
    staff.migrate(node.engine)
    staff.create_account(node.engine, username, full_name, "iao", PASSWORD)
    request_id = send(w)["id"]
    client = create_node_app(node, wallet=wallet).test_client()
    assert account_sign_in(client, username).status_code == 302
    page = client.get(f"/wallet/requests/{request_id}")
    before = len(__import__("issuer.issuing", fromlist=["register"]).register(node))
    form = {"csrf": csrf_of(page.text), "delegation": w["delegation"].id, "controller_basis":
            "https://www.legislation.gov.uk/eur/2016/679/article/6/1/e", "protocol": "threshold", "min_cell_count": "10",
            "retention": "P1Y", "cadence": "R/2026-01-01T00:00:00Z/P1M", "sensitivity": "Pseudonymised",
            "dpia_outcome": "LowRisk", "onward_sharing": "Prohibited", "not_before": "2026-12-03",
            "not_after": "2027-06-30", **fields}
    return client, request_id, before, form


def test_the_approval_form_keeps_what_was_typed_with_messages_beside_the_fields(world):  # noqa: F811
    w = world
    node, wallet = w["iao"]["node"], w["iao"]["wallet"]
    client, request_id, before, form = _approval_form(w, "ivy", "Ivy Owner", min_cell_count="", retention="one year",
                                                      not_after="2026-01-01", max_rows="250")
    bad = client.post(f"/wallet/requests/{request_id}/approve", data=form)
    assert bad.status_code == 400
    for field in ("data_categories", "min_cell_count", "retention", "not_after"):
        assert f'id="{field}-error"' in bad.text, field
    assert 'value="one year"' in bad.text and 'value="250"' in bad.text            # what was typed is kept
    assert sharing.get_request(wallet, request_id).status == "pending"
    assert len(__import__("issuer.issuing", fromlist=["register"]).register(node)) == before   # nothing signed


def test_an_approval_for_a_period_already_over_is_refused_beside_its_date(world):  # noqa: F811
    """An IAO who types last year's end date is told beside the field that the approval could never be used, and
    nothing is signed; an end date of today is accepted by the form (it is in force to 23:59:59 UTC)."""
    from datetime import date, timedelta
    w = world
    node, wallet = w["iao"]["node"], w["iao"]["wallet"]
    yesterday, today = date.today() - timedelta(days=1), date.today()
    client, request_id, before, form = _approval_form(w, "ilse", "Ilse Owner", not_before="2025-01-01",
                                                      not_after=yesterday.isoformat())
    bad = client.post(f"/wallet/requests/{request_id}/approve", data=form)
    assert bad.status_code == 400
    error = bad.text[bad.text.index('id="not_after-error"'):][:600]
    assert f"{yesterday.day} {yesterday:%B %Y} is before today: the approval would already have ended" in error, error
    assert sharing.get_request(wallet, request_id).status == "pending"
    assert len(__import__("issuer.issuing", fromlist=["register"]).register(node)) == before   # nothing signed
    fine = client.post(f"/wallet/requests/{request_id}/approve", data={**form, "not_after": today.isoformat(),
                                                                        "action": "check"})     # checked, not signed
    assert fine.status_code == 200 and "is before today" not in fine.text
    assert 'id="not_after-error"' not in fine.text


def test_the_decision_page_says_where_each_part_is(world):  # noqa: F811
    """A long page: "On this page" lists its parts, each link leading to a part that is there, the approval form
    and the refusal among them while the request waits for a decision."""
    import re
    w = world
    client, request_id, _, _ = _approval_form(w, "iain", "Iain Owner")
    page = client.get(f"/wallet/requests/{request_id}").text
    nav = page[page.index('aria-labelledby="on-this-page"'):page.index("</nav>", page.index('id="on-this-page"'))]
    anchors = re.findall(r'href="#([^"]+)">([^<]+)</a>', nav)
    assert [a for a, _ in anchors] == ["what", "who", "delegation-fit", "rule-results", "ico-checklist",
                                       "minimisation", "precedents", "documents", "approve", "decide", "history"]
    for anchor, _ in anchors:
        assert page.count(f'id="{anchor}"') == 1, anchor


def test_one_delegation_choice_checks_the_page_again_under_it_and_keeps_what_was_typed(world):  # noqa: F811
    """The page has one place to choose the delegation: the field the approval is signed under. "Check under this
    delegation" shows the page's checks under the one chosen, with the form as typed, and signs nothing."""
    w = world
    node, wallet = w["iao"]["node"], w["iao"]["wallet"]
    staff.migrate(node.engine)
    staff.create_account(node.engine, "iona", "Iona Owner", "iao", PASSWORD)
    request_id = send(w)["id"]
    client = create_node_app(node, wallet=wallet).test_client()
    assert account_sign_in(client, "iona").status_code == 302
    page = client.get(f"/wallet/requests/{request_id}")
    assert page.text.count('name="delegation"') == 1                    # one choice, not two that can disagree
    assert "You are deciding under: <strong>" in page.text
    before = len(__import__("issuer.issuing", fromlist=["register"]).register(node))
    checked = client.post(f"/wallet/requests/{request_id}/approve", data={
        "csrf": csrf_of(page.text), "action": "check", "delegation": "", "retention": "2 years",
        "max_rows": "250"})
    assert checked.status_code == 200
    assert "You are deciding under" not in checked.text                  # now: as this organisation itself
    assert re.search(r'<option[^>]*selected[^>]*value=""|<option value=""[^>]*selected', checked.text)
    assert 'value="2 years"' in checked.text and 'value="250"' in checked.text      # what was typed is kept
    assert 'id="retention-error"' not in checked.text                    # a check, not a submission
    assert sharing.get_request(wallet, request_id).status == "pending"
    assert len(__import__("issuer.issuing", fromlist=["register"]).register(node)) == before   # nothing signed


def test_only_a_certifier_the_node_trusts_names_an_organisation(tmp_path):
    """A signature proves who made a certification, not that its names are true: anyone can sign one naming itself
    "Police Scotland". Names come only from certifiers the node's trust policy trusts."""
    import json
    from issuer_fixtures import make_node
    from test_wallet_support import CYBER_ESSENTIALS
    node = make_node(tmp_path / "h")
    certifier, council, impostor = "did:web:certifier.example", "did:web:council.example", "did:web:impostor.example"
    forged = {"subject": impostor, "legalName": "Police Scotland", "issuer": impostor,
              "certificationBody": "Police Scotland", "scheme": CYBER_ESSENTIALS}
    real = {"subject": council, "legalName": "Example Council", "issuer": certifier,
            "certificationBody": "Scottish Cyber Assurance", "scheme": CYBER_ESSENTIALS}
    names = Directory.for_node(node, None, [forged, real])
    assert names.known(impostor) is None and names.known(council) is None      # no policy: no certifier trusted
    assert "Police Scotland" not in str(names.name(impostor))
    (node.home / "policy.yaml").write_text(json.dumps({"certification_bodies": {CYBER_ESSENTIALS: [certifier]}}))
    names = Directory.for_node(node, None, [forged, real])
    assert names.known(council) == "Example Council" and names.known(certifier) == "Scottish Cyber Assurance"
    assert names.known(impostor) is None and str(names.name(impostor)) == "the organisation at impostor.example"
    # a certification held in the wallet: the same rule (its issuer, not a body id it states, gets the body's name)
    held = Directory.for_node(node)
    held.learn_certification({"issuer": impostor, "credentialSubject": {
        "id": council, "legalName": "Police Scotland", "certificationBody": {"id": certifier, "name": "Forged"}}})
    assert held.known(certifier) is None and held.known(council) is None


def test_names_flags_and_the_ico_checklist():
    names = Directory({"did:web:fife.example": "Fife Council"})
    assert str(names.name("did:web:fife.example")) == "Fife Council"
    assert str(names.name("cead:FreeSchoolMealAutoEnrolment")) == "Free school meal auto-enrolment"
    assert str(names.name("https://www.legislation.gov.uk/eur/2016/679/article/9/2/h")).startswith("UK GDPR Art 9(2)(h)")
    flags = {f["column"]: f["why"] for f in desk.minimisation(["pupil_id", "school", "ethnic_group",
                                                                "offence_code", "postcode"])}
    assert flags == {"pupil_id": ["a direct identifier"], "ethnic_group": ["special category data"],
                     "offence_code": ["criminal offence data"], "postcode": ["a direct identifier"]}
    request = {"agreement": {"id": "urn:x", "digest": "sha256-" + "A" * 43}, "justification": "x",
               "lawfulBasis": {"regime": "UKGDPR", "legalBases": [
                   "https://www.legislation.gov.uk/eur/2016/679/article/6/1/e"]}}
    bare = {c.title: c.state for c in desk.ico_checklist(request, None, [])}
    assert bare["Transparency"] == "bad" and bare["Individuals' rights"] == "bad" and bare["DPIA screening"] == "warn"
    case = RequestCase.model_validate({"transparency": "Privacy notice.", "rights": "Via the DPO.",
                                       "dpiaScreening": {"specialCategory": True}})
    full = {c.title: c for c in desk.ico_checklist(request, case, [])}
    assert full["Transparency"].state == "ok" and full["DPIA screening"].state == "bad"
    assert "No DPIA is attached" in full["DPIA screening"].text
    rules = desk.rule_results(names, request, ["https://w3id.org/dpv/pd#Health"])
    special = next(r for r in rules if r.title == "A condition for special category data")
    assert special.state == "bad" and special.cite[1].endswith("/article/9")


def test_a_guided_approval_is_issued_delivered_and_renewed_from_the_page(world):  # noqa: F811
    w = world
    node, wallet = w["iao"]["node"], w["iao"]["wallet"]
    staff.migrate(node.engine)
    staff.create_account(node.engine, "rae", "Rae Owner", "iao", PASSWORD)
    request_id = send(w)["id"]
    client = create_node_app(node, wallet=wallet).test_client()
    assert account_sign_in(client, "rae").status_code == 302
    page = client.get(f"/wallet/requests/{request_id}")
    # the form offers the request's cadence and a retention in the words it takes, not as ISO 8601
    cadence = re.search(r'name="cadence"[^>]*value="([^"]*)"|value="([^"]*)"[^>]*name="cadence"', page.text)
    retention = re.search(r'name="retention"[^>]*value="([^"]*)"|value="([^"]*)"[^>]*name="retention"', page.text)
    assert re.fullmatch(r"(monthly|quarterly|yearly|weekly|daily|once) from \d{1,2} [A-Z][a-z]+ \d{4}",
                        cadence.group(1) or cadence.group(2)), cadence.group(0)
    assert re.fullmatch(r"\d+ (year|month|week|day)s?", retention.group(1) or retention.group(2)), retention.group(0)
    # the form is not complete yet: the page names the question to answer, and says the dates as dates
    assert "List should have" not in page.text and "Answer “Categories of personal data” above" in page.text
    assert '<td data-heading="Your delegation allows">approve disclosures</td>' in page.text   # actions in words
    assert re.search(r"From \d{1,2} [A-Z][a-z]+ \d{4}(, \d\d:\d\d UTC)? until \d{1,2} [A-Z][a-z]+ \d{4}", page.text)
    csrf = csrf_of(page.text)
    done = client.post(f"/wallet/requests/{request_id}/approve", data={
        "csrf": csrf, "delegation": w["delegation"].id, "controller_basis":
        "https://www.legislation.gov.uk/eur/2016/679/article/6/1/e", "data_categories":
        "https://w3id.org/cead/vocab#SchoolEnrolment", "protocol": "threshold", "min_cell_count": "10",
        "retention": "P1Y", "cadence": "R/2025-01-01T00:00:00Z/P1M", "sensitivity": "Pseudonymised",
        "dpia_outcome": "LowRisk", "onward_sharing": "Prohibited", "not_before": "2026-01-01",
        "not_after": "2027-06-30"})
    assert done.status_code == 302, done.text
    first = sharing.get_request(wallet, request_id).approval_id
    shown = client.get(f"/wallet/requests/{request_id}").text
    assert "What was approved" in shown and "at least 10 people" in shown and "Renew" in shown
    assert "Decided under" in shown and "Within your delegation" in shown       # the approval as issued, checked
    # the rulebook's results are those of the approval as issued, not a prompt to fill in a form that is gone
    rules = shown[shown.index('id="rule-results-title"'):shown.index('id="ico-checklist"')]
    assert "Complete the approval form below" not in rules and "the form below answers" not in rules
    assert rules.count('<li class="cead-ok">') >= 3 and '<li class="cead-bad">' not in rules
    renewed = client.post(f"/wallet/requests/{request_id}/renew", data={"csrf": csrf, "renew_until": "2028-03-31"})
    assert renewed.status_code == 302
    row = sharing.get_request(wallet, request_id)
    assert row.approval_id != first and row.delivered_at is not None
    held = {r.credential_id: r for r in w["requester"]["wallet"].search(type="DataSharingApprovalCredential")}
    assert first in held and row.approval_id in held
    assert held[row.approval_id].document["credentialSubject"]["notAfter"].startswith("2028-03-31")
    actions = [e.action for e in staff.audit_log(node.engine, target=request_id)]
    assert "approved" in actions and "renewed approval" in actions


def test_the_node_s_imported_catalogue_names_datasets_and_publishers(tmp_path):
    from issuer import catalogue
    from issuer.node import Node
    from test_catalogue import BASE, PUBLISHER, turtle
    node, _ = Node.init(tmp_path / "n", "Test Council", b"a passphrase for tests", domain="example.gov.scot")
    catalogue.import_catalogue(node, "catalog.ttl", data=turtle(3), fmt="turtle",
                               publishers={PUBLISHER: "did:web:fife.example"})
    names = Directory.for_node(node)
    assert str(names.name(f"{BASE}ds-1")) == "Dataset 1"
    assert str(names.name("did:web:fife.example")) == "Fife Council"
    assert str(names.name(node.did)) == "Test Council"


def test_lawful_rule_results_are_shown_as_the_rule_engine_gives_them():
    """The decision page's rule results take verifier.lawful's results (met / unmet / advice) when installed."""
    from types import SimpleNamespace
    calls = []

    def evaluate(subject):
        calls.append(subject)
        return [{"rule": "art9", "title": "Article 9 condition", "outcome": "unmet",
                 "citation": "https://www.legislation.gov.uk/eur/2016/679/article/9", "explanation": "Health data "
                 "need an Article 9 condition.", "finding": "None was given.", "satisfy": "Add Art 9(2)(h)."},
                {"rule": "art6", "title": "Article 6 basis", "outcome": "met", "explanation": "Public task."}]
    engine = SimpleNamespace(evaluate=evaluate)
    assert [c.state for c in desk._from_lawful(engine, {}, None)] == ["warn"] and calls == []   # form incomplete
    unmet, met = desk._from_lawful(engine, {}, {"purposes": []})
    assert unmet.state == "bad" and "Add Art 9(2)(h)." in unmet.text and unmet.cite[1].endswith("/article/9")
    assert met.state == "ok" and "Add" not in met.text
    broken = desk._from_lawful(SimpleNamespace(evaluate=lambda s: 1 / 0), {}, {"x": 1})
    assert broken[0].state == "warn" and "could not run" in broken[0].title
    # an approval form not yet complete is said in the form's own words, not as the model's validation message
    def incomplete(subject):
        raise CeadError("credential.invalid", "DataSharingApprovalCredential: dataCategories: List should have at "
                        "least 1 item after validation, not 0")
    waiting = desk._from_lawful(SimpleNamespace(evaluate=incomplete), {}, {"x": 1})
    assert waiting[0].state == "warn" and "Categories of personal data" in waiting[0].text
    assert "List should have" not in waiting[0].text and "could not run" not in waiting[0].title
    # and the line above the Approve button says which question to answer, not the validator's message
    assert desk.form_problem("DataSharingApprovalCredential: dataCategories: List should have at least 1 item "
                             "after validation, not 0") == "Answer “Categories of personal data” above before approving."
    assert desk.form_problem("DataSharingApprovalCredential: maxRowsPerTransfer: Input should be greater than 0") \
        == "Check “Row limit per transfer” above: Input should be greater than 0"
    assert desk.form_problem("something else went wrong") == "something else went wrong"


def test_a_rule_met_reads_as_not_the_case_for_each_party_by_name():
    """Rules are named for what they guard against ("No Art 6 lawful basis") and run once per party: a rule met is
    shown "— not the case for <party's name>", without the engine's bare "met.", so a tick never sits beside a
    problem's name, and the two parties' results are told apart; a rule unmet names its party too."""
    from types import SimpleNamespace

    from verifier.lawful import engine
    fife, dundee = "did:web:fife.example", "did:web:dundee.example"
    names = SimpleNamespace(name=lambda d: {fife: "Fife Council", dundee: "Dundee City Council"}.get(d, d))

    def evaluate(subject):
        return [engine.RuleResult("lawful.article6_missing", "No Art 6 lawful basis", "https://x/6", "Each party "
                                  "needs a basis.", "Cite one.", engine.MET, fife, "met.").to_dict(),
                engine.RuleResult("lawful.article6_missing", "No Art 6 lawful basis", "https://x/6", "Each party "
                                  "needs a basis.", "Cite one.", engine.UNMET, dundee, "no Art 6(1) basis is "
                                  "cited.").to_dict()]
    met, unmet = desk._from_lawful(SimpleNamespace(evaluate=evaluate), {}, {"x": 1}, names)
    assert met.state == "ok" and met.title == "No Art 6 lawful basis — not the case for Fife Council"
    assert "met." not in met.text and "Cite one." not in met.text
    assert unmet.state == "bad" and unmet.title == "No Art 6 lawful basis (Dundee City Council)"
    assert "no Art 6(1) basis is cited." in unmet.text and "Cite one." in unmet.text


def test_why_an_earlier_decision_is_near_is_said_in_words_with_the_identifiers_behind_a_disclosure(world):  # noqa: F811
    """"What was decided before": each precedent says why it is near by the names the node knows (the dataset's
    title from its catalogue, the lawful basis's plain name as the rule results give it, the purpose's), never by
    IRIs; the identifiers stay one click away, in a disclosure. The board pack says the same."""
    import html
    import json
    w = world
    node, wallet = w["iao"]["node"], w["iao"]["wallet"]
    staff.migrate(node.engine)
    staff.create_account(node.engine, "nia", "Nia Owner", "iao", PASSWORD)
    catalogue = node.home / "catalogue.json"
    catalogue.write_text(json.dumps({"@id": "https://data.example.gov.scot/catalogue", "dcat:dataset": [
        {"@id": "https://data.example.gov.scot/dataset/school-meals", "dct:title": "School meals register"}]}))
    try:
        earlier = send(w)
        sharing.refuse(wallet, earlier["id"], "The pupil identifiers are not needed.", by="nia")
        now = send(w)
        client = create_node_app(node, wallet=wallet).test_client()
        assert account_sign_in(client, "nia").status_code == 302
        page = client.get(f"/wallet/requests/{now['id']}").text
        section = page[page.index('id="precedents"'):page.index('id="documents"')]
        why = html.unescape(re.search(r"Why it is near: (.*?)</span>", section, re.S).group(1))
        assert "the same dataset (School meals register)" in why, why
        assert "the same lawful basis (UK GDPR Art 6(1)(e) public task)" in why, why
        assert "the same purpose (Free school meal auto-enrolment)" in why, why
        assert "the same columns (entitlement, pupil_id)" in why, why
        assert "https://" not in why and "legalBases" not in why and "cead:" not in why, why
        disclosure = re.search(r"<details.*?</details>", section[section.index("Why it is near"):], re.S).group(0)
        assert "https://data.example.gov.scot/dataset/school-meals" in disclosure
        assert "https://www.legislation.gov.uk/eur/2016/679/article/6/1/e" in disclosure
        pack = client.get(f"/wallet/requests/{now['id']}/board-pack.html").text
        assert "The same dataset (School meals register)" in pack and "same legalBases" not in pack
    finally:
        catalogue.unlink()


def test_renewing_under_a_delegation_that_has_ended_says_which_when_and_to_ask_for_a_new_one(world):  # noqa: F811
    """Renew on the decision page under a delegation the wallet holds but whose end has passed (its validity, as
    the wallet's copy says: moved into the past here): nothing is signed and the page says delegation.not_in_force
    in words (which delegation, from whom to whom, the day it ended, ask the DPO for a new one), not
    wallet.delegation_missing, which stays for a delegation not held at all."""
    from datetime import datetime, timedelta, timezone
    from sqlmodel import Session
    from issuer import issuing
    from schemas.words import moment_words
    from wallet.store import WalletCredential
    w = world
    node, wallet = w["iao"]["node"], w["iao"]["wallet"]
    staff.migrate(node.engine)
    staff.create_account(node.engine, "rhona", "Rhona Owner", "iao", PASSWORD)
    request_id = send(w)["id"]
    sharing.approve(node, wallet, request_id, the_rest(w), delegation=w["delegation"].id, verify=w["bundle"])
    client = create_node_app(node, wallet=wallet).test_client()
    assert account_sign_in(client, "rhona").status_code == 302
    csrf = csrf_of(client.get(f"/wallet/requests/{request_id}").text)
    record = wallet.get(w["delegation"].id)
    ended_at = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=1)
    with Session(wallet.engine) as s:
        row = s.get(WalletCredential, record.id)
        kept, row.valid_until = row.valid_until, ended_at
        s.add(row)
        s.commit()
    try:
        before = len(issuing.register(node))
        page = client.post(f"/wallet/requests/{request_id}/renew", data={"csrf": csrf, "renew_until": "2028-03-31"})
        text = re.sub(r"\s+", " ", page.text)
        assert page.status_code == 422 and "delegation.not_in_force" in text and "delegation_missing" not in text
        assert f"the delegation {w['delegation'].id} from {w['controller']['node'].did} to {node.did}" in text
        assert f"ended on {moment_words(ended_at)} (the end of its validity)" in text
        assert "Nothing was signed. Ask your Data Protection Officer for a new delegation" in text
        assert len(issuing.register(node)) == before
    finally:
        with Session(wallet.engine) as s:
            row = s.get(WalletCredential, record.id)
            row.valid_until = kept
            s.add(row)
            s.commit()
