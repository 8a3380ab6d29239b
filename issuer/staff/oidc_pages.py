"""The two pages of OpenID Connect sign-in (``issuer.staff.oidc``), registered on the node's page blueprint when
``config.yaml`` has an ``oidc`` section:

- ``GET /dpo/sign-in/oidc?next=...``: starts a sign-in: the state, nonce and PKCE verifier go into a signed cookie
  (``cead_oidc``: HttpOnly, Secure over HTTPS, SameSite=Lax so that it comes back on the provider's redirect, ten
  minutes, only on these paths), and the browser goes to the provider.
- ``GET /dpo/sign-in/oidc/callback``: the provider's answer. Every check is made (``oidc.finish``); on success the
  session starts as for a local account and the page moves on with a same-site navigation (the session cookie is
  SameSite=Strict, so it is not sent on a redirect that the provider started); on failure the sign-in page says
  what was wrong, with its code. Both are audited.
"""
from __future__ import annotations

import logging
import secrets

from flask import current_app, g, redirect, render_template, request, session, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer

from verifier.results import CeadError

from . import oidc, record

log = logging.getLogger("cead.issuer.pages")
COOKIE = "cead_oidc"
PATH = "/dpo/sign-in/oidc"
MAX_AGE = 600


def register(bp, node, blueprint_name: str) -> oidc.Settings | None:
    """Add the OpenID Connect pages to ``bp`` when the node is configured for it; the settings (or None)."""
    s = oidc.settings(node)
    if s is None:
        return None
    from issuer.pages import _safe_next, audit

    def serializer() -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(current_app.secret_key, salt="cead-oidc-sign-in")

    def callback_url() -> str:
        base = (node.config.get("public_url") or request.url_root).rstrip("/")
        return base + PATH + "/callback"

    def refused(exc: CeadError, who: str = "(unknown)"):
        log.warning("OpenID Connect sign-in refused (%s): %s", exc.code, exc.message)
        record(node.engine, who[:64], "sign-in refused", detail={"via": "OpenID Connect", "code": exc.code,
                                                                  "reason": exc.message[:300]})
        response = current_app.make_response((render_template(
            "dpo_sign_in.html", next=url_for(f"{blueprint_name}.signed_in_home"), error=exc.problem, form={},
            field="oidc"), 401 if exc.code != "staff.oidc_unavailable" else 503))
        response.delete_cookie(COOKIE, path=PATH)
        return response

    @bp.get(PATH, endpoint="oidc_start")
    def oidc_start():
        target = _safe_next(request.args.get("next"))
        try:
            url, pending = oidc.begin(node, s, callback_url(), target)
        except CeadError as exc:
            return refused(exc)
        response = redirect(url)
        response.set_cookie(COOKIE, serializer().dumps(pending), max_age=MAX_AGE, path=PATH, httponly=True,
                            secure=request.is_secure, samesite="Lax")
        return response

    @bp.get(PATH + "/callback", endpoint="oidc_callback")
    def oidc_callback():
        pending = None
        raw = request.cookies.get(COOKIE)
        if raw:
            try:
                pending = serializer().loads(raw, max_age=MAX_AGE)
            except BadSignature:
                pending = None
        try:
            who = oidc.finish(node, s, pending, request.args.to_dict(), callback_url())
        except CeadError as exc:
            detail = exc.problem.detail if isinstance(exc.problem.detail, dict) else {}
            return refused(exc, str(detail.get("who") or "(unknown)"))
        try:
            account, happened, before = oidc.account_for(node.engine, s, who)
        except CeadError as exc:
            return refused(exc, who.username)
        session.clear()
        session.permanent = True
        session.update(account_id=account.id, account_name=account.username, csrf=secrets.token_urlsafe(32))
        g.cead_token = oidc_principal(account)
        if happened != "signed in":
            audit(f"{happened} staff account at first OpenID Connect sign-in", target=account.username,
                  detail={"issuer": who.issuer, "subject": who.subject, "role": account.role})
        if before is not None:
            audit("role changed by the sign-in service", target=account.username,
                  detail={"from": before, "to": account.role})
        audit("signed in", detail={"via": "OpenID Connect", "issuer": who.issuer, "role": account.role})
        log.info("web sign-in as %s through OpenID Connect", account.username)
        target = _safe_next((pending or {}).get("next"))
        response = current_app.make_response(render_template("dpo_signed_in.html", target=target))
        response.delete_cookie(COOKIE, path=PATH)
        return response

    return s


def oidc_principal(account):
    from . import principal
    return principal(account)
