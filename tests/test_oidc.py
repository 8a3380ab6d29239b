"""Staff sign-in through OpenID Connect against a real OpenID provider (IdentityPython's pyop, tests/oidc_provider.py)
over HTTPS on 127.0.0.1, with the node's pages served over HTTPS on localhost (another site, as Entra ID is).

A browser's part is played by a ``requests`` session (cookies, redirects); tests/test_desk_browser.py signs in the
same way in Chromium. Shown: the code flow with PKCE creates the account with the role mapped from the ``roles``
claim and audits it; a later sign-in finds the same account and follows a role change; a wrong state, audience or
nonce, another issuer, an expired, unsigned or forged ID token and a person with no mapped role are refused with a clear message on
the page and no session; the configuration refuses a client secret written into config.yaml.
"""
from __future__ import annotations

import re
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from helpers_https import https_server
from issuer import staff
from issuer.node import Node
from issuer.staff import oidc
from oidc_provider import CLIENT_ID, CLIENT_SECRET, LocalProvider
from verifier.results import CeadError
from wallet.app import create_node_app
from wallet.store import Wallet

ROLES = {"Cead.Analyst": "analyst", "Cead.IAO": "iao", "Cead.DPO": "dpo", "Cead.Admin": "admin"}


class Late:
    app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("oidc")
    with ExitStack() as stack:
        op, op_late, node_late = LocalProvider(), Late(), Late()
        op_base, op_ca = stack.enter_context(https_server(op_late))
        op_base = op_base.replace("://localhost:", "://127.0.0.1:")        # another site than the node
        base, ca = stack.enter_context(https_server(node_late))
        bundle = tmp / "ca-bundle.pem"
        bundle.write_text(open(op_ca).read() + open(ca).read())
        node, _ = Node.init(tmp / "node", "Fife Council", b"oidc test passphrase", domain=urlsplit(base).netloc,
                            public_url=base, network={"allow_private": True, "ca_bundle": str(bundle)})
        secret = tmp / "oidc-secret"
        secret.write_text(CLIENT_SECRET + "\n")
        secret.chmod(0o600)
        node.config["oidc"] = {"issuer": op_base, "client_id": CLIENT_ID, "client_secret_file": str(secret),
                               "role_claim": "roles", "roles": ROLES, "button": "Sign in with Microsoft"}
        op.start(op_base, base + "/dpo/sign-in/oidc/callback")
        op_late.app = op.wsgi()
        node_late.app = create_node_app(node, wallet=Wallet.from_node(node))
        yield {"op": op, "node": node, "url": base, "bundle": str(bundle), "op_url": op_base}


@pytest.fixture()
def op(world):
    world["op"].misbehave = None
    world["op"].user = "ian"
    yield world["op"]
    world["op"].misbehave = None


def browser(world) -> requests.Session:
    s = requests.Session()
    s.verify = world["bundle"]
    s.trust_env = False
    return s


def sign_in(world, s: requests.Session) -> requests.Response:
    """Press "Sign in with Microsoft" on the sign-in page and follow the provider's redirects back."""
    page = s.get(world["url"] + "/dpo/sign-in?next=/wallet/requests")
    assert page.status_code == 200
    start = re.search(r'id="oidc-sign-in" href="([^"]+)"', page.text)
    assert start, "the sign-in page offers no OpenID Connect button"
    assert "Sign in with Microsoft" in page.text
    return s.get(world["url"] + start.group(1).replace("&amp;", "&"))


def signed_in(world, s: requests.Session) -> bool:
    r = s.get(world["url"] + "/wallet/requests", allow_redirects=False)
    return r.status_code == 200


def audit(world) -> list:
    return staff.audit_log(world["node"].engine)


def test_sign_in_creates_the_account_with_the_mapped_role_and_audits_it(world, op):
    s = browser(world)
    done = sign_in(world, s)
    assert done.status_code == 200, done.text
    assert "You are signed in" in done.text and 'url=/wallet/requests' in done.text   # a same-site move on
    assert urlsplit(done.url).path == "/dpo/sign-in/oidc/callback"
    page = s.get(world["url"] + "/wallet/requests")
    assert "Signed in as Ian Owner (Information Asset Owner)" in page.text
    [account] = [a for a in staff.list_accounts(world["node"].engine) if a.username == "ian@fife.example"]
    assert (account.role, account.full_name, account.oidc_issuer) == ("iao", "Ian Owner", world["op_url"])
    assert account.oidc_subject
    log = [(e.who, e.action) for e in audit(world)[:3]]
    assert ("ian@fife.example", "signed in") in log
    assert ("ian@fife.example", "created staff account at first OpenID Connect sign-in") in log
    # the administrator's staff page says how each account signs in
    staff.create_account(world["node"].engine, "ada", "Ada Admin", "admin", "a long admin password")
    admin = browser(world)
    page = admin.get(world["url"] + "/dpo/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    admin.post(world["url"] + "/dpo/sign-in", data={"username": "ada", "password": "a long admin password",
                                                    "csrf": csrf})
    listing = admin.get(world["url"] + "/dpo/staff").text
    assert '<tr><td data-heading="Username">ian@fife.example</td>' in listing, listing[-3000:]
    row = re.search(r'<tr><td data-heading="Username">ian@fife.example</td>.*?</tr>', listing, re.S).group(0)
    assert "the organisation&#39;s account" in row and "Information Asset Owner" in row
    assert "a password on this node" in re.search(r'<tr><td data-heading="Username">ada</td>.*?</tr>', listing, re.S).group(0)
    # such an account has no password here: a password sign-in fails
    with pytest.raises(CeadError) as refused:
        staff.authenticate(world["node"].engine, "ian@fife.example", "!oidc")
    assert refused.value.code == "staff.sign_in_failed"


def test_a_later_sign_in_finds_the_same_account_and_follows_a_role_change(world, op):
    sign_in(world, browser(world))
    before = len(staff.list_accounts(world["node"].engine))
    op.users["ian"]["roles"] = ["Cead.Analyst", "Cead.DPO"]            # the highest mapped role wins
    try:
        s = browser(world)
        assert sign_in(world, s).status_code == 200
        assert "(Data Protection Officer)" in s.get(world["url"] + "/wallet/requests").text
    finally:
        op.users["ian"]["roles"] = ["Cead.IAO"]
    accounts = staff.list_accounts(world["node"].engine)
    assert len(accounts) == before
    changed = next(e for e in audit(world) if e.action == "role changed by the sign-in service")
    assert changed.target == "ian@fife.example" and '"to": "dpo"' in changed.detail
    assert next(a for a in accounts if a.username == "ian@fife.example").role == "dpo"


@pytest.mark.parametrize("misbehave, code, words", [
    ("state", "staff.oidc_state", "does not match the sign-in this browser started"),
    ("audience", "staff.oidc_audience", "is meant for &#39;someone-elses-app&#39;, not for this node"),
    ("issuer", "staff.oidc_issuer", "was issued by &#39;https://login.example.net/another-tenant/v2.0&#39;"),
    ("nonce", "staff.oidc_nonce", "does not carry the nonce this sign-in sent"),
    ("expired", "staff.oidc_expired", "The ID token has expired"),
    ("unsigned", "staff.oidc_unsigned", "is not signed"),
    ("forged", "staff.oidc_signature", "signature does not verify"),
])
def test_a_bad_answer_is_refused_with_a_clear_message(world, op, misbehave, code, words):
    op.misbehave = misbehave
    try:
        s = browser(world)
        done = sign_in(world, s)
    finally:
        if misbehave == "expired":
            op._build(lifetime=3600)
    assert done.status_code == 401, done.text
    assert "There is a problem" in done.text and words in done.text and code in done.text
    assert not signed_in(world, s)
    last = audit(world)[0]
    assert last.action == "sign-in refused" and code in last.detail


def test_a_person_with_no_mapped_role_is_refused(world, op):
    op.user = "nora"
    s = browser(world)
    done = sign_in(world, s)
    assert done.status_code == 401
    assert "Nora Nobody signed in with the organisation" in done.text
    assert "Ask your administrator to assign one of: Cead.Analyst (Analyst)" in done.text
    assert "staff.oidc_no_role" in done.text
    assert not signed_in(world, s)
    assert not any(a.username == "nora@fife.example" for a in staff.list_accounts(world["node"].engine))
    last = audit(world)[0]
    assert (last.who, last.action) == ("nora@fife.example", "sign-in refused") and "oidc_no_role" in last.detail


def test_a_client_secret_the_provider_does_not_accept_is_said_plainly(world, op):
    secret = Path(oidc.settings(world["node"]).client_secret_file)
    kept = secret.read_text()
    secret.write_text("an expired secret")
    try:
        done = sign_in(world, browser(world))
    finally:
        secret.write_text(kept)
    assert done.status_code == 401 and "staff.oidc_token_failed" in done.text
    assert "would not exchange the code for a token" in done.text


def test_a_callback_the_browser_did_not_start_is_refused(world, op):
    s = browser(world)
    done = s.get(world["url"] + "/dpo/sign-in/oidc/callback?code=abc&state=xyz")
    assert done.status_code == 401 and "staff.oidc_state" in done.text
    assert "no sign-in in progress" in done.text
    # the provider's own refusal is passed on in its words
    done = s.get(world["url"] + "/dpo/sign-in/oidc/callback?error=access_denied&error_description=User+cancelled")
    assert done.status_code == 401 and "did not sign you in: User cancelled" in done.text


def test_the_code_can_be_used_only_once(world, op):
    s = browser(world)
    first = s.get(world["url"] + "/dpo/sign-in/oidc?next=/wallet/requests", allow_redirects=False)
    at_op = s.get(first.headers["Location"], allow_redirects=False)
    callback = at_op.headers["Location"]
    assert "code=" in callback and "state=" in callback
    assert "code_challenge=" in first.headers["Location"] and "code_challenge_method=S256" in first.headers["Location"]
    assert s.get(callback).status_code == 200
    again = browser(world)
    again.cookies.update(s.cookies)
    replay = again.get(callback)                      # the pending sign-in's cookie was spent with the first use
    assert replay.status_code == 401 and "staff.oidc_state" in replay.text


def test_the_settings_keep_the_secret_out_of_config(world, tmp_path, monkeypatch):
    node = world["node"]
    good = dict(node.config["oidc"])
    try:
        node.config["oidc"] = {**good, "client_secret": "in clear"}
        with pytest.raises(CeadError, match="do not write the client secret into config.yaml") as bad:
            oidc.settings(node)
        assert bad.value.code == "node.config_invalid"
        node.config["oidc"] = {**good, "roles": {"Cead.IAO": "owner"}}
        with pytest.raises(CeadError, match="roles: a mapping"):
            oidc.settings(node)
        node.config["oidc"] = {k: v for k, v in good.items() if k != "client_secret_file"} | {
            "client_secret_env": "CEAD_TEST_OIDC_SECRET"}
        s = oidc.settings(node)
        monkeypatch.delenv("CEAD_TEST_OIDC_SECRET", raising=False)
        with pytest.raises(CeadError, match="CEAD_TEST_OIDC_SECRET") as missing:
            s.client_secret()
        assert missing.value.code == "staff.oidc_unavailable"
        monkeypatch.setenv("CEAD_TEST_OIDC_SECRET", "from the environment")
        assert s.client_secret() == "from the environment"
        loose = tmp_path / "secret"
        loose.write_text("x")
        loose.chmod(0o644)
        node.config["oidc"] = {**good, "client_secret_file": str(loose)}
        with pytest.raises(CeadError, match="chmod 600"):
            oidc.settings(node).client_secret()
    finally:
        node.config["oidc"] = good


def test_first_sign_in_links_a_local_account_only_when_allowed(world):
    engine = world["node"].engine
    staff.create_account(engine, "dee@fife.example", "Dee Local", "analyst", "a long local password")
    who = oidc.Identity(issuer=world["op_url"], subject="dee-subject", username="dee@fife.example",
                        name="Dee Protection", role="dpo")
    s = oidc.settings(world["node"])
    with pytest.raises(CeadError) as taken:
        oidc.account_for(engine, s, who)
    assert taken.value.code == "staff.oidc_username_taken" and "link_local_accounts" in taken.value.message
    linking = oidc.Settings(**{**s.__dict__, "link_local_accounts": True})
    account, happened, _ = oidc.account_for(engine, linking, who)
    assert happened == "linked" and account.role == "dpo" and account.oidc_subject == "dee-subject"
    assert oidc.account_for(engine, linking, who)[1] == "signed in"


def test_a_provider_whose_discovery_names_another_issuer_is_refused(world, op):
    node = world["node"]
    s = oidc.Settings(**{**oidc.settings(node).__dict__, "issuer": world["op_url"] + "/"})
    with pytest.raises(CeadError) as wrong:
        oidc.discover(node, s, fresh=True)
    assert wrong.value.code == "staff.oidc_unavailable" and "set oidc.issuer in config.yaml" in wrong.value.message


def test_the_token_request_is_refused_at_the_socket_when_its_name_rebinds_to_a_private_address(world, op):
    """The code is redeemed through authlib's session put under the node's rules (``Fetcher.guard``): a token
    endpoint whose name passes the URL check (it resolves public then) but connects to 127.0.0.1 is refused on the
    connected socket, before the code is sent. Without the guard the request would reach the provider here and
    come back as a refused code instead."""
    from types import SimpleNamespace

    from helpers_https import rebinding
    from verifier.http import Fetcher
    node, s = world["node"], oidc.settings(world["node"])
    doc = dict(oidc.discover(node, s, fresh=True))
    doc["token_endpoint"] = doc["token_endpoint"].replace("://127.0.0.1:", "://localhost:")
    strict = SimpleNamespace(network=SimpleNamespace(ca_bundle=world["bundle"], timeout=5.0),
                             fetcher=lambda: Fetcher(allow_private=False, ca_bundle=world["bundle"]))
    with oidc._lock:
        oidc._discovered[s.issuer] = (__import__("time").monotonic(), doc)
    try:
        pending = {"state": "st", "verifier": "v" * 43, "nonce": "n"}
        with rebinding("localhost") as fooled, pytest.raises(CeadError) as refused:
            oidc.finish(strict, s, pending, {"state": "st", "code": "a-code"}, world["url"] + "/cb")
        assert fooled, "the URL check looked the name up (and was told a public address)"
        assert refused.value.code == "http.address_refused", refused.value.to_dict()
        assert "127.0.0.1" in refused.value.message
    finally:
        oidc.discover(node, s, fresh=True)
