"""The organisation's web pages: the public landing page and the DPO's pages (sign-in, register, issuing).

- ``GET /``: who this node is (name, DID, DID document, public keys, status lists, inbox) and how to verify.
- ``/dpo/sign-in``: sign in with one of the node's bearer tokens (``cead token create``), checked with
  ``issuer.tokens.authenticate``. The session lives in Flask's signed cookie (HttpOnly, SameSite=Strict, Secure
  over HTTPS) keyed with ``HOME/web-secret`` (created once, mode 0600). The token itself is never kept: only the
  token row's id, re-checked on every request (a revoked token signs the browser out).
- ``/dpo/register``: the register (``issuing.register``) with revoke / suspend / reinstate (``issuing.change_status``,
  token scope ``status:change``) and a CSV download (``issuing.register_csv``).
- ``/dpo/issue``: a form that issues through ``issuing.issue`` (the same path and guard rail as the VC-API).

The wallet's pages (``wallet.pages``) reuse the sign-in, CSRF and error handling from here through
:func:`sign_in_required` and :func:`protect`. Every POST carries a CSRF token tied to the session.
"""
from __future__ import annotations

import functools
import hmac
import json
import logging
import os
import re
import secrets
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote, urlsplit

from flask import (Blueprint, Response, current_app, flash, g, redirect, render_template, request, session,
                   url_for)
from flask.sessions import SecureCookieSessionInterface
from sqlmodel import select
from werkzeug.exceptions import HTTPException

from schemas import words as plain
from schemas.values import load_document
from verifier.results import CeadError

from . import db, issuing, staff, statuslist, tokens

log = logging.getLogger("cead.issuer.pages")

SECRET_FILE = "web-secret"
SESSION_LIFETIME = timedelta(hours=8)
BLUEPRINT = "cead_pages"
KINDS = issuing.KINDS
FORMATS = {"eddsa-rdfc-2022": {"cryptosuite": "eddsa-rdfc-2022"},
           "eddsa-jcs-2022": {"cryptosuite": "eddsa-jcs-2022"},
           "vc+jwt": {"format": "vc+jwt"},
           "vc+jwt-es256": {"format": "vc+jwt", "alg": "ES256"}}
FORMAT_LABELS = {"eddsa-rdfc-2022": "Data Integrity, eddsa-rdfc-2022 (default)",
                 "eddsa-jcs-2022": "Data Integrity, eddsa-jcs-2022",
                 "vc+jwt": "VC-JOSE, application/vc+jwt (EdDSA)",
                 "vc+jwt-es256": "VC-JOSE, application/vc+jwt (ES256)"}
MEDIA_TYPES = {"vc+jwt": "application/vc+jwt"}          # anything else: application/vc (VC DM 2.0, embedded proof)
CSP = ("default-src 'none'; style-src 'self'; font-src 'self'; img-src 'self' data:; script-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
PAGE_STATUS = {"web.csrf_invalid": 403, "web.form_invalid": 400, "request.invalid": 400,
               "token.scope_invalid": 400, "options.invalid": 400, "credential.invalid": 400}


# ---- the session secret ------------------------------------------------------------------------------------

def web_secret(home: Path) -> bytes:
    """The node's session-signing key, ``HOME/web-secret``: created once (mode 0600, atomically, so two
    processes starting together agree on one), then read. A file others can read is refused."""
    path = Path(home) / SECRET_FILE
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=home, prefix=".web-secret-")   # mkstemp creates it with mode 0600
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
            os.link(tmp, path)                                        # fails if another process won the race
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    if os.name == "posix" and path.stat().st_mode & 0o077:
        raise CeadError("web.secret_insecure", f"{path} is readable by others; run chmod 600 {path}.")
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise CeadError("web.secret_invalid", f"{path} is too short; delete it and a new one is made "
                        "(everyone is signed out and printed verification links stop working).")
    return secret.encode()


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, with the Secure flag whenever the request came over HTTPS."""

    def get_cookie_secure(self, app) -> bool:
        return request.is_secure


def _configure(app) -> None:
    node = app.config["CEAD_NODE"]
    app.secret_key = web_secret(node.home)
    app.session_interface = _SessionInterface()
    app.config.update(SESSION_COOKIE_NAME="cead_session", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Strict", PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME)
    app.jinja_env.filters["words"] = words
    app.jinja_env.filters["when"] = plain.moment_words     # "3 December 2026, 17:41 UTC" (schemas.words)
    app.jinja_env.filters["kind"] = plain.kind_name        # "Data-sharing approval"
    app.jinja_env.filters["law"] = plain.law_words         # "UK GDPR Article 6(1)(f)"
    app.jinja_env.filters["pretty"] = pretty
    app.jinja_env.add_extension("jinja2.ext.do")
    staff.migrate(node.engine)                 # the staff accounts and audit log tables


# ---- small helpers shared with the wallet's pages -----------------------------------------------------------

def words(name: str) -> str:
    """``maxRowsPerTransfer`` -> ``max rows per transfer`` (scope dimensions shown to people)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", str(name)).replace("_", " ").lower()


def pretty(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)


def download_href(text: str, media_type: str) -> str:
    """A ``data:`` URL for a download link (the node keeps no copy of what it signed)."""
    return f"data:{media_type};charset=utf-8,{quote(text, safe='')}"


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def _check_csrf() -> None:
    sent = request.form.get("csrf", "")
    wanted = session.get("csrf", "")
    # compared as bytes: compare_digest refuses str with non-ASCII characters (TypeError), and a form may send any
    if not sent or not isinstance(wanted, str) or not wanted or \
            not hmac.compare_digest(sent.encode("utf-8", "surrogatepass"), wanted.encode("utf-8", "surrogatepass")):
        raise CeadError("web.csrf_invalid", "This form has expired or did not come from this site; "
                        "reload the page and try again.")


def current_token() -> db.Token | staff.Principal | None:
    """Who is signed in: a staff account (:class:`issuer.staff.Principal`) or a token row, re-read every request
    (a disabled account or a revoked token ends the session), or None. Both have ``name`` and ``scopes``."""
    if "cead_token" in g:
        return g.cead_token
    row = None
    engine = current_app.config["CEAD_NODE"].engine
    account_id = session.get("account_id")
    token_id = session.get("token_id")
    if isinstance(account_id, int):
        account = staff.get_account(engine, account_id)
        if account is None or account.disabled or account.username != session.get("account_name"):
            session.pop("account_id", None)
            session.pop("account_name", None)
        else:
            row = staff.principal(account)
    elif isinstance(token_id, int):
        with db.session(engine) as s:
            row = s.get(db.Token, token_id)
        if row is None or row.revoked or row.name != session.get("token_name"):
            session.pop("token_id", None)
            session.pop("token_name", None)
            row = None
    g.cead_token = row
    return row


def may(scope: str) -> bool:
    """Whether whoever is signed in may do ``scope`` (a token scope, or one a staff role stands for)."""
    who = current_token()
    return who is not None and scope in who.scopes.split(",")


def audit(action: str, target: str | None = None, detail: Any = None) -> None:
    """Record what the signed-in person did, with who and when, in the staff audit log."""
    who = current_token()
    staff.record(current_app.config["CEAD_NODE"].engine, who.name if who else "(anonymous)", action,
                 role=getattr(who, "role", None) or ("token" if who else None), target=target, detail=detail)


def sign_in_required(view: Callable) -> Callable:
    """Decorator for pages that need a signed-in token; otherwise redirect to the sign-in page."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if current_token() is None:
            target = request.path + (f"?{request.query_string.decode()}" if request.query_string else "")
            return redirect(url_for(f"{BLUEPRINT}.sign_in", next=target))
        return view(*args, **kwargs)
    return wrapper


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for(f"{BLUEPRINT}.signed_in_home")


def http_status(code: str, extra: dict[str, int] | None = None) -> int:
    """The HTTP status a page answers a ``CeadError`` with (the API's mapping, then the pages' own)."""
    return {**issuing.HTTP_STATUS, **PAGE_STATUS, **(extra or {})}.get(code, 400)


def protect(bp: Blueprint, statuses: dict[str, int] | None = None) -> None:
    """Give a page blueprint CSRF checks on every POST, security headers, and friendly error pages."""

    @bp.before_request
    def _csrf():
        if request.method == "POST":
            _check_csrf()

    @bp.after_request
    def _headers(response: Response):
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    def page(status: int, code: str, message: str):
        return render_template("cead_error.html", status=status, code=code, message=message), status

    @bp.errorhandler(CeadError)
    def _cead_error(exc: CeadError):
        status = http_status(exc.code, statuses)
        if status >= 500:
            log.error("page error %s: %s", exc.code, exc.message)
            return page(status, exc.code, "The node cannot do this right now; see the node's log.")
        return page(status, exc.code, exc.message)

    @bp.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        names = {404: "request.not_found", 405: "request.method_not_allowed", 413: "request.too_large"}
        return page(exc.code or 400, names.get(exc.code, "request.invalid"), exc.description or exc.name)

    @bp.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error in the web pages")
        return page(500, "server.error", "Unexpected error; nothing was changed. See the node's log.")


# ---- reading the issue form --------------------------------------------------------------------------------

def parse_object(text: str, field: str) -> dict:
    """A JSON or YAML object typed into a form field; ``web.form_invalid`` naming the field otherwise."""
    try:
        return load_document(text, f"The {field}")
    except ValueError as exc:
        raise CeadError("web.form_invalid", f"{exc}.", field=field) from None


def credential_from_form(node, form) -> tuple[dict, dict]:
    """``(credential, options)`` for ``issuing.issue`` from the issue form's fields."""
    kind = form.get("kind", "")
    if kind not in KINDS:
        raise CeadError("web.form_invalid", f"Choose a credential type: {', '.join(KINDS)}.", field="kind")
    fmt = form.get("format", "eddsa-rdfc-2022")
    if fmt not in FORMATS:
        raise CeadError("web.form_invalid", f"Choose a format: {', '.join(FORMATS)}.", field="format")
    body = (form.get("body") or "").strip()
    if not body:
        raise CeadError("web.form_invalid", "Paste the credential, or just its subject, as JSON or YAML.",
                        field="body")
    data = parse_object(body, "body")
    delegate_name = (form.get("delegate_name") or "").strip()
    if delegate_name:       # the delegate's name, as the DPO names them (a delegation's credentialSubject.name)
        if KINDS[kind] != "DelegatedAuthorityCredential":
            raise CeadError("web.form_invalid", "A delegate's name goes in a delegation only: clear “Delegate's "
                            "name”, or choose the delegation type.", field="delegate_name")
        target = data.get("credentialSubject") if "credentialSubject" in data else data
        if not isinstance(target, dict):
            raise CeadError("web.form_invalid", "The credentialSubject is not a single JSON object, so the "
                            "delegate's name cannot be added to it.", field="body")
        target["name"] = delegate_name
    valid_until = (form.get("valid_until") or "").strip() or None
    credential = issuing.build_credential(node, KINDS[kind], data, valid_until=valid_until)
    options = dict(FORMATS[fmt])
    if form.get("suspendable"):
        options["credentialStatus"] = {"type": "BitstringStatusListEntry",
                                       "statusPurpose": ["revocation", "suspension"]}
    delegation = (form.get("delegation") or "").strip()
    if delegation:
        options["delegation"] = parse_object(delegation, "parent delegation") if delegation.startswith("{") \
            else delegation
    return credential, options


def _suspendable(row: db.IssuedCredential) -> bool:
    try:
        entries = json.loads(row.status_entries or "[]")
    except ValueError:
        return False
    return any(isinstance(e, dict) and e.get("statusPurpose") == "suspension" for e in entries)


def status_note(action: str, types: str) -> str:
    """When gateways see ``action`` on a credential of ``types`` (the register's comma-separated types), in the
    words every page uses (``statuslist.seen_by_gateways``): a delegation is met as the approvals made under it."""
    kind = types.split(",")[-1]
    if kind == "DelegatedAuthorityCredential":
        return statuslist.seen_by_gateways(action, under=True)
    noun = {"DataSharingApprovalCredential": "approval",
            "OrganisationCertificationCredential": "certification"}.get(kind, "credential")
    return statuslist.seen_by_gateways(action, noun)


# ---- the blueprint -----------------------------------------------------------------------------------------

def _subject_names():
    """``row -> name or None`` for the register's subject column: the name the credential itself states (a
    delegation's ``name``, a certification's ``legalName``), else the names the node knows for its subject's DIDs (an
    approval's recipients) when the wallet is mounted: it sets ``CEAD_DIRECTORY`` (the issuer never imports it)."""
    make = current_app.config.get("CEAD_DIRECTORY")
    directory = make() if make is not None else None

    def name(row) -> str | None:
        if row.subject_name:
            return row.subject_name
        if directory is None or not row.subject:
            return None
        known = [n for n in (directory.known(d) for d in row.subject.split()) if n]
        return "; ".join(dict.fromkeys(known)) or None
    return name


def blueprint(node) -> Blueprint:
    """The landing page and the DPO pages for ``node`` (register it on the issuer's app)."""
    bp = Blueprint(BLUEPRINT, __name__, template_folder="templates", static_folder="static",
                   static_url_path="/assets")
    bp.record_once(lambda state: _configure(state.app))
    protect(bp)
    from .staff import oidc_pages
    oidc_settings = oidc_pages.register(bp, node, BLUEPRINT)      # "Sign in with ..." when config.yaml names one

    @bp.app_context_processor
    def _globals():
        token = current_token()
        return {"csrf_token": csrf_token, "signed_in_as": (getattr(token, "full_name", None) or token.name)
                if token else None, "signed_in_role": getattr(token, "role_label", None) if token else None,
                "may": may, "may_issue_any": lambda: any(may(f"issue:{k}") for k in KINDS),
                "node_name": node.name, "wallet_pages": "cead_wallet" in current_app.blueprints,
                "seen_by_gateways": statuslist.seen_by_gateways,
                "oidc_button": oidc_settings.button if oidc_settings else None}

    @bp.get("/")
    def home():
        keys = [{"id": node.vm_id(m), "kind": m.get("kind"), "status": m.get("status"),
                 "created": m.get("created"), "public": m.get("public")}
                for m in node.config.get("keys", []) if m.get("status") != "retired"]
        with node.session() as s:
            lists = list(s.exec(select(db.StatusList).order_by(db.StatusList.id)))
        base = (node.config.get("public_url") or request.url_root).rstrip("/")
        status_lists = [{"purpose": lst.purpose, "url": statuslist.list_url(node, lst.id)} for lst in lists] \
            if node.config.get("public_url") else []      # lists exist only once a public URL let the node issue
        inbox = f"{base}/inbox" if "wallet_inbox" in current_app.blueprints else None
        did_doc = url_for("did_path" if node.config.get("path") else "did")
        return render_template("cead_home.html", node=node, keys=keys, status_lists=status_lists, inbox=inbox,
                               did_doc=did_doc)

    # -- sign in and out ------------------------------------------------------------------------------------
    @bp.route("/dpo/sign-in", methods=["GET", "POST"])
    def sign_in():
        target = _safe_next(request.values.get("next"))
        if request.method == "GET":
            if current_token() is not None:
                return redirect(target)
            return render_template("dpo_sign_in.html", next=target, error=None, form={})
        form = {"username": (request.form.get("username") or "").strip()}
        if "token" in request.form and not form["username"]:
            try:
                row = tokens.authenticate(node.engine, "Bearer " + (request.form.get("token") or "").strip())
            except CeadError as exc:
                log.warning("web sign-in refused (%s) from %s", exc.code, request.remote_addr)
                return render_template("dpo_sign_in.html", next=target, error=exc.problem, form=form,
                                       field="token"), 401
            session.clear()                               # a fresh session: no fixation, new CSRF token
            session.permanent = True
            session.update(token_id=row.id, token_name=row.name, csrf=secrets.token_urlsafe(32))
        else:
            try:
                row = staff.authenticate(node.engine, form["username"], request.form.get("password") or "")
            except CeadError as exc:
                log.warning("web sign-in refused (%s) for %r from %s", exc.code, form["username"][:64],
                            request.remote_addr)
                staff.record(node.engine, form["username"][:64] or "(blank)", "sign-in refused")
                return render_template("dpo_sign_in.html", next=target, error=exc.problem, form=form,
                                       field="username"), 401
            session.clear()
            session.permanent = True
            session.update(account_id=row.id, account_name=row.name, csrf=secrets.token_urlsafe(32))
        g.cead_token = row
        audit("signed in")
        log.info("web sign-in as %s", row.name)
        return redirect(target)

    @bp.post("/dpo/sign-out")
    def sign_out():
        if current_token() is not None:
            audit("signed out")
        session.clear()
        g.pop("cead_token", None)
        flash("Signed out.")
        return redirect(url_for(f"{BLUEPRINT}.home"))

    @bp.get("/dpo/")
    @sign_in_required
    def dpo_home():
        return redirect(url_for(f"{BLUEPRINT}.register"))

    @bp.get("/signed-in")
    @sign_in_required
    def signed_in_home():
        """Where sign-in leads: the requests for those who decide or send them, else the register."""
        if "cead_wallet" in current_app.blueprints and (may("issue:approval") or may("request:send")):
            return redirect(url_for("cead_wallet.requests_list"))
        return redirect(url_for(f"{BLUEPRINT}.register"))

    # -- staff accounts and the audit log (admin) ---------------------------------------------------------------
    @bp.route("/dpo/staff", methods=["GET", "POST"], endpoint="staff")
    @sign_in_required
    def staff_page():
        if not may("staff:manage"):
            raise CeadError("auth.scope", "Only an administrator may manage staff accounts.", scope="staff:manage")
        form, error, status = {}, None, 200
        if request.method == "POST":
            form = {k: (request.form.get(k) or "") for k in ("username", "full_name", "role")}
            try:
                made = staff.create_account(node.engine, form["username"], form["full_name"], form["role"],
                                            request.form.get("password") or "")
            except CeadError as exc:
                error, status = exc.problem, 400
            else:
                audit("created staff account", target=made.username, detail={"role": made.role})
                flash(f"Account {made.username} ({staff.ROLES[made.role]['label']}) created.")
                return redirect(url_for(f"{BLUEPRINT}.staff"))
        make = current_app.config.get("CEAD_AUDIT_NAMES")   # set when the wallet is mounted: its requests, names
        name, more = make() if make is not None else (None, None)
        log = staff.log_lines(node.engine, staff.audit_log(node.engine), name=name, more=more)
        return render_template("dpo_staff.html", accounts=staff.list_accounts(node.engine), roles=staff.ROLES,
                               log=log, form=form, error=error), status

    # -- the register -----------------------------------------------------------------------------------------
    @bp.get("/dpo/register")
    @sign_in_required
    def register():
        rows = issuing.register(node)
        shown = issuing.status_words(node, rows)    # what each badge says: "expired" too, which no list says
        ends = {i: until for i, (_, until) in issuing.in_force_windows(node, [r.id for r in rows]).items()}
        counts = {s: sum(1 for r in rows if shown[r.id] == s) for s in ("active", "suspended", "revoked", "expired",
                                                                         "not yet in force")}
        return render_template("dpo_register.html", rows=rows, counts=counts, suspendable=_suspendable,
                               shown=shown, badge=plain.STATUS_BADGE, ends=ends,
                               may_change="status:change" in current_token().scopes.split(","),
                               changeable=lambda row: (issuing.status_scope(row.types.split(",")) or "status:change")
                               in current_token().scopes.split(","),
                               person=staff.person_words(node.engine), subject_name=_subject_names())

    @bp.get("/dpo/register.csv")
    @sign_in_required
    def register_csv():
        return Response(issuing.register_csv(issuing.register(node)), mimetype="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="cead-register.csv"'})

    @bp.post("/dpo/status")
    @sign_in_required
    def change_status():
        token = current_token()
        tokens.require(token, "status:change")
        credential_id = request.form.get("credential_id", "")
        action = request.form.get("action", "")
        reason = (request.form.get("reason") or "").strip() or None
        if action == "revoke" and request.form.get("confirm") != "yes":
            with node.session() as s:
                row = s.get(db.IssuedCredential, credential_id)
            if row is None:
                raise CeadError("credential.not_found", f"This node has not issued {credential_id}.")
            shown = issuing.status_words(node, [row])[row.id]
            return render_template("dpo_confirm_revoke.html", row=row, seen=status_note("revoke", row.types),
                                   shown=shown, badge=plain.STATUS_BADGE, person=staff.person_words(node.engine),
                                   subject_name=_subject_names())
        result = issuing.change_status(node, credential_id, action, by=token.name, reason=reason,
                                       scopes=token.scopes.split(","))
        audit(f"{action} credential", target=credential_id, detail={"reason": reason} if reason else None)
        with node.session() as s:
            row = s.get(db.IssuedCredential, credential_id)
        flash(f"{result['credentialId']} is now {result['status']}. "
              + status_note(action, row.types if row is not None else ""))
        return redirect(url_for(f"{BLUEPRINT}.register"))

    # -- issuing ----------------------------------------------------------------------------------------------
    @bp.route("/dpo/issue", methods=["GET", "POST"])
    @sign_in_required
    def issue():
        form = request.form if request.method == "POST" else {"kind": request.args.get("kind", "delegation")}
        if request.method == "GET":
            return render_template("dpo_issue.html", form=form, error=None, kinds=KINDS,
                                   formats=FORMAT_LABELS)
        token = current_token()
        try:
            credential, options = credential_from_form(node, request.form)
            issued = issuing.issue(node, credential, options, issued_by=token.name,
                                   scopes=token.scopes.split(","))
        except CeadError as exc:
            status = http_status(exc.code)
            if status >= 500:
                raise
            return render_template("dpo_issue.html", form=form, error=exc.problem, kinds=KINDS,
                                   formats=FORMAT_LABELS), status
        audit(f"issued {KINDS.get(request.form.get('kind'), 'credential')}", target=issued.id)
        text = pretty(issued.credential)
        media = MEDIA_TYPES.get(issued.format, "application/vc")
        filename = issued.id.split(":")[-1] + (".jwt" if issued.format == "vc+jwt" else ".json")
        return render_template("dpo_issued.html", issued=issued, text=text, filename=filename,
                               href=download_href(text, media)), 201

    return bp
