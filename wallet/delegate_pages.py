"""The Data Protection Officer's guided delegation page, registered on the wallet pages' blueprint:

- ``GET /wallet/delegate``: a form in plain words for delegating approval authority to an Information Asset Owner
  (or another role): who, which datasets and purposes, the kinds of data, the weakest privacy protocol they may
  approve, ceilings (rows, transfers, retention, sensitivity, DPIA risk, onward sharing), whether they may delegate
  further, until when; under a delegation this node holds or on the organisation's own behalf. What was chosen is
  shown back as the sentences the delegate's and other organisations' pages will show.
- ``POST /wallet/delegate``: signs it (scope ``issue:delegation``) through the same issuing path as
  ``cead issue delegation`` (``issuer.issuing.issue``: the guard rail checks it lies within the delegation it rests
  on; the lawful-basis and did:key checks run as for any credential), suspendable unless unticked, and, when the
  delegate's node address is given, delivers it to that node's inbox in a presentation signed by this node. On a
  refusal the form comes back as typed with each reason beside its field; nothing is signed.

The DPO no longer has to write the delegation as JSON or YAML (``/dpo/issue`` and the command line still take
one).
"""
from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

from flask import render_template
from werkzeug.datastructures import MultiDict
from wtforms import BooleanField, DateField, Form, IntegerField, RadioField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, ValidationError

from issuer.pages import audit, current_token, may, sign_in_required, words
from schemas import vocab
from schemas import words as plain
from verifier.results import CeadError

from . import approval_view, current
from .forms import DURATION, DURATION_HINT, PROTOCOLS, MultiCheckboxField, _choices, _for_threshold, \
    authority_choices, dataset_choices, duration_from_words, held_delegations, options
from .names import Directory

ROLES = ["InformationAssetOwner", "DataProtectionOfficer", "SeniorInformationRiskOwner", "CaldicottGuardian"]
# a delegation's scope dimension -> the form field a refusal about it is shown beside
FIELD_OF = {"datasets": "datasets", "dataItems": "columns", "purposes": "purposes", "dataCategories":
            "data_categories", "privacyProtocol": "protocol", "maxTransfersPerYear": "max_transfers",
            "maxRowsPerTransfer": "max_rows", "maxRetention": "retention", "onwardSharing": "onward_sharing",
            "maxSensitivity": "sensitivity", "maxDpiaRisk": "dpia_outcome", "notBefore": "valid_until",
            "notAfter": "valid_until", "maxDelegationDepth": "sub_delegate", "id": "delegate", "name": "delegate_name",
            "credentialSubject": "delegate", "delegation": "parent", "parentDelegation": "parent"}


def _field_for(path: str) -> str | None:
    """The form field a model or issuer error about ``path`` ("scope.datasets.0", "credentialSubject.id", "id")
    is shown beside: the first part of the path the form asks about."""
    parts = [p for p in str(path or "").split(".") if p and not p.isdigit()]
    if parts[:1] == ["credentialSubject"]:
        parts = parts[1:] or parts
    if parts[:1] == ["scope"]:
        parts = parts[1:]
    field = FIELD_OF.get(parts[0]) if parts else None
    return "other_datasets" if field == "datasets" else field


class DelegateForm(Form):
    """A delegation of approval authority, in the questions a DPO answers."""
    delegate = StringField("Who you delegate to: their node's identifier (DID)", validators=[
        InputRequired("Give the DID of the Information Asset Owner's node, such as did:web:iao.council.gov.scot.")])
    delegate_name = StringField("Their name or post", validators=[Optional(), Length(
        max=200, message="A name or post is at most 200 characters.")])
    role = SelectField("Their role", choices=options((r, plain.role_name(r)) for r in ROLES),
                       default="InformationAssetOwner")
    parent = SelectField("Under which authority", validate_choice=False)
    datasets = MultiCheckboxField("Datasets they may approve sharing", validate_choice=False)
    other_datasets = TextAreaField("Datasets not listed above", validators=[Optional()])
    columns = TextAreaField("Only these columns", validators=[Optional()])
    purposes = MultiCheckboxField("For these purposes only", validate_choice=False,
                                  validators=[DataRequired("Choose at least one purpose.")])
    data_categories = MultiCheckboxField("Kinds of personal data, at most", validate_choice=False,
                                         validators=[Optional()])
    protocol = RadioField("The weakest privacy protocol they may approve", choices=PROTOCOLS, default="threshold",
                          validators=[InputRequired("Choose the weakest privacy protocol they may approve.")])
    min_cell_count = IntegerField("Minimum cell count, at least", default=10, validators=[_for_threshold, NumberRange(
        min=1, max=1000, message="A minimum cell count is a whole number from 1 to 1000.")])
    max_rows = IntegerField("Rows per transfer, at most", validators=[Optional(), NumberRange(
        min=1, message="A row limit is a whole number of 1 or more.")])
    max_transfers = IntegerField("Transfers a year, at most", validators=[Optional(), NumberRange(
        min=1, max=100_000, message="A whole number of 1 or more.")])
    retention = StringField("How long a recipient may keep the data, at most", default="1 year",
                            validators=[InputRequired("Say how long recipients may keep the data, at most."),
                                        DURATION])
    onward_sharing = SelectField("Onward sharing, at most", choices=options([
        ("Prohibited", "Not allowed"), ("WithApproval", "Only with a further approval")]), default="Prohibited")
    sensitivity = SelectField("Sensitivity of the data as shared, at most",
                              choices=options((s, plain.SENSITIVITY_NAMES.get(s, s)) for s in vocab.SENSITIVITY),
                              default="Pseudonymised")
    dpia_outcome = SelectField("Residual risk found by the DPIA, at most",
                               choices=options((r, plain.DPIA_RISK_NAMES.get(r, r)) for r in vocab.DPIA_RISK),
                               default="LowRisk")
    sub_delegate = BooleanField("They may delegate part of this authority to one more person (never more than "
                                "they hold)")
    valid_until = DateField("Valid until", validators=[InputRequired("Give the last day the delegation is in "
                                                                     "force.")])
    suspendable = BooleanField("It can be suspended as well as revoked", default=True)
    deliver_to = StringField("Their Cead node's address", validators=[Optional()])
    confirm = BooleanField("I sign this delegation as the Data Protection Officer: they may approve data sharing "
                           "within it on our organisation's behalf", validators=[DataRequired(
                               "Tick to confirm that you sign it.")])

    def validate_delegate(self, field):
        value = (field.data or "").strip()
        if not value.startswith(("did:web:", "did:key:", "did:jwk:")):
            raise ValidationError("A node's identifier begins did:web: (or did:key:), such as "
                                  "did:web:iao.council.gov.scot; their node shows it on its start page.")

    def validate_datasets(self, field):
        if not field.data and not self.lines(self.other_datasets.data):
            raise ValidationError("Choose at least one dataset, or give one not listed.")

    def validate_other_datasets(self, field):
        bad = [d for d in self.lines(field.data) if not d.startswith(("https://", "http://", "urn:"))]
        if bad:
            raise ValidationError(f"Give each dataset as its address (IRI), such as "
                                  f"https://data.council.gov.scot/dataset/school-meals; not: {bad[0]}")

    def validate_valid_until(self, field):
        if field.data and field.data < date.today():
            raise ValidationError("The last day must be today or later.")

    def validate_deliver_to(self, field):
        value = (field.data or "").strip()
        if value and not value.startswith("https://"):
            raise ValidationError("Give their node's address beginning https://, such as "
                                  "https://iao.council.gov.scot, or leave it empty and send the file yourself.")

    @staticmethod
    def lines(text: str | None) -> list[str]:
        return [line.strip() for line in (text or "").replace(",", "\n").splitlines() if line.strip()]


def subject_of(form: DelegateForm, controller: str) -> dict[str, Any]:
    """The delegation's ``credentialSubject`` from a valid form."""
    protocol = {"threshold": [{"kind": "threshold", "minCellCount": form.min_cell_count.data}],
                "none": None}.get(form.protocol.data, [{"kind": form.protocol.data}])
    scope: dict[str, Any] = {
        "datasets": list(dict.fromkeys([*form.datasets.data, *form.lines(form.other_datasets.data)])),
        "purposes": list(form.purposes.data),
        "maxRetention": duration_from_words(form.retention.data), "onwardSharing": form.onward_sharing.data,
        "maxSensitivity": form.sensitivity.data, "maxDpiaRisk": form.dpia_outcome.data,
        "notAfter": f"{form.valid_until.data.isoformat()}T23:59:59Z"}
    for key, value in (("dataItems", form.lines(form.columns.data)), ("dataCategories", form.data_categories.data),
                       ("privacyProtocol", protocol), ("maxRowsPerTransfer", form.max_rows.data),
                       ("maxTransfersPerYear", form.max_transfers.data)):
        if value:
            scope[key] = list(value) if isinstance(value, (list, tuple)) else value
    actions = ["ApproveDisclosure"]
    if form.sub_delegate.data:
        actions.append("SubDelegate")
        scope["maxDelegationDepth"] = 1
    subject: dict[str, Any] = {"id": form.delegate.data.strip(), "role": form.role.data, "onBehalfOf": controller,
                               "allowedActions": actions, "scope": scope}
    if (form.delegate_name.data or "").strip():
        subject["name"] = form.delegate_name.data.strip()
    return subject


def may_delegate():
    if not may("issue:delegation"):
        raise CeadError("auth.scope", "Only a Data Protection Officer or an administrator may delegate approval "
                        "authority.", scope="issue:delegation")


def make_form(node, wallet, formdata: MultiDict, names: Directory) -> DelegateForm:
    form = DelegateForm(formdata)
    parents = held_delegations(wallet, node.did, may_delegate=True)
    form.parent.choices = authority_choices(names, parents, node.name)
    form.datasets.choices = dataset_choices(names, parents)
    form.purposes.choices = _choices(vocab.PURPOSES)
    form.data_categories.choices = _choices(vocab.DATA_CATEGORIES)
    return form


def defaults() -> MultiDict:
    return MultiDict({"role": "InformationAssetOwner", "protocol": "threshold", "min_cell_count": "10",
                      "retention": "1 year", "onward_sharing": "Prohibited", "sensitivity": "Pseudonymised",
                      "dpia_outcome": "LowRisk", "suspendable": "y",
                      "valid_until": (date.today() + timedelta(days=365)).isoformat()})


def page(form: DelegateForm, status: int = 200, problem=None):
    errors = [(f.id, e) for f in form for e in f.errors]
    return render_template("wallet_delegate.html", form=form, errors=errors, problem=problem,
                           duration_hint=DURATION_HINT), status


def place_refusal(form: DelegateForm, exc: CeadError) -> bool:
    """Put each reason of a refusal before signing beside the field it concerns (the field the problem names, the
    typed model's own findings by field, the scope dimensions wider than the delegation it rests on); whether any
    was placed (if none, the page shows the problem itself)."""
    detail = exc.problem.detail if isinstance(exc.problem.detail, dict) else {}
    placed = False
    field = _field_for(detail.get("field")) if isinstance(detail.get("field"), str) else None
    if field is not None:
        target = getattr(form, field)
        target.errors = [*target.errors, exc.message]
        placed = True
    for e in detail.get("errors") or []:    # the typed model's own findings (schema.invalid), by field
        field = _field_for(e.get("at")) if isinstance(e, dict) else None
        if field is not None:
            target = getattr(form, field)
            problem = str(e.get("problem") or "").removeprefix("Value error, ")
            target.errors = list(dict.fromkeys([*target.errors, problem[:1].upper() + problem[1:] + "."
                                                if not problem.endswith(".") else problem]))
            placed = True
    for v in detail.get("violations") or []:
        dim = ((v.get("detail") or {}).get("dimension") or "") if isinstance(v, dict) else ""
        target = getattr(form, FIELD_OF.get(dim.split(".")[0], "parent"))
        target.errors = list(dict.fromkeys([*target.errors, f"Wider than the delegation it rests on "
                                            f"({words(dim)}): {v.get('message', '')}".rstrip(": ")]))
        placed = True
    return placed


# -- the views (URL rules in :func:`register`) ----------------------------------------------------------------------

@sign_in_required
def delegate_page():
    may_delegate()
    node, wallet = current.node(), current.wallet()
    return page(make_form(node, wallet, defaults(), Directory.for_pages(node, wallet)))


@sign_in_required
def delegate_create():
    may_delegate()
    from issuer import issuing
    from . import sharing
    node, wallet, names, form = current.posted(make_form)
    if not form.validate():
        return page(form, 400)
    controller, options_ = node.did, {}
    parent = form.parent.data or None
    if parent:
        try:
            doc = sharing._document(sharing.resolve_delegation(node, wallet, parent))
        except CeadError as exc:
            form.parent.errors = [*form.parent.errors, f"{exc.message} Choose another authority."]
            return page(form, 422)
        controller = (doc.get("credentialSubject") or {}).get("onBehalfOf") or controller
        # as signed, with the chain it rests on as far as the wallet holds it: the guard rail verifies them all
        options_["delegation"] = sharing.held_chain(wallet, sharing.resolve_delegation(node, wallet, parent))[0]
    if form.suspendable.data:
        options_["credentialStatus"] = {"type": "BitstringStatusListEntry",
                                        "statusPurpose": ["revocation", "suspension"]}
    who = current_token()
    try:
        subject = subject_of(form, controller)
        if parent:
            from schemas.models import credential_digest
            subject["parentDelegation"] = {"id": doc.get("id"), "digest": credential_digest(
                sharing.resolve_delegation(node, wallet, parent))}
            depth = ((doc.get("credentialSubject") or {}).get("scope") or {}).get("maxDelegationDepth")
            if isinstance(depth, int) and depth >= 2:    # one level is used by this delegation itself
                scope = subject["scope"]
                scope["maxDelegationDepth"] = min(scope.get("maxDelegationDepth") or depth - 1, depth - 1)
        credential = issuing.build_credential(node, "DelegatedAuthorityCredential", subject)
        issued = issuing.issue(node, credential, options_, issued_by=who.name, scopes=who.scopes.split(","))
    except CeadError as exc:
        placed = place_refusal(form, exc)
        audit("delegation refused before signing", target=form.delegate.data, detail={"code": exc.code})
        return page(form, 422, problem=None if placed else exc.problem)
    audit("issued delegation (guided)", target=issued.id, detail={"delegate": subject["id"]})
    delivered, undelivered = None, None
    address = (form.deliver_to.data or "").strip().rstrip("/")
    if address:
        from .client import deliver
        try:
            deliver(node.did, node.key, node.verification_method_id, [issued.credential],
                    address + "/inbox", verify=node.network.ca_bundle or True, guard=node.fetcher())
            delivered = address
        except CeadError as exc:
            undelivered = exc.message
    # signed as Data Integrity (the default format): the credential is the document
    document = issued.credential if isinstance(issued.credential, dict) else credential
    text = json.dumps(issued.credential, indent=2, ensure_ascii=False) \
        if isinstance(issued.credential, dict) else str(issued.credential)
    filename = issued.id.split(":")[-1] + ".json"
    from issuer.pages import download_href
    return render_template(
        "wallet_delegated.html", issued=issued, sections=approval_view.conditions(document, names),
        delegate=names.name(subject["id"]) if not subject.get("name") else subject["name"],
        delivered=delivered, undelivered=undelivered, href=download_href(text, "application/vc"),
        filename=filename), 201


def register(bp) -> None:
    """Add the delegation page's URL rules to the wallet pages' blueprint (``wallet.pages.blueprint``), under the
    endpoints ``url_for`` names (``cead_wallet.delegate``, ``cead_wallet.delegate_create``)."""
    bp.add_url_rule("/wallet/delegate", "delegate", delegate_page, methods=["GET"])
    bp.add_url_rule("/wallet/delegate", "delegate_create", delegate_create, methods=["POST"])
