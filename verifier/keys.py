"""Public keys (Ed25519, P-256, P-384, P-521): Multikey and JWK encodings and signature checks. No private keys here.

The NIST curves are described once in ``CURVES`` (curve, hash, coordinate size, JOSE algorithm, multicodec); every
reader and writer of a key looks there, so a curve is added in one place.
"""
from __future__ import annotations

import functools

import base64
import binascii
from dataclasses import dataclass

import base58
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .results import CeadError

try:   # a compiled (SIMD) base64 decoder: a tenth of binascii's time on a 15 KB presentation (see b64url_decode)
    import pybase64
except ImportError:   # pragma: no cover  (a dependency; without it binascii decodes, with the same answers)
    pybase64 = None

ED25519 = "Ed25519"
P256 = "P-256"
P384 = "P-384"
P521 = "P-521"


@dataclass(frozen=True)
class Curve:
    """A NIST curve as JOSE (RFC 7518 s.3.4) and Multikey/did:key use it."""
    name: str            # JWK crv
    curve: type          # cryptography's curve class
    hash: type           # the hash its ECDSA signatures use (RFC 7518: ES256/SHA-256, ES384/SHA-384, ES512/SHA-512)
    size: int            # bytes per coordinate (and per signature half)
    jose_alg: str
    multicodec: bytes    # varint prefix (https://github.com/multiformats/multicodec: p256-pub 0x1200, ...)


CURVES = {
    P256: Curve(P256, ec.SECP256R1, hashes.SHA256, 32, "ES256", b"\x80\x24"),
    P384: Curve(P384, ec.SECP384R1, hashes.SHA384, 48, "ES384", b"\x81\x24"),
    P521: Curve(P521, ec.SECP521R1, hashes.SHA512, 66, "ES512", b"\x82\x24"),
}
_BY_CRYPTO_NAME = {c.curve.name: c for c in CURVES.values()}
KINDS = (ED25519, *CURVES)
JOSE_ALGS = {ED25519: "EdDSA", **{name: c.jose_alg for name, c in CURVES.items()}}

# multicodec varint prefixes (https://github.com/multiformats/multicodec)
_MULTICODEC = {ED25519: b"\xed\x01", **{name: c.multicodec for name, c in CURVES.items()}}
# raw key bytes after the multicodec prefix (NIST curves: the compressed point, one byte more than a coordinate)
_DID_KEY_LENGTH = {ED25519: 32, **{name: c.size + 1 for name, c in CURVES.items()}}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64URL_VALUE = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")}


def _decode_standard(padded: str) -> bytes:
    """``padded`` (base64url characters and final padding only) decoded by the standard library, strictly."""
    return binascii.a2b_base64(padded.encode("ascii").replace(b"-", b"+").replace(b"_", b"/"), strict_mode=True)


def _decode_fast(padded: str) -> bytes:
    """The same, by pybase64 (validate: any character outside the alphabet, - and _ included, is refused)."""
    return pybase64.b64decode(padded, altchars=b"-_", validate=True)


_decode = _decode_fast if pybase64 is not None else _decode_standard


def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding (RFC 7515 s.2): other characters, padding and non-zero trailing bits are
    refused, so one byte string has exactly one encoding (a JWT or key cannot be re-encoded into a "new" one)."""
    if not isinstance(text, str):
        raise CeadError("encoding.invalid", "Expected a base64url string.")
    # the standard alphabet's own +, / and padding are refused here (both decoders below would read + and / as
    # well as - and _); the decoder then refuses any other character, in one C pass (pybase64's SIMD decoder when
    # installed: binascii's took half a raw signature check on a 15 KB presentation; else binascii's strict mode)
    if "+" in text or "/" in text or "=" in text or len(text) % 4 == 1 or not text.isascii():
        raise CeadError("encoding.invalid", "Not valid base64url: only A-Z a-z 0-9 - _ without padding.")
    try:
        data = _decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise CeadError("encoding.invalid", "Not valid base64url: only A-Z a-z 0-9 - _ without padding.") from None
    # the last character of a partial group carries bits past the data (4 of them after 2 characters, 2 after 3):
    # they must be zero (checked on that character alone, rather than by encoding all the data again)
    spare = {2: 0x0F, 3: 0x03}.get(len(text) % 4)
    if spare and _B64URL_VALUE[text[-1]] & spare:
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
    """The ``cryptography`` key object for a public key (made once per distinct key: a bounded memo)."""
    try:
        if kind == ED25519:
            return ed25519.Ed25519PublicKey.from_public_bytes(raw)
        return ec.EllipticCurvePublicKey.from_encoded_point(CURVES[kind].curve(), raw)
    except (ValueError, KeyError):
        raise CeadError("key.invalid", f"Not a valid {kind} public key.") from None


@dataclass(frozen=True)
class PublicKey:
    kind: str            # ED25519 or a name in CURVES
    raw: bytes           # Ed25519: 32 bytes; NIST curves: the compressed point (P-256: 33 bytes)

    # ---- constructors -------------------------------------------------------------------------------------
    @classmethod
    def from_crypto(cls, key) -> "PublicKey":
        if isinstance(key, ed25519.Ed25519PublicKey):
            return cls(ED25519, key.public_bytes(Encoding.Raw, PublicFormat.Raw))
        if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _BY_CRYPTO_NAME:
            return cls(_BY_CRYPTO_NAME[key.curve.name].name,
                       key.public_bytes(Encoding.X962, PublicFormat.CompressedPoint))
        raise CeadError("key.unsupported", "Only Ed25519, P-256, P-384 and P-521 keys are supported.")

    @classmethod
    def from_multikey(cls, value: str) -> "PublicKey":
        data = multibase_decode(value)
        for kind, prefix in _MULTICODEC.items():
            if data.startswith(prefix):
                key = cls(kind, data[len(prefix):])
                key.crypto()  # validates length / point
                return key
        raise CeadError("key.unsupported", "Multikey is not an Ed25519, P-256, P-384 or P-521 public key.")

    @classmethod
    def from_did_key(cls, msid: str) -> "PublicKey":
        """The key of a did:key method-specific id, read strictly (did:key spec, "Document Creation" and "Signature
        Method Creation"): multibase base58btc only (a leading ``z``), and the raw key of the exact length its
        multicodec calls for (Ed25519: 32 bytes; P-256: the 33-byte compressed point; P-384: 49; P-521: 67). ``from_multikey`` stays
        lenient for Multikey values inside did:web documents."""
        if not isinstance(msid, str) or not msid.startswith("z"):
            raise CeadError("key.invalid", "A did:key identifier must be multibase base58btc (start with 'z').")
        data = multibase_decode(msid)
        for kind, prefix in _MULTICODEC.items():
            if data.startswith(prefix):
                raw = data[len(prefix):]
                expected = _DID_KEY_LENGTH[kind]
                if len(raw) != expected or (kind in CURVES and raw[0] not in (2, 3)):
                    what = f"a {expected}-byte compressed point" if kind in CURVES else f"{expected} bytes"
                    raise CeadError("key.invalid", f"A did:key {kind} public key must be {what}; got {len(raw)} "
                                    "bytes.", length=len(raw))
                key = cls(kind, raw)
                key.crypto()  # validates the point
                return key
        raise CeadError("key.unsupported", "did:key is not an Ed25519, P-256, P-384 or P-521 public key.")

    @classmethod
    def from_jwk(cls, jwk: dict) -> "PublicKey":
        if not isinstance(jwk, dict):
            raise CeadError("key.invalid", "A JWK must be a JSON object.")
        if "d" in jwk:
            raise CeadError("key.private_material", "A public JWK must not contain private key material ('d').")
        kty, crv = jwk.get("kty"), jwk.get("crv")
        if kty == "OKP" and crv == "Ed25519":
            key = cls(ED25519, b64url_decode(jwk.get("x", "")))
        elif kty == "EC" and crv in CURVES:
            curve = CURVES[crv]
            x, y = b64url_decode(jwk.get("x", "")), b64url_decode(jwk.get("y", ""))
            if len(x) != curve.size or len(y) != curve.size:
                raise CeadError("key.invalid", f"{crv} JWK coordinates must be {curve.size} bytes each.")
            try:
                point = ec.EllipticCurvePublicKey.from_encoded_point(curve.curve(), b"\x04" + x + y)
            except ValueError:
                raise CeadError("key.invalid", f"{crv} JWK is not a point on the curve.") from None
            return cls.from_crypto(point)
        else:
            raise CeadError("key.unsupported", f"Unsupported JWK (kty={kty!r}, crv={crv!r}); use Ed25519, P-256, "
                            "P-384 or P-521.")
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
        nums, size = self.crypto().public_numbers(), CURVES[self.kind].size
        return {"kty": "EC", "crv": self.kind, "x": b64url(nums.x.to_bytes(size, "big")),
                "y": b64url(nums.y.to_bytes(size, "big"))}

    @property
    def jose_alg(self) -> str:
        return JOSE_ALGS[self.kind]

    # ---- verification -------------------------------------------------------------------------------------
    def verify(self, signature: bytes, data: bytes) -> bool:
        """Check a raw signature (Ed25519: 64 bytes; NIST curves: r||s over the curve's hash, RFC 7518 s.3.4:
        P-256 64 bytes over SHA-256, P-384 96 over SHA-384, P-521 132 over SHA-512)."""
        try:
            if self.kind == ED25519:
                self.crypto().verify(signature, data)
            else:
                curve = CURVES[self.kind]
                if len(signature) != 2 * curve.size:
                    return False
                half = curve.size
                der = encode_dss_signature(int.from_bytes(signature[:half], "big"),
                                           int.from_bytes(signature[half:], "big"))
                self.crypto().verify(der, data, ec.ECDSA(curve.hash()))
            return True
        except (InvalidSignature, ValueError):
            return False
