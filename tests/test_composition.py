"""Composition: a toy cryptosuite or DID method is one class in one place; the resolver reaches the network only
through a fetcher it is given; the clock comes from the verification context; one fetch per DID document or status
list is in flight at a time (single flight), also for 50 concurrent cold-start decisions; status lists are
revalidated with the issuer's ETag over pooled connections."""
from __future__ import annotations

import hashlib
import json
import ssl
import tempfile
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from datetime import datetime, timedelta, timezone

import pytest
import rfc8785
import trustme

from issuer.keys import PrivateKey
from issuer.signing import add_proof
from transfer_world import world
from verifier.compose import build_verifier
from verifier.context import VerificationContext
from verifier.credential import Verifier
from verifier.decision import Decider
from verifier.did import DidMethod, Resolver, build_did_document, default_methods, did_key
from verifier.http import FetchResult, Fetcher
from verifier.policy import parse_policy
from verifier.results import CeadError
from verifier.status import StatusLists, make_entry, make_list_credential, new_bitstring, set_bit
from verifier.suites import DEFAULT_SUITES, Cryptosuite

NOW = datetime(2027, 6, 1, 12, 0, tzinfo=timezone.utc)


def credential(issuer: str) -> dict:
    return {"@context": ["https://www.w3.org/ns/credentials/v2"], "id": "urn:uuid:0b7e0000-0000-4000-8000-00000000c0de",
            "type": ["VerifiableCredential"], "issuer": issuer, "validFrom": "2026-01-01T00:00:00Z",
            "credentialSubject": {"id": "did:example:subject", "name": "Fife Council"}}


# ---- a toy cryptosuite: one class, registered in a copy of the registry ------------------------------------------
class ToySuite(Cryptosuite):
    """JCS canonicalisation with SHA-512 (a made-up suite): everything a suite says, in one place."""
    name = "toy-jcs-sha512-2026"

    def canonicalize(self, document: dict) -> bytes:
        return rfc8785.dumps(document)

    def digest(self, data: bytes) -> bytes:
        return hashlib.sha512(data).digest()


def test_a_toy_cryptosuite_signs_and_verifies_through_the_registry():
    suites = DEFAULT_SUITES.with_suite(ToySuite())
    key = PrivateKey.generate()
    did = did_key(key.public)
    signed = add_proof(credential(did), key, f"{did}#{key.public.to_multikey()}", cryptosuite=ToySuite.name,
                       suites=suites)
    assert signed["proof"]["cryptosuite"] == ToySuite.name
    assert Verifier(suites=suites).verify_credential(signed, now=NOW).verified
    refused = Verifier().verify_credential(signed, now=NOW)          # the default registry does not know it
    assert [p.code for p in refused.problems] == ["proof.cryptosuite_unsupported"]
    tampered = {**signed, "credentialSubject": {"id": "did:example:subject", "name": "Someone Else"}}
    assert [p.code for p in Verifier(suites=suites).verify_credential(tampered, now=NOW).problems] == \
        ["proof.signature_invalid"]
    assert ToySuite.name not in DEFAULT_SUITES


# ---- a toy DID method: one class, given to the resolver --------------------------------------------------------
class ToyMethod(DidMethod):
    """did:toy:<name>, answered from a table (a made-up method)."""
    name = "toy"

    def __init__(self, keys: dict):
        self.keys = keys

    def resolve(self, did: str, msid: str) -> dict:
        if msid not in self.keys:
            raise CeadError("did.not_found", f"{did} is not in the table.")
        return build_did_document(did, [("#k", self.keys[msid])])


def test_a_toy_did_method_is_one_class_given_to_the_resolver():
    key = PrivateKey.generate()
    resolver = Resolver(methods=[*default_methods(), ToyMethod({"fife": key.public})])
    signed = add_proof(credential("did:toy:fife"), key, "did:toy:fife#k")
    assert Verifier(resolver).verify_credential(signed, now=NOW).verified
    assert [p.code for p in Verifier().verify_credential(signed, now=NOW).problems] == ["did.method_unsupported"]


def test_without_a_fetcher_did_web_never_reaches_the_network():
    calls = []
    resolver = Resolver()
    try:
        resolver.resolve("did:web:fife.example")
    except CeadError as exc:
        calls.append(exc.code)
    assert calls == ["did.unreachable"]


def test_the_clock_comes_from_the_verification_context():
    key = PrivateKey.generate()
    did = did_key(key.public)
    doc = {**credential(did), "validUntil": "2027-12-31T00:00:00Z"}
    signed = add_proof(doc, key, f"{did}#{key.public.to_multikey()}", created="2026-01-02T00:00:00Z")
    assert Verifier(context=VerificationContext(clock=lambda: NOW)).verify_credential(signed).verified
    late = Verifier(context=VerificationContext(clock=lambda: NOW + timedelta(days=400))).verify_credential(signed)
    assert "credential.expired" in [p.code for p in late.problems]


# ---- single flight -------------------------------------------------------------------------------------------
class SlowFetcher:
    """Counts fetches per URL; each takes a moment, so concurrent callers overlap."""
    timeout = 5.0

    def __init__(self, answer):
        self.answer = answer
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()

    def get(self, url):
        with self.lock:
            self.calls[url] = self.calls.get(url, 0) + 1
        time.sleep(0.2)
        return self.answer(url)


def _together(n, fn):
    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def run(i):
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as exc:   # collected, asserted below
            errors.append(exc)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    return results


def test_fifty_concurrent_resolutions_of_one_did_web_fetch_it_once():
    key = PrivateKey.generate()
    did = "did:web:fife.example"
    body = rfc8785.dumps(build_did_document(did, [("#k", key.public)]))
    fetcher = SlowFetcher(lambda url: FetchResult(body))
    resolver = Resolver(fetcher)
    docs = _together(50, lambda i: resolver.resolve(did))
    assert all(d["id"] == did for d in docs)
    assert fetcher.calls == {"https://fife.example/.well-known/did.json": 1}


class CountingFetcher:
    def __init__(self, inner):
        self.inner, self.timeout = inner, inner.timeout
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()

    def get(self, url, etag=None):
        with self.lock:
            self.calls[url] = self.calls.get(url, 0) + 1
        return self.inner.get(url, etag=etag)


def test_fifty_concurrent_cold_start_decisions_fetch_each_status_list_once():
    with world() as w:
        data = w.policy_data(caches={"status_lists": {"size": 64, "ttl": 300}})
        fetcher = CountingFetcher(Fetcher(allow_private=True, ca_bundle=w.ca_bundle))
        decider = Decider(parse_policy(data), fetcher=fetcher)
        requests_ = [w.request() for _ in range(50)]
        presentations = [w.present(r) for r in requests_]
        decisions = _together(50, lambda i: decider.decide(presentations[i], requests_[i]))
        assert all(d.allowed for d in decisions), [d.to_dict()["reasons"] for d in decisions if not d.allowed][:1]
        lists = {e["statusListCredential"] for c in w.bundle() for e in w.doc(c)["credentialStatus"]}
        assert len(lists) == 8 and fetcher.calls == {url: 1 for url in lists}


# ---- ETag revalidation over pooled connections -----------------------------------------------------------------
@contextmanager
def keep_alive_server(handler_cls):
    """An HTTPS server on 127.0.0.1 speaking HTTP/1.1 with keep-alive (Werkzeug's test server closes each one)."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_cls)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    with tempfile.TemporaryDirectory() as tmp:
        ca_path = str(Path(tmp) / "ca.pem")
        ca.cert_pem.write_to_path(ca_path)
        try:
            yield f"https://localhost:{server.server_port}", ca_path
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)


def test_status_lists_are_revalidated_with_the_etag_the_issuer_sends():
    issuer = PrivateKey.generate()
    did = did_key(issuer.public)
    kid = f"{did}#{issuer.public.to_multikey()}"
    bits = new_bitstring()
    set_bit(bits, 3, True)
    seen = {"full": 0, "not_modified": 0, "connections": set()}
    signed: dict = {}

    class Lists(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):   # noqa: N802
            seen["connections"].add(self.client_address)
            if self.headers.get("If-None-Match") == '"v1"':
                seen["not_modified"] += 1
                self.send_response(304)
                self.send_header("ETag", '"v1"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            seen["full"] += 1
            body = signed["list"].encode()
            self.send_response(200)
            self.send_header("ETag", '"v1"')
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with keep_alive_server(Lists) as (base, ca):
        url = f"{base}/status/1"
        signed["list"] = json.dumps(add_proof(make_list_credential(url, did, "revocation", bytes(bits),
                                                                   "2026-01-01T00:00:00Z"), issuer, kid))
        clock = [1000.0]
        lists = StatusLists(Fetcher(allow_private=True, ca_bundle=ca), verifier=build_verifier(status=False),
                            ttl=1, clock=lambda: clock[0])
        cred = {**credential(did), "credentialStatus": make_entry(url, 3, "revocation")}
        for _ in range(3):
            assert [p.code for p in lists.check(cred)] == ["status.revoked"]
            clock[0] += 2          # past the ttl: revalidate
        assert seen["full"] == 1 and seen["not_modified"] == 2
        assert len(seen["connections"]) == 1          # one keep-alive connection for all three


@pytest.mark.parametrize("module", ["verifier.gateway", "verifier.middleware", "verifier.decision",
                                    "verifier.receipts", "verifier.app"])
def test_each_public_verifier_module_imports_first_in_a_fresh_process(module):
    """A gateway operator's first line may be ``from verifier.gateway import decide_from_headers``: that failed
    with a circular import (verifier.decision re-exported the gateway's names) until they were looked up lazily."""
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
