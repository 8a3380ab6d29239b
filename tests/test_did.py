"""DID resolution (did:key, did:jwk, did:web over real HTTPS) and the careful HTTP fetcher."""
from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import base58
import pytest
from flask import Flask, Response

from issuer.keys import PrivateKey
from helpers_https import https_server
from verifier.did import (Resolver, build_did_document, did_jwk, did_key, did_web_from_url, did_web_url,
                          vm_public_key)
from verifier.http import Fetcher
from verifier.keys import ED25519, P256, PublicKey, b64url
from verifier.results import CeadError

VECTORS = Path(__file__).parent / "vectors" / "did-key"


def code_of(func, *args, **kw) -> str:
    with pytest.raises(CeadError) as info:
        func(*args, **kw)
    return info.value.code


# ---- did:key --------------------------------------------------------------------------------------------------------
def expected_vm(vector: dict) -> dict:
    doc = vector["didDocument"]
    return next(vm for vm in doc["verificationMethod"] if vm["id"] == doc["assertionMethod"][0])


def assert_same_key(key: PublicKey, vm: dict) -> None:
    """Compare with the vector's own encoding (base58 raw/compressed bytes, or a JWK)."""
    if "publicKeyBase58" in vm:
        assert key.raw == base58.b58decode(vm["publicKeyBase58"])
    else:
        assert key.to_jwk() == {k: v for k, v in vm["publicKeyJwk"].items() if k in ("kty", "crv", "x", "y")}


@pytest.mark.parametrize("file,prefix,kind,count", [("ed25519-x25519.json", "did:key:z6Mk", ED25519, 5),
                                                    ("nist-curves.json", "did:key:zDn", P256, 3)])
def test_did_key_vectors(file, prefix, kind, count):
    vectors = {did: v for did, v in json.loads((VECTORS / file).read_text()).items() if did.startswith(prefix)}
    assert len(vectors) == count
    resolver = Resolver()
    for did, vector in vectors.items():
        expected = expected_vm(vector)
        vm, key = resolver.public_key_for(expected["id"], "assertionMethod")
        assert vm["id"] == expected["id"] and vm["controller"] == did and key.kind == kind
        assert_same_key(key, expected)
        assert did_key(key) == did
        doc = resolver.resolve(did)
        assert doc["id"] == did
        for purpose in ("authentication", "capabilityInvocation", "capabilityDelegation"):
            assert doc[purpose] == vector["didDocument"][purpose]


def test_did_key_other_curves_unsupported():
    """secp256k1 stays unsupported (P-384 and P-521 are covered in tests/test_nist_curves.py)."""
    secp = next(iter(json.loads((VECTORS / "secp256k1.json").read_text())))
    assert code_of(Resolver().resolve, secp) == "did.method_unsupported"


@pytest.mark.parametrize("bad", ["", "did:", "did:key:", "did:KEY:z6Mk", "did:key:z6Mk x", "not a did", 42,
                                 "did:key:z" + "1" * 3000, "did:key:z0OIl", "did:key:abc"])
def test_invalid_dids(bad):
    assert code_of(Resolver().resolve, bad) == "did.invalid"


def test_did_key_must_be_base58btc_with_exact_key_bytes():
    """did:key spec ("Document Creation", "Signature Method Creation"): the method-specific id MUST be multibase
    base58btc ('z'), and the raw key MUST have the length of its multicodec (P-256: the 33-byte compressed point);
    otherwise the DID is invalid. The same key as a Multikey inside a did:web document is still read."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    ed = PrivateKey.generate().public
    p256 = PrivateKey.generate(P256).public
    resolver = Resolver()
    assert resolver.resolve(did_key(ed))["id"] == did_key(ed) and resolver.resolve(did_key(p256))
    as_base64url = "did:key:u" + b64url(b"\xed\x01" + ed.raw)                 # same key, multibase base64url
    assert code_of(resolver.resolve, as_base64url) == "did.invalid"
    uncompressed = p256.crypto().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    did_unc = "did:key:z" + base58.b58encode(b"\x80\x24" + uncompressed).decode()
    with pytest.raises(CeadError) as info:
        resolver.resolve(did_unc)
    assert info.value.code == "did.invalid" and "33-byte compressed" in info.value.message
    too_long = "did:key:z" + base58.b58encode(b"\xed\x01" + ed.raw + b"\x00").decode()
    assert code_of(resolver.resolve, too_long) == "did.invalid"
    # did:web documents keep the lenient Multikey reading (interop): base64url multibase is still accepted there
    assert vm_public_key({"id": "#a", "type": "Multikey",
                          "publicKeyMultibase": "u" + b64url(b"\xed\x01" + ed.raw)}) == ed


def test_unknown_method():
    assert code_of(Resolver().resolve, "did:example:123") == "did.method_unsupported"


def test_vm_lookup_errors():
    key = PrivateKey.generate().public
    did = did_key(key)
    resolver = Resolver()
    assert code_of(resolver.public_key_for, did + "#other", "assertionMethod") == "did.vm_not_found"
    assert code_of(resolver.public_key_for, did, "assertionMethod") == "did.invalid"  # no fragment
    assert code_of(resolver.public_key_for, did + "#" + did[8:], "keyAgreement") == "did.vm_not_authorized"
    assert resolver.dereference(did + "#" + did[8:])["publicKeyMultibase"] == key.to_multikey()


def test_a_key_lookup_is_remembered_only_for_the_document_it_was_read_from():
    """``public_key_for`` keeps what it found with the very document it read; when the method serves another
    document (a did:web document fetched again, a key rotated or retired) the lookup is made afresh."""
    from verifier.did import DidMethod

    old, new = PrivateKey.generate().public, PrivateKey.generate().public
    did = "did:toy:rotating"

    class Rotating(DidMethod):   # a toy DID method whose document changes between lookups
        name = "toy"
        keys = [old]

        def resolve(self, did_: str, msid: str) -> dict:
            return build_did_document(did_, [("#key-1", self.keys[0])],
                                      purposes=("assertionMethod",))   # a new document object every time

    resolver = Resolver(methods=[Rotating()])
    assert resolver.public_key_for(did + "#key-1", "assertionMethod")[1] == old
    assert resolver.public_key_for(did + "#key-1", "assertionMethod")[1] == old
    Rotating.keys = [new]
    assert resolver.public_key_for(did + "#key-1", "assertionMethod")[1] == new
    Rotating.keys = [old]
    assert code_of(resolver.public_key_for, did + "#key-1", "authentication") == "did.vm_not_authorized"


# ---- did:jwk --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", [ED25519, P256])
def test_did_jwk_round_trip(kind):
    key = PrivateKey.generate(kind).public
    did = did_jwk(key)
    assert did.startswith("did:jwk:")
    vm, found = Resolver().public_key_for(did + "#0", "assertionMethod")
    assert found == key and vm["type"] == "JsonWebKey2020" and vm["publicKeyJwk"] == key.to_jwk()


def test_did_jwk_rejects_private_key_and_garbage():
    private = PrivateKey.generate().private_jwk()
    did = "did:jwk:" + b64url(json.dumps(private).encode())
    assert code_of(Resolver().resolve, did) == "did.invalid"
    assert code_of(Resolver().resolve, "did:jwk:" + b64url(b"not json")) == "did.invalid"
    rsa = "did:jwk:" + b64url(json.dumps({"kty": "RSA", "n": "AQAB", "e": "AQAB"}).encode())
    assert code_of(Resolver().resolve, rsa) == "did.method_unsupported"


# ---- verification method types -------------------------------------------------------------------------------------
def test_verification_method_types():
    key = PrivateKey.generate().public
    p256 = PrivateKey.generate(P256).public
    assert vm_public_key({"id": "#a", "type": "Multikey", "publicKeyMultibase": key.to_multikey()}) == key
    assert vm_public_key({"id": "#a", "type": "Ed25519VerificationKey2020",
                          "publicKeyMultibase": key.to_multikey()}) == key
    assert vm_public_key({"id": "#a", "type": "Ed25519VerificationKey2018",
                          "publicKeyBase58": base58.b58encode(key.raw).decode()}) == key
    assert vm_public_key({"id": "#a", "type": "JsonWebKey", "publicKeyJwk": p256.to_jwk()}) == p256
    assert vm_public_key({"id": "#a", "type": "JsonWebKey2020", "publicKeyJwk": p256.to_jwk()}) == p256
    assert vm_public_key({"id": "#a", "type": "EcdsaSecp256r1VerificationKey2019", "publicKeyJwk": p256.to_jwk()}) \
        == p256
    assert code_of(vm_public_key, {"id": "#a", "type": "EcdsaSecp256r1VerificationKey2019",
                                   "publicKeyJwk": key.to_jwk()}) == "did.document_invalid"
    assert code_of(vm_public_key, {"id": "#a", "type": "RsaVerificationKey2018"}) == "did.vm_unsupported"
    assert code_of(vm_public_key, {"id": "#a", "type": "Ed25519VerificationKey2020",
                                   "publicKeyMultibase": p256.to_multikey()}) == "did.document_invalid"
    assert code_of(vm_public_key, {"id": "#a", "type": "Ed25519VerificationKey2018",
                                   "publicKeyBase58": "abc"}) == "did.document_invalid"
    assert code_of(vm_public_key, {"id": "#a", "type": "Multikey"}) == "did.document_invalid"


def test_build_did_document_lists_retired_keys_without_purposes():
    did = "did:web:example.org"
    new, old = PrivateKey.generate().public, PrivateKey.generate(P256).public
    doc = build_did_document(did, [("#key-2", new)], retired=[("#key-1", old)])
    assert doc["@context"] == ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"]
    assert [vm["id"] for vm in doc["verificationMethod"]] == [did + "#key-2", did + "#key-1"]
    for purpose in ("assertionMethod", "authentication", "capabilityInvocation"):
        assert doc[purpose] == [did + "#key-2"]
    assert "capabilityDelegation" not in doc
    only = build_did_document(did, [("#k", new)], purposes=("authentication",))
    assert "assertionMethod" not in only and only["authentication"] == [did + "#k"]


# ---- did:web URLs ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("did,url", [
    ("did:web:w3c-ccg.github.io", "https://w3c-ccg.github.io/.well-known/did.json"),
    ("did:web:w3c-ccg.github.io:user:alice", "https://w3c-ccg.github.io/user/alice/did.json"),
    ("did:web:example.com%3A3000", "https://example.com:3000/.well-known/did.json"),
    ("did:web:example.com%3A3000:user:alice", "https://example.com:3000/user/alice/did.json"),
])
def test_did_web_url(did, url):
    assert did_web_url(did) == url
    assert did_web_from_url(url) == did


def test_did_web_from_origin():
    assert did_web_from_url("https://Example.org") == "did:web:example.org"
    assert did_web_from_url("https://example.org:8443/orgs/acme") == "did:web:example.org%3A8443:orgs:acme"
    assert code_of(did_web_from_url, "http://example.org") == "did.invalid"


@pytest.mark.parametrize("bad", ["did:web:exa_mple..com", "did:web:example.com%2Fevil", "did:web:example.com%3A99999",
                                 "did:web:example.com:..", "did:web:example.com%40other.org", "did:key:z6Mk"])
def test_did_web_url_rejects(bad):
    assert code_of(did_web_url, bad) == "did.invalid"


# ---- did:web over HTTPS ---------------------------------------------------------------------------------------------
def port_of(base_url: str) -> int:
    return int(base_url.rsplit(":", 1)[1])


def web_did(base_url: str, *path: str) -> str:
    return ":".join([f"did:web:localhost%3A{port_of(base_url)}", *path])


@pytest.fixture
def served():
    """An HTTPS server whose files can be filled in after it started (the DID depends on the port)."""
    files: dict = {}
    with https_server(static=files) as (base, ca):
        yield base, files, Resolver(Fetcher(allow_private=True, ca_bundle=ca, timeout=2))


def test_did_web_domain_with_port(served):
    base, files, resolver = served
    did = web_did(base)
    key, old = PrivateKey.generate().public, PrivateKey.generate().public
    files["/.well-known/did.json"] = build_did_document(did, [("#key-2", key)], retired=[("#key-1", old)])
    vm, found = resolver.public_key_for(did + "#key-2", "assertionMethod")
    assert found == key and vm["controller"] == did
    assert code_of(resolver.public_key_for, did + "#key-1", "assertionMethod") == "did.vm_not_authorized"
    assert resolver.dereference(did + "#key-1")["publicKeyMultibase"] == old.to_multikey()
    assert code_of(resolver.dereference, did + "#key-3") == "did.vm_not_found"


def test_did_web_path_form_relative_and_embedded_methods(served):
    base, files, resolver = served
    did = web_did(base, "orgs", "acme")
    key, embedded = PrivateKey.generate(P256).public, PrivateKey.generate().public
    files["/orgs/acme/did.json"] = {
        "@context": ["https://www.w3.org/ns/did/v1"], "id": did,
        "verificationMethod": [{"id": "#k1", "type": "JsonWebKey", "controller": did, "publicKeyJwk": key.to_jwk()}],
        "assertionMethod": ["#k1", {"id": "#k2", "type": "Multikey", "controller": did,
                                    "publicKeyMultibase": embedded.to_multikey()}],
    }
    assert resolver.public_key_for(did + "#k1", "assertionMethod")[1] == key
    assert resolver.public_key_for(did + "#k2", "assertionMethod")[1] == embedded
    assert code_of(resolver.public_key_for, did + "#k2", "authentication") == "did.vm_not_authorized"
    assert resolver.resolve(did)["assertionMethod"][0] == did + "#k1"


def test_did_web_document_checks(served):
    base, files, resolver = served
    did = web_did(base)
    files["/.well-known/did.json"] = {"id": "did:web:evil.example", "verificationMethod": []}
    assert code_of(resolver.resolve, did) == "did.document_invalid"
    files["/.well-known/did.json"] = b"{not json"
    assert code_of(resolver.resolve, did) == "did.document_invalid"
    files["/.well-known/did.json"] = {"id": did, "verificationMethod": [{"id": "#x"}]}
    assert code_of(resolver.resolve, did) == "did.document_invalid"
    assert code_of(resolver.resolve, web_did(base, "nobody")) == "did.not_found"


def test_did_web_ambiguous_or_foreign_methods_are_refused(served):
    """Two keys under one id (which signed?) and a key controlled by another DID are not relied on."""
    base, files, cached = served
    fetcher = cached.fetcher
    did = web_did(base, "orgs", "twice")
    ours, theirs = PrivateKey.generate().public, PrivateKey.generate().public
    good = build_did_document(did, [("#k", ours)])
    vm = lambda key, **extra: {"id": "#k", "type": "Multikey", "publicKeyMultibase": key.to_multikey(), **extra}
    variants = {
        "in the list": dict(good, verificationMethod=good["verificationMethod"] + [vm(theirs)]),
        "list and embedded": dict(good, assertionMethod=[vm(theirs)]),
        "relative and absolute": dict(good, verificationMethod=good["verificationMethod"] +
                                      [dict(vm(theirs), id=did + "#k")]),
        "foreign controller": dict(good, verificationMethod=[vm(ours, controller="did:web:elsewhere.example")]),
    }
    for name, document in variants.items():
        files["/orgs/twice/did.json"] = document
        resolver = Resolver(fetcher, ttl=0)       # no cache between variants
        assert code_of(resolver.resolve, did) == "did.document_invalid", name
    files["/orgs/twice/did.json"] = good
    resolver = Resolver(fetcher, ttl=0)
    assert resolver.public_key_for(did + "#k", "assertionMethod")[1] == ours


def test_did_web_loopback_refused_unless_allowed(served):
    base, files, _ = served
    did = web_did(base)
    files["/.well-known/did.json"] = build_did_document(did, [("#k", PrivateKey.generate().public)])
    assert code_of(Resolver(Fetcher()).resolve, did) == "http.address_refused"
    # a certificate we do not trust
    assert code_of(Resolver(Fetcher(allow_private=True)).resolve, did) == "did.unreachable"


def test_did_web_unreachable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    resolver = Resolver(Fetcher(allow_private=True, timeout=2))
    assert code_of(resolver.resolve, f"did:web:localhost%3A{port}") == "did.unreachable"
    assert code_of(resolver.resolve, "did:web:no-such-host.invalid") == "did.unreachable"


def test_did_web_over_plain_http_fails():
    files: dict = {}
    with https_server(static=files, tls=False) as (base, _):
        did = web_did(base)
        files["/.well-known/did.json"] = build_did_document(did, [("#k", PrivateKey.generate().public)])
        # did:web always means https: a plain HTTP server cannot answer it
        assert code_of(Resolver(Fetcher(allow_private=True, timeout=2)).resolve, did) == "did.unreachable"


def test_did_web_cache_ttl_and_failures():
    hits = {"count": 0, "fail": False}
    app = Flask(__name__)
    now = [1000.0]

    @app.route("/<path:path>")
    def serve(path):
        hits["count"] += 1
        if hits["fail"]:
            return Response("down", status=503)
        did = web_did(base, *path.split("/")[:-1]) if path != ".well-known/did.json" else web_did(base)
        return build_did_document(did, [("#k", PrivateKey.generate().public)])

    with https_server(app) as (base, ca):
        lookups = []
        resolver = Resolver(Fetcher(allow_private=True, ca_bundle=ca), ttl=60, cache_size=2, clock=lambda: now[0],
                            on_cache=lookups.append)
        did = web_did(base)
        first = resolver.resolve(did)
        first["id"] = "mutated"  # callers get copies
        assert resolver.resolve(did)["id"] == did and hits["count"] == 1
        assert lookups == [False, True]               # told of each lookup: a miss, then a hit (for /metrics)
        now[0] += 61
        resolver.resolve(did)
        assert hits["count"] == 2
        # LRU bound: two other DIDs push the first out
        resolver.resolve(web_did(base, "a"))
        resolver.resolve(web_did(base, "b"))
        resolver.resolve(did)
        assert hits["count"] == 5
        # a failed fetch is not cached
        hits["fail"] = True
        assert code_of(resolver.resolve, web_did(base, "c")) == "did.unreachable"
        hits["fail"] = False
        assert resolver.resolve(web_did(base, "c"))["id"] == web_did(base, "c")
        assert hits["count"] == 7


# ---- the fetcher ----------------------------------------------------------------------------------------------------
def test_fetcher_scheme_and_address_rules():
    assert code_of(Fetcher().get, "http://example.org/x") == "http.scheme_refused"
    assert code_of(Fetcher().get, "file:///etc/passwd") == "http.scheme_refused"
    assert code_of(Fetcher().get, "https://user:pw@example.org/") == "http.scheme_refused"
    for url in ("https://127.0.0.1/", "https://localhost/", "https://10.1.2.3/", "https://169.254.169.254/",
                "https://[::1]/", "https://192.168.0.1/", "https://0.0.0.0/"):
        assert code_of(Fetcher().get, url) == "http.address_refused", url


def test_fetcher_checks_the_connected_address(monkeypatch):
    """DNS rebinding: even if the name looked public when checked, a loopback peer is refused."""
    monkeypatch.setattr(Fetcher, "_check_addresses", lambda self, url, host, port: None)
    with https_server(static={"/x": {"ok": True}}) as (base, ca):
        assert code_of(Fetcher(ca_bundle=ca).get, base + "/x") == "http.address_refused"
        assert Fetcher(allow_private=True, ca_bundle=ca).get(base + "/x").body == b'{"ok": true}'


def test_fetcher_plain_http_only_when_allowed():
    with https_server(static={"/x": {"ok": True}}, tls=False) as (base, _):
        assert code_of(Fetcher(allow_private=True).get, base + "/x") == "http.scheme_refused"
        result = Fetcher(allow_http=True, allow_private=True).get(base + "/x")
        assert result.status == 200 and json.loads(result.body) == {"ok": True}


def test_fetcher_limits():
    app = Flask(__name__)

    @app.route("/big")
    def big():
        return Response(b"x" * 2000)

    @app.route("/big-stream")
    def big_stream():
        return Response((b"x" * 500 for _ in range(10)), mimetype="application/octet-stream")

    @app.route("/slow")
    def slow():
        def trickle():
            for _ in range(20):
                yield b"x"
                time.sleep(0.1)
        return Response(trickle(), mimetype="application/octet-stream")

    @app.route("/moved")
    def moved():
        return Response("", status=302, headers={"Location": "/big"})

    @app.route("/error")
    def error():
        return Response("no", status=500)

    with https_server(app) as (base, ca):
        fetcher = Fetcher(allow_private=True, ca_bundle=ca, max_bytes=1000, timeout=0.8)
        assert code_of(fetcher.get, base + "/big") == "http.too_large"
        assert code_of(fetcher.get, base + "/big-stream") == "http.too_large"
        assert code_of(fetcher.get, base + "/moved") == "http.too_large"  # redirect followed, same rules
        err = pytest.raises(CeadError, fetcher.get, base + "/error").value
        assert err.code == "http.status" and err.detail["status"] == 500
        started = time.monotonic()
        assert code_of(fetcher.get, base + "/slow") == "http.timeout"
        assert time.monotonic() - started < 1.5
        ok = Fetcher(allow_private=True, ca_bundle=ca, max_bytes=5000).get(base + "/big")
        assert ok.body == b"x" * 2000
