"""The cryptosuite registry: every Data Integrity suite Cead can check (and sign with) is one object here.

A suite says which proofs it reads (``proof_type`` and, for ``DataIntegrityProof``, ``cryptosuite``), how a
document and a proof configuration become the bytes signed (``hash``: canonicalise, then hash), how a proofValue is
read and written, and which key types it signs and verifies with. ``verifier.dataintegrity.verify_proofs`` checks
proofs through a registry and ``issuer.signing.add_proof`` signs through the same one, so a suite's name appears
in this module only.

Adding a suite: subclass ``Cryptosuite`` (or write an object with the same attributes) and pass
``DEFAULT_SUITES.with_suite(MySuite())`` to ``Verifier(suites=...)`` and ``add_proof(suites=...)``; or
``register`` it in ``DEFAULT_SUITES`` to make it part of every verifier in the process.
"""
from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

import rfc8785

from schemas import jcs

from . import jsonld
from .keys import ED25519, PublicKey, multibase_decode, multibase_encode
from .results import CeadError

DATA_INTEGRITY_PROOF = "DataIntegrityProof"
EDDSA_RDFC_2022 = "eddsa-rdfc-2022"
EDDSA_JCS_2022 = "eddsa-jcs-2022"
ED25519_SIGNATURE_2020 = "Ed25519Signature2020"
_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)\Z")


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


class Cryptosuite:
    """One Data Integrity suite. Subclasses set the class attributes and override what differs."""

    name: str = ""                         # the cryptosuite identifier (or the legacy proof type)
    proof_type: str = DATA_INTEGRITY_PROOF
    key_kinds: tuple[str, ...] = (ED25519,)
    signs: bool = True                     # False: read only (checked, never used to sign)
    signature_length: int | None = 64

    # ---- the bytes signed ----------------------------------------------------------------------------------
    def configuration(self, unsecured: dict, proof_config: dict) -> dict:
        """The proof configuration that is canonicalised: the proof without proofValue, with the document's
        @context where the suite says so."""
        config = {key: value for key, value in proof_config.items() if key != "proofValue"}
        if "@context" in unsecured:
            config["@context"] = unsecured["@context"]
        return config

    def canonicalize(self, document: dict) -> bytes:
        raise NotImplementedError

    def digest(self, data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    def hash(self, unsecured: dict, proof_config: dict, loader=None) -> bytes:
        """hash(canonical proof configuration) || hash(canonical document) (vc-di-eddsa). ``loader``: the JSON-LD
        document loader the verifier was given (``VerificationContext.loader``), for suites that read contexts."""
        config = self.configuration(unsecured, proof_config)
        return self.digest(self.canonicalize(config)) + self.digest(self.canonicalize(unsecured))

    # ---- signatures ----------------------------------------------------------------------------------------
    def decode_signature(self, proof_value: str) -> bytes:
        signature = multibase_decode(proof_value)
        if not proof_value.startswith("z") or (self.signature_length and len(signature) != self.signature_length):
            raise CeadError("proof.malformed", f"proofValue must be a base58btc multibase signature "
                            f"({self.signature_length} bytes) for {self.name}.")
        return signature

    def encode_signature(self, signature: bytes) -> str:
        return multibase_encode(signature)

    def verify(self, key: PublicKey, signature: bytes, data: bytes) -> bool:
        return key.verify(signature, data)

    def sign(self, key, data: bytes) -> bytes:
        return key.sign(data)

    def prepare(self, unsecured: dict) -> None:
        """Adjust the document about to be signed (e.g. add the Data Integrity context); default: nothing."""

    def proof_context(self, unsecured: dict) -> Any:
        """An @context to write into a new proof (None: none)."""
        return None

    def matches(self, proof: dict) -> bool:
        if proof.get("type") != self.proof_type:
            return False
        return self.proof_type != DATA_INTEGRITY_PROOF or proof.get("cryptosuite") == self.name


DATA_INTEGRITY_V2 = "https://w3id.org/security/data-integrity/v2"
DATA_INTEGRITY_CONTEXTS = {"https://www.w3.org/ns/credentials/v2", "https://w3id.org/security/data-integrity/v1",
                           DATA_INTEGRITY_V2}


class _Rdfc(Cryptosuite):
    """Canonicalisation with RDFC-1.0 (the JSON-LD document as RDF)."""

    def canonicalize(self, document: dict, loader=None) -> bytes:
        return jsonld.canonicalize(document, loader=loader).encode("utf-8")

    def hash(self, unsecured: dict, proof_config: dict, loader=None) -> bytes:
        if "@context" not in unsecured:
            raise CeadError("jsonld.invalid", "The document has no @context, so it cannot be canonicalized "
                            "with RDFC-1.0.")
        config = self.configuration(unsecured, proof_config)
        return self.digest(self.canonicalize(config, loader)) + self.digest(self.canonicalize(unsecured, loader))

    def prepare(self, unsecured: dict) -> None:
        context = unsecured.get("@context")
        if context is None:
            raise CeadError("jsonld.invalid", "The document has no @context, so it cannot be signed with RDFC-1.0.")
        contexts = context if isinstance(context, list) else [context]
        if not any(c in DATA_INTEGRITY_CONTEXTS for c in contexts):
            unsecured["@context"] = contexts + [DATA_INTEGRITY_V2]


class EddsaRdfc2022(_Rdfc):
    name = EDDSA_RDFC_2022


class Ed25519Signature2020(_Rdfc):
    """The older suite (read only, for peers such as didkit): a proof @context of its own is kept."""
    name = ED25519_SIGNATURE_2020
    proof_type = ED25519_SIGNATURE_2020
    signs = False

    def configuration(self, unsecured: dict, proof_config: dict) -> dict:
        config = {key: value for key, value in proof_config.items() if key != "proofValue"}
        if "@context" not in config:
            config["@context"] = unsecured["@context"]
        return config


class EddsaJcs2022(Cryptosuite):
    name = EDDSA_JCS_2022

    def canonicalize(self, document: dict) -> bytes:
        try:
            return jcs.dumps(document)
        except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
            raise CeadError("proof.malformed", f"The document cannot be canonicalized with JCS: {exc}") from None

    def prepare(self, unsecured: dict) -> None:
        context = unsecured.get("@context")
        if context is None:
            return  # plain JSON may be signed with JCS
        contexts = context if isinstance(context, list) else [context]
        if not any(c in DATA_INTEGRITY_CONTEXTS for c in contexts):
            unsecured["@context"] = contexts + [DATA_INTEGRITY_V2]

    def proof_context(self, unsecured: dict) -> Any:
        return unsecured.get("@context")


class SuiteRegistry:
    """Suites by name; finds the suite of a proof."""

    def __init__(self, suites=()):
        self._suites: dict[str, Cryptosuite] = {}
        for suite in suites:
            self.register(suite)

    def register(self, suite: Cryptosuite) -> None:
        self._suites[suite.name] = suite

    def with_suite(self, suite: Cryptosuite) -> "SuiteRegistry":
        """A copy of this registry with ``suite`` added."""
        return SuiteRegistry([*self._suites.values(), suite])

    def names(self, signing: bool = False) -> tuple[str, ...]:
        return tuple(name for name, suite in self._suites.items() if suite.signs or not signing)

    def __contains__(self, name: str) -> bool:
        return name in self._suites

    def get(self, name: str) -> Cryptosuite:
        suite = self._suites.get(name) if isinstance(name, str) else None
        if suite is None:
            raise CeadError("proof.cryptosuite_unsupported", f"Unsupported cryptosuite {name!r}; supported: "
                            f"{', '.join(self.names())}.", cryptosuite=str(name))
        return suite

    def for_signing(self, name: str) -> Cryptosuite:
        suite = self.get(name)
        if not suite.signs:
            raise CeadError("proof.cryptosuite_unsupported", f"Cannot sign with {name!r}; supported: "
                            f"{', '.join(self.names(signing=True))}.")
        return suite

    def for_proof(self, proof: dict) -> Cryptosuite:
        """The suite of a proof; raises ``proof.cryptosuite_unsupported`` / ``proof.type_unsupported``."""
        proof_type = proof.get("type")
        for suite in self._suites.values():
            if suite.matches(proof):
                return suite
        if proof_type == DATA_INTEGRITY_PROOF:
            cryptosuite = proof.get("cryptosuite")
            raise CeadError("proof.cryptosuite_unsupported", f"Unsupported cryptosuite {cryptosuite!r}; supported: "
                            f"{', '.join(s.name for s in self._suites.values() if s.proof_type == proof_type)}.",
                            cryptosuite=str(cryptosuite))
        types = sorted({s.proof_type for s in self._suites.values()})
        raise CeadError("proof.type_unsupported", f"Unsupported proof type {proof_type!r}; supported: "
                        f"{', '.join(types)}.", type=str(proof_type))


DEFAULT_SUITES = SuiteRegistry([EddsaRdfc2022(), EddsaJcs2022(), Ed25519Signature2020()])


def register(suite: Cryptosuite) -> None:
    """Add ``suite`` to the registry every verifier and signer uses by default."""
    DEFAULT_SUITES.register(suite)
