"""The wallet's web pages: what the organisation holds, one credential in detail, and its printable summary.

Signed-in pages (the DPO pages' sign-in, from ``issuer.pages``):

- ``GET /wallet/``: holdings with type, issuer, datasets, expiry, status and warnings (``Wallet.warnings``);
  ``POST /wallet/check-status`` re-reads every status list first (``Wallet.check_status``).
- ``GET /wallet/<id>``: one credential; ``/wallet/<id>/credential`` downloads it as received.
- ``GET /wallet/<id>/summary``: a printable summary: every condition in plain words and what was verified just
  now (``wallet.approval_view``), with a QR code leading to the public verification page below
  (``.svg`` / ``.png``: ``wallet.qr.summary_svg`` / ``summary_png``).

- ``GET /wallet/requests``: data-sharing requests received (``wallet.sharing``), pending first;
  ``GET /wallet/requests/<id>`` shows one with an approval form prefilled from it; ``POST .../approve``,
  ``POST .../refuse``, ``POST .../deliver`` and ``POST .../reopen`` (scope ``issue:approval``) call
  ``wallet.sharing.approve`` / ``refuse`` / ``redeliver`` / ``reopen``.

Public: ``GET /verify/<link>`` verifies the held credential now and says exactly what was checked (signature,
validity, status read afresh from the status list; for an approval the approver's delegation chain up to the
controller, the recipients' certifications and the lawful-basis rules) beside every condition in plain words; a
revoked or suspended credential is the headline; ``/verify/<link>/credential`` lets the reader verify it themselves. ``<link>`` is the local id
signed with the node's web secret (itsdangerous), so only people given a printed summary can open it and nobody
can list the wallet. Deleting the credential, or ``HOME/web-secret``, withdraws the link.
"""
from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from itsdangerous import BadSignature, URLSafeSerializer

from issuer.pages import current_token, http_status, parse_object, pretty, protect, sign_in_required
from schemas import words as wording
from verifier.results import CeadError

from . import approval_view, current, delegate_pages, desk_pages, precedents, qr, standing_pages, wizard
from . import sharing
from .approval_view import KIND_NAMES, moment_words
from .store import Wallet, WalletCredential

BLUEPRINT = "cead_wallet"
LINK_SALT = "cead-wallet-verify"
MEDIA_TYPES = {"jwt": "application/vc+jwt", "ldp": "application/vc"}
# what the approver states beyond what the request names (see schemas.models.DataSharingApproval): among them every
# field a delegation's scope can require of an approval (its ceilings and requirements: DataSharingApproval.scope())
APPROVER_FIELDS = ("lawfulBases (your own entry)", "dataCategories", "dataSubjects", "dpia", "sensitivity",
                   "recipientRequirements", "maxRowsPerTransfer", "retention", "onwardSharing", "privacyProtocol",
                   "coSigners", "notBefore", "notAfter")
STATUS_BADGES = wording.STATUS_BADGE     # the badge's colour for each status_words() answer


def in_force(record: WalletCredential) -> tuple:
    """When a held credential is in force, ``(from, until)``: its validity narrowed by the notBefore/notAfter it
    states (``WalletCredential.in_force``)."""
    return record.in_force()


# what a notAfter ends, by kind of credential (a warning says why a credential without a nearer validUntil ends)
STATED_ENDS = {"DataSharingApprovalCredential": "the end of the period it approves",
               "DelegatedAuthorityCredential": "the end of the period it delegates for"}


def warning_words(problem, record: WalletCredential, names) -> dict:
    """A wallet warning (``Wallet.warnings``) in the words the pages use: the credential's kind by name
    (``schemas.words.kind_name``), its issuer as ``names`` (a ``wallet.names.Directory``) knows it (``issuer``: a
    ``Named``, whose DID the page shows beside it in small monospace), and what happened, dated in words:
    ``{"code", "kind", "issuer", "says", "short"}``, read as "<kind> from <issuer> <says>."; ``short`` says only
    what happened, as a sentence ("Expired on ...", "Now revoked ..."), for a list whose row names the kind and the
    issuer already."""
    detail = problem.detail or {}
    kind = _kinds(record)[0]
    if problem.code in ("wallet.expired", "wallet.expiring"):
        ends = moment_words(detail.get("ends") or detail.get("validUntil"))
        why = f" ({STATED_ENDS.get(kind, 'the end it states')})" if detail.get("endsBy") == "notAfter" else ""
        says = (f"expired on {ends}{why}" if problem.code == "wallet.expired" else
                f"expires on {ends}{why}, within {detail.get('days')} days")
    elif problem.code == "wallet.status_changed":
        says = (f"is now {wording.status_words(detail.get('status'))} (it was "
                f"{wording.status_words(record.status_at_receipt)} when it arrived)")
    else:
        says = f"has a warning: {problem.message}"
    short = says.removeprefix("is ").removeprefix("has ")
    return {"code": problem.code, "kind": wording.kind_name(kind), "issuer": names.name(record.issuer),
            "says": says, "short": short[:1].upper() + short[1:]}


def status_shown(record: WalletCredential) -> str:
    """A held credential's standing in words (``schemas.words.status_words``): its status as last read from its
    status list, except that one past the end of its validity (or of the notAfter it states) reads "expired"."""
    starts, ends = in_force(record)
    return wording.status_words(record.status_now, valid_until=ends, valid_from=starts)


def _kinds(record: WalletCredential) -> list[str]:
    return [t for t in record.type_list if t != "VerifiableCredential"] or ["Credential"]


def directory(node, wallet: Wallet):
    """The names the pages show (``wallet.names.Directory``)."""
    from .names import Directory
    return Directory.for_pages(node, wallet)


def links() -> URLSafeSerializer:
    """Signs and reads the public verification links (the local id signed with the app's web secret)."""
    return URLSafeSerializer(current_app.secret_key, salt=LINK_SALT)


def record_or_404(wallet: Wallet, ident: str) -> WalletCredential:
    record = wallet.get(ident)
    if record is None:
        raise CeadError("wallet.not_found", "This wallet holds no such credential.")
    return record


def verify_url(record: WalletCredential) -> str:
    """The public verification page of ``record``, under the node's external base URL (``current.public_url``),
    else the URL the page was requested at."""
    base = (current.public_url() or request.url_root).rstrip("/")
    return f"{base}{url_for(f'{BLUEPRINT}.verify', link=links().dumps(record.id))}"


def warnings_by_id(wallet: Wallet) -> dict[str, list]:
    out: dict[str, list] = {}
    for problem in wallet.warnings():
        out.setdefault(problem.detail.get("id"), []).append(problem)
    return out


def download(record: WalletCredential) -> Response:
    name = record.id + (".jwt" if record.format == "jwt" else ".json")
    return Response(record.raw, mimetype=MEDIA_TYPES[record.format],
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def plain(node, wallet: Wallet, record: WalletCredential) -> dict:
    """Every condition in plain words and what was verified, read now (``wallet.approval_view``)."""
    names = directory(node, wallet)
    kinds = _kinds(record)
    return {"sections": approval_view.conditions(record.document, names), "is_approval":
            approval_view.APPROVAL in kinds, "report": approval_view.verification(wallet, record, names),
            "issuer_name": names.name(record.issuer), "kind_name": KIND_NAMES.get(kinds[0], kinds[0])}


def from_link(wallet: Wallet, link: str) -> WalletCredential:
    try:
        ident = links().loads(link)
    except BadSignature:
        raise CeadError("web.link_invalid", "This verification link is not valid (mistyped, or withdrawn by "
                        "the holder).") from None
    record = wallet.get(ident) if isinstance(ident, str) else None
    if record is None:
        raise CeadError("web.link_invalid", "The holder no longer holds this credential.")
    return record


def may_approve() -> list[str]:
    scopes = current_token().scopes.split(",")
    if "issue:approval" not in scopes:
        raise CeadError("auth.scope", "This token may not decide data-sharing requests (needs issue:approval).",
                        scope="issue:approval")
    return scopes


# -- the views (URL rules in :func:`blueprint`) ---------------------------------------------------------------------

@sign_in_required
def holdings():
    node, wallet = current.node(), current.wallet()
    kind = request.args.get("type") or None
    records = wallet.search(type=kind)
    warnings = warnings_by_id(wallet)
    names = directory(node, wallet)
    rows = [{"record": r, "kinds": _kinds(r), "datasets": wallet.terms(r.id).get("dataset", []),
             "valid_until": moment_words(in_force(r)[1]),
             "warnings": [warning_words(p, r, names) for p in warnings.get(r.id, [])],
             "status": status_shown(r)} for r in records]
    return render_template("wallet_holdings.html", rows=rows, kind=kind, badges=STATUS_BADGES, names=names,
                           kind_names=KIND_NAMES,
                           warn_days=wallet.expiry_warning_days,
                           kinds=["DataSharingApprovalCredential", "DelegatedAuthorityCredential",
                                  "OrganisationCertificationCredential"])


@sign_in_required
def check_status():
    changed = current.wallet().check_status()
    flash(f"Status lists read again: {len(changed)} credential(s) changed since receipt." if changed
          else "Status lists read again: no credential has been revoked or suspended since receipt.")
    return redirect(url_for(f"{BLUEPRINT}.holdings"))


# -- data-sharing requests (the IAO's approvals interface) ---------------------------------------------------------
@sign_in_required
def requests_list():
    from .names import Directory
    node, wallet = current.node(), current.wallet()
    rows = sharing.list_requests(wallet)
    names = Directory.for_node(node, wallet, [c for r in rows for c in r.certification_list])
    from .answers import list_answers
    from . import desk
    return render_template("wallet_requests.html", rows=rows, date=moment_words, names=names,
                           answers=list_answers(wallet), shown=desk.request_status_words(node, rows))


@sign_in_required
def request_deliver(request_id: str):
    may_approve()
    try:
        done = sharing.redeliver(current.node(), current.wallet(), request_id)
    except CeadError as exc:
        if exc.code != "sharing.undelivered":
            raise
        flash(f"Not delivered: {exc.message}")
        return redirect(url_for(f"{BLUEPRINT}.request_detail", request_id=request_id)), 302
    flash(f"Delivered {done.request.approval_id} again to {done.request.request['replyTo']}.")
    return redirect(url_for(f"{BLUEPRINT}.request_detail", request_id=request_id))


@sign_in_required
def request_reopen(request_id: str):
    may_approve()
    row = sharing.reopen(current.node(), current.wallet(), request_id, by=current_token().name)
    flash(f"Reopened: the request is {row.status} again; an approval signed before it was "
          "interrupted, if any, has been revoked.")
    return redirect(url_for(f"{BLUEPRINT}.request_detail", request_id=request_id))


@sign_in_required
def detail(ident: str):
    node, wallet = current.node(), current.wallet()
    record = record_or_404(wallet, ident)
    names = directory(node, wallet)
    return render_template("wallet_detail.html", record=record, kinds=_kinds(record), names=names,
                           kind_names=KIND_NAMES, terms=wallet.terms(record.id), warnings=[
        warning_words(p, record, names) for p in warnings_by_id(wallet).get(record.id, [])],
        document=pretty(record.document),
        badges=STATUS_BADGES, valid_from=moment_words(in_force(record)[0]),
        valid_until=moment_words(in_force(record)[1]),
        received=moment_words(record.received_at), status=status_shown(record),
        status_at_receipt=wording.status_words(record.status_at_receipt),
        status_checked=moment_words(record.status_checked_at) if record.status_at_receipt != "none" else "")


@sign_in_required
def credential(ident: str):
    return download(record_or_404(current.wallet(), ident))


@sign_in_required
def summary(ident: str):
    node, wallet = current.node(), current.wallet()
    record = record_or_404(wallet, ident)
    url = verify_url(record)
    return render_template("wallet_summary.html", record=record, verify_url=url, qr_svg=qr.qr_svg(url),
                           **plain(node, wallet, record))


@sign_in_required
def summary_image(ident: str, ext: str):
    node, wallet = current.node(), current.wallet()
    record = record_or_404(wallet, ident)
    if ext == "svg":
        return Response(qr.summary_svg(record.document, verify_url(record), directory(node, wallet)),
                        mimetype="image/svg+xml")
    if ext == "png":
        return Response(qr.summary_png(record.document, verify_url(record), directory(node, wallet)),
                        mimetype="image/png")
    raise CeadError("wallet.not_found", "A summary is available as .svg or .png.")


def verify(link: str):
    node, wallet = current.node(), current.wallet()
    record = from_link(wallet, link)
    return render_template("wallet_verify.html", record=record, kinds=_kinds(record), link=link,
                           **plain(node, wallet, record))


def verify_download(link: str):
    return download(from_link(current.wallet(), link))


def blueprint(wallet: Wallet, *, public_url: str | None = None) -> Blueprint:
    """The wallet pages for ``wallet``; ``public_url`` is the node's external base URL, used in the QR codes
    (default: the URL the page was requested at). Registering it on an app keeps both there
    (``wallet.current.install``), where the views read them while handling a request."""
    bp = Blueprint(BLUEPRINT, __name__, template_folder="templates")
    bp.record_once(lambda state: current.install(state.app, wallet, public_url=public_url))
    bp.add_app_template_global(precedents.why_near, "why_near")   # precedents' reasons in words (decision page)
    protect(bp, {"wallet.not_found": 404, "web.link_invalid": 404, "sharing.not_found": 404,
                 "sharing.not_pending": 409, "sharing.not_approved": 409, "sharing.in_progress": 409,
                 "wallet.delegation_missing": 422, "sharing.undelivered": 502})
    bp.add_url_rule("/wallet/", "holdings", holdings, methods=["GET"])
    bp.add_url_rule("/wallet/check-status", "check_status", check_status, methods=["POST"])
    bp.add_url_rule("/wallet/requests", "requests_list", requests_list, methods=["GET"])
    wizard.register(bp)             # the analyst's request wizard (before /<request_id>)
    desk_pages.register(bp)         # the decision page, approve, refuse, ask for changes, status
    standing_pages.register(bp)     # standing approvals: what is in force, made, suspended
    delegate_pages.register(bp)     # the DPO delegates approval authority, in a guided form
    bp.add_url_rule("/wallet/requests/<request_id>/deliver", "request_deliver", request_deliver, methods=["POST"])
    bp.add_url_rule("/wallet/requests/<request_id>/reopen", "request_reopen", request_reopen, methods=["POST"])
    bp.add_url_rule("/wallet/<ident>", "detail", detail, methods=["GET"])
    bp.add_url_rule("/wallet/<ident>/credential", "credential", credential, methods=["GET"])
    bp.add_url_rule("/wallet/<ident>/summary", "summary", summary, methods=["GET"])
    bp.add_url_rule("/wallet/<ident>/summary.<ext>", "summary_image", summary_image, methods=["GET"])
    bp.add_url_rule("/verify/<link>", "verify", verify, methods=["GET"])
    bp.add_url_rule("/verify/<link>/credential", "verify_download", verify_download, methods=["GET"])
    return bp
