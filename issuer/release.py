"""The provider's differentially private release of a real table, with OpenDP (https://opendp.org, MIT licence).

``noisy_table(records, protocol, ...)`` applies the approved mechanism to record-level data the provider holds:

1. contributions are bounded by the unit of privacy: each unit (``unit_column``, e.g. the person's identifier)
   keeps at most ``maxContributions`` records (default 1), the first ones in the order given;
2. the groups released are the public ones given (``groups``), never those found in the data, so that whether a
   group exists is not itself a disclosure; records outside them are dropped;
3. per group, the count of records (or, with ``value_column`` and the approval's ``clipping``, the sum of values
   clamped to [lower, upper]);
4. noise from OpenDP: ``laplace`` (discrete Laplace on counts, Laplace on sums; pure epsilon-DP, L1 sensitivity
   maxContributions [x max |bound|]) or ``gaussian`` (discrete Gaussian on counts; rho-zCDP, or (epsilon,
   delta)-DP through OpenDP's zCDP-to-approximate-DP conversion; L2 sensitivity as above). The scale is the smallest
   OpenDP's own privacy map accepts for the approved per-release loss.

``release(...)`` is the provider's whole step: it charges the data owner's ledger first (``verifier.protocols.charge``;
nothing is computed or returned if the ledger refuses) and then returns the noisy table as CSV. A gateway whose
decision already charged the release (the Flask middleware) calls ``noisy_table`` only.
"""
from __future__ import annotations

import csv
import io
from typing import Any, Iterable, Sequence

from schemas.models import DifferentialPrivacy
from verifier.protocols import ReleaseContext, charge, parse_protocols
from verifier.results import CeadError, Problem


def _opendp():
    try:
        import opendp.prelude as dp
    except ImportError:   # pragma: no cover - opendp is a dependency of the node extra
        raise CeadError("protocol.mechanism_unavailable", "OpenDP is not installed: install cead[node].") from None
    dp.enable_features("contrib")
    return dp


def _approved_dp(protocol: Any) -> DifferentialPrivacy:
    dps = [p for p in parse_protocols(protocol) if isinstance(p, DifferentialPrivacy)]
    if len(dps) != 1:
        raise CeadError("protocol.malformed", "A differentially private release needs exactly one "
                        "differentialPrivacy protocol in the approval.")
    return dps[0]


def _measurement(dp, spec: DifferentialPrivacy, sensitivity: float, integer: bool):
    """The OpenDP measurement for the approved guarantee at the smallest scale OpenDP's privacy map accepts."""
    mechanism = spec.mechanism or ("gaussian" if spec.rho is not None or spec.delta else "laplace")
    T = int if integer else float
    atom = dp.atom_domain(T=T) if integer else dp.atom_domain(T=float, nan=False)
    if mechanism == "laplace":
        if spec.epsilon is None or spec.delta:
            raise CeadError("protocol.malformed", "The laplace mechanism gives pure epsilon-DP: the approval must "
                            "give epsilon without delta.")
        space = dp.vector_domain(atom), dp.l1_distance(T=T)
        d_in = int(sensitivity) if integer else float(sensitivity)
        scale = dp.binary_search_param(lambda s: dp.m.make_laplace(*space, scale=s), d_in=d_in, d_out=spec.epsilon)
        return dp.m.make_laplace(*space, scale=scale), scale
    space = dp.vector_domain(atom), dp.l2_distance(T=T)
    d_in = int(sensitivity) if integer else float(sensitivity)
    if spec.rho is not None:
        scale = dp.binary_search_param(lambda s: dp.m.make_gaussian(*space, scale=s), d_in=d_in, d_out=spec.rho)
        return dp.m.make_gaussian(*space, scale=scale), scale
    scale = dp.binary_search(lambda s: dp.c.make_zCDP_to_approxDP(dp.m.make_gaussian(*space, scale=s))
                             .map(d_in).epsilon(spec.delta) <= spec.epsilon, T=float)
    return dp.m.make_gaussian(*space, scale=scale), scale


def noisy_table(records: Iterable[dict], protocol: Any, *, group_by: Sequence[str], groups: Sequence[Sequence[str]],
                unit_column: str, value_column: str | None = None, output_column: str = "count") -> bytes:
    """The approved mechanism applied to ``records`` (dicts), as CSV: ``group_by`` columns and ``output_column``."""
    spec = _approved_dp(protocol)
    dp = _opendp()
    bound = spec.max_contributions or 1
    if value_column is not None and spec.clipping is None:
        raise CeadError("protocol.malformed", "A differentially private sum needs the approval's clipping bounds.")
    public = [tuple(str(v) for v in g) for g in groups]
    if len(set(public)) != len(public) or any(len(g) != len(group_by) for g in public):
        raise CeadError("protocol.malformed", "The public groups must be distinct and give a value for each "
                        "group_by column.")
    where = {g: i for i, g in enumerate(public)}
    seen: dict[Any, int] = {}
    totals: list[float] = [0] * len(public)
    for rec in records:
        unit = rec.get(unit_column)
        if unit is None:
            raise CeadError("protocol.malformed", f"A record has no unit of privacy ('{unit_column}').")
        if seen.get(unit, 0) >= bound:
            continue                                   # contribution bounding by the unit of privacy
        key = tuple(str(rec.get(c)) for c in group_by)
        if key not in where:
            continue
        seen[unit] = seen.get(unit, 0) + 1
        if value_column is None:
            totals[where[key]] += 1
        else:
            x = float(rec.get(value_column))
            totals[where[key]] += min(max(x, spec.clipping.lower), spec.clipping.upper)
    if value_column is None:
        meas, _ = _measurement(dp, spec, bound, integer=True)
        noisy = [max(0, int(v)) for v in meas([int(t) for t in totals])]
    else:
        reach = max(abs(spec.clipping.lower), abs(spec.clipping.upper))
        meas, _ = _measurement(dp, spec, bound * reach, integer=False)
        noisy = [round(v, 6) for v in meas([float(t) for t in totals])]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*group_by, output_column])
    for g, v in zip(public, noisy):
        writer.writerow([*g, v])
    return out.getvalue().encode("utf-8")


def release(records: Iterable[dict], protocol: Any, context: ReleaseContext, **options) -> tuple[bytes | None,
                                                                                                 list[Problem]]:
    """Charge the data owner's ledger, then compute the noisy table: ``(csv, [])``, or ``(None, problems)`` when
    the ledger refuses (nothing is computed, nothing leaves)."""
    problems = charge(protocol, context)
    if problems:
        return None, problems
    return noisy_table(records, protocol, **options), []
