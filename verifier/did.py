"""DID resolution: did:key (Ed25519, P-256), did:jwk and did:web, and verification-method lookup by purpose.

``Resolver.public_key_for(vm_id, purpose)`` is the one place that decides whether a key may be used for a purpose
(``assertionMethod`` to issue, ``authentication`` to present). did:web documents are fetched with
``verifier.http.Fetcher`` and kept in a bounded TTL cache; failures are never cached. Identifiers that are https
URLs (controller documents, W3C Controlled Identifiers) are resolved by ``verifier.controller.ControllerMethod``,
registered under the name ``https`` beside the DID methods.
"""
from __future__ import annotations

import copy
import functools
import json
import re
import threading
import time
from typing import Any, Iterable
from urllib.parse import quote, unquote, urlsplit

import base58
from cachetools import LRUCache, TTLCache

from schemas import jcs
from schemas.values import strict_json

from .http import Fetcher
from .keys import ED25519, P256, PublicKey, b64url, b64url_decode
from .results import CeadError
from .singleflight import SingleFlight

DID_CONTEXT = "https://www.w3.org/ns/did/v1"
MULTIKEY_CONTEXT = "https://w3id.org/security/multikey/v1"
JWS2020_CONTEXT = "https://w3id.org/security/suites/jws-2020/v1"
PURPOSES = ("assertionMethod", "authentication", "capabilityInvocation", "capabilityDelegation", "keyAgreement")
DEFAULT_PURPOSES = ("assertionMethod", "authentication", "capabilityInvocation")

# DID Core: did = "did:" method-name ":" method-specific-id; idchar = ALPHA / DIGIT / "." / "-" / "_" / pct-encoded
_IDCHARS = r"(?:[A-Za-z0-9._-]|%[0-9A-Fa-f]{2})*"
_DID_RE = re.compile(rf"^did:([a-z0-9]+):({_IDCHARS}(?::{_IDCHARS})*)$")
_HOST_RE = re.compile(r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$")
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9._~-]+$")
MAX_DID_LENGTH = 2048
_P256_JWK_TYPE = "EcdsaSecp256r1VerificationKey2019"  # as didkit writes P-256 keys
_JWK_TYPES = ("JsonWebKey", "JsonWebKey2020", _P256_JWK_TYPE)


def parse_did(did: str) -> tuple[str, str]:
    """Split a bare DID into (method, method-specific-id); raises did.invalid."""
    if not isinstance(did, str) or len(did) > MAX_DID_LENGTH:
        raise CeadError("did.invalid", "A DID must be a string of reasonable length.")
    return _parse_did(did)


@functools.lru_cache(maxsize=1024)
def _parse_did(did: str) -> tuple[str, str]:
    """``parse_did`` of a string, memoised (every key lookup parses its DID; the pattern walks it character by
    character, alternation and all); an invalid DID raises every time."""
    match = _DID_RE.match(did)
    if not match or not match.group(2) or did.endswith(":"):
        raise CeadError("did.invalid", f"{did[:120]!r} is not a valid DID (did:<method>:<id>).", did=did[:120])
    return match.group(1), match.group(2)


def split_did_url(did_url: str) -> tuple[str, str]:
    """Split a DID URL into (did, fragment). Only fragment DID URLs are supported (no path or query)."""
    if not isinstance(did_url, str):
        raise CeadError("did.invalid", "A DID URL must be a string.")
    did, _, fragment = did_url.partition("#")
    parse_did(did)
    if not fragment:
        raise CeadError("did.invalid", f"{did_url[:120]!r} has no #fragment naming a verification method.")
    return did, fragment


def _absolute(ref: str, base: str) -> str:
    return base + ref if isinstance(ref, str) and ref.startswith("#") else ref


# ---- building documents ----------------------------------------------------------------------------------------
def did_key(key: PublicKey) -> str:
    return "did:key:" + key.to_multikey()


def did_jwk(key: PublicKey) -> str:
    return "did:jwk:" + b64url(jcs.dumps(key.to_jwk()))


def _multikey_vm(vm_id: str, controller: str, key: PublicKey) -> dict:
    return {"id": vm_id, "type": "Multikey", "controller": controller, "publicKeyMultibase": key.to_multikey()}


def build_did_document(did: str, keys: Iterable[tuple[str, PublicKey]], *,
                       purposes: Iterable[str] = DEFAULT_PURPOSES,
                       retired: Iterable[tuple[str, PublicKey]] = ()) -> dict:
    """A DID document with Multikey verification methods.

    Every key in ``keys`` is listed under ``verificationMethod`` and referenced from each of ``purposes``;
    keys in ``retired`` appear only under ``verificationMethod`` (old signatures stay checkable as key material
    but no longer count for any purpose). ``vm_id`` may be absolute or relative (``#key-1``).
    """
    parse_did(did)
    purposes = list(purposes)
    for purpose in purposes:
        if purpose not in PURPOSES:
            raise CeadError("did.document_invalid", f"Unknown verification relationship {purpose!r}.")
    active = [(_absolute(vm_id, did), key) for vm_id, key in keys]
    old = [(_absolute(vm_id, did), key) for vm_id, key in retired]
    doc: dict[str, Any] = {
        "@context": [DID_CONTEXT, MULTIKEY_CONTEXT],
        "id": did,
        "verificationMethod": [_multikey_vm(vm_id, did, key) for vm_id, key in active + old],
    }
    for purpose in purposes:
        doc[purpose] = [vm_id for vm_id, _ in active]
    return doc


# ---- did:web URLs ------------------------------------------------------------------------------------------------
def did_web_url(did: str) -> str:
    """The HTTPS URL of a did:web document (did:web spec, "Read (Resolve)")."""
    method, msid = parse_did(did)
    if method != "web":
        raise CeadError("did.invalid", f"{did!r} is not a did:web DID.")
    domain, *path = msid.split(":")
    host, _, port = unquote(domain).lower().partition(":")
    if not _HOST_RE.match(host) or (port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536)):
        raise CeadError("did.invalid", f"{did!r} does not name a valid domain (and optional %3A port).")
    segments = [unquote(s) for s in path]
    if any(not _SEGMENT_RE.match(s) or s in (".", "..") for s in segments):
        raise CeadError("did.invalid", f"{did!r} has an invalid path segment.")
    authority = f"{host}:{port}" if port else host
    return f"https://{authority}/{'/'.join(segments) + '/' if segments else '.well-known/'}did.json"


def did_web_from_url(url: str) -> str:
    """The did:web DID for ``https://host[:port][/path]`` (an origin, a path, or the did.json URL itself)."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment or parts.username:
        raise CeadError("did.invalid", f"{url!r} is not an https URL usable for did:web.")
    host = parts.hostname.lower()
    if not _HOST_RE.match(host):
        raise CeadError("did.invalid", f"{host!r} is not a valid domain name for did:web.")
    segments = [s for s in parts.path.split("/") if s]
    if segments and segments[-1] == "did.json":
        segments.pop()
    if segments == [".well-known"]:
        segments = []
    if any(not _SEGMENT_RE.match(s) or s in (".", "..") for s in segments):
        raise CeadError("did.invalid", f"{url!r} has a path segment not usable in a did:web DID.")
    domain = host + (f"%3A{parts.port}" if parts.port and parts.port != 443 else "")
    return ":".join(["did:web", domain] + [quote(s, safe="") for s in segments])


# ---- verification methods -----------------------------------------------------------------------------------------
def vm_public_key(vm: dict) -> PublicKey:
    """The public key of a verification method (Multikey, JsonWebKey[2020], Ed25519VerificationKey2020/2018)."""
    kind = vm.get("type")
    try:
        if kind in _JWK_TYPES or (kind == "Ed25519VerificationKey2018" and "publicKeyJwk" in vm):
            key = PublicKey.from_jwk(vm.get("publicKeyJwk"))
        elif kind in ("Multikey", "Ed25519VerificationKey2020"):
            key = PublicKey.from_multikey(vm.get("publicKeyMultibase"))
        elif kind == "Ed25519VerificationKey2018":
            raw = vm.get("publicKeyBase58")
            if not isinstance(raw, str):
                raise CeadError("key.invalid", "publicKeyBase58 is missing.")
            key = PublicKey(ED25519, base58.b58decode(raw))
            key.crypto()
        else:
            raise CeadError("did.vm_unsupported", f"Verification method type {str(kind)[:60]!r} is not supported "
                            "(use Multikey, JsonWebKey, Ed25519VerificationKey2020 or 2018).", vm=vm.get("id"))
    except CeadError as exc:
        if exc.code == "did.vm_unsupported":
            raise
        raise CeadError("did.document_invalid", f"Verification method {vm.get('id')!r} has unusable key "
                        f"material: {exc.message}", vm=vm.get("id")) from None
    except ValueError:
        raise CeadError("did.document_invalid", f"Verification method {vm.get('id')!r} has undecodable key "
                        "material.", vm=vm.get("id")) from None
    if str(kind).startswith("Ed25519") and key.kind != ED25519 or kind == _P256_JWK_TYPE and key.kind != P256:
        raise CeadError("did.document_invalid", f"{kind} {vm.get('id')!r} holds a key of another type.")
    return key


def ed25519_keys(document: dict) -> list[bytes]:
    """The raw Ed25519 keys among a DID document's verification methods (methods that hold no usable key, or a key
    of another type, are passed over): the keys a node's log checkpoints may be signed with."""
    keys = []
    for vm in document.get("verificationMethod", []) if isinstance(document, dict) else []:
        try:
            key = vm_public_key(vm)
        except CeadError:
            continue
        if key.kind == ED25519:
            keys.append(key.raw)
    return keys


def _normalise(doc: Any, did: str) -> dict:
    """Check the shape of a DID document and make every verification method id absolute."""
    if not isinstance(doc, dict):
        raise CeadError("did.document_invalid", f"The DID document for {did} is not a JSON object.", did=did)
    if doc.get("id") != did:
        raise CeadError("did.document_invalid", f"The DID document's id {str(doc.get('id'))[:120]!r} is not {did}.",
                        did=did)
    doc = copy.deepcopy(doc)

    seen: set[str] = set()

    def fix_vm(vm: Any) -> dict:
        if not isinstance(vm, dict) or not isinstance(vm.get("id"), str) or not isinstance(vm.get("type"), str):
            raise CeadError("did.document_invalid", f"A verification method in {did} lacks an id or type.", did=did)
        vm["id"] = _absolute(vm["id"], did)
        if vm["id"] in seen:   # two keys under one id: which one signed is ambiguous, so neither is used
            raise CeadError("did.document_invalid", f"The DID document for {did} lists the verification method id "
                            f"{vm['id'][:120]!r} more than once.", did=did, vm=vm["id"][:120])
        seen.add(vm["id"])
        vm.setdefault("controller", did)
        if vm["controller"] != did:
            # this verifier relies on a key only for the DID whose document lists it and controls it
            raise CeadError("did.document_invalid", f"Verification method {vm['id'][:120]!r} in {did} names another "
                            f"controller ({str(vm['controller'])[:120]!r}).", did=did, vm=vm["id"][:120])
        return vm

    vms = doc.get("verificationMethod", [])
    if not isinstance(vms, list):
        raise CeadError("did.document_invalid", f"verificationMethod in {did} must be a list.", did=did)
    doc["verificationMethod"] = [fix_vm(vm) for vm in vms]
    for purpose in PURPOSES:
        if purpose not in doc:
            continue
        refs = doc[purpose]
        if not isinstance(refs, list):
            raise CeadError("did.document_invalid", f"{purpose} in {did} must be a list.", did=did)
        doc[purpose] = [_absolute(ref, did) if isinstance(ref, str) else fix_vm(ref) for ref in refs]
    return doc


# ---- DID methods ----------------------------------------------------------------------------------------------------
class DidMethod:
    """One DID method: ``resolve(did, method_specific_id) -> document`` (ids absolute, shape checked). A method
    that needs the network is given a fetcher; without one it never reaches the network."""

    name: str = ""

    def resolve(self, did: str, msid: str) -> dict:
        raise NotImplementedError


class KeyMethod(DidMethod):
    """did:key (Ed25519, P-256): the document is derived from the DID itself."""
    name = "key"

    def __init__(self, cache_size: int = 1024):
        # the document is a function of the DID alone: kept (bounded) so that a holder's or issuer's did:key is
        # not decoded and rebuilt on every decision; read only, as every resolver's documents are (``_document``)
        self._docs: LRUCache = LRUCache(maxsize=max(cache_size, 1))
        self._lock = threading.Lock()

    def resolve(self, did: str, msid: str) -> dict:
        with self._lock:
            doc = self._docs.get(did)
        if doc is not None:
            return doc
        try:
            key = PublicKey.from_did_key(msid)   # strict: base58btc, exact key length (did:key spec)
        except CeadError as exc:
            code = "did.method_unsupported" if exc.code == "key.unsupported" else "did.invalid"
            raise CeadError(code, f"{did[:120]}: {exc.message}", did=did[:120]) from None
        doc = build_did_document(did, [("#" + msid, key)], purposes=PURPOSES[:4])
        with self._lock:
            self._docs[did] = doc
        return doc

    def clear(self) -> None:
        with self._lock:
            self._docs.clear()


class JwkMethod(DidMethod):
    """did:jwk: the document is derived from the JWK in the DID."""
    name = "jwk"

    def resolve(self, did: str, msid: str) -> dict:
        try:
            jwk = json.loads(b64url_decode(msid))
            PublicKey.from_jwk(jwk)  # validates: a supported public key, no private part
        except (ValueError, CeadError) as exc:
            code = "did.method_unsupported" if getattr(exc, "code", "") == "key.unsupported" else "did.invalid"
            raise CeadError(code, f"did:jwk does not hold a usable public JWK: {getattr(exc, 'message', exc)}",
                            did=did[:120]) from None
        vm_id = did + "#0"
        vm = {"id": vm_id, "type": "JsonWebKey2020", "controller": did, "publicKeyJwk": jwk}
        purposes = ["keyAgreement"] if jwk.get("use") == "enc" else list(PURPOSES[:4])
        doc = {"@context": [DID_CONTEXT, JWS2020_CONTEXT], "id": did, "verificationMethod": [vm]}
        doc.update({p: [vm_id] for p in purposes})
        return doc


class WebMethod(DidMethod):
    """did:web over HTTPS with ``fetcher`` (``verifier.http.Fetcher``; None: did:web is refused, nothing is
    fetched). Documents are kept in a bounded TTL cache (failures never are), and one fetch per DID is in flight
    at a time: concurrent resolutions of the same DID wait for it (single flight)."""
    name = "web"

    def __init__(self, fetcher: Fetcher | None, ttl: float = 300, cache_size: int = 1024, *,
                 clock=time.monotonic, on_cache=None):
        self.fetcher = fetcher
        self._on_cache = on_cache or (lambda hit: None)   # told of each did:web cache lookup (for metrics)
        self._cache: TTLCache | None = (TTLCache(maxsize=cache_size, ttl=ttl, timer=clock)
                                        if ttl > 0 and cache_size > 0 else None)
        self._lock = threading.Lock()
        self._flight = SingleFlight(wait=float(getattr(fetcher, "timeout", 5.0) or 5.0) * 2 + 1)

    def clear(self) -> None:
        if self._cache is not None:
            with self._lock:
                self._cache.clear()

    def resolve(self, did: str, msid: str) -> dict:
        """The cached document (shared: callers must not change it; ``Resolver.resolve`` hands out copies)."""
        url = did_web_url(did)
        if self.fetcher is None:
            raise CeadError("did.unreachable", f"Cannot resolve {did}: this resolver was given no fetcher, so it "
                            "does not reach the network (pass a verifier.http.Fetcher).", did=did)
        if self._cache is not None:
            with self._lock:
                cached = self._cache.get(did)
            self._on_cache(cached is not None)
            if cached is not None:
                return cached

        def load() -> dict:
            # one thread at a time per DID: one that missed the cache just before the previous fetch stored its
            # document finds it here instead of fetching it again
            if self._cache is not None:
                with self._lock:
                    stored = self._cache.get(did)
                if stored is not None:
                    return stored
            return self._fetch(did, url)
        return self._flight.do(did, load, lambda: CeadError(
            "did.unreachable", f"Cannot resolve {did}: another resolution of it did not finish in time.", did=did))

    def _fetch(self, did: str, url: str) -> dict:
        try:
            result = self.fetcher.get(url)  # get(url) is the whole Fetcher contract
        except CeadError as exc:
            if exc.code == "http.status" and exc.detail.get("status") in (404, 410):
                raise CeadError("did.not_found", f"{did} does not exist ({url} returned "
                                f"{exc.detail['status']}).", did=did) from None
            if exc.code in ("http.status", "http.unreachable", "http.certificate_untrusted"):
                raise CeadError("did.unreachable", f"Cannot resolve {did}: {exc.message}", did=did,
                                cause=exc.code) from None
            raise  # http.scheme_refused / address_refused / too_large / timeout: already say what is wrong
        try:
            doc = strict_json(result.body, f"the DID document at {url}")
        except (ValueError, RecursionError):
            raise CeadError("did.document_invalid", f"The DID document at {url} is not JSON.", did=did) from None
        doc = _normalise(doc, did)
        if self._cache is not None:
            with self._lock:
                self._cache[did] = doc
        return doc


# ---- resolver -----------------------------------------------------------------------------------------------------
class Resolver:
    """Resolves DIDs with one ``DidMethod`` per method name. Thread-safe.

    By default: did:key, did:jwk, did:web with ``fetcher``, and controller documents at https URLs with the same
    fetcher (``verifier.controller``; no fetcher: both are refused and nothing reaches the network); fetched
    documents are cached for ``ttl`` seconds. ``methods`` replaces the set (e.g.
    ``[*default_methods(fetcher), MyMethod()]``): adding a DID method touches only the module that defines it.
    """

    def __init__(self, fetcher: Fetcher | None = None, ttl: float = 300, cache_size: int = 1024, *,
                 clock=time.monotonic, on_cache=None, methods: Iterable[DidMethod] | None = None):
        self.fetcher = fetcher
        if methods is None:
            methods = default_methods(fetcher, ttl=ttl, cache_size=cache_size, clock=clock, on_cache=on_cache)
        self.methods: dict[str, DidMethod] = {m.name: m for m in methods}

    def clear(self) -> None:
        """Forget every cached DID document (a key was added or retired and must be read again now)."""
        for method in self.methods.values():
            if hasattr(method, "clear"):
                method.clear()

    def resolve(self, did: str) -> dict:
        """The DID document, or the controller document of an https URL (a fresh copy; method ids absolute)."""
        return copy.deepcopy(self._document(did))

    def _document(self, did: str) -> dict:
        """The DID document as the method gave it (possibly shared with a cache: read only). A subclass that
        overrides ``resolve`` is asked through it."""
        if type(self).resolve is not Resolver.resolve:
            return self.resolve(did)
        if is_url(did):   # a controller document (https URL), resolved by the part registered as "https"
            handler = self.methods.get("https")
            if handler is None:
                raise CeadError("did.method_unsupported", f"{did[:120]!r} is a URL; this resolver resolves no "
                                f"controller documents (only {', '.join('did:' + m for m in self.methods)}).")
            return handler.resolve(did, did)
        method, msid = parse_did(did)
        handler = self.methods.get(method)
        if handler is None:
            raise CeadError("did.method_unsupported", f"DID method {method!r} is not supported "
                            f"({', '.join('did:' + m for m in self.methods)} are).", did=did)
        return handler.resolve(did, msid)

    def dereference(self, did_url: str) -> dict:
        """The verification method named by ``did:...#fragment`` or ``https://...#fragment`` (absolute ids)."""
        did, _ = _split_vm_id(did_url)
        doc = self._document(did)
        for vm in _all_methods(doc):
            if vm["id"] == did_url:
                return copy.deepcopy(vm)
        raise CeadError("did.vm_not_found", f"{did_url} is not a verification method of {did}.", vm=did_url)

    def public_key_for(self, vm_id: str, purpose: str) -> tuple[dict, PublicKey]:
        """The verification method and its key, provided it is listed under ``purpose`` in its DID document."""
        if purpose not in PURPOSES:
            raise CeadError("did.vm_not_authorized", f"Unknown verification relationship {purpose!r}.")
        did, _ = _split_vm_id(vm_id)
        doc = self._document(did)
        found = self.__dict__.setdefault("_found", {})   # (method id, purpose) -> (document, method, key)
        hit = found.get((vm_id, purpose))
        if hit is not None and hit[0] is doc:   # the very document read before (held here, so never another's id)
            return dict(hit[1]), hit[2]
        vm = next((m for m in _all_methods(doc) if m["id"] == vm_id), None)
        if vm is None:
            raise CeadError("did.vm_not_found", f"{vm_id} is not a verification method of {did}.", vm=vm_id)
        listed = any((ref if isinstance(ref, str) else ref["id"]) == vm_id for ref in doc.get(purpose, []))
        if not listed:
            raise CeadError("did.vm_not_authorized", f"{vm_id} is not authorised for {purpose} by {did}.",
                            vm=vm_id, purpose=purpose)
        key = _key_of(vm)
        if len(found) >= 4096:   # bounded
            found.clear()
        found[(vm_id, purpose)] = (doc, vm, key)
        return dict(vm), key


def default_methods(fetcher: Fetcher | None = None, **web) -> list[DidMethod]:
    """did:key, did:jwk, did:web and https controller documents (both with ``fetcher``; ``web`` holds their cache
    settings)."""
    from .controller import ControllerMethod   # it builds on WebMethod above
    return [KeyMethod(), JwkMethod(), WebMethod(fetcher, **web), ControllerMethod(fetcher, **web)]


def is_url(identifier: str) -> bool:
    """Whether ``identifier`` is an http(s) URL (a controller document or a method in one), not a DID."""
    return isinstance(identifier, str) and identifier[:8].lower().startswith(("https:", "http:"))


def _split_vm_id(vm_id: str) -> tuple[str, str]:
    """(document id, fragment) of a DID URL or of an https URL into a controller document."""
    if is_url(vm_id):
        from .controller import split_url
        return split_url(vm_id)
    return split_did_url(vm_id)


_KEYS: dict[str, PublicKey] = {}


def _key_of(vm: dict) -> PublicKey:
    """The public key of a verification method, parsed once per distinct method (bounded memo)."""
    try:
        memo = json.dumps(vm, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return vm_public_key(vm)
    key = _KEYS.get(memo)
    if key is None:
        key = vm_public_key(vm)
        if len(_KEYS) >= 4096:
            _KEYS.clear()
        _KEYS[memo] = key
    return key


def _all_methods(doc: dict) -> Iterable[dict]:
    yield from doc.get("verificationMethod", [])
    for purpose in PURPOSES:
        for ref in doc.get(purpose, []):
            if isinstance(ref, dict):
                yield ref
