"""Signed decision receipts: a compact JWS a gateway can log as evidence of what was decided and why.

The receipt key is the only private key a verifier may hold, and it is optional: without one, decisions carry no
receipt. The key is read from a PEM (PKCS#8, optionally encrypted) or JWK file named in the trust policy. It is
never printed or logged; ``repr`` shows only the key id.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from jwcrypto import jwk, jws
from jwcrypto.common import JWException

from .keys import PublicKey
from .results import CeadError

RECEIPT_TYPE = "cead-receipt+jwt"


class ReceiptSigner:
    """Signs receipts with an Ed25519 (EdDSA) or P-256 (ES256) key."""

    __slots__ = ("_key", "kid", "alg", "public")

    def __init__(self, key: jwk.JWK, kid: str | None = None):
        if not key.has_private:
            raise CeadError("receipt.key_invalid", "The receipt key file holds no private key.")
        public = PublicKey.from_jwk(key.export_public(as_dict=True))
        self._key = key
        self.public = public
        self.alg = public.jose_alg
        self.kid = kid or f"urn:cead:receipt-key:{key.thumbprint()}"

    @classmethod
    def from_file(cls, path: str | Path, kid: str | None = None, passphrase: bytes | None = None) -> "ReceiptSigner":
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise CeadError("receipt.key_unreadable", f"Cannot read the receipt key {str(path)!r}: {exc.strerror}") \
                from None
        try:
            if data.lstrip().startswith(b"{"):
                key = jwk.JWK.from_json(data.decode("utf-8"))
            else:
                key = jwk.JWK.from_pem(data, password=passphrase)
        except (JWException, ValueError, TypeError, UnicodeDecodeError):
            raise CeadError("receipt.key_invalid",
                            f"The receipt key {str(path)!r} is not a usable PEM or JWK private key "
                            "(or its passphrase is wrong).") from None
        try:
            return cls(key, kid)
        except CeadError as exc:
            if exc.code.startswith("key."):
                raise CeadError("receipt.key_invalid", f"Receipt key: {exc.message}") from None
            raise

    def sign(self, claims: dict[str, Any]) -> str:
        body = {"iat": int(time.time()), "jti": f"urn:uuid:{uuid.uuid4()}", **claims}
        token = jws.JWS(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
        header = {"alg": self.alg, "kid": self.kid, "typ": RECEIPT_TYPE}
        token.add_signature(self._key, alg=self.alg, protected=json.dumps(header))
        return token.serialize(compact=True)

    def __repr__(self) -> str:
        return f"<ReceiptSigner {self.alg} kid={self.kid}>"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("ReceiptSigner cannot be pickled")


def load_signer(policy) -> ReceiptSigner | None:
    """The signer for a trust policy's ``receipts`` section (``None`` when receipts are off)."""
    receipts = policy.receipts
    if receipts is None:
        return None
    passphrase = None
    if receipts.passphrase_env:
        value = os.environ.get(receipts.passphrase_env)
        if value is None:
            raise CeadError("receipt.key_locked",
                            f"The environment variable {receipts.passphrase_env} (receipt key passphrase) is not set.")
        passphrase = value.encode()
    return ReceiptSigner.from_file(policy.path(receipts.key), receipts.kid, passphrase)


def verify_receipt(token: str, public: PublicKey) -> dict[str, Any]:
    """Check a receipt's signature with the gateway's public key; returns its claims."""
    try:
        obj = jws.JWS()
        obj.deserialize(token)
        header = obj.jose_header
        if header.get("typ") != RECEIPT_TYPE or header.get("alg") != public.jose_alg:
            raise CeadError("receipt.invalid", "Not a Cead receipt signed with the expected algorithm.")
        obj.verify(jwk.JWK(**public.to_jwk()), alg=public.jose_alg)
        return json.loads(obj.payload)
    except (JWException, ValueError) as exc:
        raise CeadError("receipt.invalid", f"The receipt does not verify: {exc}") from None
