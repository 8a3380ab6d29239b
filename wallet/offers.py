"""Collect a credential offered over OpenID for Verifiable Credential Issuance 1.0 (pre-authorised code flow).

``collect(wallet, offer_uri, tx_code=None, fetcher=...)`` reads the offer (``openid-credential-offer://`` with
``credential_offer`` or ``credential_offer_uri``), the issuer's metadata and its authorisation server's, spends the
pre-authorised code at the token endpoint, takes a ``c_nonce``, proves control of the wallet's DID with a key proof
(``openid4vci-proof+jwt`` signed with the wallet's ``authentication`` key) and imports the credential it receives,
which the wallet verifies like any other. Every network step goes through the node's network settings (HTTPS,
its CA bundle, private addresses only when allowed) and never follows a redirect.

Failures are ``CeadError`` with codes ``offer.invalid`` (the offer or metadata is malformed), ``offer.unreachable``
and ``offer.refused`` (the issuer's error response, named), and the wallet's own import codes.
"""
from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from schemas.values import strict_json
from verifier.http import Fetcher, unreachable_reason
from verifier.results import CeadError

PRE_AUTHORIZED = "urn:ietf:params:oauth:grant-type:pre-authorized_code"
SCHEMES = ("openid-credential-offer",)
MAX_URI = 16 * 1024


def _json_object(text: Any, what: str) -> dict:
    try:
        value = strict_json(text, f"the {what}") if isinstance(text, (str, bytes)) else text
    except (ValueError, RecursionError):
        raise CeadError("offer.invalid", f"The {what} is not JSON.") from None
    if not isinstance(value, dict):
        raise CeadError("offer.invalid", f"The {what} must be a JSON object.")
    return value


def parse_offer(uri: str, fetcher: Fetcher) -> dict:
    """The Credential Offer object behind an offer URI (by value, or fetched by reference over HTTPS)."""
    if not isinstance(uri, str) or len(uri) > MAX_URI:
        raise CeadError("offer.invalid", "A credential offer must be an openid-credential-offer:// URI.")
    parts = urlsplit(uri.strip())
    if parts.scheme not in SCHEMES and parts.scheme != "https":
        raise CeadError("offer.invalid", f"Not a credential offer URI (scheme {parts.scheme!r}); it starts "
                        "openid-credential-offer://")
    query = parse_qs(parts.query)
    if "credential_offer" in query and "credential_offer_uri" in query:
        raise CeadError("offer.invalid", "An offer carries credential_offer or credential_offer_uri, not both.")
    if "credential_offer" in query:
        offer = _json_object(query["credential_offer"][0], "credential offer")
    elif "credential_offer_uri" in query:
        offer = _json_object(fetcher.get(query["credential_offer_uri"][0]).body, "credential offer")
    else:
        raise CeadError("offer.invalid", "The offer URI has neither credential_offer nor credential_offer_uri.")
    issuer = offer.get("credential_issuer")
    ids = offer.get("credential_configuration_ids")
    grant = (offer.get("grants") or {}).get(PRE_AUTHORIZED) if isinstance(offer.get("grants"), dict) else None
    if not (isinstance(issuer, str) and issuer.startswith("https://")):
        raise CeadError("offer.invalid", "The offer's credential_issuer must be an https URL.")
    if not (isinstance(ids, list) and ids and all(isinstance(i, str) for i in ids)):
        raise CeadError("offer.invalid", "The offer names no credential_configuration_ids.")
    if not (isinstance(grant, dict) and isinstance(grant.get("pre-authorized_code"), str)):
        raise CeadError("offer.invalid", "This wallet takes pre-authorised code offers only (the offer has no "
                        f"{PRE_AUTHORIZED} grant).")
    return offer


def _metadata(fetcher: Fetcher, issuer: str) -> tuple[dict, dict]:
    meta = _json_object(fetcher.get(issuer.rstrip("/") + "/.well-known/openid-credential-issuer").body,
                        "credential issuer metadata")
    if meta.get("credential_issuer") != issuer.rstrip("/") and meta.get("credential_issuer") != issuer:
        raise CeadError("offer.invalid", "The issuer metadata names another credential_issuer than the offer.")
    servers = meta.get("authorization_servers") or [issuer]
    auth = _json_object(fetcher.get(str(servers[0]).rstrip("/") + "/.well-known/oauth-authorization-server").body,
                        "authorisation server metadata")
    for name, value in (("credential_endpoint", meta.get("credential_endpoint")),
                        ("token_endpoint", auth.get("token_endpoint"))):
        if not (isinstance(value, str) and value.startswith("https://")):
            raise CeadError("offer.invalid", f"The issuer's {name} is missing or not https.")
    return meta, auth


def _post(session: requests.Session, fetcher: Fetcher, url: str, **kwargs) -> dict:
    """POST without following redirects; an OAuth error answer becomes ``offer.refused`` naming it."""
    fetcher.check(url)
    try:
        response = session.post(url, allow_redirects=False, timeout=fetcher.timeout,
                                verify=fetcher.ca_bundle or True, **kwargs)
    except requests.RequestException as exc:
        raise CeadError("offer.unreachable", f"Could not reach {url}: {unreachable_reason(exc)}.") from None
    try:
        body = strict_json(response.content, f"the answer from {url}")
    except (ValueError, RecursionError):
        body = None
    if response.status_code != 200 or not isinstance(body, dict):
        error = body.get("error") if isinstance(body, dict) else None
        text = (body or {}).get("error_description") if isinstance(body, dict) else None
        raise CeadError("offer.refused", f"{url} refused: {error or 'HTTP ' + str(response.status_code)}"
                        + (f": {text}" if text else ""), status=response.status_code, error=error)
    return body


def collect(wallet, offer_uri: str, *, tx_code: str | None = None, fetcher: Fetcher | None = None,
            session: requests.Session | None = None):
    """Run the pre-authorised code flow for ``offer_uri`` and import what arrives; returns the wallet's
    ``ImportResult`` (refused credentials are not stored)."""
    from issuer.signing import sign_jwt
    fetcher = fetcher or Fetcher()
    # the token, nonce and credential endpoints are the issuer's choice: POSTed to with the fetcher's own session,
    # whose connections refuse a non-public peer (DNS rebinding after the check) and ignore environment proxies
    session = session or fetcher.session()
    offer = parse_offer(offer_uri, fetcher)
    issuer = offer["credential_issuer"]
    meta, auth = _metadata(fetcher, issuer)
    configuration = offer["credential_configuration_ids"][0]
    if configuration not in (meta.get("credential_configurations_supported") or {}):
        raise CeadError("offer.invalid", f"The issuer's metadata does not describe {configuration!r}.")
    grant = offer["grants"][PRE_AUTHORIZED]
    form = {"grant_type": PRE_AUTHORIZED, "pre-authorized_code": grant["pre-authorized_code"]}
    if grant.get("tx_code") is not None:
        if not tx_code:
            raise CeadError("offer.tx_code_required", "This offer needs the transaction code you were given "
                            "separately (--tx-code).")
        form["tx_code"] = tx_code
    token = _post(session, fetcher, auth["token_endpoint"], data=form)
    access = token.get("access_token")
    if not isinstance(access, str):
        raise CeadError("offer.invalid", "The token response has no access_token.")
    if isinstance(meta.get("nonce_endpoint"), str):
        nonce = _post(session, fetcher, meta["nonce_endpoint"]).get("c_nonce")
    else:
        nonce = token.get("c_nonce")
    claims = {"aud": issuer, "iat": int(time.time())}
    if nonce is not None:
        claims["nonce"] = nonce
    proof = sign_jwt(claims, wallet.key, wallet.kid, typ="openid4vci-proof+jwt")
    answer = _post(session, fetcher, meta["credential_endpoint"], headers={"Authorization": f"Bearer {access}"},
                   json={"credential_configuration_id": configuration, "proofs": {"jwt": [proof]}})
    items = answer.get("credentials")
    if not (isinstance(items, list) and len(items) == 1 and isinstance(items[0], dict) and "credential" in items[0]):
        raise CeadError("offer.invalid", "The credential response must hold one credential (deferred issuance is "
                        "not supported).")
    return wallet.import_credential(items[0]["credential"], source=issuer)
