"""Is there evidence that a privacy-preserving computation really ran, and produced exactly these bytes?

``check_attestation`` is the stateless check a gateway runs before it releases the output of a private set
intersection cardinality or a secure aggregation. Instead of trusting a ``protocolRun`` a manifest states, it
requires a run attestation (``schemas.attestation.RunAttestation``) that

- verifies as a credential, and is signed by the issuer and co-signed (a Data Integrity proof set) by every compute
  party it names, and by nobody else;
- covers exactly the bytes about to be released (``outputDigest`` = SHA-256 of the output);
- ran a protocol the approval allows, at least as strict as the approval's (``verifier.protocols``);
- had compute parties from enough independent organisations: collusion is counted in organisations, not DIDs, and
  an output party's organisation counts as already colluding (it learns the output anyway);
- had enough input parties (a pooled output of fewer than ``min_input_parties`` organisations reveals them);
- had every input party's own approval, presented alongside and pinned by digest in the attestation, and each of
  those approvals allows the run and the output parties.

Every failure is a ``Problem`` with an ``attestation.*`` code (listed in docs/computations.md).
"""
from __future__ import annotations

import hmac
from datetime import datetime, timezone
from typing import Any, Callable, Iterable
from urllib.parse import unquote

from schemas.attestation import RunAttestation, output_digest
from schemas.models import DataSharingApproval, DifferentialPrivacy, PsiCardinality, SecureAggregation, \
    credential_digest

from .protocols import at_least_as_strict, parse_protocols
from .results import CeadError, Problem

MIN_INPUT_PARTIES = 3        # a sum over two parties reveals each to the other; over one, to everyone
MIN_ORGANISATIONS = 2        # a computation "shared" among one organisation's machines is no protection


def organisation_of_did(did: str) -> str:
    """The organisation a DID belongs to, by default: for ``did:web`` its host (with port; path segments are parts
    of the same organisation); for any other method, the DID itself. ``organisations()`` also folds sub-domains
    into their parent domain."""
    if did.startswith("did:web:"):
        return unquote(did[len("did:web:"):].split(":", 1)[0]).lower()
    return did


def organisations(dids: Iterable[str], organisation_of: Callable[[str], str] | None = None) -> dict[str, str]:
    """``{did: organisation}``; a host that is a sub-domain of another listed host (``mpc.fife.example`` and
    ``fife.example``) is the same organisation."""
    of = organisation_of or organisation_of_did
    raw = {did: of(did) for did in dids}
    hosts = set(raw.values())
    out = {}
    for did, org in raw.items():
        parents = [h for h in hosts if h != org and org.endswith("." + h)]
        out[did] = min(parents, key=len) if parents else org
    return out


def _problem(code: str, message: str, **detail: Any) -> Problem:
    return Problem(code, message, detail)


def _orgs_to_collude(compute_orgs: dict[str, str], threshold: int, colluding: set[str]) -> int:
    """The fewest organisations that together hold ``threshold`` compute parties (organisations in ``colluding``
    are free): the collusion threshold counted in organisations."""
    per_org: dict[str, int] = {}
    for org in compute_orgs.values():
        per_org[org] = per_org.get(org, 0) + 1
    held = sum(n for org, n in per_org.items() if org in colluding)
    needed = 0
    for n in sorted((n for org, n in per_org.items() if org not in colluding), reverse=True):
        if held >= threshold:
            break
        held += n
        needed += 1
    return needed if held >= threshold else len(per_org) + 1


def _required_threshold(approved: list) -> int:
    return max([MIN_ORGANISATIONS] + [p.collusion_threshold for p in approved if isinstance(p, SecureAggregation)])


def _run_protocols(subject: RunAttestation) -> list:
    return parse_protocols(subject.run_parameters.get("protocol"))


def _consistency(subject: RunAttestation, run: Any) -> list[Problem]:
    """What the attestation says ran must match the protocol entry it states (parties, outputs)."""
    inputs = {i.party for i in subject.inputs}
    if isinstance(run, SecureAggregation):
        pairs = [("inputParties", set(run.input_parties), inputs),
                 ("computeParties", set(run.compute_parties), set(subject.compute_parties)),
                 ("outputParties", set(run.output_parties), set(subject.output_parties))]
    else:
        pairs = [("parties", set(run.parties), inputs),
                 ("parties", set(run.parties), set(subject.compute_parties)),
                 ("learners", set(run.learners), set(subject.output_parties))]
    return [_problem("attestation.inconsistent", f"The attestation's {name} do not match the parties that took "
                     f"part: protocol {sorted(stated)}, run {sorted(actual)}.", part=name)
            for name, stated, actual in pairs if stated != actual]


def _without_budget(protocols: list) -> list:
    """A DP budget is the discloser's ledger's to enforce (per release, before data leave), not the run's."""
    return [p.model_copy(update={"budget": None}) if isinstance(p, DifferentialPrivacy) else p for p in protocols]


def approval_allows_run(credential: Any, party: str, kind: str, run_protocols: list, output_parties: Iterable[str],
                        *, verifier, now: datetime | None = None,
                        organisation_of: Callable[[str], str] | None = None) -> str | None:
    """Why ``credential`` does not authorise ``party`` to contribute to a ``kind`` run of ``run_protocols`` whose
    output goes to ``output_parties``; None when it does. The same rule for a node deciding whether to take part
    (``wallet.computations``) and for the gateway releasing the output: the approval verifies, it is the party's
    own (its ``discloser``), it allows a protocol of that kind that the run is at least as strict as (a DP budget
    aside: the discloser's ledger enforces it), and it names every output party as a recipient. Its issuer must
    belong to the party's own organisation (``organisations``): an approval signed by anyone else for the party's
    data authorises nothing here."""
    result = verifier.verify_credential(credential, now=now)
    if not result.verified:
        said = (result.problems[0].message if result.problems else "").rstrip(". ")[:500]   # e.g. which address
        return (f"its approval does not verify ({', '.join(p.code for p in result.problems)})"
                + (f": {said}." if said else "."))
    try:
        approval = DataSharingApproval.from_credential(result.document)
    except CeadError as exc:
        return f"its approval is not a data-sharing approval ({exc.problem.message})."
    if approval.discloser != party:
        return f"the approval is for {approval.discloser}'s disclosure, not {party}'s."
    moment = now if now is not None else verifier.context.now()   # the verifier's clock, never the system's directly
    if not approval.not_before <= moment <= approval.not_after:
        return (f"the approval is in force from {approval.not_before.isoformat()} to {approval.not_after.isoformat()}, "
                f"not at {moment.isoformat()}.")
    orgs = organisations([result.issuer, party], organisation_of)
    if orgs[result.issuer] != orgs[party]:
        return (f"the approval was issued by {result.issuer}, not by {party}'s own organisation (a delegated approver "
                "is checked by the transfer decision, not here).")
    if not any(p.kind == kind for p in approval.privacy_protocol):
        return f"its approval does not allow a {kind} run."
    violations = at_least_as_strict(run_protocols, _without_budget(
        [p for p in approval.privacy_protocol if p.kind in {kind, "differentialPrivacy"}]))
    if violations:
        return "the run is weaker than its approval allows: " + "; ".join(v.message for v in violations[:3]) + "."
    missing = sorted(set(output_parties) - set(approval.recipients))
    if missing:
        return f"its approval does not name {missing} as recipients."
    return None


def _contributor_problems(subject: RunAttestation, run_protocols: list, presented: list, verifier,
                          now: datetime | None, organisation_of: Callable[[str], str] | None) -> list[Problem]:
    """Every input party's own approval: presented, pinned by the attestation, and allowing the run."""
    by_digest: dict[str, Any] = {}
    for credential in presented:
        try:
            by_digest[credential_digest(credential)] = credential
        except CeadError:
            continue
    out = []
    for item in subject.inputs:
        if list(subject.output_parties) == [item.party]:
            continue    # its input goes into an output only it learns: it discloses nothing
        if item.approval is None:
            why = "the attestation pins no approval for it."
        elif item.approval.digest not in by_digest:
            why = f"its approval {item.approval.id} was not presented (or differs from the one pinned)."
        else:
            why = approval_allows_run(by_digest[item.approval.digest], item.party, subject.protocol_kind,
                                      run_protocols, subject.output_parties, verifier=verifier, now=now,
                                      organisation_of=organisation_of)
        if why:
            out.append(_problem("attestation.contributor_not_approved", f"{item.party} contributed an input "
                                f"without an approval that allows this run: {why}", party=item.party))
    return out


def check_attestation(attestation: dict | str | None, output: bytes | None, approved: Any, *, verifier,
                      approvals: Iterable[Any] = (), organisation_of: Callable[[str], str] | None = None,
                      min_input_parties: int = MIN_INPUT_PARTIES, now: datetime | None = None) -> list[Problem]:
    """Problems with releasing ``output`` (the exact bytes) under the ``approved`` privacy protocol(s) on the
    evidence of ``attestation`` (a credential). ``verifier`` is a ``verifier.credential.Verifier``; ``approvals``
    are the credentials presented with the request (every input party's approval must be among them);
    ``organisation_of`` maps a DID to its organisation (default ``organisation_of_did``). Empty list: release."""
    try:
        approved_protocols = parse_protocols(approved)
    except ValueError as exc:
        return [_problem("attestation.malformed", f"The approved protocol is malformed: {exc}.")]
    kinds = [p for p in approved_protocols if isinstance(p, (SecureAggregation, PsiCardinality))]
    if attestation is None:
        return [_problem("attestation.missing", "The output of a "
                         f"{' / '.join(p.kind for p in kinds) or 'privacy-preserving computation'} is released only "
                         "with the run attestation its compute parties signed (manifest runAttestation).")]
    result = verifier.verify_credential(attestation, now=now)
    if not result.verified:
        return [_problem("attestation.invalid", "The run attestation does not verify: "
                         + "; ".join(f"{p.code}: {p.message}" for p in result.problems[:3]),
                         problems=[p.to_dict() for p in result.problems])]
    try:
        subject = RunAttestation.from_credential(result.document)
        run_protocols = _run_protocols(subject)
    except (CeadError, ValueError) as exc:
        message = exc.problem.message if isinstance(exc, CeadError) else str(exc)
        return [_problem("attestation.malformed", f"The run attestation cannot be read: {message}")]
    run = next((p for p in run_protocols if p.kind == subject.protocol_kind), None)
    if run is None:
        return [_problem("attestation.malformed", f"runParameters.protocol has no {subject.protocol_kind} entry.")]
    out: list[Problem] = []

    # 1. exactly these bytes (None: compared later, by ``response_check`` on the response)
    if output is not None and not hmac.compare_digest(output_digest(output), subject.output_digest):
        out.append(_problem("attestation.output_mismatch", "The run attestation is for a different output: the "
                            "bytes being released do not have the attested SHA-256.", attested=subject.output_digest,
                            released=output_digest(output), run=subject.id))
    # 2. signed by its compute parties, all of them, and only them
    signers = [result.issuer, *result.co_signers]
    strangers = [s for s in signers if s not in subject.compute_parties]
    if strangers:
        out.append(_problem("attestation.signer_not_compute_party", f"{', '.join(strangers)} signed the run "
                            "attestation but is not one of its compute parties.", signers=strangers))
    unsigned = [d for d in subject.compute_parties if d not in signers]
    if unsigned:
        out.append(_problem("attestation.unsigned", f"Compute parties {', '.join(unsigned)} did not sign the run "
                            "attestation (each adds a proof to its proof set).", missing=unsigned))
    out += _consistency(subject, run)
    # 3. allowed and at least as strict as approved
    same_kind = [p for p in approved_protocols if p.kind == subject.protocol_kind]
    if not same_kind:
        out.append(_problem("attestation.protocol_not_approved", f"The approval does not allow a "
                            f"{subject.protocol_kind} run (it allows {[p.kind for p in approved_protocols]}).",
                            kind=subject.protocol_kind))
    else:
        reference = _without_budget([p for p in approved_protocols
                                     if p.kind in {subject.protocol_kind, "differentialPrivacy"}])
        for v in at_least_as_strict(run_protocols, reference):
            out.append(_problem("attestation.weaker_than_approved", f"The attested run is weaker than approved: "
                                f"{v.message}.", dimension=v.dimension, offending=list(v.offending)))
    # 4. independent organisations
    everyone = set(subject.compute_parties) | set(subject.output_parties) | {i.party for i in subject.inputs}
    orgs = organisations(everyone, organisation_of)
    compute_orgs = {d: orgs[d] for d in subject.compute_parties if d in signers}
    output_orgs = {orgs[d] for d in subject.output_parties}
    threshold = run.collusion_threshold if isinstance(run, SecureAggregation) else len(run.parties)
    needed = _orgs_to_collude(compute_orgs, threshold, output_orgs if isinstance(run, SecureAggregation) else set())
    required = _required_threshold(approved_protocols)
    if needed < required:
        out.append(_problem("attestation.too_few_organisations", f"The compute parties that signed belong to too few "
                            f"independent organisations: {needed} organisation(s) could learn the inputs by "
                            f"colluding, at least {required} are required (an output party's own organisation "
                            "counts as colluding).", organisations=sorted(set(compute_orgs.values())),
                            colluding=needed, required=required))
    # 5. enough input parties
    if isinstance(run, SecureAggregation):
        input_orgs = {orgs[i.party] for i in subject.inputs}
        minimum = max(min_input_parties, int(subject.run_parameters.get("minInputParties") or 0))
        if len(input_orgs) < minimum:
            out.append(_problem("attestation.too_few_input_parties", f"A pooled output of {len(input_orgs)} "
                                f"organisation(s) reveals their inputs; at least {minimum} are required.",
                                inputParties=len(input_orgs), required=minimum))
    # 6. every contributor approved
    out += _contributor_problems(subject, run_protocols, list(approvals), verifier, now, organisation_of)
    return out


def attestation_id(attestation: Any) -> str | None:
    """The run id (``urn:cead:run:...``) of an attestation, unverified, for display; None if unreadable."""
    try:
        from .credential import _load, unwrap_enveloped
        from . import jose
        loaded = _load(unwrap_enveloped(attestation), "credential")
        doc = jose.to_document(jose.unverified_claims(loaded), "vc") if isinstance(loaded, str) else loaded
        subject = doc.get("credentialSubject")
        return subject.get("id") if isinstance(subject, dict) else None
    except Exception:
        return None


COMPUTATION_KINDS = (SecureAggregation, PsiCardinality)
MANIFEST_KEY = "runAttestation"


def needs_attestation(approved: Any) -> bool:
    """Whether the approved protocol(s) name a computation whose output needs a run attestation."""
    try:
        return any(isinstance(p, COMPUTATION_KINDS) for p in parse_protocols(approved))
    except ValueError:
        return False


def transfer_check(approved: Any, manifest: dict | None, output: bytes | None, presented: Iterable[Any], *,
                   verifier, required: bool = False, output_later: bool = False,
                   organisation_of: Callable[[str], str] | None = None,
                   now: datetime | None = None) -> list[Problem]:
    """The transfer decision's hook (protocol stage): when the approval allows a PSI cardinality or a secure
    aggregation, the output released is checked against the manifest's ``runAttestation`` (a credential) with
    ``check_attestation``; ``presented`` are the presentation's credentials (every input party's approval among
    them). Without an attestation: ``attestation.missing`` when ``required`` (trust policy
    ``run_attestations: required``, the default), else nothing is added (a gateway that explicitly chose
    ``when_given``: the manifest's ``protocolRun`` is then all there is).
    ``output_later``: the output travels in the response and is checked there (call again with it)."""
    if not needs_attestation(approved):
        return []
    attestation = (manifest or {}).get(MANIFEST_KEY)
    if attestation is None:
        return check_attestation(None, b"", approved, verifier=verifier) if required else []
    if output is None:
        if output_later:   # everything but the bytes now; the bytes by ``response_check`` on the response
            return check_attestation(attestation, None, approved, verifier=verifier, approvals=presented,
                                     organisation_of=organisation_of, now=now)
        return [_problem("attestation.output_missing", "The output the run attestation covers is not in this "
                         "request, so it cannot be compared with the attestation (send it as the body of a push, or "
                         "check the response at the gateway).")]
    return check_attestation(attestation, output, approved, verifier=verifier, approvals=presented,
                             organisation_of=organisation_of, now=now)


def response_check(approved: Any, manifest: dict | None, body: bytes) -> list[Problem]:
    """The response of a pull whose attestation ``transfer_check`` verified when the transfer was decided (the
    manifest is bound to the request): the bytes leaving must be the attested ones (``attestation.output_mismatch``)."""
    attestation = (manifest or {}).get(MANIFEST_KEY)
    if attestation is None or not needs_attestation(approved):
        return []
    try:
        from .credential import _load, unwrap_enveloped
        from . import jose
        loaded = _load(unwrap_enveloped(attestation), "credential")
        doc = jose.to_document(jose.unverified_claims(loaded), "vc") if isinstance(loaded, str) else loaded
        attested = doc["credentialSubject"]["outputDigest"]
    except Exception:
        return [_problem("attestation.malformed", "The run attestation cannot be read.")]
    if isinstance(attested, str) and hmac.compare_digest(output_digest(body), attested):
        return []
    return [_problem("attestation.output_mismatch", "The response is not the output the run attestation covers.",
                     attested=str(attested)[:80], released=output_digest(body))]


def response_check_needed(approved: Any, manifest: dict | None) -> bool:
    """Whether a pull's response must be compared with the manifest's run attestation."""
    return bool((manifest or {}).get(MANIFEST_KEY)) and needs_attestation(approved)
