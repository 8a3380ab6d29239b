"""The discloser's books: what a privacy-budget ledger must do, as the stateless verifier sees it.

Differential-privacy budgets and release counts are kept by the data owner's node, never taken from the recipient
(the manifest's ``epsilonSpent``/``releasesInPeriod`` mean nothing). The verifier holds no state, so the gateway
passes a ledger in: ``issuer.ledger.SqlLedger`` in-process (the Flask middleware), or ``HttpLedger`` reaching the
node's authenticated local endpoint (``POST /ledger/charge``, for an nginx/Envoy gateway's verifier service).

``charge(release, budget)`` is the one atomic step: if the release fits the budget of every earlier release on the
same dataset whose data subjects overlap (whatever approval they were made under, so two approvals never double a
budget), it is recorded *before* the data leave and ``[]`` is returned; otherwise nothing is recorded and the
problems say why. See docs/privacy-protocols.md ("The discloser keeps the books").
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol, runtime_checkable

from .results import Problem

# a rho-zCDP release charged against an epsilon budget is converted at this delta:
# rho-zCDP gives (rho + 2 sqrt(rho ln(1/delta)), delta)-DP
CONVERSION_DELTA = 1e-6


@dataclass(frozen=True)
class Release:
    """One release, as charged: where it comes from (dataset as the gateway serves it, the data-subject categories
    of the approval, empty meaning all), under which approval, to whom, and its privacy loss."""
    dataset: str
    approval: str
    recipient: str
    subjects: tuple[str, ...] = ()
    unit: str | None = None             # unit of privacy (record, person, household)
    mechanism: str | None = None
    epsilon: float | None = None
    delta: float | None = None
    rho: float | None = None
    series: str | None = None           # the output series, for differencing against earlier releases
    output_sha256: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["subjects"] = list(self.subjects)
        return out

    @classmethod
    def from_json(cls, data: Any) -> "Release":
        if not isinstance(data, dict):
            raise ValueError("a release must be a JSON object")
        try:
            return cls(**{**data, "subjects": tuple(data.get("subjects") or ())})
        except TypeError as exc:
            raise ValueError(f"a release has unknown or missing fields: {exc}") from None


@dataclass(frozen=True)
class Budget:
    """What one period allows: periods of ``period_seconds`` anchored at ``start`` (UTC)."""
    start: datetime
    period_seconds: float
    epsilon: float | None = None
    rho: float | None = None
    max_releases: int | None = None

    def window(self, now: datetime) -> tuple[datetime, datetime] | None:
        """The period containing ``now``: [from, to), or None before the first period starts."""
        if now < self.start:
            return None
        n = math.floor((now - self.start).total_seconds() / self.period_seconds)
        begin = self.start + timedelta(seconds=n * self.period_seconds)
        return begin, begin + timedelta(seconds=self.period_seconds)

    def to_json(self) -> dict[str, Any]:
        return {"start": iso(self.start), "periodSeconds": self.period_seconds, "epsilon": self.epsilon,
                "rho": self.rho, "maxReleases": self.max_releases}

    @classmethod
    def from_json(cls, data: Any) -> "Budget":
        if not isinstance(data, dict):
            raise ValueError("a budget must be a JSON object")
        try:
            start = datetime.fromisoformat(str(data["start"]).replace("Z", "+00:00"))
            period = float(data["periodSeconds"])
        except (KeyError, ValueError, TypeError):
            raise ValueError("a budget needs start (ISO 8601 date-time) and periodSeconds") from None
        if start.tzinfo is None or not (period > 0 and math.isfinite(period)):
            raise ValueError("a budget's start needs a time zone and its period must be positive")
        return cls(start=start, period_seconds=period, epsilon=data.get("epsilon"), rho=data.get("rho"),
                   max_releases=data.get("maxReleases"))


def iso(t: datetime) -> str:
    """Fixed-width UTC timestamps (microseconds), so they order as strings in any database."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def overlaps(a: tuple[str, ...] | list[str], b: tuple[str, ...] | list[str]) -> bool:
    """Whether two releases may touch the same people: no categories means all of the dataset's subjects."""
    return not a or not b or bool(set(a) & set(b))


def epsilon_cost(r: Release | dict) -> float:
    eps, rho = (r.epsilon, r.rho) if isinstance(r, Release) else (r.get("epsilon"), r.get("rho"))
    if eps is not None:
        return eps
    if rho is not None:
        return rho + 2 * math.sqrt(rho * math.log(1 / CONVERSION_DELTA))
    return 0.0


def rho_cost(r: Release | dict) -> float:
    eps, delta, rho = (r.epsilon, r.delta, r.rho) if isinstance(r, Release) else \
        (r.get("epsilon"), r.get("delta"), r.get("rho"))
    if rho is not None:
        return rho
    if eps is not None:
        return math.inf if delta else eps * eps / 2     # approximate DP never fits a zCDP budget
    return 0.0


def affordable(release: Release, budget: Budget, earlier: list[dict], now: datetime) -> list[Problem]:
    """The rule every ledger applies, given the earlier releases of the dataset in the current period (dicts with
    subjects, epsilon, delta, rho): the shared arithmetic of the SQL ledger and any other implementation."""
    window = budget.window(now)
    if window is None:
        return [Problem("protocol.budget_not_started", f"The privacy budget's first period starts "
                        f"{iso(budget.start)}; nothing may be released before then.", {"start": iso(budget.start)})]
    same = [e for e in earlier if overlaps(release.subjects, e.get("subjects") or ())]
    out: list[Problem] = []
    where = {"periodFrom": iso(window[0]), "periodTo": iso(window[1]), "releases": len(same)}
    if budget.max_releases is not None and len(same) + 1 > budget.max_releases:
        out.append(Problem("protocol.release_limit", f"The data owner's ledger holds {len(same)} releases of this "
                           f"dataset's data subjects in the period from {iso(window[0])}; at most "
                           f"{budget.max_releases} are allowed.", {**where, "limit": budget.max_releases}))
    for name, limit, cost in (("epsilon", budget.epsilon, epsilon_cost), ("rho", budget.rho, rho_cost)):
        if limit is None:
            continue
        spent = sum(cost(e) for e in same)
        need = cost(release)
        if need == 0.0 and release.epsilon is None and release.rho is None:
            out.append(Problem("protocol.budget_unaccounted", f"The release states no {name} to charge against a "
                               f"{name} budget.", where))
        elif spent + need > limit + 1e-12:
            out.append(Problem("protocol.budget_exhausted", f"This release costs {name} {need:g}, but the data "
                               f"owner's ledger shows {spent:g} of the {limit:g} allowed in the period from "
                               f"{iso(window[0])} already spent.", {**where, "spent": spent, "cost": need,
                                                                    "limit": limit}))
    return out


@runtime_checkable
class PrivacyLedger(Protocol):
    """The data owner's ledger, passed into the decision (the verifier keeps nothing)."""

    def charge(self, release: Release, budget: Budget | None, now: datetime | None = None) -> list[Problem]:
        """Atomically: check the release fits ``budget`` (None: no budget, just record it) and record it. On any
        problem nothing is recorded."""
        ...

    def earlier_outputs(self, dataset: str, series: str) -> list[bytes]:
        """What this node already released of ``series`` from ``dataset`` (oldest first), for differencing."""
        ...

    def record_output(self, dataset: str, series: str, payload: bytes, approval: str, recipient: str) -> None:
        """Keep an output that is about to be released, for differencing later releases against it."""
        ...


@dataclass
class HttpLedger:
    """The node's ledger over its authenticated local endpoint (``POST {base}/ledger/charge``, ``/ledger/outputs``)
    with a bearer token of scope ``ledger``; for a verifier service in front of nginx/Envoy. Any failure to reach
    it is a problem (``protocol.ledger_unavailable``), never an allow."""
    base_url: str
    token: str
    timeout: float = 10.0
    verify: Any = True
    _session: Any = field(default=None, repr=False)

    def _post(self, path: str, body: dict) -> dict:
        import requests
        session = self._session or requests.Session()
        resp = session.post(self.base_url.rstrip("/") + path, json=body, timeout=self.timeout, verify=self.verify,
                            headers={"Authorization": f"Bearer {self.token}"}, allow_redirects=False)
        if resp.status_code != 200:
            raise RuntimeError(f"the ledger answered HTTP {resp.status_code}")
        data = resp.json()
        if not isinstance(data, dict):
            raise RuntimeError("the ledger's answer is not a JSON object")
        return data

    def charge(self, release: Release, budget: Budget | None, now: datetime | None = None) -> list[Problem]:
        try:
            data = self._post("/ledger/charge", {"release": release.to_json(),
                                                 "budget": budget.to_json() if budget else None})
            return [Problem(str(p["code"]), str(p["message"]), p.get("detail") or {}) for p in data["problems"]]
        except Exception as exc:   # noqa: BLE001  (whatever went wrong, the release is not accounted: refuse)
            return [Problem("protocol.ledger_unavailable", f"The data owner's privacy-budget ledger cannot be "
                            f"reached ({str(exc)[:200]}), so the release is refused.")]

    def earlier_outputs(self, dataset: str, series: str) -> list[bytes]:
        import base64
        data = self._post("/ledger/outputs", {"dataset": dataset, "series": series})
        return [base64.b64decode(o) for o in data["outputs"]]

    def record_output(self, dataset: str, series: str, payload: bytes, approval: str, recipient: str) -> None:
        import base64
        self._post("/ledger/outputs/record", {"dataset": dataset, "series": series, "approval": approval,
                                              "recipient": recipient,
                                              "payload": base64.b64encode(payload).decode("ascii")})
