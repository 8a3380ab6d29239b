"""Plain words for what people read on every page and printed document (the issuer's and the wallet's): dates as
GOV.UK style writes them and credential kinds by name. One place, so a date reads the same on the register, the
desk, the wallet and a board pack; roles a delegation names, by name."""
from __future__ import annotations

import re
from datetime import date, datetime, timezone

KIND_NAMES = {"DataSharingApprovalCredential": "Data-sharing approval",
              "DelegatedAuthorityCredential": "Delegation of approval authority",
              "OrganisationCertificationCredential": "Organisation certification"}


# the roles a delegation names (``DelegatedAuthority.role``) that Cead knows, in plain words
ROLE_NAMES = {"InformationAssetOwner": "Information Asset Owner",
              "DataProtectionOfficer": "Data Protection Officer",
              "SeniorInformationRiskOwner": "Senior Information Risk Owner",
              "CaldicottGuardian": "Caldicott Guardian"}


# the choices of the approval and standing-approval forms (the values stay the vocabulary's terms)
SENSITIVITY_NAMES = {"Anonymised": "Anonymised", "Pseudonymised": "Pseudonymised", "Personal": "Personal data",
                     "SpecialCategory": "Special category data", "CriminalOffence": "Criminal offence data"}
DPIA_RISK_NAMES = {"LowRisk": "Low risk", "MediumRisk": "Medium risk", "HighRisk": "High risk"}


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def sensitivity_words(value) -> str:
    """A sensitivity as a sentence reads it: ``SpecialCategory`` -> ``special category data``; another value as it
    is written."""
    return _lower_first(SENSITIVITY_NAMES[value]) if value in SENSITIVITY_NAMES else str(value)


def dpia_risk_words(value) -> str:
    """A DPIA's residual risk as a sentence reads it: ``LowRisk`` -> ``low risk``; another value as it is written."""
    return _lower_first(DPIA_RISK_NAMES[value]) if value in DPIA_RISK_NAMES else str(value)


def role_name(role: str) -> str:
    """``InformationAssetOwner`` -> ``Information Asset Owner``; another role written as one CamelCase word is
    spaced out (``HeadOfAnalysis`` -> ``Head Of Analysis``), anything else is shown as it is written."""
    if role in ROLE_NAMES:
        return ROLE_NAMES[role]
    if re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", role):
        return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", role)
    return role


def kind_name(type_name: str) -> str:
    """``DataSharingApprovalCredential`` -> ``Data-sharing approval``; another type as it is written."""
    return KIND_NAMES.get(type_name, type_name)


def day_words(value: date | datetime) -> str:
    """``3 December 2026`` (no leading zero, as GOV.UK style writes dates)."""
    return f"{value.day} {value.strftime('%B %Y')}"


def moment_words(value: datetime | str | None, *, seconds: bool = False) -> str:
    """``3 December 2026, 14:54 UTC`` (``seconds``: ``14:54:08 UTC``, where the order of events matters, as in an
    audit; a naive time is taken as UTC; an ISO 8601 string is read first, and one that is no date is shown as it
    is); "" for none."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    return f"{day_words(value)}, {value.strftime('%H:%M:%S' if seconds else '%H:%M')} UTC"



# what a credential's status badge says (the register, the wallet, the approver's desk): the status list's word for
# it, except that a credential past its validUntil reads "expired" (no status list says so, and the register's and
# the wallet's stored status stay "active"), one not yet in force "not yet in force", one with no status list or an
# active one ``in_force`` ("valid"; on the desk, a request's approval in force reads "approved")
STATUS_WORDS = {"revoked": "revoked", "suspended": "suspended", "unknown": "status not known"}
# the colour of each (the design system's tags: macro ``tag``; the older ``.badge`` classes: ``STATUS_BADGE``)
STATUS_BADGE = {"valid": "ok", "approved": "ok", "in force": "ok", "active": "active", "suspended": "suspended",
                "revoked": "revoked", "expired": "revoked", "status not known": "warn", "not yet in force": ""}


def _instant(value: datetime | str | None) -> datetime | None:
    if isinstance(value, str) and value:
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)



def in_force_window(document: dict | None) -> tuple[datetime | None, datetime | None]:
    """When a credential is in force, ``(from, until)``: its ``validFrom``/``validUntil`` narrowed by the
    ``notBefore``/``notAfter`` its subject states (an approval's) or its scope states (a delegation's), which a
    gateway checks as it checks validity; None where nothing bounds it."""
    document = document if isinstance(document, dict) else {}
    subject = document.get("credentialSubject")
    subject = subject if isinstance(subject, dict) else {}
    scope = subject.get("scope") if isinstance(subject.get("scope"), dict) else {}
    starts = [_instant(v) for v in (document.get("validFrom"), subject.get("notBefore"), scope.get("notBefore"))]
    ends = [_instant(v) for v in (document.get("validUntil"), subject.get("notAfter"), scope.get("notAfter"))]
    starts, ends = [v for v in starts if v is not None], [v for v in ends if v is not None]
    return (max(starts) if starts else None), (min(ends) if ends else None)


def status_words(status: str | None, *, valid_until: datetime | str | None = None,
                 valid_from: datetime | str | None = None, now: datetime | None = None,
                 in_force: str = "valid") -> str:
    """A credential's standing in one or two plain words, as a badge shows it: ``revoked`` (final, whatever else
    holds), ``expired`` (past ``valid_until``), ``suspended``, ``not yet in force`` (before ``valid_from``),
    ``status not known`` (its status list could not be read), otherwise ``in_force``. ``status`` is the register's
    or the wallet's (``active``, ``suspended``, ``revoked``, ``none``: no status list, ``unknown``)."""
    if status == "revoked":
        return STATUS_WORDS[status]
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    until, since = _instant(valid_until), _instant(valid_from)
    if until is not None and until <= now:
        return "expired"
    if status in STATUS_WORDS:
        return STATUS_WORDS[status]
    if since is not None and since > now:
        return "not yet in force"
    return in_force


# the Acts the rulebook cites (legislation.gov.uk paths), by the names people use for them
ACT_NAMES = {"eur/2016/679": "UK GDPR", "ukpga/2018/12": "Data Protection Act 2018",
             "ukpga/2017/30": "Digital Economy Act 2017"}
_PROVISIONS = {"article": "Article", "section": "section", "schedule": "Schedule", "paragraph": "paragraph",
               "part": "Part", "chapter": "Chapter", "regulation": "regulation"}
_LEGISLATION = "https://www.legislation.gov.uk/"


def law_words(citation: str) -> str:
    """A legislation.gov.uk citation as people write it: ``.../eur/2016/679/article/6/1/f`` is "UK GDPR Article
    6(1)(f)", ``.../ukpga/2018/12/section/36/4`` "Data Protection Act 2018 section 36(4)", ``.../schedule/19/
    paragraph/44`` "... Schedule 19 paragraph 44". Anything else (another site, an Act not named here, a path it
    cannot read) is given back as it is: never a guess."""
    if not isinstance(citation, str) or not citation.startswith(_LEGISLATION):
        return citation if isinstance(citation, str) else str(citation)
    parts = [p for p in citation[len(_LEGISLATION):].split("/") if p]
    act = ACT_NAMES.get("/".join(parts[:3]))
    if act is None:
        return citation
    words, rest = [act], parts[3:]
    while rest:
        kind = _PROVISIONS.get(rest[0].lower())
        if kind is None or len(rest) < 2:
            return citation
        words.append(f"{kind} {rest[1]}")
        rest = rest[2:]
        while rest and rest[0].lower() not in _PROVISIONS:
            words[-1] += f"({rest.pop(0)})"
    return " ".join(words)
