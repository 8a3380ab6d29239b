"""Signing: Data Integrity proofs and VC-JOSE compact JWS. The matching checks live in ``verifier``."""
from __future__ import annotations

import copy
import json
from datetime import datetime, timezone

from jwcrypto import jws

from verifier.results import CeadError
from verifier.suites import (DATA_INTEGRITY_CONTEXTS, DATA_INTEGRITY_PROOF, DATA_INTEGRITY_V2,  # noqa: F401
                             DEFAULT_SUITES, SuiteRegistry, parse_datetime)

from .keys import PrivateKey

# vc+jwt and vp+jwt (VC-JOSE-COSE); a wallet's OID4VCI key proof; the signature of a node's event notification;
# a node's signed feed of its decisions (wallet.precedents)
JWT_TYPES = {"vc+jwt", "vp+jwt", "openid4vci-proof+jwt", "cead-event+jwt", "cead-precedents+jwt"}


def sign_jwt(claims: dict, key: PrivateKey, kid: str, typ: str = "vc+jwt") -> str:
    """Compact JWS over ``claims`` (VC-JOSE: the credential or presentation itself is the claim set).

    ``kid`` is the DID URL of the verification method; ``alg`` follows the key (EdDSA or ES256).
    """
    if typ not in JWT_TYPES:
        raise ValueError(f"typ must be one of {sorted(JWT_TYPES)}")
    header = {"alg": key.public.jose_alg, "kid": kid, "typ": typ}
    token = jws.JWS(json.dumps(claims, separators=(",", ":")).encode())
    from jwcrypto import jwk
    token.add_signature(jwk.JWK(**key.private_jwk()), alg=header["alg"], protected=json.dumps(header))
    return token.serialize(compact=True)


def _datetime(value: datetime | str | None, field: str) -> str | None:
    if value is None or isinstance(value, str):
        if isinstance(value, str):
            parse_datetime(value, field)
        return value
    if value.tzinfo is None:
        raise CeadError("proof.malformed", f"{field} must be a timezone-aware datetime.")
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _context_unsigned(unsecured: dict, proof: dict, suite: str) -> bool:
    """Whether an eddsa-rdfc-2022 proof without ``@context`` would leave an ``@context`` entry of ``unsecured`` that
    changes nothing it signs (e.g. the examples context, all of whose terms the base context also defines). Cead's
    verifiers refuse such a credential (``proof.context_unsigned``: it could travel with or without the entry), so
    the proof then carries the document's ``@context`` (VC Data Integrity 1.0 section 2.1 allows it), which pins
    the one encoding and leaves the signature as it is: RDFC-1.0 signs the proof options under the document's
    contexts either way."""
    from verifier.signedcontext import RDFC, context_problems
    contexts = unsecured.get("@context")
    if suite != RDFC or not isinstance(contexts, list) or len(contexts) < 2:
        return False
    return any(p.code == "proof.context_unsigned" for p in context_problems(unsecured, unsecured, proof, suite))


def add_proof(document: dict, key: PrivateKey, verification_method: str, *, cryptosuite: str = "eddsa-rdfc-2022",
              purpose: str = "assertionMethod", challenge: str | None = None, domain: str | None = None,
              created: datetime | str | None = None, expires: datetime | str | None = None,
              suites: SuiteRegistry | None = None) -> dict:
    """A copy of ``document`` with a new DataIntegrityProof (vc-di-eddsa); the input is never modified.

    The suite comes from ``suites`` (default ``verifier.suites.DEFAULT_SUITES``, the registry verifiers check
    with). If the document's @context does not define DataIntegrityProof (VC 1.1), the Data Integrity v2 context
    is appended to it.
    ``created`` defaults to now (UTC, whole seconds). If the document already has proofs, the new proof signs the
    document without them and is added alongside (a proof set).
    """
    suite = (suites or DEFAULT_SUITES).for_signing(cryptosuite)
    if key.kind not in suite.key_kinds:
        raise CeadError("key.unsupported", f"{cryptosuite} needs a {' or '.join(suite.key_kinds)} key, not "
                        f"{key.kind}.")
    if not isinstance(document, dict):
        raise CeadError("proof.malformed", "Only a JSON object can be signed.")
    unsecured = copy.deepcopy({k: v for k, v in document.items() if k != "proof"})
    suite.prepare(unsecured)
    proof: dict = {"type": suite.proof_type, "cryptosuite": suite.name,
                   "created": _datetime(created, "created") or _datetime(datetime.now(timezone.utc), "created"),
                   "verificationMethod": verification_method, "proofPurpose": purpose}
    if expires is not None:
        proof["expires"] = _datetime(expires, "expires")
    if challenge is not None:
        proof["challenge"] = challenge
    if domain is not None:
        proof["domain"] = domain
    proof_context = suite.proof_context(unsecured)
    if proof_context is None and _context_unsigned(unsecured, proof, suite.name):
        proof_context = unsecured["@context"]
    if proof_context is not None:
        proof["@context"] = copy.deepcopy(proof_context)
    proof["proofValue"] = suite.encode_signature(suite.sign(key, suite.hash(unsecured, proof)))
    secured = copy.deepcopy(document)
    if "@context" in unsecured:
        secured["@context"] = unsecured["@context"]
    existing = secured.get("proof")
    if existing is None:
        secured["proof"] = proof
    else:
        secured["proof"] = (existing if isinstance(existing, list) else [existing]) + [proof]
    return secured
