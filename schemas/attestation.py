"""The run attestation: a credential the compute parties of a privacy-preserving computation co-sign, binding what
ran (protocol kind, implementation and version, parameters), what went in (each input party's commitment to its
input and the approval it relied on), what came out (the SHA-256 of the output's bytes) and when.

It is kept apart from the three credential types of ``schemas.models`` (its own context,
``https://w3id.org/cead/computations/v1``, and JSON Schema, ``computation-run-attestation.json``). The check a
gateway runs on it is ``verifier.attestation``; the nodes that issue it are in ``wallet.computations``.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from . import jcs, vocab
from .models import DateTime, Did, Ref, _Model, _Subject, credential_json_schema

CONTEXT_URL = "https://w3id.org/cead/computations/v1"
KINDS = ("psiCardinality", "secureAggregation")
Digest = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]


def output_digest(output: bytes) -> str:
    """``sha256:<hex>`` of the output's exact bytes (what a gateway recomputes from what it is about to release)."""
    return "sha256:" + hashlib.sha256(output).hexdigest()


def commitment(value: Any, salt: bytes | None = None) -> tuple[str, str]:
    """A hiding commitment to an input: ``sha256:<hex>`` of a 32-byte random salt followed by the input's JCS form
    (a set of identifiers is committed sorted, so the order it was read in does not matter). Returns
    ``(commitment, salt_hex)``; the party keeps the salt to open the commitment to an auditor later. A bare hash of
    a small input (one council's counts) could be found by trying values, hence the salt."""
    salt = salt if salt is not None else secrets.token_bytes(32)
    if isinstance(value, (set, frozenset)):
        value = sorted(value)
    return "sha256:" + hashlib.sha256(salt + jcs.dumps(value)).hexdigest(), salt.hex()


def opens(commit: str, value: Any, salt_hex: str) -> bool:
    """Whether ``(value, salt_hex)`` opens ``commit``."""
    try:
        expected, _ = commitment(value, bytes.fromhex(salt_hex))
    except ValueError:
        return False
    return hmac.compare_digest(expected, commit)


class RunInput(_Model):
    """One input party: its DID, its commitment to its input, and the approval (pinned) under which it took part."""
    party: Did
    commitment: Digest
    approval: Ref | None = None


class RunAttestation(_Subject):
    """A privacy-preserving computation ran: its compute parties attest what ran, on which committed inputs, with
    which output."""
    credential_type: ClassVar[str] = "ComputationRunAttestationCredential"
    schema_file: ClassVar[str] = "computation-run-attestation.json"

    id: Annotated[str, Field(pattern=r"^urn:cead:run:[A-Za-z0-9-]{8,64}$")]
    protocol_kind: Literal[KINDS]
    implementation: Annotated[str, Field(min_length=1, max_length=100)]
    implementation_version: Annotated[str, Field(min_length=1, max_length=40)]
    # the protocol as it ran, in the approval's own terms (a privacyProtocol entry of ``protocol_kind``), plus the
    # run's own figures (e.g. epsilon of the noise, minimum set size) under keys the protocol model does not have
    run_parameters: dict[str, Any]
    inputs: Annotated[list[RunInput], Field(min_length=1)]
    compute_parties: Annotated[list[Did], Field(min_length=1)]
    output_parties: Annotated[list[Did], Field(min_length=1)]
    output_digest: Digest
    started_at: DateTime
    completed_at: DateTime

    @model_validator(mode="after")
    def _consistent(self) -> "RunAttestation":
        if self.completed_at < self.started_at:
            raise ValueError("completedAt is before startedAt")
        if self.run_parameters.get("kind") != self.protocol_kind:
            raise ValueError("runParameters.kind must be the protocolKind")
        parties = [i.party for i in self.inputs]
        if len(set(parties)) != len(parties):
            raise ValueError("an input party is listed twice")
        return self

    def to_credential(self, issuer: str, *, id: str | None = None, valid_from: str | None = None,
                      valid_until: str | None = None) -> dict:
        cred = super().to_credential(issuer, id=id, valid_from=valid_from, valid_until=valid_until)
        cred["@context"] = [vocab.CREDENTIALS_V2, CONTEXT_URL]
        return cred


def json_schema() -> dict:
    """The JSON Schema shipped as ``schemas/jsonschema/computation-run-attestation.json``."""
    schema = credential_json_schema(RunAttestation)
    schema["properties"]["@context"]["contains"] = {"const": CONTEXT_URL}
    return schema


def write_json_schema() -> str:
    from pathlib import Path
    path = Path(__file__).parent / "jsonschema" / RunAttestation.schema_file
    path.write_text(json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n", "utf-8")
    return str(path)
