"""Credential offers: a person's wallet collects a credential this node signed, over OpenID for Verifiable
Credential Issuance 1.0 (OID4VCI), pre-authorised code flow.

The node never signs anything new here: the credential (typically a DPO's delegation to an Information Asset Owner)
was issued through the ordinary path, with its guard rail and status entry, and the offer is only a way to hand it
over. So the one thing checked at pick-up is that the wallet controls the DID the credential was issued to.

1. ``make_offer(node, credential)``: the credential must be in this node's register with the same digest. A
   single-use pre-authorised code (and, on request, a transaction code the person receives by another channel) is
   stored hashed, valid ``OFFER_TTL``; the offer is ``openid-credential-offer://?credential_offer=<JSON>`` and a QR
   code of it.
2. The wallet reads ``/.well-known/openid-credential-issuer`` and ``/.well-known/oauth-authorization-server``.
3. ``POST /oid4vci/token`` (form: ``grant_type=urn:ietf:params:oauth:grant-type:pre-authorized_code``,
   ``pre-authorized_code``, ``tx_code``): the code is spent and an access token (stored hashed) is returned.
4. ``POST /oid4vci/nonce``: a ``c_nonce``. Nonces are stateless (an HMAC under a key derived from the node's
   Ed25519 key, whose signatures are deterministic), so every worker process and a restarted node accept them.
5. ``POST /oid4vci/credential`` with the bearer token and ``{"credential_configuration_id", "proofs": {"jwt":
   [proof]}}``: the key proof (``typ`` ``openid4vci-proof+jwt``, ``kid`` a DID URL under the holder's
   ``authentication``, ``aud`` this issuer, ``nonce`` a current ``c_nonce``, ``iat`` recent) must verify and its
   DID must be the credential's subject. The answer is ``{"credentials": [{"credential": ...}]}``; the offer is then
   spent.

Errors are OAuth/OID4VCI error responses (``{"error", "error_description"}``: ``invalid_grant``,
``invalid_token``, ``invalid_proof``, ``invalid_nonce``, ``invalid_credential_request``,
``unknown_credential_configuration``), never a stack trace.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import struct
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Optional
from urllib.parse import quote

from flask import Blueprint, Response, request
from sqlmodel import Field, SQLModel

from schemas.models import credential_digest
from schemas.values import strict_json, types_of
from verifier.did import Resolver, split_did_url
from verifier.jose import verify_jwt
from verifier.keys import ED25519, b64url, b64url_decode
from verifier.results import CeadError

from . import db

PRE_AUTHORIZED = "urn:ietf:params:oauth:grant-type:pre-authorized_code"
PROOF_TYP = "openid4vci-proof+jwt"
OFFER_TTL = timedelta(minutes=10)
TOKEN_TTL = timedelta(minutes=5)
NONCE_TTL = 300          # seconds a c_nonce stays good
PROOF_MAX_AGE = 300      # seconds: a key proof's iat may be this old (and this far ahead, for clock skew)
MAX_FORM = 8 * 1024
# credential formats (OID4VCI 1.0 Appendix A): Data Integrity -> ldp_vc, VC-JOSE-COSE JWT -> jwt_vc_json
FORMATS = {"ldp_vc": "ldp_vc", "vc+jwt": "jwt_vc_json"}
CEAD_TYPES = ("DelegatedAuthorityCredential", "OrganisationCertificationCredential", "DataSharingApprovalCredential")


class CredentialOffer(SQLModel, table=True):
    """An offer of one signed credential: codes and tokens stored as SHA-256 hashes only."""
    __tablename__ = "issuer_credential_offer"
    id: Optional[int] = Field(default=None, primary_key=True)
    code_hash: str = Field(unique=True)
    tx_code_hash: Optional[str] = None
    credential_id: str = Field(index=True)
    credential: str                          # the signed credential as issued (JSON, or the compact JWT)
    configuration_id: str
    subject: str                             # the DID the credential was issued to: the wallet must prove it
    created: str = Field(default_factory=db.utcnow)
    expires: str
    token_hash: Optional[str] = Field(default=None, unique=True)
    token_expires: Optional[str] = None
    redeemed: Optional[str] = None           # when the credential was handed over (the offer is then spent)
    failed_tx: int = 0                       # wrong transaction codes so far (the offer dies after MAX_TX_TRIES)


MAX_TX_TRIES = 3


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _past(stamp: str | None, now: datetime) -> bool:
    return stamp is None or datetime.fromisoformat(stamp.replace("Z", "+00:00")) <= now


class OfferError(CeadError):
    """An OID4VCI error response: ``error`` is the protocol's code, ``code`` Cead's (``offer.*``)."""

    def __init__(self, error: str, message: str, status: int = 400, **detail: Any):
        super().__init__(f"offer.{error}", message, **detail)
        self.error, self.status = error, status


# ---- configurations and metadata ---------------------------------------------------------------------------------

def configuration_id(credential: dict | str) -> str:
    """``<CeadType>_<format>``, e.g. ``DelegatedAuthorityCredential_jwt_vc_json``."""
    from verifier.credential import unwrap_enveloped
    from verifier.jose import to_document, unverified_claims
    if isinstance(credential, str):
        document, fmt = to_document(unverified_claims(credential), "vc"), "jwt_vc_json"
    else:
        inner = unwrap_enveloped(credential)
        if isinstance(inner, str):
            document, fmt = to_document(unverified_claims(inner), "vc"), "jwt_vc_json"
        else:
            document, fmt = credential, "ldp_vc"
    kinds = [t for t in types_of(document) if t in CEAD_TYPES] or ["VerifiableCredential"]
    return f"{kinds[0]}_{fmt}"


def issuer_metadata(node) -> dict:
    """Credential Issuer Metadata (OID4VCI 1.0 s.12.2): what this node offers, in which formats."""
    base = node.public_url.rstrip("/")
    algs = sorted({"EdDSA", "ES256", "ES384", "ES512"})
    configurations = {}
    for kind in (*CEAD_TYPES, "VerifiableCredential"):
        types = ["VerifiableCredential"] + ([kind] if kind != "VerifiableCredential" else [])
        for fmt in ("ldp_vc", "jwt_vc_json"):
            config = {"format": fmt, "cryptographic_binding_methods_supported": ["did:key", "did:web", "did:jwk"],
                      "proof_types_supported": {"jwt": {"proof_signing_alg_values_supported": algs}},
                      "credential_definition": {"type": types}}
            if fmt == "ldp_vc":
                config["credential_definition"]["@context"] = ["https://www.w3.org/ns/credentials/v2"]
                config["credential_signing_alg_values_supported"] = ["eddsa-rdfc-2022", "eddsa-jcs-2022"]
            else:
                config["credential_signing_alg_values_supported"] = algs
            configurations[f"{kind}_{fmt}"] = config
    return {"credential_issuer": base, "credential_endpoint": f"{base}/oid4vci/credential",
            "nonce_endpoint": f"{base}/oid4vci/nonce",
            "display": [{"name": node.name, "locale": "en-GB"}],
            "credential_configurations_supported": configurations}


def authorization_server_metadata(node) -> dict:
    """OAuth 2.0 Authorization Server Metadata (RFC 8414) for the pre-authorised code grant only."""
    base = node.public_url.rstrip("/")
    return {"issuer": base, "token_endpoint": f"{base}/oid4vci/token",
            "grant_types_supported": [PRE_AUTHORIZED], "pre-authorized_grant_anonymous_access_supported": True,
            "response_types_supported": []}


# ---- making an offer ---------------------------------------------------------------------------------------------

def make_offer(node, credential: dict | str, *, tx_code: bool = False) -> dict:
    """Offer ``credential`` (as this node signed it) to its subject's wallet. Returns ``{"offer", "uri",
    "tx_code"?, "expires"}``: give the URI (or its QR code) to the person, and the transaction code by another
    channel (a phone call, a letter)."""
    from verifier.credential import unwrap_enveloped
    from verifier.jose import to_document, unverified_claims
    inner = unwrap_enveloped(credential) if isinstance(credential, dict) else credential
    if isinstance(inner, str):
        try:
            document = to_document(unverified_claims(inner), "vc")
        except CeadError:
            raise CeadError("offer.not_issued", "The credential to offer is not a credential.") from None
    elif isinstance(inner, dict):
        document = inner
    else:
        raise CeadError("offer.not_issued", "The credential to offer must be a JSON credential or a compact JWT.")
    cid = document.get("id")
    with node.session() as s:
        row = s.get(db.IssuedCredential, cid) if isinstance(cid, str) else None
    if row is None or row.digest != credential_digest(inner):
        raise CeadError("offer.not_issued", f"{str(cid)[:120]!r} is not a credential this node issued as given "
                        "(only what is in this node's register, byte for byte, can be offered).", credential=cid)
    if row.status != "active":
        raise CeadError("offer.not_issued", f"{cid} is {row.status}; a {row.status} credential is not offered.",
                        credential=cid)
    subject = document.get("credentialSubject")
    holder = subject.get("id") if isinstance(subject, dict) else None
    if not (isinstance(holder, str) and holder.startswith("did:")):
        raise CeadError("offer.no_holder", f"{cid} has no subject DID to bind it to, so a wallet could not prove it "
                        "is the holder; deliver it to the organisation's inbox instead (cead deliver).")
    code = secrets.token_urlsafe(32)
    pin = f"{secrets.randbelow(10 ** 6):06d}" if tx_code else None
    now = _now()
    config = configuration_id(inner)
    stored = inner if isinstance(inner, str) else json.dumps(inner, separators=(",", ":"), ensure_ascii=False)
    with node.session() as s:
        s.add(CredentialOffer(code_hash=_hash(code), tx_code_hash=_hash(pin) if pin else None, credential_id=cid,
                              credential=stored, configuration_id=config, subject=holder,
                              expires=_stamp(now + OFFER_TTL)))
        s.commit()
    grant: dict[str, Any] = {"pre-authorized_code": code}
    if pin:
        grant["tx_code"] = {"input_mode": "numeric", "length": 6,
                            "description": "The six-digit code you were given by the person who issued this."}
    offer = {"credential_issuer": node.public_url.rstrip("/"), "credential_configuration_ids": [config],
             "grants": {PRE_AUTHORIZED: grant}}
    uri = "openid-credential-offer://?credential_offer=" + quote(json.dumps(offer, separators=(",", ":")), safe="")
    result = {"offer": offer, "uri": uri, "expires": _stamp(now + OFFER_TTL), "credential": cid}
    if pin:
        result["tx_code"] = pin
    return result


# ---- nonces ------------------------------------------------------------------------------------------------------

def _nonce_key(node) -> bytes:
    """A MAC key the same in every process of this node and across restarts: Ed25519 signatures are deterministic,
    so the node's signature over a fixed label is a secret only the key holder can compute."""
    return hashlib.sha256(node.signing_key(ED25519).sign(b"cead oid4vci c_nonce key v1")).digest()


def new_nonce(node, now: float | None = None) -> str:
    body = struct.pack(">Q", int((now or time.time()) + NONCE_TTL)) + secrets.token_bytes(16)
    return b64url(body + hmac.new(_nonce_key(node), body, hashlib.sha256).digest()[:16])


def check_nonce(node, nonce: Any, now: float | None = None) -> None:
    try:
        raw = b64url_decode(nonce) if isinstance(nonce, str) else b""
    except CeadError:
        raw = b""
    body, tag = raw[:24], raw[24:]
    if len(raw) != 40 or not hmac.compare_digest(tag, hmac.new(_nonce_key(node), body, hashlib.sha256).digest()[:16]):
        raise OfferError("invalid_nonce", "The key proof's nonce is not one this issuer gave; ask the nonce "
                         "endpoint for a new c_nonce.", c_nonce=new_nonce(node))
    if struct.unpack(">Q", body[:8])[0] < (now or time.time()):
        raise OfferError("invalid_nonce", "The key proof's nonce has expired; ask the nonce endpoint for a new one.",
                         c_nonce=new_nonce(node))


# ---- the token and credential endpoints --------------------------------------------------------------------------

def redeem_code(node, code: Any, tx_code: Any = None, now: datetime | None = None) -> dict:
    """Spend a pre-authorised code: the token response (RFC 6749 s.5.1)."""
    now = now or _now()
    if not isinstance(code, str) or not code:
        raise OfferError("invalid_request", "The token request needs pre-authorized_code.")
    with node.session() as s:
        from sqlmodel import select
        offer = s.exec(select(CredentialOffer).where(CredentialOffer.code_hash == _hash(code))).first()
        if offer is None or offer.token_hash is not None or offer.redeemed or _past(offer.expires, now):
            raise OfferError("invalid_grant", "This offer code is unknown, already used or expired; ask the issuer "
                             "for a new offer.")
        if offer.tx_code_hash is not None:
            if not isinstance(tx_code, str) or not hmac.compare_digest(_hash(tx_code), offer.tx_code_hash):
                offer.failed_tx += 1
                if offer.failed_tx >= MAX_TX_TRIES:
                    offer.expires = _stamp(now)      # too many guesses: the offer dies
                s.add(offer)
                s.commit()
                raise OfferError("invalid_grant", "The transaction code is wrong" + (
                    "; the offer is now withdrawn, ask the issuer for a new one." if offer.failed_tx >= MAX_TX_TRIES
                    else "."))
        token = secrets.token_urlsafe(32)
        offer.token_hash, offer.token_expires = _hash(token), _stamp(now + TOKEN_TTL)
        s.add(offer)
        s.commit()
    return {"access_token": token, "token_type": "Bearer", "expires_in": int(TOKEN_TTL.total_seconds())}


def _key_proof(node, proof: Any, resolver) -> str:
    """Verify a jwt key proof (OID4VCI 1.0 Appendix F.1); return the holder's DID."""
    if not isinstance(proof, str):
        raise OfferError("invalid_proof", "A jwt key proof must be a compact JWS string.")
    try:
        claims, kid = verify_jwt(proof, resolver, PROOF_TYP, "authentication")
    except CeadError as exc:
        raise OfferError("invalid_proof", f"The key proof does not verify: {exc.code}: {exc.message}",
                         cause=exc.code) from None
    aud = claims.get("aud")
    issuer = node.public_url.rstrip("/")
    if aud != issuer and not (isinstance(aud, list) and issuer in aud):
        raise OfferError("invalid_proof", f"The key proof's aud must be this credential issuer ({issuer}).")
    iat = claims.get("iat")
    if not isinstance(iat, (int, float)) or isinstance(iat, bool) or abs(time.time() - iat) > PROOF_MAX_AGE:
        raise OfferError("invalid_proof", "The key proof's iat is missing or not within five minutes of now.")
    check_nonce(node, claims.get("nonce"))
    return split_did_url(kid)[0]


def hand_over(node, authorization: Any, body: Any, *, resolver=None, now: datetime | None = None) -> dict:
    """The credential endpoint: check the token and the key proof; return the credential response."""
    now = now or _now()
    if not (isinstance(authorization, str) and authorization.startswith("Bearer ")):
        raise OfferError("invalid_token", "The credential request needs Authorization: Bearer <access token>.", 401)
    token = authorization[len("Bearer "):].strip()
    if not isinstance(body, dict):
        raise OfferError("invalid_credential_request", "The credential request must be a JSON object.")
    from sqlmodel import select
    with node.session() as s:
        offer = s.exec(select(CredentialOffer).where(CredentialOffer.token_hash == _hash(token))).first()
        if offer is None or offer.redeemed or _past(offer.token_expires, now):
            raise OfferError("invalid_token", "The access token is unknown, used or expired.", 401)
        config = body.get("credential_configuration_id")
        if config != offer.configuration_id:
            raise OfferError("unknown_credential_configuration", f"This token is for {offer.configuration_id}, "
                             f"not {str(config)[:80]!r}.")
        proofs = body.get("proofs")
        jwts = proofs.get("jwt") if isinstance(proofs, dict) else None
        if not (isinstance(jwts, list) and len(jwts) == 1) or set(proofs) != {"jwt"}:
            raise OfferError("invalid_proof", "Send exactly one key proof as proofs: {\"jwt\": [proof]} (this issuer "
                             "hands over one credential per offer).")
        holder = _key_proof(node, jwts[0], resolver or Resolver(node.fetcher()))
        if holder != offer.subject:
            raise OfferError("invalid_proof", f"The key proof is by {holder}, but the credential was issued to "
                             f"{offer.subject}: only its subject's wallet can collect it.")
        offer.redeemed = _stamp(now)
        s.add(offer)
        s.commit()
        stored = offer.credential
    credential = stored if not stored.startswith("{") else json.loads(stored)
    return {"credentials": [{"credential": credential}]}


def _json(status: int, body: dict, headers: dict | None = None) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json",
                    headers={"Cache-Control": "no-store", **(headers or {})})


def blueprint(node) -> Blueprint:
    """The OID4VCI endpoints of a node (public: the codes, tokens and key proofs are the authorisation)."""
    bp = Blueprint("oid4vci", __name__)

    @bp.errorhandler(OfferError)
    def offer_error(exc: OfferError):
        body = {"error": exc.error, "error_description": exc.message}
        if "c_nonce" in exc.detail:
            body["c_nonce"] = exc.detail["c_nonce"]
        headers = {"WWW-Authenticate": f'Bearer error="{exc.error}"'} if exc.status == 401 else None
        return _json(exc.status, body, headers)

    @bp.get("/.well-known/openid-credential-issuer")
    def metadata():
        return _json(200, issuer_metadata(node))

    @bp.get("/.well-known/oauth-authorization-server")
    def as_metadata():
        return _json(200, authorization_server_metadata(node))

    @bp.post("/oid4vci/token")
    def token():
        if (request.content_length or 0) > MAX_FORM:
            raise OfferError("invalid_request", "The token request is too large.")
        form = request.form
        if form.get("grant_type") != PRE_AUTHORIZED:
            raise OfferError("unsupported_grant_type", f"Only grant_type {PRE_AUTHORIZED} is supported here.")
        return _json(200, redeem_code(node, form.get("pre-authorized_code"), form.get("tx_code")))

    @bp.post("/oid4vci/nonce")
    def nonce():
        return _json(200, {"c_nonce": new_nonce(node)})

    @bp.post("/oid4vci/credential")
    def credential():
        try:
            body = strict_json(request.get_data(cache=False), "the request body") \
                if (request.content_length or 0) <= 64 * 1024 else None
        except (ValueError, UnicodeDecodeError, RecursionError):
            body = None
        return _json(200, hand_over(node, request.headers.get("Authorization"), body))

    return bp
