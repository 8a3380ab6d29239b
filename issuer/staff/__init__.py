"""Staff sign-in for the node's web pages: local accounts with one role each, and an audit log.

- Accounts (``staff_account``): a username, the person's name, a role and an argon2id password hash
  (``argon2-cffi``'s ``PasswordHasher`` defaults; a hash made with older parameters is upgraded at the next sign-in).
  A disabled account cannot sign in.
- Roles (:data:`ROLES`) stand for the scopes a bearer token would have, so the pages check one thing: analysts
  write and send requests; Information Asset Owners (IAO) decide requests and change the status of approvals;
  DPOs also issue delegations and certifications; admins also manage staff accounts.
- OpenID Connect sign-in (:mod:`issuer.staff.oidc`, for example Microsoft Entra ID): an account is created or
  linked at a person's first sign-in (``oidc_issuer`` and ``oidc_subject``), and its role follows the identity
  provider's claim at every sign-in. Such an account has no password here.
- The audit log (``staff_audit``): every action taken on the pages, with who (name and role), when (UTC), what and
  on which item. :func:`record` writes it; :func:`audit_log` reads it newest first; :func:`log_lines` says each
  entry in words for an auditor (the person's full name, the role's label, what they did as a phrase from
  :data:`ACTION_WORDS`, and what it was done on, named where the node can name it), the codes kept beside them.

Tables are made by this package's own Alembic history (``alembic_version_staff``) through :func:`migrate`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, select

from schemas.words import kind_name
from verifier.results import CeadError

from ..db import IssuedCredential
from ..db import migrate as _migrate
from ..db import utcnow

VERSIONS = Path(__file__).parent / "migrations" / "versions"
ROLES: dict[str, dict[str, Any]] = {
    "analyst": {"label": "Analyst", "scopes": ("request:send",)},
    "iao": {"label": "Information Asset Owner", "scopes": ("request:send", "issue:approval", "status:change")},
    "dpo": {"label": "Data Protection Officer", "scopes": ("request:send", "issue:approval", "issue:delegation",
                                                           "issue:certification", "status:change")},
    "admin": {"label": "Administrator", "scopes": ("request:send", "issue:approval", "issue:delegation",
                                                   "issue:certification", "status:change", "staff:manage")},
}
MIN_PASSWORD = 12
_hasher = PasswordHasher()
# verified against when the username is unknown, so that a wrong username takes as long as a wrong password
_DUMMY_HASH = _hasher.hash("not a real password, only for timing")


class StaffAccount(SQLModel, table=True):
    __tablename__ = "staff_account"
    id: Optional[int] = Field(default=None, primary_key=True)
    username: str = Field(index=True, unique=True)
    full_name: str
    role: str
    password_hash: str
    disabled: bool = False
    created: str = Field(default_factory=utcnow)
    oidc_issuer: Optional[str] = None        # set (with oidc_subject) for an account linked to an OpenID Connect
    oidc_subject: Optional[str] = None       # identity (issuer.staff.oidc); None for a local account


class StaffAudit(SQLModel, table=True):
    __tablename__ = "staff_audit"
    id: Optional[int] = Field(default=None, primary_key=True)
    at: str = Field(default_factory=utcnow, index=True)
    who: str
    role: Optional[str] = None
    action: str
    target: Optional[str] = None
    detail: Optional[str] = None


@dataclass(frozen=True)
class Principal:
    """Who is signed in on the pages: a staff account, or a bearer token (``kind`` says which). ``scopes`` is the
    comma-separated list the pages check, as for a token row."""
    id: int
    name: str
    scopes: str
    kind: str = "account"
    role: str | None = None
    full_name: str | None = None

    @property
    def role_label(self) -> str | None:
        return ROLES[self.role]["label"] if self.role in ROLES else None

    def may(self, scope: str) -> bool:
        return scope in self.scopes.split(",")


def migrate(engine) -> None:
    """Create or upgrade the staff tables (the issuer's own first)."""
    _migrate(engine, extra_version_locations=[VERSIONS])


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise CeadError("staff.invalid", f"Unknown role {role!r}; choose one of {', '.join(ROLES)}.", field="role")
    return role


def create_account(engine, username: str, full_name: str, role: str, password: str) -> StaffAccount:
    """A new account; ``staff.invalid`` for a bad field, ``staff.exists`` for a username already taken."""
    username = (username or "").strip().lower()
    if not username or len(username) > 64 or not all(c.isalnum() or c in "._-@" for c in username):
        raise CeadError("staff.invalid", "A username is 1 to 64 letters, digits, dots, dashes, underscores or @.",
                        field="username")
    if not (full_name or "").strip():
        raise CeadError("staff.invalid", "Give the person's full name (shown in the audit log).", field="full_name")
    _check_role(role)
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise CeadError("staff.invalid", f"A password has at least {MIN_PASSWORD} characters.", field="password")
    row = StaffAccount(username=username, full_name=full_name.strip()[:200], role=role,
                       password_hash=_hasher.hash(password))
    try:
        with Session(engine, expire_on_commit=False) as s:
            s.add(row)
            s.commit()
    except IntegrityError:
        raise CeadError("staff.exists", f"There is already an account {username!r}.", field="username") from None
    return row


def authenticate(engine, username: str, password: str) -> Principal:
    """The account's principal, or ``staff.sign_in_failed`` (the same answer for an unknown username, a wrong
    password and a disabled account)."""
    username = (username or "").strip().lower()
    with Session(engine, expire_on_commit=False) as s:
        row = s.exec(select(StaffAccount).where(StaffAccount.username == username)).first()
    stored = row.password_hash if row is not None else _DUMMY_HASH
    try:
        _hasher.verify(stored, password or "")
        ok = row is not None and not row.disabled
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if not ok:
        raise CeadError("staff.sign_in_failed", "The username or password is not right.")
    if _hasher.check_needs_rehash(row.password_hash):
        with Session(engine) as s:
            fresh = s.get(StaffAccount, row.id)
            fresh.password_hash = _hasher.hash(password)
            s.add(fresh)
            s.commit()
    return principal(row)


def principal(row: StaffAccount) -> Principal:
    return Principal(id=row.id, name=row.username, scopes=",".join(ROLES[row.role]["scopes"]), role=row.role,
                     full_name=row.full_name)


def get_account(engine, account_id: int) -> StaffAccount | None:
    with Session(engine, expire_on_commit=False) as s:
        return s.get(StaffAccount, account_id)


def list_accounts(engine) -> list[StaffAccount]:
    with Session(engine, expire_on_commit=False) as s:
        return list(s.exec(select(StaffAccount).order_by(StaffAccount.username)))


def person_words(engine):
    """``person(who, role=None)``: who did something, as the pages say it: a staff account by its full name and
    role ("Ian Owner (Information Asset Owner)", not "ian (iao)"), a standing approval by its name; anyone else
    (a token's name, "cli") as recorded."""
    people = {a.username: a.full_name for a in list_accounts(engine)}

    def person(who: str | None, role: str | None = None) -> str:
        if who and who.startswith("standing:"):
            return f"the standing approval {who.partition(':')[2]}"
        name = people.get(who or "", who or "someone")
        label = ROLES[role]["label"] if role in ROLES else role
        return f"{name} ({label})" if label else name
    return person


def set_disabled(engine, username: str, disabled: bool) -> StaffAccount:
    with Session(engine, expire_on_commit=False) as s:
        row = s.exec(select(StaffAccount).where(StaffAccount.username == username)).first()
        if row is None:
            raise CeadError("staff.not_found", f"There is no account {username!r}.", field="username")
        row.disabled = disabled
        s.add(row)
        s.commit()
        return row


def record(engine, who: str, action: str, *, role: str | None = None, target: str | None = None,
           detail: Any = None) -> None:
    """Append one line to the audit log (who, when, what, on which item)."""
    text = None if detail is None else (detail if isinstance(detail, str) else json.dumps(detail, ensure_ascii=False))
    with Session(engine) as s:
        s.add(StaffAudit(who=who, role=role, action=action, target=target, detail=text))
        s.commit()


def audit_log(engine, limit: int = 200, target: str | None = None) -> list[StaffAudit]:
    with Session(engine, expire_on_commit=False) as s:
        query = select(StaffAudit)
        if target is not None:
            query = query.where(StaffAudit.target == target)
        return list(s.exec(query.order_by(StaffAudit.id.desc()).limit(limit)))


# Every action code written to the audit log (``record`` and the pages' ``audit``, in the issuer's and the wallet's
# pages and ``cead staff``), as a phrase that follows the person's name: "Ida Owner refused a data-sharing request".
# One place: the staff page and ``cead staff log`` read it. A code not here is shown as it is written.
_STATUS = {"revoke": "revoked", "suspend": "suspended", "reinstate": "reinstated"}
ACTION_WORDS: dict[str, str] = {
    # signing in and out (issuer/pages.py, issuer/staff/oidc_pages.py)
    "signed in": "signed in",
    "signed out": "signed out",
    "sign-in refused": "a sign-in with this username was refused (a wrong password, or an unknown or disabled "
                       "account)",
    # staff accounts (issuer/pages.py, issuer/staff/cli.py, issuer/staff/oidc_pages.py)
    "created staff account": "added a staff account",
    "disabled staff account": "disabled a staff account",
    "enabled staff account": "enabled a staff account again",
    "created staff account at first OpenID Connect sign-in":
        "was given a staff account at a first sign-in with the organisation's account",
    "linked staff account at first OpenID Connect sign-in":
        "linked a staff account to the organisation's account at a first sign-in with it",
    "role changed by the sign-in service": "had their role changed by the organisation's sign-in service",
    # the register and issuing (issuer/pages.py)
    **{f"{code} credential": f"{done} a credential" for code, done in _STATUS.items()},
    "issued OrganisationCertificationCredential": "issued an organisation certification",
    "issued DelegatedAuthorityCredential": "issued a delegation of approval authority",
    "issued DataSharingApprovalCredential": "issued a data-sharing approval",
    "issued credential": "issued a credential",
    "issued delegation (guided)": "issued a delegation of approval authority (with the guided form)",
    "delegation refused before signing": "tried to sign a delegation, which was refused before signing",
    # data-sharing requests: sending (wallet/wizard.py) and deciding (wallet/desk_pages.py)
    "sent request": "sent a data-sharing request",
    "request not sent": "tried to send a data-sharing request, which was not sent",
    "approved": "approved a data-sharing request",
    "approval refused before signing": "tried to approve a data-sharing request, which was refused before signing",
    "approval failed": "tried to approve a data-sharing request, and the approval failed",
    "refused": "refused a data-sharing request",
    "asked for changes": "asked for changes to a data-sharing request",
    "answer delivered": "delivered the answer to a data-sharing request",
    "answer not delivered": "could not deliver the answer to a data-sharing request",
    "drafted the data sharing agreement": "drafted the data sharing agreement for a request",
    "renewed approval": "renewed the approval of a data-sharing request",
    **{f"{done} approval": f"{done} the approval of a data-sharing request" for done in _STATUS.values()},
    # standing approvals (wallet/standing_pages.py)
    "signed standing approval": "signed a standing approval",
    "standing approval refused before signing": "tried to sign a standing approval, which was refused before signing",
    **{f"{code} standing approval": f"{done} a standing approval" for code, done in _STATUS.items()},
}
# what a role recorded beside an action is called: a staff role's label, or a bearer token (issuer.pages.audit)
_ROLE_WORDS = {"token": "Access token"}


def action_words(action: str | None) -> str:
    """What an audit log entry's action code says, in words (:data:`ACTION_WORDS`); an unknown code as it is."""
    return ACTION_WORDS.get(action or "", action or "")


def role_words(role: str | None) -> str | None:
    """A role code as people read it: ``iao`` -> ``Information Asset Owner``; an unknown one as it is written."""
    if not role:
        return None
    return ROLES[role]["label"] if role in ROLES else _ROLE_WORDS.get(role, role)


@dataclass(frozen=True)
class LogLine:
    """One audit log entry for an auditor: the entry's own fields (the codes), and the same in words. ``who_name``,
    ``role_label`` and ``target_words`` are None when there is nothing more to say than the code (then the code is
    what is shown)."""
    entry: StaffAudit
    who_name: str | None        # the person's full name (a staff account), "the standing approval X"
    role_label: str | None      # the role's label
    action_words: str           # what they did, a phrase from ACTION_WORDS (or the code itself)
    target_words: str | None    # what it was done on, named: a credential's kind and subject, a request, a person

    def as_dict(self) -> dict:
        """The entry's keys (``at``, ``who``, ``role``, ``action``, ``target``, ``detail``) and the words beside
        them (``who_name``, ``role_label``, ``action_words``, ``target_words``), for ``cead staff log --json``."""
        e = self.entry
        return {"at": e.at, "who": e.who, "role": e.role, "action": e.action, "target": e.target,
                "detail": e.detail, "who_name": self.who_name, "role_label": self.role_label,
                "action_words": self.action_words, "target_words": self.target_words}


_ACCOUNT_ACTIONS = ("staff account", "role changed by the sign-in service")


def _credential_words(row, name: Callable[[str], str | None]) -> str:
    """``Data-sharing approval for Example Council (School meals register)``: the register row's kind, its
    subject by the name the credential states or the node knows, an approval's datasets by name."""
    kind = kind_name(row.types.split(",")[-1])
    subject = row.subject_name or "; ".join(dict.fromkeys(
        n for n in (name(d) for d in (row.subject or "").split()) if n)) or None
    try:
        datasets = [d for d in json.loads(row.datasets or "[]") if isinstance(d, str)]
    except ValueError:
        datasets = []
    shown = ", ".join(name(d) or d for d in datasets)
    return kind + (f" for {subject}" if subject else "") + (f" ({shown})" if shown else "")


def log_lines(engine, entries: list[StaffAudit], *, name: Callable[[str], str | None] | None = None,
              more: Callable[[StaffAudit], str | None] | None = None) -> list[LogLine]:
    """Each entry in words. Who: a staff account's full name (not for a refused sign-in: the username is only what
    someone typed). On: a credential in this node's register by its kind
    and subject (and an approval's datasets), a staff account by the person's full name, anything else by
    ``more(entry)`` (the wallet names its data-sharing requests: the top layer passes it; the issuer never imports
    the wallet), else by the name the node knows for it (a delegate's DID), else not at all (the identifier alone
    is shown). ``name(value)``: the name the node knows for a DID or a dataset's address, or None (the wallet's
    directory when it is mounted)."""
    name = name or (lambda value: None)
    people = {a.username: a.full_name for a in list_accounts(engine)}
    targets = {e.target for e in entries if e.target}
    with Session(engine) as s:
        issued = {row.id: _credential_words(row, name) for row in
                  s.exec(select(IssuedCredential).where(IssuedCredential.id.in_(targets)))} if targets else {}
    out = []
    for e in entries:
        if e.who and e.who.startswith("standing:"):
            who = f"the standing approval {e.who.partition(':')[2]}"
        elif e.action == "sign-in refused":     # what someone typed: not to be read as that person having tried
            who = None
        else:
            who = people.get(e.who or "")
        on = None
        if e.target:
            if e.target in issued:
                on = issued[e.target]
            elif any(a in (e.action or "") for a in _ACCOUNT_ACTIONS) and e.target in people:
                on = people[e.target]
            else:
                on = (more(e) if more is not None else None) or name(e.target)
        out.append(LogLine(e, who, role_words(e.role), action_words(e.action), on))
    return out
