"""Staff sign-in through OpenID Connect (Microsoft Entra ID for M365 organisations; any provider with discovery).

Local accounts stay the embedded default; a node that names a provider in ``config.yaml`` also offers "Sign in with
<provider>" on its sign-in page::

    oidc:
      issuer: https://login.microsoftonline.com/<tenant id>/v2.0     # exactly the discovery document's "issuer"
      client_id: 6f1c...                                           # the app registration's Application (client) ID
      client_secret_env: CEAD_OIDC_CLIENT_SECRET                   # or client_secret_file: /etc/cead/oidc-secret
      role_claim: roles                                            # an ID-token claim: Entra app roles, or groups
      roles: {Cead.Analyst: analyst, Cead.IAO: iao, Cead.DPO: dpo, Cead.Admin: admin}
      button: Sign in with Microsoft                               # optional; the sign-in page's button

The client secret is never kept in ``config.yaml`` nor in the database: an environment variable or a file only the
node's user can read names it, and it is read when a sign-in needs it.

The flow (:func:`begin`, then :func:`finish` at the callback) is the authorisation code flow with PKCE (S256), a
``state`` tied to the browser (a signed, short-lived cookie) and a ``nonce`` bound into the ID token. Authlib's
OAuth 2.0 client makes the authorisation URL and redeems the code; the ID token is then checked here, each check
with its own error code so the page can say what was wrong: signed (``alg`` not ``none``) with a key from the
provider's JWKS (:func:`check_id_token`), ``iss`` the configured issuer, ``aud`` this client, ``exp`` not passed,
``nonce`` the one sent; Authlib's ``CodeIDToken`` rules (``azp``, ``at_hash``, ``auth_time``) run after.

The person's role comes from the mapped claim at every sign-in (the highest of the mapped values; none mapped: the
sign-in is refused). The first sign-in creates an account for the identity (``iss`` + ``sub``), or links an
existing local account of the same username when ``link_local_accounts: true``; later sign-ins find it by identity.
Every sign-in, and every refusal, is written to the staff audit log.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from verifier.results import CeadError

from . import ROLES, StaffAccount

SETTINGS_KEYS = {"issuer", "client_id", "client_secret_env", "client_secret_file", "role_claim", "roles",
                 "username_claim", "name_claim", "button", "scope", "link_local_accounts", "leeway_seconds"}
ROLE_ORDER = ["analyst", "iao", "dpo", "admin"]        # the highest mapped role wins
NO_PASSWORD = "!oidc"                                   # not an argon2 hash: a password sign-in always fails
DISCOVERY_TTL = 3600
_discovered: dict[str, tuple[float, dict]] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Settings:
    issuer: str
    client_id: str
    roles: dict[str, str]
    role_claim: str = "roles"
    client_secret_env: str | None = None
    client_secret_file: str | None = None
    username_claim: str = "preferred_username"
    name_claim: str = "name"
    button: str = "Sign in with your organisation's account"
    scope: str = "openid profile email"
    link_local_accounts: bool = False
    leeway_seconds: int = 60

    def client_secret(self) -> str | None:
        """The client secret, read now from the environment variable or the file (None for a public client)."""
        if self.client_secret_env:
            value = os.environ.get(self.client_secret_env, "").strip()
            if not value:
                raise CeadError("staff.oidc_unavailable", f"The environment variable {self.client_secret_env} "
                                "(config.yaml oidc.client_secret_env) is not set, so the node cannot redeem the "
                                "sign-in; set it where the node runs.")
            return value
        if self.client_secret_file:
            path = Path(self.client_secret_file)
            try:
                if os.name == "posix" and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                    raise CeadError("staff.oidc_unavailable", f"{path} (oidc.client_secret_file) can be read by "
                                    f"others; run chmod 600 {path}.")
                value = path.read_text().strip()
            except OSError as exc:
                raise CeadError("staff.oidc_unavailable", f"Cannot read oidc.client_secret_file {path}: "
                                f"{exc.strerror}.") from None
            if not value:
                raise CeadError("staff.oidc_unavailable", f"{path} (oidc.client_secret_file) is empty.")
            return value
        return None


@dataclass
class Identity:
    """Who the provider says signed in, after every check."""
    issuer: str
    subject: str
    username: str
    name: str
    role: str
    claims: dict = field(default_factory=dict)


def settings(node) -> Settings | None:
    """The ``oidc`` section of ``config.yaml`` (None when absent), checked: ``node.config_invalid`` naming the key."""
    raw = node.config.get("oidc")
    if raw is None:
        return None
    where = "config.yaml oidc"
    if not isinstance(raw, dict):
        raise CeadError("node.config_invalid", f"{where}: a mapping of {', '.join(sorted(SETTINGS_KEYS))}.")
    if "client_secret" in raw:
        raise CeadError("node.config_invalid", f"{where}.client_secret: do not write the client secret into "
                        "config.yaml; name an environment variable (client_secret_env) or a file only the node "
                        "can read (client_secret_file).")
    unknown = set(raw) - SETTINGS_KEYS
    if unknown:
        raise CeadError("node.config_invalid", f"{where}: unknown key(s) {', '.join(sorted(unknown))}; the keys "
                        f"are {', '.join(sorted(SETTINGS_KEYS))}.")
    issuer = raw.get("issuer")
    if not isinstance(issuer, str) or not issuer.startswith("https://"):
        raise CeadError("node.config_invalid", f"{where}.issuer: the provider's issuer URL, starting https:// "
                        "(for Entra ID: https://login.microsoftonline.com/<tenant id>/v2.0).")
    if not isinstance(raw.get("client_id"), str) or not raw["client_id"].strip():
        raise CeadError("node.config_invalid", f"{where}.client_id: the client (application) id registered with "
                        "the provider.")
    if raw.get("client_secret_env") and raw.get("client_secret_file"):
        raise CeadError("node.config_invalid", f"{where}: give client_secret_env or client_secret_file, not both.")
    roles = raw.get("roles")
    if not isinstance(roles, dict) or not roles or not all(isinstance(k, str) and v in ROLES
                                                          for k, v in roles.items()):
        raise CeadError("node.config_invalid", f"{where}.roles: a mapping from values of the role claim to Cead "
                        f"roles ({', '.join(ROLES)}), for example {{Cead.IAO: iao}}.")
    secret_file = raw.get("client_secret_file")
    if secret_file:
        secret_file = str((node.home / Path(str(secret_file)).expanduser()).resolve())
    try:
        leeway = int(raw.get("leeway_seconds", 60))
    except (TypeError, ValueError):
        raise CeadError("node.config_invalid", f"{where}.leeway_seconds: a whole number of seconds.") from None
    return Settings(issuer=issuer,
                    client_id=raw["client_id"].strip(), roles=dict(roles),
                    role_claim=str(raw.get("role_claim") or "roles"),
                    client_secret_env=raw.get("client_secret_env") or None, client_secret_file=secret_file or None,
                    username_claim=str(raw.get("username_claim") or "preferred_username"),
                    name_claim=str(raw.get("name_claim") or "name"),
                    button=str(raw.get("button") or Settings.button), scope=str(raw.get("scope") or Settings.scope),
                    link_local_accounts=bool(raw.get("link_local_accounts", False)),
                    leeway_seconds=max(0, min(leeway, 300)))


# ---- discovery and keys ---------------------------------------------------------------------------------------

def _fetch_json(node, url: str, what: str) -> dict:
    try:
        body = node.fetcher().get(url, accept="application/json").body
        data = json.loads(body)
    except CeadError as exc:
        raise CeadError("staff.oidc_unavailable", f"The sign-in service's {what} could not be read: {exc.message} "
                        "Sign in with a local account meanwhile.") from None
    except ValueError:
        raise CeadError("staff.oidc_unavailable", f"The sign-in service's {what} at {url} is not JSON.") from None
    if not isinstance(data, dict):
        raise CeadError("staff.oidc_unavailable", f"The sign-in service's {what} at {url} is not a JSON object.")
    return data


def discover(node, s: Settings, *, fresh: bool = False) -> dict:
    """The provider's discovery document (kept an hour), checked: its ``issuer`` is exactly the configured one and
    it names the endpoints the code flow needs."""
    with _lock:
        cached = _discovered.get(s.issuer)
    if cached and not fresh and time.monotonic() - cached[0] < DISCOVERY_TTL:
        return cached[1]
    url = s.issuer.rstrip("/") + "/.well-known/openid-configuration"
    doc = _fetch_json(node, url, "discovery document")
    if doc.get("issuer") != s.issuer:
        raise CeadError("staff.oidc_unavailable", f"The discovery document at {url} names the issuer "
                        f"{doc.get('issuer')!r}, not {s.issuer!r}; set oidc.issuer in config.yaml to exactly the "
                        "provider's issuer.")
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(doc.get(key), str) or not doc[key].startswith("https://"):
            raise CeadError("staff.oidc_unavailable", f"The discovery document at {url} has no https {key}.")
    if "code" not in (doc.get("response_types_supported") or ["code"]):
        raise CeadError("staff.oidc_unavailable", "The provider does not offer the authorisation code flow.")
    with _lock:
        _discovered[s.issuer] = (time.monotonic(), doc)
    return doc


def _jwks(node, doc: dict) -> dict:
    return _fetch_json(node, doc["jwks_uri"], "signing keys (JWKS)")


# ---- the flow ---------------------------------------------------------------------------------------------------

def _client(node, s: Settings, doc: dict, redirect_uri: str, with_secret: bool):
    from authlib.integrations.requests_client import OAuth2Session
    secret = s.client_secret() if with_secret else None
    methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    method = "none" if secret is None else ("client_secret_basic" if "client_secret_basic" in methods
                                            else "client_secret_post")
    client = OAuth2Session(s.client_id, secret, scope=s.scope, redirect_uri=redirect_uri,
                           code_challenge_method="S256", token_endpoint_auth_method=method)
    client.verify = node.network.ca_bundle or True
    return node.fetcher().guard(client)   # the token request's connection checked like every other (docs/security.md)


def begin(node, s: Settings, redirect_uri: str, next_path: str) -> tuple[str, dict]:
    """``(the provider's authorisation URL, what the callback needs)``: the latter is kept in a signed cookie."""
    doc = discover(node, s)
    state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
    url, _ = _client(node, s, doc, redirect_uri, with_secret=False).create_authorization_url(
        doc["authorization_endpoint"], state=state, code_verifier=verifier, nonce=nonce)
    return url, {"state": state, "nonce": nonce, "verifier": verifier, "next": next_path, "at": int(time.time())}


def finish(node, s: Settings, pending: dict | None, args: dict, redirect_uri: str) -> Identity:
    """Check the provider's answer against the pending sign-in, redeem the code (with the PKCE verifier) and check
    the ID token; the identity and its Cead role."""
    if args.get("error"):
        said = str(args.get("error_description") or args["error"])[:300]
        raise CeadError("staff.oidc_refused", f"The sign-in service did not sign you in: {said}")
    if not pending or not isinstance(pending.get("state"), str):
        raise CeadError("staff.oidc_state", "This browser has no sign-in in progress here (it may have taken longer "
                        "than 10 minutes, or cookies are blocked). Start again from the sign-in page.")
    if not secrets.compare_digest(str(args.get("state") or ""), pending["state"]):
        raise CeadError("staff.oidc_state", "The answer from the sign-in service does not match the sign-in this "
                        "browser started (state), so it was not accepted. Start again from the sign-in page.")
    code = args.get("code")
    if not code:
        raise CeadError("staff.oidc_refused", "The sign-in service sent no authorisation code.")
    doc = discover(node, s)
    from authlib.common.errors import AuthlibBaseError
    try:
        client = _client(node, s, doc, redirect_uri, with_secret=True)
        node.fetcher().check(doc["token_endpoint"])
        token = client.fetch_token(doc["token_endpoint"], grant_type="authorization_code", code=code,
                                   code_verifier=pending["verifier"], timeout=node.network.timeout)
    except CeadError:
        raise
    except AuthlibBaseError as exc:
        raise CeadError("staff.oidc_token_failed", "The sign-in service would not exchange the code for a token: "
                        f"{exc.error}: {getattr(exc, 'description', '') or ''}".strip()) from None
    except Exception as exc:         # noqa: BLE001 (requests' and TLS errors: said plainly, never a trace)
        raise CeadError("staff.oidc_token_failed", f"The sign-in service's token endpoint could not be reached: "
                        f"{type(exc).__name__}.") from None
    id_token = token.get("id_token") if isinstance(token, dict) else None
    if not isinstance(id_token, str):
        raise CeadError("staff.oidc_token_failed", "The sign-in service answered without an ID token.")
    claims = check_id_token(node, s, doc, id_token, nonce=pending.get("nonce"),
                            access_token=token.get("access_token"))
    return identity(s, claims)


def _b64json(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def check_id_token(node, s: Settings, doc: dict, id_token: str, *, nonce: str | None,
                   access_token: str | None = None, now: float | None = None) -> dict:
    """The ID token's claims once it is signed by the provider, for this client, unexpired and carrying our nonce;
    otherwise the ``staff.oidc_*`` error that names what failed."""
    from joserfc import jwt
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet
    parts = id_token.split(".")
    try:
        header = _b64json(parts[0]) if len(parts) == 3 else None
    except ValueError:
        header = None
    if not isinstance(header, dict):
        raise CeadError("staff.oidc_token_invalid", "The ID token from the sign-in service is not a signed JWT.")
    alg = header.get("alg")
    if not parts[2] or str(alg).lower() == "none":
        raise CeadError("staff.oidc_unsigned", "The ID token from the sign-in service is not signed (alg "
                        f"{alg!r}); an unsigned token proves nothing, so it was refused.")
    allowed = [a for a in (doc.get("id_token_signing_alg_values_supported") or ["RS256"])
               if a != "none" and not str(a).startswith("HS")]
    if alg not in allowed:
        raise CeadError("staff.oidc_signature", f"The ID token is signed with {alg!r}; this node accepts "
                        f"{', '.join(allowed)} from this provider (as its discovery document says).")
    decoded = None
    for attempt in (0, 1):                     # a key not found: fetch the JWKS again once (the provider rotated)
        keys = KeySet.import_key_set(_jwks(node, doc))
        try:
            decoded = jwt.decode(id_token, keys, algorithms=[alg])
            break
        except JoseError as exc:
            if attempt == 0 and header.get("kid") and not any(k.kid == header["kid"] for k in keys.keys):
                continue
            raise CeadError("staff.oidc_signature", "The ID token's signature does not verify with the sign-in "
                            f"service's published keys ({exc.error}); it was refused.") from None
        except ValueError as exc:
            raise CeadError("staff.oidc_signature", f"The ID token could not be checked: {exc}.") from None
    claims = dict(decoded.claims)
    if claims.get("iss") != s.issuer:
        raise CeadError("staff.oidc_issuer", f"The ID token was issued by {claims.get('iss')!r}, not by the "
                        f"configured sign-in service {s.issuer!r}.")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if s.client_id not in audiences:
        raise CeadError("staff.oidc_audience", f"The ID token is meant for {', '.join(map(repr, audiences))}, not for this node (client id "
                        f"{s.client_id!r}); it was refused.")
    now = time.time() if now is None else now
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or now > exp + s.leeway_seconds:
        raise CeadError("staff.oidc_expired", "The ID token has expired"
                        + (f" (at {time.strftime('%H:%M:%S UTC', time.gmtime(exp))})" if isinstance(exp, (int, float))
                           else " (it has no expiry)") + "; sign in again. If this repeats, check the node's clock.")
    iat = claims.get("iat")
    if isinstance(iat, (int, float)) and iat > now + s.leeway_seconds:
        raise CeadError("staff.oidc_expired", "The ID token is dated in the future; check the node's clock.")
    if not nonce or not isinstance(claims.get("nonce"), str) or not secrets.compare_digest(claims["nonce"], nonce):
        raise CeadError("staff.oidc_nonce", "The ID token does not carry the nonce this sign-in sent, so it may be "
                        "replayed from another sign-in; it was refused. Start again from the sign-in page.")
    from authlib.oidc.core import CodeIDToken
    try:
        CodeIDToken(claims, decoded.header, {"iss": {"essential": True, "value": s.issuer}},
                    {"nonce": nonce, "client_id": s.client_id, "access_token": access_token}
                    ).validate(now=int(now), leeway=s.leeway_seconds)
    except JoseError as exc:
        raise CeadError("staff.oidc_token_invalid", f"The ID token failed a check: {exc.error} "
                        f"{getattr(exc, 'claim', '') or exc.description or ''}".strip() + ".") from None
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise CeadError("staff.oidc_token_invalid", "The ID token names no subject (sub).")
    return claims


def identity(s: Settings, claims: dict) -> Identity:
    """The identity and its Cead role from checked claims (``staff.oidc_no_role`` when no value maps)."""
    raw = claims.get(s.role_claim)
    values = [raw] if isinstance(raw, str) else [v for v in raw if isinstance(v, str)] if isinstance(raw, list) \
        else []
    mapped = {s.roles[v] for v in values if v in s.roles}
    name = str(claims.get(s.name_claim) or claims.get(s.username_claim) or claims["sub"])[:200]
    if not mapped:
        wanted = ", ".join(f"{k} ({ROLES[v]['label']})" for k, v in s.roles.items())
        raise CeadError("staff.oidc_no_role", f"{name} signed in with the organisation's sign-in service, but has "
                        f"none of the roles this node uses (claim {s.role_claim!r}: "
                        f"{', '.join(values) if values else 'none'}). Ask your administrator to assign one of: "
                        f"{wanted}.", who=str(claims.get(s.username_claim) or claims["sub"])[:64])
    role = max(mapped, key=ROLE_ORDER.index)
    username = str(claims.get(s.username_claim) or claims.get("email") or claims["sub"]).strip().lower()
    username = "".join(c if c.isalnum() or c in "._-@" else "-" for c in username)[:64]
    return Identity(issuer=claims["iss"], subject=claims["sub"], username=username, name=name, role=role,
                    claims=claims)


def account_for(engine, s: Settings, who: Identity) -> tuple[StaffAccount, str, str | None]:
    """The account for ``who``: found by identity, else a local account of the same username linked (only with
    ``link_local_accounts``), else a new one. Its name and role follow the provider. Returns ``(account, what
    happened: "signed in" | "linked" | "created", its role before if the provider changed it)``."""
    with Session(engine, expire_on_commit=False) as db:
        row = db.exec(select(StaffAccount).where(StaffAccount.oidc_issuer == who.issuer,
                                                 StaffAccount.oidc_subject == who.subject)).first()
        happened = "signed in"
        if row is None:
            same = db.exec(select(StaffAccount).where(StaffAccount.username == who.username)).first()
            if same is not None:
                if not s.link_local_accounts or same.oidc_subject is not None:
                    raise CeadError("staff.oidc_username_taken", f"There is already an account {who.username!r} on "
                                    "this node that is not linked to this sign-in service. An administrator can "
                                    "set oidc.link_local_accounts: true to link it at the next sign-in, or rename "
                                    "it (cead staff).")
                row, happened = same, "linked"
                row.oidc_issuer, row.oidc_subject = who.issuer, who.subject
            else:
                row, happened = StaffAccount(username=who.username, full_name=who.name, role=who.role,
                                             password_hash=NO_PASSWORD, oidc_issuer=who.issuer,
                                             oidc_subject=who.subject), "created"
        if row.disabled:
            raise CeadError("staff.sign_in_failed", "This account is disabled on this node; ask an administrator.")
        before = row.role if row.id is not None and row.role != who.role else None
        row.role, row.full_name = who.role, who.name
        db.add(row)
        try:
            db.commit()
        except IntegrityError:
            raise CeadError("staff.oidc_username_taken", f"The account {who.username!r} was created by another "
                            "sign-in at the same moment; sign in again.") from None
        db.refresh(row)
        return row, happened, before
