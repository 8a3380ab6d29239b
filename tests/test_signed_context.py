"""One encoding per Data Integrity credential (issue 11): a credential whose @context differs from the one its proof
was made over is refused, even when no triple changes (so each credential has one digest)."""
import copy
from datetime import datetime, timezone

import pytest

from issuer.keys import PrivateKey
from issuer.signing import add_proof
from verifier.dataintegrity import verify_proofs
from verifier.results import CeadError

V2 = "https://www.w3.org/ns/credentials/v2"
DI_V2 = "https://w3id.org/security/data-integrity/v2"
NOW = datetime(2025, 6, 1, tzinfo=timezone.utc)
VM = "did:x:1#k"


class Keys:
    def __init__(self, key):
        self.key = key

    def public_key_for(self, vm_id, purpose):
        if vm_id != VM:
            raise CeadError("did.vm_not_found", vm_id)
        return {"id": vm_id}, self.key.public


def credential():
    return {"@context": [V2], "type": ["VerifiableCredential"], "issuer": "did:x:1",
            "credentialSubject": {"id": "did:x:2", "name": "Fife"}}


def codes(doc, key):
    return [p.code for p in verify_proofs(doc, Keys(key), now=NOW)[0]]


def test_a_context_appended_after_signing_is_refused():
    key = PrivateKey.generate()
    signed = add_proof(credential(), key, VM, created=NOW)
    assert codes(signed, key) == []
    appended = copy.deepcopy(signed)
    appended["@context"].append(DI_V2)          # redefines nothing the credential uses: no triple changes
    assert codes(appended, key) == ["proof.context_unsigned"]
    inline = copy.deepcopy(signed)
    inline["@context"].append({"unusedTerm": "https://example.org/unused"})
    assert codes(inline, key) == ["proof.context_unsigned"]


def test_contexts_the_credential_needs_are_kept():
    key = PrivateKey.generate()
    doc = credential()
    doc["@context"].append({"nickname": "https://example.org/nickname"})
    doc["credentialSubject"]["nickname"] = "the Kingdom"
    assert codes(add_proof(doc, key, VM, created=NOW), key) == []
    v1 = {"@context": "https://www.w3.org/2018/credentials/v1", "type": ["VerifiableCredential"], "issuer": "did:x:1",
          "issuanceDate": "2024-01-01T00:00:00Z", "credentialSubject": {"id": "did:x:2"}}
    signed = add_proof(v1, key, VM, created=NOW)     # the DI context is needed by the proof, not the credential
    assert signed["@context"][-1] == DI_V2 and codes(signed, key) == []


def test_a_proof_context_must_be_the_documents_own():
    key = PrivateKey.generate()
    doc = credential()
    proof_config = {"@context": [V2]}
    signed = add_proof(doc, key, VM, created=NOW)
    # re-sign with a proof @context, the way some issuers do (the spec lets the document's @context extend it)
    from verifier.dataintegrity import hash_data
    import base58
    proof = {k: v for k, v in signed["proof"].items() if k != "proofValue"}
    proof.update(proof_config)
    data = hash_data({k: v for k, v in doc.items()}, proof, "eddsa-rdfc-2022")
    proof["proofValue"] = "z" + base58.b58encode(key.sign(data)).decode()
    exact = {**doc, "proof": proof}
    assert codes(exact, key) == []
    extended = {**doc, "@context": [V2, DI_V2], "proof": proof}
    assert codes(extended, key) == ["proof.context_mismatch"]


@pytest.mark.parametrize("added", [DI_V2])
def test_jcs_proofs_carry_their_context_and_it_must_be_the_documents(added):
    key = PrivateKey.generate()
    signed = add_proof(credential(), key, VM, cryptosuite="eddsa-jcs-2022", created=NOW)
    changed = copy.deepcopy(signed)
    changed["@context"].append(added)
    assert "@context" in signed["proof"]          # (the spec would accept a document extending it)
    assert codes(changed, key) == ["proof.context_mismatch"]
