"""The web pages' forms (WTForms): the IAO's guided approval, refusal / request for changes, and the analyst's
request wizard. Every field has a label and, where it helps, a hint; errors are shown beside the field and in the
error summary, and what was typed is kept."""
from __future__ import annotations

import re
from datetime import date, timedelta

from wtforms import (BooleanField, DateField, Form, IntegerField, RadioField, SelectChoice, SelectField,
                     SelectMultipleField, StringField, TextAreaField, widgets)
from wtforms.validators import URL, DataRequired, InputRequired, Length, NumberRange, Optional, \
    StopValidation, ValidationError

from schemas import vocab
from schemas import words as plain

from .casefile import DPIA_SCREENING

_PERIOD_UNITS = {"year": "Y", "month": "M", "week": "W", "day": "D"}


def duration_from_words(value):
    """``18 months`` -> ``P18M``, ``1 year`` -> ``P1Y`` (years, months, weeks or days); anything else as written,
    for the check of an ISO 8601 period. The forms keep what was typed and their pages convert it."""
    found = re.fullmatch(r"\s*(\d{1,4})\s*(year|month|week|day)s?\s*", value.lower()) if isinstance(value, str) else None
    return f"P{int(found.group(1))}{_PERIOD_UNITS[found.group(2)]}" if found else value


def duration_in_words(value):
    """What a form shows for a period it was given: ``P1Y`` -> ``1 year``, ``P18M`` -> ``18 months`` (one unit of
    years, months, weeks or days: exactly what :func:`duration_from_words` turns back); anything else as it is."""
    found = re.fullmatch(r"P(\d{1,4})([YMWD])", value) if isinstance(value, str) else None
    if not found:
        return value
    unit = {v: k for k, v in _PERIOD_UNITS.items()}[found.group(2)]
    number = int(found.group(1))
    return f"{number} {unit}{'' if number == 1 else 's'}"


def _duration_check(form, field):
    if not re.fullmatch(vocab.DURATION_PATTERN, duration_from_words(field.data or "") or ""):
        raise ValidationError("Give a period in words, such as 1 year, 6 months or 90 days (or as ISO 8601: P1Y).")


DURATION = _duration_check
DURATION_HINT = "For example 1 year, 6 months or 90 days (or ISO 8601: P1Y)."


CADENCE_WORDS = {"once": ("R1", "P1D"), "daily": ("R", "P1D"), "weekly": ("R", "P1W"), "fortnightly": ("R", "P2W"),
                 "monthly": ("R", "P1M"), "quarterly": ("R", "P3M"), "twice a year": ("R", "P6M"),
                 "half-yearly": ("R", "P6M"), "yearly": ("R", "P1Y"), "annually": ("R", "P1Y")}
CADENCE_HINT = ("In words: once, daily, weekly, fortnightly, monthly, quarterly, twice a year or yearly (from the first "
                "of this month), or for example monthly from 1 April 2027; or an ISO 8601 repeating interval such as "
                "R/2026-01-01T00:00:00Z/P1M.")
_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december"]


def cadence_from_words(value, today: date | None = None):
    """``monthly`` -> ``R/<first of this month>T00:00:00Z/P1M``; ``monthly from 1 April 2027`` ->
    ``R/2027-04-01T00:00:00Z/P1M`` (the words in ``CADENCE_WORDS``; anything else is left as written, for the form's
    check of an ISO 8601 repeating interval). The forms keep what was typed and their pages convert it when they
    build the request or approval."""
    key = " ".join(str(value).lower().split()) if isinstance(value, str) else None
    start = None
    if key is not None and " from " in key:
        key, _, when = key.partition(" from ")
        found = re.fullmatch(r"(\d{1,2}) ([a-z]+) (\d{4})", when)
        try:
            start = date(int(found.group(3)), _MONTHS.index(found.group(2)) + 1, int(found.group(1)))
        except (AttributeError, ValueError):
            return value
    if key not in CADENCE_WORDS:
        return value
    repeat, period = CADENCE_WORDS[key]
    first = start or (today or date.today()).replace(day=1)
    return f"{repeat}/{first.isoformat()}T00:00:00Z/{period}"


def cadence_in_words(value):
    """What a form shows for a cadence it was given: ``R/2026-11-01T00:00:00Z/P1M`` -> ``monthly from 1 November
    2026`` when the words say exactly that interval (:func:`cadence_from_words` turns them back into it); anything
    else as it is."""
    found = re.fullmatch(r"(R1?)/(\d{4}-\d{2}-\d{2})T00:00:00Z/(P\w+)", value) if isinstance(value, str) else None
    if not found:
        return value
    words = next((w for w, (repeat, period) in CADENCE_WORDS.items()
                  if (repeat, period) == (found.group(1), found.group(3))), None)
    if words is None:
        return value
    day = date.fromisoformat(found.group(2))
    text = f"{words} from {day.day} {day.strftime('%B %Y')}"
    return text if cadence_from_words(text) == value else value


def _cadence_check(form, field):
    try:
        vocab.RepeatingInterval.parse(cadence_from_words(field.data or ""))
    except (ValueError, Exception):
        raise ValidationError("Say how often, in words (for example monthly or quarterly) or as a repeating "
                              "interval such as R/2026-01-01T00:00:00Z/P1M.")


def _for_threshold(form, field):
    """A minimum cell count is asked for only with the threshold protocol (and then it is required)."""
    if form.protocol.data != "threshold":
        field.errors[:] = []
        raise StopValidation()
    if field.data is None:
        field.errors[:] = []
        raise StopValidation("Give the minimum number of people in any released count (for example 10).")


PINNED_DOCUMENT = re.compile(r"^urn:cead:document:sha256-[A-Za-z0-9_-]{43}$")


def _dpia_reference(form, field):
    """The DPIA attached to the request (``urn:cead:document:sha256-...``: pinned by its digest) or a URL."""
    if PINNED_DOCUMENT.match(field.data or ""):
        return
    URL(require_tld=False, message="Give the DPIA's address as a URL (or keep the attached DPIA's reference), "
        "or leave this blank.")(form, field)


class MultiCheckboxField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


def options(pairs) -> list[SelectChoice]:
    """``(value, label)`` pairs as the choices of a select, radio or checkbox field. wtforms 3.3 deprecates tuples
    (gone in 3.4) for ``SelectChoice``; templates read ``choice.value`` and ``choice.label``."""
    return [SelectChoice(value, label) for value, label in pairs]


def _choices(terms: dict, keep=lambda t: True) -> list[SelectChoice]:
    return options((iri, t.label) for iri, t in terms.items() if keep(t))


def held_delegations(wallet, did: str, *, may_delegate: bool = False) -> list:
    """The delegations this node (``did``) holds from others, as wallet records: what a standing approval or a
    delegation made on the pages may rest on ("Under which authority"); ``may_delegate``: only those that let it
    delegate further (``SubDelegate``)."""
    return [r for r in wallet.search(type="DelegatedAuthorityCredential")
            if r.subject == did and r.credential_id and r.issuer != did
            and (not may_delegate or "SubDelegate" in ((r.document.get("credentialSubject") or {})
                                                       .get("allowedActions") or []))]


def authority_choices(names, held: list, own_name: str, *, with_datasets: bool = False) -> list[SelectChoice]:
    """"Under which authority": each held delegation by whom it is from (and, ``with_datasets``, for which
    datasets), then the organisation's own authority ("" : it controls the data)."""
    def label(r) -> str:
        datasets = ((r.document.get("credentialSubject") or {}).get("scope") or {}).get("datasets") or []
        return f"The delegation from {names.name(r.issuer)}" + (
            f" for {', '.join(str(names.name(d)) for d in datasets)}" if with_datasets and datasets else "")
    return options([(r.credential_id, label(r)) for r in held]
                   + [("", f"{own_name}'s own authority (it controls the data)")])


def dataset_choices(names, held: list) -> list[SelectChoice]:
    """Datasets to tick: those the node's catalogue names, and those its held delegations cover, by name."""
    datasets = {iri: label for iri, label in names.names.items() if iri.startswith("http") and "/dataset/" in iri}
    for r in held:
        for d in ((r.document.get("credentialSubject") or {}).get("scope") or {}).get("datasets") or []:
            datasets.setdefault(d, str(names.name(d)))
    return options(sorted(datasets.items(), key=lambda kv: kv[1]))


def legal_basis_choices(regime: str | None = None) -> list[SelectChoice]:
    """The bases that stand alone: Article 6, DPA 2018 s.35 (law enforcement), statutory gateways."""
    wanted = vocab.REGIME_NAMES.get(regime) if regime else None
    return options((iri, t.label) for iri, t in vocab.LEGAL_BASES.items()
                   if not (t.special or t.criminal) and (wanted is None or t.regime in (None, wanted)))


def condition_choices() -> list[SelectChoice]:
    """The extra conditions special category and criminal offence data need (Art 9, Art 10, DPA 2018 Sch 1 / 8)."""
    return options([("", "None needed (no special category or criminal offence data)")]
                   + [(iri, t.label) for iri, t in vocab.LEGAL_BASES.items() if t.special or t.criminal])


PROTOCOLS = options([("threshold", "Counts only, with a minimum cell count (small numbers suppressed)"),
                     ("pseudonymisation", "Record level, pseudonymised (direct identifiers removed)"),
                     ("treOnly", "Inside a trusted research environment only, outputs checked"),
                     ("none", "No privacy protocol (record-level personal data)")])


class ApproveForm(Form):
    delegation = SelectField("The delegation you approve under", validate_choice=False)
    controller_basis = SelectField("Your organisation's lawful basis for disclosing",
                                   validators=[InputRequired("Choose a lawful basis.")], validate_choice=False)
    controller_condition = SelectField("Condition for special category or criminal offence data",
                                       validate_choice=False, validators=[Optional()])
    data_categories = MultiCheckboxField("Categories of personal data", validate_choice=False,
                                         validators=[DataRequired("Choose the categories of data being shared.")])
    data_subjects = MultiCheckboxField("Whose data these are", validate_choice=False, validators=[Optional()])
    recipient_requirements = MultiCheckboxField("Certifications the recipient must hold", validate_choice=False,
                                                validators=[Optional()])
    sensitivity = SelectField("Sensitivity of the data as shared",
                              choices=options((s, plain.SENSITIVITY_NAMES.get(s, s)) for s in vocab.SENSITIVITY))
    dpia_outcome = SelectField("Residual risk found by the DPIA",
                               choices=options((r, plain.DPIA_RISK_NAMES.get(r, r)) for r in vocab.DPIA_RISK))
    dpia_reference = StringField("Where the DPIA is recorded", validators=[Optional(), _dpia_reference])
    protocol = RadioField("Privacy protocol applied at the gateway", choices=PROTOCOLS, default="threshold")
    min_cell_count = IntegerField("Minimum cell count", validators=[_for_threshold, NumberRange(
        min=1, max=1000, message="A minimum cell count is a whole number from 1 to 1000.")])
    cadence = StringField("How often data may be sent",
                          validators=[InputRequired("Say how often data may be sent."), _cadence_check])
    max_rows = IntegerField("Row limit per transfer", validators=[Optional(), NumberRange(
        min=1, message="A row limit is a whole number of 1 or more.")])
    retention = StringField("How long the recipient may keep the data",
                            validators=[InputRequired("Say how long the data may be kept."), DURATION])
    onward_sharing = SelectField("Onward sharing", choices=options([
        ("Prohibited", "Not allowed"), ("WithApproval", "Only with a further approval"), ("Permitted", "Allowed")]))
    co_signers = TextAreaField("Co-signers", validators=[Optional()])
    not_before = DateField("Valid from", validators=[InputRequired("Give the date the approval starts.")])
    not_after = DateField("Valid until", validators=[InputRequired("Give the date the approval ends.")])

    def validate_not_after(self, field):
        if self.not_before.data and field.data and field.data <= self.not_before.data:
            raise ValidationError("The end date must be after the start date.")
        if field.data and field.data < date.today():     # it is in force to 23:59:59 UTC of that day
            raise ValidationError(f"{field.data:%-d %B %Y} is before today: the approval would already have ended and "
                                  "could never be used. Give today or a later date.")

    def validate_co_signers(self, field):
        bad = [d for d in self.co_signer_list() if not d.startswith("did:")]
        if bad:
            raise ValidationError(f"Each co-signer is a DID such as did:web:example.gov.scot; not: {bad[0]}")

    def co_signer_list(self) -> list[str]:
        return [line.strip() for line in (self.co_signers.data or "").splitlines() if line.strip()]


class DecideForm(Form):
    """Refuse, or ask for changes: both need reasons the requester can act on."""
    decision = RadioField("Your decision", choices=options([("changes", "Ask for changes"), ("refuse", "Refuse")]),
                          validators=[InputRequired("Choose whether to ask for changes or refuse.")])
    reason = TextAreaField("Reasons for the requester",
                           validators=[InputRequired("Give the reasons: the requester sees them."),
                                       Length(max=2000, message="At most 2000 characters.")])


class WizardForm(Form):
    """The analyst's data-sharing request, in one page of sections."""
    holder_url = StringField("The data holder's Cead node", validators=[
        InputRequired("Give the address of the data holder's node."),
        URL(require_tld=False, message="Give the node's address, starting https://")])
    datasets = MultiCheckboxField("Datasets from the catalogue", validate_choice=False)
    other_datasets = TextAreaField("Datasets not in the catalogue", validators=[Optional(), Length(max=20000)])
    columns = MultiCheckboxField("Columns (data items)", validate_choice=False)
    other_columns = TextAreaField("Other columns", validators=[Optional(), Length(max=20000)])
    justification = TextAreaField("Why you need the data, in your own words", validators=[
        Optional(), Length(max=4000, message="At most 4000 characters.")])
    purpose = SelectField("Purpose", validate_choice=False,
                          validators=[InputRequired("Choose the purpose.")])
    regime = SelectField("Data protection regime", choices=options([
        ("UKGDPR", "UK GDPR"), ("DPA2018Part3", "DPA 2018 Part 3 (law enforcement)")]))
    legal_basis = SelectField("Lawful basis", validate_choice=False,
                              validators=[InputRequired("Choose a lawful basis.")])
    condition = SelectField("Condition for special category or criminal offence data", validate_choice=False,
                            validators=[Optional()])
    cadence = StringField("How often", default="monthly", validators=[
        InputRequired("Say how often data are needed."), _cadence_check])
    who_benefits = TextAreaField("Who benefits", validators=[InputRequired("Say who benefits."),
                                                             Length(max=2000)])
    how = TextAreaField("How they benefit", validators=[InputRequired("Say how they benefit."), Length(max=2000)])
    evidence = TextAreaField("Evidence", validators=[Optional(), Length(max=2000)])
    without = TextAreaField("What happens without the data", validators=[Optional(), Length(max=2000)])
    safe_people = TextAreaField("Safe people", validators=[Optional(), Length(max=2000)])
    safe_projects = TextAreaField("Safe projects", validators=[Optional(), Length(max=2000)])
    safe_settings = TextAreaField("Safe settings", validators=[Optional(), Length(max=2000)])
    safe_data = TextAreaField("Safe data", validators=[Optional(), Length(max=2000)])
    safe_outputs = TextAreaField("Safe outputs", validators=[Optional(), Length(max=2000)])
    dpia_screening = MultiCheckboxField("DPIA screening: tick each that applies", choices=options(
        DPIA_SCREENING.items()), validators=[Optional()])
    retention = StringField("How long you will keep the data", default="1 year",
                            validators=[InputRequired("Say how long you will keep the data."), DURATION])
    review = TextAreaField("When the sharing will be reviewed", validators=[Optional(), Length(max=2000)])
    transparency = TextAreaField("How people are told", validators=[Optional(), Length(max=2000)])
    rights = TextAreaField("How people's rights are met", validators=[Optional(), Length(max=2000)])
    protocol = RadioField("Proposed privacy protocol", choices=PROTOCOLS, default="threshold")
    min_cell_count = IntegerField("Proposed minimum cell count", default=10, validators=[_for_threshold, NumberRange(
        min=1, max=1000, message="A whole number from 1 to 1000.")])
    confirm = BooleanField("I confirm the answers are accurate and the documents are the ones we rely on",
                           validators=[DataRequired("Confirm the answers before sending.")])

    def validate_datasets(self, field):
        if not self.dataset_list():
            raise ValidationError("Choose at least one dataset from the catalogue (or give its address under "
                                  "\u201cDatasets not in the catalogue\u201d).")

    def validate_columns(self, field):
        if not self.column_list():
            raise ValidationError("Choose the columns you need (or list them under \u201cOther columns\u201d).")

    def dataset_list(self) -> list[str]:
        return list(dict.fromkeys([*(self.datasets.data or []), *self.lines(self.other_datasets.data)]))

    def column_list(self) -> list[str]:
        return list(dict.fromkeys([*(self.columns.data or []), *self.lines(self.other_columns.data)]))

    def validate_holder_url(self, field):
        if not (field.data or "").startswith("https://"):
            raise ValidationError("The node's address starts https://")

    @staticmethod
    def lines(text: str | None) -> list[str]:
        return [line.strip() for line in (text or "").replace(",", "\n").splitlines() if line.strip()]


def default_window(delegation_not_after: date | None) -> tuple[date, date]:
    start = date.today()
    end = start + timedelta(days=365)
    if delegation_not_after and delegation_not_after < end:
        end = delegation_not_after
    return start, end
