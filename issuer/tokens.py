"""Bearer tokens for the issuing API. A token is shown once when created; only its SHA-256 hash is stored."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Iterable

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from verifier.results import CeadError

from . import db

SCOPES = ("issue:certification", "issue:delegation", "issue:approval", "issue:any", "status:change")
PREFIX = "cead_"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_scopes(scopes: str | Iterable[str]) -> list[str]:
    items = [s.strip() for s in (scopes.split(",") if isinstance(scopes, str) else scopes) if s and s.strip()]
    unknown = [s for s in items if s not in SCOPES]
    if unknown or not items:
        raise CeadError("token.scope_invalid",
                        f"Unknown or missing scope(s) {unknown or items!r}; choose from {', '.join(SCOPES)}.")
    return sorted(set(items))


def create_token(engine, name: str, scopes: str | Iterable[str]) -> str:
    """Create a token for caller ``name``; returns the secret (the only time it exists in clear)."""
    if not isinstance(name, str) or not name.strip():
        raise CeadError("token.name_required", "A token needs a name (who the caller is).")
    scope_list = parse_scopes(scopes)
    secret = PREFIX + secrets.token_urlsafe(32)
    try:
        with db.session(engine) as s:
            s.add(db.Token(name=name.strip(), token_hash=_hash(secret), scopes=",".join(scope_list)))
            s.commit()
    except IntegrityError:
        raise CeadError("token.exists", f"A token named {name!r} exists already.") from None
    return secret


def authenticate(engine, authorization: str | None) -> db.Token:
    """The token row for an ``Authorization: Bearer ...`` header; ``CeadError('auth.*')`` otherwise."""
    if not authorization:
        raise CeadError("auth.missing", "This endpoint needs an Authorization: Bearer token.")
    scheme, _, secret = authorization.strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise CeadError("auth.invalid", "The Authorization header must be 'Bearer <token>'.")
    digest = _hash(secret)
    with db.session(engine) as s:
        row = s.exec(select(db.Token).where(db.Token.token_hash == digest)).first()
    if row is None or row.revoked or not hmac.compare_digest(row.token_hash, digest):
        raise CeadError("auth.invalid", "The bearer token is not valid.")
    return row


def require(token: db.Token, scope: str) -> None:
    if scope not in token.scopes.split(","):
        raise CeadError("auth.scope", f"The token {token.name!r} does not carry the scope {scope!r}.",
                        scope=scope)


def list_tokens(engine) -> list[db.Token]:
    with db.session(engine) as s:
        return list(s.exec(select(db.Token).order_by(db.Token.id)))


def revoke_token(engine, name: str) -> None:
    with db.session(engine) as s:
        row = s.exec(select(db.Token).where(db.Token.name == name)).first()
        if row is None:
            raise CeadError("token.not_found", f"No token named {name!r}.")
        row.revoked = True
        s.add(row)
        s.commit()
