"""What the web pages say about when a suspension, reinstatement or revocation takes effect: the change is in the
node's status list at once, but a gateway decides on its own copy of the list until it refreshes it (its trust
policy's caches.status_lists.ttl, 300 s by default; docs/gateway.md, "How soon a status change is seen";
tests/test_status_change_timing.py observes it). `cead suspend` says so on stderr; the pages say it in plain words,
the same words on every page, where the person confirms and where the result is shown: the register and its
revoke confirmation, the approval's page, the standing-approvals page and the delegation form.

Real parts: the register on a node's app (Flask's test client), and the approval and standing-approval pages
between three nodes over HTTPS on 127.0.0.1 (tests/test_sharing.py's world)."""
from __future__ import annotations

import re
from html import unescape

from issuer import issuing, statuslist
from verifier.decision import Decider
from verifier.policy import TrustPolicy
from wallet import sharing
from wallet import standing

from issuer_fixtures import certification, delegation
from test_pages import csrf_of, env, signed_in, status_of  # noqa: F401 (env: a node's app and test client)
from test_sharing import send, world  # noqa: F401 (the three-node HTTPS world)
from test_standing_page import desk, form, sign_in  # noqa: F401 (staff accounts on the IAO's node)

DEFAULT_TTL = Decider(TrustPolicy()).status.ttl              # what a gateway whose policy sets no caches uses
WITHIN = f"within about {int(DEFAULT_TTL) // 60} minutes (when they next refresh their copy of this node's status list)"
SUSPENDABLE = {"credentialStatus": {"type": "BitstringStatusListEntry",
                                    "statusPurpose": ["revocation", "suspension"]}}


def said(html: str) -> str:
    """The page's text as a person reads it: tags gone, entities decoded, white space folded."""
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())
    return re.sub(r" ([.,;:])", r"\1", text)              # a link's end tag before its full stop


def flashed(html: str) -> str:
    panels = re.findall(r'<div class="ds_notification-panel[^"]*" role="status">(.*?)</div>', html, re.S)
    assert panels, "the page shows what was done"
    return said(" ".join(panels))


def element(html: str, ident: str) -> str:
    match = re.search(rf'<(\w+)[^>]* id="{ident}"[^>]*>(.*?)</\1>', html, re.S)
    assert match, f"no #{ident} on the page"
    return said(match.group(2))


def test_the_words_name_the_gateways_default_refresh_and_what_may_happen_meanwhile():
    assert DEFAULT_TTL == 300 and statuslist.gateway_refresh_words() == "5 minutes"
    assert statuslist.gateway_refresh_words(60) == "1 minute" and statuslist.gateway_refresh_words(90) == "90 seconds"
    assert statuslist.seen_by_gateways("suspend", "approval") == (
        f"Gateways that rely on it see this {WITHIN}; until then a suspended approval may still be accepted.")
    assert statuslist.seen_by_gateways("revoke", "approval").endswith(
        "; until then a revoked approval may still be accepted.")
    assert statuslist.seen_by_gateways("reinstate", "approval").endswith(
        "; until then a reinstated approval may still be refused as suspended.")
    assert statuslist.seen_by_gateways("suspend", under=True).endswith(
        "; until then approvals made under it may still be accepted.")
    every = statuslist.seen_by_gateways()
    assert WITHIN in every and "a reinstated one may still be refused" in every


def test_the_register_says_it_before_and_after_each_change(env):  # noqa: F811
    node, client = env["node"], env["client"]
    cert = issuing.issue(node, certification(node.did), SUSPENDABLE, issued_by="cli")
    deleg = delegation(node, "did:web:iao.example", {"datasets": ["https://data.fife.example/meals"]},
                       options=SUSPENDABLE)
    signed_in(env)
    page = client.get("/dpo/register").text
    assert element(page, "seen-by-gateways") == statuslist.seen_by_gateways()    # beside the one-click buttons
    csrf = csrf_of(page)

    assert client.post("/dpo/status", data={"credential_id": cert.id, "action": "suspend", "csrf": csrf}
                       ).status_code == 302
    assert status_of(node, cert.id) == "suspended"
    assert flashed(client.get("/dpo/register").text) == (
        f"{cert.id} is now suspended. Gateways that rely on it see this {WITHIN}; until then a suspended "
        "certification may still be accepted.")
    client.post("/dpo/status", data={"credential_id": cert.id, "action": "reinstate", "csrf": csrf})
    assert status_of(node, cert.id) == "active"
    assert flashed(client.get("/dpo/register").text).endswith(
        f"is now active. Gateways that rely on it see this {WITHIN}; until then a reinstated certification may "
        "still be refused as suspended.")

    # revoking: the confirmation says it, and so does the result
    confirm = client.post("/dpo/status", data={"credential_id": cert.id, "action": "revoke", "csrf": csrf})
    assert confirm.status_code == 200 and "Revoke permanently" in confirm.text
    # what is about to be revoked, in the register's words: its kind by name (the id under it), whom it was issued to
    assert "<dd>Organisation certification<span class=\"cead-id cead-id-beside\">" + cert.id in confirm.text
    assert "<dt>Issued to</dt>" in confirm.text and "Subject / recipients" not in confirm.text
    assert element(confirm.text, "seen-by-gateways") == statuslist.seen_by_gateways("revoke", "certification")
    client.post("/dpo/status", data={"credential_id": cert.id, "action": "revoke", "confirm": "yes", "csrf": csrf})
    assert status_of(node, cert.id) == "revoked"
    assert flashed(client.get("/dpo/register").text) == (
        f"{cert.id} is now revoked. Gateways that rely on it see this {WITHIN}; until then a revoked "
        "certification may still be accepted.")

    # a delegation is met by gateways as the approvals made under it
    client.post("/dpo/status", data={"credential_id": deleg.id, "action": "suspend", "csrf": csrf})
    assert status_of(node, deleg.id) == "suspended"
    assert flashed(client.get("/dpo/register").text).endswith(
        f"see this {WITHIN}; until then approvals made under it may still be accepted.")


def test_without_the_scope_to_change_a_status_the_register_does_not_say_it(env):  # noqa: F811
    node, client = env["node"], env["client"]
    issuing.issue(node, certification(node.did), issued_by="cli")
    signed_in(env, scopes="issue:certification", name="issuer-only")
    page = client.get("/dpo/register").text
    assert 'id="seen-by-gateways"' not in page and "refresh their copy" not in page


def test_the_delegation_form_says_it_beside_where_to_suspend(env):  # noqa: F811
    signed_in(env)
    page = env["client"].get("/wallet/delegate").text
    assert "You can suspend or revoke the delegation at any time from the register. " \
           + statuslist.seen_by_gateways("suspend", under=True) in said(page)


def approved_request(w, client) -> str:
    """A request approved through the decision page by an Information Asset Owner (issued suspendable)."""
    request_id = send(w)["id"]
    csrf = csrf_of(client.get(f"/wallet/requests/{request_id}").text)
    done = client.post(f"/wallet/requests/{request_id}/approve", data={
        "csrf": csrf, "delegation": w["delegation"].id, "controller_basis":
        "https://www.legislation.gov.uk/eur/2016/679/article/6/1/e", "data_categories":
        "https://w3id.org/cead/vocab#SchoolEnrolment", "protocol": "threshold", "min_cell_count": "10",
        "retention": "P1Y", "cadence": "R/2025-01-01T00:00:00Z/P1M", "sensitivity": "Pseudonymised",
        "dpia_outcome": "LowRisk", "onward_sharing": "Prohibited", "not_before": "2026-01-01",
        "not_after": "2027-06-30"})
    assert done.status_code == 302, said(done.text)[:2000]
    assert sharing.get_request(w["iao"]["wallet"], request_id).approval_id
    return request_id


def test_the_approval_page_says_it_beside_each_button_and_after_each_change(world, desk):  # noqa: F811
    w = world
    iao = desk.test_client()
    sign_in(iao, "ivan")
    request_id = approved_request(w, iao)
    approval = sharing.get_request(w["iao"]["wallet"], request_id).approval_id
    path = f"/wallet/requests/{request_id}"
    page = iao.get(path).text
    suspend = element(page, "suspend-seen")
    assert "at once" not in suspend                               # not at once: gateways see it when they refresh
    assert suspend.endswith(statuslist.seen_by_gateways("suspend", "approval"))
    assert element(page, "revoke-seen").endswith(statuslist.seen_by_gateways("revoke", "approval"))
    csrf = csrf_of(page)

    assert iao.post(f"{path}/status", data={"csrf": csrf, "action": "suspend"}).status_code == 302
    assert status_of(w["iao"]["node"], approval) == "suspended"
    page = iao.get(path).text
    assert flashed(page) == (f"The approval is now suspended. Gateways that rely on it see this {WITHIN}; until "
                             "then a suspended approval may still be accepted.")
    assert element(page, "reinstate-seen").endswith(statuslist.seen_by_gateways("reinstate", "approval"))

    iao.post(f"{path}/status", data={"csrf": csrf, "action": "reinstate"})
    assert status_of(w["iao"]["node"], approval) == "active"
    assert flashed(iao.get(path).text) == (
        f"The approval is now active. Gateways that rely on it see this {WITHIN}; until then a reinstated approval "
        "may still be refused as suspended.")

    iao.post(f"{path}/status", data={"csrf": csrf, "action": "revoke", "confirm": "yes"})
    assert status_of(w["iao"]["node"], approval) == "revoked"
    assert flashed(iao.get(path).text) == (f"The approval is now revoked. Gateways that rely on it see this "
                                           f"{WITHIN}; until then a revoked approval may still be accepted.")


def test_the_standing_approvals_page_says_it_for_the_approvals_made_under_one(world, desk):  # noqa: F811
    w = world
    dpo = desk.test_client()
    sign_in(dpo, "dora")
    csrf = csrf_of(dpo.get("/wallet/standing").text)
    assert dpo.post("/wallet/standing", data=form(w, csrf, name="notes-auto")).status_code == 302
    [rule] = [r for r in standing.rules(w["iao"]["node"]) if r["name"] == "notes-auto"]
    page = dpo.get("/wallet/standing").text
    section = re.search(r'<section class="cead-standing" id="standing-notes-auto".*?</section>', page, re.S).group(0)
    idx = re.search(r'id="standing-(\d+)-seen"', section).group(1)
    assert element(section, f"standing-{idx}-seen") == (
        "Suspending stops automatic approvals under it at once; you can lift a suspension later. "
        + statuslist.seen_by_gateways("suspend", under=True))
    assert element(section, f"standing-{idx}-revoke-seen") == (
        "Revoking ends it for good. " + statuslist.seen_by_gateways("revoke", under=True))

    status = "/wallet/standing/notes-auto/status"
    assert dpo.post(status, data={"csrf": csrf, "action": "suspend"}).status_code == 302
    assert status_of(w["iao"]["node"], rule["delegation"]) == "suspended"
    page = dpo.get("/wallet/standing").text
    assert flashed(page) == ("Standing approval notes-auto is now suspended; nothing more is approved under it. "
                             f"Gateways that rely on it see this {WITHIN}; until then approvals made under it may "
                             "still be accepted.")
    section = re.search(r'<section class="cead-standing" id="standing-notes-auto".*?</section>', page, re.S).group(0)
    assert element(section, f"standing-{idx}-seen").endswith(statuslist.seen_by_gateways("reinstate", under=True))

    dpo.post(status, data={"csrf": csrf, "action": "reinstate"})
    assert status_of(w["iao"]["node"], rule["delegation"]) == "active"
    assert flashed(dpo.get("/wallet/standing").text).endswith(
        "approved automatically again. Gateways that rely on it see this "
        f"{WITHIN}; until then approvals made under it may still be refused as suspended.")

    dpo.post(status, data={"csrf": csrf, "action": "revoke", "confirm": "yes"})
    assert status_of(w["iao"]["node"], rule["delegation"]) == "revoked"
    assert flashed(dpo.get("/wallet/standing").text) == (
        "Standing approval notes-auto is now revoked; nothing more is approved under it. Gateways that rely on it "
        f"see this {WITHIN}; until then approvals made under it may still be accepted.")


def row_of(html: str, credential_id: str) -> str:
    """The register's row (``<tr>...</tr>``) whose Credential cell holds ``credential_id``."""
    at = html.index(f'<span class="cead-id cead-id-beside">{credential_id}</span>')
    start = html.rindex("<tr>", 0, at)
    return html[start:html.index("</tr>", at)]


def suspended_before_it_ended(node, credential_id: str) -> None:
    """Record ``credential_id`` as suspended (the register and its status-list bit) as ``issuing.change_status``
    did while it was in force: its period being over now, ``change_status`` itself refuses to suspend it
    (``status.period_over``), so a suspension from before that is written as that call left it."""
    from issuer import db
    with node.session() as s:
        row = s.get(db.IssuedCredential, credential_id)
        statuslist.set_status(s, credential_id, "suspension", True)
        row.status = "suspended"
        s.add(row)
        s.commit()


def test_once_its_period_is_over_a_credential_is_not_offered_suspension_nor_takes_it(env):  # noqa: F811
    """A credential whose period is over (the badge "expired": here a delegation whose scope ended in 2025) is no
    longer in force either way, so the register offers no Suspend (nor Reinstate, when it was suspended before it
    ended), says so in its place, and still offers Revoke (final, and in the status list relying parties read). A
    crafted form asking to suspend or reinstate it is refused with the same reason, naming the date, and changes
    nothing; revoking it still works. One still in force keeps its Suspend."""
    node, client = env["node"], env["client"]
    scope = {"datasets": ["https://data.fife.example/meals"]}
    ended = delegation(node, "did:web:iao.example", {**scope, "notAfter": "2025-12-31T23:59:59Z"}, options=SUSPENDABLE)
    paused = delegation(node, "did:web:iao.example", {**scope, "notAfter": "2025-12-31T23:59:59Z"},
                        options=SUSPENDABLE)
    suspended_before_it_ended(node, paused.id)                            # suspended, then its period ran out
    live = delegation(node, "did:web:iao.example", scope, options=SUSPENDABLE)
    signed_in(env)
    page = client.get("/dpo/register").text
    csrf = csrf_of(page)
    assert "3 issued: 1 active, 2 expired." in said(page)               # counts of none left out

    for row, nothing_to in ((row_of(page, ended.id), "suspend"), (row_of(page, paused.id), "reinstate")):
        assert 'class="badge revoked">expired<' in row
        assert 'value="suspend"' not in row and 'value="reinstate"' not in row, row
        assert said(row).count(f"Its period is over: nothing to {nothing_to}.") == 1, said(row)
        assert 'value="revoke"' in row                                    # revocation is final, and still offered
    assert 'value="suspend"' in row_of(page, live.id) and "period is over" not in row_of(page, live.id)
    # each id in full, under its kind and format, in the identifiers' style (no column of its own)
    assert re.search(r'data-heading="Credential"[^>]*>Delegation of approval authority<span class="cead-format">'
                     rf'[^<]+</span><span class="cead-id cead-id-beside">{ended.id}</span></td>', page), page
    assert "Credential id" not in page

    for credential_id, action in ((ended.id, "suspend"), (paused.id, "reinstate")):
        refused = client.post("/dpo/status", data={"credential_id": credential_id, "action": action, "csrf": csrf})
        assert refused.status_code == 409 and "status.period_over" in refused.text
        assert (f"Delegation of approval authority {credential_id} ended on 31 December 2025, 23:59 UTC: it is no "
                f"longer in force, so there is nothing to {action}. It can still be revoked, which is final."
                ) in said(refused.text), said(refused.text)
    assert (status_of(node, ended.id), status_of(node, paused.id)) == ("active", "suspended")     # nothing changed

    client.post("/dpo/status", data={"credential_id": ended.id, "action": "revoke", "confirm": "yes", "csrf": csrf})
    assert status_of(node, ended.id) == "revoked"
    assert client.post("/dpo/status", data={"credential_id": live.id, "action": "suspend", "csrf": csrf}
                       ).status_code == 302 and status_of(node, live.id) == "suspended"
