"""Privacy protocols: is one protocol at least as strict as another, and does a transfer keep to its protocol?

The protocol language itself (threshold, dominance, differentialPrivacy, secureAggregation, psiCardinality,
pseudonymisation, treOnly; a list means all apply) is defined by the models in ``schemas.models``; this module
holds the two checks, described in docs/privacy-protocols.md:

- ``at_least_as_strict(candidate, reference) -> list[Violation]``: used whenever a scope narrows;
- ``check_transfer(protocol, manifest, payload, context=...) -> list[Problem]``: at transfer time, against the
  transfer manifest, what the provider knows (``ReleaseContext``: the recipient, its accreditations, the node's
  ledger of earlier outputs, contributor-level data) and the payload itself. Anything that cannot be parsed is a
  problem;
- ``charge(protocol, context) -> list[Problem]``: the last step of an allowed decision: the release is recorded in
  the data owner's privacy-budget ledger, or refused if the ledger cannot afford it.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping, get_args

from pydantic import TypeAdapter, ValidationError

from schemas import vocab
from schemas.models import (UNITS_OF_PRIVACY, CellKeyPerturbation, DifferentialPrivacy, Dominance, PrivacyBudget,
                            PrivacyProtocol, Protocols, Pseudonymisation, PsiCardinality, Rounding, SecureAggregation,
                            Threshold, TreOnly, describe)

from . import disclosure
from .disclosure import cellkey, differencing, dominance, identifiers, records, rounding, suppression
from .ledger import Budget, PrivacyLedger, Release
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
_PROTOCOL_KINDS = frozenset(get_args(get_args(PrivacyProtocol)[0]))   # the protocol model classes
THREAT_MODELS = ["semiHonest", "malicious"]
SUPPRESSED = disclosure.table.SUPPRESSED   # markers of a suppressed cell in a published table


def organisation(did: str) -> str:
    """The organisation a DID belongs to, for counting independent parties: a did:web's host (so
    ``did:web:gov.scot.example:mpc-node`` is the Scottish Government's); any other DID is its own organisation."""
    if did.startswith("did:web:"):
        return did.split(":")[2].lower()
    return did


def organisations_to_collude(p: SecureAggregation) -> int:
    """How many independent organisations (beyond the output parties', whose compute parties are taken to collude
    with them already) must collude to hold ``collusion_threshold`` compute parties. A large number (above any
    threshold) if the output parties alone already hold enough."""
    by_org: dict[str, int] = {}
    for d in dict.fromkeys(p.compute_parties):
        by_org[organisation(d)] = by_org.get(organisation(d), 0) + 1
    outputs = {organisation(d) for d in p.output_parties}
    held = sum(n for o, n in by_org.items() if o in outputs)
    others = sorted((n for o, n in by_org.items() if o not in outputs), reverse=True)
    need, orgs = p.collusion_threshold - held, 0
    for n in others:
        if need <= 0:
            break
        need -= n
        orgs += 1
    return orgs if need <= 0 else len(others) + 1


def independence_problems(p: SecureAggregation, where: str = "approved") -> list[Problem]:
    """The collusion threshold is counted in organisations: the compute parties must make it so (else
    ``protocol.compute_parties_not_independent``)."""
    orgs = organisations_to_collude(p)
    if orgs >= p.collusion_threshold:
        return []
    return [Problem("protocol.compute_parties_not_independent", f"The {where} secure aggregation needs "
                    f"{p.collusion_threshold} compute parties to collude, but {orgs} organisation(s) besides the "
                    "output parties' own can break it: compute parties must belong to independent organisations, "
                    "none of them an output party's.", {"organisations": orgs, "threshold": p.collusion_threshold,
                                                       "computeParties": list(p.compute_parties)})]


def parse_protocols(value: Any) -> list:
    """A protocol, a list of protocols (dicts or models) -> list of protocol models. ValueError if malformed."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)) and all(type(p) in _PROTOCOL_KINDS for p in value):
        return list(value)   # models already (an approval's): validation would hand back these very objects
    try:
        return _PROTOCOLS.validate_python(value)
    except ValidationError as exc:
        raise ValueError(describe(exc)) from None


# ------------------------------------------------------------------------------------------------ static strictness

def _subset(dim: str, child: Iterable[str], parent: Iterable[str], what: str) -> list[Violation]:
    extra = sorted(set(child) - set(parent))
    return [Violation(dim, f"{what} {extra} not allowed by the reference protocol", extra)] if extra else []


def _superset(dim: str, c: list | None, r: list | None, what: str) -> list[Violation]:
    missing = sorted(set(r or []) - set(c or []))
    return [Violation(dim, f"{what} {missing} of the reference protocol are not declared", missing)] if missing else []


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
        lost = {p: kids for p, kids in (r.hierarchy or {}).items()
                if sorted((c.hierarchy or {}).get(p, [])) != sorted(kids)}
        return (_not_less(d + ".minCellCount", c.min_cell_count, r.min_cell_count, "minimum cell count")
                + (_not_less(d + ".protectionInterval", c.protection, r.protection, "protection interval")
                   if r.protection_interval is not None else [])
                + ([Violation(d + ".hierarchy", f"the hierarchy relations {sorted(lost)} of the reference protocol "
                              "would not be audited", sorted(lost))] if lost else [])
                + ([Violation(d + ".countColumns", why, narrowed)] if narrowed else [])
                + _flag(d + ".secondarySuppression", c.secondary_suppression, r.secondary_suppression,
                        "secondary suppression")
                + _flag(d + ".zerosAllowed", not c.zeros_allowed, not r.zeros_allowed, "suppressing zero counts"))
    if isinstance(r, Dominance):
        return (_not_less(d + ".n", c.n, r.n, "dominance n")
                + _not_more(d + ".k", c.k, r.k, "dominance k%")
                + _not_less(d + ".p", c.p, r.p, "p% rule"))
    if isinstance(r, DifferentialPrivacy):
        out = _dp_release(d, c, r) + _budget(d + ".budget", c.budget, r.budget)
        if r.mechanism is not None and c.mechanism != r.mechanism:
            out.append(Violation(d + ".mechanism", f"the {r.mechanism} mechanism is required", [c.mechanism]))
        if r.unit_of_privacy is not None and (c.unit_of_privacy is None or UNITS_OF_PRIVACY.index(
                c.unit_of_privacy) < UNITS_OF_PRIVACY.index(r.unit_of_privacy)):
            out.append(Violation(d + ".unitOfPrivacy", f"protecting each {c.unit_of_privacy or 'unstated unit'} is "
                                 f"weaker than protecting each {r.unit_of_privacy}", [c.unit_of_privacy]))
        return out
    if isinstance(r, SecureAggregation):
        # fewer input parties is weaker (an aggregate of one council reveals that council): the minimum may only
        # rise, and the collusion threshold is counted in independent organisations
        return (_subset(d + ".outputParties", c.output_parties, r.output_parties, "output parties")
                + _subset(d + ".computeParties", c.compute_parties, r.compute_parties, "compute parties")
                + _subset(d + ".inputParties", c.input_parties, r.input_parties, "input parties")
                + _not_less(d + ".minInputParties", c.minimum_inputs, r.minimum_inputs, "minimum input parties")
                + _not_less(d + ".collusionThreshold", min(c.collusion_threshold, organisations_to_collude(c)),
                            min(r.collusion_threshold, organisations_to_collude(r)),
                            "collusion threshold (independent organisations that must collude)")
                + _threat(d + ".threatModel", c.threat_model, r.threat_model))
    if isinstance(r, PsiCardinality):
        return (_subset(d + ".learners", c.learners, r.learners, "learners")
                + _subset(d + ".parties", c.parties, r.parties, "parties")
                + _not_less(d + ".minSetSize", c.min_set_size, r.min_set_size, "minimum set size")
                + _threat(d + ".threatModel", c.threat_model, r.threat_model))
    if isinstance(r, Pseudonymisation):
        out = _flag(d + ".directIdentifiersRemoved", c.direct_identifiers_removed, r.direct_identifiers_removed,
                    "removing direct identifiers")
        if r.key_holder is not None and c.key_holder != r.key_holder:
            out.append(Violation(d + ".keyHolder", f"the pseudonymisation key must be held by {r.key_holder}",
                                 [c.key_holder]))
        out += _superset(d + ".quasiIdentifiers", c.quasi_identifiers, r.quasi_identifiers, "quasi-identifiers")
        out += _superset(d + ".sensitiveAttributes", c.sensitive_attributes, r.sensitive_attributes,
                         "sensitive attributes")
        out += _not_less(d + ".kAnonymity", c.k_anonymity, r.k_anonymity, "k-anonymity")
        out += _not_less(d + ".lDiversity", c.l_diversity, r.l_diversity, "l-diversity")
        return out
    if isinstance(r, TreOnly):
        out = _flag(d + ".outputChecking", c.output_checking, r.output_checking, "output checking")
        out += _subset(d + ".accreditations", c.accreditation_schemes, r.accreditation_schemes, "accreditations")
        if r.environments is not None:
            if c.environments is None:
                out.append(Violation(d + ".environments", "any TRE is wider than the listed TREs", [None]))
            else:
                out += _subset(d + ".environments", c.environments, r.environments, "environments")
        return out
    if isinstance(r, Rounding):
        # every multiple of a multiple of the base is a multiple of the base: a coarser base that the reference's
        # divides keeps the reference's property; any other base does not
        out = [] if c.base % r.base == 0 else [Violation(d + ".base", f"rounding to a multiple of {c.base} does not "
                                                         f"give multiples of the required base {r.base}", [c.base])]
        return out + _count_columns(d, c.count_columns, r.count_columns)
    if isinstance(r, CellKeyPerturbation):
        # the provider checks a release by reproducing it from the approved ptable: any other ptable or modulus is
        # a different (unreviewed) perturbation, not a stricter one
        out = [] if (c.modulus, c.ptable) == (r.modulus, r.ptable) else [
            Violation(d + ".ptable", "the approved ptable (and record-key modulus) is required", [c.max_perturbation])]
        return out + _count_columns(d, c.count_columns, r.count_columns)
    raise AssertionError(f"unhandled protocol kind {r.kind}")  # pragma: no cover  (the union is closed)


def _count_columns(d: str, c: list[str] | None, r: list[str] | None) -> list[Violation]:
    """Naming count columns exempts every other column: the reference's may only be kept or widened."""
    if r is None:
        return []
    missing = sorted(set(r) - set(c or []))
    return [Violation(d + ".countColumns", f"count columns {missing} required by the reference protocol would not "
                      "be named", missing)] if missing else []


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


@dataclass
class ReleaseContext:
    """What the provider knows at transfer time, beyond the manifest (which, on a pull, is the recipient's):

    - ``recipient``: who receives the data (the presentation's holder);
    - ``recipient_accreditations``: certification schemes the recipient holds valid certifications for (checked by
      the decision; None: not known, so a ``treOnly`` approval is refused);
    - ``ledger``: the data owner's ``PrivacyLedger`` (budgets and earlier outputs); ``dataset``, ``approval``,
      ``subjects`` (the approval's data-subject categories), ``anchor`` (the start periods count from when a
      budget names none: the approval's cadence start) and ``now``;
    - ``contributions``: contributor-level data for dominance, ``{cell: [contribution, ...]}``, where the provider
      holds them; None: not available here, so an approval with a dominance rule is refused unchecked;
    - ``record_keys``: for cell-key perturbation, the record keys of the provider's records, ``{cell: [key, ...]}``
      (``verifier.disclosure.cellkey``); None: not available here, so a cell-key perturbed output is refused.
    """
    recipient: str | None = None
    recipient_accreditations: set[str] | None = None
    ledger: PrivacyLedger | None = None
    dataset: str | None = None
    approval: str | None = None
    subjects: tuple[str, ...] = ()
    anchor: datetime | None = None
    now: datetime | None = None
    contributions: Mapping | None = None
    record_keys: Mapping | None = None

    def series_key(self, header: list[str]) -> str:
        """An output series of the dataset: the table's columns as released (never the manifest's word), whatever
        approval or recipient it went to, so releases to different recipients are differenced too."""
        return ",".join(sorted(header))


def _violation_problem(v: Violation) -> Problem:
    last = v.dimension.rsplit(".", 1)[-1]
    code = "protocol.output_party_not_allowed" if last in ("outputParties", "learners") \
        else "protocol.run_weaker_than_approved"
    return _problem(code, f"The protocol run does not keep to the approved protocol: {v.message}.",
                    dimension=v.dimension, offending=list(v.offending))


def _check_run(approved: list, manifest: dict) -> list[Problem]:
    """The run parameters stated in the manifest (``protocolRun``) against the approved protocols. The privacy
    budget is not the manifest's to account: figures such as ``epsilonSpent`` or ``releasesInPeriod`` are ignored;
    the data owner's ledger counts (``charge``)."""
    needs_run = [p for p in approved if isinstance(p, (DifferentialPrivacy, SecureAggregation, PsiCardinality,
                                                       Dominance))]
    out: list[Problem] = []
    for p in approved:
        if isinstance(p, SecureAggregation):
            out += independence_problems(p)
    if not needs_run:
        return out
    try:
        run = parse_protocols(manifest.get("protocolRun"))
    except ValueError as exc:
        return out + [_problem("protocol.malformed", f"The manifest's protocolRun is malformed: {exc}.")]
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
        else:
            out += [_violation_problem(v) for v in _compare(c, ref)]
        allowed = ref.output_parties if isinstance(ref, SecureAggregation) else \
            ref.learners if isinstance(ref, PsiCardinality) else None
        if allowed is not None and recipient is not None and recipient not in allowed:
            out.append(_problem("protocol.output_party_not_allowed", f"{recipient} may not learn the output of "
                                f"this {ref.kind}; allowed: {allowed}.", recipient=recipient, allowed=allowed))
    return out


def _holds_counts(cells) -> bool:
    """Whether a column is read as counts when the approval names none: any cell holds a whole number, or every cell
    is a suppression marker (a column suppressed throughout is still counts). (Its other
    cells must then be counts or suppression markers too, else the payload is unparseable: a column is never
    dropped from the check because one cell reads "<5" or "1,204".)"""
    cells = [cell.strip() for cell in cells]
    return any(cell.isascii() and cell.isdigit() for cell in cells) or \
        (all(cell in SUPPRESSED for cell in cells) and any(cell in ("*", "[c]", "[x]", "..") for cell in cells))


def _check_table(thresholds: list[Threshold], manifest: dict, payload: bytes,
                 approved_columns: list[str] | None, context: "ReleaseContext") -> list[Problem]:
    try:
        table = disclosure.read_table(payload)
        header, rows = table.header, table.rows
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
    index = {h: i for i, h in enumerate(header)}
    for n, row in enumerate(rows, start=1):
        for col in count_columns:
            cell = row[index[col]].strip()
            if cell in SUPPRESSED:
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
    # secondary suppression over the whole table: rows, columns, marginal and hierarchical totals; the manifest
    # may only add relations (a totalColumn, a hierarchy), never remove one
    secondary = [t for t in thresholds if t.secondary_suppression]
    if secondary:
        hierarchy: dict[str, list[str]] = {}
        for t in secondary:
            hierarchy.update(t.hierarchy or {})
        extra = manifest.get("hierarchy")
        if not (isinstance(extra, dict) and all(isinstance(k, str) and isinstance(v, list) and
                                                all(isinstance(x, str) for x in v) for k, v in extra.items())):
            extra = {}
        total_column = manifest.get("totalColumn")
        out += suppression.audit(table, count_columns, min_count=minimum,
                                 protection=max(t.protection for t in secondary), hierarchy=hierarchy,
                                 total_columns=[total_column] if isinstance(total_column, str) else [],
                                 extra_hierarchy=extra)
    # differencing against what this node released before of the same series
    if context.ledger is not None and context.dataset:
        try:
            earlier = [disclosure.read_table(b) for b in context.ledger.earlier_outputs(context.dataset,
                                                                                          context.series_key(header))]
        except Exception as exc:  # noqa: BLE001  (an unreadable history is not an empty one)
            return out + [_problem("protocol.ledger_unavailable", f"The node's record of earlier releases cannot be "
                                   f"read ({str(exc)[:200]}), so differencing cannot be checked.")]
        out += differencing.check(table, earlier, count_columns, minimum)
    return out


def _check_perturbed(protocols: list, manifest: dict, payload: bytes, context: ReleaseContext) -> list[Problem]:
    """Rounding (every count a multiple of the base) and cell-key perturbation (every count reproduced from the
    provider's record keys and the approved ptable) on the table being released."""
    try:
        table = disclosure.read_table(payload)
    except ValueError as exc:
        return [_problem("protocol.payload_unparseable", f"The payload cannot be checked: {exc}.")]
    declared = manifest.get("countColumns", [])
    if not isinstance(declared, list) or not all(isinstance(c, str) for c in declared):
        return [_problem("protocol.payload_unparseable", "The manifest's countColumns must be a list of column names.")]
    out: list[Problem] = []
    for p in protocols:
        columns = list(dict.fromkeys([*(p.count_columns or []), *declared,
                                      *(["count"] if "count" in table.header else [])]))
        missing = [c for c in columns if c not in table.header]
        if missing or not columns:
            out.append(_problem("protocol.payload_unparseable", f"The count columns {missing} are not in the payload."
                                if missing else f"The payload has no count column for {p.kind} (none named by the "
                                "approval or the manifest, and no 'count' column).", columns=missing))
            continue
        if isinstance(p, Rounding):
            out += rounding.check(table, columns, p.base)
        elif context.record_keys is None:
            out.append(_problem("protocol.perturbation_unverifiable", "The approved protocol has cell-key "
                                "perturbation, checked by reproducing each published count from the provider's record "
                                "keys, which this gateway does not have: the provider's gateway must check it."))
        else:
            out += cellkey.check(table, columns, p, context.record_keys)
    return out


def _check_tre(tre: TreOnly, context: ReleaseContext) -> list[Problem]:
    """Only the TRE itself may receive the data, and only with a valid accreditation (a certification credential
    the decision checked): a manifest naming an environment is not evidence."""
    out = []
    if tre.environments is not None and context.recipient not in tre.environments:
        out.append(_problem("protocol.tre_required", "Data under this approval may only go to "
                            f"{[vocab.compact(e) for e in tre.environments]} itself; {context.recipient} is not one "
                            "of them.", recipient=context.recipient))
    held = set(context.recipient_accreditations or ())
    if not held & set(tre.accreditation_schemes):
        schemes = [vocab.compact(s) for s in tre.accreditation_schemes]
        out.append(_problem("protocol.tre_not_accredited", "Data under this approval may only go to a trusted "
                            f"research environment accredited under {schemes}; {context.recipient} presented no "
                            "valid certification of that.", recipient=context.recipient, required=schemes))
    return out


def _check_records(pseudo: list[Pseudonymisation], payload: bytes) -> list[Problem]:
    """A record-level extract under pseudonymisation: no direct identifiers; k-anonymity and l-diversity over the
    declared quasi-identifiers."""
    try:
        table = disclosure.read_table(payload)
    except ValueError as exc:
        return [_problem("protocol.payload_unparseable", f"The extract cannot be checked: {exc}.")]
    out: list[Problem] = []
    if any(p.direct_identifiers_removed for p in pseudo):
        out += identifiers.scan(table)
    for p in pseudo:
        if p.k_anonymity is not None:
            out += records.k_anonymity(table, list(p.quasi_identifiers), p.k_anonymity)
        if p.l_diversity is not None:
            out += records.l_diversity(table, list(p.quasi_identifiers), list(p.sensitive_attributes),
                                       p.l_diversity)
    return out


def check_transfer(protocol: Any, manifest: dict, payload: bytes | None,
                   *, approved_columns: list[str] | None = None,
                   context: ReleaseContext | None = None) -> list[Problem]:
    """Problems with a transfer under ``protocol`` (the approval's privacy protocol): the manifest's run
    parameters, the TRE recipient, a table of counts (threshold, whole-table secondary suppression, differencing
    against earlier releases), a record-level extract (direct identifiers, k-anonymity, l-diversity), dominance on
    contributor-level data. An empty list means the transfer keeps to the protocol. Never raises for bad input.
    The budget is charged separately (``charge``), once the whole decision allows the release."""
    context = context or ReleaseContext(recipient=manifest.get("recipient") if isinstance(manifest, dict) else None)
    try:
        approved = parse_protocols(protocol)
    except ValueError as exc:
        return [_problem("protocol.malformed", f"The approved privacy protocol is malformed: {exc}.")]
    if not isinstance(manifest, dict):
        return [_problem("protocol.malformed", "The transfer manifest must be a JSON object.")]
    out = _check_run(approved, manifest)
    for tre in (p for p in approved if isinstance(p, TreOnly)):
        out += _check_tre(tre, context)
    for dom in (p for p in approved if isinstance(p, Dominance)):
        if context.contributions is None:   # the manifest's protocolRun is the requester's word, not a check
            out.append(_problem("protocol.dominance_unverifiable", "The approved protocol has a dominance rule, "
                                "checked on the contributor-level data behind each cell, which this gateway does "
                                "not have: the provider's gateway must check it (its ledger's contributions)."))
        else:
            out += dominance.check(context.contributions, dom.n, dom.k, dom.p)
    thresholds = [p for p in approved if isinstance(p, Threshold)]
    if thresholds:
        if payload is None:
            out.append(_problem("protocol.payload_missing", "The approved protocol has a minimum cell count, so the "
                                "table of counts must be sent for checking."))
        else:
            out += _check_table(thresholds, manifest, payload, approved_columns, context)
    perturbed = [p for p in approved if isinstance(p, (Rounding, CellKeyPerturbation))]
    if perturbed:
        if payload is None:
            out.append(_problem("protocol.payload_missing", f"The approved protocol has {perturbed[0].kind}, so the "
                                "table of counts must be sent for checking."))
        else:
            out += _check_perturbed(perturbed, manifest, payload, context)
    pseudo = [p for p in approved if isinstance(p, Pseudonymisation)]
    if pseudo:
        if payload is None:
            out.append(_problem("protocol.payload_missing", "The approved protocol requires pseudonymisation, so the "
                                "extract must be sent for checking (direct identifiers, k-anonymity)."))
        else:
            out += _check_records(pseudo, payload)
    return out


def dp_budget(dp: DifferentialPrivacy, anchor: datetime | None) -> Budget | None:
    """The ledger's budget for an approved DP protocol: periods from ``budget.start``, else from ``anchor``."""
    if dp.budget is None:
        return None
    start = dp.budget.start or anchor
    if start is None:
        raise ValueError("the privacy budget names no start and the approval gives none")
    return Budget(start=start, period_seconds=vocab.duration_seconds(dp.budget.period), epsilon=dp.budget.epsilon,
                  rho=dp.budget.rho, max_releases=dp.budget.max_releases)


def release_for(dp: DifferentialPrivacy, context: ReleaseContext) -> Release:
    """The release to charge: the approved per-release loss (never what the manifest says was spent)."""
    return Release(dataset=context.dataset or "", approval=context.approval or "", recipient=context.recipient or "",
                   subjects=tuple(sorted(context.subjects)), unit=dp.unit_of_privacy, mechanism=dp.mechanism,
                   epsilon=dp.epsilon, delta=dp.delta, rho=dp.rho)


def charge(protocol: Any, context: ReleaseContext) -> list[Problem]:
    """Record the release of each approved differential-privacy protocol in the data owner's ledger, or refuse
    it (``protocol.budget_exhausted``, ``protocol.release_limit``, ``protocol.budget_not_started``,
    ``protocol.ledger_unavailable``). Call it last, when everything else allows the release, before the data
    leave. Never raises for bad input."""
    try:
        approved = parse_protocols(protocol)
    except ValueError as exc:
        return [_problem("protocol.malformed", f"The approved privacy protocol is malformed: {exc}.")]
    dps = [p for p in approved if isinstance(p, DifferentialPrivacy)]
    if not dps:
        return []
    if context.ledger is None or not context.dataset:
        return [_problem("protocol.ledger_unavailable", "The approval allows differentially private releases only "
                         "as the data owner's privacy-budget ledger affords them, and this gateway has no ledger.")]
    out: list[Problem] = []
    for dp in dps:
        try:
            budget = dp_budget(dp, context.anchor)
        except ValueError as exc:
            out.append(_problem("protocol.malformed", f"The approved privacy budget cannot be used: {exc}."))
            continue
        try:
            out += context.ledger.charge(release_for(dp, context), budget, context.now)
        except Exception as exc:  # noqa: BLE001  (a ledger that fails does not release)
            out.append(_problem("protocol.ledger_unavailable", f"The data owner's privacy-budget ledger failed "
                                f"({str(exc)[:200]}), so the release is refused."))
    return out


def remember_output(protocol: Any, context: ReleaseContext, payload: bytes) -> list[Problem]:
    """Keep a table of counts that is about to leave in the node's ledger, so later releases of the series are
    checked for differencing against it (only under a threshold rule; needs a ledger)."""
    try:
        approved = parse_protocols(protocol)
    except ValueError:
        return []
    if context.ledger is None or not context.dataset or not any(isinstance(p, Threshold) for p in approved):
        return []
    try:
        header = disclosure.read_table(payload).header
        context.ledger.record_output(context.dataset, context.series_key(header), payload, context.approval or "",
                                     context.recipient or "")
    except Exception as exc:  # noqa: BLE001
        return [_problem("protocol.ledger_unavailable", f"The output could not be kept in the node's record of "
                         f"releases ({str(exc)[:200]}), so it is withheld.")]
    return []
