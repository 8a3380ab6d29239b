"""P-384 and P-521 (ES384, ES512) beside Ed25519 and P-256: keys in every encoding, did:key vectors, VC-JOSE
credentials signed and verified, and a node that adds such a key and issues with it (VC-JOSE-COSE allows any
JOSE algorithm registered for the key; RFC 7518 s.3.4 fixes the hash and signature size per curve)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from issuer.keys import PrivateKey
from issuer.signing import sign_jwt
from verifier.did import Resolver, build_did_document, did_jwk, did_key
from verifier.jose import verify_jwt
from verifier.keys import CURVES, P384, P521, PublicKey
from verifier.results import CeadError

VECTORS = Path(__file__).parent / "vectors" / "did-key"


@pytest.mark.parametrize("kind,alg,sig_len", [("P-256", "ES256", 64), (P384, "ES384", 96), (P521, "ES512", 132)])
def test_keys_round_trip_every_encoding(kind, alg, sig_len):
    key = PrivateKey.generate(kind)
    public = key.public
    assert public.jose_alg == alg
    assert PublicKey.from_multikey(public.to_multikey()) == public
    assert PublicKey.from_jwk(public.to_jwk()) == public
    assert public.to_jwk()["crv"] == kind
    signature = key.sign(b"data")
    assert len(signature) == sig_len
    assert public.verify(signature, b"data")
    assert not public.verify(signature, b"other")
    assert not public.verify(signature[:-1], b"data")


def test_did_key_vectors_for_p384_and_p521():
    """The did:key specification's NIST-curve vectors: every P-384 (z82L) and P-521 (z2J9) DID resolves to the
    vector's key."""
    vectors = json.loads((VECTORS / "nist-curves.json").read_text())
    seen = set()
    for did, vector in vectors.items():
        if not did.startswith(("did:key:z82L", "did:key:z2J9")):
            continue
        vm = vector["didDocument"]["verificationMethod"][0] if "didDocument" in vector else None
        resolved = Resolver().resolve(did)
        method = resolved["verificationMethod"][0]
        _, key = Resolver().public_key_for(method["id"], "assertionMethod")
        assert key.kind in (P384, P521)
        seen.add(key.kind)
        assert did_key(key) == did
        if vm is not None and "publicKeyJwk" in vm:
            assert key.to_jwk() == {k: v for k, v in vm["publicKeyJwk"].items() if k in ("kty", "crv", "x", "y")}
    assert seen == {P384, P521}


@pytest.mark.parametrize("kind", [P384, P521])
def test_vc_jwt_signed_with_es384_es512_verifies(kind):
    key = PrivateKey.generate(kind)
    did = did_jwk(key.public)
    claims = {"@context": ["https://www.w3.org/ns/credentials/v2"], "type": ["VerifiableCredential"],
              "issuer": did, "credentialSubject": {"id": "did:example:subject"}}
    token = sign_jwt(claims, key, did + "#0")
    verified, kid = verify_jwt(token, Resolver(), "vc+jwt", "assertionMethod")
    assert verified == claims and kid == did + "#0"


def test_algorithm_must_match_the_curve():
    """An ES512 header over a P-384 key is refused: the key decides the algorithm, never the header."""
    import base64
    key = PrivateKey.generate(P384)
    did = did_jwk(key.public)
    token = sign_jwt({"@context": ["https://www.w3.org/ns/credentials/v2"], "type": ["VerifiableCredential"],
                      "issuer": did, "credentialSubject": {}}, key, did + "#0")
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    header["alg"] = "ES512"
    forged = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode() + "." + \
        ".".join(token.split(".")[1:])
    with pytest.raises(CeadError) as info:
        verify_jwt(forged, Resolver(), "vc+jwt", "assertionMethod")
    assert info.value.code == "jose.alg_refused"


def test_jwk_with_wrong_coordinate_size_refused():
    jwk = PrivateKey.generate(P521).public.to_jwk()
    jwk["x"] = jwk["x"][:-4]
    with pytest.raises(CeadError) as info:
        PublicKey.from_jwk(jwk)
    assert info.value.code in ("key.invalid", "encoding.invalid")


def test_did_web_document_with_p384_multikey():
    key = PrivateKey.generate(P384).public
    doc = build_did_document("did:web:example.org", [("#key-p384-1", key)])
    assert doc["verificationMethod"][0]["publicKeyMultibase"] == key.to_multikey()
    assert set(CURVES) == {"P-256", P384, P521}


@pytest.mark.parametrize("kind,alg", [(P384, "ES384"), (P521, "ES512")])
def test_node_adds_a_curve_and_issues_with_it_over_https(tmp_path, kind, alg):
    """A did:web node adds a P-384/P-521 key (`cead key rotate --kind`), publishes it in its DID document and
    signs a vc+jwt with it through the issuing API; a verifier resolving the node over HTTPS accepts it, and a
    node without such a key refuses the algorithm with the fix."""
    import requests
    from verifier.credential import Verifier
    from verifier.http import Fetcher
    from verifier.status import StatusLists
    from issuer_fixtures import certification, https_node, token

    with https_node(tmp_path / "h") as (node, base_url, ca_bundle):
        tok = token(node)
        body = {"credential": certification(node.did), "options": {"format": "vc+jwt", "alg": alg}}
        refused = requests.post(base_url + "/credentials/issue", json=body, verify=ca_bundle, timeout=10,
                                headers={"Authorization": f"Bearer {tok}"})
        assert refused.status_code == 400 and f"--kind {kind}" in refused.json()["error"]["message"]

        vm = node.rotate_key(kind)
        assert vm.endswith("#key-" + kind.replace("-", "").lower() + "-1")
        resp = requests.post(base_url + "/credentials/issue", json=body, verify=ca_bundle, timeout=10,
                             headers={"Authorization": f"Bearer {tok}"})
        assert resp.status_code == 201, resp.text
        token_ = resp.json()["verifiableCredential"]
        fetcher = Fetcher(allow_private=True, ca_bundle=ca_bundle)
        verifier = Verifier(resolver=Resolver(fetcher), status=StatusLists(fetcher, ttl=0))
        result = verifier.verify_credential(token_)
        assert result.verified, [p.to_dict() for p in result.problems]
        if isinstance(token_, dict):   # VC-API answers with an EnvelopedVerifiableCredential around the JWT
            token_ = token_["id"].split(",", 1)[1]
        header = json.loads(__import__("base64").urlsafe_b64decode(token_.split(".")[0] + "=="))
        assert header["alg"] == alg and header["kid"] == vm
