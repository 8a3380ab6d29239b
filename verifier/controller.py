"""Controller documents at https URLs (W3C Controlled Identifiers 1.0), and finding a key by JWK thumbprint.

VC-JOSE-COSE lets an issuer or holder that is identified by an https URL name its key by a ``kid`` that is an
absolute URL into its *controller document*, e.g. ``https://university.example/issuers/565049#key-123``: the
document is fetched from ``https://university.example/issuers/565049`` and lists the verification method and the
relationships (``assertionMethod``, ``authentication``) it may be used for, as a DID document does.

``ControllerMethod`` is the resolver part that does this. It sits in the ``verifier.did.Resolver`` registry beside
the DID methods (its name is the URL scheme, ``https``), reaches the network only through the ``Fetcher`` it is
given (none: nothing is fetched), and keeps documents in the same bounded TTL cache with single flight as did:web.
The rules Cead keeps for DID documents hold here too, so a key counts only for the identifier whose own document
lists it:

- the URL is ``https://`` with a host and a path, no query, no user name or password (``controller.url_invalid``);
- the document's ``id`` is exactly the URL it was fetched from, and every verification method id is that id plus a
  ``#fragment`` (relative ``#x`` ids are made absolute), listed once, with a ``controller`` (when given) equal to
  the document's id (``controller.document_invalid``).

``jwk_thumbprint(key)`` is the RFC 7638 SHA-256 thumbprint, and ``find_by_key_id(document, kid)`` the verification
methods of a document that a non-URL ``kid`` (a bare thumbprint, its ``urn:ietf:params:oauth:jwk-thumbprint:sha-256:``
form, or the ``kid`` member of a ``publicKeyJwk``) names.
"""
from __future__ import annotations

import copy
import hashlib
import json
from typing import Any
from urllib.parse import urlsplit

from schemas.values import strict_json

from .did import PURPOSES, WebMethod, _key_of
from .keys import PublicKey, b64url
from .results import CeadError

SCHEME = "https"
MAX_URL_LENGTH = 2048
THUMBPRINT_URN = "urn:ietf:params:oauth:jwk-thumbprint:sha-256:"
ACCEPT = "application/json, application/ld+json, application/did+json"


def check_url(url: str) -> str:
    """The URL of a controller document, checked; raises ``controller.url_invalid`` saying what is expected."""
    expected = ("an https URL with a host and a path, without query, fragment or credentials (for example "
                "https://issuer.example/issuers/1)")
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
        raise CeadError("controller.url_invalid", f"A controller document URL must be {expected}.")
    try:
        parts = urlsplit(url)
        parts.port
    except ValueError:
        raise CeadError("controller.url_invalid", f"{url[:120]!r} is not a URL; expected {expected}.",
                        url=url[:120]) from None
    if parts.scheme != SCHEME:
        raise CeadError("controller.url_invalid", f"{url[:120]!r} is refused: controller documents are fetched over "
                        f"https only (the key must come from a server that proves who it is); expected {expected}.",
                        url=url[:120])
    if not parts.hostname or parts.username or parts.password or parts.query or "?" in url or parts.fragment \
            or "#" in url or any(ch.isspace() for ch in url):
        raise CeadError("controller.url_invalid", f"{url[:120]!r} is not usable as a controller document URL; "
                        f"expected {expected}.", url=url[:120])
    return url


def split_url(vm_id: str) -> tuple[str, str]:
    """Split ``https://host/path#fragment`` into (document URL, fragment); ``controller.url_invalid`` otherwise."""
    if not isinstance(vm_id, str):
        raise CeadError("controller.url_invalid", "A verification method URL must be a string.")
    base, _, fragment = vm_id.partition("#")
    check_url(base)
    if not fragment:
        raise CeadError("controller.url_invalid", f"{vm_id[:120]!r} has no #fragment naming a verification method "
                        "in the controller document (e.g. https://issuer.example/issuers/1#key-1).",
                        url=vm_id[:120])
    return base, fragment


def _absolute(ref: Any, base: str) -> Any:
    return base + ref if isinstance(ref, str) and ref.startswith("#") else ref


def normalise(doc: Any, url: str) -> dict:
    """Check a controller document fetched from ``url`` and make its verification method ids absolute."""
    def invalid(message: str, **detail) -> CeadError:
        return CeadError("controller.document_invalid", message, url=url[:120], **detail)

    if not isinstance(doc, dict):
        raise invalid(f"The controller document at {url} is not a JSON object.")
    if doc.get("id") != url:   # Controlled Identifiers 1.0: the id is the URL the document is retrieved from
        raise invalid(f"The controller document at {url} has id {str(doc.get('id'))[:120]!r}; it must be exactly "
                      "the URL it is served from.")
    doc = copy.deepcopy(doc)
    seen: set[str] = set()

    def fix_vm(vm: Any) -> dict:
        if not isinstance(vm, dict) or not isinstance(vm.get("id"), str) or not isinstance(vm.get("type"), str):
            raise invalid(f"A verification method in the controller document {url} lacks an id or type.")
        vm["id"] = _absolute(vm["id"], url)
        if not vm["id"].startswith(url + "#") or len(vm["id"]) == len(url) + 1:
            # Cead binds a key to the identifier whose own document lists it: the method id names that document
            raise invalid(f"Verification method {vm['id'][:120]!r} in {url} is not {url}#<fragment>.",
                          vm=vm["id"][:120])
        if vm["id"] in seen:   # two keys under one id: which one signed is ambiguous, so neither is used
            raise invalid(f"The controller document {url} lists the verification method id {vm['id'][:120]!r} "
                          "more than once.", vm=vm["id"][:120])
        seen.add(vm["id"])
        vm.setdefault("controller", url)
        if vm["controller"] != url:
            raise invalid(f"Verification method {vm['id'][:120]!r} in {url} names another controller "
                          f"({str(vm['controller'])[:120]!r}).", vm=vm["id"][:120])
        return vm

    vms = doc.get("verificationMethod", [])
    if not isinstance(vms, list):
        raise invalid(f"verificationMethod in the controller document {url} must be a list.")
    doc["verificationMethod"] = [fix_vm(vm) for vm in vms]
    for purpose in PURPOSES:
        if purpose not in doc:
            continue
        refs = doc[purpose]
        if not isinstance(refs, list):
            raise invalid(f"{purpose} in the controller document {url} must be a list.")
        doc[purpose] = [_absolute(ref, url) if isinstance(ref, str) else fix_vm(ref) for ref in refs]
    return doc


class ControllerMethod(WebMethod):
    """Controller documents at https URLs, through ``fetcher`` (None: refused, nothing is fetched); cached and
    single-flight exactly as did:web (``ttl``, ``cache_size``). ``resolve(url, url)`` returns the checked document
    (shared with the cache: read only; ``Resolver.resolve`` hands out copies)."""
    name = SCHEME

    def resolve(self, did: str, msid: str | None = None) -> dict:
        url = check_url(did)
        if self.fetcher is None:
            raise CeadError("controller.unreachable", f"Cannot fetch the controller document {url}: this resolver "
                            "was given no fetcher, so it does not reach the network (pass a verifier.http.Fetcher).",
                            url=url[:120])
        if self._cache is not None:
            with self._lock:
                cached = self._cache.get(url)
            self._on_cache(cached is not None)
            if cached is not None:
                return cached
        return self._flight.do(url, lambda: self._fetch(url, url), lambda: CeadError(
            "controller.unreachable", f"Cannot fetch {url}: another fetch of it did not finish in time.",
            url=url[:120]))

    def _fetch(self, did: str, url: str) -> dict:
        try:
            result = self.fetcher.get(url, accept=ACCEPT)
        except CeadError as exc:
            if exc.code == "http.status" and exc.detail.get("status") in (404, 410):
                raise CeadError("controller.not_found", f"There is no controller document at {url} (HTTP "
                                f"{exc.detail['status']}).", url=url[:120]) from None
            if exc.code in ("http.status", "http.unreachable", "http.certificate_untrusted"):
                raise CeadError("controller.unreachable", f"Cannot fetch the controller document: {exc.message}",
                                url=url[:120], cause=exc.code) from None
            raise  # http.scheme_refused / address_refused / too_large / timeout: already say what is wrong
        try:
            doc = strict_json(result.body, f"the controller document at {url}")
        except (ValueError, RecursionError):
            raise CeadError("controller.document_invalid", f"The controller document at {url} is not JSON.",
                            url=url[:120]) from None
        doc = normalise(doc, url)
        if self._cache is not None:
            with self._lock:
                self._cache[url] = doc
        return doc


# ---- keys named by thumbprint ---------------------------------------------------------------------------------------
def jwk_thumbprint(key: PublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): the hash of the key's required JWK members in lexical order."""
    members = json.dumps(key.to_jwk(), sort_keys=True, separators=(",", ":"))
    return b64url(hashlib.sha256(members.encode("utf-8")).digest())


def find_by_key_id(document: dict, kid: str) -> list[dict]:
    """The verification methods of ``document`` (ids absolute) that ``kid`` names: a method whose key has that
    RFC 7638 thumbprint (bare, or as a ``urn:ietf:params:oauth:jwk-thumbprint:sha-256:`` URN, RFC 9278), or whose
    ``publicKeyJwk`` carries that ``kid``. Methods without a usable key are passed over."""
    thumbprint = kid[len(THUMBPRINT_URN):] if kid.startswith(THUMBPRINT_URN) else kid
    found, ids = [], set()
    for vm in _methods(document):
        if vm.get("id") in ids:
            continue
        jwk = vm.get("publicKeyJwk")
        if isinstance(jwk, dict) and isinstance(jwk.get("kid"), str) and jwk["kid"] == kid:
            found.append(vm)
            ids.add(vm.get("id"))
            continue
        try:
            key = _key_of(vm)
        except CeadError:
            continue
        if jwk_thumbprint(key) == thumbprint:
            found.append(vm)
            ids.add(vm.get("id"))
    return found


def _methods(doc: dict):
    yield from (vm for vm in doc.get("verificationMethod", []) if isinstance(vm, dict))
    for purpose in PURPOSES:
        for ref in doc.get(purpose, []):
            if isinstance(ref, dict):
                yield ref
