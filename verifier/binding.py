"""Binding a presentation to one HTTP request, so a captured presentation cannot be replayed elsewhere.

The wallet (when presenting) and the verifier (when deciding) both call ``request_binding``; see
docs/architecture.md, "The wire contract".
"""
from __future__ import annotations

import functools
import hashlib
import json
from typing import Any
from urllib.parse import urlsplit

from schemas import jcs
from schemas.values import DuplicateMember, strict_json

from .jose import dots
from .keys import b64url, b64url_decode
from .results import CeadError

PRESENTATION_HEADER = "Cead-Presentation"
MANIFEST_HEADER = "Cead-Transfer-Manifest"
# the receipt forms the client reads (docs/evidence.md): "batch" lets the gateway give it a batched receipt, which
# clients from before batched receipts cannot read; without it every receipt for the request is signed alone
RECEIPT_FORMS_HEADER = "Cead-Receipt-Forms"


def accepts_batched_receipts(value: str | None) -> bool:
    """Whether a ``Cead-Receipt-Forms`` header value (comma-separated forms) names ``batch``."""
    return bool(value) and "batch" in (part.strip().lower() for part in value.split(","))
BINDING_PREFIX = "urn:cead:req:"


def _sha256_hex(data: bytes | None) -> str:
    return hashlib.sha256(data).hexdigest() if data else ""


def _split(url: str):
    try:
        return urlsplit(url)
    except (ValueError, TypeError, AttributeError):   # e.g. "https://[::1" or a non-string
        raise CeadError("request.url_invalid", f"Not a valid URL: {str(url)[:100]!r}") from None


def normalise_url(url: str) -> str:
    """The form of a request URL both sides agree on: lower-case scheme and host, the port always explicit,
    "/" for an empty path, the query as sent, no fragment. (A client may write ``https://host/x`` where a server
    rebuilds ``https://host:443/x``; both bind the same.)"""
    parts = _split(url)
    path = parts.path or "/"
    return origin(url) + path + (f"?{parts.query}" if parts.query else "")


def manifest_digest(manifest: dict | None) -> str:
    """SHA-256 hex of the manifest's canonical JSON (JCS), "" without a manifest: what the binding commits to (and
    what a receipt records as ``manifestSha256``)."""
    if manifest is None:
        return ""
    try:
        return hashlib.sha256(jcs.dumps(manifest)).hexdigest()
    except Exception as exc:   # NaN, integers beyond 2^53, non-JSON values
        raise CeadError("manifest.invalid", f"The transfer manifest cannot be canonicalised (JCS): {exc}.") from None


def request_binding(method: str, url: str, body: bytes | None = None, manifest: dict | None = None, *,
                    manifest_sha256: str | None = None) -> str:
    """The challenge/nonce that ties a presentation to exactly this request (``manifest_sha256``: the manifest's
    ``manifest_digest`` when the caller has it already)."""
    material = {
        "method": method.upper(),
        "url": normalise_url(url),
        "bodySha256": _sha256_hex(body),
        "manifestSha256": manifest_digest(manifest) if manifest_sha256 is None else manifest_sha256,
    }
    return BINDING_PREFIX + b64url(hashlib.sha256(jcs.dumps(material)).digest())


def origin(url: str) -> str:
    """The audience of a request: scheme://host:port (port always explicit)."""
    return _origin(url) if isinstance(url, str) else _origin.__wrapped__(url)


@functools.lru_cache(maxsize=1024)   # a function of the URL string alone, asked on every decision (bounded)
def _origin(url: str) -> str:
    parts = _split(url)
    try:
        port = parts.port
    except ValueError:
        raise CeadError("request.url_invalid", f"The URL has an invalid port: {url!r}") from None
    if not parts.scheme or not parts.hostname:
        raise CeadError("request.url_invalid", f"Not an absolute URL: {url!r}")
    scheme = parts.scheme.lower()
    host = parts.hostname  # urlsplit lower-cases it
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port or (443 if scheme == 'https' else 80)}"


def encode_manifest(manifest: dict) -> str:
    return b64url(json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode())


def decode_manifest(header: str, *, check_jcs: bool = True) -> dict[str, Any]:
    """The manifest a ``Cead-Transfer-Manifest`` header carries. ``check_jcs=False`` leaves the JCS check to
    ``request_binding`` (same code and message), for a caller that computes the binding at once: the gateway, so
    that the manifest is canonicalised once per request, not twice."""
    try:
        value = strict_json(b64url_decode(header.strip()), "the transfer manifest")
    except DuplicateMember:
        raise
    except (ValueError, CeadError, RecursionError):
        raise CeadError("manifest.invalid", "The transfer manifest header is not base64url-encoded JSON "
                        "(or is nested too deeply).") from None
    if not isinstance(value, dict):
        raise CeadError("manifest.invalid", "The transfer manifest must be a JSON object.")
    if not check_jcs:
        return value
    try:
        jcs.dumps(value)   # it is bound with JCS: numbers must be finite and within the I-JSON range
    except Exception as exc:
        raise CeadError("manifest.invalid", f"The transfer manifest cannot be canonicalised (JCS): {exc}.") from None
    return value


def encode_presentation(vp: dict | str) -> str:
    """Header value for a presentation: a compact JWT as is, a JSON VP as base64url(JSON)."""
    if isinstance(vp, str):
        return vp
    return b64url(json.dumps(vp, separators=(",", ":")).encode())


def decode_presentation(header: str) -> dict | str:
    value = header.strip()
    if value.lower().startswith("vp "):
        value = value[3:].strip()
    if dots(value) is not None:
        return value  # compact JWS
    try:
        doc = strict_json(b64url_decode(value), "the presentation")
    except DuplicateMember:
        raise
    except (ValueError, RecursionError, CeadError):
        raise CeadError("presentation.malformed",
                        "The presentation header is neither a compact JWT nor base64url-encoded JSON.") from None
    if not isinstance(doc, dict):
        raise CeadError("presentation.malformed", "The presentation must be a JSON object.")
    return doc
