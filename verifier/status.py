"""W3C Bitstring Status List v1.0: the bitstring codec (shared with the issuer) and the verifier-side checker.

A status list is a bitstring of at least 131,072 entries; index 0 is the left-most bit (the most significant
bit of the first byte). ``encodedList`` is the multibase base64url ("u" prefix, no padding) of the GZIP-compressed
bitstring. A credential points into a list with a ``BitstringStatusListEntry``::

    {"type": "BitstringStatusListEntry", "statusPurpose": "revocation",
     "statusListIndex": "94567", "statusListCredential": "https://example.org/status/1"}

``StatusLists.check(credential)`` fetches (and caches) the list credentials, verifies their proofs with the
kernel's ``Verifier`` and returns ``Problem`` values; it fails closed: a list that cannot be fetched, verified or
decoded, or that is older than ``max_staleness``, denies.
"""
from __future__ import annotations

import gzip
import inspect
import json
import threading
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from schemas.values import as_list, id_of, strict_json, types_of

from .keys import b64url, b64url_decode
from .results import CeadError, Problem
from .singleflight import SingleFlight

MIN_ENTRIES = 131_072                      # 16 KB, the spec's minimum (herd privacy)
MAX_LIST_BYTES = 16 * 1024 * 1024          # refuse to inflate anything larger (decompression bombs)
PURPOSES = ("revocation", "suspension")    # purposes that can make a credential invalid
ENTRY_TYPE = "BitstringStatusListEntry"
LIST_CREDENTIAL_TYPE = "BitstringStatusListCredential"
LIST_TYPE = "BitstringStatusList"
# VC Data Model 1.1 peers still use StatusList2021 (same bitstring; encodedList without the multibase prefix).
_LEGACY = {"StatusList2021Entry": ("StatusList2021Credential", "StatusList2021")}


# ---- the bitstring ---------------------------------------------------------------------------------------------

def new_bitstring(entries: int = MIN_ENTRIES) -> bytearray:
    if entries < MIN_ENTRIES or entries % 8:
        raise CeadError("status.list_invalid",
                        f"A status list needs a multiple of 8 entries and at least {MIN_ENTRIES}; got {entries}.")
    return bytearray(entries // 8)


def get_bit(bits: bytes, index: int) -> bool:
    if not 0 <= index < len(bits) * 8:
        raise CeadError("status.index_out_of_range",
                        f"Status index {index} is outside the list of {len(bits) * 8} entries.", index=index)
    return bool(bits[index // 8] & (0x80 >> (index % 8)))


def set_bit(bits: bytearray, index: int, value: bool = True) -> None:
    get_bit(bits, index)  # range check
    mask = 0x80 >> (index % 8)
    if value:
        bits[index // 8] |= mask
    else:
        bits[index // 8] &= ~mask & 0xFF


def encode_list(bits: bytes) -> str:
    """``encodedList`` value: "u" + base64url(GZIP(bits)). ``mtime=0`` keeps the output deterministic."""
    return "u" + b64url(gzip.compress(bytes(bits), mtime=0))


def decode_list(encoded: str, *, multibase: bool = True, min_entries: int = MIN_ENTRIES) -> bytes:
    """Inverse of ``encode_list``; raises ``CeadError('status.list_invalid')`` for anything malformed."""
    if not isinstance(encoded, str) or not encoded:
        raise CeadError("status.list_invalid", "The status list has no encodedList string.")
    if multibase:
        if encoded[0] != "u":
            raise CeadError("status.list_invalid", "encodedList must be multibase base64url (start with 'u').")
        encoded = encoded[1:]
    try:
        compressed = b64url_decode(encoded)
    except CeadError:
        raise CeadError("status.list_invalid", "encodedList is not valid base64url.") from None
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # GZIP only
    try:
        bits = inflater.decompress(compressed, MAX_LIST_BYTES + 1)
    except zlib.error:
        raise CeadError("status.list_invalid", "encodedList is not GZIP-compressed data.") from None
    if len(bits) > MAX_LIST_BYTES or inflater.unconsumed_tail:
        raise CeadError("status.list_invalid", f"The status list inflates to more than {MAX_LIST_BYTES} bytes.")
    if not inflater.eof:
        raise CeadError("status.list_invalid", "encodedList is truncated GZIP data.")
    if len(bits) * 8 < min_entries:
        raise CeadError("status.list_invalid",
                        f"The status list has {len(bits) * 8} entries; at least {min_entries} are required.",
                        entries=len(bits) * 8)
    return bits


def make_entry(list_url: str, index: int, purpose: str) -> dict[str, Any]:
    """A ``BitstringStatusListEntry`` (the index is a string, as the specification requires)."""
    return {"id": f"{list_url}#{index}", "type": ENTRY_TYPE, "statusPurpose": purpose,
            "statusListIndex": str(index), "statusListCredential": list_url}


def make_list_credential(list_url: str, issuer: str, purpose: str, bits: bytes, valid_from: str) -> dict[str, Any]:
    """The unsigned ``BitstringStatusListCredential`` for ``bits`` (VC Data Model 2.0)."""
    return {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "id": list_url,
        "type": ["VerifiableCredential", LIST_CREDENTIAL_TYPE],
        "issuer": issuer,
        "validFrom": valid_from,
        "credentialSubject": {"id": f"{list_url}#list", "type": LIST_TYPE,
                              "statusPurpose": purpose, "encodedList": encode_list(bits)},
    }


# ---- reading a credential's entries ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    url: str
    index: int
    purpose: str
    legacy: bool = False   # StatusList2021Entry


def parse_entries(credential: dict) -> list[Entry]:
    """The status entries of ``credential`` that this module understands; raises for malformed ones."""
    out: list[Entry] = []
    for raw in as_list(credential.get("credentialStatus")):
        if not isinstance(raw, dict):
            raise CeadError("status.entry_invalid", "credentialStatus must be an object or a list of objects.")
        types = types_of(raw)
        legacy = any(t in _LEGACY for t in types)
        if ENTRY_TYPE not in types and not legacy:
            raise CeadError("status.unsupported",
                            f"Unsupported credentialStatus type {types!r}; expected {ENTRY_TYPE}.", types=types)
        url, purpose, index = raw.get("statusListCredential"), raw.get("statusPurpose"), raw.get("statusListIndex")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise CeadError("status.entry_invalid", "statusListCredential must be an http(s) URL.")
        if not isinstance(purpose, str) or not purpose:
            raise CeadError("status.entry_invalid", "statusPurpose is missing.")
        if not isinstance(index, str) or not index.isascii() or not index.isdigit() or len(index) > 20:
            raise CeadError("status.entry_invalid",  # (a list holds at most MAX_LIST_BYTES * 8 entries)
                            "statusListIndex must be a string holding a non-negative integer.",
                            value=index[:40] if isinstance(index, str) else index)
        size = raw.get("statusSize", 1)
        if purpose in PURPOSES and (type(size) is not int or size != 1):  # (True and 1.0 are not the integer 1)
            raise CeadError("status.entry_invalid", f"statusSize must be the integer 1 for purpose {purpose!r}.")
        out.append(Entry(url, int(index), purpose, legacy))
    return out


@dataclass(frozen=True)
class StatusRead:
    """What ``StatusLists.check`` reads from a credential before consulting any list: its entries and issuer, or
    the problem that makes them unreadable."""
    entries: tuple[Entry, ...] = ()
    issuer: str | None = None
    problem: Problem | None = None


def read_status(credential: dict) -> StatusRead:
    """The status entries and issuer of ``credential`` (a JSON object), or why they cannot be read."""
    try:
        entries = tuple(parse_entries(credential))
    except CeadError as exc:
        return StatusRead(problem=spec_problem(exc.problem))
    return StatusRead(entries, id_of(credential.get("issuer")))   # the Verifier's reading (an object's id or @id)


# ---- the spec's names for what went wrong ----------------------------------------------------------------------
# Bitstring Status List v1.0 defines STATUS_RETRIEVAL_ERROR, STATUS_VERIFICATION_ERROR and STATUS_LIST_LENGTH_ERROR
# in its own namespace; for a malformed entry and an index outside the list it points to the VC Data Model 2.0
# processing errors (VC DM 2.0 section 7.2, "Problem Details"), whose type URLs live in the data model's namespace.
SPEC_ERRORS = "https://www.w3.org/ns/credentials/status-list#"
VC_DM_ERRORS = "https://www.w3.org/TR/vc-data-model#"
_SPEC_TYPES = {"status.unreachable": SPEC_ERRORS + "STATUS_RETRIEVAL_ERROR",
               "status.stale": SPEC_ERRORS + "STATUS_RETRIEVAL_ERROR",
               "status.list_invalid": SPEC_ERRORS + "STATUS_VERIFICATION_ERROR",
               "status.unsupported": SPEC_ERRORS + "STATUS_VERIFICATION_ERROR",
               "status.index_out_of_range": VC_DM_ERRORS + "RANGE_ERROR",
               "status.entry_invalid": VC_DM_ERRORS + "MALFORMED_VALUE_ERROR"}


def spec_problem(problem: Problem) -> Problem:
    """``problem`` with ``detail.type``: the processing error it is (Bitstring Status List v1.0 section 3.6, and
    the VC Data Model 2.0 types that section refers to), for peers that read those. A revoked or suspended
    credential is a status, not a processing error."""
    type_url = _SPEC_TYPES.get(problem.code)
    if type_url is None or "type" in problem.detail:
        return problem
    if problem.code == "status.list_invalid" and "entries" in problem.detail:
        type_url = SPEC_ERRORS + "STATUS_LIST_LENGTH_ERROR"
    return Problem(problem.code, problem.message, {**problem.detail, "type": type_url})


# ---- the checker -----------------------------------------------------------------------------------------------

@dataclass
class _Cached:
    fetched: float          # monotonic seconds
    bits: bytes
    purposes: tuple[str, ...]
    issuer: str | None
    fresh_for: float = float("inf")     # the list's own `ttl` (Bitstring Status List v1.0), in seconds
    usable_until: float = float("inf")  # monotonic time the list credential stops being valid: never used past it
    etag: str | None = None             # the issuer's ETag, sent back (If-None-Match) to revalidate the copy


class StatusLists:
    """Checks ``credentialStatus`` entries against published status lists.

    ``fetcher`` is a ``verifier.http.Fetcher`` (``get(url) -> FetchResult(body, headers, status)``);
    ``verifier`` a ``verifier.credential.Verifier`` used to check each list credential's proof, with no status
    checker of its own (a list's own status is never checked; default: one resolving DIDs with ``fetcher``; a
    verifier given with a status checker is replaced by a status-less one sharing its resolver). Lists are cached
    for ``ttl`` seconds; when a refetch fails, a copy younger than ``max_staleness`` is still used, an older one
    denies with ``status.stale``. A cached copy past its ttl is revalidated with the ETag the issuer sent
    (``If-None-Match``; a 304 keeps the verified copy). One fetch per list is in flight at a time: concurrent
    checks of the same list wait for it (single flight).
    """

    def __init__(self, fetcher, verifier=None, ttl: float = 60, max_staleness: timedelta = timedelta(minutes=10),
                 cache_size: int = 256, clock=time.monotonic, on_cache=None, wall_clock=None):
        self.fetcher = fetcher
        self._on_cache = on_cache or (lambda hit: None)   # told of each list cache lookup (for metrics)
        self.verifier = verifier
        self.ttl = float(ttl)
        self.max_staleness = max_staleness.total_seconds() if isinstance(max_staleness, timedelta) \
            else float(max_staleness)
        self.cache_size = cache_size
        self._clock = clock
        self._wall_clock = wall_clock or (lambda: datetime.now(timezone.utc))
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._lock = threading.Lock()
        self._flight = SingleFlight(wait=float(getattr(fetcher, "timeout", 5.0) or 5.0) * 2 + 1)

    @property
    def verifier(self):
        return self._verifier

    @verifier.setter
    def verifier(self, verifier) -> None:
        if verifier is not None and (getattr(verifier, "status", None) is not None
                                     or getattr(verifier, "status_lists", None) is not None):
            verifier = verifier.without_status()
        self._verifier = verifier

    # public -------------------------------------------------------------------------------------------------
    def check(self, credential: dict, now=None) -> list[Problem]:
        """Problems for ``credential``'s status entries (empty list: not revoked, not suspended)."""
        if not isinstance(credential, dict):
            return [Problem("status.entry_invalid", "The credential is not a JSON object.")]
        return self.check_read(read_status(credential))

    def check_read(self, read: "StatusRead") -> list[Problem]:
        """``check`` of entries read once (``read_status``): a function of the credential's exact bytes, so a
        caller may keep it beside a cached proof result; the lists themselves are consulted on every call."""
        if read.problem is not None:
            return [read.problem]
        issuer = read.issuer
        problems: list[Problem] = []
        for entry in read.entries:
            if entry.purpose not in PURPOSES:
                continue  # e.g. "refresh" or "message": informative, never a reason to deny
            if issuer is None:  # the list's issuer must be the credential's: without one that cannot hold
                problems.append(Problem("status.entry_invalid", "The credential names no issuer, so its status "
                                        "list cannot be checked against it.", {"url": entry.url}))
                continue
            try:
                problem = self._check_entry(entry, issuer)
            except CeadError as exc:
                problem = exc.problem
            if problem:
                problems.append(problem)
        return [spec_problem(p) for p in problems]

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    # internals ----------------------------------------------------------------------------------------------
    def _check_entry(self, entry: Entry, issuer: str) -> Problem | None:
        cached = self._list(entry.url)
        if entry.purpose not in cached.purposes:
            return Problem("status.list_invalid",
                           f"The status list {entry.url} is for {'/'.join(cached.purposes)}, "
                           f"not {entry.purpose}.", {"url": entry.url})
        if cached.issuer != issuer:
            return Problem("status.list_invalid",
                           f"The status list {entry.url} was issued by {cached.issuer}, not by the credential's "
                           f"issuer {issuer}.", {"url": entry.url})
        if get_bit(cached.bits, entry.index):
            code = "status.revoked" if entry.purpose == "revocation" else "status.suspended"
            word = "revoked" if entry.purpose == "revocation" else "suspended"
            return Problem(code, f"The credential is {word} (status list {entry.url}, index {entry.index}).",
                           {"url": entry.url, "index": entry.index})
        return None

    def _fresh_enough(self, cached: _Cached | None, now: float) -> bool:
        # (a TTL longer than max_staleness must not keep a list in use past max_staleness)
        return bool(cached) and now - cached.fetched < min(self.ttl, self.max_staleness, cached.fresh_for) \
            and now < cached.usable_until

    def _list(self, url: str) -> _Cached:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(url)
        fresh_enough = self._fresh_enough(cached, now)
        self._on_cache(fresh_enough)
        if fresh_enough:
            return cached

        def load() -> _Cached:
            # Run by one thread at a time per list. A thread that missed the cache just before the previous fetch
            # stored its result finds that result here rather than fetching the list again; the result is stored
            # before the flight ends, so no later caller misses both the cache and the flight.
            with self._lock:
                latest = self._cache.get(url)
            if latest is not cached and self._fresh_enough(latest, self._clock()):
                return latest
            got = self._fetch(url, latest or cached)
            with self._lock:
                self._cache[url] = got
                self._cache.move_to_end(url)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            return got
        try:
            return self._flight.do(url, load, lambda: CeadError(
                "status.unreachable", f"Could not fetch the status list {url}: another fetch of it did not finish "
                "in time.", url=url))
        except CeadError as exc:
            if exc.code != "status.unreachable":
                raise
            if cached and now - cached.fetched <= self.max_staleness and now < cached.usable_until:
                return cached
            if cached:
                why = ("the cached copy is past the list's validUntil (or expirationDate or exp)" if now >= cached.usable_until
                       else f"the cached copy is older than {int(self.max_staleness)} s")
                raise CeadError("status.stale", f"Could not refresh the status list {url} and {why}.",
                                url=url) from None
            raise

    def _fetch(self, url: str, cached: _Cached | None = None) -> _Cached:
        etag = cached.etag if cached is not None else None
        try:
            result = self.fetcher.get(url, etag=etag) if etag and _takes_etag(self.fetcher) else self.fetcher.get(url)
        except Exception as exc:  # network boundary: any failure to fetch is "unreachable", never an allow
            raise CeadError("status.unreachable", f"Could not fetch the status list {url}: "
                            f"{getattr(exc, 'message', None) or exc}", url=url) from None
        if getattr(result, "status", 200) == 304 and cached is not None:
            # not modified: the copy verified before is still the issuer's list (its validUntil still applies)
            return _Cached(self._clock(), cached.bits, cached.purposes, cached.issuer, cached.fresh_for,
                           cached.usable_until, cached.etag)
        if getattr(result, "status", 200) != 200:
            raise CeadError("status.unreachable", f"Fetching the status list {url} returned HTTP {result.status}.",
                            url=url)
        body = result.body
        text = body.decode("utf-8", "replace").strip() if isinstance(body, (bytes, bytearray)) else str(body).strip()
        if text.startswith("{"):
            try:
                document: dict | str = strict_json(text, f"the status list {url}")
            except (ValueError, RecursionError):
                raise CeadError("status.list_invalid", f"The status list {url} is not valid JSON.", url=url) from None
        elif text.count(".") == 2:
            document = text  # VC-JOSE: a compact JWS
        else:
            raise CeadError("status.list_invalid", f"The status list {url} is neither JSON nor a JWT.", url=url)
        verified = self._verify(url, document)
        parsed = self._parse_list(url, verified, document)
        headers = getattr(result, "headers", None) or {}
        parsed.etag = headers.get("ETag") or headers.get("etag")
        return parsed

    def _verify(self, url: str, document: dict | str) -> dict:
        if self.verifier is None:  # default: resolve the list issuer's DID with the same fetcher, no status
            from .credential import Verifier
            from .did import Resolver
            self.verifier = Verifier(resolver=Resolver(self.fetcher))
        result = self.verifier.verify_credential(document)
        if not result.verified or not isinstance(result.document, dict):
            reasons = "; ".join(p.message for p in result.problems) or "unknown reason"
            raise CeadError("status.list_invalid", f"The status list {url} did not verify: {reasons}",
                            url=url, problems=[p.to_dict() for p in result.problems])
        return result.document

    def _parse_list(self, url: str, doc: dict, raw: dict | str | None = None) -> _Cached:
        types = types_of(doc)
        legacy = "StatusList2021Credential" in types
        if LIST_CREDENTIAL_TYPE not in types and not legacy:
            raise CeadError("status.list_invalid", f"{url} is not a {LIST_CREDENTIAL_TYPE}.", url=url)
        # Bitstring Status List v1.0 section 2.2 lets a list credential omit its id (MAY match the entry's
        # statusListCredential). This verifier requires it, deliberately: without it, any other signed list of the
        # same issuer (say an all-clear one) could be served in place of the list the entry names, by whoever
        # serves or caches that URL, and a revocation would be hidden. Cead issuers always write it.
        found = doc.get("id", doc.get("@id"))
        if found != url:
            raise CeadError("status.list_invalid", f"The status list served at {url} has id {str(found)[:200]!r}; "
                            "a list credential must name the URL it is served at as its id.", url=url)
        subjects = as_list(doc.get("credentialSubject"))
        if len(subjects) != 1 or not isinstance(subjects[0], dict):
            raise CeadError("status.list_invalid", f"The status list {url} must have one credentialSubject.", url=url)
        subject = subjects[0]
        if (LIST_TYPE if not legacy else "StatusList2021") not in types_of(subject):
            raise CeadError("status.list_invalid", f"The subject of {url} is not a {LIST_TYPE}.", url=url)
        purposes = tuple(p for p in as_list(subject.get("statusPurpose")) if isinstance(p, str))
        if not purposes:
            raise CeadError("status.list_invalid", f"The status list {url} has no statusPurpose.", url=url)
        encoded = subject.get("encodedList")
        if legacy and isinstance(encoded, str) and not encoded.startswith("u"):
            bits = decode_list(encoded, multibase=False)
        else:
            bits = decode_list(encoded)
        fetched = self._clock()
        fresh_for = float("inf")
        ttl_ms = subject.get("ttl")
        if ttl_ms is not None:
            if isinstance(ttl_ms, bool) or not isinstance(ttl_ms, int) or ttl_ms < 0:
                raise CeadError("status.list_invalid", f"The status list {url} has a ttl that is not a whole "
                                "number of milliseconds.", url=url)
            try:
                fresh_for = ttl_ms / 1000
            except OverflowError:   # longer than any cache lives: our own ttl and max_staleness bound it
                fresh_for = float("inf")
        from .credential import validity_end
        try:   # validUntil, a VC 1.1 list's expirationDate, a JWT list's exp: the copy is never used past the first
            end = validity_end(doc if raw is None else raw, doc)
            usable_until = float("inf") if end is None else \
                fetched + (end - self._wall_clock()).total_seconds()
        except (ValueError, OverflowError):
            raise CeadError("status.list_invalid", f"The status list {url} has a validUntil, expirationDate or exp "
                            "that is not a date-time with a time zone.", url=url) from None
        return _Cached(fetched, bytes(bits), purposes, id_of(doc.get("issuer")), fresh_for, usable_until)


def _takes_etag(fetcher) -> bool:
    """Whether ``fetcher.get`` accepts ``etag=`` (``verifier.http.Fetcher`` does; a minimal fetcher may not)."""
    try:
        return "etag" in inspect.signature(fetcher.get).parameters
    except (TypeError, ValueError):
        return False


__all__ = ["MIN_ENTRIES", "StatusLists", "Entry", "new_bitstring", "get_bit", "set_bit", "encode_list",
           "decode_list", "make_entry", "make_list_credential", "parse_entries", "read_status", "StatusRead",
           "spec_problem", "SPEC_ERRORS", "VC_DM_ERRORS"]
