"""Shared helpers: credential digests as the hex the log records."""
from __future__ import annotations

from ..keys import b64url_decode
from ..results import CeadError


def digest_hex(digest: str) -> str:
    """``sha256-<base64url>`` (``schemas.models.credential_digest``) or 64 hex digits -> 64 lower-case hex."""
    if isinstance(digest, str):
        if digest.startswith("sha256-"):
            try:
                raw = b64url_decode(digest[7:])
            except CeadError:
                raw = b""
            if len(raw) == 32:
                return raw.hex()
        elif len(digest) == 64 and all(c in "0123456789abcdefABCDEF" for c in digest):
            return digest.lower()
    raise CeadError("tlog.entry_invalid", f"{str(digest)[:80]!r} is not a SHA-256 digest.")
