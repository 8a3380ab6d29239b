"""The verification context: what a verifier is given rather than reaches for. The clock (every check that needs
"now" asks it), the allowed clock skew, the JSON-LD document loader (pinned and registered contexts only) and the
input limits. One value, passed to ``Verifier(context=...)`` and built from a trust policy by
``verifier.compose``."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Limits:
    """Input bounds: credentials per presentation, bytes of JSON."""
    max_credentials: int = 64
    max_json: int = 1024 * 1024


@dataclass(frozen=True)
class VerificationContext:
    clock: Callable[[], datetime] = utc_now
    skew: timedelta = timedelta(minutes=5)
    loader: Callable | None = None        # None: verifier.jsonld.document_loader
    limits: Limits = field(default_factory=Limits)

    def now(self) -> datetime:
        moment = self.clock()
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)

    def known_context(self, url: str) -> bool:
        """Whether the loader serves ``url`` (the default loader answers without copying the context)."""
        from . import jsonld
        if self.loader is None:
            return jsonld.is_known(url)
        try:
            self.loader(url)
            return True
        except Exception:
            return False
