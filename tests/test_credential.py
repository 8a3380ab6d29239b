"""Credential and presentation verification: every rejection carries its own code."""
from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone

import pytest

import verifier.credential as credential_module
from issuer.keys import PrivateKey
from issuer.signing import add_proof, sign_jwt
from verifier.credential import Verifier
from verifier.did import Resolver, build_did_document, did_key
from verifier.keys import ED25519, P256
from verifier.results import Problem

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
V2 = "https://www.w3.org/ns/credentials/v2"
V1 = "https://www.w3.org/2018/credentials/v1"


class StaticResolver(Resolver):
    """did:key as usual, plus fixed documents for other DIDs (no network)."""

    def __init__(self, docs: dict[str, dict] | None = None):
        super().__init__()
        self.docs = docs or {}

    def resolve(self, did):
        return copy.deepcopy(self.docs[did]) if did in self.docs else super().resolve(did)


class Party:
    def __init__(self, kind=ED25519):
        self.key = PrivateKey.generate(kind)
        self.did = did_key(self.key.public)
        self.vm = f"{self.did}#{self.did[8:]}"


def unsigned_credential(issuer: str, **extra) -> dict:
    doc = {"@context": [V2], "id": "urn:uuid:3f1c7f4e-0000-4000-8000-000000000001",
           "type": ["VerifiableCredential"], "issuer": issuer, "validFrom": "2025-01-01T00:00:00Z",
           "validUntil": "2026-01-01T00:00:00Z", "credentialSubject": {"id": "did:example:subject", "name": "Alice"}}
    doc.update(extra)
    return doc


def di_credential(party: Party, cryptosuite="eddsa-rdfc-2022", **extra) -> dict:
    return add_proof(unsigned_credential(party.did, **extra), party.key, party.vm, cryptosuite=cryptosuite,
                     created="2025-01-01T00:00:00Z")


def codes(result) -> set[str]:
    return {p.code for p in result.problems}


def rejected(result, code: str) -> None:
    assert not result.verified, "expected a rejection"
    assert code in codes(result), f"{code} not in {codes(result)}"


@pytest.fixture
def issuer():
    return Party()


@pytest.fixture
def verifier():
    return Verifier(Resolver())


# ---- Data Integrity credentials -------------------------------------------------------------------------------------
@pytest.mark.parametrize("cryptosuite", ["eddsa-rdfc-2022", "eddsa-jcs-2022"])
def test_data_integrity_credential_verifies(issuer, verifier, cryptosuite):
    signed = di_credential(issuer, cryptosuite)
    result = verifier.verify_credential(signed, now=NOW)
    assert result.verified, result.problems
    assert (result.format, result.issuer, result.verification_method) == ("ldp", issuer.did, issuer.vm)
    assert result.document == signed
    assert verifier.verify_credential(json.dumps(signed), now=NOW).verified  # JSON text is accepted too


def test_tampered_byte(issuer, verifier):
    signed = di_credential(issuer)
    signed["credentialSubject"]["name"] = "Alicf"
    rejected(verifier.verify_credential(signed, now=NOW), "proof.signature_invalid")


def test_wrong_key(issuer, verifier):
    impostor = PrivateKey.generate()
    forged = add_proof(unsigned_credential(issuer.did), impostor, issuer.vm, created="2025-01-01T00:00:00Z")
    rejected(verifier.verify_credential(forged, now=NOW), "proof.signature_invalid")


def test_key_not_authorised_for_assertion():
    did = "did:web:issuer.example"
    current, retired = PrivateKey.generate(), PrivateKey.generate()
    doc = build_did_document(did, [("#key-2", current.public)], retired=[("#key-1", retired.public)])
    verifier = Verifier(StaticResolver({did: doc}))
    good = add_proof(unsigned_credential(did), current, did + "#key-2", created="2025-01-01T00:00:00Z")
    assert verifier.verify_credential(good, now=NOW).verified
    old = add_proof(unsigned_credential(did), retired, did + "#key-1", created="2025-01-01T00:00:00Z")
    rejected(verifier.verify_credential(old, now=NOW), "did.vm_not_authorized")


def test_signing_key_must_belong_to_issuer(issuer, verifier):
    other = Party()
    signed = add_proof(unsigned_credential(issuer.did), other.key, other.vm, created="2025-01-01T00:00:00Z")
    rejected(verifier.verify_credential(signed, now=NOW), "credential.issuer_mismatch")


def test_validity_period_with_skew(issuer, verifier):
    signed = di_credential(issuer)
    rejected(verifier.verify_credential(signed, now=datetime(2026, 1, 1, 0, 6, tzinfo=timezone.utc)),
             "credential.expired")
    assert verifier.verify_credential(signed, now=datetime(2026, 1, 1, 0, 4, tzinfo=timezone.utc)).verified
    rejected(verifier.verify_credential(signed, now=datetime(2024, 12, 31, 23, 50, tzinfo=timezone.utc)),
             "credential.not_yet_valid")
    strict = Verifier(Resolver(), skew=timedelta(0))
    rejected(strict.verify_credential(signed, now=datetime(2026, 1, 1, 0, 0, 1, tzinfo=timezone.utc)),
             "credential.expired")


def test_date_must_have_zone(issuer, verifier):
    signed = di_credential(issuer, validUntil="2026-01-01T00:00:00")
    rejected(verifier.verify_credential(signed, now=NOW), "credential.date_invalid")


def test_unknown_context(issuer, verifier):
    signed = di_credential(issuer)
    signed["@context"] = [V2, "https://example.org/unknown-context/v1"]
    rejected(verifier.verify_credential(signed, now=NOW), "credential.context_unknown")


@pytest.mark.parametrize("change,code", [
    ({"@context": ["https://example.org/other", V2]}, "credential.context_invalid"),
    ({"@context": []}, "credential.context_invalid"),
    ({"type": ["Thing"]}, "credential.type_missing"),
    ({"issuer": None}, "credential.issuer_missing"),
    ({"issuer": {"name": "no id"}}, "credential.issuer_missing"),
    ({"credentialSubject": []}, "credential.subject_missing"),
])
def test_data_model_rejections(issuer, verifier, change, code):
    doc = unsigned_credential(issuer.did)
    doc.update(change)
    doc = {k: v for k, v in doc.items() if v is not None}
    signed = add_proof(doc, issuer.key, issuer.vm, cryptosuite="eddsa-jcs-2022", created="2025-01-01T00:00:00Z")
    rejected(verifier.verify_credential(signed, now=NOW), code)


def test_missing_proof(issuer, verifier):
    rejected(verifier.verify_credential(unsigned_credential(issuer.did), now=NOW), "proof.missing")


def test_vc11_data_model(issuer, verifier):
    doc = {"@context": [V1], "type": ["VerifiableCredential"], "issuer": issuer.did,
           "issuanceDate": "2025-01-01T00:00:00Z", "expirationDate": "2025-03-01T00:00:00Z",
           "credentialSubject": {"id": "did:example:subject"}}
    token = sign_jwt({"iss": issuer.did, "vc": doc}, issuer.key, issuer.vm)
    assert verifier.verify_credential(token, now=datetime(2025, 2, 1, tzinfo=timezone.utc)).verified
    rejected(verifier.verify_credential(token, now=NOW), "credential.expired")
    no_date = {k: v for k, v in doc.items() if k != "issuanceDate"}
    rejected(verifier.verify_credential(sign_jwt({"vc": no_date}, issuer.key, issuer.vm), now=NOW),
             "credential.date_invalid")


@pytest.mark.parametrize("bad", ["", "not json", "[1, 2]", "{", 42, None, [], "a.b.c", b"\xff\xfe"])
def test_malformed_input_never_raises(verifier, bad):
    result = verifier.verify_credential(bad, now=NOW)
    assert not result.verified
    assert codes(result) & {"credential.malformed", "jose.malformed"}


def test_internal_errors_fail_closed(issuer):
    class Broken(Resolver):
        def public_key_for(self, vm_id, purpose):
            raise RuntimeError("boom")
    token = sign_jwt(unsigned_credential(issuer.did), issuer.key, issuer.vm)
    rejected(Verifier(Broken()).verify_credential(token, now=NOW), "verifier.internal_error")


# ---- VC-JOSE credentials --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", [ED25519, P256])
def test_jose_credential_round_trip(verifier, kind):
    party = Party(kind)
    claims = unsigned_credential(party.did)
    result = verifier.verify_credential(sign_jwt(claims, party.key, party.vm), now=NOW)
    assert result.verified, result.problems
    assert (result.format, result.issuer, result.verification_method) == ("jwt", party.did, party.vm)
    assert result.document == claims


def test_jose_credential_rejections(issuer, verifier):
    claims = unsigned_credential(issuer.did)
    token = sign_jwt(claims, issuer.key, issuer.vm)
    rejected(verifier.verify_credential(token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "AAAQ"), now=NOW),
             "jose.signature_invalid")
    rejected(verifier.verify_credential("eyJhbGciOiJub25lIn0.e30.", now=NOW), "jose.malformed")
    rejected(verifier.verify_credential(sign_jwt(dict(claims, iss="did:example:else"), issuer.key, issuer.vm),
                                        now=NOW), "credential.issuer_mismatch")
    expired = dict(claims, exp=int((NOW - timedelta(hours=1)).timestamp()))
    rejected(verifier.verify_credential(sign_jwt(expired, issuer.key, issuer.vm), now=NOW), "credential.expired")
    other = Party()
    rejected(verifier.verify_credential(sign_jwt(claims, other.key, other.vm), now=NOW),
             "credential.issuer_mismatch")
    rejected(verifier.verify_credential(sign_jwt(claims, issuer.key, issuer.vm, typ="vp+jwt"), now=NOW),
             "jose.typ_mismatch")


# ---- JSON Schema ----------------------------------------------------------------------------------------------------
SCHEMA_ID = "https://schemas.cead.example/test/v1.json"
SCHEMA = {"$id": SCHEMA_ID, "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
          "required": ["credentialSubject"],
          "properties": {"credentialSubject": {"type": "object", "required": ["name"],
                                               "properties": {"name": {"type": "string", "maxLength": 10}}}}}


@pytest.fixture
def schema_registry(monkeypatch):
    from referencing import Registry, Resource
    registry = Registry().with_resource(SCHEMA_ID, Resource.from_contents(SCHEMA))
    monkeypatch.setattr(credential_module, "_schema_registry", lambda: ({SCHEMA_ID: SCHEMA}, registry))


def test_json_schema(issuer, verifier, schema_registry):
    ref = {"id": SCHEMA_ID, "type": "JsonSchema"}
    assert verifier.verify_credential(di_credential(issuer, credentialSchema=ref), now=NOW).verified
    long_name = di_credential(issuer, credentialSchema=ref, credentialSubject={"name": "A" * 11})
    result = verifier.verify_credential(long_name, now=NOW)
    rejected(result, "credential.schema_invalid")
    assert any(p.detail.get("path") == "credentialSubject/name" for p in result.problems)
    assert Verifier(Resolver(), schemas=False).verify_credential(long_name, now=NOW).verified
    unknown = di_credential(issuer, credentialSchema={"id": "https://elsewhere.example/s.json", "type": "JsonSchema"})
    rejected(verifier.verify_credential(unknown, now=NOW), "credential.schema_unknown")
    wrong_type = di_credential(issuer, credentialSchema={"id": SCHEMA_ID, "type": "JsonSchemaCredential"})
    rejected(verifier.verify_credential(wrong_type, now=NOW), "credential.schema_unknown")


def test_shipped_schema_registry_loads():
    by_id, _ = credential_module._schema_registry()
    assert all(isinstance(key, str) for key in by_id)


# ---- status ---------------------------------------------------------------------------------------------------------
class FakeStatus:
    def __init__(self, problems):
        self.problems, self.calls = problems, 0

    def check(self, document):
        self.calls += 1
        return list(self.problems)


def test_status_checked_only_for_otherwise_valid_credentials(issuer):
    status = FakeStatus([Problem("status.revoked", "revoked")])
    verifier = Verifier(Resolver(), status=status)
    rejected(verifier.verify_credential(di_credential(issuer), now=NOW), "status.revoked")
    assert status.calls == 1
    tampered = di_credential(issuer)
    tampered["id"] = "urn:uuid:other"
    rejected(verifier.verify_credential(tampered, now=NOW), "proof.signature_invalid")
    assert status.calls == 1
    assert Verifier(Resolver(), status=FakeStatus([])).verify_credential(di_credential(issuer), now=NOW).verified


# ---- presentations --------------------------------------------------------------------------------------------------
AUD = "https://api.example.org:443"
NONCE = "urn:cead:req:abc"


def jwt_vp(party: Party, credentials: list, signer: Party | None = None, **claims) -> str:
    """A VP JWT by ``party``; a claim given as None is left out."""
    signer = signer or party
    body = {"@context": [V2], "type": ["VerifiablePresentation"], "holder": party.did,
            "verifiableCredential": credentials, "iss": party.did, "aud": AUD, "nonce": NONCE,
            "iat": int(NOW.timestamp()), "exp": int(NOW.timestamp()) + 60, "jti": "urn:uuid:vp-1"}
    body.update(claims)
    return sign_jwt({k: v for k, v in body.items() if v is not None}, signer.key, signer.vm, typ="vp+jwt")


def enveloped(token: str) -> dict:
    return {"@context": [V2], "type": ["EnvelopedVerifiableCredential"], "id": "data:application/vc+jwt," + token}


def test_jwt_presentation_with_mixed_credentials(issuer, verifier):
    holder = Party()
    jwt_cred = sign_jwt(unsigned_credential(issuer.did), issuer.key, issuer.vm)
    p256 = Party(P256)
    entries = [enveloped(jwt_cred), sign_jwt(unsigned_credential(p256.did), p256.key, p256.vm), di_credential(issuer)]
    result = verifier.verify_presentation(jwt_vp(holder, entries), nonce=NONCE, audience=AUD, now=NOW)
    assert result.verified, result.problems
    assert (result.format, result.issuer, result.verification_method) == ("jwt", holder.did, holder.vm)
    assert [c.format for c in result.credentials] == ["jwt", "jwt", "ldp"]
    assert all(c.verified for c in result.credentials)
    assert result.credentials[0].document["issuer"] == issuer.did
    assert result.credentials[1].document["issuer"] == p256.did


def test_jwt_presentation_rejections(issuer, verifier):
    holder = Party()
    cred = sign_jwt(unsigned_credential(issuer.did), issuer.key, issuer.vm)
    vp = jwt_vp(holder, [cred])
    rejected(verifier.verify_presentation(vp, nonce="urn:cead:req:other", audience=AUD, now=NOW),
             "presentation.nonce_mismatch")
    rejected(verifier.verify_presentation(vp, nonce=NONCE, audience="https://evil.example:443", now=NOW),
             "presentation.audience_mismatch")
    rejected(verifier.verify_presentation(vp, nonce=NONCE, audience=AUD, now=NOW + timedelta(minutes=10)),
             "presentation.expired")
    rejected(verifier.verify_presentation(jwt_vp(holder, [cred], signer=Party()), now=NOW),
             "presentation.holder_mismatch")
    rejected(verifier.verify_presentation(jwt_vp(holder, [cred], iss="did:example:x"), now=NOW),
             "presentation.holder_mismatch")
    no_holder = jwt_vp(holder, [cred], holder=None)
    assert verifier.verify_presentation(no_holder, nonce=NONCE, audience=AUD, now=NOW).verified  # iss names it
    rejected(verifier.verify_presentation(jwt_vp(holder, [cred], holder=None, iss="did:example:x"), now=NOW),
             "presentation.holder_mismatch")
    bad_cred = cred[:-4] + ("AAAA" if cred[-4:] != "AAAA" else "AAAQ")
    result = verifier.verify_presentation(jwt_vp(holder, [bad_cred]), nonce=NONCE, audience=AUD, now=NOW)
    rejected(result, "presentation.credential_invalid")
    assert "jose.signature_invalid" in codes(result.credentials[0])
    rejected(verifier.verify_presentation(sign_jwt(unsigned_credential(issuer.did), issuer.key, issuer.vm),
                                          now=NOW), "jose.typ_mismatch")
    rejected(verifier.verify_presentation(jwt_vp(holder, [{"type": ["EnvelopedVerifiableCredential"],
                                                            "id": "data:text/plain,hi"}]), now=NOW),
             "presentation.credential_invalid")


def test_an_enveloped_presentation_is_verified_as_its_jwt(issuer, verifier):
    """VC 2.0 / VC-JOSE-COSE: EnvelopedVerifiablePresentation, id data:application/vp+jwt,<jwt>."""
    holder = Party()
    vp = jwt_vp(holder, [sign_jwt(unsigned_credential(issuer.did), issuer.key, issuer.vm)])
    envelope = {"@context": [V2], "type": "EnvelopedVerifiablePresentation", "id": "data:application/vp+jwt," + vp}
    result = verifier.verify_presentation(envelope, nonce=NONCE, audience=AUD, now=NOW)
    assert result.verified, result.problems
    assert (result.format, result.issuer) == ("jwt", holder.did) and result.credentials[0].verified
    rejected(verifier.verify_presentation(envelope, nonce="urn:cead:req:other", audience=AUD, now=NOW),
             "presentation.nonce_mismatch")
    for wrong in ("data:application/vc+jwt," + vp, "data:text/plain,hi", None):
        rejected(verifier.verify_presentation(dict(envelope, id=wrong), now=NOW), "presentation.malformed")


def test_presentation_key_must_be_authorised_for_authentication():
    did = "did:web:holder.example"
    key = PrivateKey.generate()
    doc = build_did_document(did, [("#k", key.public)], purposes=("assertionMethod",))
    holder = Party()
    holder.key, holder.did, holder.vm = key, did, did + "#k"
    result = Verifier(StaticResolver({did: doc})).verify_presentation(jwt_vp(holder, []), now=NOW)
    rejected(result, "did.vm_not_authorized")


def test_data_integrity_presentation(issuer, verifier):
    holder = Party()
    vp = {"@context": [V2], "type": ["VerifiablePresentation"], "holder": holder.did,
          "verifiableCredential": [di_credential(issuer)]}
    signed = add_proof(vp, holder.key, holder.vm, purpose="authentication", challenge=NONCE, domain=AUD,
                       created=NOW, expires=NOW + timedelta(minutes=1))
    result = verifier.verify_presentation(signed, challenge=NONCE, domain=AUD, now=NOW)
    assert result.verified, result.problems
    assert result.format == "ldp" and result.issuer == holder.did and result.credentials[0].verified
    rejected(verifier.verify_presentation(signed, challenge="urn:cead:req:x", domain=AUD, now=NOW),
             "presentation.nonce_mismatch")
    rejected(verifier.verify_presentation(signed, challenge=NONCE, domain="https://evil.example:443", now=NOW),
             "presentation.audience_mismatch")
    rejected(verifier.verify_presentation(signed, challenge=NONCE, domain=AUD, now=NOW + timedelta(minutes=7)),
             "presentation.expired")
    as_issuer = add_proof(vp, holder.key, holder.vm, purpose="assertionMethod", challenge=NONCE, created=NOW)
    rejected(verifier.verify_presentation(as_issuer, challenge=NONCE, now=NOW), "proof.purpose_mismatch")
    stranger = Party()
    not_holder = add_proof(vp, stranger.key, stranger.vm, purpose="authentication", created=NOW)
    rejected(verifier.verify_presentation(not_holder, now=NOW), "presentation.holder_mismatch")


def test_a_presentation_without_holder_is_held_by_its_signer(issuer, verifier):
    """VC DM 2.0: holder is optional. Without one, the holder is the DID whose authentication key signed the
    presentation (JWT iss, else the kid's DID; a Data Integrity proof's verificationMethod). A holder that is
    present and differs from the signer is still refused, and with no holder and no proof there is nobody."""
    holder = Party()
    vp = {"@context": [V2], "type": ["VerifiablePresentation"], "verifiableCredential": [di_credential(issuer)]}
    signed = add_proof(vp, holder.key, holder.vm, purpose="authentication", challenge=NONCE, domain=AUD,
                       created=NOW)
    result = verifier.verify_presentation(signed, challenge=NONCE, domain=AUD, now=NOW)
    assert result.verified, result.problems
    assert result.issuer == holder.did and result.credentials[0].verified
    token = jwt_vp(holder, [sign_jwt(unsigned_credential(issuer.did), issuer.key, issuer.vm)], holder=None, iss=None)
    result = verifier.verify_presentation(token, nonce=NONCE, audience=AUD, now=NOW)
    assert result.verified and result.issuer == holder.did, result.problems
    stranger = Party()
    rejected(verifier.verify_presentation(add_proof(dict(vp, holder=stranger.did), holder.key, holder.vm,
                                                    purpose="authentication", created=NOW), now=NOW),
             "presentation.holder_mismatch")
    unsigned = verifier.verify_presentation(vp, now=NOW)
    rejected(unsigned, "presentation.holder_mismatch")
    assert "proof.missing" in codes(unsigned) and unsigned.issuer is None
    forged = copy.deepcopy(signed)
    forged["verifiableCredential"] = []
    result = verifier.verify_presentation(forged, challenge=NONCE, domain=AUD, now=NOW)
    assert not result.verified and result.issuer is None


@pytest.mark.parametrize("bad", ["", "nope", "[]", 7, None, {"type": "VerifiablePresentation"}])
def test_malformed_presentations_never_raise(verifier, bad):
    result = verifier.verify_presentation(bad, now=NOW)
    assert not result.verified and result.problems


def test_too_many_credentials(verifier):
    holder = Party()
    result = verifier.verify_presentation(jwt_vp(holder, ["x"] * 65), now=NOW)
    rejected(result, "presentation.malformed")
