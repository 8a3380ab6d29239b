"""Privacy protocols: is one protocol at least as strict as another, and does a transfer keep to its protocol?

The protocol language itself (threshold, dominance, differentialPrivacy, secureAggregation, psiCardinality,
pseudonymisation, treOnly; a list means all apply) is defined by the models in ``schemas.models``; this module
holds the two checks, described in docs/privacy-protocols.md:

- ``at_least_as_strict(candidate, reference) -> list[Violation]``: used whenever a scope narrows;
- ``check_transfer(protocol, manifest, payload) -> list[Problem]``: at transfer time, against the transfer
  manifest and, for tables of counts, the CSV payload itself. Anything that cannot be parsed is a problem.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Any, Iterable

from pydantic import TypeAdapter, ValidationError

from schemas import vocab
from schemas.models import (DifferentialPrivacy, Dominance, PrivacyBudget, Protocols, Pseudonymisation,
                            PsiCardinality, SecureAggregation, Threshold, TreOnly, describe)

from .results import Problem


@dataclass(frozen=True)
class Violation:
    """One way a child grant is wider than its parent: the dimension (camelCase, dotted for nested parts), a
    sentence, and the offending values."""
    dimension: str
    message: str
    offending: list = field(default_factory=list)

    @property
    def code(self) -> str:
        return "scope." + self.dimension.split(".")[0]

    def to_problem(self) -> Problem:
        return Problem(self.code, self.message, {"dimension": self.dimension, "offending": list(self.offending)})


_PROTOCOLS = TypeAdapter(Protocols)
THREAT_MODELS = ["semiHonest", "malicious"]
SUPPRESSED = {"", "*", "c", "[c]", "x", "[x]", ".."}   # markers of a suppressed cell in a published table


def parse_protocols(value: Any) -> list:
    """A protocol, a list of protocols (dicts or models) -> list of protocol models. ValueError if malformed."""
    if value is None:
        return []
    try:
        return _PROTOCOLS.validate_python(value)
    except ValidationError as exc:
        raise ValueError(describe(exc)) from None


# ------------------------------------------------------------------------------------------------ static strictness

def _subset(dim: str, child: Iterable[str], parent: Iterable[str], what: str) -> list[Violation]:
    extra = sorted(set(child) - set(parent))
    return [Violation(dim, f"{what} {extra} not allowed by the reference protocol", extra)] if extra else []


def _not_less(dim: str, c: float | None, r: float | None, what: str) -> list[Violation]:
    if r is None:
        return []
    if c is None or c < r:
        return [Violation(dim, f"{what} {c} is lower than the required {r}", [c])]
    return []


def _not_more(dim: str, c: float | None, r: float | None, what: str) -> list[Violation]:
    if r is None:
        return []
    if c is None or c > r:
        return [Violation(dim, f"{what} {'unlimited' if c is None else c} exceeds the allowed {r}", [c])]
    return []


def _flag(dim: str, c: bool, r: bool, what: str) -> list[Violation]:
    return [Violation(dim, f"{what} is required by the reference protocol", [c])] if r and not c else []


def _threat(dim: str, c: str, r: str) -> list[Violation]:
    if THREAT_MODELS.index(c) < THREAT_MODELS.index(r):
        return [Violation(dim, f"threat model {c} is weaker than the required {r}", [c])]
    return []


def _dp_release(dim: str, c: DifferentialPrivacy, r: DifferentialPrivacy) -> list[Violation]:
    """Is c's per-release guarantee at least r's? (epsilon, delta)-DP and rho-zCDP are converted where a
    conversion is sound: rho-zCDP gives (rho + 2 sqrt(rho ln(1/delta)), delta)-DP; pure eps-DP gives eps^2/2-zCDP."""
    if r.epsilon is not None:
        r_delta = r.delta or 0.0
        if c.epsilon is not None:
            return (_not_more(dim + ".epsilon", c.epsilon, r.epsilon, "epsilon")
                    + _not_more(dim + ".delta", c.delta or 0.0, r_delta, "delta"))
        if r_delta == 0.0:
            return [Violation(dim + ".rho", "rho-zCDP does not give the pure epsilon-DP the reference requires",
                              [c.rho])]
        implied = c.rho + 2 * math.sqrt(c.rho * math.log(1 / r_delta))
        return _not_more(dim + ".rho", implied, r.epsilon, f"epsilon implied by rho={c.rho} at delta={r_delta}")
    if c.rho is not None:
        return _not_more(dim + ".rho", c.rho, r.rho, "rho")
    if c.delta:
        return [Violation(dim + ".epsilon", "approximate (epsilon, delta)-DP does not give rho-zCDP", [c.epsilon])]
    return _not_more(dim + ".rho", c.epsilon ** 2 / 2, r.rho, f"rho implied by epsilon={c.epsilon}")


def _budget(dim: str, c: PrivacyBudget | None, r: PrivacyBudget | None) -> list[Violation]:
    if r is None:
        return []
    if c is None:
        return [Violation(dim, "a privacy budget per period is required by the reference protocol", [None])]
    out = []
    if vocab.duration_seconds(c.period) < vocab.duration_seconds(r.period):
        out.append(Violation(dim + ".period", f"budget period {c.period} is shorter than {r.period}", [c.period]))
    out += _not_more(dim + ".epsilon", c.epsilon, r.epsilon, "epsilon per period")
    out += _not_more(dim + ".rho", c.rho, r.rho, "rho per period")
    out += _not_more(dim + ".maxReleases", c.max_releases, r.max_releases, "releases per period")
    return out


def _compare(c: Any, r: Any) -> list[Violation]:
    """Same-kind comparison: is c at least as strict as r?"""
    d = "privacyProtocol." + r.kind
    if isinstance(r, Threshold):
        # naming count columns exempts every other column, so the reference's choice may only be kept or widened:
        # none named (every column holding a whole number is a count) stays none; a named list may only grow
        if r.count_columns is None:
            narrowed = ["countColumns"] if c.count_columns is not None else []
            why = f"naming count columns {c.count_columns} would exempt columns the reference protocol checks"
        else:
            narrowed = sorted(set(r.count_columns) - set(c.count_columns or []))
            why = (f"count columns {narrowed} required by the reference protocol would not be named" if
                   c.count_columns is not None else f"the reference protocol names count columns {r.count_columns}")
            narrowed = narrowed if c.count_columns is not None else list(r.count_columns)
        return (_not_less(d + ".minCellCount", c.min_cell_count, r.min_cell_count, "minimum cell count")
                + ([Violation(d + ".countColumns", why, narrowed)] if narrowed else [])
                + _flag(d + ".secondarySuppression", c.secondary_suppression, r.secondary_suppression,
                        "secondary suppression")
                + _flag(d + ".zerosAllowed", not c.zeros_allowed, not r.zeros_allowed, "suppressing zero counts"))
    if isinstance(r, Dominance):
        return (_not_less(d + ".n", c.n, r.n, "dominance n")
                + _not_more(d + ".k", c.k, r.k, "dominance k%"))
    if isinstance(r, DifferentialPrivacy):
        return _dp_release(d, c, r) + _budget(d + ".budget", c.budget, r.budget)
    if isinstance(r, SecureAggregation):
        return (_subset(d + ".outputParties", c.output_parties, r.output_parties, "output parties")
                + _subset(d + ".computeParties", c.compute_parties, r.compute_parties, "compute parties")
                + _subset(d + ".inputParties", c.input_parties, r.input_parties, "input parties")
                + _not_less(d + ".collusionThreshold", c.collusion_threshold, r.collusion_threshold,
                            "collusion threshold")
                + _threat(d + ".threatModel", c.threat_model, r.threat_model))
    if isinstance(r, PsiCardinality):
        return (_subset(d + ".learners", c.learners, r.learners, "learners")
                + _subset(d + ".parties", c.parties, r.parties, "parties")
                + _threat(d + ".threatModel", c.threat_model, r.threat_model))
    if isinstance(r, Pseudonymisation):
        out = _flag(d + ".directIdentifiersRemoved", c.direct_identifiers_removed, r.direct_identifiers_removed,
                    "removing direct identifiers")
        if r.key_holder is not None and c.key_holder != r.key_holder:
            out.append(Violation(d + ".keyHolder", f"the pseudonymisation key must be held by {r.key_holder}",
                                 [c.key_holder]))
        return out
    if isinstance(r, TreOnly):
        out = _flag(d + ".outputChecking", c.output_checking, r.output_checking, "output checking")
        if r.environments is not None:
            if c.environments is None:
                out.append(Violation(d + ".environments", "any TRE is wider than the listed TREs", [None]))
            else:
                out += _subset(d + ".environments", c.environments, r.environments, "environments")
        return out
    raise AssertionError(f"unhandled protocol kind {r.kind}")  # pragma: no cover  (the union is closed)


def at_least_as_strict(candidate: Any, reference: Any) -> list[Violation]:
    """Violations if ``candidate`` (a protocol or list, all applying) is weaker than ``reference`` in any way.
    Every reference protocol needs a candidate protocol of the same kind that is at least as strict.
    A reference of None (or []) requires nothing; a malformed protocol is a violation."""
    try:
        refs = parse_protocols(reference)
    except ValueError as exc:
        return [Violation("privacyProtocol", f"the reference protocol is malformed: {exc}", [])]
    try:
        cands = parse_protocols(candidate)
    except ValueError as exc:
        return [Violation("privacyProtocol", f"the protocol is malformed: {exc}", [])]
    out: list[Violation] = []
    for r in refs:
        same = [c for c in cands if c.kind == r.kind]
        if not same:
            out.append(Violation(f"privacyProtocol.{r.kind}", f"a {r.kind} protocol is required but missing",
                                 [c.kind for c in cands]))
            continue
        results = [_compare(c, r) for c in same]
        if not any(not v for v in results):
            out += results[0]
    return out


# ------------------------------------------------------------------------------------------------ transfer time

def _problem(code: str, message: str, **detail: Any) -> Problem:
    return Problem(code, message, detail)


def _number(manifest: dict, key: str, *, integer: bool = False) -> float | None:
    value = manifest.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)) \
            or value < 0 or (isinstance(value, float) and not math.isfinite(value)):
        raise ValueError(f"manifest {key} must be a non-negative {'integer' if integer else 'number'}")
    return value


def _violation_problem(v: Violation) -> Problem:
    last = v.dimension.rsplit(".", 1)[-1]
    code = "protocol.output_party_not_allowed" if last in ("outputParties", "learners") \
        else "protocol.run_weaker_than_approved"
    return _problem(code, f"The protocol run does not keep to the approved protocol: {v.message}.",
                    dimension=v.dimension, offending=list(v.offending))


def _check_run(approved: list, manifest: dict) -> list[Problem]:
    """The run parameters stated in the manifest (``protocolRun``) against the approved protocols, and the
    privacy budget accounting (``epsilonSpent``/``rhoSpent``/``releasesInPeriod`` before this release)."""
    needs_run = [p for p in approved if isinstance(p, (DifferentialPrivacy, SecureAggregation, PsiCardinality,
                                                       Dominance))]
    if not needs_run:
        return []
    try:
        run = parse_protocols(manifest.get("protocolRun"))
    except ValueError as exc:
        return [_problem("protocol.malformed", f"The manifest's protocolRun is malformed: {exc}.")]
    out: list[Problem] = []
    recipient = manifest.get("recipient")
    for ref in needs_run:
        same = [c for c in run if c.kind == ref.kind]
        if not same:
            out.append(_problem("protocol.run_missing", f"The manifest must state the {ref.kind} parameters used "
                                f"(protocolRun entry of kind {ref.kind}).", kind=ref.kind))
            continue
        c = same[0]
        if isinstance(ref, DifferentialPrivacy):
            out += [_violation_problem(v) for v in _dp_release("privacyProtocol.differentialPrivacy", c, ref)]
            out += _check_budget(ref, c, manifest)
        else:
            out += [_violation_problem(v) for v in _compare(c, ref)]
        allowed = ref.output_parties if isinstance(ref, SecureAggregation) else \
            ref.learners if isinstance(ref, PsiCardinality) else None
        if allowed is not None and recipient is not None and recipient not in allowed:
            out.append(_problem("protocol.output_party_not_allowed", f"{recipient} may not learn the output of "
                                f"this {ref.kind}; allowed: {allowed}.", recipient=recipient, allowed=allowed))
    return out


def _check_budget(ref: DifferentialPrivacy, run: DifferentialPrivacy, manifest: dict) -> list[Problem]:
    budget = ref.budget
    if budget is None:
        return []
    try:
        eps_spent = _number(manifest, "epsilonSpent")
        rho_spent = _number(manifest, "rhoSpent")
        releases = _number(manifest, "releasesInPeriod", integer=True)
    except ValueError as exc:
        return [_problem("protocol.malformed", f"The transfer manifest is malformed: {exc}.")]
    out = []
    for name, limit, spent, cost in (("epsilon", budget.epsilon, eps_spent, run.epsilon),
                                     ("rho", budget.rho, rho_spent, run.rho)):
        if limit is None:
            continue
        if spent is None or cost is None:
            out.append(_problem("protocol.budget_unaccounted", f"The approved budget is {limit} {name} per "
                                f"{budget.period}: the manifest must state {name}Spent and the run's {name}."))
        elif spent + cost > limit + 1e-12:
            out.append(_problem("protocol.budget_exhausted", f"This release needs {name} {cost} but {spent} of "
                                f"the {limit} allowed per {budget.period} is already spent.",
                                spent=spent, cost=cost, limit=limit, period=budget.period))
    if budget.max_releases is not None:
        if releases is None:
            out.append(_problem("protocol.budget_unaccounted", "The approved protocol limits releases per period: "
                                "the manifest must state releasesInPeriod."))
        elif releases + 1 > budget.max_releases:
            out.append(_problem("protocol.release_limit", f"This would be release {releases + 1} in the period "
                                f"{budget.period}; at most {budget.max_releases} are allowed.",
                                release=releases + 1, limit=budget.max_releases, period=budget.period))
    return out


def _read_table(payload: bytes) -> tuple[list[str], list[list[str]]]:
    try:
        text = payload.decode("utf-8-sig")
    except (UnicodeDecodeError, AttributeError):
        raise ValueError("the payload is not UTF-8 text") from None
    if "\x00" in text:
        raise ValueError("the payload contains NUL bytes")
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        raise ValueError(f"the payload is not valid CSV: {exc}") from None
    rows = [r for r in rows if r]
    if not rows:
        raise ValueError("the payload has no header row")
    header = [h.strip() for h in rows[0]]
    if len(set(header)) != len(header) or "" in header:
        raise ValueError("the header has empty or repeated column names")
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(f"line {n} has {len(row)} fields; the header has {len(header)}")
    return header, rows[1:]


def _holds_counts(cells) -> bool:
    """Whether a column is read as counts when the approval names none: any cell holds a whole number. (Its other
    cells must then be counts or suppression markers too, else the payload is unparseable: a column is never
    dropped from the check because one cell reads "<5" or "1,204".)"""
    return any(cell.strip().isascii() and cell.strip().isdigit() for cell in cells)


def _check_table(thresholds: list[Threshold], manifest: dict, payload: bytes,
                 approved_columns: list[str] | None) -> list[Problem]:
    try:
        header, rows = _read_table(payload)
    except ValueError as exc:
        return [_problem("protocol.payload_unparseable", f"The payload cannot be checked: {exc}.")]
    out: list[Problem] = []
    declared = manifest.get("columns")
    if declared is not None and (not isinstance(declared, list) or not all(isinstance(c, str) for c in declared)):
        return out + [_problem("protocol.payload_unparseable", "The manifest's columns must be a list of column "
                               "names.")]
    for allowed, source in ((declared, "the manifest"), (approved_columns, "the approval")):
        if allowed is None:
            continue
        extra = [h for h in header if h not in allowed]
        if extra:
            out.append(_problem("protocol.column_not_approved", f"The payload has columns {extra} not listed in "
                                f"{source}.", columns=extra))
    # Which cells are counts is not the manifest writer's to decide (on a pull that is the recipient): the
    # approval's countColumns, else every column holding a whole number, and always a "count" column; the manifest may
    # only add to them.
    declared_counts = manifest.get("countColumns", [])
    if not isinstance(declared_counts, list) or not all(isinstance(c, str) for c in declared_counts):
        return out + [_problem("protocol.payload_unparseable", "The manifest's countColumns must be a list of "
                               "column names.")]
    approved_counts = [c for t in thresholds for c in (t.count_columns or [])]
    inferred: list[str] = []
    if any(t.count_columns is None for t in thresholds):
        inferred = [h for i, h in enumerate(header) if _holds_counts(row[i] for row in rows)]
    named = list(dict.fromkeys([*approved_counts, *declared_counts]))
    missing = [c for c in named if c not in header]
    if missing:
        return out + [_problem("protocol.payload_unparseable", f"The count columns {missing} are not in the payload.",
                               columns=missing)]
    count_columns = list(dict.fromkeys([*named, *inferred, *(["count"] if "count" in header else [])]))
    if not count_columns:
        return out + [_problem("protocol.payload_unparseable", "The payload has no count column (none named by the "
                               "approval or the manifest, no 'count' column, no column holding a whole number), so the "
                               "threshold cannot be checked.")]
    inferred_only = set(inferred) - set(named) - {"count"}
    row_count = manifest.get("rowCount")
    if row_count is not None and row_count != len(rows):
        out.append(_problem("protocol.manifest_mismatch", f"The manifest says rowCount {row_count} but the payload "
                            f"has {len(rows)} rows.", rowCount=row_count, rows=len(rows)))
    minimum = max(t.min_cell_count for t in thresholds)
    zeros = all(t.zeros_allowed for t in thresholds)
    secondary = any(t.secondary_suppression for t in thresholds)
    total_column = manifest.get("totalColumn")
    index = {h: i for i, h in enumerate(header)}
    for n, row in enumerate(rows, start=1):
        suppressed = 0
        for col in count_columns:
            cell = row[index[col]].strip()
            if cell in SUPPRESSED:
                suppressed += 1
                continue
            if not cell.isdigit() or not cell.isascii():
                out.append(_problem("protocol.payload_unparseable", f"Row {n}, column '{col}': {cell[:20]!r} is "
                                    "not a count (a non-negative integer or a suppression marker).", row=n,
                                    column=col))
                continue
            value = int(cell) if len(cell) <= 18 else minimum   # more digits than any minimum: not small
            if value < minimum and not (value == 0 and zeros):
                why = (" (read as a count because it holds whole numbers; an approval whose threshold names its "
                       "countColumns says which columns are counts)") if col in inferred_only else ""
                out.append(_problem("protocol.cell_below_threshold", f"Row {n}, column '{col}' has a count below "
                                    f"the minimum cell count of {minimum}{why}.", row=n, column=col,
                                    threshold=minimum))
        if secondary and suppressed == 1 and total_column in index and \
                row[index[total_column]].strip() not in SUPPRESSED:
            out.append(_problem("protocol.secondary_suppression_missing", f"Row {n} has one suppressed cell and a "
                                f"published total in '{total_column}', so the cell can be recovered.", row=n))
    return out


def check_transfer(protocol: Any, manifest: dict, payload: bytes | None,
                   *, approved_columns: list[str] | None = None) -> list[Problem]:
    """Problems with a transfer under ``protocol`` (the approval's privacy protocol): the manifest's run
    parameters and budget accounting, the TRE destination, and for a threshold rule the CSV payload of counts.
    An empty list means the transfer keeps to the protocol. Never raises for bad input."""
    try:
        approved = parse_protocols(protocol)
    except ValueError as exc:
        return [_problem("protocol.malformed", f"The approved privacy protocol is malformed: {exc}.")]
    if not isinstance(manifest, dict):
        return [_problem("protocol.malformed", "The transfer manifest must be a JSON object.")]
    out = _check_run(approved, manifest)
    for tre in (p for p in approved if isinstance(p, TreOnly)):
        env = manifest.get("environment")
        if not isinstance(env, str) or (tre.environments is not None and vocab.expand(env) not in tre.environments):
            out.append(_problem("protocol.tre_required", "Data under this approval may only go to "
                                + ("an accredited trusted research environment" if tre.environments is None
                                   else f"one of {[vocab.compact(e) for e in tre.environments]}")
                                + "; the manifest's environment does not match.", environment=env))
    thresholds = [p for p in approved if isinstance(p, Threshold)]
    if thresholds:
        if payload is None:
            out.append(_problem("protocol.payload_missing", "The approved protocol has a minimum cell count, so the "
                                "table of counts must be sent for checking."))
        else:
            out += _check_table(thresholds, manifest, payload, approved_columns)
    return out

