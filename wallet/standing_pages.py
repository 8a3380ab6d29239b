"""The standing-approvals page (``wallet.standing``), registered on the wallet pages' blueprint:

- ``GET /wallet/standing``: each standing approval in force here, its rule bounds in plain words, its template's
  status (read now from the status list), what was approved automatically under it (and when), and what fell
  outside it with the reason. Seen by those who decide requests (IAO, DPO, admin).
- ``POST /wallet/standing``: a DPO (or admin: scope ``issue:delegation``) signs a new one through the guided form
  (:class:`StandingForm`): the template is a delegation from this node to itself, under a delegation the node holds
  or on the organisation's own behalf (``wallet.standing.create``). On error the form comes back with what was
  typed and each message beside its field; nothing is signed.
- ``POST /wallet/standing/<name>/status``: suspend, reinstate or revoke the template (DPO or admin), when this node
  signed it; the guard rail reads its status at every automatic approval, so a suspended one stops at once.
"""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from wtforms import (BooleanField, DateField, Form, IntegerField, RadioField, SelectField, StringField,
                     TextAreaField)
from wtforms.validators import DataRequired, InputRequired, NumberRange, Optional, Regexp, ValidationError

from issuer.pages import audit, current_token, may, sign_in_required, words
from issuer import staff
from schemas import vocab
from schemas import words as plain
from verifier.results import CeadError

from . import current, desk, standing
from .forms import DURATION, DURATION_HINT, PROTOCOLS, MultiCheckboxField, _choices, _for_threshold, \
    authority_choices, condition_choices, dataset_choices, duration_from_words, legal_basis_choices, options
from .forms import held_delegations as held
from .approval_view import day_words, duration_words, moment_words
from .names import Directory

SUB_DELEGATION = ("The delegation it rests on does not let this node delegate further (it needs the SubDelegate "
                  "action with depth left): ask its issuer for one that does, or choose another.")
ACTIONS = {"suspend": "suspended", "reinstate": "active", "revoke": "revoked"}
FIELD_OF = {"datasets": "datasets", "dataItems": "columns", "purposes": "purposes", "recipients": "recipients",
            "legalBases": "basis", "dataCategories": "data_categories", "privacyProtocol": "protocol",
            "maxTransfersPerYear": "max_transfers", "maxRowsPerTransfer": "max_rows", "maxRetention": "retention",
            "onwardSharing": "onward_sharing", "maxSensitivity": "sensitivity", "maxDpiaRisk": "dpia_outcome",
            "notBefore": "not_before", "notAfter": "not_after"}


class StandingForm(Form):
    """A standing approval: the template's bounds (what may be approved without a person) and the conditions every
    automatic approval states."""
    name = StringField("Name", validators=[InputRequired("Give the standing approval a name."), Regexp(
        standing.NAME.pattern, message="Use 2 to 63 lower-case letters, digits and dashes, such as "
                                       "school-meals-monthly.")])
    parent = SelectField("Under which authority", validate_choice=False)
    datasets = MultiCheckboxField("Datasets", validate_choice=False,
                                  validators=[DataRequired("Choose at least one dataset.")])
    columns = TextAreaField("Columns (data items)", validators=[InputRequired("List the columns that may be "
                                                                             "shared, one per line.")])
    purposes = MultiCheckboxField("Purposes", validate_choice=False,
                                  validators=[DataRequired("Choose at least one purpose.")])
    recipients = TextAreaField("Recipients", validators=[Optional()])
    basis = SelectField("Lawful basis", validate_choice=False, validators=[InputRequired("Choose a lawful basis.")])
    condition = SelectField("Condition for special category or criminal offence data", validate_choice=False,
                            validators=[Optional()])
    data_categories = MultiCheckboxField("Categories of personal data", validate_choice=False,
                                         validators=[DataRequired("Choose the categories of data being shared.")])
    protocol = RadioField("Privacy protocol at the gateway", choices=PROTOCOLS[:3], default="threshold",
                          validators=[InputRequired("Choose a privacy protocol.")])
    min_cell_count = IntegerField("Minimum cell count", default=10, validators=[_for_threshold, NumberRange(
        min=1, max=1000, message="A minimum cell count is a whole number from 1 to 1000.")])
    max_transfers = IntegerField("Transfers a year, at most", default=12, validators=[
        InputRequired("Give how many transfers a year a request may ask for (12 for monthly)."),
        NumberRange(min=1, max=366, message="A whole number from 1 to 366.")])
    max_rows = IntegerField("Rows per transfer, at most", validators=[Optional(), NumberRange(
        min=1, message="A row limit is a whole number of 1 or more.")])
    retention = StringField("How long the recipient may keep the data", default="1 year",
                            validators=[InputRequired("Say how long the data may be kept."), DURATION])
    onward_sharing = SelectField("Onward sharing", choices=options([
        ("Prohibited", "Not allowed"), ("WithApproval", "Only with a further approval")]))
    sensitivity = SelectField("Sensitivity of the data as shared, at most",
                              choices=options((s, plain.SENSITIVITY_NAMES.get(s, s)) for s in vocab.SENSITIVITY),
                              default="Pseudonymised")
    dpia_outcome = SelectField("Residual risk found by the DPIA, at most",
                               choices=options((r, plain.DPIA_RISK_NAMES.get(r, r)) for r in vocab.DPIA_RISK),
                               default="LowRisk")
    not_before = DateField("In force from", validators=[InputRequired("Give the date it starts.")])
    not_after = DateField("In force until", validators=[InputRequired("Give the date it ends.")])
    valid_for = StringField("Each automatic approval lasts", default="6 months",
                            validators=[InputRequired("Say how long each automatic approval lasts."), DURATION])
    confirm = BooleanField("I sign this standing approval as the Data Protection Officer: routine requests inside "
                           "it will be approved without a person", validators=[DataRequired(
                               "Tick to confirm that you sign it.")])

    def validate_not_after(self, field):
        if self.not_before.data and field.data and field.data <= self.not_before.data:
            raise ValidationError("The end date must be after the start date.")

    def validate_recipients(self, field):
        bad = [d for d in self.lines(field.data) if not d.startswith("did:")]
        if bad:
            raise ValidationError(f"Each recipient is a DID such as did:web:example.gov.scot; not: {bad[0]}")

    @staticmethod
    def lines(text: str | None) -> list[str]:
        return [line.strip() for line in (text or "").replace(",", "\n").splitlines() if line.strip()]


def template_of(form: StandingForm, discloser: str) -> tuple[dict, dict]:
    """``(the template's scope, the conditions each automatic approval states)`` from a valid form."""
    bases = [b for b in (form.basis.data, form.condition.data) if b]
    regimes = {vocab.LEGAL_BASES[b].regime for b in bases if b in vocab.LEGAL_BASES}
    regime = next((n for n, iri in vocab.REGIME_NAMES.items() if iri in regimes), "UKGDPR")
    protocol = [{"kind": "threshold", "minCellCount": form.min_cell_count.data}] \
        if form.protocol.data == "threshold" else [{"kind": form.protocol.data}]
    start = f"{form.not_before.data.isoformat()}T00:00:00Z"
    end = f"{form.not_after.data.isoformat()}T23:59:59Z"
    scope: dict[str, Any] = {
        "datasets": list(form.datasets.data), "dataItems": form.lines(form.columns.data),
        "purposes": list(form.purposes.data), "legalBases": bases, "dataCategories": list(form.data_categories.data),
        "privacyProtocol": protocol, "maxTransfersPerYear": form.max_transfers.data,
        "maxRetention": duration_from_words(form.retention.data), "onwardSharing": form.onward_sharing.data,
        "maxSensitivity": form.sensitivity.data, "maxDpiaRisk": form.dpia_outcome.data,
        "notBefore": start, "notAfter": end}
    conditions: dict[str, Any] = {
        "lawfulBases": [{"party": discloser, "regime": regime, "legalBases": bases}],
        "dataCategories": list(form.data_categories.data), "dpia": {"outcome": form.dpia_outcome.data},
        "sensitivity": form.sensitivity.data, "retention": {"receivedData": duration_from_words(form.retention.data)},
        "onwardSharing": form.onward_sharing.data, "privacyProtocol": protocol, "notBefore": start, "notAfter": end}
    recipients = form.lines(form.recipients.data)
    if recipients:
        scope["recipients"] = recipients
    if form.max_rows.data:
        scope["maxRowsPerTransfer"] = conditions["maxRowsPerTransfer"] = form.max_rows.data
    return scope, conditions




def bounds(names: Directory, scope, rule: dict) -> list[str]:
    """The rule's bounds as sentences a DPO or IAO reads."""
    def show(values):
        return ", ".join(str(names.name(v)) for v in values)
    out = []
    if scope.datasets:
        out.append(f"Only requests for {show(scope.datasets)}"
                   + (f", the columns {', '.join(scope.data_items)} and no others" if scope.data_items else "")
                   + (f", for {show(scope.purposes)}" if scope.purposes else "") + ".")
    out.append(f"Only from {show(scope.recipients)}." if scope.recipients else "From any organisation that asks.")
    if scope.legal_bases:
        out.append(f"Relying on {show(scope.legal_bases)}.")
    if scope.data_categories:
        out.append(f"Data of the kinds: {show(scope.data_categories)}.")
    for p in scope.privacy_protocol or []:
        p = p if isinstance(p, dict) else p.model_dump(by_alias=True, exclude_none=True)
        out.append("Every transfer is checked at the gateway: " + desk.protocol_words(p) + ".")
    if scope.max_transfers_per_year:
        out.append(f"At most {scope.max_transfers_per_year} transfers a year.")
    if scope.max_rows_per_transfer:
        out.append(f"At most {scope.max_rows_per_transfer} rows per transfer.")
    if scope.max_retention:
        out.append(f"The recipient keeps the data for at most {duration_words(scope.max_retention)}.")
    if scope.onward_sharing:
        out.append({"Prohibited": "No onward sharing.", "WithApproval": "Onward sharing only with a further "
                    "approval.", "Permitted": "Onward sharing allowed."}.get(scope.onward_sharing,
                                                                            str(scope.onward_sharing)))
    if scope.max_sensitivity:
        out.append(f"Data no more sensitive than {plain.sensitivity_words(scope.max_sensitivity)}"
                   + (f"; the DPIA's residual risk at most {plain.dpia_risk_words(scope.max_dpia_risk)}"
                      if scope.max_dpia_risk else "") + ".")
    if scope.not_before or scope.not_after:
        out.append("In force " + (f"from {day_words(scope.not_before)} " if scope.not_before else "")
                   + (f"until {day_words(scope.not_after)}" if scope.not_after else "") + ".")
    out.append(f"Each automatic approval lasts {duration_words(rule['valid_for'])} (at most until the end above); "
               "then the requester asks again and the request is checked again.")
    return out


def may_view():
    if not (may("issue:approval") or may("issue:delegation")):
        raise CeadError("auth.scope", "Only those who decide requests (IAO, DPO, admin) see standing approvals.",
                        scope="issue:approval")


def may_sign():
    if not may("issue:delegation"):
        raise CeadError("auth.scope", "Only a DPO or an administrator may sign, suspend or revoke a standing "
                        "approval.", scope="issue:delegation")


def make_form(node, wallet, formdata: MultiDict | None, names: Directory) -> StandingForm:
    form = StandingForm(formdata)
    parents = held(wallet, node.did)
    form.parent.choices = authority_choices(names, parents, node.name, with_datasets=True)
    form.datasets.choices = dataset_choices(names, parents)
    form.purposes.choices = _choices(vocab.PURPOSES)
    form.basis.choices = options([("", "Choose a lawful basis")]) + legal_basis_choices()
    form.condition.choices = condition_choices()
    form.data_categories.choices = _choices(vocab.DATA_CATEGORIES)
    return form


def defaults(node, wallet) -> MultiDict:
    start = date.today()
    parents = held(wallet, node.did)
    return MultiDict({"parent": parents[0].credential_id if parents else "", "protocol": "threshold",
                      "min_cell_count": "10", "max_transfers": "12", "retention": "P1Y", "valid_for": "P6M",
                      "onward_sharing": "Prohibited", "sensitivity": "Pseudonymised", "dpia_outcome": "LowRisk",
                      "basis": "https://www.legislation.gov.uk/eur/2016/679/article/6/1/e",
                      "not_before": start.isoformat(), "not_after": (start + timedelta(days=365)).isoformat()})


def page(node, wallet, form: StandingForm | None = None, status: int = 200, problem=None):
    """The standing-approvals page and its HTTP status; ``form`` as typed, else (for a DPO) the form with its
    defaults."""
    names = Directory.for_pages(node, wallet)
    rules = standing.rules(node)
    from issuer import issuing
    issued_here = {r.id for r in issuing.register(node)}
    log = standing.history(wallet, [r["name"] for r in rules])
    shown = []
    for rule in rules:
        held = wallet.get(rule["delegation"])
        signed = held.credential if held is not None else None
        entry: dict[str, Any] = {"rule": rule, "words": [], "status": {"status": "unknown", "usable": False,
                                                                     "problems": []},
                                 "issuer": None, "here": rule["delegation"] in issued_here,
                                 "approved": log[rule["name"]]["approved"], "outside": log[rule["name"]]["outside"]}
        if signed is not None:
            try:
                model = desk.delegation_model(signed)
                entry["words"] = bounds(names, model.scope, rule)
                entry["issuer"] = names.name(held.issuer)
            except (CeadError, ValueError) as exc:
                entry["words"] = [f"The template could not be read: {getattr(exc, 'message', exc)}"]
            entry["status"] = desk.delegation_status(wallet, signed)
        else:
            entry["words"] = [f"The template {rule['delegation']} is not held by this node, so nothing is "
                              "approved under this rule."]
        shown.append(entry)
    if form is None and may("issue:delegation"):
        form = make_form(node, wallet, defaults(node, wallet), names)
    errors = [(f.id, e) for f in form for e in f.errors] if form is not None else []
    listed = [r for lists in log.values() for r in [*lists["approved"], *(row for row, _ in lists["outside"])]]
    return render_template("wallet_standing.html", duration_hint=DURATION_HINT, entries=shown, form=form,
                           errors=errors, problem=problem, names=names, date=moment_words,
                           status_of=desk.request_status_words(node, listed),
                           person=staff.person_words(node.engine)), status


# -- the views (URL rules in :func:`register`) ----------------------------------------------------------------------

@sign_in_required
def standing_page():
    may_view()
    return page(current.node(), current.wallet())


@sign_in_required
def standing_create():
    may_sign()
    node, wallet, _, form = current.posted(make_form)
    if not form.validate():
        return page(node, wallet, form, 400)
    parent = form.parent.data or None
    discloser = node.did
    if parent:
        held = wallet.get(parent)
        discloser = (held.document.get("credentialSubject") or {}).get("onBehalfOf") or discloser if held \
            else discloser
    scope, conditions = template_of(form, discloser)
    who = current_token()
    try:
        rule = standing.create(node, wallet, name=form.name.data, scope=scope, conditions=conditions,
                               valid_for=duration_from_words(form.valid_for.data), by=who.name, scopes=who.scopes.split(","),
                               parent=parent)
    except CeadError as exc:
        field = exc.problem.detail.get("field") if isinstance(exc.problem.detail, dict) else None
        if field and hasattr(form, field):
            getattr(form, field).errors = [*getattr(form, field).errors, exc.message]
        for dim in (exc.problem.detail.get("dimensions") or []) if isinstance(exc.problem.detail, dict) else []:
            target = getattr(form, FIELD_OF.get(dim.split(".")[0], "parent"))
            said = SUB_DELEGATION if dim == "maxDelegationDepth" else \
                f"Wider than the delegation it rests on ({words(dim)})."
            target.errors = list(dict.fromkeys([*target.errors, said]))
        audit("standing approval refused before signing", target=form.name.data, detail={"code": exc.code})
        return page(node, wallet, form, 422, problem=exc.problem)
    audit("signed standing approval", target=rule["name"], detail={"delegation": rule["delegation"]})
    flash(f"Standing approval {rule['name']} signed and in force: routine requests inside it are now approved "
          "automatically.")
    return redirect(url_for(".standing"))


@sign_in_required
def standing_status(name: str):
    may_sign()
    node, wallet = current.node(), current.wallet()
    rule = next((r for r in standing.rules(node) if r["name"] == name), None)
    if rule is None:
        raise CeadError("web.form_invalid", f"There is no standing approval called {name!r}.")
    action = request.form.get("action", "")
    if action not in ACTIONS:
        raise CeadError("web.form_invalid", "Choose suspend, reinstate or revoke.", field="action")
    if action == "revoke" and request.form.get("confirm") != "yes":
        raise CeadError("web.form_invalid", "Tick the box to confirm that revoking is final.", field="confirm")
    from issuer import issuing, statuslist
    if rule["delegation"] not in {r.id for r in issuing.register(node)}:
        held = wallet.get(rule["delegation"])
        raise CeadError("web.form_invalid", "This node did not sign this standing approval's template, so it "
                        f"cannot {action} it: ask {held.issuer if held else 'its issuer'} to, or remove the rule "
                        "from config.yaml.")
    result = issuing.change_status(node, rule["delegation"], action, by=current_token().name,
                                   reason=(request.form.get("reason") or "").strip() or None,
                                   scopes=current_token().scopes.split(","))
    audit(f"{action} standing approval", target=name, detail={"delegation": rule["delegation"]})
    flash(f"Standing approval {name} is now {result['status']}"
          + ("; nothing more is approved under it." if action != "reinstate" else
             "; routine requests inside it are approved automatically again.")
          + f" {statuslist.seen_by_gateways(action, under=True)}")
    return redirect(url_for(".standing"))


def register(bp) -> None:
    """Add the standing-approvals URL rules to the wallet pages' blueprint (``wallet.pages.blueprint``), under the
    endpoints ``url_for`` names (``cead_wallet.standing``, ...)."""
    bp.add_url_rule("/wallet/standing", "standing", standing_page, methods=["GET"])
    bp.add_url_rule("/wallet/standing", "standing_create", standing_create, methods=["POST"])
    bp.add_url_rule("/wallet/standing/<name>/status", "standing_status", standing_status, methods=["POST"])
