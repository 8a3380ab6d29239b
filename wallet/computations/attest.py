"""Building and co-signing run attestations (``schemas.attestation.RunAttestation``).

Every compute party signs the same unsigned attestation with its own key; the proofs form a Data Integrity proof
set (each proof signs the document without the proof set), so they can be made independently and combined, the
issuer's first.
"""
from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from issuer.keys import PrivateKey
from issuer.signing import add_proof
from schemas.attestation import RunAttestation
from schemas.errors import CeadError


@dataclass(frozen=True)
class Signer:
    """A node's identity for a computation: its DID, signing key and verification method (DID URL)."""
    did: str
    key: PrivateKey
    kid: str

    @classmethod
    def from_node(cls, node) -> "Signer":
        """The node's organisation DID and active Ed25519 key (the node's key must be unlocked)."""
        return cls(node.did, node.key, node.verification_method_id)


def new_run_id() -> str:
    return f"urn:cead:run:{uuid.uuid4()}"


def now_utc() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def unsigned_attestation(issuer: str, **subject: Any) -> dict:
    """The unsigned credential; ``subject`` holds the RunAttestation fields (snake_case or camelCase).
    CeadError ``schema.invalid`` if they do not make a valid attestation."""
    from pydantic import ValidationError
    from schemas.models import describe
    try:
        model = RunAttestation.model_validate(subject)
    except ValidationError as exc:
        raise CeadError("schema.invalid", f"Run attestation: {describe(exc)}") from None
    return model.to_credential(issuer, valid_from=model.to_json()["completedAt"])


def sign(document: dict, signer: Signer) -> dict:
    """The proof ``signer`` adds to ``document`` (a dict: one Data Integrity proof over the unsigned document)."""
    unsigned = {k: v for k, v in document.items() if k != "proof"}
    return add_proof(unsigned, signer.key, signer.kid)["proof"]


def combine(document: dict, proofs: list[dict]) -> dict:
    """``document`` with the proof set ``proofs`` (the issuer's first)."""
    out = copy.deepcopy({k: v for k, v in document.items() if k != "proof"})
    out["proof"] = list(proofs) if len(proofs) != 1 else proofs[0]
    return out
