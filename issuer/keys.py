"""Private keys (Ed25519, P-256, P-384, P-521): generation, signing, and encryption at rest. Never printed or logged."""
from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from verifier.keys import CURVES, ED25519, PublicKey
from verifier.results import CeadError


class PrivateKey:
    """A signing key. ``repr``/``str`` never reveal key material."""

    __slots__ = ("_key", "kind", "public")

    def __init__(self, key):
        self._key = key
        self.public = PublicKey.from_crypto(key.public_key())
        self.kind = self.public.kind

    @classmethod
    def generate(cls, kind: str = ED25519) -> "PrivateKey":
        if kind == ED25519:
            return cls(ed25519.Ed25519PrivateKey.generate())
        if kind in CURVES:
            return cls(ec.generate_private_key(CURVES[kind].curve()))
        raise CeadError("key.unsupported", f"Unsupported key type {kind!r}; use Ed25519, P-256, P-384 or P-521.")

    @classmethod
    def from_ed25519_seed(cls, seed: bytes) -> "PrivateKey":
        return cls(ed25519.Ed25519PrivateKey.from_private_bytes(seed))

    def sign(self, data: bytes) -> bytes:
        """Raw signature: Ed25519 (64 bytes) or ECDSA over the curve's hash as r||s (RFC 7518 s.3.4)."""
        if self.kind == ED25519:
            return self._key.sign(data)
        curve = CURVES[self.kind]
        r, s = decode_dss_signature(self._key.sign(data, ec.ECDSA(curve.hash())))
        return r.to_bytes(curve.size, "big") + s.to_bytes(curve.size, "big")

    def to_pem(self, passphrase: bytes | None) -> bytes:
        """PKCS#8 PEM, encrypted with ``passphrase`` (refuses to export in clear unless passphrase is None)."""
        enc = (serialization.BestAvailableEncryption(passphrase) if passphrase
               else serialization.NoEncryption())
        return self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)

    @classmethod
    def from_pem(cls, data: bytes, passphrase: bytes | None) -> "PrivateKey":
        try:
            return cls(serialization.load_pem_private_key(data, password=passphrase))
        except (ValueError, TypeError):
            raise CeadError("key.locked", "Could not decrypt the private key: wrong or missing passphrase.") from None

    def private_jwk(self) -> dict:
        """JWK with private part, only for handing to a JOSE library in-process."""
        from jwcrypto import jwk
        return jwk.JWK.from_pyca(self._key).export(private_key=True, as_dict=True)

    def __repr__(self) -> str:
        return f"<PrivateKey {self.kind} {self.public.to_multikey()}>"

    __str__ = __repr__

    def __reduce__(self):  # never pickled by accident (logging, caches)
        raise TypeError("PrivateKey cannot be pickled")
