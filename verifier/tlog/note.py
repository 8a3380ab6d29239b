"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 keys, and cosignatures (c2sp.org/tlog-cosignature).

A note is UTF-8 text ending in a newline, a blank line, then signature lines ``— <name> base64(keyID || sig)``.
The key ID is ``SHA-256(name || "\\n" || alg || public key)[:4]`` with ``alg`` 0x01 for a note signature and 0x04
for a timestamped witness cosignature (``cosignature/v1``). A verifier key is written
``<name>+<hex key ID>+base64(alg || public key)``.

Nothing here holds a private key: signing takes any object with ``sign(bytes) -> bytes`` (``issuer.keys.PrivateKey``).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
import time
from dataclasses import dataclass
from typing import Iterable, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from ..results import CeadError

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
DASH = "\u2014 "
MAX_NOTE = 1 << 20
MAX_SIGNATURES = 100
_NAME = re.compile(r"^[^\s+]+$")


def _bad(message: str, **detail) -> CeadError:
    return CeadError("tlog.note_invalid", message, **detail)


def key_id(name: str, alg: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public).digest()[:4]


@dataclass(frozen=True)
class NoteKey:
    """A public note key: a name, an algorithm byte (0x01 signer, 0x04 cosigner) and a 32-byte Ed25519 key."""
    name: str
    alg: int
    public: bytes

    @property
    def id(self) -> bytes:
        return key_id(self.name, self.alg, self.public)

    def vkey(self) -> str:
        return f"{self.name}+{self.id.hex()}+{base64.b64encode(bytes([self.alg]) + self.public).decode()}"

    @classmethod
    def parse(cls, vkey: str) -> "NoteKey":
        """Read a verifier key ``name+hash+base64``; the hash must match (the base64 may contain '+')."""
        if not isinstance(vkey, str):
            raise _bad("A note verifier key must be text: name+keyid+base64key.")
        parts = vkey.split("+", 2)
        if len(parts) != 3 or not _NAME.match(parts[0]) or not re.fullmatch(r"[0-9a-f]{8}", parts[1]):
            raise _bad(f"{vkey[:100]!r} is not a note verifier key (name+8 hex digits+base64 key).")
        try:
            material = base64.b64decode(parts[2], validate=True)
        except (binascii.Error, ValueError):
            raise _bad("The note verifier key's key material is not base64.") from None
        if len(material) != 33 or material[0] not in (ALG_ED25519, ALG_COSIGNATURE_V1):
            raise _bad("Only Ed25519 note keys (type 0x01) and cosignature/v1 keys (type 0x04) are supported.")
        key = cls(parts[0], material[0], material[1:])
        if key.id.hex() != parts[1]:
            raise _bad(f"The key ID in {vkey[:100]!r} does not match its name and key.")
        return key

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            ed25519.Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
            return True
        except (InvalidSignature, ValueError):
            return False


@dataclass(frozen=True)
class Signature:
    name: str
    id: bytes
    data: bytes          # after the key ID: the signature (64 bytes) or, for a cosignature, timestamp || signature

    def line(self) -> str:
        return f"{DASH}{self.name} {base64.b64encode(self.id + self.data).decode()}\n"


def split(note: str | bytes) -> tuple[str, list[Signature]]:
    """The note's text (ending in a newline) and its signature lines, checked for shape only."""
    if isinstance(note, bytes):
        if len(note) > MAX_NOTE:
            raise _bad("The note is too large.")
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad("The note is not UTF-8.") from None
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise _bad("The note must be text of at most 1 MiB.")
    if any(ord(c) < 0x20 and c != "\n" for c in note) or "\x7f" in note:
        raise _bad("The note contains control characters other than newlines.")
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise _bad("A signed note is text, a blank line, then signature lines, each ending in a newline.")
    text, sigs = note[:cut + 1], note[cut + 2:]
    signatures = []
    for line in sigs[:-1].split("\n"):
        if not line.startswith(DASH):
            raise _bad(f"Malformed signature line {line[:80]!r}.")
        parts = line[len(DASH):].split(" ")
        if len(parts) != 2 or not _NAME.match(parts[0]):
            raise _bad(f"Malformed signature line {line[:80]!r}.")
        try:
            blob = base64.b64decode(parts[1], validate=True)
        except (binascii.Error, ValueError):
            raise _bad(f"The signature of {parts[0]!r} is not base64.") from None
        if len(blob) < 5:
            raise _bad(f"The signature of {parts[0]!r} is too short.")
        signatures.append(Signature(parts[0], blob[:4], blob[4:]))
    if not signatures or len(signatures) > MAX_SIGNATURES:
        raise _bad(f"A signed note needs between 1 and {MAX_SIGNATURES} signatures.")
    return text, signatures


def sign(text: str, name: str, private_key) -> str:
    """The signature line of ``text`` by a 0x01 Ed25519 key called ``name`` (``private_key.sign(bytes)``)."""
    _check_text(text)
    public = _public_raw(private_key)
    return Signature(name, key_id(name, ALG_ED25519, public), private_key.sign(text.encode())).line()


def signed(text: str, lines: Iterable[str]) -> str:
    """A note from its text and signature lines."""
    return text + "\n" + "".join(lines)


def _check_text(text: str) -> None:
    if not isinstance(text, str) or not text.endswith("\n") or "\n\n" in text:
        raise _bad("Note text must end in a newline and contain no blank line.")


def _public_raw(private_key) -> bytes:
    public = getattr(private_key, "public", None)
    raw = getattr(public, "raw", None)
    if not isinstance(raw, bytes) or len(raw) != 32 or getattr(public, "kind", "Ed25519") != "Ed25519":
        raise _bad("Notes are signed with an Ed25519 key.")
    return raw


def cosignature_message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode()


def cosign(text: str, name: str, private_key, timestamp: int | None = None) -> str:
    """A ``cosignature/v1`` line (c2sp.org/tlog-cosignature) over a checkpoint's text."""
    _check_text(text)
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    public = _public_raw(private_key)
    sig = private_key.sign(cosignature_message(text, timestamp))
    return Signature(name, key_id(name, ALG_COSIGNATURE_V1, public), struct.pack(">Q", timestamp) + sig).line()


@dataclass(frozen=True)
class Verified:
    key: NoteKey
    timestamp: int | None = None     # a cosignature's time (POSIX seconds)


def verify(note: str | bytes, keys: Sequence[NoteKey]) -> tuple[str, list[Verified]]:
    """The text of ``note`` and which of ``keys`` signed it (signatures by unknown keys are ignored, as the spec
    says). A signature by a known key that does not verify is an error (``tlog.signature_invalid``)."""
    text, signatures = split(note)
    by_id = {(k.name, k.id): k for k in keys}
    out: list[Verified] = []
    seen = set()
    for sig in signatures:
        key = by_id.get((sig.name, sig.id))
        if key is None or (key.name, key.id) in seen:
            continue
        if key.alg == ALG_ED25519:
            good, stamp = len(sig.data) == 64 and key.verify(sig.data, text.encode()), None
        else:
            good, stamp = False, None
            if len(sig.data) == 72:
                stamp = struct.unpack(">Q", sig.data[:8])[0]
                good = stamp < 2 ** 63 and key.verify(sig.data[8:], cosignature_message(text, stamp))
        if not good:
            raise CeadError("tlog.signature_invalid", f"The signature of {sig.name!r} on the note does not verify.",
                            signer=sig.name)
        seen.add((key.name, key.id))
        out.append(Verified(key, stamp))
    return text, out
