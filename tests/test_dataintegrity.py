"""Data Integrity: the W3C vc-di-eddsa vectors byte for byte, round trips, and every way a proof must fail."""
import copy
import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import base58
import pytest

from issuer.keys import PrivateKey
from issuer.signing import add_proof
from verifier import jsonld
from verifier.dataintegrity import hash_data, verify_proofs
from verifier.keys import PublicKey, multibase_decode
from verifier.results import CeadError

VECTORS = Path(__file__).parent / "vectors"
EDDSA = VECTORS / "vc-di-eddsa"
EXAMPLES_V2 = "https://www.w3.org/ns/credentials/examples/v2"
NOW = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _json(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _text(path):
    return Path(path).read_text(encoding="utf-8")


@pytest.fixture(autouse=True, scope="module")
def _examples_context():
    jsonld.register_context(EXAMPLES_V2, _json(VECTORS / "contexts" / "credentials-examples-v2.jsonld"))


def _private_key(multibase: str) -> PrivateKey:
    raw = multibase_decode(multibase)
    assert raw[:2] == b"\x80\x26"  # multicodec ed25519-priv
    return PrivateKey.from_ed25519_seed(raw[2:])


KEY_PAIR = _json(EDDSA / "keyPair.json")
VECTOR_KEY = _private_key(KEY_PAIR["privateKeyMultibase"])
VECTOR_VM = f"did:key:{KEY_PAIR['publicKeyMultibase']}#{KEY_PAIR['publicKeyMultibase']}"


class StubResolver:
    """Maps verification method ids to keys and the relationships they are listed under (did:key is K2's)."""

    def __init__(self, keys: dict[str, PublicKey], purposes=("assertionMethod", "authentication")):
        self.keys, self.purposes = keys, set(purposes)

    def public_key_for(self, vm_id, purpose):
        if vm_id not in self.keys:
            raise CeadError("did.vm_not_found", f"No verification method {vm_id}.")
        if purpose not in self.purposes:
            raise CeadError("did.vm_not_authorized", f"{vm_id} is not authorised for {purpose}.")
        return {"id": vm_id, "type": "Multikey"}, self.keys[vm_id]


def _resolver(**kw):
    return StubResolver({VECTOR_VM: PublicKey.from_multikey(KEY_PAIR["publicKeyMultibase"])}, **kw)


def _codes(problems):
    return [p.code for p in problems]


def test_vector_key_matches_its_public_key():
    assert VECTOR_KEY.public.to_multikey() == KEY_PAIR["publicKeyMultibase"]


# ---- the vectors, byte for byte ------------------------------------------------------------------------------
@pytest.mark.parametrize("folder,tag,suite", [
    ("eddsa-rdfc-2022", "DataInt", "eddsa-rdfc-2022"),
    ("eddsa-jcs-2022", "JCS", "eddsa-jcs-2022"),
    ("Ed25519Signature2020", "EdSig", "Ed25519Signature2020"),
])
def test_vector_intermediate_values(folder, tag, suite):
    d = EDDSA / folder
    config = _json(d / f"proofConfig{tag}.json")
    if suite == "Ed25519Signature2020":
        unsecured = {k: v for k, v in _json(d / "signedEdSig.json").items() if k != "proof"}
    else:
        unsecured = _json(EDDSA / "unsigned.json")
    if suite == "eddsa-jcs-2022":
        import rfc8785
        canon_doc, canon_proof = rfc8785.dumps(unsecured).decode(), rfc8785.dumps(config).decode()
    else:
        canon_doc, canon_proof = jsonld.canonicalize(unsecured), jsonld.canonicalize(config)
    assert canon_doc == _text(d / f"canonDoc{tag}.txt")
    assert canon_proof == _text(d / f"proofCanon{tag}.txt")
    assert hashlib.sha256(canon_doc.encode()).hexdigest() == _text(d / f"docHash{tag}.txt").strip()
    assert hashlib.sha256(canon_proof.encode()).hexdigest() == _text(d / f"proofHash{tag}.txt").strip()
    data = hash_data(unsecured, config, suite)
    assert data.hex() == _text(d / f"combinedHash{tag}.txt").strip()
    signature = VECTOR_KEY.sign(data)
    assert signature.hex() == _text(d / f"sigHex{tag}.txt").strip()
    assert "z" + base58.b58encode(signature).decode() == _text(d / f"sigBTC58{tag}.txt").strip()


@pytest.mark.parametrize("folder,signed", [("eddsa-rdfc-2022", "signedDataInt.json"),
                                           ("eddsa-jcs-2022", "signedJCS.json")])
def test_add_proof_reproduces_the_signed_vector(folder, signed):
    expected = _json(EDDSA / folder / signed)
    unsigned = _json(EDDSA / "unsigned.json")
    before = copy.deepcopy(unsigned)
    out = add_proof(unsigned, VECTOR_KEY, VECTOR_VM, cryptosuite=expected["proof"]["cryptosuite"],
                    created="2023-02-24T23:36:38Z")
    assert unsigned == before  # input untouched
    assert json.dumps(out) == json.dumps(expected)  # same members, same order, same values


def test_employ_vector_proof_and_signature():
    # The document's own context (https://w3id.org/citizenship/v4rc1) is not available offline, so the document
    # side starts from the vector's canonical form; the proof side is computed (v2 is @protected, so the
    # citizenship context cannot change the proof terms and a stand-in empty context gives the same proof canon).
    d = EDDSA / "eddsa-rdfc-2022" / "employ"
    jsonld.register_context("https://w3id.org/citizenship/v4rc1", {"@context": {}})
    proof_canon = jsonld.canonicalize(_json(d / "proofConfigDataInt.json"))
    assert proof_canon == _text(d / "proofCanonDataInt.txt")
    doc_hash = hashlib.sha256(_text(d / "canonDocDataInt.txt").encode()).hexdigest()
    assert doc_hash == _text(d / "docHashDataInt.txt").strip()
    combined = hashlib.sha256(proof_canon.encode()).digest() + bytes.fromhex(doc_hash)
    assert combined.hex() == _text(d / "combinedHashDataInt.txt").strip()
    signature = VECTOR_KEY.sign(combined)
    assert signature.hex() == _text(d / "sigHexDataInt.txt").strip()
    assert _json(d / "signedDataInt.json")["proof"]["proofValue"] == _text(d / "sigBTC58DataInt.txt").strip()


@pytest.mark.parametrize("path", ["eddsa-rdfc-2022/signedDataInt.json", "eddsa-jcs-2022/signedJCS.json",
                                  "Ed25519Signature2020/signedEdSig.json"])
def test_signed_vectors_verify(path):
    problems, vm = verify_proofs(_json(EDDSA / path), _resolver(), now=NOW)
    assert problems == [] and vm == VECTOR_VM


@pytest.mark.parametrize("name", ["signedProofSet1.json", "signedProofSet2.json", "signedProofChain1.json",
                                  "signedProofChain2.json"])
def test_proof_sets_and_chains_verify(name):
    pairs = _json(EDDSA / "proof-set-chain" / "multiKeyPairs.json").values()
    resolver = StubResolver({f"did:key:{p['publicKeyMultibase']}#{p['publicKeyMultibase']}":
                             PublicKey.from_multikey(p["publicKeyMultibase"]) for p in pairs})
    doc = _json(EDDSA / "proof-set-chain" / name)
    assert verify_proofs(doc, resolver, now=NOW)[0] == []
    # dropping a proof that a later one chains to breaks the chain
    if any("previousProof" in p for p in doc["proof"]):
        broken = dict(doc, proof=doc["proof"][1:])
        assert "proof.malformed" in _codes(verify_proofs(broken, resolver, now=NOW)[0])


# ---- round trips ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suite", ["eddsa-rdfc-2022", "eddsa-jcs-2022"])
def test_round_trip_with_challenge_domain_and_expiry(suite):
    key = PrivateKey.generate()
    vm = "did:web:org.example#key-1"
    vp = {"@context": ["https://www.w3.org/ns/credentials/v2"], "type": ["VerifiablePresentation"],
          "holder": "did:web:org.example"}
    signed = add_proof(vp, key, vm, cryptosuite=suite, purpose="authentication", challenge="urn:cead:req:abc",
                       domain="https://api.example:443", created=NOW, expires=NOW + timedelta(seconds=60))
    assert signed["proof"]["created"] == "2024-01-01T00:00:00Z"
    resolver = StubResolver({vm: key.public}, purposes=("authentication",))
    ok = verify_proofs(signed, resolver, "authentication", "urn:cead:req:abc", "https://api.example:443", now=NOW)
    assert ok == ([], vm)
    problems, _ = verify_proofs(signed, resolver, "authentication", "urn:cead:req:other", now=NOW)
    assert _codes(problems) == ["proof.challenge_mismatch"]
    problems, _ = verify_proofs(signed, resolver, "authentication", domain="https://evil.example:443", now=NOW)
    assert _codes(problems) == ["proof.domain_mismatch"]
    problems, _ = verify_proofs(signed, resolver, "authentication", now=NOW + timedelta(minutes=10))
    assert _codes(problems) == ["proof.expired"]
    problems, _ = verify_proofs(signed, resolver, "authentication", now=NOW - timedelta(minutes=10))
    assert _codes(problems) == ["proof.created_in_future"]


def test_second_proof_makes_a_proof_set_and_both_must_verify():
    k1, k2 = PrivateKey.generate(), PrivateKey.generate()
    doc = _json(EDDSA / "unsigned.json")
    signed = add_proof(add_proof(doc, k1, "did:x:1#k", created=NOW), k2, "did:x:2#k", cryptosuite="eddsa-jcs-2022",
                       created=NOW)
    assert len(signed["proof"]) == 2
    resolver = StubResolver({"did:x:1#k": k1.public, "did:x:2#k": k2.public})
    assert verify_proofs(signed, resolver, now=NOW) == ([], "did:x:1#k")
    only_first = StubResolver({"did:x:1#k": k1.public})
    assert _codes(verify_proofs(signed, only_first, now=NOW)[0]) == ["did.vm_not_found"]


# ---- rejections -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["eddsa-rdfc-2022/signedDataInt.json", "eddsa-jcs-2022/signedJCS.json",
                                  "Ed25519Signature2020/signedEdSig.json"])
def test_tampered_signature_byte_fails(path):
    doc = _json(EDDSA / path)
    raw = bytearray(multibase_decode(doc["proof"]["proofValue"]))
    raw[10] ^= 0x01
    doc["proof"]["proofValue"] = "z" + base58.b58encode(bytes(raw)).decode()
    assert _codes(verify_proofs(doc, _resolver(), now=NOW)[0]) == ["proof.signature_invalid"]


@pytest.mark.parametrize("path", ["eddsa-rdfc-2022/signedDataInt.json", "eddsa-jcs-2022/signedJCS.json",
                                  "Ed25519Signature2020/signedEdSig.json"])
def test_tampered_document_or_proof_option_fails(path):
    doc = _json(EDDSA / path)
    doc["credentialSubject"]["alumniOf"] = "Another School"
    assert _codes(verify_proofs(doc, _resolver(), now=NOW)[0]) == ["proof.signature_invalid"]
    doc = _json(EDDSA / path)
    doc["proof"]["created"] = "2023-02-24T23:36:39Z"
    assert _codes(verify_proofs(doc, _resolver(), now=NOW)[0]) == ["proof.signature_invalid"]


def test_wrong_key_fails():
    other = PrivateKey.generate().public
    problems, vm = verify_proofs(_json(EDDSA / "eddsa-rdfc-2022/signedDataInt.json"),
                                 StubResolver({VECTOR_VM: other}), now=NOW)
    assert _codes(problems) == ["proof.signature_invalid"] and vm == VECTOR_VM


def test_p256_key_is_refused_for_eddsa():
    problems, _ = verify_proofs(_json(EDDSA / "eddsa-rdfc-2022/signedDataInt.json"),
                                StubResolver({VECTOR_VM: PrivateKey.generate("P-256").public}), now=NOW)
    assert _codes(problems) == ["proof.key_type_mismatch"]


def test_wrong_purpose_fails():
    doc = _json(EDDSA / "eddsa-rdfc-2022/signedDataInt.json")
    assert _codes(verify_proofs(doc, _resolver(), "authentication", now=NOW)[0]) == ["proof.purpose_mismatch"]


def test_key_not_listed_for_the_purpose_propagates_the_resolver_code():
    doc = _json(EDDSA / "eddsa-rdfc-2022/signedDataInt.json")
    problems, _ = verify_proofs(doc, _resolver(purposes=("authentication",)), now=NOW)
    assert _codes(problems) == ["did.vm_not_authorized"]


def test_unknown_context_is_named():
    doc = _json(EDDSA / "eddsa-rdfc-2022/signedDataInt.json")
    doc["@context"].append("https://unknown.example/ctx/v1")
    (problem,), _ = verify_proofs(doc, _resolver(), now=NOW)
    assert problem.code == "jsonld.context_unknown" and "https://unknown.example/ctx/v1" in problem.message


@pytest.mark.parametrize("suite", ["eddsa-rdfc-2022", "eddsa-jcs-2022"])
def test_v1_credential_gets_the_data_integrity_context_and_verifies(suite):
    key = PrivateKey.generate()
    vc = {"@context": "https://www.w3.org/2018/credentials/v1", "type": ["VerifiableCredential"],
          "issuer": "did:x:1", "issuanceDate": "2024-01-01T00:00:00Z", "credentialSubject": {"id": "did:x:2"}}
    signed = add_proof(vc, key, "did:x:1#k", cryptosuite=suite, created=NOW)
    assert signed["@context"] == ["https://www.w3.org/2018/credentials/v1",
                                  "https://w3id.org/security/data-integrity/v2"]
    assert vc["@context"] == "https://www.w3.org/2018/credentials/v1"
    assert verify_proofs(signed, StubResolver({"did:x:1#k": key.public}), now=NOW) == ([], "did:x:1#k")


def test_jcs_signs_plain_json_without_context():
    key = PrivateKey.generate()
    signed = add_proof({"hello": "world"}, key, "did:x:1#k", cryptosuite="eddsa-jcs-2022", created=NOW)
    assert "@context" not in signed and "@context" not in signed["proof"]
    assert verify_proofs(signed, StubResolver({"did:x:1#k": key.public}), now=NOW) == ([], "did:x:1#k")


def test_undefined_term_in_v1_credential_is_refused():
    key = PrivateKey.generate()
    vc = {"@context": ["https://www.w3.org/2018/credentials/v1"], "type": ["VerifiableCredential"],
          "issuer": "did:x:1", "issuanceDate": "2024-01-01T00:00:00Z",
          "credentialSubject": {"id": "did:x:2", "favouriteColour": "blue"}}
    with pytest.raises(CeadError) as info:
        add_proof(vc, key, "did:x:1#k")
    assert info.value.code == "jsonld.undefined_term" and "favouriteColour" in info.value.message


@pytest.mark.parametrize("change,code", [
    ({"cryptosuite": "ecdsa-rdfc-2019"}, "proof.cryptosuite_unsupported"),
    ({"type": "RsaSignature2018"}, "proof.type_unsupported"),
    ({"proofValue": "not-multibase"}, "proof.malformed"),
    ({"proofValue": "z3"}, "proof.malformed"),
    ({"created": "yesterday"}, "proof.malformed"),
    ({"verificationMethod": None}, "proof.malformed"),
])
def test_malformed_or_unsupported_proofs(change, code):
    doc = _json(EDDSA / "eddsa-rdfc-2022/signedDataInt.json")
    doc["proof"].update(change)
    assert code in _codes(verify_proofs(doc, _resolver(), now=NOW)[0])


@pytest.mark.parametrize("doc", [{}, {"proof": []}, {"proof": "x"}, "not an object"])
def test_missing_or_garbage_proof(doc):
    problems, _ = verify_proofs(doc, _resolver(), now=NOW)
    assert problems and problems[0].code in ("proof.missing", "proof.malformed")


def test_jcs_proof_context_must_prefix_document_context():
    doc = _json(EDDSA / "eddsa-jcs-2022/signedJCS.json")
    doc["proof"]["@context"] = ["https://www.w3.org/ns/credentials/v2", "https://w3id.org/security/data-integrity/v2"]
    assert _codes(verify_proofs(doc, _resolver(), now=NOW)[0]) == ["proof.context_mismatch"]


def test_add_proof_refuses_unsupported_inputs():
    doc = _json(EDDSA / "unsigned.json")
    with pytest.raises(CeadError) as info:
        add_proof(doc, VECTOR_KEY, VECTOR_VM, cryptosuite="ecdsa-rdfc-2019")
    assert info.value.code == "proof.cryptosuite_unsupported"
    with pytest.raises(CeadError) as info:
        add_proof(doc, PrivateKey.generate("P-256"), VECTOR_VM)
    assert info.value.code == "key.unsupported"


# ---- the offline JSON-LD loader ---------------------------------------------------------------------------------
def test_loader_serves_pinned_contexts_only():
    doc = jsonld.document_loader("https://www.w3.org/ns/credentials/v2")["document"]
    assert "@context" in doc
    doc["@context"] = "mutated"  # callers get copies
    assert jsonld.document_loader("https://www.w3.org/ns/credentials/v2")["document"]["@context"] != "mutated"
    with pytest.raises(CeadError) as info:
        jsonld.document_loader("https://schema.org/")
    assert info.value.code == "jsonld.context_unknown" and "https://schema.org/" in info.value.message


def test_pinned_context_with_wrong_hash_is_refused(monkeypatch):
    url = "https://w3id.org/security/multikey/v1"
    index = {k: dict(v) for k, v in jsonld._index().items()}
    index[url]["sha256"] = "0" * 64
    monkeypatch.setattr(jsonld, "_pinned_index", index)
    monkeypatch.setattr(jsonld, "_pinned_docs", {})
    with pytest.raises(CeadError) as info:
        jsonld.document_loader(url)
    assert info.value.code == "jsonld.context_hash_mismatch"


def test_pinned_context_cannot_be_replaced():
    with pytest.raises(CeadError) as info:
        jsonld.register_context("https://www.w3.org/ns/credentials/v2", {"@context": {"@vocab": "urn:evil#"}})
    assert info.value.code == "jsonld.context_pinned"


def test_registered_context_can_be_updated():
    url = "https://contexts.example/test/v1"
    doc = {"@context": ["https://www.w3.org/ns/credentials/v2", url], "type": ["VerifiableCredential", "Thing"],
           "issuer": "did:x:1", "credentialSubject": {"id": "did:x:2"}}
    jsonld.register_context(url, {"@context": {"Thing": "urn:one#Thing"}})
    assert "<urn:one#Thing>" in jsonld.canonicalize(doc)
    jsonld.register_context(url, {"@context": {"Thing": "urn:two#Thing"}})
    assert "<urn:two#Thing>" in jsonld.canonicalize(doc)


@pytest.mark.parametrize("doc,code,named", [
    ({"@context": "https://www.w3.org/2018/credentials/v1", "type": ["VerifiableCredential", "Mystery"]},
     "jsonld.undefined_term", "Mystery"),
    ({"@context": "https://www.w3.org/2018/credentials/v1", "id": "relative", "type": ["VerifiableCredential"]},
     "jsonld.relative_iri", "relative"),
    ({"@context": {"@vocab": 5}, "a": 1}, "jsonld.invalid", "@vocab"),
    ({"@context": ["https://www.w3.org/ns/credentials/v2", 7]}, "jsonld.invalid", "@context"),
])
def test_expansion_refuses_silent_loss_and_garbage(doc, code, named):
    with pytest.raises(CeadError) as info:
        jsonld.canonicalize(doc)
    assert info.value.code == code and named in info.value.message


def test_v2_undefined_terms_are_refused_unless_a_vocab_context_keeps_them():
    doc = {"@context": ["https://www.w3.org/ns/credentials/v2"], "type": ["VerifiableCredential"],
           "issuer": "did:x:1", "credentialSubject": {"id": "did:x:2", "shoeSize": 9}}
    with pytest.raises(CeadError) as info:
        jsonld.canonicalize(doc)
    assert info.value.code == "jsonld.undefined_term" and "shoeSize" in info.value.message
    url = "https://www.w3.org/ns/credentials/undefined-terms/v2"
    jsonld.register_context(url, _json(VECTORS / "contexts" / "credentials-undefined-terms-v2.jsonld"))
    doc["@context"].append(url)
    assert "<https://www.w3.org/ns/credentials/undefined-term#shoeSize>" in jsonld.canonicalize(doc)
