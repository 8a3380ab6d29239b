"""What a held credential says, in plain words, and exactly what was verified about it: the printable summary
(``GET /wallet/<id>/summary``) and the public verification page (``GET /verify/<link>``) render these.

- :func:`conditions`: every condition of a data-sharing approval as a section with plain sentences (purpose,
  lawful basis with its legislation.gov.uk citation, datasets and columns, recipients and processors, the data
  sharing agreement and DPIA with their pinned digests, retention, onward sharing, cadence, row limit, the whole
  privacy protocol, validity, co-signers, upstream approvals...). A field this version of Cead does not know is
  listed under "Other conditions", never dropped: a reader must see everything the approval says. Other credential
  types are listed field by field.
- :func:`verification`: what was checked, one line each, read now: the issuer's signature (and co-signatures),
  the validity period, the current status from the issuer's status list, the approver's authority (the
  delegation chain from the controller, usually through its Data Protection Officer, each link verified, in force,
  within its parent's scope and naming its parent by digest; the approval within the last link), the recipients'
  certifications held here against the approval's requirements, and the lawful-basis rulebook
  (``verifier.lawful``). A revoked or suspended credential is the headline.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from schemas import vocab, words
from schemas.words import day_words, moment_words  # noqa: F401  (re-exported: the wallet's pages use them)
from schemas.models import DataSharingApproval, DelegatedAuthority
from verifier.results import CeadError

from .names import Directory, delegate_label

APPROVAL = DataSharingApproval.credential_type
DELEGATION = DelegatedAuthority.credential_type
CERTIFICATION = "OrganisationCertificationCredential"
KIND_NAMES = words.KIND_NAMES   # (the plain words every page shares: schemas.words)
MAX_VALUES = 50            # values of one list shown before "... and N more" (a credential may name thousands)


@dataclass
class Section:
    """One condition: a heading, plain sentences, and the identifiers behind a disclosure."""
    key: str
    title: str
    lines: list[str]
    ids: list[str] = field(default_factory=list)
    cite: list[tuple[str, str]] = field(default_factory=list)     # (label, legislation.gov.uk URL)
    unknown: bool = False


@dataclass
class Line:
    """One thing verified: ``state`` ok, bad or warn."""
    state: str
    title: str
    text: str
    detail: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)     # identifiers (a key, a DID...): behind a disclosure, not in text


@dataclass
class Report:
    verified: bool
    status: str                    # active | revoked | suspended | unknown | none
    headline: str
    lines: list[Line]
    checked: str


# ---- words ------------------------------------------------------------------------------------------------------

_UNITS = {"Y": "year", "M": "month", "W": "week", "D": "day", "H": "hour", "S": "second"}


def duration_words(value: Any) -> str:
    """``P1Y6M`` -> "1 year and 6 months" (unrecognised text is returned as it is). The words alone: they say the
    period exactly, and the ISO 8601 code beside them was jargon to the people who decide (the credential itself,
    shown under its identifiers, keeps the code)."""
    if not isinstance(value, str):
        return str(value)
    m = re.fullmatch(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?", value)
    if not m or not any(m.groups()):
        return value
    parts = []
    for number, unit in zip(m.groups(), ["year", "month", "week", "day", "hour", "minute", "second"]):
        if number:
            parts.append(f"{int(number)} {unit}{'' if int(number) == 1 else 's'}")
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]


_EVERY = {"P1D": "daily", "P1W": "weekly", "P2W": "fortnightly", "P1M": "monthly", "P3M": "quarterly",
          "P6M": "twice a year", "P1Y": "yearly"}


def cadence_words(value: Any) -> str:
    """An ISO 8601 repeating interval in plain words: ``R/2026-01-01T00:00:00Z/P1M`` -> "Data may be sent monthly
    from 1 January 2026, no set number of transfers (about 12 a year)." Text that is not one is shown as written."""
    try:
        r = vocab.RepeatingInterval.parse(value)
        if r.repetitions == 1:
            return f"Data may be sent once, from {_day(r.start.isoformat())}."
        times = f"at most {r.repetitions} transfers" if r.repetitions else "no set number of transfers"
        how = _EVERY.get(r.period) or f"every {duration_words(r.period)}"
        return (f"Data may be sent {how} from {_day(r.start.isoformat())}, "
                f"{times} (about {round(r.per_year)} a year).")
    except Exception:      # noqa: BLE001 (shown as written rather than dropped)
        return f"Data may be sent on the schedule {value}."


def _day(value: Any) -> str:
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    text = f"{when.day} {when.strftime('%B %Y')}"
    return text if (when.hour, when.minute) in ((0, 0), (23, 59)) else f"{text}, {when.strftime('%H:%M')} UTC"


def _list(values: list[str]) -> str:
    shown = values[:MAX_VALUES]
    text = ", ".join(shown) if len(shown) < 2 else ", ".join(shown[:-1]) + " and " + shown[-1]
    return text + (f" ... and {len(values) - MAX_VALUES} more" if len(values) > MAX_VALUES else "")


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else ([] if value is None else [value])


def _json(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 500 else text[:497] + "..."


def _rest(obj: dict, known: set[str]) -> list[str]:
    """What an object holds beyond the keys this version knows, as "key: value" (never dropped)."""
    return [f"also {k}: {_json(v)} (not a field this version of Cead knows)" for k, v in obj.items()
            if k not in known]


def _yes(value: Any) -> str:
    return "yes" if value else "no"


PROTOCOL_KEYS = {
    "threshold": {"kind", "minCellCount", "secondarySuppression", "zerosAllowed", "countColumns",
                  "protectionInterval", "hierarchy"},
    "dominance": {"kind", "n", "k", "p"},
    "differentialPrivacy": {"kind", "epsilon", "delta", "rho", "budget", "mechanism", "unitOfPrivacy",
                            "maxContributions", "clipping"},
    "secureAggregation": {"kind", "inputParties", "computeParties", "outputParties", "collusionThreshold",
                          "threatModel", "minInputParties"},
    "psiCardinality": {"kind", "parties", "learners", "threatModel", "minSetSize"},
    "pseudonymisation": {"kind", "method", "keyHolder", "directIdentifiersRemoved", "quasiIdentifiers",
                         "kAnonymity", "sensitiveAttributes", "lDiversity"},
    "treOnly": {"kind", "environments", "outputChecking", "accreditations"},
}


def protocol_lines(p: Any, names: Directory) -> list[str]:
    """Every parameter of one privacy protocol in words (its first line says what it is)."""
    if not isinstance(p, dict):
        return [f"A privacy protocol this version of Cead cannot read: {_json(p)}"]
    kind = p.get("kind")
    n = lambda dids: _list([str(names.name(d)) for d in _as_list(dids)])  # noqa: E731
    out: list[str] = []
    if kind == "threshold":
        out.append(f"Counts only: every released count describes at least {p.get('minCellCount')} people "
                   "(smaller counts are suppressed at the gateway).")
        out.append("Secondary suppression: " + ("yes, so a suppressed cell cannot be worked out from totals."
                                                if p.get("secondarySuppression") else "no."))
        out.append("A count of zero may be published (structural zeros)." if p.get("zerosAllowed")
                   else "A count of zero is suppressed like any small count.")
        if p.get("countColumns"):
            out.append(f"The counts are in the columns {_list(_as_list(p['countColumns']))}.")
        if p.get("protectionInterval"):
            out.append(f"Protection interval: {p['protectionInterval']}.")
        if p.get("hierarchy"):
            out.append("Totals across: " + "; ".join(f"{k} ({_list(_as_list(v))})"
                                                     for k, v in p["hierarchy"].items()) + ".")
    elif kind == "dominance":
        out.append(f"Dominance rule: no released cell where {p.get('n')} contributor(s) make up more than "
                   f"{p.get('k')}% of the total." + (f" p% rule: {p['p']}%." if p.get("p") is not None else ""))
    elif kind == "differentialPrivacy":
        params = [f"{label} {p[key]}" for label, key in (("epsilon", "epsilon"), ("delta", "delta"),
                                                         ("rho", "rho")) if p.get(key) is not None]
        out.append("Outputs are protected with differential privacy" + (f" ({', '.join(params)})" if params else "")
                   + (f", {p['mechanism']} mechanism" if p.get("mechanism") else "") + ".")
        if p.get("unitOfPrivacy"):
            out.append(f"The unit of privacy is one {p['unitOfPrivacy']}"
                       + (f", contributing at most {p['maxContributions']} record(s)."
                          if p.get("maxContributions") else "."))
        elif p.get("maxContributions"):
            out.append(f"Each person contributes at most {p['maxContributions']} record(s).")
        if isinstance(p.get("clipping"), dict):
            c = p["clipping"]
            out.append(f"Values are clipped to between {c.get('lower')} and {c.get('upper')}."
                       + "".join(" " + x for x in _rest(c, {"lower", "upper"})))
        if isinstance(p.get("budget"), dict):
            b = p["budget"]
            spend = [f"{label} {b[key]}" for label, key in (("epsilon", "epsilon"), ("rho", "rho"))
                     if b.get(key) is not None]
            out.append(f"Privacy budget per {duration_words(b.get('period'))}"
                       + (f" from {_day(b['start'])}" if b.get("start") else "")
                       + (f": at most {', '.join(spend)} in total" if spend else "")
                       + (f", at most {b['maxReleases']} releases" if b.get("maxReleases") else "") + "."
                       + "".join(" " + x for x in _rest(b, {"period", "start", "epsilon", "rho", "maxReleases"})))
    elif kind == "secureAggregation":
        out.append("Secure aggregation: only the combined result is revealed, never any party's input.")
        out.append(f"Input parties: {n(p.get('inputParties'))}. Compute parties: {n(p.get('computeParties'))}. "
                   f"Output parties: {n(p.get('outputParties'))}.")
        out.append(f"Safe unless {p.get('collusionThreshold')} or more compute parties collude "
                   f"({p.get('threatModel', 'semiHonest')} threat model)."
                   + (f" At least {p['minInputParties']} input parties." if p.get("minInputParties") else ""))
    elif kind == "psiCardinality":
        out.append(f"Private set intersection: only the size of the overlap is revealed, to {n(p.get('learners'))}.")
        out.append(f"Parties: {n(p.get('parties'))} ({p.get('threatModel', 'semiHonest')} threat model)."
                   + (f" Each party's set has at least {p['minSetSize']} members." if p.get("minSetSize") else ""))
    elif kind == "pseudonymisation":
        method = {"keyedHash": "a keyed hash", "tokenisation": "tokens", "encryption": "encryption"}.get(
            p.get("method", "keyedHash"), p.get("method"))
        out.append(f"Record level, pseudonymised with {method}"
                   + (f"; the key is held by {n(p['keyHolder'])}" if p.get("keyHolder") else "") + ".")
        out.append("Direct identifiers are removed." if p.get("directIdentifiersRemoved", True)
                   else "Direct identifiers are NOT removed.")
        if p.get("quasiIdentifiers"):
            out.append(f"Quasi-identifiers: {_list(_as_list(p['quasiIdentifiers']))}"
                       + (f", each combination shared by at least {p['kAnonymity']} people (k-anonymity)."
                          if p.get("kAnonymity") else "."))
        elif p.get("kAnonymity"):
            out.append(f"k-anonymity of at least {p['kAnonymity']}.")
        if p.get("sensitiveAttributes"):
            out.append(f"Sensitive attributes: {_list(_as_list(p['sensitiveAttributes']))}"
                       + (f", at least {p['lDiversity']} distinct values in each group (l-diversity)."
                          if p.get("lDiversity") else "."))
    elif kind == "treOnly":
        where = n(p["environments"]) if p.get("environments") else "any accredited trusted research environment"
        out.append(f"The data stay inside {where}.")
        out.append("Outputs are checked before they leave." if p.get("outputChecking", True)
                   else "Outputs are NOT checked before they leave.")
        if p.get("accreditations"):
            out.append(f"Accreditations required: {n(p['accreditations'])}.")
    else:
        return [f"A privacy protocol this version of Cead does not know ({kind}): {_json(p)}"]
    return out + _rest(p, PROTOCOL_KEYS[kind])


def _basis_cite(iri: str) -> tuple[str, str] | None:
    full = vocab.expand(iri)
    if full.startswith("https://www.legislation.gov.uk/"):
        return (str(vocab.LEGAL_BASES[full].label) if full in vocab.LEGAL_BASES else vocab.compact(full), full)
    return None


def _pin(ref: Any, what: str) -> tuple[list[str], list[str]]:
    if not isinstance(ref, dict):
        return [f"{what}: {_json(ref)}"], []
    lines = [f"{what} is pinned by its digest {ref.get('digest')}: only that exact document or credential "
             "matches (its identifier is under Identifiers)."]
    return lines + _rest(ref, {"id", "digest"}), [str(ref.get("id"))]


def _pins(refs: list, what: str) -> tuple[list[str], list[str]]:
    """``_pin`` for each of a list of pinned references: "The <what>" alone, "<What> 1", "<What> 2"... for several."""
    lines, ids = [], []
    for i, ref in enumerate(refs, 1):
        got = _pin(ref, f"{what.capitalize()} {i}" if len(refs) > 1 else f"The {what}")
        lines += got[0]
        ids += got[1]
    return lines, ids


def _subject(document: dict) -> dict:
    subject = document.get("credentialSubject")
    if isinstance(subject, list) and len(subject) == 1:
        subject = subject[0]
    return subject if isinstance(subject, dict) else {}


def types_of(document: dict) -> list[str]:
    t = document.get("type")
    return [x for x in _as_list(t) if isinstance(x, str)]


APPROVAL_KEYS = ("purposes", "lawfulBases", "datasets", "dataItems", "dataCategories", "dataSubjects", "discloser",
                 "recipients", "processors", "recipientRequirements", "agreement", "dpia", "sensitivity",
                 "privacyProtocol", "cadence", "maxRowsPerTransfer", "retention", "onwardSharing", "notBefore",
                 "notAfter", "reviewDate", "coSigners", "delegationChain", "upstream", "compatibilityAssessment",
                 "newGateway", "confidentiality", "derivation")


def approval_conditions(subject: dict, names: Directory) -> list[Section]:
    """Every condition of an approval's subject, in the order a reader weighs them; unknown fields last."""
    nm = lambda values: [str(names.name(v)) for v in _as_list(values)]  # noqa: E731
    out: list[Section] = []

    def add(key, title, lines, ids=(), cite=()):
        out.append(Section(key, title, lines, [str(i) for i in ids], list(cite)))

    s = subject
    if "purposes" in s:
        add("purposes", "Purpose", [f"Only for {_list(nm(s['purposes']))}."], _as_list(s["purposes"]))
    if "lawfulBases" in s:
        lines, cites = [], []
        for lb in _as_list(s["lawfulBases"]):
            if not isinstance(lb, dict):
                lines.append(_json(lb))
                continue
            bases = [vocab.expand(b) for b in _as_list(lb.get("legalBases")) if isinstance(b, str)]
            regime = {"UKGDPR": "UK GDPR", "DPA2018Part3": "DPA 2018 Part 3 (law enforcement)"}.get(
                lb.get("regime"), lb.get("regime"))
            lines.append(_sentence(f"{names.name(lb.get('party'))} relies on {_list(nm(bases)) or 'no basis'} "
                         f"under {regime}." + "".join(" " + x for x in _rest(lb, {"party", "regime", "legalBases"}))))
            cites += [c for c in (_basis_cite(b) for b in bases) if c and c not in cites]
        add("lawfulBases", "Lawful basis", lines, [lb.get("party") for lb in _as_list(s["lawfulBases"])
                                                   if isinstance(lb, dict)], cites)
    if "datasets" in s:
        add("datasets", "Datasets", [f"{_list(nm(s['datasets']))}."], _as_list(s["datasets"]))
    if "dataItems" in s:
        add("dataItems", "Columns", [f"Only the columns {_list([str(c) for c in _as_list(s['dataItems'])])}."])
    if "dataCategories" in s:
        add("dataCategories", "Categories of data", [f"{_list(nm(s['dataCategories']))}."],
            _as_list(s["dataCategories"]))
    if "dataSubjects" in s:
        add("dataSubjects", "Whose data", [f"{_list(nm(s['dataSubjects'])) or 'Not stated'}."],
            _as_list(s["dataSubjects"]))
    if "discloser" in s:
        add("discloser", "Disclosed by", [_sentence(f"{names.name(s['discloser'])} (the controller).")], [s["discloser"]])
    if "recipients" in s:
        add("recipients", "Recipients", [f"{_list(nm(s['recipients']))} may receive the data."],
            _as_list(s["recipients"]))
    if "processors" in s:
        add("processors", "Processors", [f"{_list(nm(s['processors']))} may process the data for them."
                                         if s["processors"] else "No processors."], _as_list(s["processors"]))
    if "recipientRequirements" in s:
        add("recipientRequirements", "Certifications the recipient must hold",
            [f"{_list(nm(s['recipientRequirements']))}." if s["recipientRequirements"] else "None required."],
            _as_list(s["recipientRequirements"]))
    if "agreement" in s:
        lines, ids = _pin(s["agreement"], "The data sharing agreement")
        add("agreement", "Data sharing agreement", lines, ids)
    if "dpia" in s:
        d = s["dpia"] if isinstance(s["dpia"], dict) else {}
        outcome = words.dpia_risk_words(d["outcome"]) if "outcome" in d else "not stated"
        lines = [f"The data protection impact assessment's residual risk: {outcome}"
                 + (f" (assessed {_day(d['date'])})." if d.get("date") else ".")]
        ref = d.get("reference")
        if ref:
            digest = re.search(r"sha256-[A-Za-z0-9_-]{43}", str(ref))
            lines.append(f"It is recorded at {ref}" + (f", pinned by its digest {digest.group(0)}." if digest else
                                                     " (a reference: no digest of the DPIA is pinned)."))
        else:
            lines.append("No reference to the DPIA document is given.")
        add("dpia", "DPIA", lines + _rest(d, {"outcome", "reference", "date"}) if isinstance(s["dpia"], dict)
            else [_json(s["dpia"])], [ref] if ref else [],
            [("UK GDPR Article 35", f"{vocab.UK_GDPR}article/35")])
    if "sensitivity" in s:
        add("sensitivity", "Sensitivity", [f"The data as shared are classed "
                                           f"{words.sensitivity_words(s['sensitivity'])}."])
    if "privacyProtocol" in s:
        protocols = _as_list(s["privacyProtocol"])
        lines = [line for p in protocols for line in protocol_lines(p, names)] or [
            "None: the data are shared at record level without a privacy protocol."]
        add("privacyProtocol", "Privacy protocol", lines + ["The gateway checks this on every transfer."]
            if protocols else lines)
    if "cadence" in s:
        add("cadence", "How often", [cadence_words(s["cadence"])])
    if "maxRowsPerTransfer" in s:
        add("maxRowsPerTransfer", "Row limit", [f"At most {s['maxRowsPerTransfer']} rows in any one transfer."])
    elif s:
        add("maxRowsPerTransfer", "Row limit", ["No row limit."])
    if "retention" in s:
        r = s["retention"] if isinstance(s["retention"], dict) else {}
        lines = [f"The recipient keeps the data received for at most {duration_words(r.get('receivedData'))}."]
        if r.get("derivedData"):
            lines.append(f"Data derived from them are kept for at most {duration_words(r['derivedData'])}.")
        add("retention", "Retention", lines + _rest(r, {"receivedData", "derivedData"}))
    if "onwardSharing" in s:
        add("onwardSharing", "Onward sharing", [{
            "Prohibited": "The recipient may not share the data with anyone else.",
            "WithApproval": "The recipient may share the data onwards only with a further approval.",
            "Permitted": "The recipient may share the data onwards."}.get(s["onwardSharing"],
                                                                          str(s["onwardSharing"]))])
    if "notBefore" in s or "notAfter" in s:
        lines = [f"From {_day(s.get('notBefore'))} until {_day(s.get('notAfter'))}."]
        if s.get("reviewDate"):
            lines.append(f"To be reviewed by {_day(s['reviewDate'])}.")
        add("validity", "Validity", lines)
    if "coSigners" in s:
        add("coSigners", "Co-signers", [f"Valid only when also signed by {_list(nm(s['coSigners']))}."
                                        if s["coSigners"] else "No co-signers."], _as_list(s["coSigners"]))
    for key, title, one, none in (
            ("delegationChain", "Delegation chain", "delegation", "None: approved by the controller itself."),
            ("upstream", "Upstream approvals", "upstream approval",
             "None: the data are not themselves received under another approval.")):
        if key in s:
            lines, ids = _pins(_as_list(s[key]), one)
            add(key, title, lines or [none], ids)
    if isinstance(s.get("compatibilityAssessment"), dict):
        c = s["compatibilityAssessment"]
        lines = [f"A new purpose assessed as {c.get('outcome')} with the original purpose on {_day(c.get('date'))}"
                 + (f" by {names.name(c['assessedBy'])}" if c.get("assessedBy") else "") + f" ({c.get('reference')})."]
        from schemas.models import CompatibilityAssessment
        lines += [f"{label}: {c[key]}" for key, label in CompatibilityAssessment.FACTORS.items() if c.get(key)]
        known = {"reference", "date", "outcome", "assessedBy", *CompatibilityAssessment.FACTORS}
        add("compatibilityAssessment", "Compatibility of the new purpose", lines + _rest(c, known),
            cite=[("UK GDPR Article 6(4)", f"{vocab.UK_GDPR}article/6/4")])
    if "newGateway" in s:
        add("newGateway", "Statutory gateway for the new purpose", [_sentence(f"{names.name(s['newGateway'])}.")],
            [s["newGateway"]], [_basis_cite(s["newGateway"])] if _basis_cite(s["newGateway"]) else [])
    if isinstance(s.get("confidentiality"), dict):
        c = s["confidentiality"]
        how = {"Consent": "consent", "PBPPApproval": "an approval of the Public Benefit and Privacy Panel"}.get(
            c.get("metBy"), c.get("metBy"))
        add("confidentiality", "Common-law duty of confidentiality",
            [f"Met by {how}" + (f" ({c['reference']}" + (f", {_day(c['date'])})" if c.get("date") else ")")
                                if c.get("reference") else "") + "."] + _rest(c, {"metBy", "reference", "date"}))
    if isinstance(s.get("derivation"), dict):
        d = s["derivation"]
        lines = [f"Transformations: {_list([_json(t) for t in _as_list(d.get('transformations'))])}."]
        for lin in _as_list(d.get("lineage")):
            if isinstance(lin, dict):
                lines.append(f"Column {lin.get('output')} comes from " + _list(
                    [f"{x.get('column')} of {x.get('upstream')}" for x in _as_list(lin.get("sources"))
                     if isinstance(x, dict)]) + ".")
        add("derivation", "Derived data", lines + _rest(d, {"transformations", "lineage"}))
    for key in ("compatibilityAssessment", "confidentiality", "derivation"):
        if key in s and not isinstance(s[key], dict):
            add(key, key, [_json(s[key])])
    known = set(APPROVAL_KEYS) | {"id"}
    for key, value in s.items():
        if key not in known:
            out.append(Section(key, f"Other condition: {key}", [
                f"{_json(value)}", "This version of Cead does not know this condition: it is shown as written, "
                "and a gateway that does not understand it should not rely on the approval."], unknown=True))
    return out


def generic_conditions(subject: dict, names: Directory) -> list[Section]:
    """Any other credential, field by field (names for DIDs and IRIs)."""
    out = []
    for key, value in subject.items():
        if isinstance(value, (dict, list)) and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            text = _json(value)
        elif isinstance(value, list):
            text = _list([str(names.name(v)) if ":" in v else v for v in value])
        elif isinstance(value, str) and ":" in value and not value.startswith("http") or (
                isinstance(value, str) and value.startswith("https://w3id.org/")):
            text = str(names.name(value))
        else:
            text = str(value)
        out.append(Section(key, "Subject" if key == "id" else re.sub(r"(?<!^)([A-Z])", r" \1", key).capitalize(),
                           [text]))
    return out


def _words(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r" \1", key).capitalize()


ACTION_WORDS = {"ApproveDisclosure": "approve disclosures", "SubDelegate": "delegate further",
                "Revoke": "revoke approvals", "CoSign": "co-sign approvals"}

# a delegation's limits, each named as a person reads it (a dimension not named here: its field name in words)
LIMIT_WORDS = {"datasets": "Datasets", "dataItems": "Only these columns", "purposes": "Purposes",
               "dataCategories": "Kinds of data", "dataSubjects": "Whose data", "legalBases": "Lawful bases",
               "recipients": "Recipients", "recipientRequirements": "Recipients must hold",
               "requiredCoSigners": "Co-signers every approval needs", "privacyProtocol": "Privacy protocol, at least",
               "notBefore": "From", "notAfter": "Until", "maxSensitivity": "Sensitivity, at most",
               "maxDpiaRisk": "DPIA residual risk, at most", "maxRowsPerTransfer": "Rows per transfer, at most",
               "maxTransfersPerYear": "Transfers a year, at most", "maxRetention": "Retention, at most",
               "onwardSharing": "Onward sharing, at most", "maxDelegationDepth": "Further delegation, at most"}
ONWARD_WORDS = {"Prohibited": "not allowed", "WithApproval": "only with a further approval", "Permitted": "allowed"}


def delegation_conditions(subject: dict, names: Directory) -> list[Section]:
    """A delegation: who may approve, for whom, what, and within which limits (every scope dimension)."""
    nm = lambda values: [str(names.name(v)) for v in _as_list(values)]  # noqa: E731
    out: list[Section] = []
    if "id" in subject:
        role = words.role_name(str(subject.get("role", "approver"))).lower()
        who = (f"{subject['name']} (the name this delegation gives)" if isinstance(subject.get("name"), str)
               else str(names.name(subject["id"])))
        out.append(Section("id", "Delegate", [_sentence(f"{who} as {role}.")], [subject["id"]]))
    if "onBehalfOf" in subject:
        out.append(Section("onBehalfOf", "On behalf of", [_sentence(f"{names.name(subject['onBehalfOf'])} (the controller).")],
                           [subject["onBehalfOf"]]))
    if "allowedActions" in subject:
        out.append(Section("allowedActions", "May", [_list([ACTION_WORDS.get(a, str(a))
                                                           for a in _as_list(subject["allowedActions"])]) + "."]))
    if "parentDelegation" in subject:
        lines, ids = _pin(subject["parentDelegation"], "Under the delegation")
        out.append(Section("parentDelegation", "Under", lines, ids))
    scope = subject.get("scope") if isinstance(subject.get("scope"), dict) else None
    if scope is not None:
        lines = []
        for key, value in scope.items():
            if key == "privacyProtocol":
                text = "; ".join(line.rstrip(".") for p in _as_list(value)
                                 for line in protocol_lines(p, names)[:1]) or "none"
            elif key == "maxSensitivity":
                text = words.sensitivity_words(value)
            elif key == "maxDpiaRisk":
                text = words.dpia_risk_words(value)
            elif key == "onwardSharing":
                text = ONWARD_WORDS.get(value, str(value))
            elif key == "maxDelegationDepth" and isinstance(value, int):
                text = f"{value} more level{'s' if value != 1 else ''}"
            elif isinstance(value, list):
                text = _list(nm(value) if all(isinstance(v, str) and ":" in v for v in value) else
                             [_json(v) for v in value]) or "none"
            elif key in ("maxRetention",):
                text = duration_words(value)
            elif key in ("notBefore", "notAfter"):
                text = _day(value)
            else:
                text = _json(value)
            lines.append(f"{LIMIT_WORDS.get(key, _words(key))}: {text}.")
        out.append(Section("scope", "Within these limits", lines or ["No limits."]))
    elif "scope" in subject:
        out.append(Section("scope", "Within these limits", [_json(subject["scope"])]))
    known = {"id", "name", "role", "onBehalfOf", "allowedActions", "parentDelegation", "scope"}
    out += [Section(k, f"Other field: {k}", [_json(v), "This version of Cead does not know this field."],
                    unknown=True) for k, v in subject.items() if k not in known]
    return out


def conditions(document: dict, names: Directory) -> list[Section]:
    subject = _subject(document)
    if APPROVAL in types_of(document):
        return approval_conditions(subject, names)
    if DELEGATION in types_of(document):
        return delegation_conditions(subject, names)
    return generic_conditions(subject, names)


# ---- what was verified ------------------------------------------------------------------------------------------

_SIGNATURE = ("proof.", "signature.", "jose.", "jws.", "key.", "did.", "dataintegrity.")
_WINDOW = ("credential.expired", "credential.not_yet_valid")


def _status(problems) -> str | None:
    codes = {p.code for p in problems}
    for code, status in (("status.revoked", "revoked"), ("status.suspended", "suspended")):
        if code in codes:
            return status
    if any(c.startswith("status.") for c in codes):
        return "unknown"
    return None


def _held(wallet, digest: str):
    """The held credential with this digest (one indexed query, not a scan of the wallet)."""
    return wallet._by_digest(digest)


def _delegated_to(d: DelegatedAuthority, names: Directory) -> str:
    """Whom a delegation delegates to, its role and for whom, each said once: "Jane Smith (Information Asset Owner
    for NHS Fife)" when a believed delegation names the delegate so (that label already says the role and the
    controller), otherwise "<delegate> as <role> on behalf of <controller>"."""
    role = words.role_name(d.role)
    controller = str(names.name(d.controller))
    who = names.name(d.delegate)
    named = names.delegate(d.delegate) if d.delegate.startswith("did:") else None
    if named is not None and who.label == named.label:
        if d.name and delegate_label(d.name, d.role, controller) in named.label.split("; "):
            return named.label
        # named by another delegation: this one's own role and controller still said, once, plainly
        return f"{named.label}, here as {role} on behalf of {controller}"
    return f"{who} as {role} on behalf of {controller}"


def _authority(wallet, verifier, document: dict, model: DataSharingApproval, names: Directory) -> list[Line]:
    from verifier.scope import approval_within, delegation_within
    issuer = document.get("issuer")
    issuer = issuer.get("id") if isinstance(issuer, dict) else issuer
    if issuer == model.discloser:
        return [Line("ok", "Authority", f"Issued by the controller itself, {names.name(issuer)}: no delegation is "
                     "needed.")]
    refs = [r.to_json() for r in model.delegation_chain]
    if not refs:
        return [Line("bad", "Authority", f"Issued by {names.name(issuer)}, which is not the controller "
                     f"{names.name(model.discloser)}, and it names no delegation from the controller.")]
    lines: list[Line] = []
    parent: tuple[Any, DelegatedAuthority] | None = None
    ok = True
    for depth, ref in enumerate(refs):
        record = _held(wallet, ref["digest"])
        if record is None:
            lines.append(Line("bad", f"Delegation {depth + 1}", f"{ref['id']} (digest {ref['digest']}) is not held "
                              "here, so this link of the authority chain cannot be checked."))
            ok = False
            break
        try:
            d = DelegatedAuthority.from_credential(record.document)
        except CeadError as exc:
            lines.append(Line("bad", f"Delegation {depth + 1}", f"{ref['id']} is held but is not a delegation this "
                              f"node can read: {exc.message}"))
            ok = False
            break
        result = verifier.verify_credential(record.credential)
        problems: list[str] = [p.message for p in result.problems]
        expected = model.discloser if parent is None else parent[1].delegate
        if record.issuer != expected:
            problems.append(f"it was issued by {names.name(record.issuer)}, not by {names.name(expected)}.")
        if parent is None and d.controller != model.discloser:
            problems.append(f"it acts for {names.name(d.controller)}, not for the controller.")
        if parent is not None:
            if d.parent != {"id": parent[0].credential_id, "digest": parent[0].digest}:
                problems.append("it does not name the delegation above it (with its digest) as its parent.")
            problems += [f"wider than its parent: {v.dimension}: {v.message}" for v in
                         delegation_within(d, parent[1])]
        status = _status(result.problems) or ("active" if result.verified else "not valid")
        bad_sig = any(p.code.startswith(_SIGNATURE) for p in result.problems)
        text = _sentence(f"{names.name(record.issuer)} delegated approval authority to {_delegated_to(d, names)}: "
                         f"signature {'NOT valid' if bad_sig else 'checked'}, status {status}.")
        lines.append(Line("ok" if not problems else "bad", f"Delegation {depth + 1}", text, problems))
        ok = ok and not problems
        parent = (record, d)
    if parent is not None and len(lines) == len(refs):
        last = parent[1]
        problems = []
        if last.delegate != issuer:
            problems.append(f"The chain ends at {names.name(last.delegate)}, but the approval was issued by "
                            f"{names.name(issuer)}.")
        if "ApproveDisclosure" not in last.allowed_actions:
            problems.append("The last delegation does not allow approving disclosures.")
        problems += [f"{v.dimension}: {v.message}" for v in approval_within(model, last)]
        lines.append(Line("ok" if not problems else "bad", "Within the delegation",
                          "The approval grants no more than the last delegation allows (every dimension: datasets, "
                          "purposes, recipients, protocol, retention, row limits, validity...)." if not problems else
                          "The approval grants more than the delegation allows.", problems))
        ok = ok and not problems
    count = "one delegation" if len(refs) == 1 else f"a chain of {len(refs)} delegations"
    head = Line("ok" if ok else "bad", "Authority", f"Issued by {names.name(issuer)} under {count} "
                f"from the controller, {names.name(model.discloser)}"
                + (", each checked below." if ok else "; a link fails (below)."))
    return [head, *lines]


def _sentence(text: str) -> str:
    """A line that begins with a name: its first letter a capital ("The organisation at ...", never "the ...")."""
    return text[:1].upper() + text[1:]



def _certifications(wallet, verifier, model: DataSharingApproval, names: Directory) -> list[Line]:
    held = [r for r in wallet.search(type=CERTIFICATION) if r.subject in model.recipients]
    required = [vocab.expand(x) for x in model.recipient_requirements]
    lines = []
    met = set()
    for r in held:
        s = _subject(r.document)
        result = verifier.verify_credential(r.credential)
        status = _status(result.problems) or ("active" if result.verified else "not valid")
        scheme = vocab.expand(str(s.get("scheme")))
        if result.verified:
            met.add(scheme)
        lines.append(Line("ok" if result.verified else "warn", "Certification",
                          _sentence(f"{names.name(r.subject)} holds {names.name(scheme)} (certificate "
                          f"{s.get('certificateNumber')}, issued by {names.name(r.issuer)}, until "
                          f"{_day(s.get('expiryDate'))}): status {status}."
                          + ("" if result.verified else " A gateway refuses transfers that rely on it.")),
                          [f"{p.message} ({p.code})" for p in result.problems]))
    for scheme in required:
        if scheme not in met:
            lines.append(Line("warn", "Certification required", f"The approval requires {names.name(scheme)}; "
                              "no valid certification of the recipient for it is held here (a gateway asks the "
                              "recipient to present it with each transfer)."))
    if not lines:
        lines.append(Line("ok", "Certifications", "The approval requires no certification of the recipient."))
    return lines


def _rules(model: DataSharingApproval, issuer: str | None) -> list[Line]:
    try:
        from verifier import lawful
    except ImportError:
        return []
    try:
        results = lawful.evaluate(model, issuer=issuer)
    except CeadError as exc:       # the rulebook could not run: said, never hidden, never a crash of the page
        return [Line("warn", "Lawful-basis rules", f"The rulebook could not be run: {exc.message}")]
    unmet = [r for r in results if r.failed]
    if not unmet:
        return [Line("ok", "Lawful-basis rules", f"Every rule of the rulebook that applies is met "
                     f"({len(results)} checked).")]
    return [Line("bad", f"Lawful-basis rule: {r.title}", f"{r.finding} What would satisfy it: {r.satisfy}",
                 [f"The law: {words.law_words(r.citation)} ({r.citation})."]) for r in unmet]


def verification(wallet, record, names: Directory, *, fresh: bool = True) -> Report:
    """Verify ``record`` now and say what was checked. ``fresh``: read status lists afresh (not the cache)."""
    verifier = wallet.fresh_status_verifier() if fresh else wallet.verifier
    result = verifier.verify_credential(record.credential)
    document = record.document
    codes = [p.code for p in result.problems]
    lines: list[Line] = []
    sig = [p for p in result.problems if p.code.startswith(_SIGNATURE)]
    issuer = result.issuer or record.issuer
    # the key (a did:key is some 100 characters without a break) and the signature format are for whoever checks
    # by other means: behind the line's disclosure, not in its sentence
    lines.append(Line("bad" if sig else "ok", "Signature",
                      f"The signature of {names.name(issuer)} checks out against its current key"
                      + (f", co-signed by {_list([str(names.name(c)) for c in result.co_signers])}."
                         if result.co_signers else ".")
                      if not sig else "The signature does not verify: the credential may have been altered.",
                      [p.message for p in sig],
                      ids=[result.verification_method or f"{issuer} (its DID document)",
                           "Data Integrity proof" if record.format == "ldp" else "JOSE (vc+jwt)"] if not sig else []))
    window = [p for p in result.problems if p.code in _WINDOW]
    lines.append(Line("bad" if window else "ok", "Validity period", window[0].message if window else
                      "Within its validity period now" + (f" (until {_day(document.get('validUntil'))})."
                                                          if document.get("validUntil") else ".")))
    status = _status(result.problems)
    has_status = bool(document.get("credentialStatus"))
    if status is None:
        status = "active" if has_status else "none"
    status_text = {
        "active": "Read now from the issuer's status list: not revoked and not suspended.",
        "revoked": "REVOKED by its issuer (read now from the status list): it no longer allows anything.",
        "suspended": "SUSPENDED by its issuer (read now from the status list): it allows nothing while suspended.",
        "unknown": "The issuer's status list could not be read now, so whether it was revoked is not known.",
        "none": "It has no status list entry: its issuer cannot revoke it, so only the validity period applies.",
    }[status]
    lines.append(Line({"active": "ok", "none": "warn", "unknown": "warn"}.get(status, "bad"), "Current status",
                      status_text, [f"{p.message} ({p.code})" for p in result.problems
                                    if p.code.startswith("status.")]))
    others = [p for p in result.problems if p not in sig and p not in window and not p.code.startswith("status.")]
    if others:
        lines.append(Line("bad", "Other checks", "The credential fails other checks:", [
            f"{p.message} ({p.code})" for p in others]))
    if APPROVAL in types_of(document):
        try:
            model = DataSharingApproval.from_credential(document)
        except Exception as exc:  # noqa: BLE001 (shown: an approval this version cannot read is not relied on)
            lines.append(Line("bad", "Approval", "This approval does not fit the approval schema this node knows, "
                              "so its authority and rules were not checked.", [str(getattr(exc, "message", exc))]))
        else:
            lines += _authority(wallet, verifier, document, model, names)
            lines += _certifications(wallet, verifier, model, names)
            lines += _rules(model, issuer)
    ok = result.verified and not any(line.state == "bad" for line in lines)
    kind = "approval" if APPROVAL in types_of(document) else "credential"
    if status in ("revoked", "suspended"):
        headline = (f"This approval is {status.upper()}: it does not allow any sharing now." if kind == "approval"
                    else f"This credential is {status.upper()} by its issuer: it cannot be relied on now.")
    elif ok:
        headline = f"This {kind} is valid now: every check below passed."
    else:
        headline = f"This {kind} is NOT valid now: see the checks marked as failed below."
    return Report(ok, status, headline, lines, moment_words(datetime.now(timezone.utc)))

