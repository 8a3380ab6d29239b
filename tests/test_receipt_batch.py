"""Batched receipt signatures (verifier.receipt_batch): receipts sealed at the same moment share one signature over a
Merkle root; a lone receipt is the plain receipt it always was. Shown here: a batch of one is byte for byte a plain
receipt; threads held at the signer (a gate that waits until the others are pending, never a sleep) get batched
receipts sharing one signature that all verify; tampering with a batched receipt's claims, path, index, signer or
payload fails with a ``receipt.*`` code; a failing signature fails every receipt of its batch and leaves nobody
waiting; every reader (the spool and sequencer, the node's store and log, the wallet's copy, ``cead receipts``)
takes both forms; and through a real HTTPS gateway, concurrent pulls get batched receipts that verify against
the bytes that moved."""
from __future__ import annotations

import base64
import hashlib
import json
import threading
import time

import pytest
import requests
from flask import Flask
from jwcrypto import jwk

from issuer.evidence import receipts as store
from issuer.evidence import record
from issuer.evidence.log import decode_entry
from issuer.evidence.spool import MAX_LINE, ReceiptSpool, drain
from issuer.keys import PrivateKey
from issuer_fixtures import ready_node
from helpers_https import https_server
from transfer_world import DATASET, Party, world
from verifier import receipt_batch
from verifier.binding import (MANIFEST_HEADER, PRESENTATION_HEADER, RECEIPT_FORMS_HEADER, encode_manifest,
                              encode_presentation)
from verifier.decision import RECEIPT_HEADER, TransferRequest
from verifier.did import Resolver, did_key
from verifier.middleware import CeadMiddleware
from verifier.receipts import (BATCH_TYPE, RECEIPT_TYPE, ReceiptSigner, receipt_form, receipt_header, relied_on,
                               unverified_receipt_claims, verify_receipt, verify_receipt_with)
from verifier.results import CeadError
from verifier.tlog import merkle
from wallet.client import _receipt_hashes_pull, keep_receipt

TABLE = "ageBand,localAuthority,outcome,count\n16-24,Fife,housed,12\n25-34,Fife,housed,40\n"
DEADLINE = 30   # seconds a gate waits for the other threads before the test fails (never reached when it works)


class GatedSigner(ReceiptSigner):
    """A real receipt signer whose first signature waits until ``hold`` other receipts are pending behind it, so
    that they must form one batch (the timing is controlled, not hoped for). ``fail_batch``: the batch signature
    raises, as a broken key or HSM would."""

    def __init__(self, key, kid, *, hold: int, fail_batch: bool = False):
        super().__init__(key, kid)
        self.hold, self.fail_batch, self.gated = hold, fail_batch, False

    def _sign_bytes(self, claims_json):
        if not self.gated:
            self.gated = True
            deadline = time.monotonic() + DEADLINE
            while len(self._group._pending) < self.hold:   # the others queue up behind this signature
                assert time.monotonic() < deadline, "the other threads never reached the signer"
                time.sleep(0.001)
        return super()._sign_bytes(claims_json)

    def _sign_batch(self, bodies):
        if self.fail_batch:
            raise RuntimeError("the signing key is unavailable")
        return super()._sign_batch(bodies)


def _key_and_kid(kind="Ed25519"):
    key = PrivateKey.generate(kind)
    did = did_key(key.public)
    return key, did, f"{did}#{key.public.to_multikey()}"


def _claims(did, i):
    return {"v": 1, "iss": did, "decision": "allow", "reasons": [], "jti": f"urn:uuid:00000000-0000-4000-8000-{i:012d}",
            "credentials": [{"id": f"urn:uuid:c{i}", "digest": "sha256-" + "A" * 43}],
            "payload": {"direction": "pull", "sha256": hashlib.sha256(f"{TABLE}{i}".encode()).hexdigest(),
                        "bytes": len(TABLE) + len(str(i)), "rows": 2}}


def _sign_at_once(signer, claims_list):
    """Each claims set sealed on its own thread, all at once; returns the tokens (or exceptions) in order."""
    out = [None] * len(claims_list)

    def run(i):
        try:
            out[i] = signer.sign_receipt(claims_list[i])
        except BaseException as exc:   # noqa: BLE001  (asserted by the caller)
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(claims_list))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
    assert not any(t.is_alive() for t in threads), "a thread is still waiting for its receipt"
    return out


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture
def batch():
    """Seven receipts sealed at once behind a held signature: one plain (the first, signed alone) and six batched
    under one signature."""
    key, did, kid = _key_and_kid()
    signer = GatedSigner(jwk.JWK(**key.private_jwk()), kid, hold=6)
    claims = [_claims(did, i) for i in range(7)]
    tokens = _sign_at_once(signer, claims)
    return key, did, kid, signer, claims, tokens


def test_a_lone_receipt_is_the_plain_receipt_byte_for_byte():
    key, did, kid = _key_and_kid()
    signer = ReceiptSigner(jwk.JWK(**key.private_jwk()), kid)
    claims = dict(_claims(did, 1), iat=1_800_000_000)
    token = signer.sign_receipt(claims)
    assert token == signer.sign(claims) == ReceiptSigner(jwk.JWK(**key.private_jwk()), kid, batch=False) \
        .sign_receipt(claims)   # Ed25519 is deterministic: the same bytes as an unbatched signer's
    assert token.count(".") == 2 and "~" not in token
    assert receipt_header(token) == {"alg": "EdDSA", "kid": kid, "typ": RECEIPT_TYPE}
    assert receipt_form(token) == {"form": "plain"}
    assert verify_receipt_with(token, Resolver()) == claims
    assert signer.batches == (1, 1)


def test_receipts_sealed_at_once_share_one_signature_and_all_verify(batch):
    key, did, kid, signer, claims, tokens = batch
    assert all(isinstance(t, str) for t in tokens), tokens
    plain = [t for t in tokens if "~" not in t]
    batched = [t for t in tokens if "~" in t]
    assert len(plain) == 1 and len(batched) == 6            # the first alone; the six held behind it, together
    assert len({t.split("~")[0] for t in batched}) == 1        # one signature covers the six
    assert signer.batches == (2, 7)
    header = receipt_header(batched[0])
    assert header == {"alg": "EdDSA", "kid": kid, "typ": BATCH_TYPE}
    statement = json.loads(_unb64(batched[0].split("~")[0].split(".")[1]))
    assert statement["size"] == 6 and statement["iss"] == did and len(_unb64(statement["root"])) == 32
    for token, expected in zip(tokens, claims):   # each thread got the receipt for its own claims
        got = verify_receipt_with(token, Resolver())
        assert {k: got[k] for k in expected} == expected and got["iat"] > 0
        assert verify_receipt(token, key.public) == got == unverified_receipt_claims(token)
        body = {k: v for k, v in got.items()}
        assert verify_receipt_with(token, Resolver(), payload=f"{TABLE}{claims.index(expected)}".encode()) == body
    forms = sorted(receipt_form(t)["index"] for t in batched)
    assert forms == list(range(6)) and {receipt_form(t)["size"] for t in batched} == {6}
    # the claims are carried as the exact bytes hashed into the leaf; the path leads to the signed root
    for token in batched:
        _, claims_b64, proof = token.split("~")
        index, path = proof.split(".")
        path = _unb64(path)
        merkle.verify_inclusion(merkle.leaf_hash(_unb64(claims_b64)), int(index), 6,
                                [path[i:i + 32] for i in range(0, len(path), 32)], _unb64(statement["root"]))
    # a batched receipt names only hashes of the others, never their claims
    for token in batched:
        for other in claims:
            if other["jti"] != unverified_receipt_claims(token)["jti"]:
                assert other["jti"].encode() not in _unb64(token.split("~")[1])
                assert other["jti"] not in token


def _tamper_claims(token, **changes):
    jws_part, claims_b64, proof = token.split("~")
    claims = dict(json.loads(_unb64(claims_b64)), **changes)
    return f"{jws_part}~{_b64(json.dumps(claims, separators=(',', ':'), sort_keys=True).encode())}~{proof}"


def test_a_tampered_batched_receipt_fails_with_a_receipt_error(batch):
    key, did, kid, signer, claims, tokens = batch
    batched = sorted((t for t in tokens if "~" in t), key=lambda t: receipt_form(t)["index"])
    token = batched[2]
    jws_part, claims_b64, proof = token.split("~")
    index, path = proof.split(".")
    hashes = _unb64(path)
    other = batched[3].split("~")

    def code(bad, **kw):
        with pytest.raises(CeadError) as err:
            verify_receipt_with(bad, Resolver(), **kw)
        return err.value.code

    # claims altered (the decision, or the payload hash) no longer lead to the signed root
    assert code(_tamper_claims(token, decision="deny")) == "receipt.proof_invalid"
    assert code(_tamper_claims(token, payload={"direction": "pull", "sha256": "00" * 32, "bytes": 1,
                                               "rows": 1})) == "receipt.proof_invalid"
    # another receipt's claims under this receipt's path, a wrong path, a wrong index
    assert code(f"{jws_part}~{other[1]}~{proof}") == "receipt.proof_invalid"
    flipped = bytes([hashes[0] ^ 1]) + hashes[1:]
    assert code(f"{jws_part}~{claims_b64}~{index}.{_b64(flipped)}") == "receipt.proof_invalid"
    assert code(f"{jws_part}~{claims_b64}~{index}.{_b64(hashes[:-32])}") == "receipt.proof_invalid"
    assert code(f"{jws_part}~{claims_b64}~{int(index) + 1}.{path}") == "receipt.proof_invalid"
    assert code(f"{jws_part}~{claims_b64}~99.{path}") == "receipt.proof_invalid"
    # malformed: a part missing, an index that is not a number, a path that is not whole hashes
    assert code(f"{jws_part}~{claims_b64}") == "receipt.batch_invalid"
    assert code(f"{jws_part}~{claims_b64}~x.{path}") == "receipt.batch_invalid"
    assert code(f"{jws_part}~{claims_b64}~0{index}.{path}") == "receipt.batch_invalid"
    assert code(f"{jws_part}~{claims_b64}~{index}.{_b64(hashes[:-1])}") == "receipt.batch_invalid"
    # the root signed by another key: the batch statement re-signed by a stranger under the same kid
    stranger = ReceiptSigner(jwk.JWK(**PrivateKey.generate().private_jwk()), kid)
    head, body, _ = jws_part.split(".")
    forged_jws = stranger._jws_header(batch=True).decode() + body
    forged_jws += "." + _b64(stranger._signature(forged_jws.encode()))
    assert code(f"{forged_jws}~{claims_b64}~{proof}") == "receipt.invalid"
    with pytest.raises(CeadError) as err:
        verify_receipt(token, PrivateKey.generate().public)
    assert err.value.code == "receipt.invalid"
    # a plain receipt's type is not accepted as a batch signature, nor the reverse
    plain_typed = _b64(json.dumps({"alg": "EdDSA", "kid": kid, "typ": RECEIPT_TYPE}).encode()) + "." + body
    plain_typed += "." + _b64(signer._signature(plain_typed.encode()))
    assert code(f"{plain_typed}~{claims_b64}~{proof}") == "receipt.invalid"
    # the right receipt, other bytes
    index_of = next(i for i, c in enumerate(claims) if c["jti"] == unverified_receipt_claims(token)["jti"])
    assert verify_receipt_with(token, Resolver(), payload=f"{TABLE}{index_of}".encode())["jti"]
    assert code(token, payload=f"{TABLE}{index_of}x".encode()) == "receipt.payload_mismatch"


def test_a_failed_batch_signature_fails_every_receipt_of_the_batch_and_nobody_waits():
    """Fail closed: no receipt, no acknowledged transfer (the gateway answers 500 and sends no data, as it does
    when a lone signature fails). The next receipt is signed normally: the signer is not left busy."""
    key, did, kid = _key_and_kid()
    signer = GatedSigner(jwk.JWK(**key.private_jwk()), kid, hold=4, fail_batch=True)
    out = _sign_at_once(signer, [_claims(did, i) for i in range(5)])
    errors = [o for o in out if isinstance(o, BaseException)]
    assert len(errors) == 4 and all(isinstance(e, RuntimeError) for e in errors)
    assert sum(isinstance(o, str) for o in out) == 1   # the first, signed alone before the batch
    signer.fail_batch = False
    assert verify_receipt_with(signer.sign_receipt(_claims(did, 9)), Resolver())["jti"].endswith("9")


def test_the_gateway_fails_closed_when_signing_fails():
    """What the decider does when a receipt cannot be signed (kept as it was): the decision raises, so no answer
    with data leaves without its receipt."""
    key, did, kid = _key_and_kid()

    class Broken(ReceiptSigner):
        def _sign_bytes(self, claims_json):
            raise RuntimeError("the signing key is unavailable")

    with world() as w:
        decider = w.decider()
        decider.receipt_signer = Broken(jwk.JWK(**key.private_jwk()), kid)
        request = w.request()
        with pytest.raises(RuntimeError):
            decider.decide(w.present(request), request)


def test_every_reader_takes_a_batched_receipt(batch, tmp_path):
    """The spool (one line each, under MAX_LINE), the sequencer, the node's store and log (digest of the whole
    string), the recipient's copy (wallet), ``cead receipts list|show|verify``."""
    from click.testing import CliRunner
    from cead.cli import main
    from issuer_fixtures import PASS
    key, did, kid, signer, claims, tokens = batch
    node = ready_node(tmp_path / "provider")
    spool = ReceiptSpool(tmp_path / "spool")
    for token in tokens:
        assert "\n" not in token and len(token) < MAX_LINE
        spool(token)
    before = record.log_of(node).size()
    assert drain(node, tmp_path / "spool") == 7
    log = record.log_of(node)
    assert log.size() == before + 7
    for token, expected in zip(tokens, claims):
        row = store.get(node.engine, expected["jti"])
        assert row.token == token and row.claims == unverified_receipt_claims(token) and row.rows == 2
        entry = decode_entry(log.entry(row.log_index))
        assert entry["digests"]["receipt"] == hashlib.sha256(token.encode()).hexdigest()
        assert entry["digests"]["payload"] == expected["payload"]["sha256"]
        assert store.inclusion(node, row)["status"] == "logged"
    # the recipient's copy, checked against the bytes it received
    recipient = ready_node(tmp_path / "recipient")
    batched = next(t for t in tokens if "~" in t)
    i = next(i for i, c in enumerate(claims) if c["jti"] == unverified_receipt_claims(batched)["jti"])
    kept = store.keep_copy(recipient.engine, batched, received=f"{TABLE}{i}".encode())
    assert kept is not None and kept.side == "recipient" and kept.token == batched
    assert kept.payload_check == "matches" and store.get(recipient.engine, kept.id).payload_check == "matches"
    # a receipt for other bytes than those received is kept (it is evidence), and says so
    other = next(t for t in tokens if "~" in t and t != batched)
    odd = store.keep_copy(recipient.engine, other, received=b"not the table the receipt names")
    assert odd is not None and store.get(recipient.engine, odd.id).payload_check == "differs"
    env = {"CEAD_PASSPHRASE": PASS.decode()}
    listed = CliRunner().invoke(main, ["receipts", "list", "--home", str(recipient.home)], env=env)
    assert "BYTES DIFFER from the receipt" in listed.output and "bytes match" in listed.output
    # with the wallet's resolver, the gateway's signature is checked as the copy arrives; a forged one is kept,
    # and said to be forged
    from verifier.did import Resolver
    resolver = Resolver(node.fetcher())
    kept = store.keep_copy(recipient.engine, batched, received=f"{TABLE}{i}".encode(), resolver=resolver)
    assert kept.signature_check == "verified" and kept.payload_check == "matches"
    forged_key, forged_did, forged_kid = _key_and_kid()
    from verifier.receipts import receipt_header
    gateway_kid = receipt_header(batched)["kid"]          # the gateway's key id, signed with another key
    forged = ReceiptSigner(jwk.JWK(**forged_key.private_jwk()), kid=gateway_kid).sign(
        {**claims[i], "jti": "urn:uuid:forged-receipt"})
    kept = store.keep_copy(recipient.engine, forged, resolver=resolver)
    assert kept is not None and store.get(recipient.engine, kept.id).signature_check == "invalid"
    listed = CliRunner().invoke(main, ["receipts", "list", "--home", str(recipient.home)], env=env)
    assert "SIGNATURE INVALID" in listed.output and "signature verified" in listed.output
    assert _receipt_hashes_pull(batched)
    # the command line: listed, shown with how it was signed, verified against its signer's DID
    env = {"CEAD_PASSPHRASE": PASS.decode()}
    jti = claims[i]["jti"]
    listed = CliRunner().invoke(main, ["receipts", "list", "--json", "--home", str(node.home)], env=env)
    assert listed.exit_code == 0 and jti in listed.output
    shown = CliRunner().invoke(main, ["receipts", "show", jti, "--home", str(node.home)], env=env)
    assert shown.exit_code == 0, shown.output
    shown = json.loads(shown.output)
    assert shown["signed"]["form"] == "batch" and shown["signed"]["size"] == 6 and shown["claims"]["jti"] == jti
    payload = tmp_path / "payload.csv"
    payload.write_bytes(f"{TABLE}{i}".encode())
    verified = CliRunner().invoke(main, ["receipts", "verify", jti, "--payload", str(payload), "--home",
                                         str(node.home)], env=env)
    assert verified.exit_code == 0, verified.output
    payload.write_bytes(b"other bytes")
    refused = CliRunner().invoke(main, ["receipts", "verify", jti, "--payload", str(payload), "--home",
                                        str(node.home)], env=env)
    assert refused.exit_code == 1 and "receipt.payload_mismatch" in refused.output + (refused.stderr or "")


def test_older_receipts_with_relied_on_still_read(tmp_path):
    """Receipts before this change repeated ``credentials`` as strings in ``reliedOn``; new ones do not. Both
    read the same."""
    key, did, kid = _key_and_kid()
    signer = ReceiptSigner(jwk.JWK(**key.private_jwk()), kid)
    new = _claims(did, 3)
    old = dict(new, reliedOn=["urn:uuid:c3 sha256-" + "A" * 43])
    for claims in (old, new):
        verified = verify_receipt_with(signer.sign(claims), Resolver())
        assert relied_on(verified) == ["urn:uuid:c3 sha256-" + "A" * 43]
    node = ready_node(tmp_path / "node")
    assert store.keep(node.engine, signer.sign(old), store.RECIPIENT).id == old["jti"]


# ---- through a real HTTPS gateway -----------------------------------------------------------------------------

def test_concurrent_pulls_through_an_https_gateway_get_batched_receipts(tmp_path):
    """Five pulls at once through the middleware on a threaded HTTPS server: the first receipt's signature is
    held until the four others are pending, so those four share one signature. Every answer's receipt verifies
    against its signer's DID and the bytes received; the provider's sequencer stores and logs all five; the
    recipient keeps its copies."""
    gateway = Party("gateway")
    provider = ready_node(tmp_path / "provider")
    recipient = ready_node(tmp_path / "recipient")
    signer = GatedSigner(jwk.JWK(**gateway.key.private_jwk()), gateway.kid, hold=4)
    spool = ReceiptSpool(tmp_path / "spool")

    class _Holder:                      # the wallet's parts keep_receipt uses: its database and its resolver
        engine = recipient.engine
        verifier = type("WalletVerifier", (), {"resolver": Resolver()})()

    with world() as w:
        app = Flask("data-api")

        @app.route("/datasets/homelessness")
        def homelessness():
            return TABLE, 200, {"Content-Type": "text/csv"}

        decider = w.decider()
        decider.receipt_signer, decider.receipt_sink = signer, spool
        app.wsgi_app = CeadMiddleware(app.wsgi_app, decider, dataset_for=lambda environ: DATASET)
        with https_server(app) as (base_url, ca_bundle):
            url = base_url + "/datasets/homelessness"
            prepared = []
            for _ in range(5):
                transfer = TransferRequest("GET", url, manifest=w.manifest())
                prepared.append({MANIFEST_HEADER: encode_manifest(transfer.manifest),
                                 PRESENTATION_HEADER: encode_presentation(w.present(transfer)),
                                 RECEIPT_FORMS_HEADER: "plain, batch"})   # as this wallet's client says
            responses = [None] * 5

            def pull(i):
                responses[i] = requests.get(url, headers=prepared[i], verify=ca_bundle, timeout=DEADLINE)

            threads = [threading.Thread(target=pull, args=(i,)) for i in range(5)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(DEADLINE)
    assert all(r is not None and r.status_code == 200 and r.text == TABLE for r in responses)
    tokens = [r.headers[RECEIPT_HEADER] for r in responses]
    batched = [t for t in tokens if "~" in t]
    assert len(batched) == 4 and len({t.split("~")[0] for t in batched}) == 1
    for response, token in zip(responses, tokens):
        claims = verify_receipt_with(token, Resolver(), payload=response.content)
        assert claims["decision"] == "allow" and claims["iss"] == gateway.did and claims["payload"]["rows"] == 2
        assert len(claims["credentials"]) == 4 and "reliedOn" not in claims
        keep_receipt(_Holder, response.headers, None, response.content)   # the wallet's copy
        with pytest.raises(CeadError) as err:
            verify_receipt_with(token, Resolver(), payload=response.content + b"\n")
        assert err.value.code == "receipt.payload_mismatch"
    assert drain(provider, tmp_path / "spool") == 5
    for token in tokens:
        jti = unverified_receipt_claims(token)["jti"]
        assert store.get(provider.engine, jti).log_index is not None
        copy = store.get(recipient.engine, jti)
        assert copy.token == token          # kept, its signature and bytes checked as it arrived (plain or batched)
        assert copy.signature_check == "verified" and copy.payload_check == "matches"


def test_a_client_that_does_not_read_batched_receipts_gets_a_plain_one_even_while_others_batch():
    """Clients from before batched receipts cannot read them: a request without ``Cead-Receipt-Forms: batch`` is
    signed alone, at once, even while a batch is being formed; the gateway reads the header into the decision."""
    key, did, kid = _key_and_kid()
    signer = GatedSigner(jwk.JWK(**key.private_jwk()), kid, hold=2)
    got: dict[str, str] = {}

    def seal(name, i):
        got[name] = signer.sign_receipt(_claims(did, i), batch=True)

    leader = threading.Thread(target=seal, args=("leader", 1))
    leader.start()
    deadline = time.monotonic() + DEADLINE
    while not signer.gated:          # the leader holds its signature until two receipts wait behind it
        assert time.monotonic() < deadline
        time.sleep(0.001)
    follower = threading.Thread(target=seal, args=("follower", 2))
    follower.start()
    while len(signer._group._pending) < 1:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    old_client = signer.sign_receipt(_claims(did, 3), batch=False)   # returns while the leader still holds
    assert leader.is_alive() and "~" not in old_client
    assert receipt_header(old_client)["typ"] == RECEIPT_TYPE
    last = threading.Thread(target=seal, args=("last", 4))
    last.start()
    for t in (leader, follower, last):
        t.join(DEADLINE)
    assert "~" not in got["leader"] and "~" in got["follower"] and "~" in got["last"]
    # the header, read by the gateway into the decision's evidence
    from verifier.binding import accepts_batched_receipts
    assert accepts_batched_receipts("plain, batch") and accepts_batched_receipts("BATCH")
    assert not accepts_batched_receipts(None) and not accepts_batched_receipts("plain") \
        and not accepts_batched_receipts("batched")
    with world() as w:
        decider = w.decider()
        decider.receipt_signer = ReceiptSigner(jwk.JWK(**key.private_jwk()), kid)
        from verifier.gateway import decide_from_headers
        for forms, expected in (("plain, batch", True), (None, False)):
            transfer = TransferRequest("GET", "https://data.fife.example/datasets/homelessness",
                                       manifest=w.manifest())
            headers = {MANIFEST_HEADER: encode_manifest(transfer.manifest),
                       PRESENTATION_HEADER: encode_presentation(w.present(transfer)),
                       **({RECEIPT_FORMS_HEADER: forms} if forms else {})}
            status, decision = decide_from_headers(decider, headers, "GET", transfer.url, None, DATASET)
            assert status == 200 and decision.evidence["batch"] is expected


def test_a_batch_the_spool_cannot_take_fails_every_receipt_of_it(tmp_path):
    """The leader spools a whole batch with one write; if that write fails, no receipt of the batch is
    acknowledged: each thread gets ``receipt.spool_failed``."""
    import shutil
    key, did, kid = _key_and_kid()
    signer = GatedSigner(jwk.JWK(**key.private_jwk()), kid, hold=3)
    spool = ReceiptSpool(tmp_path / "spool")
    shutil.rmtree(tmp_path / "spool")
    (tmp_path / "spool").write_text("not a folder")   # the segment cannot be created (even by root)
    out = [None] * 4

    def run(i):
        try:
            out[i] = signer.sign_receipt(_claims(did, i), spool)
        except BaseException as exc:   # noqa: BLE001
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
    assert not any(t.is_alive() for t in threads)
    assert all(isinstance(o, CeadError) and o.code == "receipt.spool_failed" for o in out), out
    assert signer.batches == (2, 4)   # the lone first receipt and the batch of three: both failed to spool


def test_many_threads_sealing_repeatedly_each_get_their_own_receipt(tmp_path):
    """No gate: twelve threads seal 25 receipts each into a real spool, however they interleave. Every thread gets
    a receipt for its own claims that verifies, every receipt is spooled once, and the counts add up."""
    key, did, kid = _key_and_kid()
    signer = ReceiptSigner(jwk.JWK(**key.private_jwk()), kid)
    spool = ReceiptSpool(tmp_path / "spool")
    got: dict[int, list] = {}

    def run(t):
        got[t] = [(c, signer.sign_receipt(c, spool)) for c in (_claims(did, t * 100 + i) for i in range(25))]

    threads = [threading.Thread(target=run, args=(t,)) for t in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
    assert not any(t.is_alive() for t in threads)
    pairs = [p for t in range(12) for p in got[t]]
    assert len(pairs) == 300 and signer.batches[1] == 300
    for claims, token in pairs:
        assert verify_receipt(token, key.public)["jti"] == claims["jti"]
    lines = b"".join(p.read_bytes() for p in (tmp_path / "spool").glob("*.spool")).decode().splitlines()
    assert sorted(lines) == sorted(token for _, token in pairs)


def test_signed_claims_that_are_not_one_json_object_are_refused():
    """Even correctly signed and proved, claims that name a member twice (two readers could read two different
    receipts) or are not an object are not a receipt."""
    key, did, kid = _key_and_kid()
    signer = ReceiptSigner(jwk.JWK(**key.private_jwk()), kid)
    bodies = [b'{"decision":"allow","decision":"deny","iss":"%s"}' % did.encode(), b'["not", "an", "object"]',
              json.dumps(_claims(did, 1)).encode()]
    duplicate, array, good = signer._sign_batch(bodies)
    assert verify_receipt(good, key.public)["jti"] == _claims(did, 1)["jti"]
    for bad in (duplicate, array):
        with pytest.raises(CeadError) as err:
            verify_receipt(bad, key.public)
        assert err.value.code == "receipt.invalid"
        with pytest.raises(CeadError) as err:
            unverified_receipt_claims(bad)
        assert err.value.code == "receipt.invalid"


def test_a_forked_worker_starts_with_no_signing_in_progress():
    """A pre-forking server forks with the signer built: a child must not inherit a parent's signature in
    progress (whose leader does not exist in the child), or its first receipt would wait forever."""
    import os
    key, did, kid = _key_and_kid()
    signer = GatedSigner(jwk.JWK(**key.private_jwk()), kid, hold=1)
    started = threading.Event()

    def lead():   # holds the lead (the gate waits for one more receipt) while the process forks
        started.set()
        signer.sign_receipt(_claims(did, 1))

    leader = threading.Thread(target=lead)
    leader.start()
    started.wait(DEADLINE)
    deadline = time.monotonic() + DEADLINE
    while not signer._group._busy:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:   # the child: a receipt signed at once, alone
        try:
            import signal
            signal.alarm(10)   # a child left waiting dies, and the parent reads nothing
            token = signer.sign_receipt(_claims(did, 2))
            os.write(write, b"ok" if token.count(".") == 2 and "~" not in token else b"no")
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 2) == b"ok"
    signer.sign_receipt(_claims(did, 3))   # releases the parent's gate
    leader.join(DEADLINE)
    assert not leader.is_alive()
