"""The verification context: what a verifier is given rather than reaches for. The clock (every check that needs
"now" asks it: credential and presentation validity, proof times, status-list staleness, the decision's time and
the replay guard's), the allowed clock skew, the JSON-LD document loader (default: pinned and registered contexts
only; a loader passed in is used for every context check and canonicalisation, with caches of its own) and the
work limits. One value, passed to ``Verifier(context=...)`` and built from a trust policy by
``verifier.compose.build_verifier(policy, clock=..., loader=..., limits=...)``."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

from .rdfc import REQUEST_MAX_CALLS, REQUEST_MAX_SECONDS

MAX_CREDENTIALS = 64           # credentials in one presentation
MAX_JSON = 1024 * 1024         # characters of JSON in one document


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Limits:
    """Work limits: credentials per presentation, characters of JSON per document, and the RDF canonicalisation
    budget of one verification or decision (``verifier.rdfc.work_budget``: calls and seconds of CPU work)."""
    max_credentials: int = MAX_CREDENTIALS
    max_json: int = MAX_JSON
    rdfc_calls: int = REQUEST_MAX_CALLS
    rdfc_seconds: float = REQUEST_MAX_SECONDS


_JSONLD = None


def _jsonld():
    """``verifier.jsonld``, imported on first use (it imports this module)."""
    global _JSONLD
    from . import jsonld
    _JSONLD = jsonld
    return jsonld


@dataclass(frozen=True)
class VerificationContext:
    clock: Callable[[], datetime] = utc_now
    skew: timedelta = timedelta(minutes=5)
    loader: Callable | None = None        # pyld-shaped: loader(url, options) -> {"document": ...}; None: pinned only
    limits: Limits = field(default_factory=Limits)

    def now(self) -> datetime:
        moment = self.clock()
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)

    def known_context(self, url: str) -> bool:
        """Whether the loader serves ``url`` (the default loader answers without copying the context)."""
        jsonld = _JSONLD or _jsonld()   # (an import statement here ran on every context of every document)
        if self.loader is None or self.loader is jsonld.document_loader:
            return jsonld.is_known(url)
        try:
            self.loader(url)
            return True
        except Exception:
            return False
