"""VC-JOSE-COSE: verify compact JWS credentials (``vc+jwt``) and presentations (``vp+jwt``).

Only EdDSA (Ed25519) and ES256/ES384/ES512 (P-256/P-384/P-521, RFC 7518 s.3.4) are accepted, and the algorithm
must match the key the ``kid`` names. A credential's or presentation's ``kid`` may name the key the ways VC-JOSE-COSE
allows (section 3, "Key Discovery"): a DID URL; an absolute https URL into a controller document
(``verifier.controller``); or, resolved in the document of the ``iss`` claim (a DID or an https URL), a relative
``#fragment``, an RFC 7638 JWK thumbprint (bare or as its RFC 9278 URN) or the ``kid`` of a ``publicKeyJwk``. Other
signed JWTs (``OTHER_TYPES``) still need a DID URL. ``typ`` is a SHOULD: a token without one is accepted when its claim set is a VC 2.0 document of the
expected kind (``@context``, and ``type`` including VerifiableCredential or VerifiablePresentation); a ``typ`` that
is present and names another kind is refused. The VC 1.1 JWT encoding (``vc``/``vp`` claim, ``typ`` "JWT" or
absent, as didkit produces) is accepted too; ``to_document`` maps either form back to a credential or presentation
document.
"""
from __future__ import annotations

import json
import math

from schemas.values import xsd_datetime

from schemas.values import DuplicateMember, strict_json

from .controller import THUMBPRINT_URN, find_by_key_id
from .did import is_url
from .keys import JOSE_ALGS, b64url_decode
from .results import CeadError

ALGORITHMS = frozenset(JOSE_ALGS.values())
TYPES = {"vc+jwt": "vc", "vp+jwt": "vp"}
# Other signed JWTs checked the same way (algorithm, DID-URL kid, key under a purpose), whose typ must be exact:
# OID4VCI key proofs (OpenID for Verifiable Credential Issuance 1.0, Appendix F.1), the signatures of a node's
# event notifications (docs/notifications.md) and a node's signed feed of its decisions (docs/precedents.md).
OTHER_TYPES = ("openid4vci-proof+jwt", "cead-event+jwt", "cead-precedents+jwt")
JWT_CLAIMS = ("iss", "sub", "aud", "exp", "nbf", "iat", "jti", "nonce", "cnf")
MAX_TOKEN = 1024 * 1024
MAX_KID = 2048
MAX_NUMERIC_DATE = 253402300800   # 10000-01-01T00:00:00Z: NumericDate values beyond it are no date at all


def dots(token: str) -> tuple[int, int] | None:
    """Where the two dots of a compact JWS are (``token[:i]``, ``token[i+1:j]``, ``token[j+1:]`` its header,
    payload and signature), or None unless the string has exactly two dots. Found with ``str.find`` (memchr)
    rather than ``split``/``count``, which step through the whole token one character at a time: a presentation
    token is about 15 KB and was scanned three times a decision (docs/performance.md, fifth round)."""
    i = token.find(".")
    if i < 0:
        return None
    j = token.find(".", i + 1)
    if j < 0 or token.find(".", j + 1) >= 0:
        return None
    return i, j


def is_compact(token) -> bool:
    """Whether ``token`` is a string with exactly two dots (the shape of a compact JWS: ``str.count(".") == 2``)."""
    return isinstance(token, str) and dots(token) is not None


def _part(segment: str, what: str) -> dict:
    try:
        value = strict_json(b64url_decode(segment), f"the JWT {what}")
    except DuplicateMember:
        raise
    except (ValueError, RecursionError, CeadError):
        raise CeadError("jose.malformed", f"The JWT {what} is not base64url-encoded JSON.") from None
    if not isinstance(value, dict):
        raise CeadError("jose.malformed", f"The JWT {what} must be a JSON object.")
    return value


_HEADERS: dict[str, dict] = {}   # a header segment -> its JSON object (read only): a function of the segment alone
_HEADER_MEMO_CHARS = 1024


def _header(segment: str) -> dict:
    """The JWT header segment decoded (``_part``), remembered by the exact segment: an issuer's or a holder's
    tokens repeat the same header (alg, kid, typ), and it was base64url-decoded and parsed for every token. Bounded
    (at most 256 segments of at most 1 KiB); a segment that fails is not remembered, so it fails every time."""
    found = _HEADERS.get(segment)
    if found is None:
        found = _part(segment, "header")
        if len(segment) <= _HEADER_MEMO_CHARS:
            if len(_HEADERS) >= 256:
                _HEADERS.clear()
            _HEADERS[segment] = found
    return found


_TYPE_NAMES = {"vc+jwt": "VerifiableCredential", "vp+jwt": "VerifiablePresentation"}


def _types(value) -> list:
    return [value] if isinstance(value, str) else value if isinstance(value, list) else []


def _typ(header: dict) -> str | None:
    typ = header.get("typ")
    if typ is None:
        return None
    if not isinstance(typ, str):
        raise CeadError("jose.malformed", "The JWT typ header must be a string.")
    typ = typ.lower()
    return typ[len("application/"):] if typ.startswith("application/") else typ


def verify_jwt(token: str, resolver, typ: str, purpose: str) -> tuple[dict, str]:
    """Check a compact JWS and return ``(claims, kid)``; ``kid`` is the absolute id (DID URL, or https URL into a
    controller document) of the verification method used.

    ``typ`` is "vc+jwt" or "vp+jwt" (or one of ``OTHER_TYPES``, which must then be the header's typ exactly);
    ``purpose`` the verification relationship the key must be listed under.
    """
    if typ not in TYPES and typ not in OTHER_TYPES:
        raise ValueError(f"typ must be one of {sorted(TYPES) + list(OTHER_TYPES)}")
    if not isinstance(token, str) or len(token) > MAX_TOKEN:
        raise CeadError("jose.malformed", "A JWT must be a compact JWS string of reasonable size.")
    token = token.strip()
    found = dots(token)
    if found is None or found[0] == 0 or found[1] == found[0] + 1 or found[1] == len(token) - 1:
        raise CeadError("jose.malformed", "A JWT must have three non-empty dot-separated parts.")
    i, j = found
    header, claims = _header(token[:i]), _part(token[i + 1:j], "payload")
    try:
        signature = b64url_decode(token[j + 1:])   # strict: one signature has exactly one encoding here
    except CeadError:
        raise CeadError("jose.malformed", "The JWT signature is not canonical base64url.") from None

    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        raise CeadError("jose.alg_refused", f"JWT algorithm {alg!r} is refused; only {', '.join(sorted(ALGORITHMS))} are accepted.",
                        alg=str(alg))
    if "crit" in header or header.get("b64") is False:
        raise CeadError("jose.malformed", "JWT critical header parameters are not supported.")
    found = _typ(header)
    legacy_ok = typ in TYPES and found in (None, "jwt") and isinstance(claims.get(TYPES[typ]), dict)
    # VC-JOSE-COSE: typ is a SHOULD. Without one, the claim set itself must be a VC 2.0 document of the kind
    # expected (a credential is never taken for a presentation or the other way round); a wrong typ is refused.
    untyped_ok = (typ in TYPES and found is None and "@context" in claims
                  and _TYPE_NAMES[typ] in _types(claims.get("type")))
    if found != typ and not legacy_ok and not untyped_ok:
        raise CeadError("jose.typ_mismatch", f"Expected a {typ} JWT but the typ header is {header.get('typ')!r}.",
                        typ=str(header.get("typ")))

    kid = _key_id(header.get("kid"), claims, typ, resolver, purpose)
    _, key = resolver.public_key_for(kid, purpose)
    if key.jose_alg != alg:
        raise CeadError("jose.alg_refused", f"JWT algorithm {alg} does not match the {key.kind} key {kid}.",
                        alg=alg)
    # RFC 7515: the signature is over ASCII(BASE64URL(header) "." BASE64URL(payload)), checked with the key itself
    # (raw Ed25519, or ES256's r||s), the token's own segments untouched
    if not key.verify(signature, token[:j].encode("ascii")):
        raise CeadError("jose.signature_invalid", "The JWT signature does not verify with the issuer's key.",
                        kid=kid)
    for name in ("exp", "nbf", "iat"):
        value = claims.get(name)
        if name in claims and (isinstance(value, bool) or not isinstance(value, (int, float))
                               or not (math.isfinite(value) and 0 <= value < MAX_NUMERIC_DATE)):
            raise CeadError("jose.malformed", f"The JWT {name} claim must be a number (seconds since the epoch).")
    return claims, kid


_KID_FORMS = ("a DID URL (did:...#key-1), an https URL into the issuer's controller document "
              "(https://issuer.example/issuers/1#key-1), or, with an iss claim naming that document, a relative "
              "#key-1, a JWK thumbprint or the kid of a publicKeyJwk listed there")


def _key_id(kid, claims: dict, typ: str, resolver, purpose: str) -> str:
    """The absolute id of the verification method the header's ``kid`` names (its document is then the DID or
    controller document the caller binds to the issuer or holder). Unknown shapes fail closed."""
    if not isinstance(kid, str) or not kid:
        raise CeadError("jose.kid_missing", f"The JWT header has no kid naming the signing key; expected "
                        f"{_KID_FORMS if typ in TYPES else 'a DID URL'}.")
    if len(kid) > MAX_KID or any(map(str.isspace, kid)):
        raise CeadError("jose.kid_unsupported", f"The JWT kid is too long or contains white space; expected "
                        f"{_KID_FORMS}.")
    iss = claims.get("iss")
    if typ not in TYPES:
        # key proofs, node events and feeds identify their signer by DID (their callers bind to it)
        if kid.startswith("#"):
            if not (isinstance(iss, str) and iss.startswith("did:")):
                raise CeadError("jose.kid_missing", "The JWT kid is relative but iss is not a DID.")
            kid = iss + kid
        if not kid.startswith("did:") or "#" not in kid:
            raise CeadError("jose.kid_missing", f"The JWT kid {kid[:120]!r} is not a DID URL with a #fragment.")
        return kid
    iss_ok = isinstance(iss, str) and (iss.startswith("did:") or iss.startswith("https://"))
    if kid.startswith("#"):
        if not iss_ok:
            raise CeadError("jose.kid_missing", "The JWT kid is relative but iss is not a DID or an https URL to "
                            "resolve it against.")
        return iss + kid
    if kid.startswith("did:"):
        if "#" not in kid:
            raise CeadError("jose.kid_missing", f"The JWT kid {kid[:120]!r} is not a DID URL with a #fragment.")
        return kid
    if is_url(kid):
        return kid   # the resolver fetches https controller documents only and needs the #fragment
    if ":" in kid and not kid.startswith(THUMBPRINT_URN):
        raise CeadError("jose.kid_unsupported", f"The JWT kid {kid[:120]!r} is a URI of a kind this verifier "
                        f"does not resolve; expected {_KID_FORMS}.", kid=kid[:120])
    # a key id (VC-JOSE-COSE: iss names the document, kid "is used to distinguish the specific key used")
    if not iss_ok:
        raise CeadError("jose.kid_missing", f"The JWT kid {kid[:120]!r} is not a URL, and there is no iss (a DID "
                        f"or an https URL) naming the document to look it up in; expected {_KID_FORMS}.")
    if not callable(getattr(resolver, "resolve", None)):
        raise CeadError("jose.kid_unsupported", "This resolver cannot read whole documents, so a kid that is not "
                        "a URL cannot be looked up; use a DID URL or an https URL kid.")
    document = resolver.resolve(iss)
    found = find_by_key_id(document, kid)
    if not found:
        raise CeadError("jose.kid_unknown", f"No verification method in the document of {iss[:120]} has the JWK "
                        f"thumbprint or key id {kid[:120]!r}.", kid=kid[:120])
    listed = {ref if isinstance(ref, str) else ref.get("id") for ref in document.get(purpose, [])}
    return next((vm["id"] for vm in found if vm["id"] in listed), found[0]["id"])


def to_document(claims: dict, kind: str) -> dict:
    """The credential (``kind`` "vc") or presentation ("vp") secured by a JWT's claims.

    VC-JOSE-COSE: the claim set is the document (JWT registered claims are dropped). VC 1.1 JWT: the ``vc``/``vp``
    claim, with ``iss``/``jti``/``nbf``/``exp``/``sub`` filling in what the embedded document leaves out
    (VC Data Model 1.1, section 6.3.1); ``jti``/``sub`` contradicting the document is an error.
    """
    if kind not in ("vc", "vp"):
        raise ValueError("kind must be 'vc' or 'vp'")
    if "@context" in claims:
        # VC-JOSE-COSE: the claim set is the document. A `vc`/`vp` claim beside it would let a reader that follows
        # the VC 1.1 rule see another document than the one checked, so it is refused, not ignored.
        if "vc" in claims or "vp" in claims:
            raise CeadError("jose.malformed", "A vc+jwt/vp+jwt claim set is the credential or presentation itself; "
                            "it must not also carry a 'vc' or 'vp' claim.")
        return {k: v for k, v in claims.items() if k not in JWT_CLAIMS}
    if not isinstance(claims.get(kind), dict):
        return {k: v for k, v in claims.items() if k not in JWT_CLAIMS}
    doc = json.loads(json.dumps(claims[kind]))
    if "iss" in claims:  # the caller compares iss with the issuer/holder (they may differ: that is an error)
        doc.setdefault("issuer" if kind == "vc" else "holder", claims["iss"])
    if "jti" in claims:
        if "id" in doc and doc["id"] != claims["jti"]:
            raise CeadError("jose.malformed", "The JWT jti differs from the document id.")
        doc.setdefault("id", claims["jti"])
    if kind == "vc":
        if "nbf" in claims:
            doc.setdefault("issuanceDate", xsd_datetime(claims["nbf"]))
        if "exp" in claims:
            doc.setdefault("expirationDate", xsd_datetime(claims["exp"]))
        subject = doc.get("credentialSubject")
        if "sub" in claims and isinstance(subject, dict):
            if "id" in subject and subject["id"] != claims["sub"]:
                raise CeadError("jose.malformed", "The JWT sub differs from credentialSubject.id.")
            subject.setdefault("id", claims["sub"])
    return doc


def unverified_claims(token: str) -> dict:
    """The claims of a compact JWS, NOT verified: only for reading what has been (or will be) verified."""
    try:
        claims = strict_json(b64url_decode(token.split(".")[1]), "the JWT payload")
    except DuplicateMember:
        raise
    except (AttributeError, IndexError, ValueError, RecursionError, CeadError):
        raise CeadError("jose.malformed", "Not a compact JWT.") from None
    if not isinstance(claims, dict):
        raise CeadError("jose.malformed", "The JWT payload is not a JSON object.")
    return claims
