"""The approver's desk pages (registered on the wallet pages' blueprint by ``wallet.pages``):

- ``GET /wallet/requests/<id>``: the decision page (``wallet.desk``): who is asking, the request against the
  chosen delegation dimension by dimension with the delegation's own status, the rule results, the ICO checklist,
  column flags, "what approving will allow", then the guided approval form (``wallet.forms.ApproveForm``), and
  "ask for changes" / "refuse" with reasons. An approved request shows its approval's current status with
  suspend / reinstate / revoke.
- ``POST /wallet/requests/<id>/approve``: the guided form (or, for scripts and older pages, a ``subject`` field of
  JSON/YAML as before). Nothing is signed unless the form is complete, the delegation is active (read from its
  status list now) and the approval lies within it; otherwise the page comes back with what was typed and a
  message beside each field.
- ``POST /wallet/requests/<id>/decide``: ask for changes or refuse, with reasons.
- ``POST /wallet/requests/<id>/status``: suspend, reinstate or revoke the approval issued for the request.
"""
from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from flask import Response, flash, redirect, render_template, request, url_for
from pydantic import ValidationError
from werkzeug.datastructures import MultiDict

from issuer import staff
from issuer.pages import audit, current_token, http_status, may, parse_object, sign_in_required
from schemas import vocab, words
from schemas.models import DataSharingApproval, describe
from verifier.results import CeadError

from . import current, desk
from .approval_view import cadence_words, moment_words
from . import sharing
from .forms import (CADENCE_HINT, DURATION_HINT, ApproveForm, DecideForm, _choices, cadence_from_words,
                    cadence_in_words, condition_choices, default_window, duration_from_words, duration_in_words,
                    legal_basis_choices, options)
from .names import Directory, node_policy

CHANGES_REQUESTED = "changes requested"
SUSPENDABLE = {"credentialStatus": {"type": "BitstringStatusListEntry",
                                    "statusPurpose": ["revocation", "suspension"]}}


def _day(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


# -- what the views share: each takes the node, the wallet and the names it works with ----------------------------

def delegations(node, wallet) -> list[dict]:
    """Every delegation this node holds for itself (whatever its status: the page shows it), newest first:
    in the wallet, then HOME/delegations."""
    out, seen = [], set()
    for r in wallet.search(type="DelegatedAuthorityCredential"):
        if r.subject == wallet.holder and r.credential_id and r.credential_id not in seen:
            seen.add(r.credential_id)
            out.append({"id": r.credential_id, "signed": r.credential, "issuer": r.issuer})
    for path in sorted((node.home / "delegations").glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except (ValueError, OSError):
            continue
        if isinstance(doc, dict) and isinstance(doc.get("id"), str) and doc["id"] not in seen:
            seen.add(doc["id"])
            out.append({"id": doc["id"], "signed": doc, "issuer": doc.get("issuer")})
    return out


def label_delegation(names: Directory, d: dict) -> str:
    try:
        model = desk.delegation_model(d["signed"])
        scope = model.scope
        what = ", ".join(str(names.name(x)) for x in (scope.datasets or [])) or "any dataset"
        role = words.role_name(model.role)
        return f"{role} for {names.name(model.on_behalf_of)}: {what}"
    except CeadError:
        return d["id"]


def defaults(row, chosen: dict | None, names: Directory) -> MultiDict:
    req = row.request
    scope = desk.delegation_model(chosen["signed"]).scope if chosen else None
    start, end = default_window(_day(scope.not_after) if scope and scope.not_after else None)
    case = desk.case_of(req)
    proposed = case.proposed_protocol if case else None
    data = MultiDict({
        "delegation": chosen["id"] if chosen else "",
        "sensitivity": scope.max_sensitivity if scope and scope.max_sensitivity else "Pseudonymised",
        # the request's cadence and retention in the words the form takes ("monthly from 1 December 2026",
        # "1 year") where words say exactly the same; otherwise as written
        "dpia_outcome": "LowRisk", "cadence": cadence_in_words(req.get("cadence", "")),
        "retention": duration_in_words((case.retention if case and case.retention else None)
                                       or (scope.max_retention if scope and scope.max_retention else "P1Y")),
        "onward_sharing": "Prohibited", "protocol": proposed.kind if proposed else "threshold",
        "min_cell_count": str(proposed.min_cell_count) if proposed and proposed.min_cell_count else "10",
        "max_rows": str(scope.max_rows_per_transfer) if scope and scope.max_rows_per_transfer else "",
        "co_signers": "\n".join(scope.required_co_signers or []) if scope else "",
        "not_before": start.isoformat(), "not_after": end.isoformat(),
    })
    dpia = next((d for d in (case.documents if case else []) if d.kind == "dpia"), None)
    if dpia is not None:        # the DPIA the request attached, pinned by its digest in the approval
        data["dpia_reference"] = dpia.id
    for b in (req.get("lawfulBasis") or {}).get("legalBases", []):
        term = vocab.LEGAL_BASES.get(vocab.expand(b))
        key = "controller_condition" if term is not None and (term.special or term.criminal) \
            else "controller_basis"
        if key not in data:
            data[key] = vocab.expand(b)
    for c in (scope.data_categories if scope and scope.data_categories else []):
        data.add("data_categories", c)
    for s in (scope.data_subjects if scope and scope.data_subjects else []):
        data.add("data_subjects", s)
    for s in (scope.recipient_requirements if scope and scope.recipient_requirements else []):
        data.add("recipient_requirements", s)
    return data


def make_form(formdata: MultiDict, names: Directory, choices: list[dict]) -> ApproveForm:
    form = ApproveForm(formdata)
    form.delegation.choices = options([(d["id"], label_delegation(names, d)) for d in choices]
                                      + [("", "None: approve as this organisation itself")])
    form.controller_basis.choices = legal_basis_choices()
    form.controller_condition.choices = condition_choices()
    form.data_categories.choices = _choices(vocab.DATA_CATEGORIES)
    form.data_subjects.choices = _choices(vocab.DATA_SUBJECTS)
    form.recipient_requirements.choices = _choices(vocab.CERTIFICATION_SCHEMES)
    return form


def overrides_from(form: ApproveForm, draft: dict) -> dict:
    bases = [b for b in (form.controller_basis.data, form.controller_condition.data) if b]
    regimes = {vocab.LEGAL_BASES[b].regime for b in bases if b in vocab.LEGAL_BASES}
    regime = next((n for n, iri in vocab.REGIME_NAMES.items() if iri in regimes), "UKGDPR")
    protocol = {"threshold": [{"kind": "threshold", "minCellCount": form.min_cell_count.data}],
                "pseudonymisation": [{"kind": "pseudonymisation"}], "treOnly": [{"kind": "treOnly"}],
                "none": []}.get(form.protocol.data, [])
    out = {
        # the requester's entry as asked, and the discloser's from this form (once: ``draft`` may already be
        # a subject built from the form, and an approval listed the discloser's basis twice)
        "lawfulBases": [*[lb for lb in draft["lawfulBases"] if lb.get("party") != draft["discloser"]],
                        {"party": draft["discloser"], "regime": regime, "legalBases": bases}],
        "dataCategories": list(form.data_categories.data or []),
        "dataSubjects": list(form.data_subjects.data or []),
        "recipientRequirements": list(form.recipient_requirements.data or []),
        "sensitivity": form.sensitivity.data,
        "dpia": {"outcome": form.dpia_outcome.data, **({"reference": form.dpia_reference.data}
                                                       if form.dpia_reference.data else {})},
        "cadence": cadence_from_words(form.cadence.data), "retention": {"receivedData": duration_from_words(form.retention.data)},
        "onwardSharing": form.onward_sharing.data, "privacyProtocol": protocol,
        "coSigners": form.co_signer_list(),
        "notBefore": f"{form.not_before.data.isoformat()}T00:00:00Z",
        "notAfter": f"{form.not_after.data.isoformat()}T23:59:59Z",
    }
    if form.max_rows.data:
        out["maxRowsPerTransfer"] = form.max_rows.data
    return out


def analyse(node, wallet, row, form: ApproveForm, choices: list[dict], names: Directory) -> dict:
    """Everything the decision page shows, for the form as it stands (nothing is signed)."""
    chosen = next((d for d in choices if d["id"] == form.delegation.data), None)
    out: dict[str, Any] = {"chosen": chosen, "status": None, "fit": [], "violations": [], "subject": None,
                           "checked": False,
                           "model_problem": None, "issuer": None}
    draft = sharing.draft_subject(node, wallet, row.id, delegation=chosen["id"] if chosen else None) \
        if row.status == sharing.PENDING else None
    if chosen is not None:
        out["status"] = desk.delegation_status(wallet, chosen["signed"])
        out["issuer"] = names.name(chosen["issuer"])
    if draft is not None and not form.errors and form.not_before.data and form.not_after.data:
        subject = {**draft, **overrides_from(form, draft)}
        out["subject"] = subject
        try:
            from issuer import issuing
            credential = issuing.build_credential(node, sharing.APPROVAL, subject)
            approval = DataSharingApproval.from_credential(credential)
        except (CeadError, ValidationError) as exc:
            out["model_problem"] = desk.form_problem(exc.message if isinstance(exc, CeadError)
                                                     else describe(exc))
            approval = None
        if chosen is not None:
            delegation = desk.delegation_model(chosen["signed"])
            if approval is not None:
                from verifier.scope import approval_within
                out["violations"] = approval_within(approval, delegation, vocabulary=node.vocabulary)
            out["fit"] = desk.delegation_fit(names, approval, delegation, out["violations"], subject,
                                             vocabulary=node.vocabulary)
            out["checked"] = approval is not None
    elif chosen is not None and row.delivery:
        # decided: the approval as issued, against the delegation it rests on
        approval = None
        try:
            issued = desk._document(json.loads(row.delivery)[0])
            out["issued"] = issued.get("credentialSubject") if isinstance(
                issued.get("credentialSubject"), dict) else None
            approval = DataSharingApproval.from_credential(issued)
            chain = (issued.get("credentialSubject") or {}).get("delegationChain") or []
            chosen = next((d for d in choices if chain and d["id"] == chain[-1].get("id")), chosen)
            out.update(chosen=chosen, status=desk.delegation_status(wallet, chosen["signed"]),
                       issuer=names.name(chosen["issuer"]))
        except (ValueError, IndexError, TypeError, CeadError):
            pass
        delegation = desk.delegation_model(chosen["signed"])
        if approval is not None:
            from verifier.scope import approval_within
            out["violations"] = approval_within(approval, delegation, vocabulary=node.vocabulary)
            out["checked"] = True
        out["fit"] = desk.delegation_fit(names, approval, delegation, out["violations"], row.request,
                                         vocabulary=node.vocabulary)
    elif chosen is not None:
        out["fit"] = desk.delegation_fit(names, None, desk.delegation_model(chosen["signed"]), [],
                                         draft or row.request, vocabulary=node.vocabulary)
    return out


def decision_page(node, wallet, request_id: str, *, formdata: MultiDict | None = None,
                  decide: DecideForm | None = None, error=None, status: int = 200, validate: bool = False,
                  field_errors: dict[str, list[str]] | None = None):
    """The decision page for request ``request_id`` and its HTTP status: the form from ``formdata`` (as typed), or
    prefilled from the request and the delegation chosen (``?delegation=``, else the first usable one)."""
    row = sharing.get_request(wallet, request_id)
    req = row.request
    names = Directory.for_node(node, wallet, row.certification_list)
    choices = delegations(node, wallet)
    if formdata is None:
        wanted = request.args.get("delegation")
        chosen = next((d for d in choices if d["id"] == wanted), None) if wanted is not None else \
            next((d for d in choices if desk.delegation_status(wallet, d["signed"])["usable"]),
                 choices[0] if choices else None)
        formdata = defaults(row, chosen, names)
    form = make_form(formdata, names, choices)
    if validate or field_errors:
        form.validate()              # after a submit: what each field lacks shows beside it
    facts = analyse(node, wallet, row, form, choices, names)
    for name, messages in (field_errors or {}).items():
        field = getattr(form, name)
        field.errors = list(dict.fromkeys([*field.errors, *messages]))
    case = desk.case_of(req)
    flags = desk.minimisation(req.get("dataItems", []))
    categories = list(form.data_categories.data or [])
    ends = form.not_after.data if isinstance(form.not_after.data, date) else None
    policy = node_policy(node)
    approval_status, approval_words, approved_lines, shown_status = None, None, [], row.status
    if row.delivery:
        try:
            delivered = json.loads(row.delivery)[0]
            approved_lines = desk.what_approving_allows(
                names, desk._document(delivered).get("credentialSubject") or {})
        except (ValueError, IndexError, TypeError, AttributeError, CeadError):
            approved_lines = []
    if row.approval_id:
        from issuer import issuing
        reg = next((r for r in issuing.register(node) if r.id == row.approval_id), None)
        approval_status = reg.status if reg is not None else None
        if reg is not None:         # in words: a suspended, revoked or expired approval never reads "approved"
            approval_words = issuing.status_words(node, [reg], in_force="in force")[reg.id]
            if row.status == sharing.APPROVED:
                shown_status = "approved" if approval_words == "in force" else approval_words
    decide = decide or DecideForm()
    errors = [(f.id, e) for f in form for e in f.errors] + [(f.id, e) for f in decide for e in f.errors]
    if error is not None and any(error.message == e for _, e in errors):
        error = None                 # already in the error summary and beside its field
    return render_template(
        "wallet_request.html", row=row, req=req, names=names, form=form, decide=decide, cadence_hint=CADENCE_HINT,
        duration_hint=DURATION_HINT,
        facts=facts, who=desk.requester(names, row, policy, ends), policy=policy,
        rules=desk.rule_results(names, req, list((facts.get("issued") or {}).get("dataCategories") or [])
                                if facts.get("issued") else categories, facts["subject"] or facts.get("issued"),
                                pending=row.status == sharing.PENDING), lawful=desk._lawful_module(),
        checklist=desk.ico_checklist(req, case, flags), flags=flags, case=case,
        precedents=desk.precedents(sharing.list_requests(wallet), row), nearest=nearest(wallet, row),
        allows=desk.what_approving_allows(names, facts["subject"]) if facts["subject"] else [],
        error=error, errors=errors if row.status == sharing.PENDING else [], document=json.dumps(
            req, indent=2, ensure_ascii=False), date=moment_words, cadence_words=cadence_words, interrupted=sharing.is_interrupted(row),
        reopen_after=int(sharing.INTERRUPTED_AFTER.total_seconds() // 60), approval_status=approval_status, approved_lines=approved_lines, when=_when,
        approval_words=approval_words, shown_status=shown_status,
        renew_default=(date.today().replace(year=date.today().year + 1)).isoformat(),
        may_decide=may("issue:approval"), may_change=may("status:change"),
        log=staff.audit_log(node.engine, target=row.id),
        person=staff.person_words(node.engine),
    ), status


def nearest(wallet, row) -> list[dict] | None:
    """Precedents from this node and the peers it follows (``wallet.precedents``), or None when that search
    cannot run here (the page then shows this node's own earlier decisions)."""
    try:
        from . import precedents
        return precedents.nearest(wallet, {**row.request, "_id": row.id}, k=5, requester=row.requester)
    except Exception:        # noqa: BLE001 (optional search; the page's own list stands in)
        return None


def may_approve() -> list[str]:
    """The signed-in person's scopes, when they may decide requests (``issue:approval``)."""
    if not may("issue:approval"):
        raise CeadError("auth.scope", "You may not decide data-sharing requests: ask your DPO for the "
                        "Information Asset Owner role.", scope="issue:approval")
    return current_token().scopes.split(",")


def render_refused(node, wallet, request_id: str, form: ApproveForm, code: str, message: str):
    """The page again, keeping what was typed, with the errors set on ``form`` beside their fields."""
    from verifier.results import Problem
    field_errors = {f.name: list(f.errors) for f in form if f.errors}
    return decision_page(node, wallet, request_id, formdata=request.form, error=Problem(code, message, {}),
                         status=422, field_errors=field_errors)


def approve_raw(node, wallet, request_id: str, scopes: list[str]):
    """The subject as JSON/YAML (scripts and the older page)."""
    try:
        subject = parse_object(request.form.get("subject", ""), "approval subject")
        done = sharing.approve(node, wallet, request_id, subject,
                               delegation=(request.form.get("delegation") or "").strip() or None,
                               valid_until=(request.form.get("valid_until") or "").strip() or None,
                               issued_by=current_token().name, scopes=scopes)
    except CeadError as exc:
        status = http_status(exc.code, {"sharing.not_found": 404, "sharing.not_pending": 409,
                                        "sharing.undelivered": 502, "wallet.delegation_missing": 422})
        if status >= 500 and exc.code != "sharing.undelivered":
            raise
        return decision_page(node, wallet, request_id, error=exc.problem, status=status)
    audit("approved", target=request_id, detail={"approval": done.issued.id})
    flash(f"Approved: {done.issued.id} was issued and delivered to {done.request.request['replyTo']}.")
    return back_to(request_id)


def send_back(node, wallet, row) -> str:
    """Deliver the refusal or request for changes to the requester's node; a sentence saying what happened."""
    from . import answers
    who = Directory.for_node(node, wallet, row.certification_list).name(row.requester)
    try:
        answers.send_answer(node, wallet, row)
    except CeadError as exc:
        audit("answer not delivered", target=row.id, detail={"code": exc.code})
        return (f"but could not be sent to {who}'s node: {exc.message} Use \"Send the answer again\" once "
                "it can be reached.")
    audit("answer delivered", target=row.id)
    return f"and sent to {who}'s node."


def back_to(request_id: str):
    """The redirect to the request's decision page (on the blueprint the desk is registered on)."""
    return redirect(url_for(".request_detail", request_id=request_id))


# -- the views (URL rules in :func:`register`) ----------------------------------------------------------------------

@sign_in_required
def request_detail(request_id: str):
    return decision_page(current.node(), current.wallet(), request_id)


@sign_in_required
def request_approve(request_id: str):
    scopes = may_approve()
    node, wallet = current.node(), current.wallet()
    if "subject" in request.form:
        return approve_raw(node, wallet, request_id, scopes)
    row = sharing.get_request(wallet, request_id)
    names = Directory.for_node(node, wallet, row.certification_list)
    choices = delegations(node, wallet)
    form = make_form(request.form, names, choices)
    if row.status != sharing.PENDING:
        raise CeadError("sharing.not_pending", f"Request {request_id} was already {row.status}.")
    if request.form.get("action") == "check":
        # "Check under this delegation": the page again, its checks under the delegation now chosen and the
        # form as typed; nothing is signed
        return decision_page(node, wallet, request_id, formdata=request.form)
    if not form.validate():
        return decision_page(node, wallet, request_id, formdata=request.form, status=400, validate=True)
    facts = analyse(node, wallet, row, form, choices, names)
    chosen = facts["chosen"]
    if chosen is not None and not facts["status"]["usable"]:
        who = facts["issuer"]
        form.delegation.errors = [f"This delegation is {facts['status']['status']}, so it cannot be used: "
                                  f"nothing was signed. Ask {who} (who issued it) to reinstate it or to "
                                  "delegate afresh."]
        audit("approval refused before signing", target=request_id,
              detail={"cause": f"delegation {facts['status']['status']}", "delegation": chosen["id"]})
        return render_refused(node, wallet, request_id, form, "web.delegation_unusable", form.delegation.errors[0])
    if facts["model_problem"]:
        return render_refused(node, wallet, request_id, form, "sharing.invalid", facts["model_problem"])
    if facts["violations"]:
        for v in facts["violations"]:
            target = desk.DIMENSION_FIELDS.get(v.dimension.split(".")[0]) or "delegation"
            getattr(form, target).errors = [*getattr(form, target).errors,
                                            f"Outside your delegation: {v.message}"]
        audit("approval refused before signing", target=request_id,
              detail={"cause": "outside the delegation", "dimensions": [v.dimension for v in facts["violations"]]})
        return render_refused(node, wallet, request_id, form, "web.outside_delegation",
                              "This approval would be wider than your delegation; nothing was signed.")
    try:
        done = sharing.approve(node, wallet, request_id, overrides_from(form, facts["subject"]),
                               delegation=chosen["id"] if chosen else None, options=SUSPENDABLE,
                               issued_by=current_token().name, scopes=scopes)
    except CeadError as exc:
        status = http_status(exc.code, {"sharing.not_found": 404, "sharing.not_pending": 409,
                                        "sharing.undelivered": 502, "wallet.delegation_missing": 422})
        if status >= 500 and exc.code != "sharing.undelivered":
            raise
        audit("approval failed", target=request_id, detail={"code": exc.code})
        if exc.code.startswith("lawful.") and isinstance(exc.detail.get("problems"), list):
            # the rulebook's refusal (issuer.lawful): each rule beside the field it concerns, with its citation
            from .rule_fields import APPROVAL_FIELDS, beside
            for name, messages in beside(exc.detail["problems"], APPROVAL_FIELDS, "controller_basis").items():
                getattr(form, name).errors = [*getattr(form, name).errors, *messages]
            return render_refused(node, wallet, request_id, form, exc.code, exc.message)
        return decision_page(node, wallet, request_id, formdata=request.form, error=exc.problem, status=status)
    audit("approved", target=request_id, detail={"approval": done.issued.id})
    flash(f"Approved and delivered to {names.name(row.requester)}.")
    return back_to(request_id)


@sign_in_required
def request_refuse(request_id: str):
    """Refuse with a reason (kept for scripts; the page uses /decide)."""
    may_approve()
    node, wallet = current.node(), current.wallet()
    reason = request.form.get("reason", "")
    try:
        sharing.refuse(wallet, request_id, reason, by=current_token().name)
    except CeadError as exc:
        if exc.code != "sharing.invalid":
            raise
        return decision_page(node, wallet, request_id, error=exc.problem, status=400)
    audit("refused", target=request_id, detail={"reason": reason})
    flash("Refused; the reason is recorded.")
    return back_to(request_id)


@sign_in_required
def request_decide(request_id: str):
    may_approve()
    node, wallet = current.node(), current.wallet()
    decide = DecideForm(request.form)
    if not decide.validate():
        return decision_page(node, wallet, request_id, decide=decide, status=400)
    reason = decide.reason.data.strip()
    if decide.decision.data == "refuse":
        row = sharing.refuse(wallet, request_id, reason, by=current_token().name)
        audit("refused", target=request_id, detail={"reason": reason})
        said = "Refused; the reasons are recorded"
    else:
        sharing._pending(wallet, request_id)
        row = sharing._decide(wallet, request_id, CHANGES_REQUESTED, reason=reason[:2000],
                              decided_by=current_token().name)
        audit("asked for changes", target=request_id, detail={"reason": reason})
        said = "Changes requested; the reasons are recorded"
    flash(f"{said} {send_back(node, wallet, row)}")
    return back_to(request_id)


@sign_in_required
def request_answer(request_id: str):
    may_approve()
    node, wallet = current.node(), current.wallet()
    row = sharing.get_request(wallet, request_id)
    if row.status not in (sharing.REFUSED, CHANGES_REQUESTED):
        raise CeadError("sharing.not_pending", "Only a refusal or a request for changes is sent back.")
    flash(f"The answer is recorded {send_back(node, wallet, row)}")
    return back_to(request_id)


@sign_in_required
def request_board_pack(request_id: str, ext: str):
    """The IG board pack (``wallet.boardpack``) as HTML or PDF."""
    from . import boardpack
    node, wallet = current.node(), current.wallet()
    sharing.get_request(wallet, request_id)
    if ext == "html":
        response = Response(boardpack.board_pack_html(node, wallet, request_id), mimetype="text/html")
        # the pack is a self-contained document with its own inline styles (it is also printed as PDF)
        response.headers["Content-Security-Policy"] = ("default-src 'none'; style-src 'unsafe-inline'; "
                                                       "img-src data:; frame-ancestors 'none'; base-uri 'none'")
        return response
    if ext == "pdf":
        return Response(boardpack.board_pack_pdf(node, wallet, request_id), mimetype="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="board-pack-{request_id}.pdf"'})
    raise CeadError("sharing.not_found", "A board pack is available as .html or .pdf.")


@sign_in_required
def request_agreement(request_id: str):
    """A draft data sharing agreement as a Word document (``wallet.agreements``), kept by the node."""
    from . import agreements
    data, digest = agreements.agreement_docx(current.node(), current.wallet(), request_id)
    audit("drafted the data sharing agreement", target=request_id, detail={"digest": digest})
    return Response(data, mimetype="application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                    headers={"Content-Disposition": f'attachment; filename="agreement-{request_id}.docx"',
                             "X-Cead-Digest": digest})


@sign_in_required
def request_renew(request_id: str):
    scopes = may_approve()
    node, wallet = current.node(), current.wallet()
    row = sharing.get_request(wallet, request_id)
    if row.status != sharing.APPROVED or not row.delivery:
        raise CeadError("sharing.not_approved", "Only an approved request's approval can be renewed.")
    until = _day(request.form.get("renew_until"))
    if until is None:
        raise CeadError("web.form_invalid", "Give the new end date, for example 2027-12-31.", field="renew_until")
    old_id = row.approval_id
    new_id, problem = renew(node, wallet, row, delegations(node, wallet), until, by=current_token().name,
                            scopes=scopes)
    audit("renewed approval", target=request_id, detail={"previous": old_id, "approval": new_id})
    flash(f"Renewed until {until.isoformat()}: a new approval was issued"
          + (" and delivered." if problem is None else f", but not delivered yet: {problem}")
          + " The earlier approval stays valid until its own end; revoke it in the register if it should "
          "stop now.")
    return back_to(request_id)


@sign_in_required
def request_status(request_id: str):
    if not may("status:change"):
        raise CeadError("auth.scope", "You may not suspend or revoke approvals.", scope="status:change")
    node, wallet = current.node(), current.wallet()
    row = sharing.get_request(wallet, request_id)
    action = request.form.get("action", "")
    if not row.approval_id or action not in ("suspend", "reinstate", "revoke"):
        raise CeadError("web.form_invalid", "Choose suspend, reinstate or revoke for an approved request.",
                        field="action")
    if action == "revoke" and request.form.get("confirm") != "yes":
        raise CeadError("web.form_invalid", "Tick the box to confirm that revoking is final.", field="confirm")
    from issuer import issuing, statuslist
    result = issuing.change_status(node, row.approval_id, action, by=current_token().name,
                                   reason=(request.form.get("reason") or "").strip() or None,
                                   scopes=current_token().scopes.split(","))
    audit(f"{action.rstrip('e')}ed approval", target=request_id, detail={"approval": row.approval_id})
    flash(f"The approval is now {result['status']}. {statuslist.seen_by_gateways(action, 'approval')}")
    return back_to(request_id)


def register(bp) -> None:
    """Add the desk's URL rules to the wallet pages' blueprint (``wallet.pages.blueprint``): the endpoints
    (``cead_wallet.request_detail``, ...) are the names templates and redirects pass to ``url_for``."""
    rule = "/wallet/requests/<request_id>"
    bp.add_url_rule(rule, "request_detail", request_detail, methods=["GET"])
    bp.add_url_rule(f"{rule}/approve", "request_approve", request_approve, methods=["POST"])
    bp.add_url_rule(f"{rule}/refuse", "request_refuse", request_refuse, methods=["POST"])
    bp.add_url_rule(f"{rule}/decide", "request_decide", request_decide, methods=["POST"])
    bp.add_url_rule(f"{rule}/answer", "request_answer", request_answer, methods=["POST"])
    bp.add_url_rule(f"{rule}/board-pack.<ext>", "request_board_pack", request_board_pack, methods=["GET"])
    bp.add_url_rule(f"{rule}/agreement.docx", "request_agreement", request_agreement, methods=["GET"])
    bp.add_url_rule(f"{rule}/renew", "request_renew", request_renew, methods=["POST"])
    bp.add_url_rule(f"{rule}/status", "request_status", request_status, methods=["POST"])


def renew(node, wallet, row, choices: list[dict], until: date, *, by: str, scopes: list[str]):
    """Issue a fresh approval with the same terms as the request's current one, valid from today until ``until``,
    under the same delegation (which must be active now), and deliver it. The request then names the new approval;
    the earlier one stays valid until its own end (revoke it in the register if it should stop now). Returns
    ``(new approval id, delivery problem or None)``."""
    import uuid
    from issuer import issuing
    old = desk._document(json.loads(row.delivery)[0])
    subject = {k: v for k, v in (old.get("credentialSubject") or {}).items() if k != "id"}
    today = date.today()
    if until <= today:
        raise CeadError("web.form_invalid", "The new end date must be after today.", field="renew_until")
    subject.update(notBefore=f"{today.isoformat()}T00:00:00Z", notAfter=f"{until.isoformat()}T23:59:59Z")
    chain = subject.get("delegationChain") or []
    chosen = next((d for d in choices if chain and d["id"] == chain[-1].get("id")), None)
    options = dict(SUSPENDABLE)
    if chain:
        if chosen is None:
            raise CeadError("wallet.delegation_missing", "The delegation the approval rests on is no longer held "
                            "here; approve a new request instead.")
        known = sharing.known_out_of_force(node, wallet, chosen["signed"])   # ended by its dates, say: in words
        if known is not None:
            raise known
        state = desk.delegation_status(wallet, chosen["signed"])
        if not state["usable"]:
            raise CeadError("web.delegation_unusable", f"The delegation the approval rests on is {state['status']}, "
                            "so it cannot be renewed under it: nothing was signed.")
        options["delegation"] = sharing.held_chain(wallet, chosen["signed"])[0]   # as signed, with what it rests on
    credential = issuing.build_credential(node, sharing.APPROVAL, subject)
    credential["id"] = f"urn:uuid:{uuid.uuid4()}"
    pinned = sharing._pinned_credentials(wallet, credential, chosen["signed"] if chosen else None)
    issued = issuing.issue(node, credential, options, issued_by=by, scopes=scopes)
    done = sharing._decide(wallet, row.id, sharing.APPROVED, when=sharing.APPROVED, approval_id=issued.id,
                           decided_by=by, delivery=json.dumps([issued.credential, *pinned], ensure_ascii=False),
                           delivered_at=None)
    try:
        sharing._deliver(node, done, None)
        sharing._delivered(wallet, row.id)
        return issued.id, None
    except CeadError as exc:
        return issued.id, exc.message


def _when(iso: str | None) -> str:
    """An audit timestamp (ISO 8601 UTC) as the pages show dates."""
    try:
        return moment_words(datetime.fromisoformat(str(iso).replace("Z", "+00:00")))
    except ValueError:
        return str(iso or "")


