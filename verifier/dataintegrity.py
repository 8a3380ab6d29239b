"""Data Integrity proofs (W3C VC Data Integrity 1.0, vc-di-eddsa 1.0): checking them.

The suites are objects in ``verifier.suites`` (a registry: ``eddsa-rdfc-2022``, ``eddsa-jcs-2022``, and the older
``Ed25519Signature2020``, read only, for peers such as didkit). ``hash_data`` is the one function that both the
signer (``issuer.signing.add_proof``) and ``verify_proofs`` use to compute the bytes that are signed.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from .results import CeadError, Problem
from .suites import (DATA_INTEGRITY_PROOF, DEFAULT_SUITES, ED25519_SIGNATURE_2020, EDDSA_JCS_2022,  # noqa: F401
                     EDDSA_RDFC_2022, SuiteRegistry, parse_datetime)

CRYPTOSUITES = DEFAULT_SUITES.names(signing=True)      # what we sign with
VERIFIABLE = DEFAULT_SUITES.names()                    # what we check

DEFAULT_SKEW = timedelta(minutes=5)


def suite_of(proof: dict, suites: SuiteRegistry | None = None) -> str:
    """The suite identifier of a proof (a cryptosuite name, or ``Ed25519Signature2020``); raises if unsupported."""
    return (suites or DEFAULT_SUITES).for_proof(proof).name


def hash_data(unsecured_document: dict, proof_config: dict, cryptosuite: str,
              suites: SuiteRegistry | None = None) -> bytes:
    """hash(canonical proof configuration) || hash(canonical document), per the suite (vc-di-eddsa for Cead's).

    ``unsecured_document`` is the document without the proof being created or checked; ``proof_config`` is that
    proof without ``proofValue``. The signer (``issuer.signing.add_proof``) and ``verify_proofs`` both call this.
    """
    if not isinstance(unsecured_document, dict) or not isinstance(proof_config, dict):
        raise CeadError("proof.malformed", "The document and the proof must be JSON objects.")
    registry = suites or DEFAULT_SUITES
    suite = registry.for_proof(proof_config)
    if suite.name != cryptosuite:
        raise CeadError("proof.malformed", f"The proof is {suite.name}, not {cryptosuite}.")
    if "created" in proof_config:
        parse_datetime(proof_config["created"], "created")
    return suite.hash(unsecured_document, proof_config)


def _proofs(document: dict) -> list:
    proof = document.get("proof")
    if proof is None:
        raise CeadError("proof.missing", "The document has no proof.")
    proofs = proof if isinstance(proof, list) else [proof]
    if not proofs:
        raise CeadError("proof.missing", "The document has an empty proof set.")
    return proofs


def _unsecured_for(document: dict, proof: dict, proofs: list) -> dict:
    """The document as it was when ``proof`` was made: no proofs, except those named in ``previousProof``."""
    unsecured = {key: value for key, value in document.items() if key != "proof"}
    previous = proof.get("previousProof")
    if previous is not None:
        wanted = [previous] if isinstance(previous, str) else previous
        if not isinstance(wanted, list) or not all(isinstance(item, str) for item in wanted):
            raise CeadError("proof.malformed", "previousProof must be a proof id or a list of proof ids.")
        matching = [p for p in proofs if isinstance(p, dict) and p.get("id") in wanted]
        if len(matching) != len(set(wanted)):
            raise CeadError("proof.malformed", "previousProof names a proof that is not in the document.")
        unsecured["proof"] = matching
    # Ed25519Signature2020 (e.g. didkit) may carry a proof @context used only for the proof options (see hash_data).
    if "@context" in proof and proof.get("type") != ED25519_SIGNATURE_2020:
        # the document's @context must start with the proof's, which is then used
        proof_context = proof["@context"] if isinstance(proof["@context"], list) else [proof["@context"]]
        doc_context = document.get("@context")
        doc_context = doc_context if isinstance(doc_context, list) else [doc_context]
        if doc_context[:len(proof_context)] != proof_context:
            raise CeadError("proof.context_mismatch", "The proof's @context is not a prefix of the document's "
                            "@context.")
        unsecured["@context"] = proof["@context"]
    return unsecured


def _check_options(proof: dict, purpose: str, challenge: str | None, domain: str | None, now: datetime,
                   skew: timedelta) -> list[Problem]:
    problems: list[Problem] = []

    def add(code: str, message: str) -> None:
        problems.append(Problem(code, message))

    if not isinstance(proof.get("verificationMethod"), str) or not proof["verificationMethod"]:
        add("proof.malformed", "The proof's verificationMethod must be a URL string.")
    if not isinstance(proof.get("proofValue"), str):
        add("proof.malformed", "The proof has no proofValue string.")
    if "proofPurpose" not in proof:
        add("proof.purpose_mismatch", f"The proof has no proofPurpose; expected {purpose!r}.")
    elif proof["proofPurpose"] != purpose:
        add("proof.purpose_mismatch", f"The proof's purpose is {proof['proofPurpose']!r}, expected {purpose!r}.")
    for field in ("created", "expires"):
        if field in proof:
            try:
                moment = parse_datetime(proof[field], field)
            except CeadError as exc:
                problems.append(exc.problem)
                continue
            if field == "created" and moment > now + skew:
                add("proof.created_in_future", f"The proof was created in the future ({proof[field]}).")
            if field == "expires" and moment < now - skew:
                add("proof.expired", f"The proof expired at {proof[field]}.")
    if challenge is not None and proof.get("challenge") != challenge:
        add("proof.challenge_mismatch", "The proof's challenge does not match the expected challenge.")
    if domain is not None:
        domains = proof.get("domain")
        domains = domains if isinstance(domains, list) else [domains]
        if domain not in domains:
            add("proof.domain_mismatch", f"The proof's domain does not include {domain!r}.")
    return problems


def _verify_one(document: dict, proof: Any, proofs: list, resolver, purpose: str, challenge: str | None,
                domain: str | None, now: datetime, skew: timedelta,
                suites: SuiteRegistry, loader=None) -> tuple[list[Problem], str | None]:
    if not isinstance(proof, dict):
        return [Problem("proof.malformed", "A proof must be a JSON object.")], None
    vm_id = proof.get("verificationMethod") if isinstance(proof.get("verificationMethod"), str) else None
    try:
        suite = suites.for_proof(proof)
    except CeadError as exc:
        return [exc.problem], vm_id
    problems = _check_options(proof, purpose, challenge, domain, now, skew)
    if problems:
        return problems, vm_id
    try:
        signature = suite.decode_signature(proof["proofValue"])
        unsecured = _unsecured_for(document, proof, proofs)
        _vm, public_key = resolver.public_key_for(vm_id, purpose)
        if public_key.kind not in suite.key_kinds:
            raise CeadError("proof.key_type_mismatch", f"{suite.name} needs a {' or '.join(suite.key_kinds)} key; "
                            f"{vm_id} is {public_key.kind}.")
        data = suite.hash(unsecured, proof, loader=loader) if loader is not None else suite.hash(unsecured, proof)
    except CeadError as exc:
        code = "proof.malformed" if exc.code == "encoding.invalid" else exc.code
        return [Problem(code, exc.message, dict(exc.detail))], vm_id
    except Exception as exc:  # fail closed on anything unexpected (e.g. a resolver bug)
        return [Problem("proof.verification_error", f"The proof could not be checked: "
                        f"{type(exc).__name__}.")], vm_id
    if not suite.verify(public_key, signature, data):
        return [Problem("proof.signature_invalid", f"The {suite.name} signature does not match the document "
                        f"(verification method {vm_id}).")], vm_id
    from .signedcontext import context_problems   # one encoding: the @context signed is the document's own
    return context_problems(document, unsecured, proof, suite.name, loader), vm_id


def verify_proofs(document: dict, resolver, purpose: str = "assertionMethod", challenge: str | None = None,
                  domain: str | None = None, now: datetime | None = None,
                  skew: timedelta = DEFAULT_SKEW, suites: SuiteRegistry | None = None,
                  loader=None) -> tuple[list[Problem], str | None]:
    """Check every proof on ``document`` (a proof set or chain must verify in full).

    Returns ``(problems, verification_method_id)``; no problems means verified. The id is that of the first proof.
    ``resolver.public_key_for(vm_id, purpose)`` supplies keys and checks the verification relationship;
    ``suites`` (default ``verifier.suites.DEFAULT_SUITES``) the cryptosuites; ``loader`` the JSON-LD document loader
    for suites that canonicalise with contexts (default: the pinned one; a ``Verifier`` passes its context's).
    """
    if not isinstance(document, dict):
        return [Problem("proof.malformed", "The secured document must be a JSON object.")], None
    now = now or datetime.now(timezone.utc)
    try:
        proofs = _proofs(document)
    except CeadError as exc:
        return [exc.problem], None
    problems: list[Problem] = []
    first_vm: str | None = None
    for index, proof in enumerate(proofs):
        found, vm_id = _verify_one(document, proof, proofs, resolver, purpose, challenge, domain, now, skew,
                                   suites or DEFAULT_SUITES, loader)
        if index == 0:
            first_vm = vm_id
        problems.extend(found)
    return problems, first_vm
