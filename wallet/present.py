"""Building verifiable presentations: VC-JOSE ``vp+jwt`` (default) or Data Integrity, bound to one request.

The binding to an HTTP request is the wire contract's (``verifier.binding``); this module only chooses the
credentials and signs.
"""
from __future__ import annotations

import contextvars
import functools
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from schemas.models import DataSharingApproval, DelegatedAuthority, OrganisationCertification, credential_digest
from schemas.values import xsd_datetime
from schemas.vocab import compact, expand, registry
from verifier.binding import (MANIFEST_HEADER, PRESENTATION_HEADER, RECEIPT_FORMS_HEADER, encode_manifest,
                              encode_presentation, origin,
                              request_binding)
from verifier.results import CeadError

from . import pex
from .store import STATUS_REVOKED, STATUS_SUSPENDED, _aware, walk_pinned

VC_V2 = "https://www.w3.org/ns/credentials/v2"
MAX_LIFETIME = 300

APPROVAL = DataSharingApproval.credential_type
CERTIFICATION = OrganisationCertification.credential_type


def _enveloped(credential: dict | str) -> dict:
    """A JSON credential as is; a JWT credential as an EnvelopedVerifiableCredential (VC-JOSE-COSE)."""
    if isinstance(credential, dict):
        return credential
    if isinstance(credential, str) and credential.count(".") == 2:
        return {"@context": VC_V2, "id": f"data:application/vc+jwt,{credential}",
                "type": "EnvelopedVerifiableCredential"}
    raise CeadError("credential.malformed", "A credential must be a JSON object or a compact JWT.")


def build_presentation(holder_did: str, key, kid: str, credentials: Iterable[dict | str], *, format: str = "jwt",
                       audience: str | None = None, nonce: str | None = None, domain: str | None = None,
                       challenge: str | None = None, lifetime: int = 60, now: datetime | None = None) -> str | dict:
    """A presentation by ``holder_did`` of ``credentials``, signed with ``key`` under verification method ``kid``.

    ``format="jwt"``: a compact ``vp+jwt`` whose claims are the presentation plus iss, aud, nonce, iat, exp, jti.
    ``format="ldp"``: the presentation with a Data Integrity proof (purpose ``authentication``, ``challenge``,
    ``domain``, ``created``, ``expires``). ``audience``/``domain`` and ``nonce``/``challenge`` are synonyms.
    """
    if not 0 < lifetime <= MAX_LIFETIME:
        raise CeadError("presentation.lifetime_invalid", f"A presentation lives 1 to {MAX_LIFETIME} seconds.")
    audience = audience or domain
    nonce = nonce or challenge
    now = now or datetime.now(timezone.utc)
    vp: dict[str, Any] = {
        "@context": [VC_V2],
        "type": ["VerifiablePresentation"],
        "id": f"urn:uuid:{uuid.uuid4()}",
        "holder": holder_did,
        "verifiableCredential": [_enveloped(c) for c in credentials],
    }
    if format == "jwt":
        from issuer.signing import sign_jwt
        claims = dict(vp, iss=holder_did, jti=vp["id"], iat=int(now.timestamp()),
                      exp=int(now.timestamp()) + lifetime)
        if audience:
            claims["aud"] = audience
        if nonce:
            claims["nonce"] = nonce
        return sign_jwt(claims, key, kid, typ="vp+jwt")
    if format == "ldp":
        from issuer.signing import add_proof
        return add_proof(vp, key, kid, purpose="authentication", challenge=nonce, domain=audience,
                         created=xsd_datetime(now), expires=xsd_datetime(now + timedelta(seconds=lifetime)))
    raise CeadError("presentation.format_unsupported", f"Unknown presentation format {format!r} (jwt or ldp).")


# ---- choosing credentials -------------------------------------------------------------------------------------
def _unusable(record, now: datetime | None = None) -> str | None:
    """Why a held credential cannot be presented now (``revoked``, ``expired``, ``not yet valid``, ``suspended``:
    the first that applies, as last seen by the wallet), or None when it can. It has expired at the end of its
    validity or at the ``notAfter`` it states (an approval's period, a delegation's scope), whichever comes first,
    and is not yet valid before its start likewise (``WalletCredential.out_of_force``: the rule ``Wallet.search``
    and the warnings read), since the gateway refuses it then."""
    now = now or datetime.now(timezone.utc)
    if record.status_now == STATUS_REVOKED:
        return "revoked"
    standing = record.out_of_force(now)
    if standing == "ended":
        return "expired"
    if standing == "not yet in force":
        return "not yet valid"
    if record.status_now == STATUS_SUSPENDED:
        return "suspended"
    return None


# what _unusable says, as the guard rail's ``delegation.not_in_force`` names it in ``detail.status``
_STATE = {"revoked": "revoked", "expired": "expired", "not yet valid": "not_yet_valid", "suspended": "suspended"}


def delegation_words(document: dict) -> str:
    """A delegation in words, as who delegated to whom: "the delegation urn:uuid:... from did:A to did:B
    (Information Asset Owner, acting for did:C)"."""
    from schemas.words import role_name
    subject = document.get("credentialSubject") if isinstance(document.get("credentialSubject"), dict) else {}
    issuer = document.get("issuer")
    issuer = issuer.get("id") if isinstance(issuer, dict) else issuer
    role, behalf = subject.get("role"), subject.get("onBehalfOf")
    parts = (role_name(role) if isinstance(role, str) else None,
             f"acting for {behalf}" if isinstance(behalf, str) and behalf != issuer else None)
    about = ", ".join(x for x in parts if x)
    return (f"the delegation {document.get('id') or '(no id)'} from {issuer or 'an unnamed issuer'} to "
            f"{subject.get('id') or 'an unnamed delegate'}" + (f" ({about})" if about else ""))


def delegation_not_in_force(record, why: str, *, relied_on_by: str, fix: str, under: str | None = None,
                            read: str = "as this node last read its status list", **extra) -> CeadError:
    """``delegation.not_in_force`` (the guard rail's code for the same fact, ``detail.status`` naming the state) for
    a held delegation that cannot be used now (``why``: what :func:`_unusable` says of ``record``): which delegation
    in words (from whom to whom), since when it has ended (the end rule of ``WalletCredential.ends``: validUntil, or
    the notAfter its scope states) or that it is suspended or revoked, as the wallet last read its status; then
    ``fix``. ``relied_on_by``: what rests on it, e.g. "The approval urn:uuid:... rests on"; ``read``: where a
    suspension or revocation was read; ``extra``: more detail."""
    from schemas.words import moment_words
    document = record.document
    named = delegation_words(document)
    detail: dict[str, Any] = {"status": _STATE.get(why, why), "delegation": document.get("id") or record.credential_id,
                              "issuer": record.issuer, "delegate": record.subject}
    if under:
        detail["under"] = under
    detail.update(extra)
    if why == "expired":
        state = _ended(record, detail, "the period its scope covers")
    elif why == "not yet valid":
        starts = record.in_force()[0]
        detail["starts"] = _iso(starts)
        state = f"does not take effect until {moment_words(starts)}"
    else:
        state = f"is {why} ({read})"
    return CeadError("delegation.not_in_force", f"{relied_on_by} {named}, which {state}: a gateway "
                     f"refuses what rests on it. {fix}", **detail)


def _ended(record, detail: dict, period: str) -> str:
    """When ``record`` ended, in words ("ended on <date> (the end of <period>, its notAfter)" or "(the end of its
    validity)"), its ``ends`` and ``endsBy`` added to ``detail``."""
    from schemas.words import moment_words
    ends, by = record.ends()
    detail.update(ends=_iso(ends), endsBy=by)
    return (f"ended on {moment_words(ends)} ("
            + (f"the end of {period}, its notAfter" if by == "notAfter" else "the end of its validity") + ")")


def approval_words(document: dict) -> str:
    """An approval in words, as who approved sharing what with whom: "the upstream approval urn:uuid:..., by which
    did:A approved sharing DATASET from did:B with did:C" ("by which did:B approved sharing DATASET with did:C" when
    the discloser approved it itself)."""
    subject = document.get("credentialSubject") if isinstance(document.get("credentialSubject"), dict) else {}
    issuer = document.get("issuer")
    issuer = issuer.get("id") if isinstance(issuer, dict) else issuer

    def listed(value, none: str) -> str:
        items = [str(x) for x in (value if isinstance(value, list) else [value] if value else [])]
        return (", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else items[0]) if items else none

    discloser = subject.get("discloser")
    source = f" from {discloser}" if isinstance(discloser, str) and discloser != issuer else ""
    return (f"the upstream approval {document.get('id') or '(no id)'}, by which {issuer or 'an unnamed issuer'} "
            f"approved sharing {listed(subject.get('datasets'), 'its datasets')}{source} with "
            f"{listed(subject.get('recipients'), 'its recipients')}")


def upstream_not_in_force(record, why: str, *, approval: str, reference: dict, derived_by: str | None = None,
                          pinned_by: str | None = None) -> CeadError:
    """``provenance.upstream.expired|revoked|suspended|invalid`` (the gateway's codes for the same fact;
    ``detail.status`` names the state: ``expired``, ``revoked``, ``suspended``, ``not_yet_valid``) for a held
    upstream approval that cannot be used now (``why``: what :func:`_unusable` says of ``record``), pinned
    (``reference``) by the derived ``approval`` (its id; issued by ``derived_by``), directly or through the
    upstream approval ``pinned_by``: which approval in words (who approved sharing what with whom), since when it
    has ended (the end rule of ``WalletCredential.ends``: validUntil, or the notAfter of the period it approves),
    or that it is suspended or revoked as the wallet last read its status list; and what to do. A renewal is a new
    approval, which the derived approval does not pin (it pins the ended one by digest): the derived data are
    approved again under it."""
    from schemas.words import moment_words
    document = record.document
    subject = document.get("credentialSubject") if isinstance(document.get("credentialSubject"), dict) else {}
    owner = subject.get("discloser") if isinstance(subject.get("discloser"), str) else record.issuer
    who = derived_by or "the organisation that approved the derived data"
    again = (f"then ask {who} to approve the derived data again under the new one (this approval pins the old one "
             "exactly, so it cannot rest on another)" if not pinned_by else
             f"then the approvals resting on it are issued again in turn, the upstream approval {pinned_by} and then "
             f"this one (ask {who} to approve the derived data again): each pins the one before it exactly")
    detail: dict[str, Any] = {"status": _STATE.get(why, why), "upstream": document.get("id") or record.credential_id,
                              "issuer": record.issuer, "discloser": owner, "approval": approval,
                              "reference": reference}
    if pinned_by:
        detail["pinnedBy"] = pinned_by
    if why == "expired":
        state = _ended(record, detail, "the period it approves")
        fix = (f"Ask {owner}, who holds the upstream data, to renew it (an approval that has ended is replaced by a "
               f"new approval for a new period); {again}.")
    elif why == "not yet valid":
        starts = record.in_force()[0]
        detail["starts"] = _iso(starts)
        state = f"does not take effect until {moment_words(starts)}"
        fix = "Fetch the derived data once it takes effect."
    elif why == "revoked":
        state = "is revoked (as this wallet last read its status list)"
        fix = (f"A revoked approval is not used again: ask {owner}, who holds the upstream data, for a new approval; "
               f"{again}.")
    else:
        state = f"is {why} (as this wallet last read its status list)"
        fix = (f"Ask {owner}, who holds the upstream data, to reinstate it: the next fetch then uses it again, "
               "with nothing else to do.")
    code = {"expired": "provenance.upstream.expired", "revoked": "provenance.upstream.revoked",
            "suspended": "provenance.upstream.suspended"}.get(why, "provenance.upstream.invalid")
    through = f" (through the upstream approval {pinned_by})" if pinned_by else ""
    return CeadError(code, f"The approval {approval} is for data derived{through} under {approval_words(document)}, "
                     f"which {state}: a gateway refuses a derived transfer resting on it. {fix}", **detail)


class _Rechecks:
    """What one selection re-reads live: each credential last seen suspended at most once, through one verifier
    that reads each status list afresh at most once (the wallet verifier's cached lists are left alone)."""

    def __init__(self, wallet):
        self.wallet = wallet
        self.done: set[str] = set()
        self.verifier = None
        self.read: dict[tuple[type, str], Any] = {}   # (model, digest) -> what the held credential reads as

    def revive(self, records) -> bool:
        todo = [r for r in records if _unusable(r) == "suspended" and r.id not in self.done]
        if not todo:
            return False
        self.done.update(r.id for r in todo)
        self.verifier = self.verifier or self.wallet.fresh_status_verifier()
        return bool(self.wallet.recheck_suspended(todo, verifier=self.verifier))


_rechecks: contextvars.ContextVar[_Rechecks | None] = contextvars.ContextVar("cead_wallet_rechecks", default=None)


def _one_selection(fn):
    """``fn(wallet, ...)`` as one selection, or as part of the one already under way for that wallet (a
    presentation selects, then completes the selection): what it re-checks (:func:`_revived`) it re-checks once."""
    @functools.wraps(fn)
    def run(wallet, *args, **kwargs):
        current = _rechecks.get()
        if current is not None and current.wallet is wallet:
            return fn(wallet, *args, **kwargs)
        token = _rechecks.set(_Rechecks(wallet))
        try:
            return fn(wallet, *args, **kwargs)
        finally:
            _rechecks.reset(token)
    return run


def _read(model, record):
    """``model.from_credential(record.document)`` (raising its CeadError as that does), read once per selection: a
    held credential never changes, and one selection reads the holder's certifications, say, several times."""
    current = _rechecks.get()
    memo = current.read if current is not None else {}
    key = (model, record.digest)
    if key not in memo:
        try:
            memo[key] = model.from_credential(record.document)
        except CeadError as exc:
            memo[key] = exc
    if isinstance(memo[key], CeadError):
        raise memo[key]
    return memo[key]


def _revived(wallet, records) -> bool:
    """Re-read, live, the status of those of ``records`` the wallet last saw suspended and that are otherwise
    usable (a suspension may have been lifted since: ``cead reinstate``); True when any is active again. Within a
    selection, a credential is re-read once and a status list fetched once."""
    current = _rechecks.get()
    return (current if current is not None and current.wallet is wallet else _Rechecks(wallet)).revive(records)


def _held(wallet, ref: dict):
    """The usable held credential a ``{"id", "digest"}`` reference pins (by digest), or None. One last seen
    suspended is re-checked first, and used if it has been reinstated."""
    digest = ref.get("digest") if isinstance(ref, dict) else None
    if not digest:
        return None
    held = next(iter(wallet.search(usable=True, digests=[digest])), None)
    if held is None and _revived(wallet, wallet.search(digests=[digest])):
        held = next(iter(wallet.search(usable=True, digests=[digest])), None)
    return held


def _covers(wallet, subject: DataSharingApproval, dataset_iri: str, purpose_iri: str | None) -> bool:
    """An approval that names this wallet's holder as a recipient and covers the dataset (and purpose, if given;
    a narrower dataset or purpose is covered by a broader one, per the wallet's vocabulary)."""
    vocab = wallet.vocabulary or registry()
    return (wallet.holder in subject.recipients and vocab.within_any(dataset_iri, subject.datasets)
            and (purpose_iri is None or vocab.within_any(purpose_iri, subject.purposes)))


def _approvals_for(wallet, dataset: str, purpose: str | None, records=None):
    """``(record, subject)`` for every usable approval covering the dataset (and purpose), newest first. Only
    approvals indexed under the dataset or one it lies within are read (an approval covers the dataset only
    through a dataset it names, and every dataset it names is indexed): not every approval held."""
    dataset_iri, purpose_iri = expand(dataset), expand(purpose) if purpose else None
    if records is None:
        records = wallet.search(type=APPROVAL, usable=True,
                                datasets=sorted((wallet.vocabulary or registry()).ancestors(dataset_iri)))
    for record in records:
        if APPROVAL not in record.type_list:
            continue
        try:
            subject = _read(DataSharingApproval, record)
        except CeadError:
            continue  # not a Cead approval (e.g. another vocabulary): never chosen
        if _covers(wallet, subject, dataset_iri, purpose_iri):
            yield record, subject


@_one_selection
def select_for_transfer(wallet, dataset: str, purpose: str | None = None) -> list:
    """The credentials a transfer of ``dataset`` for ``purpose`` needs, as stored records.

    The newest valid DataSharingApprovalCredential naming this wallet as a recipient and covering the dataset (and
    purpose, if given; a narrower dataset or purpose is covered by a broader one, per the wallet's vocabulary); the
    delegations in its ``delegationChain`` (pinned by digest, with their ``parentDelegation``s); for a derived
    dataset, the ``upstream`` approvals (pinned by digest, each with its own chain and upstream); and, for each
    scheme in ``recipientRequirements``, a valid OrganisationCertificationCredential of this wallet's holder.
    Raises ``wallet.no_approval`` (saying which approvals held for the dataset are revoked, suspended or expired:
    :func:`no_approval`) / ``wallet.delegation_missing`` (``delegation.not_in_force`` for a pinned delegation held
    but ended, suspended or revoked: :func:`delegation_not_in_force`) / ``wallet.upstream_missing``
    (``provenance.upstream.expired|revoked|suspended|invalid`` for a pinned upstream approval held but ended,
    suspended, revoked or not yet in force: :func:`upstream_not_in_force`) / ``wallet.certification_missing``. What is missing but held, last seen suspended, is re-checked live first and
    used if it has been reinstated.
    """
    approval = next(_approvals_for(wallet, dataset, purpose), None)
    if approval is None and _revive_approvals(wallet, dataset, purpose):
        approval = next(_approvals_for(wallet, dataset, purpose), None)
    if approval is None:
        raise no_approval(wallet, dataset, purpose)
    record, subject = approval
    return _with_requirements(wallet, record, subject, [record])


def _unusable_approvals(wallet, dataset: str, purpose: str | None) -> list[tuple[Any, str]]:
    """``(record, why)`` for every held approval that would cover the dataset (and purpose) but cannot be used
    (revoked, expired, not yet valid or suspended, as last seen), newest first."""
    now = datetime.now(timezone.utc)
    held = [r for r in wallet.search(type=APPROVAL) if _unusable(r, now) is not None]
    return [(record, _unusable(record, now)) for record, _ in _approvals_for(wallet, dataset, purpose, held)]


def _revive_approvals(wallet, dataset: str, purpose: str | None) -> bool:
    """No usable approval covers the transfer: re-check, live, those last seen suspended (they may have been
    reinstated since the wallet last read their status list); True when one is active again."""
    return _revived(wallet, [record for record, why in _unusable_approvals(wallet, dataset, purpose)
                             if why == "suspended"])


def no_approval(wallet, dataset: str, purpose: str | None = None) -> CeadError:
    """``wallet.no_approval`` for a transfer of ``dataset`` (for ``purpose``), saying why: the approvals held that
    would cover it but are revoked, suspended, expired or not yet valid (``detail.held``; an expired one with when
    it ended, ``ends``, and what ended it, ``endsBy``: ``validUntil``, or ``notAfter``, the end of the period it
    approves), or the purposes the approvals held for the dataset do cover. An approval that has ended is to be
    renewed (a new approval for a new period), and the message says so."""
    from schemas.words import moment_words
    what = f"dataset {dataset}" + (f" for purpose {purpose}" if purpose else "")
    message = f"The wallet holds no valid {APPROVAL} for {wallet.holder} covering {what}."
    held, said = [], []
    for r, why in _unusable_approvals(wallet, dataset, purpose):
        entry = {"id": r.id, "credentialId": r.credential_id, "issuer": r.issuer, "state": why}
        words = f"approval {r.id} from {r.issuer} is {why}"
        if why == "expired":
            ends, by = r.ends()
            entry.update(ends=_iso(ends), endsBy=by, **({"validUntil": _iso(r.valid_until)} if r.valid_until else {}))
            words += (f" (since {_iso(ends)}, {moment_words(ends)}: "
                      + ("the period it approves ended then (its notAfter), although its validity runs on; a "
                         "gateway refuses it" if by == "notAfter" else "the end of its validity") + ")")
        held.append(entry)
        said.append(words)
    if held:
        listed = "; ".join(said[:5])
        more = f"; and {len(held) - 5} more" if len(held) > 5 else ""
        message += f" It holds {len(held)} that would cover it but cannot be used: {listed}{more}."
        if all(h["state"] == "expired" for h in held):
            which = "it" if len(held) == 1 else "one"
            message += (f" Ask the approving organisation to renew {which}: an approval that has ended is not used "
                        "again, it is replaced by a new approval for a new period.")
        else:
            message += " Ask the approving organisation for a new (or reinstated) approval."
    other: list[str] = []
    if purpose:
        for _, subject in _approvals_for(wallet, dataset, None):
            other += [compact(p) for p in subject.purposes if compact(p) not in other]
        if other:
            message += f" The approvals it holds for the dataset cover other purposes: {', '.join(other[:10])}."
    return CeadError("wallet.no_approval", message, dataset=dataset, purpose=purpose,
                     **({"held": held} if held else {}), **({"otherPurposes": other} if other else {}))


def _iso(value: datetime | None) -> str | None:
    return None if value is None else _aware(value).isoformat().replace("+00:00", "Z")


@_one_selection
def transfer_candidates(wallet, dataset: str, purpose: str | None = None) -> list:
    """What a presentation definition may choose from for a transfer of ``dataset`` (for ``purpose``), as stored
    records, newest first: the approvals :func:`select_for_transfer` would take (naming this holder as a recipient,
    covering the dataset and purpose), what they pin by digest (delegation chains, upstream approvals and theirs)
    and the holder's own certifications. Nothing held for another dataset, or about someone else, is among them, so a
    definition asking for it is unsatisfied, whoever wrote it. What the wallet last saw suspended is re-checked as
    :func:`select_for_transfer` does: the approvals when none is usable, what they pin when it is not held usable,
    and the holder's certifications under a scheme it holds no usable certification for."""
    approvals = list(_approvals_for(wallet, dataset, purpose))
    if not approvals and _revive_approvals(wallet, dataset, purpose):
        approvals = list(_approvals_for(wallet, dataset, purpose))
    allowed: set[str] = set()
    for record, _ in approvals:
        chosen = [record]
        _add_pinned(wallet, record.document, chosen, strict=False)
        allowed.update(r.digest for r in chosen)
    own = _own_certifications(wallet)
    certified = {cert.scheme for _, cert in own if cert.status == "Certified"}
    if _revived(wallet, [r for r, cert in _own_certifications(wallet, usable=False, suspended=True)
                         if cert.status == "Certified" and cert.scheme not in certified]):
        own = _own_certifications(wallet)     # one is active again (nothing else changes by a re-check)
    allowed.update(r.digest for r, _ in own)
    return wallet.search(usable=True, digests=allowed)   # after any re-check: as now held


def _own_certifications(wallet, usable: bool = True,
                        suspended: bool = False) -> list[tuple[Any, OrganisationCertification]]:
    """``(record, certification)`` for the held certifications about this wallet's holder (usable ones only, by
    default; ``suspended``: only those last seen suspended, the ones a re-check may revive), newest first."""
    out = []
    for r in wallet.search(type=CERTIFICATION, usable=usable, subject=wallet.holder,   # its subject: cert.id
                           status=STATUS_SUSPENDED if suspended else None):
        try:
            cert = _read(OrganisationCertification, r)
        except CeadError:
            continue
        if cert.id == wallet.holder:
            out.append((r, cert))
    return out


def _with_requirements(wallet, record, subject: DataSharingApproval, chosen: list) -> list:
    """``chosen`` (records, the approval ``record`` among them; ``subject`` read from it) with what the approval
    rests on appended: what it pins (``_add_pinned``) and a current certification of this holder for each scheme in
    its recipientRequirements."""
    vocab = wallet.vocabulary or registry()
    _add_pinned(wallet, record.document, chosen)
    certifications = _own_certifications(wallet)
    for scheme in subject.required_certifications:
        held = next((r for r, cert in certifications
                     if cert.status == "Certified" and vocab.within(cert.scheme, scheme)), None)
        if held is None and _revived(wallet, [r for r, cert in _own_certifications(wallet, usable=False, suspended=True)
                                              if cert.status == "Certified" and vocab.within(cert.scheme, scheme)]):
            certifications = _own_certifications(wallet)
            held = next((r for r, cert in certifications
                         if cert.status == "Certified" and vocab.within(cert.scheme, scheme)), None)
        if held is None:
            raise CeadError("wallet.certification_missing", f"The approval requires a certification under {scheme}, "
                            "which the wallet does not hold (or which is no longer valid).", scheme=scheme)
        if held.digest not in {r.digest for r in chosen}:
            chosen.append(held)
    return chosen


def _add_pinned(wallet, document: dict, chosen: list, *, strict: bool = True) -> None:
    """Append to ``chosen`` what the approval (its JSON ``document``) pins by digest: its delegation chain
    (following ``parentDelegation``) and its upstream approvals, each with what it pins in turn
    (``wallet.store.walk_pinned``), each as the usable credential held (:func:`_held`). ``strict=False``: what is
    not held, or cannot be read as what it is pinned as, is skipped instead of raising. A delegation or upstream
    approval held but not usable is named as such (``delegation.not_in_force``, ``provenance.upstream.<state>``),
    not as missing."""
    from .store import _pins
    approval = document.get("id") or "(no id)"
    pinned_by: dict[str, str] = {}        # an upstream approval's digest -> the upstream approval pinning it

    def find(ref: dict):
        held = _held(wallet, ref)
        return (held, held.document) if held is not None else None

    for kind, ref, held in walk_pinned(document, find):
        if held is not None:
            if kind == "upstream":
                pinned_by.update((r.get("digest"), held.document.get("id") or held.credential_id)
                                 for k, r in _pins(held.document) if k == "upstream")
            model = DataSharingApproval if kind == "upstream" else DelegatedAuthority
            try:
                model.from_credential(held.document)
            except CeadError as exc:
                if not strict:
                    continue
                raise CeadError(f"wallet.{kind}_missing", f"The reference {ref.get('id')} pins a credential that is "
                                f"not a readable {model.credential_type}: {exc.message}", reference=ref) from None
            if held.digest not in {r.digest for r in chosen}:
                chosen.append(held)
        elif strict and kind == "upstream":
            unusable = wallet._by_digest(ref.get("digest")) if isinstance(ref.get("digest"), str) else None
            why = _unusable(unusable) if unusable is not None else None
            if why is not None:     # held, but ended, suspended or revoked: say so, and what to do
                issuer = document.get("issuer")
                raise upstream_not_in_force(unusable, why, approval=approval, reference=ref,
                                            derived_by=issuer.get("id") if isinstance(issuer, dict) else issuer,
                                            pinned_by=pinned_by.get(ref.get("digest")))
            raise CeadError("wallet.upstream_missing", f"The approval {approval} is for a dataset derived under the "
                            f"upstream approval {ref.get('id')}, which the wallet does not hold.", reference=ref)
        elif strict:
            unusable = wallet._by_digest(ref.get("digest")) if isinstance(ref.get("digest"), str) else None
            why = _unusable(unusable) if unusable is not None else None
            if why is not None:     # held, but ended, suspended or revoked: say so, and what to do
                fix = ("Ask the organisation that approved it to renew the approval: its Data Protection Officer "
                       "gives its approver a new delegation (a renewal), and a new approval is issued under it."
                       if why in ("expired", "revoked") else
                       "Ask the organisation that approved it to have the delegation reinstated, or to approve again "
                       "under another." if why == "suspended" else "Present it once the delegation takes effect.")
                raise delegation_not_in_force(unusable, why, relied_on_by=f"The approval {approval} rests on",
                                              fix=fix, reference=ref)
            raise CeadError("wallet.delegation_missing", f"The approval relies on the delegation {ref.get('id')}, "
                            "which the wallet does not hold.", reference=ref)


@_one_selection
def select_credentials(wallet, *, dataset: str | None = None, purpose: str | None = None,
                       definition: dict | None = None) -> list[dict | str]:
    """Credentials to present: from a Presentation Exchange definition if given, else by dataset and purpose.
    With both a definition and a dataset, the definition chooses only among :func:`transfer_candidates` for that
    dataset (and purpose): what it asks for beyond them is unsatisfied (``pex.unsatisfied``; when no approval for
    it is usable, the message and ``detail.held`` say which are held and why not, as :func:`no_approval` does)."""
    if definition is not None:
        records = wallet.search(usable=True) if dataset is None else transfer_candidates(wallet, dataset, purpose)
        try:
            return pex.select(definition, [(r.credential, r.document) for r in records],
                              holder=wallet.holder).credentials
        except CeadError as exc:
            if exc.code != "pex.unsatisfied" or dataset is None or any(APPROVAL in r.type_list for r in records):
                raise
            why = no_approval(wallet, dataset, purpose)      # no usable approval for it: say why, as by dataset
            if "held" not in why.detail:
                raise
            raise CeadError("pex.unsatisfied", f"{exc.message} {why.message}",
                            **{**exc.detail, "held": why.detail["held"]}) from None
    if dataset is None:
        raise CeadError("wallet.selection_missing", "Give a dataset (and purpose) or a presentation definition.")
    return [r.credential for r in select_for_transfer(wallet, dataset, purpose)]


@_one_selection
def complete_selection(wallet, credentials: list, *, dataset: str | None = None,
                       purpose: str | None = None) -> tuple[list, DataSharingApproval | None]:
    """A Presentation Exchange selection completed with what its first Cead approval rests on and a definition
    cannot ask for (credentials pinned by digest, the approval's own recipientRequirements): the credentials, and
    the approval (None, and the credentials unchanged, when none was selected). With ``dataset`` (and ``purpose``),
    only an approval naming this holder and covering them counts."""
    digests = set()
    for credential in credentials:
        try:
            digests.add(credential_digest(credential))
        except CeadError:
            continue     # not a credential at all: none held is equal to it
    held = wallet.search(usable=True, digests=digests)   # a credential held equal to c has c's digest
    chosen = [r for c in credentials for r in held if r.credential == c]
    dataset_iri, purpose_iri = (expand(dataset), expand(purpose) if purpose else None) if dataset else (None, None)
    for record in chosen:
        if APPROVAL in record.type_list:
            try:
                subject = DataSharingApproval.from_credential(record.document)
            except CeadError:
                continue
            if dataset_iri is not None and not _covers(wallet, subject, dataset_iri, purpose_iri):
                continue
            return [r.credential for r in _with_requirements(wallet, record, subject, chosen)], subject
    return list(credentials), None


def manifest_overlay(manifest_fields: dict | None = None, row_count: int | None = None) -> dict | None:
    """The fields a caller lays over the manifest the wallet makes: ``manifest_fields`` (a JSON object, e.g.
    ``{"rowCount": 5000, "protocolRun": [...]}``) with ``row_count`` as its ``rowCount``; None when neither is
    given. Raises ``manifest.invalid`` for an object that is not one, or a row count that is not a non-negative
    integer (the gateway would refuse it)."""
    if manifest_fields is None and row_count is None:
        return None
    if manifest_fields is not None and not isinstance(manifest_fields, dict):
        raise CeadError("manifest.invalid", "The manifest fields must be a JSON object (e.g. {\"rowCount\": 5000}).")
    fields = dict(manifest_fields or {})
    if row_count is not None:
        if "rowCount" in fields and fields["rowCount"] != row_count:
            raise CeadError("manifest.invalid", f"Two row counts: rowCount {fields['rowCount']!r} in the manifest "
                            f"fields and {row_count!r}; give one.", rowCount=fields["rowCount"])
        fields["rowCount"] = row_count
    rows = fields.get("rowCount")
    if "rowCount" in fields and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 0):
        raise CeadError("manifest.invalid", f"rowCount must be a non-negative integer (the rows sent, or for a pull "
                        f"at most how many are asked for), not {rows!r}.", rowCount=rows)
    return fields


@_one_selection
def pinned_by_attestation(wallet, manifest: dict | None, chosen: list) -> list:
    """The approvals a manifest's run attestation (``runAttestation``) pins for its input parties, as the wallet
    holds them, when not already ``chosen``: a computation's output is released only with every contributing
    party's own approval presented (``attestation.contributor_not_approved``), and those approvals are for the
    other parties' datasets, so selecting by this transfer's dataset never finds them (with a presentation
    definition, exactly what it selects is presented and nothing is added). The attestation is read,
    not verified (the gateway verifies it); an approval the wallet does not hold is left for the gateway to name."""
    from schemas.models import credential_digest
    from verifier.jose import unverified_claims
    attestation = manifest.get("runAttestation") if isinstance(manifest, dict) else None
    if attestation is None:
        return []
    try:
        document = unverified_claims(attestation) if isinstance(attestation, str) else attestation
        subject = document.get("credentialSubject") if isinstance(document, dict) else None
        inputs = subject.get("inputs") if isinstance(subject, dict) else None
    except (CeadError, ValueError, AttributeError):
        return []
    have = set()
    for credential in chosen:
        try:
            have.add(credential_digest(credential))
        except CeadError:
            continue
    out = []
    for item in inputs if isinstance(inputs, list) else []:
        pinned = item.get("approval") if isinstance(item, dict) else None
        digest = pinned.get("digest") if isinstance(pinned, dict) else None
        if not isinstance(digest, str) or digest in have:
            continue
        record = wallet._by_digest(digest)
        if record is not None and record.status_now not in (STATUS_REVOKED, STATUS_SUSPENDED):
            out.append(record.credential)
            have.add(digest)
    return out


def present_for_request(wallet, method: str, url: str, body: bytes | str | None, manifest: dict | None = None, *,
                        dataset: str | None = None, purpose: str | None = None, definition: dict | None = None,
                        format: str = "jwt", lifetime: int = 60,
                        manifest_fields: dict | None = None) -> dict[str, str]:
    """Headers carrying a fresh presentation bound to this request (wire contract): ``Cead-Presentation`` and,
    when there is a manifest, ``Cead-Transfer-Manifest``.

    Without ``manifest``, one is made from ``dataset`` and ``purpose``: ``{"dataset", "purpose", "recipient",
    "columns"}`` with the columns the chosen approval allows (``dataItems``). Pass a manifest to ask for fewer
    columns or to state ``rowCount`` and protocol details. With a ``definition`` (e.g. one a gateway published)
    and a dataset but no manifest, the selection is completed by ``complete_selection`` and the manifest made the
    same way; with a manifest, exactly what the definition selects is presented. Either way, with a dataset the
    definition only chooses among :func:`transfer_candidates` for it (a definition published by a gateway cannot make
    the wallet show what it holds for another dataset).

    ``manifest_fields`` (see :func:`manifest_overlay`) are laid over the manifest, the one given or the one the
    wallet makes: ``{"rowCount": N}`` states a row count (which an approval with ``maxRowsPerTransfer`` requires)
    and keeps everything else the wallet would have sent.
    """
    if wallet.key is None or wallet.kid is None:
        raise CeadError("wallet.no_key", "The wallet has no signing key to present with (open it from the node).")
    if isinstance(body, str):
        body = body.encode("utf-8")
    if definition is not None or dataset is None:
        credentials = select_credentials(wallet, dataset=dataset, purpose=purpose, definition=definition)
        if manifest is None and dataset is not None:
            manifest = {"dataset": dataset, **({"purpose": purpose} if purpose else {})}
            credentials, approval = complete_selection(wallet, credentials, dataset=dataset, purpose=purpose)
            if approval is not None:
                manifest.update(recipient=wallet.holder, columns=list(approval.data_items))
    else:
        records = select_for_transfer(wallet, dataset, purpose)
        credentials = [r.credential for r in records]
        if manifest is None:
            approval = DataSharingApproval.from_credential(records[0].document)
            manifest = {"dataset": dataset, **({"purpose": purpose} if purpose else {}), "recipient": wallet.holder,
                        "columns": list(approval.data_items)}
    if manifest_fields:
        manifest = {**(manifest or {}), **manifest_fields}
    if definition is None:   # a definition chooses exactly what is presented
        credentials = credentials + pinned_by_attestation(wallet, manifest, credentials)
    vp = build_presentation(wallet.holder, wallet.key, wallet.kid, credentials, format=format,
                            audience=origin(url), nonce=request_binding(method, url, body, manifest),
                            lifetime=lifetime)
    # this wallet reads batched receipts too (verifier.receipts): the gateway may share a signature under load
    headers = {PRESENTATION_HEADER: encode_presentation(vp), RECEIPT_FORMS_HEADER: "plain, batch"}
    if manifest is not None:
        headers[MANIFEST_HEADER] = encode_manifest(manifest)
    return headers
