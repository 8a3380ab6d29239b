"""VC-JOSE-COSE compact JWS verification: algorithm allow-list, kid, typ, signatures, VC 1.1 JWT mapping."""
from __future__ import annotations

import json

import pytest
from jwcrypto import jwk, jws

from issuer.keys import PrivateKey
from issuer.signing import sign_jwt
from verifier.did import Resolver, did_key
from verifier.jose import to_document, verify_jwt
from verifier.keys import ED25519, P256, b64url, b64url_decode
from verifier.results import CeadError

CREDENTIAL = {
    "@context": ["https://www.w3.org/ns/credentials/v2"],
    "type": ["VerifiableCredential"],
    "credentialSubject": {"id": "did:example:subject", "name": "Test"},
}


def issuer(kind=ED25519):
    key = PrivateKey.generate(kind)
    did = did_key(key.public)
    return key, did, f"{did}#{did[8:]}"


def raw_jws(key: PrivateKey, header: dict, claims: dict) -> str:
    token = jws.JWS(json.dumps(claims).encode())
    token.add_signature(jwk.JWK(**key.private_jwk()), alg=header["alg"], protected=json.dumps(header))
    return token.serialize(compact=True)


def unsigned(header: dict, claims: dict, signature: bytes = b"sig") -> str:
    return ".".join(b64url(json.dumps(p).encode()) for p in (header, claims)) + "." + b64url(signature)


def code_of(token, typ="vc+jwt", purpose="assertionMethod") -> str:
    with pytest.raises(CeadError) as info:
        verify_jwt(token, Resolver(), typ, purpose)
    return info.value.code


@pytest.mark.parametrize("kind,alg", [(ED25519, "EdDSA"), (P256, "ES256")])
def test_round_trip(kind, alg):
    key, did, kid = issuer(kind)
    claims = dict(CREDENTIAL, issuer=did)
    token = sign_jwt(claims, key, kid)
    assert json.loads(b64url_decode(token.split(".")[0]))["alg"] == alg
    found, found_kid = verify_jwt(token, Resolver(), "vc+jwt", "assertionMethod")
    assert found == claims and found_kid == kid
    presentation = sign_jwt({"@context": CREDENTIAL["@context"], "type": ["VerifiablePresentation"]}, key, kid,
                            typ="vp+jwt")
    assert verify_jwt(presentation, Resolver(), "vp+jwt", "authentication")[1] == kid


@pytest.mark.parametrize("alg", ["none", "HS256", "RS256", "ES384", "PS256", None, ["EdDSA"]])
def test_refused_algorithms(alg):
    _, did, kid = issuer()
    assert code_of(unsigned({"alg": alg, "kid": kid, "typ": "vc+jwt"}, dict(CREDENTIAL, issuer=did))) \
        == "jose.alg_refused"


def test_alg_must_match_key_type():
    p256_key, _, _ = issuer(P256)
    _, ed_did, ed_kid = issuer(ED25519)
    token = raw_jws(p256_key, {"alg": "ES256", "kid": ed_kid, "typ": "vc+jwt"}, dict(CREDENTIAL, issuer=ed_did))
    assert code_of(token) == "jose.alg_refused"


def test_tampered_and_wrong_key():
    key, did, kid = issuer()
    token = sign_jwt(dict(CREDENTIAL, issuer=did), key, kid)
    header, payload, signature = token.split(".")
    forged = b64url(json.dumps(dict(CREDENTIAL, issuer=did, extra=1)).encode())
    assert code_of(f"{header}.{forged}.{signature}") == "jose.signature_invalid"
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    assert code_of(f"{header}.{payload}.{flipped}") == "jose.signature_invalid"
    other = PrivateKey.generate()
    assert code_of(sign_jwt(dict(CREDENTIAL, issuer=did), other, kid)) == "jose.signature_invalid"


def test_one_signature_has_one_encoding():
    """A base64url decoder that ignores stray bits, padding or foreign characters lets a token be re-encoded into
    a different string that still verifies: refused, so a JWT's bytes are its identity (wallet digests, replay)."""
    key, did, kid = issuer()
    token = sign_jwt(dict(CREDENTIAL, issuer=did), key, kid)
    header, payload, signature = token.split(".")
    assert verify_jwt(token, Resolver(), "vc+jwt", "assertionMethod")[1] == kid
    # 64 bytes -> 86 characters; the last carries 2 bits, so setting one of its 4 low bits changes no byte
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    stray = alphabet[alphabet.index(signature[-1]) | 1]
    for variant in (f"{header}.{payload}.{signature[:-1]}{stray}", f"{header}.{payload}.{signature}==",
                    f"{header}.{payload}.{signature[:20]}!{signature[20:]}",
                    f"{header}.{payload[:10]}+{payload[10:]}.{signature}", f"{header}=.{payload}.{signature}"):
        assert code_of(variant) == "jose.malformed", variant


def test_kid_rules():
    key, did, kid = issuer()
    claims = dict(CREDENTIAL, issuer=did)
    assert code_of(raw_jws(key, {"alg": "EdDSA", "typ": "vc+jwt"}, claims)) == "jose.kid_missing"
    assert code_of(raw_jws(key, {"alg": "EdDSA", "typ": "vc+jwt", "kid": "key-1"}, claims)) == "jose.kid_missing"
    assert code_of(raw_jws(key, {"alg": "EdDSA", "typ": "vc+jwt", "kid": did}, claims)) == "jose.kid_missing"
    # a relative kid is resolved against iss
    relative = raw_jws(key, {"alg": "EdDSA", "typ": "vc+jwt", "kid": "#" + did[8:]}, dict(claims, iss=did))
    assert verify_jwt(relative, Resolver(), "vc+jwt", "assertionMethod")[1] == kid
    assert code_of(raw_jws(key, {"alg": "EdDSA", "typ": "vc+jwt", "kid": "#" + did[8:]}, claims)) \
        == "jose.kid_missing"


def test_key_must_be_authorised_for_purpose():
    key, did, kid = issuer()
    token = sign_jwt(dict(CREDENTIAL, issuer=did), key, kid)
    assert code_of(token, purpose="keyAgreement") == "did.vm_not_authorized"
    assert code_of(sign_jwt(dict(CREDENTIAL, issuer=did), key, did + "#nope")) == "did.vm_not_found"


def test_typ_rules():
    key, did, kid = issuer()
    claims = dict(CREDENTIAL, issuer=did)
    assert code_of(sign_jwt(claims, key, kid, typ="vp+jwt")) == "jose.typ_mismatch"
    assert code_of(raw_jws(key, {"alg": "EdDSA", "kid": kid, "typ": "JWT"}, claims)) == "jose.typ_mismatch"
    assert code_of(raw_jws(key, {"alg": "EdDSA", "kid": kid, "typ": "vc+ld+json"}, claims)) == "jose.typ_mismatch"
    full = raw_jws(key, {"alg": "EdDSA", "kid": kid, "typ": "application/vc+jwt"}, claims)
    assert verify_jwt(full, Resolver(), "vc+jwt", "assertionMethod")[0] == claims
    legacy = raw_jws(key, {"alg": "EdDSA", "kid": kid, "typ": "JWT"}, {"iss": did, "vc": claims})
    assert verify_jwt(legacy, Resolver(), "vc+jwt", "assertionMethod")[0]["vc"] == claims
    assert code_of(legacy, typ="vp+jwt") == "jose.typ_mismatch"
    no_typ = raw_jws(key, {"alg": "EdDSA", "kid": kid}, {"iss": did, "vp": {"type": "VerifiablePresentation"}})
    assert verify_jwt(no_typ, Resolver(), "vp+jwt", "authentication")[0]["iss"] == did


def test_typ_may_be_absent_for_a_vc2_document_of_the_expected_kind():
    """VC-JOSE-COSE: typ is a SHOULD. Without it, a claim set that is a VC 2.0 credential (vc+jwt) or presentation
    (vp+jwt) is accepted; the wrong kind, a claim set without @context, or a present but wrong typ still fail."""
    key, did, kid = issuer()
    credential = dict(CREDENTIAL, issuer=did)
    untyped = raw_jws(key, {"alg": "EdDSA", "kid": kid}, credential)
    assert verify_jwt(untyped, Resolver(), "vc+jwt", "assertionMethod")[0] == credential
    assert code_of(untyped, typ="vp+jwt", purpose="authentication") == "jose.typ_mismatch"
    presentation = {"@context": CREDENTIAL["@context"], "type": "VerifiablePresentation", "holder": did}
    untyped_vp = raw_jws(key, {"alg": "EdDSA", "kid": kid}, presentation)
    assert verify_jwt(untyped_vp, Resolver(), "vp+jwt", "authentication")[0] == presentation
    assert code_of(untyped_vp) == "jose.typ_mismatch"
    no_context = {k: v for k, v in credential.items() if k != "@context"}
    assert code_of(raw_jws(key, {"alg": "EdDSA", "kid": kid}, no_context)) == "jose.typ_mismatch"
    assert code_of(raw_jws(key, {"alg": "EdDSA", "kid": kid, "typ": "vp+jwt"}, credential)) == "jose.typ_mismatch"


@pytest.mark.parametrize("token", [
    "", "abc", "a.b", "a.b.c.d", "..", "!!!.???.###", 42, None, ".b.c", "a..c", "a.b.", "a.b.c.", ".a.b.c",
    b64url(b"[1]") + "." + b64url(b"{}") + ".sig",
    b64url(b'{"alg":"EdDSA"') + "." + b64url(b"{}") + ".sig",
])
def test_malformed(token):
    assert code_of(token) == "jose.malformed"


def test_dots_finds_exactly_two():
    from verifier.jose import dots, is_compact
    assert dots("ab.cd.e") == (2, 5) and dots("..") == (0, 1)
    for text in ("", "abc", "a.b", "a.b.c.d", "....", "x" * 20000 + "." + "y" * 9000 + "." + "z" * 86 + "."):
        assert dots(text) is None and not is_compact(text)
    assert is_compact("x" * 20000 + "." + "y" * 9000 + "." + "z" * 86) and not is_compact(None)


def test_malformed_headers_and_claims():
    key, did, kid = issuer()
    claims = dict(CREDENTIAL, issuer=did)
    crit = unsigned({"alg": "EdDSA", "kid": kid, "typ": "vc+jwt", "crit": ["exp"], "exp": 1}, claims)
    assert code_of(crit) == "jose.malformed"
    assert code_of(sign_jwt(dict(claims, exp="tomorrow"), key, kid)) == "jose.malformed"
    assert code_of(raw_jws(key, {"alg": "EdDSA", "kid": kid, "typ": 5}, claims)) == "jose.malformed"


def test_to_document_vc11_mapping():
    claims = {"iss": "did:example:issuer", "sub": "did:example:subject", "nbf": 1704067200.0, "exp": 1735689600,
              "jti": "urn:uuid:1", "vc": {"@context": ["https://www.w3.org/2018/credentials/v1"],
                                         "type": ["VerifiableCredential"], "credentialSubject": {"name": "x"}}}
    doc = to_document(claims, "vc")
    assert doc["issuer"] == "did:example:issuer" and doc["id"] == "urn:uuid:1"
    assert doc["issuanceDate"] == "2024-01-01T00:00:00Z" and doc["expirationDate"] == "2025-01-01T00:00:00Z"
    assert doc["credentialSubject"] == {"name": "x", "id": "did:example:subject"}
    assert "vc" in claims and "issuer" not in claims["vc"]  # the claims are not modified
    vp = to_document({"iss": "did:example:holder", "nonce": "n", "vp": {"type": ["VerifiablePresentation"]}}, "vp")
    assert vp == {"type": ["VerifiablePresentation"], "holder": "did:example:holder"}
    with pytest.raises(CeadError) as info:
        to_document(dict(claims, sub="did:example:other", vc=dict(claims["vc"], credentialSubject={"id": "x"})), "vc")
    assert info.value.code == "jose.malformed"


def test_to_document_vc2_drops_registered_claims():
    claims = dict(CREDENTIAL, issuer="did:example:i", iss="did:example:i", iat=1, exp=2, jti="j", nonce="n")
    assert to_document(claims, "vc") == dict(CREDENTIAL, issuer="did:example:i")


@pytest.mark.parametrize("smuggled", ["vc", "vp"])
def test_vc2_claim_set_must_not_also_carry_a_vc11_document(smuggled):
    # A vc+jwt whose claim set is one credential must not carry another in `vc`/`vp` for a VC 1.1 reader.
    other = {"@context": ["https://www.w3.org/2018/credentials/v1"], "type": ["VerifiableCredential", "X"],
             "credentialSubject": {"id": "did:example:someone-else"}}
    claims = dict(CREDENTIAL, issuer="did:example:i", **{smuggled: other})
    with pytest.raises(CeadError) as info:
        to_document(claims, "vc")
    assert info.value.code == "jose.malformed"


def test_a_signed_vc2_jwt_smuggling_a_vc_claim_does_not_verify():
    from verifier.credential import Verifier
    key, did, kid = issuer()
    good = dict(CREDENTIAL, issuer=did)
    assert Verifier().verify_credential(sign_jwt(good, key, kid)).verified
    smuggling = dict(good, vc=dict(good, type=["VerifiableCredential", "DataSharingApprovalCredential"]))
    result = Verifier().verify_credential(sign_jwt(smuggling, key, kid))
    assert not result.verified and "jose.malformed" in [p.code for p in result.problems]


@pytest.mark.parametrize("decoder", ["_decode_fast", "_decode_standard"])
def test_b64url_decode_accepts_exactly_the_canonical_unpadded_encodings(decoder, monkeypatch):
    """Strict base64url (RFC 7515 s.2): a string is accepted iff it uses only A-Z a-z 0-9 - _, has no padding, and
    is the one encoding of its bytes (encoding them again gives it back); everything else is encoding.invalid.
    Both decoders give these answers: pybase64's (used when installed) and the standard library's (the fallback)."""
    import base64

    from verifier import keys
    # pybase64 is a dependency (pyproject.toml): its absence is an install defect, not a reason to skip
    assert decoder != "_decode_fast" or keys.pybase64 is not None, "pybase64 is not installed: run make install"
    monkeypatch.setattr(keys, "_decode", getattr(keys, decoder))
    import itertools
    import random

    def reference(text: str):
        if not text.isascii() or any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                                     for c in text) or len(text) % 4 == 1:
            return None
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return data if b64url(data) == text else None

    def decoded(text: str):
        try:
            return b64url_decode(text)
        except CeadError as exc:
            assert exc.code == "encoding.invalid"
            return None

    symbols = "AQBg9-_+/= .\né\x00"   # stray-bit characters (B, g, 9), the standard alphabet's own, padding, others
    for length in range(0, 5):
        for chars in itertools.product(symbols, repeat=length):
            text = "".join(chars)
            assert decoded(text) == reference(text), text
    rng = random.Random(12)
    for _ in range(2000):
        data = rng.randbytes(rng.randint(0, 40) if _ % 10 else rng.randint(40, 12000))   # and some long ones
        text = b64url(data)
        assert decoded(text) == data
        if text:
            i = rng.randrange(len(text))
            bad = text[:i] + rng.choice("+/= \n.é") + text[i + 1:]
            assert decoded(bad) is None, bad


def test_a_remembered_header_decides_nothing_but_its_own_reading():
    """A header segment is decoded once and remembered (verifier.jose._header); every token with it still has its
    own signature checked over its own header.payload, and a header that cannot be read is refused every time."""
    key, did, kid = issuer()
    token = sign_jwt(dict(CREDENTIAL, issuer=did), key, kid)
    header, payload, signature = token.split(".")
    assert verify_jwt(token, Resolver(), "vc+jwt", "assertionMethod")[1] == kid   # the header is now remembered
    other = b64url(json.dumps(dict(CREDENTIAL, issuer=did, id="urn:uuid:other")).encode())
    assert code_of(f"{header}.{other}.{signature}") == "jose.signature_invalid"
    assert verify_jwt(token, Resolver(), "vc+jwt", "assertionMethod")[1] == kid
    twice = b64url(b'{"alg":"EdDSA","alg":"EdDSA","kid":"' + kid.encode() + b'","typ":"vc+jwt"}')
    for _ in range(2):
        with pytest.raises(CeadError) as info:
            verify_jwt(f"{twice}.{payload}.{signature}", Resolver(), "vc+jwt", "assertionMethod")
        assert info.value.code == "json.duplicate_member"
