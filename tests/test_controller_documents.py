"""VC-JOSE-COSE key discovery through controller documents at https URLs (W3C Controlled Identifiers 1.0).

A real HTTPS server on 127.0.0.1 (test CA) serves the issuer's controller document; credentials whose kid is an
absolute URL into it, a relative #fragment, a JWK thumbprint (bare or as its URN) or a publicKeyJwk kid verify, and
Cead's issuer binding holds: the key must be listed, under the right relationship, in the issuer's own document.
"""
from __future__ import annotations

import json
import threading

import pytest
from flask import Flask, Response

from helpers_https import https_server
from issuer.keys import PrivateKey
from issuer.signing import add_proof, sign_jwt
from verifier.controller import THUMBPRINT_URN, jwk_thumbprint
from verifier.credential import Verifier
from verifier.did import Resolver
from verifier.http import Fetcher
from verifier.jose import verify_jwt
from verifier.keys import ED25519, P256, P384, P521, b64url
from verifier.results import CeadError

CONTEXT = ["https://www.w3.org/ns/credentials/v2"]


def credential(issuer: str, **extra) -> dict:
    return {"@context": CONTEXT, "type": ["VerifiableCredential"], "issuer": issuer,
            "credentialSubject": {"id": "did:example:subject", "name": "Test"}, **extra}


def jwk_vm(vm_id: str, key: PrivateKey, **extra) -> dict:
    return {"id": vm_id, "type": "JsonWebKey", "publicKeyJwk": {**key.public.to_jwk(), **extra}}


class Host:
    """Controller documents served over HTTPS on 127.0.0.1; ``docs[path] = document``; counts requests."""

    def __init__(self):
        self.docs: dict[str, dict] = {}
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()
        app = Flask(__name__)

        @app.route("/<path:path>")
        def serve(path):
            with self.lock:
                self.hits["/" + path] = self.hits.get("/" + path, 0) + 1
            doc = self.docs.get("/" + path)
            if doc is None:
                return Response("not found", status=404)
            return Response(json.dumps(doc), mimetype="application/json")
        self.app = app

    def add(self, path: str, keys: dict[str, PrivateKey], purposes: dict[str, list[str]] | None = None,
            **extra) -> str:
        """Publish a controller document at ``path`` (each key under ``purposes`` (default assertionMethod and
        authentication), ids relative); returns its URL (= its id)."""
        url = self.base + path
        purposes = purposes or {}
        doc = {"@context": ["https://www.w3.org/ns/cid/v1"], "id": url,
               "verificationMethod": [jwk_vm("#" + name, key) for name, key in keys.items()]}
        for name in keys:
            for purpose in purposes.get(name, ["assertionMethod", "authentication"]):
                doc.setdefault(purpose, []).append("#" + name)
        doc.update(extra)
        self.docs[path] = doc
        return url


@pytest.fixture(scope="module")
def host():
    host = Host()
    with https_server(host.app) as (base, ca):
        host.base, host.ca = base, ca
        yield host


def verifier(host, **fetcher) -> Verifier:
    return Verifier(Resolver(Fetcher(allow_private=True, ca_bundle=host.ca, **fetcher)))


def codes(result) -> set[str]:
    return {p.code for p in result.problems}


# ---- what verifies -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", [P256, P384, ED25519, P521])
@pytest.mark.parametrize("form", ["url", "relative", "thumbprint", "thumbprint-urn", "jwk-kid"])
def test_credentials_whose_kid_names_a_key_in_the_issuers_controller_document_verify(host, kind, form):
    key = PrivateKey.generate(kind)
    path = f"/issuers/{kind}-{form}"
    if form == "jwk-kid":
        url = host.base + path
        host.docs[path] = {"id": url, "verificationMethod": [jwk_vm(url + "#k1", key, kid="signing-2025")],
                           "assertionMethod": [url + "#k1"]}
    else:
        url = host.add(path, {"k1": key})
    kid = {"url": url + "#k1", "relative": "#k1", "thumbprint": jwk_thumbprint(key.public),
           "thumbprint-urn": THUMBPRINT_URN + jwk_thumbprint(key.public), "jwk-kid": "signing-2025"}[form]
    claims = credential(url) if form == "url" else credential(url, iss=url)
    result = verifier(host).verify_credential(sign_jwt(claims, key, kid))
    assert result.verified, result.problems
    assert result.issuer == url and result.verification_method == url + "#k1"


def test_thumbprint_is_rfc_7638():
    """RFC 8037 appendix A.3: the RFC 7638 thumbprint of its Ed25519 example key (RFC 7638's own is RSA)."""
    from verifier.keys import PublicKey
    key = PublicKey.from_jwk({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"})
    assert jwk_thumbprint(key) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_presentation_by_a_holder_identified_by_url(host):
    issuer_key, holder_key = PrivateKey.generate(P256), PrivateKey.generate(P384)
    issuer_url = host.add("/vp/issuer", {"k": issuer_key})
    holder_url = host.add("/vp/holder", {"auth": holder_key}, {"auth": ["authentication"]})
    vc = sign_jwt(credential(issuer_url), issuer_key, issuer_url + "#k")
    vp = {"@context": CONTEXT, "type": ["VerifiablePresentation"], "holder": holder_url, "nonce": "n-1",
          "verifiableCredential": [{"@context": CONTEXT, "type": "EnvelopedVerifiableCredential",
                                    "id": "data:application/vc+jwt," + vc}]}
    token = sign_jwt(vp, holder_key, jwk_thumbprint(holder_key.public), typ="vp+jwt")
    # a thumbprint kid needs iss; with it the holder's authentication key is found
    assert codes(verifier(host).verify_presentation(token, nonce="n-1")) == {"jose.kid_missing"}
    token = sign_jwt(dict(vp, iss=holder_url), holder_key, jwk_thumbprint(holder_key.public), typ="vp+jwt")
    result = verifier(host).verify_presentation(token, nonce="n-1")
    assert result.verified, result.problems
    assert result.issuer == holder_url and result.credentials[0].issuer == issuer_url
    # the holder's key is not an assertion key: it cannot issue
    stolen = sign_jwt(credential(holder_url), holder_key, holder_url + "#auth")
    assert codes(verifier(host).verify_credential(stolen)) == {"did.vm_not_authorized"}


def test_data_integrity_proofs_use_the_same_resolver(host):
    key = PrivateKey.generate(ED25519)
    url = host.add("/di/issuer", {"k": key})
    signed = add_proof(credential(url), key, url + "#k", cryptosuite="eddsa-jcs-2022")
    result = verifier(host).verify_credential(signed)
    assert result.verified, result.problems
    other = host.add("/di/other", {"k": key})
    assert codes(verifier(host).verify_credential(add_proof(credential(url), key, other + "#k",
                                                            cryptosuite="eddsa-jcs-2022"))) \
        == {"credential.issuer_mismatch"}


def test_documents_are_cached_and_failures_are_not(host):
    key = PrivateKey.generate(P256)
    url = host.add("/cache/issuer", {"k": key})
    token = sign_jwt(credential(url), key, url + "#k")
    v = verifier(host)
    assert v.verify_credential(token).verified and v.verify_credential(token).verified
    assert host.hits["/cache/issuer"] == 1
    missing = sign_jwt(credential(host.base + "/cache/later"), key, host.base + "/cache/later#k")
    assert codes(v.verify_credential(missing)) == {"controller.not_found"}
    host.add("/cache/later", {"k": key})
    assert v.verify_credential(missing).verified
    assert host.hits["/cache/later"] == 2


# ---- what is refused ---------------------------------------------------------------------------------------------
def test_a_key_in_another_controller_document_is_not_the_issuers(host):
    key = PrivateKey.generate(P256)
    victim = host.add("/bind/victim", {"k": PrivateKey.generate(P256)})
    mallory = host.add("/bind/mallory", {"k": key})
    # an absolute kid into Mallory's document, for a credential naming the victim as issuer
    forged = sign_jwt(credential(victim), key, mallory + "#k")
    assert codes(verifier(host).verify_credential(forged)) == {"credential.issuer_mismatch"}
    # a thumbprint looked up under iss: iss must be the issuer too
    forged = sign_jwt(credential(victim, iss=mallory), key, jwk_thumbprint(key.public))
    assert codes(verifier(host).verify_credential(forged)) == {"credential.issuer_mismatch"}
    # and under the victim's own document the thumbprint names nothing
    forged = sign_jwt(credential(victim, iss=victim), key, jwk_thumbprint(key.public))
    assert codes(verifier(host).verify_credential(forged)) == {"jose.kid_unknown"}


def test_a_document_listing_a_method_of_another_identifier_is_refused(host):
    key = PrivateKey.generate(P256)
    victim = host.add("/foreign/victim", {})
    mallory = host.base + "/foreign/mallory"
    # the victim's document id is the victim's URL; Mallory serves a document claiming to be the victim
    host.docs["/foreign/mallory"] = {"id": victim, "verificationMethod": [jwk_vm(victim + "#k", key)],
                                     "assertionMethod": [victim + "#k"]}
    token = sign_jwt(credential(mallory), key, mallory + "#k")
    assert codes(verifier(host).verify_credential(token)) == {"controller.document_invalid"}
    # the id is checked even when every method id is relative (Controlled Identifiers 1.0: the id is the URL)
    host.docs["/foreign/mallory"] = {"id": victim, "verificationMethod": [jwk_vm("#k", key)],
                                     "assertionMethod": ["#k"]}
    result = verifier(host).verify_credential(token)
    assert codes(result) == {"controller.document_invalid"} and "exactly the URL" in result.problems[0].message
    # a method id outside the document, or controlled by another identifier
    for vm in ({**jwk_vm(victim + "#k", key)}, {**jwk_vm("#k", key), "controller": victim}):
        host.docs["/foreign/mallory"] = {"id": mallory, "verificationMethod": [vm], "assertionMethod": [vm["id"]]}
        token = sign_jwt(credential(mallory, iss=mallory), key, jwk_thumbprint(key.public))
        with pytest.raises(CeadError) as info:
            verify_jwt(token, Resolver(Fetcher(allow_private=True, ca_bundle=host.ca)), "vc+jwt", "assertionMethod")
        assert info.value.code == "controller.document_invalid"
    host.docs["/foreign/mallory"] = {"id": mallory, "verificationMethod": [jwk_vm("#k", key), jwk_vm("#k", key)]}
    token = sign_jwt(credential(mallory), key, mallory + "#k")
    assert codes(verifier(host).verify_credential(token)) == {"controller.document_invalid"}


@pytest.mark.parametrize("kind", [P256, P384, ED25519])
def test_a_key_not_under_assertion_method_is_refused(host, kind):
    key = PrivateKey.generate(kind)
    url = host.add(f"/purpose/{kind}", {"auth": key}, {"auth": ["authentication"]})
    for kid, extra in ((url + "#auth", {}), (jwk_thumbprint(key.public), {"iss": url}), ("#auth", {"iss": url})):
        result = verifier(host).verify_credential(sign_jwt(credential(url, **extra), key, kid))
        assert codes(result) == {"did.vm_not_authorized"}, (kid, result.problems)
    retired = host.add(f"/purpose/retired-{kind}", {"old": key}, {"old": []})
    assert codes(verifier(host).verify_credential(sign_jwt(credential(retired), key, retired + "#old"))) \
        == {"did.vm_not_authorized"}
    assert codes(verifier(host).verify_credential(sign_jwt(credential(url), key, url + "#nope"))) \
        == {"did.vm_not_found"}


@pytest.mark.parametrize("kind", [P256, P384, ED25519])
def test_a_tampered_token_is_refused(host, kind):
    key = PrivateKey.generate(kind)
    url = host.add(f"/tamper/{kind}", {"k": key})
    token = sign_jwt(credential(url), key, url + "#k")
    header, payload, signature = token.split(".")
    forged = b64url(json.dumps(credential(url, credentialSubject={"id": "did:example:mallory"})).encode())
    assert codes(verifier(host).verify_credential(f"{header}.{forged}.{signature}")) == {"jose.signature_invalid"}
    other = PrivateKey.generate(kind)      # the right kid, another key
    assert codes(verifier(host).verify_credential(sign_jwt(credential(url), other, url + "#k"))) \
        == {"jose.signature_invalid"}


def test_plain_http_is_never_fetched():
    key = PrivateKey.generate(P256)
    hits = []
    app = Flask(__name__)

    @app.route("/issuer")
    def serve():
        hits.append(1)
        return {"id": "unused"}
    with https_server(app, tls=False) as (base, _):
        url = base + "/issuer"
        v = Verifier(Resolver(Fetcher(allow_http=True, allow_private=True)))   # even when the fetcher would
        for kid, extra in ((url + "#k", {}), ("#k", {"iss": url}), (jwk_thumbprint(key.public), {"iss": url})):
            result = v.verify_credential(sign_jwt(credential(url, **extra), key, kid))
            if kid.startswith("http"):
                assert codes(result) == {"controller.url_invalid"}, result.problems
                assert "https only" in result.problems[0].message
            else:   # relative kid or thumbprint: iss must be a DID or an https URL
                assert codes(result) == {"jose.kid_missing"}, result.problems
    assert hits == []


@pytest.mark.parametrize("kid,code", [
    ("urn:uuid:6f4c2a0e-0d51-4a8c-9d0e-3a1c2b4d5e6f", "jose.kid_unsupported"),
    ("ftp://issuer.example/keys#k", "jose.kid_unsupported"),
    ("https://issuer.example/keys", "controller.url_invalid"),         # no #fragment
    ("https://issuer.example/keys?k=1#k", "controller.url_invalid"),   # a query
    ("https://user:pw@issuer.example/keys#k", "controller.url_invalid"),
    ("https://issuer.example/keys#", "controller.url_invalid"),
    ("key 1", "jose.kid_unsupported"),
])
def test_unknown_kid_shapes_fail_closed_with_a_code(kid, code):
    key = PrivateKey.generate(P256)
    token = sign_jwt(credential("https://issuer.example/keys", iss="https://issuer.example/keys"), key, kid)
    result = Verifier(Resolver(Fetcher())).verify_credential(token)   # nothing here may reach the network
    assert codes(result) == {code}, result.problems
    assert "expected" in result.problems[0].message or "https" in result.problems[0].message


def test_network_failures_are_named(host):
    key = PrivateKey.generate(P256)
    url = host.add("/net/issuer", {"k": key})
    token = sign_jwt(credential(url), key, url + "#k")
    untrusted = Verifier(Resolver(Fetcher(allow_private=True))).verify_credential(token)
    assert codes(untrusted) == {"controller.unreachable"}
    assert untrusted.problems[0].detail["cause"] == "http.certificate_untrusted"
    assert codes(Verifier(Resolver(Fetcher(ca_bundle=host.ca))).verify_credential(token)) \
        == {"http.address_refused"}
    nothing = Verifier(Resolver()).verify_credential(token)   # no fetcher: never reaches the network
    assert codes(nothing) == {"controller.unreachable"} and "no fetcher" in nothing.problems[0].message
    host.docs["/net/broken"] = "not a document"
    broken = sign_jwt(credential(host.base + "/net/broken"), key, host.base + "/net/broken#k")
    assert codes(verifier(host).verify_credential(broken)) == {"controller.document_invalid"}


def test_other_signed_jwts_still_need_a_did_url(host):
    """OID4VCI key proofs, node events and feeds bind their signer by DID: a URL kid is refused there."""
    key = PrivateKey.generate(P256)
    url = host.add("/other/holder", {"k": key})
    from issuer.signing import JWT_TYPES
    typ = "openid4vci-proof+jwt"
    assert typ in JWT_TYPES   # the test must run: a skip here would let it pass without checking anything
    token = sign_jwt({"iss": url, "aud": "https://x.example"}, key, url + "#k", typ=typ)
    with pytest.raises(CeadError) as info:
        verify_jwt(token, Resolver(Fetcher(allow_private=True, ca_bundle=host.ca)), typ, "authentication")
    assert info.value.code == "jose.kid_missing"


def test_resolver_api_reads_controller_documents(host):
    key = PrivateKey.generate(P384)
    url = host.add("/api/issuer", {"k": key}, {"k": ["assertionMethod"]})
    resolver = Resolver(Fetcher(allow_private=True, ca_bundle=host.ca))
    doc = resolver.resolve(url)
    assert doc["verificationMethod"][0]["id"] == url + "#k" and doc["assertionMethod"] == [url + "#k"]
    doc["verificationMethod"].clear()                     # a copy: the cached document is untouched
    assert resolver.dereference(url + "#k")["controller"] == url
    vm, public = resolver.public_key_for(url + "#k", "assertionMethod")
    assert public == key.public and vm["type"] == "JsonWebKey"
    with pytest.raises(CeadError) as info:
        resolver.public_key_for(url + "#k", "authentication")
    assert info.value.code == "did.vm_not_authorized"
    # a resolver built without the controller-document part says so, and fetches nothing
    from verifier.did import KeyMethod
    hits = host.hits.get("/api/issuer")
    with pytest.raises(CeadError) as info:
        Resolver(methods=[KeyMethod()]).public_key_for(url + "#k", "assertionMethod")
    assert info.value.code == "did.method_unsupported" and host.hits.get("/api/issuer") == hits
