"""Private keys (Ed25519 and P-256): generation, signing, and encryption at rest. Never printed or logged."""
from __future__ import annotations

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from verifier.keys import ED25519, P256, PublicKey
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
        if kind == P256:
            return cls(ec.generate_private_key(ec.SECP256R1()))
        raise CeadError("key.unsupported", f"Unsupported key type {kind!r}; use Ed25519 or P-256.")

    @classmethod
    def from_ed25519_seed(cls, seed: bytes) -> "PrivateKey":
        return cls(ed25519.Ed25519PrivateKey.from_private_bytes(seed))

    def sign(self, data: bytes) -> bytes:
        """Raw signature: Ed25519 (64 bytes) or P-256 ECDSA over SHA-256 as r||s (64 bytes)."""
        if self.kind == ED25519:
            return self._key.sign(data)
        r, s = decode_dss_signature(self._key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

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
