"""The W3C vc-jose-cose test suite's JOSE verification inputs (tests/vectors/vc-jose-cose, from
w3c/vc-jose-cose-test-suite@ff6be51), verified by Cead with the issuer's controller document served over real HTTPS.

The suite's tokens name their key by a JWK thumbprint ``kid`` with ``iss`` ``https://example.issuer/vc-jose-cose``
and hand each implementation one verification method (its ``key_file``). Here that method is published in the
issuer's controller document on 127.0.0.1; the fetcher passed to the resolver is a real ``Fetcher`` (test CA,
loopback allowed) whose only difference is that it connects to the loopback server for the host
``example.issuer``: what is fetched, checked and cached is what a verifier on the Internet would see.

Cead's answers differ from the suite's in three places, each for a reason kept on purpose (docs/interop.md):
the credentials carry ``iat`` as a date string where RFC 7519 requires a NumericDate (jose.malformed);
the presentations expired in December 2024; and test 7 embeds SD-JWT and COSE credentials, which Cead does not read.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from helpers_https import https_server
from verifier.controller import jwk_thumbprint
from verifier.credential import Verifier
from verifier.did import Resolver
from verifier.http import Fetcher
from verifier.keys import PublicKey

VECTORS = Path(__file__).parent / "vectors" / "vc-jose-cose"
ISSUER = "https://example.issuer/vc-jose-cose"


def vm(name: str) -> dict:
    return json.loads((VECTORS / f"vm-{name}.json").read_text())


def controller_document(*names: str) -> dict:
    methods = [vm(n) for n in names]
    return {"@context": ["https://www.w3.org/ns/cid/v1"], "id": ISSUER, "verificationMethod": methods,
            "assertionMethod": [m["id"] for m in methods], "authentication": [m["id"] for m in methods]}


class LoopbackFetcher(Fetcher):
    """A real Fetcher that reaches https://example.issuer at the loopback test server."""

    def __init__(self, base: str, **kw):
        super().__init__(**kw)
        self.base = base

    def get(self, url, *args, **kw):
        return super().get(url.replace("https://example.issuer", self.base, 1), *args, **kw)


def verify(vector: str, key_file: str):
    token = (VECTORS / vector).read_text().strip()
    with https_server(static={"/vc-jose-cose": controller_document(key_file)}) as (base, ca):
        verifier = Verifier(Resolver(LoopbackFetcher(base, allow_private=True, ca_bundle=ca)))
        if vector.startswith("presentation"):
            return verifier.verify_presentation(token)
        return verifier.verify_credential(token)


def codes(result) -> set[str]:
    return {p.code for p in result.problems}


def test_the_suites_kids_are_rfc_7638_thumbprints_of_its_keys():
    for name in ("p256", "p384", "p521", "ed25519"):
        method = vm(name)
        jwk = {k: v for k, v in method["publicKeyJwk"].items() if k not in ("kid", "alg")}
        assert jwk_thumbprint(PublicKey.from_jwk(jwk)) == method["publicKeyJwk"]["kid"]


@pytest.mark.parametrize("vector,key_file", [("credential-jose-minimal.txt", "p256"),            # test 6
                                             ("credential-issuer-match-signed.txt", "ed25519")])  # test 8
def test_thumbprint_kid_and_signature_are_accepted_but_a_string_iat_is_not(vector, key_file):
    result = verify(vector, key_file)
    # the date checks come after the key was found and the signature verified (verifier/jose.py)
    assert codes(result) == {"jose.malformed"} and "iat" in result.problems[0].message
    token = (VECTORS / vector).read_text().strip()
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["iss"] == claims["issuer"] == ISSUER and isinstance(claims["iat"], str)
    forged = base64.urlsafe_b64encode(json.dumps(dict(claims, iat=1262373804)).encode()).rstrip(b"=").decode()
    with https_server(static={"/vc-jose-cose": controller_document(key_file)}) as (base, ca):
        verifier = Verifier(Resolver(LoopbackFetcher(base, allow_private=True, ca_bundle=ca)))
        assert codes(verifier.verify_credential(f"{header}.{forged}.{signature}")) == {"jose.signature_invalid"}


@pytest.mark.parametrize("vector,key_file,expected", [
    ("credential-jose-unknown-extensions.txt", "ed25519", {"jose.kid_unknown"}),     # 9: signed with another key
    ("credential-jose-bad-signature.txt", "ed25519", {"jose.signature_invalid"}),    # 12
    ("credential-jose-bad-media-type.txt", "ed25519", {"jose.typ_mismatch"}),        # 13
    ("presentation-jose-bad-media-type.txt", "ed25519", {"jose.typ_mismatch"}),      # 14
    ("credential-jose-vc-vp-claims.txt", "ed25519", {"jose.malformed"}),             # 15
])
def test_negative_vectors_are_refused(vector, key_file, expected):
    assert codes(verify(vector, key_file)) == expected


def test_presentation_vectors():
    # 16: an EnvelopedVerifiableCredential that is no credential (and the presentation has expired)
    bad = verify("presentation-jose-bad-credential.txt", "ed25519")
    assert codes(bad) == {"presentation.expired", "presentation.credential_invalid"}
    assert [p.code for p in bad.credentials[0].problems] == ["credential.malformed"]
    # 7: the holder's ES384 thumbprint kid resolves and its signature verifies; the presentation expired in 2024,
    # its SD-JWT and COSE credentials are not read, and its JOSE credential is signed with a key (P-256) the
    # document given for this test does not list
    multiple = verify("presentation-jose-multiple.txt", "p384")
    assert codes(multiple) == {"presentation.expired", "presentation.credential_invalid"}
    assert multiple.issuer == ISSUER and multiple.verification_method == ISSUER + "#key-2"
    assert [[p.code for p in c.problems] for c in multiple.credentials] \
        == [["jose.kid_unknown"], ["credential.malformed"], ["credential.malformed"]]
