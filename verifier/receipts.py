"""Signed decision receipts: a compact JWS a gateway can log as evidence of what was decided and why (or, when
several are sealed at the same moment, a batched receipt sharing one signature: :mod:`verifier.receipt_batch`).

The receipt key is the only private key a verifier may hold, and it is optional: without one, decisions carry no
receipt. The key is read from a PEM (PKCS#8, optionally encrypted) or JWK file named in the trust policy. It is
never printed or logged; ``repr`` shows only the key id.
"""
from __future__ import annotations

import binascii
import csv
import hashlib
import io
import json
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwcrypto import jwk, jws
from jwcrypto.common import JWException

try:   # a compiled JSON encoder (Apache-2.0 or MIT): a receipt's claims in ~2 us instead of ~12-25 us
    import orjson
except ImportError:   # pragma: no cover  (a dependency; without it the standard library's encoder is used)
    orjson = None

from . import receipt_batch
from .jose import unverified_claims
from .keys import PublicKey
from .receipt_batch import BATCH_TYPE, GroupCommit
from .results import CeadError
from .tlog import merkle
from schemas.values import strict_json

RECEIPT_TYPE = "cead-receipt+jwt"

# A receipt is signed on every decision, on the deciding thread: its claims are encoded compact with sorted keys
# (orjson when installed; else one standard-library encoder built once: the claims are Cead's own, never circular),
# and the JWS is assembled as bytes.
if orjson is not None:
    def _claims_json(claims: dict) -> bytes:
        return orjson.dumps(claims, option=orjson.OPT_SORT_KEYS)
else:   # pragma: no cover
    _std_encode = json.JSONEncoder(separators=(",", ":"), sort_keys=True, check_circular=False).encode

    def _claims_json(claims: dict) -> bytes:
        return _std_encode(claims).encode()


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> bytes:
    """base64url without padding (RFC 7515), as bytes."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=")


def _b64str(data: bytes) -> str:
    return _b64(data).decode("ascii")


_JTIS = deque()   # receipt ids made 256 at a time from one os.urandom call (one system call per 256 receipts)
os.register_at_fork(after_in_child=_JTIS.clear)   # a forked worker never reuses its parent's ids


def _uuid4(raw: bytes) -> str:
    raw = bytearray(raw)
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"urn:uuid:{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_jti() -> str:
    """A receipt id: ``urn:uuid:`` and a random (version 4) UUID, as ``uuid.uuid4()`` makes it (from
    ``os.urandom``); made in blocks of 256 off the per-receipt path, so a receipt takes one ready id."""
    try:
        return _JTIS.popleft()   # atomic: two threads never get the same id
    except IndexError:
        data = os.urandom(16 * 256)
        _JTIS.extend(_uuid4(data[i:i + 16]) for i in range(16, len(data), 16))
        return _uuid4(data[:16])


class ReceiptSigner:
    """Signs receipts with an Ed25519 (EdDSA) or P-256 (ES256) key."""

    __slots__ = ("_key", "_op", "_sign_raw", "_kid", "_header", "_batch_header", "_did", "_group", "alg", "public")

    def __init__(self, key: jwk.JWK, kid: str | None = None, *, batch: bool = True):
        if not key.has_private:
            raise CeadError("receipt.key_invalid", "The receipt key file holds no private key.")
        public = PublicKey.from_jwk(key.export_public(as_dict=True))
        self._key = key
        self.public = public
        self.alg = public.jose_alg
        self._op = key.get_op_key("sign")   # the cryptography key object, built once (not on every receipt)
        # the raw signature function, chosen once (not by algorithm on every receipt)
        self._sign_raw = self._op.sign if self.alg == "EdDSA" else self._es_signature
        self.kid = kid or f"urn:cead:receipt-key:{key.thumbprint()}"   # also makes the JWS headers and the DID
        # receipts sealed at the same moment share one signature (verifier.receipt_batch); a lone one is signed
        # alone, as a plain receipt. ``batch=False``: every receipt signed alone (policy ``receipts.batch``).
        self._group = GroupCommit(self._sign_bytes, self._sign_batch) if batch else None

    @property
    def kid(self) -> str:
        return self._kid

    @kid.setter
    def kid(self, kid: str) -> None:
        """The key id; may be reassigned after construction: the JWS headers (plain and batch) and the signer's DID
        are derived from it here, once, not on every receipt."""
        self._kid = kid
        self._header, self._batch_header = (
            _b64(json.dumps({"alg": self.alg, "kid": kid, "typ": typ}, separators=(",", ":")).encode()) + b"."
            for typ in (RECEIPT_TYPE, BATCH_TYPE))
        text = kid or ""
        self._did = text.split("#", 1)[0] if text.startswith("did:") else None

    @classmethod
    def from_file(cls, path: str | Path, kid: str | None = None, passphrase: bytes | None = None, *,
                  batch: bool = True) -> "ReceiptSigner":
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
            return cls(key, kid, batch=batch)
        except CeadError as exc:
            if exc.code.startswith("key."):
                raise CeadError("receipt.key_invalid", f"Receipt key: {exc.message}") from None
            raise

    def sign(self, claims: dict[str, Any]) -> str:
        """A compact JWS (RFC 7515) signed directly with the key (a receipt is signed on every decision; the JOSE
        library's general path costs more than the signature): the same standard JWS, verified with the JOSE
        library (:func:`verify_receipt`). Always signed alone: :meth:`sign_receipt` shares signatures."""
        return self._sign_bytes(_claims_json(self._body(claims)))

    def sign_receipt(self, claims: dict[str, Any], sink=None, batch: bool = True) -> str:
        """A decision's receipt, handed to ``sink`` (``sink(token, claims)``; a sink with ``append_many``, the
        spool, may be given a whole batch at once) before it is returned: signed alone (a plain receipt, as
        :meth:`sign`) unless other receipts are being signed at this moment, in which case it waits and shares
        the next signature with every receipt pending then (a batched receipt: :mod:`verifier.receipt_batch`)."""
        body = _claims_json(claims if "iat" in claims and "jti" in claims else self._body(claims))
        group = self._group if batch else None   # batch=False: the reader takes plain receipts only
        if group is None:
            token = self._sign_bytes(body)
            if sink is not None:
                sink(token, claims)
            return token
        return group.submit(body, sink, claims)

    @property
    def batches(self) -> tuple[int, int]:
        """(signatures made for receipts, receipts signed) by :meth:`sign_receipt` so far."""
        return (self._group.batches, self._group.receipts) if self._group is not None else (0, 0)

    @property
    def did(self) -> str | None:
        """The signer's DID: the part of its key id before ``#`` when the key id is a DID URL."""
        return self._did

    @staticmethod
    def _body(claims: dict[str, Any]) -> dict[str, Any]:
        body = claims if "iat" in claims else {"iat": int(time.time()), **claims}
        if "jti" not in body:
            body = {**body, "jti": new_jti()}
        return body

    def _jws_header(self, batch: bool = False) -> bytes:
        return self._batch_header if batch else self._header

    def _es_signature(self, signing_input: bytes) -> bytes:
        r, s_ = decode_dss_signature(self._op.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s_.to_bytes(32, "big")

    def _signature(self, signing_input: bytes) -> bytes:
        return self._sign_raw(signing_input)

    def _sign_bytes(self, claims_json: bytes) -> str:
        signing_input = self._header + _b64(claims_json)
        return (signing_input + b"." + _b64(self._sign_raw(signing_input))).decode("ascii")

    def _sign_batch(self, bodies: list[bytes]) -> list[str]:
        """One signature over the Merkle root of these receipts' claims (verifier.receipt_batch)."""
        root, paths = receipt_batch.tree([merkle.leaf_hash(b) for b in bodies])
        statement = {"v": RECEIPT_VERSION, "iat": int(time.time()), "root": _b64(root).decode("ascii"),
                     "size": len(bodies)}
        if self.did:
            statement["iss"] = self.did
        signing_input = self._batch_header + _b64(_claims_json(statement))
        jws_part = (signing_input + b"." + _b64(self._sign_raw(signing_input))).decode("ascii")
        return [receipt_batch.encode(jws_part, _b64(body).decode("ascii"), i, path, _b64str)
                for i, (body, path) in enumerate(zip(bodies, paths))]

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
    return ReceiptSigner.from_file(policy.path(receipts.key), receipts.kid, passphrase,
                                   batch=getattr(receipts, "batch", True))


def verify_receipt(token: str, public: PublicKey) -> dict[str, Any]:
    """Check a receipt's signature with the gateway's public key; returns its claims. Both forms: a plain receipt
    (a compact JWS over the claims) and a batched one (a signature over a Merkle root, the claims and their
    inclusion path: :mod:`verifier.receipt_batch`)."""
    batched = receipt_batch.is_batched(token)
    if batched:
        token, claims_bytes, index, path = receipt_batch.split(token)
    try:
        obj = jws.JWS()
        obj.deserialize(token)
        header = obj.jose_header
        if header.get("typ") != (BATCH_TYPE if batched else RECEIPT_TYPE) or header.get("alg") != public.jose_alg:
            raise CeadError("receipt.invalid", "Not a Cead receipt signed with the expected algorithm.")
        obj.verify(jwk.JWK(**public.to_jwk()), alg=public.jose_alg)
        payload = strict_json(obj.payload, "the receipt")
    except (JWException, ValueError, RecursionError) as exc:
        raise CeadError("receipt.invalid", f"The receipt does not verify: {exc}") from None
    except CeadError as exc:   # a duplicate member in the payload, say: still an invalid receipt
        if exc.code.startswith("receipt."):
            raise
        raise CeadError("receipt.invalid", f"The receipt does not verify: {exc.message}") from None
    if not isinstance(payload, dict):
        raise CeadError("receipt.invalid", "The receipt's payload is not a JSON object.")
    if not batched:
        return payload
    receipt_batch.check_inclusion(claims_bytes, index, payload, path)
    claims = _claims_object(claims_bytes)
    if payload.get("iss") != claims.get("iss"):
        raise CeadError("receipt.invalid", f"The receipt names {claims.get('iss')} as its gateway, its batch "
                        f"signature {payload.get('iss')}.")
    return claims


def _claims_object(data: bytes) -> dict[str, Any]:
    try:
        claims = strict_json(data, "the receipt's claims")
    except (ValueError, RecursionError, CeadError):   # malformed, too deep, a member named twice
        claims = None
    if not isinstance(claims, dict):
        raise CeadError("receipt.invalid", "The receipt's claims are not a JSON object.")
    return claims


def unverified_receipt_claims(token: str) -> dict[str, Any]:
    """A receipt's claims, NOT verified (for storing and listing what is, or will be, verified): either form."""
    if not isinstance(token, str):
        raise CeadError("receipt.invalid", "A receipt is a string.")
    if receipt_batch.is_batched(token):
        return _claims_object(receipt_batch.split(token)[1])
    try:
        return unverified_claims(token)
    except CeadError:
        raise CeadError("receipt.invalid", "Not a receipt (a compact JWS, or a batched receipt).") from None


def receipt_form(token: str) -> dict[str, Any]:
    """How a receipt is signed: ``{"form": "plain"}`` (alone), or ``{"form": "batch", "index": i, "size": n}``
    (one of the ``n`` receipts a batch signature covers; read, NOT verified)."""
    if not receipt_batch.is_batched(token):
        return {"form": "plain"}
    jws_part, _, index, _ = receipt_batch.split(token)
    try:
        size = unverified_claims(jws_part).get("size")
    except CeadError:
        size = None
    return {"form": "batch", "index": index, "size": size}


def relied_on(claims: dict[str, Any]) -> list[str]:
    """The credentials a receipt's decision relied on, as ``"<id> <digest>"`` (what ``Decision.relied_on`` holds),
    from ``credentials``: every receipt has it (``reliedOn``, the same as strings, is written by older gateways
    only)."""
    return [f"{c.get('id') or ''} {c.get('digest')}".lstrip() for c in claims.get("credentials") or []
            if isinstance(c, dict)]


# ---- what a receipt says (issue 15) ------------------------------------------------------------------------------
#
# A receipt is evidence of one decision and of exactly what moved: the request binding, the manifest's hash, the
# SHA-256 and row count of the payload that actually moved (the request body for a push, the response body for a
# pull, counted from the bytes, never from the manifest), the decision and its reason codes, the digests of the
# credentials relied on, the time and the gateway as signer (``iss``: its DID; the JWS ``kid`` a verification method
# in that DID's document).

RECEIPT_VERSION = 1
MAX_ROWS_READ = 10_000_000


def sha256_hex(data: bytes | None) -> str | None:
    return hashlib.sha256(data).hexdigest() if data is not None else None


def _unquoted_records(text, newline):
    """Records after the header of a CSV without quoting and with only "\n" line breaks (``text`` bytes or str,
    ``newline`` of the same kind): each non-empty line is one record, exactly as the csv module reads it, counted at
    memory speed (a large pull's receipt is counted on the deciding thread)."""
    if newline + newline in text:   # blank lines (no record) inside
        lines = text.split(newline)
        records = len(lines) - lines.count(text[:0])
    else:                           # at most a blank first and last line
        records = text.count(newline) + 1 - text.startswith(newline) - text.endswith(newline) if text else 0
    return max(records - 1, 0)


def count_rows(payload: bytes | None, content_type: str = "") -> int | None:
    """The rows in a payload, from its bytes: a JSON array (or an object's single array under ``rows``/``data``/
    ``items``), JSON lines, or CSV (records after the header). None when there is no payload or it is not a table."""
    if payload is None:
        return None
    kind = content_type.partition(";")[0].strip().lower() if content_type else ""
    if kind and "json" not in kind and payload.isascii() and b'"' not in payload and b"\r" not in payload \
            and b"\x00" not in payload:
        # a CSV of ASCII bytes (the usual table), unquoted, "\n" line breaks only: counted on the bytes (ASCII
        # decodes to itself and has no byte-order mark), without decoding them first
        return _unquoted_records(payload, b"\n")
    try:   # UTF-8, a byte-order mark dropped (as the "utf-8-sig" codec does, without its Python-level wrapper)
        text = (payload[3:] if payload[:3] == b"\xef\xbb\xbf" else payload).decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "json" in kind or (not kind and text.lstrip()[:1] in "[{"):
        if kind.endswith("jsonl") or kind.endswith("x-ndjson"):
            return sum(1 for line in text.splitlines() if line.strip())
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if isinstance(data, list):
            return len(data)
        if isinstance(data, dict):
            for key in ("rows", "data", "items"):
                if isinstance(data.get(key), list):
                    return len(data[key])
        return None
    if '"' not in text and "\r" not in text and "\x00" not in text:
        return _unquoted_records(text, "\n")
    try:
        rows = sum(1 for r in csv.reader(io.StringIO(text, newline="")) if r)
    except csv.Error:
        return None
    return max(rows - 1, 0)


def manifest_sha256(manifest: dict | None) -> str | None:
    from schemas import jcs
    if manifest is None:
        return None
    try:
        return sha256_hex(jcs.dumps(manifest))
    except Exception:
        return None


def payload_evidence(payload: bytes | None, content_type: str = "", direction: str = "push") -> dict[str, Any]:
    """The ``payload`` claim: what moved, by whom it was counted (the gateway, from the bytes)."""
    if payload is None:
        return {"direction": direction, "sha256": None, "bytes": 0, "rows": None}
    return {"direction": direction, "sha256": sha256_hex(payload), "bytes": len(payload),
            "rows": count_rows(payload, content_type)}


def receipt_claims(decision, *, gateway: str | None = None) -> dict[str, Any]:
    """The claims of a decision's receipt. ``decision.evidence`` (set by the decider and, for a pull, by the
    gateway once the response is known) carries the binding, manifest hash and payload. The credentials relied on
    are ``credentials`` (id and digest each); older receipts also repeat them as strings in ``reliedOn``
    (:func:`relied_on` reads either)."""
    evidence = decision.evidence or {}
    manifest = decision.manifest
    if isinstance(manifest, dict):
        dataset, purpose = manifest.get("dataset"), manifest.get("purpose")
        dataset = dataset[:512] if isinstance(dataset, str) else None
        purpose = purpose[:512] if isinstance(purpose, str) else None
    else:
        dataset = purpose = None
    claims = {
        "v": RECEIPT_VERSION,
        "decision": "allow" if decision.allowed else "deny",
        "reasons": [p.code for p in decision.reasons],
        "credentials": _credentials(decision.relied_on),
        "holder": decision.holder, "approval": decision.approval_id,
        "method": decision.method, "url": decision.url,
        "binding": evidence.get("binding"),
        "manifestSha256": evidence.get("manifestSha256"),
        "dataset": dataset, "purpose": purpose,
        "payload": evidence.get("payload") or payload_evidence(None, direction=evidence.get("direction", "none")),
        "decidedAt": decision.decided_at.isoformat().replace("+00:00", "Z"),
    }
    if gateway:
        claims["iss"] = gateway
    return claims


# The ``credentials`` claim of the sets of credentials recently relied on: a gateway relies on the same few sets
# again and again (each recipient's approval, its chain and certification), so each set's entries are made once
# and shared, read-only, by the receipts that rely on it (building them took about a quarter of the claims' time
# on the deciding thread); each receipt gets its own list. Bounded, cleared when full.
class _Entry(dict):
    """One ``credentials`` entry, shared between receipts: read-only (a change raises)."""
    __slots__ = ()

    def _read_only(self, *args, **kwargs):
        raise TypeError("a receipt's credentials entry is read-only (shared by receipts relying on it)")

    __setitem__ = __delitem__ = __ior__ = update = pop = popitem = clear = setdefault = _read_only   # type: ignore

    def __copy__(self) -> dict:
        return dict(self)

    def __reduce__(self):
        return dict, (dict(self),)


_CREDENTIALS: dict[tuple[str, ...], tuple[_Entry, ...]] = {}
_CREDENTIALS_MAX = 1024


def _credentials(relied_on) -> list[dict[str, Any]]:
    key = tuple(relied_on)
    entries = _CREDENTIALS.get(key)
    if entries is None:
        if len(_CREDENTIALS) >= _CREDENTIALS_MAX:
            _CREDENTIALS.clear()
        entries = _CREDENTIALS[key] = tuple(_Entry(id=ident or None, digest=digest)
                                            for ident, _, digest in (entry.rpartition(" ") for entry in key))
    return list(entries)


def request_evidence(request, allowed: bool = True) -> dict[str, Any]:
    """The binding, manifest hash and (for a push) payload of a transfer request, for its receipt. A denied push
    moved nothing: its payload is recorded as nothing moved, with the bytes offered hashed (``offered``) but never
    parsed or counted, so a body refused unread (``transfer.body_too_large``) stays unread."""
    try:
        binding = request.binding
        # the binding hashed the manifest already (TransferRequest keeps that digest): the same value, not redone
        manifest_hash = request.manifest_sha256 if hasattr(request, "manifest_sha256") \
            else manifest_sha256(request.manifest)
    except CeadError:
        binding, manifest_hash = None, manifest_sha256(request.manifest)
    push = request.is_push if hasattr(request, "is_push") else request.method.upper() in ("POST", "PUT", "PATCH")
    body = bytes(request.body) if request.body else None
    out: dict[str, Any] = {"binding": binding, "manifestSha256": manifest_hash,
                           "direction": "push" if push else "pull",
                           # the gateway will hash the response and sign then (middleware): no provisional receipt
                           "deferred": not push and bool(getattr(request, "response_checked", False)),
                           # the client reads batched receipts: its receipt may share a signature
                           "batch": bool(getattr(request, "receipt_batch", False))}
    if push and allowed:
        out["payload"] = payload_evidence(body, "", "push")
    elif push:
        out["payload"] = {"direction": "push", "sha256": None, "bytes": 0, "rows": None,
                          "offered": {"sha256": sha256_hex(body), "bytes": len(body)} if body is not None else None}
    return out


def seal(signer: "ReceiptSigner", decision, sink=None) -> str | None:
    """Sign (or re-sign, once the payload is known: same ``jti``) the decision's receipt and hand it to ``sink``
    (e.g. the provider node's receipt store), if any. Receipts sealed at the same moment on other threads may
    share its signature (:meth:`ReceiptSigner.sign_receipt`)."""
    evidence = decision.evidence
    if evidence is None:
        evidence = decision.evidence = {}
    if evidence.get("deferred") and decision.allowed and "payload" not in evidence:
        return None   # an allowed pull behind the middleware: signed once, when its response is hashed
    jti = evidence.get("jti")
    if jti is None:
        jti = evidence["jti"] = new_jti()
    claims = receipt_claims(decision, gateway=signer.did)
    claims["jti"] = jti
    claims["iat"] = int(time.time())
    # spooled (acknowledged) once it returns; batched with others only for a client that reads batched receipts
    decision.receipt = receipt = signer.sign_receipt(claims, sink, batch=bool(evidence.get("batch")))
    return receipt


def seal_payload(decider, decision, payload: bytes | None, content_type: str = "") -> str | None:
    """Once a pull's response is known: record the bytes that moved and sign the final receipt."""
    if decider.receipt_signer is None:
        return None
    record_payload(decision, payload, content_type, "pull")
    return seal(decider.receipt_signer, decision, getattr(decider, "receipt_sink", None))


def record_payload(decision, payload: bytes | None, content_type: str = "", direction: str = "pull") -> None:
    evidence = getattr(decision, "evidence", None)
    if evidence is None:
        evidence = {}
        decision.evidence = evidence
    evidence["payload"] = payload_evidence(payload, content_type, direction)


def receipt_header(token: str) -> dict[str, Any]:
    """The JWS header of a receipt (of its batch signature, for a batched receipt): ``kid`` names the signer."""
    if receipt_batch.is_batched(token):
        token = receipt_batch.split(token)[0]   # receipt.batch_invalid when malformed
    try:
        obj = jws.JWS()
        obj.deserialize(token)
        return dict(obj.jose_header)
    except (JWException, ValueError, TypeError):
        raise CeadError("receipt.invalid", "The receipt is not a compact JWS (nor a batched receipt).") from None


def signer_did_url(token: str) -> str | None:
    """The DID URL a receipt's ``kid`` names its signing key by, or None when the key is named otherwise (a
    gateway without a DID names it by its thumbprint, ``urn:cead:receipt-key:...``): such a receipt can be checked
    only with its key given (``verify_receipt``), never against a DID document. ``receipt.invalid`` when the token
    is no receipt."""
    kid = receipt_header(token).get("kid")
    return kid if isinstance(kid, str) and kid.startswith("did:") and "#" in kid else None


def verify_receipt_with(token: str, resolver, *, payload: bytes | None = None) -> dict[str, Any]:
    """Verify a receipt against its signer's DID document (``kid`` a DID URL; did:web or did:key) and, when
    ``payload`` is given, that it records exactly those bytes (``receipt.payload_mismatch`` otherwise)."""
    from .did import split_did_url
    kid = signer_did_url(token)
    if kid is None:
        raise CeadError("receipt.signer_unknown", "The receipt's signer is not named by a DID URL (kid).")
    try:
        _, public = resolver.public_key_for(kid, "assertionMethod")
    except CeadError as exc:
        raise CeadError("receipt.signer_unknown", f"The receipt's signer {kid} cannot be resolved: {exc.message}") \
            from None
    claims = verify_receipt(token, public)
    did, _ = split_did_url(kid)
    if claims.get("iss") not in (None, did):
        raise CeadError("receipt.invalid", f"The receipt names {claims.get('iss')} as its gateway but is signed by "
                        f"{did}.")
    if payload is not None:
        check_payload(claims, payload)
    return claims


def check_payload(claims: dict[str, Any], payload: bytes) -> None:
    recorded = (claims.get("payload") or {}).get("sha256")
    if recorded != sha256_hex(payload):
        raise CeadError("receipt.payload_mismatch", "The receipt is for other bytes than these: its payload hash "
                        f"is {str(recorded)[:16]}..., these bytes hash to {sha256_hex(payload)[:16]}...",
                        recorded=recorded, actual=sha256_hex(payload))
