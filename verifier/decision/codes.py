"""The error-code catalogue of the decision's HTTP answers: each code has one HTTP status.

- 401 Unauthorized: no presentation could be read (send one; the 401 carries ``WWW-Authenticate: VP``);
- 503 Service Unavailable: the verifier could not do its part: the replay guard cannot record the presentation
  (``presentation.replay_guard_full``, ``presentation.replay_guard_unavailable``); the same request with a fresh
  presentation may succeed shortly; the transfer is still denied;
- 403 Forbidden: every other denial (the default for any code not listed).

A denial takes the status its reasons share; reasons with different statuses make it a 403.
"""
from __future__ import annotations

UNAUTHORIZED, FORBIDDEN, UNAVAILABLE = 401, 403, 503

HTTP_STATUS: dict[str, int] = {
    "presentation.missing": UNAUTHORIZED,
    "presentation.malformed": UNAUTHORIZED,
    "presentation.replay_guard_full": UNAVAILABLE,
    "presentation.replay_guard_unavailable": UNAVAILABLE,
}


def status_of(code: str) -> int:
    """The HTTP status a denial for ``code`` alone is answered with."""
    return HTTP_STATUS.get(code, FORBIDDEN)


def http_status(decision) -> int:
    """200 for an allow; for a denial, the status all its reasons share, else 403."""
    if decision.allowed:
        return 200
    statuses = {status_of(p.code) for p in decision.reasons}
    return statuses.pop() if len(statuses) == 1 else FORBIDDEN
