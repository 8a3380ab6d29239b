"""Data Integrity proofs (W3C VC Data Integrity 1.0, vc-di-eddsa 1.0): checking them.

Suites: ``DataIntegrityProof`` with cryptosuite ``eddsa-rdfc-2022`` or ``eddsa-jcs-2022``, and the older
``Ed25519Signature2020`` (read only, for peers such as didkit). ``hash_data`` is the one function that both the
signer (``issuer.signing.add_proof``) and ``verify_proofs`` use to compute the bytes that are signed.
"""
from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import rfc8785

from . import jsonld
from .keys import ED25519, multibase_decode
from .results import CeadError, Problem

DATA_INTEGRITY_PROOF = "DataIntegrityProof"
EDDSA_RDFC_2022 = "eddsa-rdfc-2022"
EDDSA_JCS_2022 = "eddsa-jcs-2022"
ED25519_SIGNATURE_2020 = "Ed25519Signature2020"
CRYPTOSUITES = (EDDSA_RDFC_2022, EDDSA_JCS_2022)       # what we sign with
VERIFIABLE = CRYPTOSUITES + (ED25519_SIGNATURE_2020,)   # what we check

DEFAULT_SKEW = timedelta(minutes=5)
_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)\Z")


def suite_of(proof: dict) -> str:
    """The suite identifier of a proof (a cryptosuite name, or ``Ed25519Signature2020``); raises if unsupported."""
    proof_type = proof.get("type")
    if proof_type == DATA_INTEGRITY_PROOF:
        cryptosuite = proof.get("cryptosuite")
        if cryptosuite not in CRYPTOSUITES:
            raise CeadError("proof.cryptosuite_unsupported", f"Unsupported cryptosuite {cryptosuite!r}; supported: "
                            f"{', '.join(CRYPTOSUITES)}.", cryptosuite=str(cryptosuite))
        return cryptosuite
    if proof_type == ED25519_SIGNATURE_2020:
        return ED25519_SIGNATURE_2020
    raise CeadError("proof.type_unsupported", f"Unsupported proof type {proof_type!r}; supported: "
                    f"{DATA_INTEGRITY_PROOF}, {ED25519_SIGNATURE_2020}.", type=str(proof_type))


def parse_datetime(value: Any, field: str) -> datetime:
    """An XML Schema dateTimeStamp (with time zone) as an aware datetime; ``proof.malformed`` otherwise."""
    if not isinstance(value, str) or not _DATETIME.match(value):
        raise CeadError("proof.malformed", f"The proof's {field} must be a date-time with a time zone, e.g. "
                        f"2024-01-01T00:00:00Z (got {str(value)[:40]!r}).", field=field)
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CeadError("proof.malformed", f"The proof's {field} is not a valid date-time: {value!r}.",
                        field=field) from None


def hash_data(unsecured_document: dict, proof_config: dict, cryptosuite: str) -> bytes:
    """SHA-256(canonical proof configuration) || SHA-256(canonical document), per vc-di-eddsa.

    ``unsecured_document`` is the document without the proof being created or checked; ``proof_config`` is that
    proof without ``proofValue``. The proof configuration takes the document's ``@context`` (eddsa-rdfc-2022 and
    Ed25519Signature2020 always; eddsa-jcs-2022 when the document has one).
    """
    if not isinstance(unsecured_document, dict) or not isinstance(proof_config, dict):
        raise CeadError("proof.malformed", "The document and the proof must be JSON objects.")
    config = {key: value for key, value in proof_config.items() if key != "proofValue"}
    expected = suite_of(config)
    if expected != cryptosuite:
        raise CeadError("proof.malformed", f"The proof is {expected}, not {cryptosuite}.")
    if "created" in config:
        parse_datetime(config["created"], "created")
    if cryptosuite == EDDSA_JCS_2022:
        if "@context" in unsecured_document:
            config["@context"] = unsecured_document["@context"]
        try:
            canonical_config, canonical_document = rfc8785.dumps(config), rfc8785.dumps(unsecured_document)
        except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
            raise CeadError("proof.malformed", f"The document cannot be canonicalized with JCS: {exc}") from None
    else:
        if "@context" not in unsecured_document:
            raise CeadError("jsonld.invalid", "The document has no @context, so it cannot be canonicalized "
                            "with RDFC-1.0.")
        if not (cryptosuite == ED25519_SIGNATURE_2020 and "@context" in config):
            config["@context"] = unsecured_document["@context"]
        canonical_config = jsonld.canonicalize(config).encode("utf-8")
        canonical_document = jsonld.canonicalize(unsecured_document).encode("utf-8")
    return hashlib.sha256(canonical_config).digest() + hashlib.sha256(canonical_document).digest()


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
    if proof.get("proofPurpose") != purpose:
        add("proof.purpose_mismatch", f"The proof's purpose is {proof.get('proofPurpose')!r}, expected "
            f"{purpose!r}.")
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
                domain: str | None, now: datetime, skew: timedelta) -> tuple[list[Problem], str | None]:
    if not isinstance(proof, dict):
        return [Problem("proof.malformed", "A proof must be a JSON object.")], None
    vm_id = proof.get("verificationMethod") if isinstance(proof.get("verificationMethod"), str) else None
    try:
        suite = suite_of(proof)
    except CeadError as exc:
        return [exc.problem], vm_id
    problems = _check_options(proof, purpose, challenge, domain, now, skew)
    if problems:
        return problems, vm_id
    try:
        signature = multibase_decode(proof["proofValue"])
        if not proof["proofValue"].startswith("z") or len(signature) != 64:
            raise CeadError("proof.malformed", "proofValue must be a base58btc multibase Ed25519 signature "
                            "(64 bytes).")
        unsecured = _unsecured_for(document, proof, proofs)
        _vm, public_key = resolver.public_key_for(vm_id, purpose)
        if public_key.kind != ED25519:
            raise CeadError("proof.key_type_mismatch", f"{suite} needs an Ed25519 key; {vm_id} is "
                            f"{public_key.kind}.")
        data = hash_data(unsecured, proof, suite)
    except CeadError as exc:
        code = "proof.malformed" if exc.code == "encoding.invalid" else exc.code
        return [Problem(code, exc.message, dict(exc.detail))], vm_id
    except Exception as exc:  # fail closed on anything unexpected (e.g. a resolver bug)
        return [Problem("proof.verification_error", f"The proof could not be checked: "
                        f"{type(exc).__name__}.")], vm_id
    if not public_key.verify(signature, data):
        return [Problem("proof.signature_invalid", f"The {suite} signature does not match the document "
                        f"(verification method {vm_id}).")], vm_id
    from .signedcontext import context_problems   # one encoding: the @context signed is the document's own
    return context_problems(document, unsecured, proof, suite), vm_id


def verify_proofs(document: dict, resolver, purpose: str = "assertionMethod", challenge: str | None = None,
                  domain: str | None = None, now: datetime | None = None,
                  skew: timedelta = DEFAULT_SKEW) -> tuple[list[Problem], str | None]:
    """Check every proof on ``document`` (a proof set or chain must verify in full).

    Returns ``(problems, verification_method_id)``; no problems means verified. The id is that of the first proof.
    ``resolver.public_key_for(vm_id, purpose)`` supplies keys and checks the verification relationship.
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
        found, vm_id = _verify_one(document, proof, proofs, resolver, purpose, challenge, domain, now, skew)
        if index == 0:
            first_vm = vm_id
        problems.extend(found)
    return problems, first_vm
