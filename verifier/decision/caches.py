"""The decision's caches, all bounded (sizes and TTLs from the trust policy's ``caches``):

- ``CachingVerifier``: verified-proof results keyed by the exact credential digest, with the status entries read
  from those bytes; status is checked against the lists every time;
- ``ReplayGuard`` (``verifier.replay``): presentation ids, each kept until its presentation expires plus the skew.

DID documents are cached by ``verifier.did.Resolver`` and status lists by ``verifier.status.StatusLists``.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from cachetools import LRUCache, TTLCache

from schemas import models

from ..credential import Verifier, unwrap_enveloped, validity_end
from ..metrics import Metrics
from ..results import CeadError, Problem, VerificationResult
from ..replay import ReplayGuard  # noqa: F401  (re-exported)
from ..status import StatusLists, StatusRead, read_status

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _CachedProof:
    result: VerificationResult
    checked_at: datetime      # the proof was good and the credential within its validity period at this time
    valid_until: datetime     # last moment (skew included) the cached result may be reused
    status: StatusRead | None = None   # its status entries, read once (checked against the lists every time)


class CachingVerifier(Verifier):
    """A ``Verifier`` that caches good proof results by the exact credential digest and checks status every time.

    A cached result is reused only between the time it was checked and the end of the credential's validity
    period (and at most ``ttl`` seconds); status (revoked/suspended/stale) is never cached here, only the status
    list itself is (by ``StatusLists``, for its own TTL and maximum staleness).
    """

    def __init__(self, resolver=None, status: StatusLists | None = None, skew: timedelta | None = None,
                 cache_size: int = 4096, ttl: float = 3600, metrics: Metrics | None = None, *, suites=None,
                 context=None):
        super().__init__(resolver=resolver, status=None, skew=skew, suites=suites, context=context)
        self.status_lists = status
        self.ttl = timedelta(seconds=ttl)
        self.metrics = metrics
        self._cache: TTLCache = TTLCache(maxsize=max(cache_size, 1), ttl=max(ttl, 0.001))
        self._lock = threading.Lock()
        self.models = ModelCache(cache_size)

    def clear(self) -> None:
        """Forget every cached proof result (and the models read from them)."""
        with self._lock:
            self._cache.clear()
        self.models.clear()

    def verify_credential(self, credential: dict | str, now: datetime | None = None) -> VerificationResult:
        now = self._now(now)
        try:
            raw = unwrap_enveloped(credential)
            key = models.credential_digest(raw)
        except CeadError:
            return super().verify_credential(credential, now)  # malformed: report through the normal path
        with self._lock:
            try:   # (cachetools' get asks __contains__ and then __getitem__, each checking the expiry)
                cached: _CachedProof | None = self._cache[key]
            except KeyError:
                cached = None
        read: StatusRead | None = None
        if cached is not None and cached.checked_at <= now <= cached.valid_until:
            if self.metrics:
                self.metrics.record_cache("proofs", True)
            result = VerificationResult(verified=True, document=cached.result.document, format=cached.result.format,
                                        issuer=cached.result.issuer,
                                        verification_method=cached.result.verification_method,
                                        co_signers=list(cached.result.co_signers),
                                        warnings=list(cached.result.warnings), digest=key)
            read = cached.status
        else:
            if self.metrics:
                self.metrics.record_cache("proofs", False)
            result = super().verify_credential(raw, now)
            result.digest = key
            if result.verified and isinstance(result.document, dict):
                try:
                    end = validity_end(raw, result.document, result.claims if result.format == "jwt" else None)
                    end = end + self.skew if end else None
                except (ValueError, OverflowError):
                    end = now  # unreadable dates already failed verification; never reuse
                limit = now + self.ttl
                read = read_status(result.document)   # a function of these exact bytes, like the proof result
                entry = _CachedProof(result, now, min(end, limit) if end else limit, read)
                with self._lock:
                    self._cache[key] = entry
        if result.verified and self.status_lists is not None:
            try:
                check_read = getattr(self.status_lists, "check_read", None)
                if read is not None and check_read is not None:
                    problems = check_read(read)    # entries read once; every list consulted now
                else:
                    problems = self.status_lists.check(result.document)
            except Exception:  # fail closed, and never let a bug in the status check reach a caller as a 500
                log.exception("internal error while checking a credential's status")
                problems = [Problem("verifier.internal_error",
                                    "The credential's status could not be checked because of an internal error.")]
            for problem in problems:
                result.add(problem)
        return result


class ModelCache:
    """Cead models (``schemas.models``) of verified credentials, keyed by the exact credential digest: the same
    bytes always read as the same model, so it is built once (bounded, LRU)."""

    def __init__(self, size: int = 4096):
        self._models: LRUCache = LRUCache(maxsize=max(size, 1))
        self._lock = threading.Lock()

    def model(self, digest: str, document: dict, build):
        """``build(document)`` for ``digest``, memoised; an exception is raised again each time (not cached)."""
        with self._lock:
            try:
                found = self._models[digest]
            except KeyError:
                found = None
        if found is None:
            found = build(document)
            with self._lock:
                self._models[digest] = found
        return found

    def clear(self) -> None:
        with self._lock:
            self._models.clear()


_ReplayGuard = ReplayGuard   # the name before the split
