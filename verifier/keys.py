"""Public keys (Ed25519 and P-256): Multikey and JWK encodings and signature checks. No private keys here."""
from __future__ import annotations

import functools

import base64
import re
from dataclasses import dataclass

import base58
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .results import CeadError

ED25519 = "Ed25519"
P256 = "P-256"

# multicodec varint prefixes (https://github.com/multiformats/multicodec)
_MULTICODEC = {ED25519: b"\xed\x01", P256: b"\x80\x24"}
_DID_KEY_LENGTH = {ED25519: 32, P256: 33}   # raw key bytes after the multicodec prefix (P-256: compressed point)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding (RFC 7515 s.2): other characters, padding and non-zero trailing bits are
    refused, so one byte string has exactly one encoding (a JWT or key cannot be re-encoded into a "new" one)."""
    if not isinstance(text, str):
        raise CeadError("encoding.invalid", "Expected a base64url string.")
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise CeadError("encoding.invalid", "Not valid base64url: only A-Z a-z 0-9 - _ without padding.")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url(data) != text:
        raise CeadError("encoding.invalid", "Not valid base64url: the last character has stray bits set.")
    return data


def multibase_decode(value: str) -> bytes:
    """Decode a base58btc ('z') or base64url ('u') multibase string."""
    if not isinstance(value, str) or len(value) < 2:
        raise CeadError("encoding.invalid", "A multibase value must be a non-empty string.")
    try:
        if value[0] == "z":
            return base58.b58decode(value[1:])
        if value[0] == "u":
            return b64url_decode(value[1:])
    except ValueError as exc:
        raise CeadError("encoding.invalid", f"Not valid multibase: {exc}") from None
    raise CeadError("encoding.invalid", f"Unsupported multibase prefix {value[0]!r} (expected 'z' or 'u').")


def multibase_encode(data: bytes) -> str:
    return "z" + base58.b58encode(data).decode("ascii")


@functools.lru_cache(maxsize=4096)
def _crypto_key(kind: str, raw: bytes):
    try:
        if kind == ED25519:
            return ed25519.Ed25519PublicKey.from_public_bytes(raw)
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise CeadError("key.invalid", f"Not a valid {kind} public key.") from None


@dataclass(frozen=True)
class PublicKey:
    kind: str            # ED25519 or P256
    raw: bytes           # Ed25519: 32 bytes; P-256: 33-byte compressed point

    # ---- constructors -------------------------------------------------------------------------------------
    @classmethod
    def from_crypto(cls, key) -> "PublicKey":
        if isinstance(key, ed25519.Ed25519PublicKey):
            return cls(ED25519, key.public_bytes(Encoding.Raw, PublicFormat.Raw))
        if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
            return cls(P256, key.public_bytes(Encoding.X962, PublicFormat.CompressedPoint))
        raise CeadError("key.unsupported", "Only Ed25519 and P-256 keys are supported.")

    @classmethod
    def from_multikey(cls, value: str) -> "PublicKey":
        data = multibase_decode(value)
        for kind, prefix in _MULTICODEC.items():
            if data.startswith(prefix):
                key = cls(kind, data[len(prefix):])
                key.crypto()  # validates length / point
                return key
        raise CeadError("key.unsupported", "Multikey is not an Ed25519 or P-256 public key.")

    @classmethod
    def from_did_key(cls, msid: str) -> "PublicKey":
        """The key of a did:key method-specific id, read strictly (did:key spec, "Document Creation" and "Signature
        Method Creation"): multibase base58btc only (a leading ``z``), and the raw key of the exact length its
        multicodec calls for (Ed25519: 32 bytes; P-256: the 33-byte compressed point). ``from_multikey`` stays
        lenient for Multikey values inside did:web documents."""
        if not isinstance(msid, str) or not msid.startswith("z"):
            raise CeadError("key.invalid", "A did:key identifier must be multibase base58btc (start with 'z').")
        data = multibase_decode(msid)
        for kind, prefix in _MULTICODEC.items():
            if data.startswith(prefix):
                raw = data[len(prefix):]
                expected = _DID_KEY_LENGTH[kind]
                if len(raw) != expected or (kind == P256 and raw[0] not in (2, 3)):
                    what = "a 33-byte compressed point" if kind == P256 else f"{expected} bytes"
                    raise CeadError("key.invalid", f"A did:key {kind} public key must be {what}; got {len(raw)} "
                                    "bytes.", length=len(raw))
                key = cls(kind, raw)
                key.crypto()  # validates the point
                return key
        raise CeadError("key.unsupported", "did:key is not an Ed25519 or P-256 public key.")

    @classmethod
    def from_jwk(cls, jwk: dict) -> "PublicKey":
        if not isinstance(jwk, dict):
            raise CeadError("key.invalid", "A JWK must be a JSON object.")
        if "d" in jwk:
            raise CeadError("key.private_material", "A public JWK must not contain private key material ('d').")
        kty, crv = jwk.get("kty"), jwk.get("crv")
        if kty == "OKP" and crv == "Ed25519":
            key = cls(ED25519, b64url_decode(jwk.get("x", "")))
        elif kty == "EC" and crv == "P-256":
            x, y = b64url_decode(jwk.get("x", "")), b64url_decode(jwk.get("y", ""))
            if len(x) != 32 or len(y) != 32:
                raise CeadError("key.invalid", "P-256 JWK coordinates must be 32 bytes each.")
            try:
                point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x + y)
            except ValueError:
                raise CeadError("key.invalid", "P-256 JWK is not a point on the curve.") from None
            return cls.from_crypto(point)
        else:
            raise CeadError("key.unsupported", f"Unsupported JWK (kty={kty!r}, crv={crv!r}); use Ed25519 or P-256.")
        key.crypto()
        return key

    # ---- encodings ----------------------------------------------------------------------------------------
    def crypto(self):
        """The ``cryptography`` key object (built once per distinct key: a bounded memo)."""
        return _crypto_key(self.kind, self.raw)

    def to_multikey(self) -> str:
        return multibase_encode(_MULTICODEC[self.kind] + self.raw)

    def to_jwk(self) -> dict:
        if self.kind == ED25519:
            return {"kty": "OKP", "crv": "Ed25519", "x": b64url(self.raw)}
        nums = self.crypto().public_numbers()
        return {"kty": "EC", "crv": "P-256", "x": b64url(nums.x.to_bytes(32, "big")),
                "y": b64url(nums.y.to_bytes(32, "big"))}

    @property
    def jose_alg(self) -> str:
        return "EdDSA" if self.kind == ED25519 else "ES256"

    # ---- verification -------------------------------------------------------------------------------------
    def verify(self, signature: bytes, data: bytes) -> bool:
        """Check a raw signature (Ed25519: 64 bytes; P-256: r||s, 64 bytes, over SHA-256)."""
        try:
            if self.kind == ED25519:
                self.crypto().verify(signature, data)
            else:
                if len(signature) != 64:
                    return False
                der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
                self.crypto().verify(der, data, ec.ECDSA(hashes.SHA256()))
            return True
        except (InvalidSignature, ValueError):
            return False
