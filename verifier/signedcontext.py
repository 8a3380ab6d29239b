"""One encoding per Data Integrity credential: the ``@context`` a proof was made over is the document's own.

An ``eddsa-rdfc-2022`` signature covers the RDF graph, not the JSON: a context appended (or slipped in) after signing
that changes no triple leaves the signature valid, so one credential would have several encodings and several
digests, which confuses pins, caches and receipts. VC Data Integrity 1.0 (section 4.4, "Verify Proof") only asks
that a document's ``@context`` *start with* the proof's ``@context`` when the proof has one; Cead is stricter:

- a proof that carries ``@context``: the document's ``@context`` must be exactly that (same entries, same order);
- an ``eddsa-rdfc-2022`` proof without one: every ``@context`` entry after the first must matter to what was
  signed: taking it out must change the canonical document or proof options (or leave a term undefined). An entry
  that changes nothing was not needed to sign; it is refused (``proof.context_unsigned``).

An ``eddsa-jcs-2022`` proof carries the ``@context`` it signed (so the first rule applies to it); without one, JCS
signs the JSON itself, ``@context`` included, and any change already breaks the signature. The legacy ``Ed25519Signature2020`` (read for peers such as didkit) is left as its specification has it.
"""
from __future__ import annotations

from typing import Any

from . import jsonld
from .results import CeadError, Problem

RDFC = "eddsa-rdfc-2022"
LEGACY = "Ed25519Signature2020"


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def context_problems(document: dict, unsecured: dict, proof: dict, suite: str, loader=None) -> list[Problem]:
    """Problems with the document's ``@context`` against the one ``proof`` was made over (after the signature
    verified). ``unsecured`` is the document as it was signed (``dataintegrity._unsecured_for``); ``loader`` the
    verifier's JSON-LD document loader (default: the pinned one)."""
    if suite == LEGACY:
        return []
    contexts = _as_list(document.get("@context"))
    if "@context" in proof:
        if _as_list(proof["@context"]) != contexts:
            return [Problem("proof.context_mismatch", "The document's @context is not the one its proof was made "
                            "over (the proof's @context); Cead reads a credential only with the contexts it was "
                            "signed with, so that it has one encoding.")]
        return []
    if suite != RDFC or len(contexts) < 2:
        return []
    config = {key: value for key, value in proof.items() if key != "proofValue"}
    try:
        signed = (jsonld.canonicalize(unsecured, loader=loader),
                  jsonld.canonicalize({**config, "@context": unsecured["@context"]}, loader=loader))
    except CeadError:
        return []   # (already checked when the proof verified)
    for index in range(1, len(contexts)):
        fewer = contexts[:index] + contexts[index + 1:]
        try:
            without = (jsonld.canonicalize({**unsecured, "@context": fewer}, loader=loader),
                       jsonld.canonicalize({**config, "@context": fewer}, loader=loader))
        except CeadError:
            continue   # a term needs it
        if without == signed:
            shown = contexts[index] if isinstance(contexts[index], str) else "(an embedded context)"
            return [Problem("proof.context_unsigned", f"The @context entry {str(shown)[:200]!r} changes nothing the "
                            "proof signed, so the credential could be sent with or without it and have two "
                            "encodings; Cead refuses it. Send the credential exactly as it was signed.",
                            {"context": str(shown)[:200]})]
    return []
