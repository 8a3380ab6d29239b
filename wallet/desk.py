"""The approver's desk: what an Information Asset Owner weighs before deciding a data-sharing request, worked out
for the decision page (``wallet.pages``). Each part is a function of the request and what the node holds; none
signs or changes anything.

- :func:`requester`: who is asking (name, certifications; whether this node's trust policy trusts each
  certifier for that scheme; certifications that end before the approval would).
- :func:`delegation_status`: the delegation's own status, read now from its issuer's status list (a suspended or
  revoked delegation cannot be used; the page names whom to escalate to: its issuer).
- :func:`delegation_fit`: the proposed approval against the delegation, dimension by dimension
  (``verifier.scope.approval_within``, the check the guard rail and every gateway make).
- :func:`rule_results`: the lawful-basis rules: ``verifier.lawful`` when it is installed, otherwise Cead's own
  checks of the request's bases against the data (Art 6 for any personal data; an Art 9 condition for special
  category data; Art 10 / DPA 2018 Schedule 1 for criminal offence data).
- :func:`ico_checklist`: the ICO Data Sharing Code's checklist, with what the request answers and what is missing.
- :func:`minimisation`: column-level flags (direct identifiers, special category, criminal offence).
- :func:`what_approving_allows`: the sentences shown before the Approve button.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from schemas import vocab, words
from schemas.models import DataSharingApproval, DelegatedAuthority
from verifier.results import CeadError

from .approval_view import ACTION_WORDS, _day, cadence_words, day_words, duration_words
from .casefile import DPIA_SCREENING, FIVE_SAFES, RequestCase
from .names import Directory, Named

UK_GDPR = vocab.UK_GDPR
LEGISLATION = {
    "art6": ("UK GDPR Article 6", f"{UK_GDPR}article/6"),
    "art9": ("UK GDPR Article 9", f"{UK_GDPR}article/9"),
    "art10": ("UK GDPR Article 10", f"{UK_GDPR}article/10"),
    "sch1": ("DPA 2018 Schedule 1", "https://www.legislation.gov.uk/ukpga/2018/12/schedule/1"),
    "art5c": ("UK GDPR Article 5(1)(c)", f"{UK_GDPR}article/5"),
}


@dataclass
class Check:
    """One line on the page: ``state`` is ok, bad or warn; ``title`` and ``text`` are plain words."""
    state: str
    title: str
    text: str = ""
    cite: tuple[str, str] | None = None      # (label, legislation.gov.uk URL)
    detail: list[str] = field(default_factory=list)


# ---- who is asking ----------------------------------------------------------------------------------------------

def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def requester(names: Directory, row, policy, ends: date | None) -> dict:
    """The requester's name and its certifications as presented with the request."""
    certs = []
    for c in row.certification_list:
        trusted_bodies = policy.trusted_bodies(c.get("scheme")) if policy is not None else []
        expiry = _date(c.get("expiryDate"))
        certs.append({
            "scheme": names.name(c.get("scheme")), "certifier": names.name(c.get("issuer")),
            "status": c.get("status") or "unknown", "expiry": _day(c["expiryDate"]) if c.get("expiryDate") else None,
            "trusted": c.get("issuer") in trusted_bodies, "policy": policy is not None,
            "ends_first": bool(expiry and ends and expiry < ends), "id": c.get("id"),
        })
    return {"name": names.name(row.requester), "certifications": certs}


def request_status_words(node, rows: list, now: datetime | None = None) -> dict[str, str]:
    """What each request's status badge says, by request id: its decision ("pending", "refused", "changes
    requested", ...), except that an approved request says where its approval stands now, from the register of
    what this node issued (``issuer.issuing.status_words``): "approved" while it is in force, otherwise
    "suspended", "revoked", "expired" (or "not yet in force"): never "approved" for an approval a gateway would
    refuse."""
    from issuer import issuing
    approvals = {row.approval_id for row in rows if row.status == "approved" and row.approval_id}
    issued = [r for r in issuing.register(node) if r.id in approvals] if approvals else []
    shown = issuing.status_words(node, issued, in_force="approved", now=now)
    return {row.id: shown.get(row.approval_id, row.status) if row.status == "approved" else row.status
            for row in rows}


# ---- the delegation ---------------------------------------------------------------------------------------------

def delegation_status(wallet, signed: dict | str) -> dict:
    """``{"status": active|suspended|revoked|expired|unknown, "usable": bool, "problems": [...]}``, read now."""
    verifier = wallet.fresh_status_verifier()
    result = verifier.verify_credential(signed)
    codes = {p.code for p in result.problems}
    if "status.revoked" in codes:
        status = "revoked"
    elif "status.suspended" in codes:
        status = "suspended"
    elif any(c in codes for c in ("credential.expired", "credential.not_yet_valid")):
        status = "expired"
    elif result.verified:
        status = "active"
    else:
        status = "unknown"
    return {"status": status, "usable": status == "active",
            "problems": [p.message for p in result.problems]}


def _document(signed: dict | str) -> dict:
    from .store import jwt_payload
    return jwt_payload(signed) if isinstance(signed, str) else signed


def delegation_model(signed: dict | str) -> DelegatedAuthority:
    return DelegatedAuthority.from_credential(_document(signed))


DIMENSION_FIELDS = {   # a scope dimension -> the approval form's field that sets it
    "datasets": None, "dataItems": None, "purposes": None, "recipients": None,
    "dataCategories": "data_categories", "dataSubjects": "data_subjects", "legalBases": "controller_basis",
    "regimes": "controller_basis", "recipientRequirements": "recipient_requirements",
    "requiredCoSigners": "co_signers", "privacyProtocol": "protocol", "notBefore": "not_before",
    "notAfter": "not_after", "maxSensitivity": "sensitivity", "maxDpiaRisk": "dpia_outcome",
    "maxRowsPerTransfer": "max_rows", "maxTransfersPerYear": "cadence", "maxRetention": "retention",
    "onwardSharing": "onward_sharing", "actions": None, "discloser": None, "processors": None,
}


def _show(names: Directory, dim: str, value: Any) -> str:
    if value is None:
        return "not restricted"
    if dim == "actions" and isinstance(value, list):
        return ", ".join(ACTION_WORDS.get(a, str(a)) for a in value)
    if dim == "maxSensitivity":
        return words.sensitivity_words(value)
    if dim == "maxDpiaRisk":
        return words.dpia_risk_words(value)
    if dim == "maxRetention":
        return duration_words(value)
    if isinstance(value, list):
        if not value:
            return "none"
        if value and not isinstance(value[0], str):
            return "; ".join(protocol_words(v if isinstance(v, dict) else v.model_dump(by_alias=True,
                                                                                         exclude_none=True))
                             for v in value)
        return ", ".join(str(names.name(v)) if (":" in v) else v for v in value)
    if isinstance(value, datetime):
        return day_words(value)
    return str(value)


SUBJECT_KEYS = {"datasets": "datasets", "dataItems": "dataItems", "purposes": "purposes",
                "dataCategories": "dataCategories", "dataSubjects": "dataSubjects", "cadence": "cadence"}


def delegation_fit(names: Directory, approval: DataSharingApproval | None, delegation: DelegatedAuthority,
                   violations: list, subject: dict | None = None, vocabulary=None) -> list[dict]:
    """One row per dimension the delegation restricts: what the approval asks, what the delegation allows, and
    whether it fits (None: not checked yet, because the approval is not complete; ``subject`` then supplies what
    the request itself asks)."""
    scope = delegation.scope
    asked = approval.scope() if approval is not None else None
    early: set[str] = set()
    if asked is None and subject is not None:
        # what the request itself fixes (datasets, columns, purposes, recipients) can be checked before the form
        from schemas.models import Scope
        from verifier.scope import within
        early = {"datasets", "dataItems", "purposes", "recipients"}
        partial = Scope(datasets=subject.get("datasets"), data_items=subject.get("dataItems"),
                        purposes=subject.get("purposes"), recipients=subject.get("recipients")
                        or ([subject["requester"]] if subject.get("requester") else None))
        violations = [v for v in within(partial, scope, vocabulary=vocabulary) if v.dimension.split(".")[0] in early]
    bad: dict[str, list[str]] = {}
    for v in violations:
        bad.setdefault(v.dimension.split(".")[0], []).append(v.message)
    rows = []
    for name, value in scope:
        dim = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)
        if value is None or dim == "maxDelegationDepth":
            continue
        if asked is not None:
            shown = _show(names, dim, getattr(asked, name, None))
        elif subject is not None and dim in SUBJECT_KEYS and subject.get(SUBJECT_KEYS[dim]) is not None:
            shown = _show(names, dim, subject.get(SUBJECT_KEYS[dim]))
        else:
            shown = "(complete the form below)"
        rows.append({"dimension": dim, "allowed": _show(names, dim, value), "asked": shown,
                     "fits": (dim not in bad) if asked is not None or dim in early else None,
                     "problems": bad.pop(dim, [])})
    for dim, messages in bad.items():       # discloser, processors and anything not a scope dimension
        rows.append({"dimension": dim, "allowed": "", "asked": "", "fits": False, "problems": messages})
    return rows


def protocol_words(p: dict) -> str:
    kind = p.get("kind")
    if kind == "threshold":
        return f"only counts of at least {p.get('minCellCount')} people per cell are released"
    if kind == "pseudonymisation":
        return "direct identifiers are removed and replaced with pseudonyms"
    if kind == "treOnly":
        return "data stay inside a trusted research environment; outputs are checked before release"
    if kind == "dominance":
        return f"no cell where {p.get('n')} contributors make up more than {p.get('k')}%"
    if kind == "differentialPrivacy":
        return "outputs are protected with differential privacy"
    if kind == "rounding":
        return f"every count is rounded to a multiple of {p.get('base')}"
    if kind == "cellKeyPerturbation":
        return "counts are perturbed by cell key (the provider checks each against its records)"
    return str(kind)


# ---- the rules --------------------------------------------------------------------------------------------------

def _lawful_module():
    try:
        from verifier import lawful  # noqa: F401 (built by another part of Cead; optional here)
        return lawful
    except ImportError:
        return None


def rule_results(names: Directory, req: dict, categories: list[str], approval_subject: dict | None = None,
                 *, pending: bool = True) -> list[Check]:
    """The lawful-basis rule results in plain words. ``verifier.lawful`` when present (its results are shown as
    they come); Cead's own checks of the bases against the data categories otherwise, and in any case. For a
    decided request ``approval_subject`` is the approval as issued; ``pending=False`` without one (refused, or
    changes asked for): nothing was issued, so the rulebook had nothing to check."""
    out: list[Check] = []
    lawful = _lawful_module()
    if lawful is not None:
        if approval_subject is None and not pending:
            out.append(Check("warn", "Lawful-basis rules", "No approval was issued, so the rulebook had no approval "
                             "to check."))
        else:
            out.extend(_from_lawful(lawful, req, approval_subject, names))
    bases = [vocab.expand(b) for b in (req.get("lawfulBasis") or {}).get("legalBases", [])]
    terms = [vocab.LEGAL_BASES.get(b) for b in bases]
    art6 = [b for b in bases if "/article/6/1/" in b]
    special_basis = any(t is not None and t.special for t in terms)
    criminal_basis = any(t is not None and t.criminal for t in terms)
    registry = vocab.registry()
    special = [c for c in categories if registry.is_special(vocab.expand(c))]
    criminal = [c for c in categories if vocab.DATA_CATEGORIES.get(vocab.expand(c)) is not None
                and vocab.DATA_CATEGORIES[vocab.expand(c)].criminal]
    regime = (req.get("lawfulBasis") or {}).get("regime")
    if regime == "UKGDPR":
        out.append(Check("ok" if art6 else "bad", "An Article 6 lawful basis",
                         f"The request relies on {', '.join(str(names.name(b)) for b in art6)}." if art6 else
                         "Every sharing of personal data needs one of the six Article 6 bases; the request names "
                         "none.", LEGISLATION["art6"]))
    if special:
        out.append(Check("ok" if special_basis else "bad", "A condition for special category data",
                         f"The data include {', '.join(str(names.name(c)) for c in special)}. "
                         + ("The request names an Article 9 condition." if special_basis else
                            "The request names no Article 9 condition (or DPA 2018 Schedule 1 condition)."),
                         LEGISLATION["art9"]))
    if criminal:
        out.append(Check("ok" if criminal_basis else "bad", "A condition for criminal offence data",
                         f"The data include {', '.join(str(names.name(c)) for c in criminal)}. "
                         + ("The request names an Article 10 / Schedule 1 condition." if criminal_basis else
                            "Criminal offence data need official authority or a DPA 2018 Schedule 1 condition."),
                         LEGISLATION["art10"]))
    return out


def form_problem(message: str) -> str:
    """A model error about the approval being built, in the form's words where the form sets that field
    ("Answer “Categories of personal data” before approving: ...") instead of the validator's wording."""
    question = _form_question(message)
    if question is None:
        return message
    detail = message.split(": ", 2)[-1]
    if "at least 1 item" in detail or "Field required" in detail:
        return f"Answer “{question}” above before approving."
    return f"Check “{question}” above: {detail}"


def _form_question(message: str) -> str | None:
    """The approval form's question behind a model error such as ``DataSharingApprovalCredential: dataCategories:
    List should have at least 1 item``, when the form sets that field; None otherwise."""
    from .forms import ApproveForm
    found = re.match(r"^\w*Credential: (\w+)(?:\.\w+)*: ", message)
    field_name = DIMENSION_FIELDS.get(found.group(1)) if found else None
    unbound = getattr(ApproveForm, field_name, None) if field_name else None
    label = (getattr(unbound, "args", None) or [None])[0]
    return label if isinstance(label, str) else None


def _from_lawful(lawful, req: dict, subject: dict | None, names: Directory | None = None) -> list[Check]:
    """Render what ``verifier.lawful`` reports for the approval as it would be issued (``evaluate(subject)``:
    results with an outcome met / unmet / advice, a title, a citation, an explanation, what was found and what
    would satisfy it; other shapes are shown as text). A failure to run is shown as a warning, never hidden."""
    evaluate = next((getattr(lawful, n) for n in ("evaluate", "check_request", "check", "assess", "results")
                     if callable(getattr(lawful, n, None))), None)
    if evaluate is None:
        return []
    if subject is None:
        return [Check("warn", "Lawful-basis rules", "Complete the approval form below: the rulebook is checked "
                      "against the approval as it would be issued.")]
    try:
        results = evaluate(subject)
    except Exception as exc:        # noqa: BLE001 (another part's rules: shown, never fatal to the page)
        message = str(getattr(exc, "message", exc))
        unanswered = _form_question(message)
        if unanswered:   # the form is not complete yet: say which question, in the form's own words
            return [Check("warn", "Lawful-basis rules", f"The rules run once the form below answers "
                          f"“{unanswered}”: the rulebook is checked against the approval as it would be "
                          "issued.")]
        return [Check("warn", "The lawful-basis rules could not run", message[:300])]
    out = []
    for r in results if isinstance(results, (list, tuple)) else getattr(results, "results", []) or []:
        get = (lambda k, r=r: r.get(k)) if isinstance(r, dict) else (lambda k, r=r: getattr(r, k, None))
        state = get("outcome") or get("state") or get("status") or ("ok" if get("passed") else "warn")
        state = {"pass": "ok", "passed": "ok", "met": "ok", "fail": "bad", "failed": "bad", "not_met": "bad",
                 "unmet": "bad", "advice": "warn", True: "ok", False: "bad"}.get(
                     state, state if state in ("ok", "bad", "warn") else "warn")
        # A rule is named for what it guards against ("No Art 6 lawful basis"), and runs once for each party: a
        # rule met reads "... — not the case for <party>", never a bare tick beside the problem's name
        party = get("party")
        who = str(names.name(party)) if names is not None and isinstance(party, str) and party else party
        title = str(get("title") or get("rule") or get("code") or "Rule")
        if state == "ok":
            title += " — not the case" + (f" for {who}" if who else "")
        elif who:
            title += f" ({who})"
        text = " ".join(str(x) for x in (get("explanation") or get("message") or get("plain"),
                                         get("finding") if state != "ok" else None,
                                         get("satisfy") if state == "bad" else None) if x)
        cite = get("citation") or get("cite")
        out.append(Check(state, title, text,
                         (words.law_words(cite), cite)
                         if isinstance(cite, str) and cite.startswith("http") else None,
                         detail=[str(cite)] if isinstance(cite, str) and not cite.startswith("http") else []))
    return out


# ---- the ICO checklist ------------------------------------------------------------------------------------------

def case_of(req: dict) -> RequestCase | None:
    data = req.get("case")
    if not isinstance(data, dict):
        return None
    try:
        return RequestCase.model_validate(data)
    except ValueError:
        return None


def ico_checklist(req: dict, case: RequestCase | None, flags: list[dict]) -> list[Check]:
    """The ICO Data Sharing Code's headings, each with what the request answers and what is missing."""
    c = case or RequestCase()
    docs = {d.kind for d in c.documents}
    out = []
    agreement_bits = ["the agreement is pinned by digest"] if req.get("agreement") else []
    if "agreement" in docs:
        agreement_bits.append("the data sharing agreement document is attached")
    out.append(Check("ok" if "agreement" in docs else "warn", "Data sharing agreement",
                     "; ".join(agreement_bits).capitalize() + "." if agreement_bits else "",
                     detail=[] if "agreement" in docs else ["Missing: the agreement document itself."]))
    pb = c.public_benefit
    missing = [] if pb else ["Missing: a public-benefit case (who benefits, how, evidence, what happens without)."]
    if pb and not pb.evidence:
        missing.append("Missing: evidence for the benefit.")
    if flags:
        missing.append("1 column is flagged below: is it needed?" if len(flags) == 1 else
                       f"{len(flags)} columns are flagged below: is each needed?")
    out.append(Check("ok" if not missing else "warn", "Necessity and proportionality",
                     (f"Who benefits: {pb.who_benefits.rstrip('.')}. How: {pb.how.rstrip('.')}." if pb else
                      f"Justification: {req.get('justification', '')}"), detail=missing))
    out.append(Check("ok" if c.transparency else "bad", "Transparency",
                     c.transparency or "Missing: how the people whose data these are are told.",
                     cite=("UK GDPR Articles 13 and 14", f"{UK_GDPR}article/13")))
    retention = c.retention or ""
    out.append(Check("ok" if retention and c.review else ("warn" if retention else "bad"), "Retention and review",
                     (f"Kept for {duration_words(retention)}." if retention else "Missing: how long the data are kept.")
                     + (f" Review: {c.review}" if c.review else " Missing: when the sharing is reviewed.")))
    safes = c.five_safes
    answered = [FIVE_SAFES[k] for k in FIVE_SAFES if safes and getattr(safes, k)]
    security = [c.security] if c.security else []
    out.append(Check("ok" if len(answered) == 5 else "warn", "Security",
                     " ".join(security) + (f" Five Safes answered: {', '.join(answered)}." if answered else ""),
                     detail=[f"Missing: {FIVE_SAFES[k]}." for k in FIVE_SAFES if not (safes and getattr(safes, k))]))
    out.append(Check("ok" if c.rights else "bad", "Individuals' rights",
                     c.rights or "Missing: how access, objection and other rights requests are handled.",
                     cite=("UK GDPR Chapter III", f"{UK_GDPR}chapter/III")))
    needed = c.dpia_needed
    yes = [DPIA_SCREENING[k] for k, v in (c.dpia_screening or {}).items() if v]
    out.append(Check("warn" if needed is None else ("ok" if not needed or "dpia" in docs else "bad"),
                     "DPIA screening",
                     "Not answered." if needed is None else
                     ("A DPIA is needed: " + "; ".join(yes) + "." + (" The DPIA is attached." if "dpia" in docs
                                                                     else " No DPIA is attached."))
                     if needed else "No screening question answered yes: a DPIA is not required.",
                     cite=("UK GDPR Article 35", f"{UK_GDPR}article/35")))
    return out


# ---- minimisation -----------------------------------------------------------------------------------------------

_IDENTIFIER = re.compile(r"(^|_)(id|name|forename|surname|address|postcode|post_code|dob|date_of_birth|birth|"
                         r"email|phone|mobile|nhs|chi|ni|nino|national_insurance|upn|scn|uprn|ref|reference)(_|$)", re.I)
_SPECIAL = re.compile(r"health|diagnos|disab|ethnic|religio|sexual|gender_identity|medical|mental|biometric|"
                      r"genetic|trade_union|politic", re.I)
_CRIMINAL = re.compile(r"offen|convict|crime|criminal|charge|arrest|sentence|caution", re.I)


def minimisation(columns: list[str]) -> list[dict]:
    """The requested columns that need a second look, each with why."""
    out = []
    for col in columns:
        why = []
        if _IDENTIFIER.search(col):
            why.append("a direct identifier")
        if _SPECIAL.search(col):
            why.append("special category data")
        if _CRIMINAL.search(col):
            why.append("criminal offence data")
        if why:
            out.append({"column": col, "why": why})
    return out


# ---- what approving allows --------------------------------------------------------------------------------------

def what_approving_allows(names: Directory, subject: dict) -> list[str]:
    """Plain sentences for the proposed approval subject (from the form as it stands)."""
    who = ", ".join(str(names.name(r)) for r in subject.get("recipients", []))
    datasets = ", ".join(str(names.name(d)) for d in subject.get("datasets", []))
    purposes = ", ".join(str(names.name(p)) for p in subject.get("purposes", []))
    lines = [f"{who} may receive the columns {', '.join(subject.get('dataItems', []))} of {datasets}, "
             f"only for {purposes}."]
    cadence = subject.get("cadence")
    if cadence:
        lines.append(cadence_words(cadence))
    for p in subject.get("privacyProtocol") or []:
        lines.append("Every transfer is checked at the gateway: " + protocol_words(p) + ".")
    if subject.get("maxRowsPerTransfer"):
        lines.append(f"At most {subject['maxRowsPerTransfer']} rows per transfer.")
    retention = (subject.get("retention") or {}).get("receivedData")
    if retention:
        lines.append(f"The recipient keeps the data for at most {duration_words(retention)}.")
    onward = subject.get("onwardSharing")
    if onward:
        lines.append({"Prohibited": "The recipient may not share the data onwards.",
                      "WithApproval": "Onward sharing needs a further approval.",
                      "Permitted": "The recipient may share the data onwards."}.get(onward, onward))
    if subject.get("coSigners"):
        lines.append("The approval is valid only once co-signed by "
                     + ", ".join(str(names.name(c)) for c in subject["coSigners"]) + ".")
    if subject.get("notBefore") and subject.get("notAfter"):
        try:
            over = datetime.fromisoformat(str(subject["notAfter"]).replace("Z", "+00:00")) < now_utc()
        except ValueError:
            over = False
        lines.append(f"From {_day(subject['notBefore'])} until {_day(subject['notAfter'])}" + (
            ": that period is over." if over else "; you can suspend or revoke it from this page at any time."))
    return lines


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


# ---- precedents (this node's own earlier decisions) ----------------------------------------------------------------

def _overlap(a: list, b: list) -> float:
    a, b = set(a or []), set(b or [])
    return len(a & b) / len(a | b) if a and b else 0.0


def precedents(rows: list, row, limit: int = 3) -> list[dict]:
    """This node's earlier decisions on similar requests, nearest first: the same datasets, purposes and columns
    (Jaccard overlap) and the same requester count; only decided requests (approved, refused, changes requested).
    A feed of other nodes' decisions is not built yet."""
    req = row.request
    out = []
    for other in rows:
        if other.id == row.id or other.status not in ("approved", "refused", "changes requested"):
            continue
        o = other.request
        score = (2 * _overlap(req.get("datasets"), o.get("datasets")) + _overlap(req.get("purposes"), o.get("purposes"))
                 + _overlap(req.get("dataItems"), o.get("dataItems")) + (0.5 if other.requester == row.requester else 0))
        if score > 0:
            out.append({"row": other, "score": round(score, 2), "same_requester": other.requester == row.requester,
                        "same_request": score >= 4.5})
    out.sort(key=lambda p: (-p["score"], -(p["row"].decided_at or p["row"].received_at).timestamp()))
    return out[:limit]


# ---- the staff audit log, in words ------------------------------------------------------------------------------

def audit_names(node, wallet=None):
    """``(name, more)`` for the staff audit log in words (``issuer.staff.log_lines``): ``name(value)``, the name
    this node knows for a DID or a dataset's address (or None); ``more(entry)``, what an entry was done on, when it is
    a data-sharing request: one received here by who asks and for which datasets, one sent from here by where it
    went and for which datasets (or None). The top layer passes them to the issuer's staff page and ``cead staff
    log`` (the issuer never imports the wallet)."""
    from .sharing import get_request
    from .store import Wallet
    wallet = wallet or Wallet.from_node(node)
    names = Directory.for_pages(node, wallet)

    def datasets(values) -> str:
        return ", ".join(names.name(d).label for d in values if isinstance(d, str))

    def more(entry) -> str | None:
        if entry.action == "sent request":
            try:
                detail = json.loads(entry.detail or "{}")
            except ValueError:
                detail = {}
            detail = detail if isinstance(detail, dict) else {}
            host = urlsplit(str(detail.get("to") or "")).hostname
            shown = datasets(detail.get("datasets") or [])
            return ("a request" + (f" to the node at {host}" if host else "")
                    + (f" for {shown}" if shown else "")) if host or shown else None
        try:
            row = get_request(wallet, entry.target)
        except CeadError:   # not a request received here: nothing to name it by
            return None
        shown = datasets(row.request.get("datasets") or [])
        return f"the request from {names.name(row.requester).label}" + (f" for {shown}" if shown else "")
    return names.known, more
