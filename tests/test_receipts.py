"""Receipts by default: every decision (allow and deny) is signed by the gateway, says what moved (hash and row
count of the bytes, counted by the gateway), is stored and logged by the provider node and kept by the recipient."""
from __future__ import annotations

import hashlib
import json

import pytest
import requests
from flask import Flask, request as flask_request

from issuer.evidence import receipts as store
from issuer.evidence import record
from issuer.evidence.log import decode_entry
from issuer_fixtures import ready_node
from helpers_https import https_server
from transfer_world import DATASET, Party, world
from verifier.binding import MANIFEST_HEADER, PRESENTATION_HEADER, encode_manifest, encode_presentation
from verifier.decision import RECEIPT_HEADER, TransferRequest
from verifier.did import Resolver
from verifier.middleware import CeadMiddleware
from verifier.receipts import ReceiptSigner, verify_receipt_with
from verifier.results import CeadError
from verifier.tlog import merkle
from wallet.client import keep_receipt

TABLE = "ageBand,localAuthority,outcome,count\n16-24,Fife,housed,12\n25-34,Fife,housed,40\n35-44,Fife,housed,9\n"


class _Holder:   # what the wallet's client needs of a wallet to keep a receipt: its database
    def __init__(self, engine):
        self.engine = engine


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from jwcrypto import jwk
    provider = ready_node(tmp_path_factory.mktemp("provider"))
    recipient = ready_node(tmp_path_factory.mktemp("recipient"))
    gateway = Party("gateway")   # a did:key the provider names for its gateway
    with world() as w:
        app = Flask("data-api")

        @app.route("/datasets/homelessness", methods=["GET", "POST"])
        def homelessness():
            if flask_request.method == "POST":
                return {"received": len(flask_request.get_data())}
            return TABLE, 200, {"Content-Type": "text/csv"}

        decider = w.decider()
        decider.receipt_signer = ReceiptSigner(jwk.JWK(**gateway.key.private_jwk()), kid=gateway.kid)
        decider.receipt_sink = store.sink(provider)
        app.wsgi_app = CeadMiddleware(app.wsgi_app, decider, dataset_for=lambda environ: DATASET)
        with https_server(app) as (base_url, ca_bundle):
            yield w, base_url, ca_bundle, provider, recipient, gateway


def send(env, *, method="GET", body=None, manifest=None, credentials=None):
    w, base_url, ca_bundle, *_ = env
    url = base_url + "/datasets/homelessness"
    manifest = manifest if manifest is not None else w.manifest()
    transfer = TransferRequest(method, url, body=body, manifest=manifest)
    headers = {MANIFEST_HEADER: encode_manifest(manifest),
               PRESENTATION_HEADER: encode_presentation(w.present(transfer, credentials))}
    response = requests.request(method, url, data=body, headers=headers, verify=ca_bundle, timeout=10)
    keep_receipt(_Holder(env[4].engine), response.headers, body, response.content)   # the recipient's copy
    return response


def test_allowed_pull_receipt_matches_the_bytes_that_moved(env):
    w, _, _, provider, recipient, gateway = env
    response = send(env)
    assert response.status_code == 200 and response.text == TABLE
    token = response.headers[RECEIPT_HEADER]
    claims = verify_receipt_with(token, Resolver(), payload=response.content)
    assert claims["decision"] == "allow" and claims["iss"] == gateway.did
    assert claims["payload"] == {"direction": "pull", "sha256": claims["payload"]["sha256"], "bytes": len(TABLE),
                                 "rows": 3}
    assert claims["approval"] == w.doc(w.approval)["id"] and claims["binding"].startswith("urn:")
    assert claims["manifestSha256"] and len(claims["credentials"]) == 4
    assert all(c["digest"].startswith("sha256-") for c in claims["credentials"])
    # a receipt for different bytes does not verify
    with pytest.raises(CeadError) as err:
        verify_receipt_with(token, Resolver(), payload=TABLE.replace("40", "41").encode())
    assert err.value.code == "receipt.payload_mismatch"
    # nor does a receipt signed by someone else than the DID it names
    with pytest.raises(CeadError) as err:
        verify_receipt_with(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"), Resolver())
    assert err.value.code == "receipt.invalid"
    # the provider stored the final receipt and logged it; the recipient kept its copy
    mine = store.get(provider.engine, claims["jti"])
    assert mine.side == "provider" and mine.token == token and mine.rows == 3 and mine.log_index is not None
    theirs = store.get(recipient.engine, claims["jti"])
    assert theirs.side == "recipient" and theirs.token == token
    log = record.log_of(provider)
    entry = decode_entry(log.entry(mine.log_index))
    assert entry["kind"] == "receipt" and entry["digests"]["payload"] == claims["payload"]["sha256"]
    merkle.verify_inclusion(merkle.leaf_hash(log.entry(mine.log_index)), mine.log_index, log.size(),
                            log.inclusion_proof(mine.log_index), log.root())


def test_push_receipt_counts_the_rows_sent(env):
    w, *_ = env
    response = send(env, method="POST", body=TABLE.encode(), manifest=w.manifest(rowCount=3))
    assert response.status_code == 200, response.text
    claims = verify_receipt_with(response.headers[RECEIPT_HEADER], Resolver(), payload=TABLE.encode())
    assert claims["payload"]["direction"] == "push" and claims["payload"]["rows"] == 3


def test_a_denial_has_a_receipt_too(env):
    w, _, _, provider, *_ = env
    before = record.log_of(provider).size()
    response = send(env, credentials=[w.approval, w.cert])    # the delegation chain is missing
    assert response.status_code == 403
    claims = verify_receipt_with(response.headers[RECEIPT_HEADER], Resolver())
    assert claims["decision"] == "deny" and claims["reasons"] and claims["payload"]["sha256"] is None
    stored = store.get(provider.engine, claims["jti"])
    assert stored.decision == "deny" and stored.log_index == before


def test_a_denial_notifies_the_providers_subscribers(env):
    """issuer.notifications: the provider node's subscribers asking for transfer.denied get one message per
    denial (queued when its receipt is stored), and none for an allowed transfer."""
    from issuer import notifications
    w, _, _, provider, *_ = env
    provider.config["notifications"] = [{"name": "ig", "url": "https://hooks.example/ig",
                                         "events": ["transfer.denied"]}]
    try:
        denied = send(env, credentials=[w.approval, w.cert])          # the delegation chain is missing
        receipt = verify_receipt_with(denied.headers[RECEIPT_HEADER], Resolver())["jti"]
        assert send(env).status_code == 200
        told = [n for n in notifications.outbox(provider) if n.event == "transfer.denied"]
        assert [n.subject for n in told] == [receipt]
        assert json.loads(told[0].body)["data"]["holder"] == w.recipient.did
    finally:
        del provider.config["notifications"]


def test_receipt_writer_commits_batches_and_logs_each_receipt_once(tmp_path):
    from types import SimpleNamespace
    from datetime import datetime, timezone
    from verifier.receipts import payload_evidence, seal
    node = ready_node(tmp_path / "provider")
    signer = store.signer_for(node)
    writer = store.ReceiptWriter(node, prove=True)
    log = record.log_of(node)
    before = log.size()
    decisions = []
    for i in range(20):
        decision = SimpleNamespace(allowed=True, reasons=[], relied_on=[], holder="did:web:r.example",
                                   approval_id="urn:uuid:a", method="GET", url="https://api.example/x",
                                   decided_at=datetime.now(timezone.utc), manifest={}, receipt=None,
                                   evidence={"direction": "pull"})
        seal(signer, decision, writer)                   # provisional: the response is not known yet
        decision.evidence["payload"] = payload_evidence(TABLE.encode(), "text/csv", "pull")
        seal(signer, decision, writer)                   # final, same jti
        decisions.append(decision)
    futures = [writer.submit(d.receipt) for d in decisions[:3]]   # the same receipts again: not logged twice
    proved = [f.result(30) for f in futures]
    writer.close()
    assert log.size() == before + 20                     # one entry per receipt, not per signature
    for row in proved:                                   # each with its inclusion proof, made in the batch
        merkle.verify_inclusion(merkle.leaf_hash(log.entry(row.log_index)), row.log_index, row.proof_size,
                                row.proof, log.root(row.proof_size))
    rows = store.listing(node.engine, side="provider")
    assert len(rows) == 20 and all(r.rows == 3 and r.log_index is not None for r in rows)
    assert {decode_entry(log.entry(r.log_index))["meta"]["receiptId"] for r in rows} == {r.id for r in rows}


def test_a_denied_push_records_the_offered_bytes_but_nothing_moved(env):
    w, *_ = env
    response = send(env, method="POST", body=TABLE.encode(), manifest=w.manifest(rowCount=3),
                    credentials=[w.approval, w.cert])    # the delegation chain is missing
    assert response.status_code == 403
    claims = verify_receipt_with(response.headers[RECEIPT_HEADER], Resolver())
    assert claims["decision"] == "deny"
    assert claims["payload"]["sha256"] is None and claims["payload"]["rows"] is None and claims["payload"]["bytes"] == 0
    assert claims["payload"]["offered"] == {"sha256": hashlib.sha256(TABLE.encode()).hexdigest(),
                                            "bytes": len(TABLE.encode())}


# ---- the receipt path on the deciding thread (signed directly, counted at memory speed) -------------------------

@pytest.mark.parametrize("kind", ["Ed25519", "P-256"])
def test_a_directly_signed_receipt_is_a_standard_jws_and_a_tampered_one_is_not(kind):
    """``ReceiptSigner.sign`` builds the compact JWS itself (not through the JOSE library): the JOSE library and
    Cead's verifier must both accept it, and refuse it once a claim or the signature is changed."""
    import base64
    from jwcrypto import jwk, jws
    from jwcrypto.common import JWException
    from issuer.keys import PrivateKey
    from verifier.did import did_key
    from verifier.receipts import RECEIPT_TYPE, receipt_header, verify_receipt
    key = PrivateKey.generate(kind)
    did = did_key(key.public)
    kid = f"{did}#{key.public.to_multikey()}"
    signer = ReceiptSigner(jwk.JWK(**key.private_jwk()), kid=kid)
    claims = {"v": 1, "iss": did, "decision": "allow", "reasons": [], "dataset": "https://d.example/ds/\u00e9",
              "payload": {"direction": "pull", "sha256": hashlib.sha256(TABLE.encode()).hexdigest(),
                          "bytes": len(TABLE), "rows": 3}}
    token = signer.sign(claims)
    assert receipt_header(token) == {"alg": "EdDSA" if kind == "Ed25519" else "ES256", "kid": kid,
                                     "typ": RECEIPT_TYPE}
    obj = jws.JWS()
    obj.deserialize(token)
    obj.verify(jwk.JWK(**key.public.to_jwk()))   # the JOSE library, on its own
    assert json.loads(obj.payload)["dataset"] == claims["dataset"]
    verified = verify_receipt_with(token, Resolver(), payload=TABLE.encode())
    assert verified["jti"].startswith("urn:uuid:") and verified["iat"] > 0 and verified["payload"]["rows"] == 3

    head, body, signature = token.split(".")
    forged = dict(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))), decision="deny")
    forged_body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    for bad in (f"{head}.{forged_body}.{signature}", f"{head}.{body}.{flipped}"):
        with pytest.raises(JWException):
            tampered = jws.JWS()
            tampered.deserialize(bad)
            tampered.verify(jwk.JWK(**key.public.to_jwk()))
        with pytest.raises(CeadError) as err:
            verify_receipt_with(bad, Resolver())
        assert err.value.code == "receipt.invalid"
    with pytest.raises(CeadError) as err:   # the right bytes only
        verify_receipt_with(token, Resolver(), payload=TABLE.encode() + b"x")
    assert err.value.code == "receipt.payload_mismatch"
    with pytest.raises(CeadError) as err:   # and the right key only
        verify_receipt(token, PrivateKey.generate(kind).public)
    assert err.value.code == "receipt.invalid"


def test_the_receipt_records_the_manifest_hash_the_binding_computed(env):
    """The binding already hashes the manifest (JCS); the receipt reuses that digest: it must be the manifest's."""
    import rfc8785
    from verifier.receipts import request_evidence
    w, base_url, *_ = env
    manifest = w.manifest()
    transfer = TransferRequest("GET", base_url + "/datasets/homelessness", manifest=manifest)
    expected = hashlib.sha256(rfc8785.dumps(manifest)).hexdigest()
    assert request_evidence(transfer)["manifestSha256"] == expected == transfer.manifest_sha256
    transfer.manifest = dict(manifest, purpose="https://other.example/purpose")   # replaced: hashed afresh
    assert request_evidence(transfer)["manifestSha256"] == hashlib.sha256(rfc8785.dumps(transfer.manifest)).hexdigest()
    assert TransferRequest("GET", base_url + "/x").manifest_sha256 is None
    unbindable = TransferRequest("GET", base_url + "/x", manifest={"n": float("nan")})
    assert request_evidence(unbindable)["binding"] is None and request_evidence(unbindable)["manifestSha256"] is None


@pytest.mark.parametrize("text", [
    "", "\n", "\n\n", "h", "h\n", "h\nr", "h\nr\n", "\nh\nr\n\n", "h\n\nr\n\n\nr2", "\ufeffh\nr\n", "\ufeff\nh\nr",
    " \n \n", "a,b\n1,2\n3,4\n", 'a,b\n"1\n2",3\n', "a,b\r\n1,2\r\n\r\n3,4", "a\rb\rc", "h\n\x00\n", 'h\n"open\n'])
@pytest.mark.parametrize("content_type", ["text/csv", "Text/CSV; charset=utf-8", "application/octet-stream"])
def test_row_count_fast_path_counts_as_the_csv_module_does(text, content_type):
    """Three ways to count, one answer: ASCII bytes counted as bytes, other UTF-8 decoded first (both fast when
    unquoted), and quoted CSV by the csv module."""
    import csv
    import io
    from verifier.receipts import count_rows
    rows = [r for r in csv.reader(io.StringIO(text.lstrip("\ufeff") if text.startswith("\ufeff") else text,
                                               newline="")) if r]
    assert count_rows(text.encode("utf-8"), content_type) == max(len(rows) - 1, 0)
    assert count_rows(("\u00e9" + text).encode("utf-8"), content_type) == \
        max(len([r for r in csv.reader(io.StringIO("\u00e9" + text, newline="")) if r]) - 1, 0)


def test_the_credentials_claim_is_shared_read_only_and_per_set():
    """The ``credentials`` entries of a set relied on are made once and shared by later receipts: read-only (a
    change raises instead of altering other receipts' claims), each receipt with its own list, and equal to the
    entries made afresh."""
    import copy
    from verifier.receipts import _credentials
    relied = ["urn:uuid:1 " + "a" * 64, "b" * 64, "did:web:x.example#vc 1 " + "c" * 64]
    first, second = _credentials(relied), _credentials(list(relied))
    assert first == second == [{"id": "urn:uuid:1", "digest": "a" * 64}, {"id": None, "digest": "b" * 64},
                               {"id": "did:web:x.example#vc 1", "digest": "c" * 64}]
    assert first is not second and first[0] is second[0]
    for change in (lambda e: e.__setitem__("id", "x"), lambda e: e.update(id="x"), lambda e: e.pop("id"),
                   lambda e: e.clear(), lambda e: e.setdefault("more", 1), lambda e: e.__delitem__("id")):
        with pytest.raises(TypeError):
            change(first[0])
    assert second[0] == {"id": "urn:uuid:1", "digest": "a" * 64}
    copied = copy.deepcopy(first)
    copied[0]["id"] = "y"   # a copy is an ordinary dict
    assert json.loads(json.dumps(first)) == first and _credentials([]) == []


def test_the_claims_encoder_writes_the_same_json_as_the_standard_library():
    """Receipts' claims are encoded with orjson when it is installed: the same JSON values, keys sorted."""
    from verifier import receipts as module
    claims = {"v": 1, "z": [1, "\u00e9\u2028", None, True], "a": {"y": 2.5, "b": "x\"\\\n"}, "m": 2 ** 53}
    encoded = module._claims_json(claims)
    assert isinstance(encoded, bytes) and json.loads(encoded) == claims
    assert list(json.loads(encoded)) == sorted(claims) and b" " not in encoded.replace(b"\\n", b"")


def test_receipt_ids_are_random_uuids_and_a_forked_worker_draws_its_own():
    """Receipt ids come from a pool of os.urandom blocks: version-4 UUIDs, never repeated, and a forked worker (a
    pre-forking server) must not hand out the blocks its parent will (the pool is emptied in the child)."""
    import os
    import uuid
    from verifier.receipts import new_jti
    ids = {new_jti() for _ in range(600)}   # more than one refill
    assert len(ids) == 600
    assert all(uuid.UUID(i.removeprefix("urn:uuid:")).version == 4 for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:   # pragma: no cover  (the child)
        os.write(write, new_jti().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    os.close(read)
    os.close(write)
    assert child.startswith("urn:uuid:") and child != new_jti()
