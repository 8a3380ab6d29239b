"""Signing: Data Integrity proofs and VC-JOSE compact JWS. The matching checks live in ``verifier``."""
from __future__ import annotations

import json

from jwcrypto import jws

from .keys import PrivateKey

JWT_TYPES = {"vc+jwt", "vp+jwt"}


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
