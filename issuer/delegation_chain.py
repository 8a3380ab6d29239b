"""Whether the signer's own delegation would verify, for the guard rail: never sign under a delegation whose proof
does not verify, or which does not lead back, through the delegations it rests on, to the organisation it acts for.

``check_chain(node, signed, given)`` takes the signer's own ``DelegatedAuthorityCredential`` as signed (a Data
Integrity document or a vc+jwt) and finds the chain it rests on by following ``parentDelegation`` by digest: among
the delegations ``given`` with it (``options.delegation`` as a list, root first, the wallet's delegation chain), then
in ``HOME/delegations/``. Each link is verified as a gateway verifies it (``verifier.compose.build_verifier`` with
the node's network settings: proof against the issuer's resolved DID, data model, schema, validity period) and is
shown to be in force (``delegation_status.check_in_force``: validity dates and status lists, failing closed); then
the chain is checked with the gateway's own link checks (``verifier.decision.delegation.check_links``): the first
link issued by the controller its signer's delegation names (``onBehalfOf``), every other by its parent's delegate,
each pinning its parent by id and digest and within its parent's scope.

Refusals: ``delegation.invalid`` (``detail.failed`` says what: ``signature``, ``issuer``, ``document``,
``chain``; ``detail.problems`` the verifier's findings) and ``delegation.not_in_force`` (a link suspended, revoked,
expired, not yet valid, or whose status cannot be established; ``detail.under`` names the signer's own delegation
when the link is one it rests on).
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from schemas.models import DelegatedAuthority, credential_digest
from verifier.credential import unwrap_enveloped
from verifier.jose import to_document, unverified_claims
from verifier.results import CeadError, Problem

from .delegation_status import check_in_force

CODE = "delegation.invalid"
# The most links a chain may have (no trust policy allows more: verifier.policy, max_delegation_depth <= 16); the
# walk up the chain stops there, so a loop of parents cannot keep it going.
MAX_LINKS = 16
# What the verifier found, in the guard rail's words (by the code's family); anything else is the document's.
_FAILED = (("proof.", "signature"), ("jose.", "signature"), ("key.", "signature"),
           ("credential.issuer_mismatch", "signature"), ("did.", "issuer"), ("delegation.", "chain"))
_WORDS = {"signature": "its proof does not verify (a bad signature, or a key that is not its issuer's)",
          "issuer": "its issuer's DID could not be resolved to a key (an unknown issuer)",
          "document": "it is not a credential verifiers accept",
          "chain": "it does not lead back to the organisation it acts for (a broken chain)"}
# A DID document that could not be fetched (the issuer's node down, or not reachable with the node's network
# settings): nothing is known against the delegation, but it cannot be verified either, so nothing is signed
# (``delegation.not_in_force``, status ``unknown``, as for a status list that cannot be read)
_UNREACHABLE = ("did.unreachable",)
# The validity period, which check_in_force reports in its own words (delegation.not_in_force)
_TIME_CODES = ("credential.expired", "credential.not_yet_valid")
# The time window of a link's scope (verifier.decision.delegation.in_force): not in force, rather than invalid
_WINDOW = {"delegation.expired": "expired", "delegation.not_yet_valid": "not_yet_valid"}


def document_of(signed: dict | str) -> dict:
    """The credential a delegation as signed states (a vc+jwt's claims, unverified: read only to name it and to
    find its parent; its signature is checked by the verifier)."""
    if isinstance(signed, str):
        try:
            return to_document(unverified_claims(signed), "vc")
        except CeadError as exc:
            raise CeadError(CODE, f"The delegation given is not a readable vc+jwt: {exc.message}",
                            failed=["document"]) from None
    return signed


def _failed(code: str) -> str:
    return next((word for prefix, word in _FAILED if code.startswith(prefix)), "document")


def _home_delegations(node) -> dict[str, dict | str]:
    """The delegations kept in HOME/delegations/, by digest (as signed: a vc+jwt kept as an
    EnvelopedVerifiableCredential is its JWT)."""
    out: dict[str, dict | str] = {}
    for path in sorted((node.home / "delegations").glob("*.json")):
        try:
            doc = unwrap_enveloped(json.loads(path.read_text()))
            if isinstance(doc, (dict, str)):
                out.setdefault(credential_digest(doc), doc)
        except (ValueError, OSError, CeadError):
            continue
    return out


def chain_of(node, signed: dict | str, given: list[dict | str]) -> tuple[list[dict | str], list[Problem]]:
    """The chain ``signed`` rests on, root first and ending with it: each parent found by the digest its child
    pins, among ``given`` and then in HOME/delegations/. The problems say where the walk stopped short (a parent
    found nowhere, a loop, too many links)."""
    pool: dict[str, dict | str] = {}
    for item in given:
        try:
            pool.setdefault(credential_digest(item), item)
        except CeadError:
            continue
    home: dict[str, dict | str] | None = None
    chain = [signed]
    try:
        seen = {credential_digest(signed)}
    except CeadError as exc:
        raise CeadError(CODE, f"The delegation given cannot be read: {exc.message}", failed=["document"]) from None
    while True:
        doc = document_of(chain[0])
        subject = doc.get("credentialSubject") if isinstance(doc.get("credentialSubject"), dict) else {}
        ref = subject.get("parentDelegation")
        if ref is None:
            return chain, []
        if not isinstance(ref, dict) or not isinstance(ref.get("digest"), str):
            return chain, [Problem("delegation.parent_mismatch", f"The delegation {doc.get('id')} names its parent "
                                   "without an id and digest.", {"delegation": doc.get("id")})]
        digest = ref["digest"]
        found = pool.get(digest)
        if found is None:
            home = _home_delegations(node) if home is None else home
            found = home.get(digest)
        if found is None:
            return chain, [Problem("delegation.missing", f"The delegation {doc.get('id')} rests on {ref.get('id')} "
                                   f"(digest {digest}), which was neither given with it (options.delegation: the "
                                   "chain, root first) nor found in HOME/delegations/.",
                                   {"delegation": doc.get("id"), "reference": ref})]
        if digest in seen or len(chain) >= MAX_LINKS:
            return chain, [Problem("delegation.too_deep", f"The delegations above {doc.get('id')} do not end at a "
                                   f"first delegation within {MAX_LINKS} links (or lead round in a loop).",
                                   {"delegation": doc.get("id")})]
        seen.add(digest)
        chain.insert(0, found)


def _verifier(node):
    """The verifier a gateway would use, built from the node's network settings (DIDs resolved and status lists
    read through ``node.fetcher()``); statuses are read by ``check_in_force`` (``node.status_checker`` when one was
    passed in)."""
    from verifier.compose import build_verifier
    return build_verifier(fetcher=node.fetcher(), status=False, caching=False)


def _refuse(own_id: Any, found: list[tuple[str, Problem]]) -> CeadError:
    failed = list(dict.fromkeys(word for word, _ in found))
    why = "; ".join(f"{p.code}: {p.message}" for _, p in found[:6])
    return CeadError(CODE, f"Your delegation {own_id or '(no id)'} would not verify, so nothing was signed under it: "
                     f"{' and '.join(_WORDS[w] for w in failed)} ({why}). Use the delegation exactly as its issuer "
                     "signed it, with the delegations it rests on (options.delegation as a list, root first, or kept "
                     "in HOME/delegations/).", failed=failed, delegation=own_id,
                     problems=[p.to_dict() for _, p in found])


def _unreachable(own_id: Any, problems: list[Problem]) -> CeadError:
    why = "; ".join(f"{p.code}: {p.message}" for p in problems[:6])
    return CeadError("delegation.not_in_force", f"Your delegation {own_id or '(no id)'} could not be shown to be valid "
                     f"and in force, so nothing was signed: a DID document needed to verify it could not be fetched "
                     f"({why}). Check that this node can reach its issuer (network.ca_bundle and network.allow_private "
                     "in config.yaml for a local test) and try again.", status="unknown", delegation=own_id,
                     problems=[p.to_dict() for p in problems])


def check_chain(node, signed: dict | str, given: list[dict | str] = (), now: datetime | None = None) -> list:
    """Raise unless ``signed`` (the signer's own delegation) verifies and chains to its controller, every link in
    force; returns the chain (``verifier.decision.context.Cred``, root first)."""
    from verifier.decision.context import DecisionContext
    from verifier.decision.delegation import check_links
    from verifier.decision.presentation import credential
    now = now or datetime.now(timezone.utc)
    raws, broken = chain_of(node, signed, list(given))
    verifier = _verifier(node)
    creds = [credential(i, raw, verifier.verify_credential(raw, now)) for i, raw in enumerate(raws)]
    own = creds[-1]
    own_id = own.id or document_of(signed).get("id")
    found: list[tuple[str, Problem]] = []
    for cred in reversed(creds):   # the signer's own first
        for problem in cred.result.problems:
            if problem.code not in _TIME_CODES:
                found.append((_failed(problem.code), Problem(problem.code, f"the delegation {cred.id}: "
                                                             f"{problem.message}", {**problem.detail,
                                                                                    "delegation": cred.id})))
        if cred.model is None:
            problem = cred.model_problem or Problem("credential.type_unknown", f"{cred.id} is not a delegation.")
            found.append(("document", Problem(problem.code, f"the delegation {cred.id}: {problem.message}",
                                              {"delegation": cred.id})))
        elif cred is not own and not cred.is_(DelegatedAuthority.credential_type):
            found.append(("chain", Problem("delegation.parent_mismatch", f"{cred.id}, pinned as a parent "
                                           "delegation, is not a DelegatedAuthorityCredential.",
                                           {"delegation": cred.id})))
    found += [("chain", p) for p in broken]
    if any(p.code not in _UNREACHABLE for _, p in found):
        raise _refuse(own_id, found)
    if found:   # nothing wrong with it but that a DID could not be fetched: it could not be established (fail closed)
        raise _unreachable(own_id, [p for _, p in found])
    for cred in reversed(creds):   # suspended, revoked, expired, not yet valid, status unknown: nothing is signed
        check_in_force(node, cred.document, now, rests_on=None if cred is own else own_id)
    ctx = DecisionContext(request=None, now=now, policy=None, vocabulary=getattr(node, "vocabulary", None),
                          verifier=verifier, replay=None, creds=creds)
    problems = check_links(ctx, creds, own.model.controller)
    window = [p for p in problems if p.code in _WINDOW]
    problems = [p for p in problems if p.code not in _WINDOW]
    if problems:
        raise _refuse(own_id, [(_failed(p.code), p) for p in problems])
    if window:
        problem = window[0]
        link = problem.detail.get("delegation")
        raise CeadError("delegation.not_in_force", f"{'Your delegation' if link == own_id else 'The delegation'} "
                        f"{link} is {_WINDOW[problem.code].replace('_', ' ')}, so nothing was signed under it "
                        f"({problem.code}: {problem.message})", status=_WINDOW[problem.code], delegation=link,
                        problems=[p.to_dict() for p in window], **({} if link == own_id else {"under": own_id}))
    return creds

