"""OpenID4VP 1.0 over HTTPS on 127.0.0.1: a DPO's node asks an IAO's wallet for the delegation-like credential it
holds; the wallet answers by direct_post with a vp_token bound to the request's nonce and client identifier; the
node verifies and records the outcome. An independent wallet (openvc-core signing a VP-JWT around its VC-JWT) is
accepted too. (openvc-core's verify_vp_token reads VP-JWTs only in the VC 1.1 encoding, with a ``vp`` claim, so it
cannot read the VC 2.0 vp+jwt Cead's wallet sends.) Replays, another audience, the wrong type, a
credential presented by someone other than its subject, and unsigned requests pointing elsewhere are refused."""
from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from helpers_https import https_server
from issuer import oid4vp as rp, issuing
from issuer.app import create_app
from issuer.node import Node
from issuer_fixtures import PASS, certification
from verifier.http import Fetcher
from verifier.results import CeadError
from wallet.oid4vp import parse_request, respond
from wallet.store import Wallet

CERT = "OrganisationCertificationCredential"


@pytest.fixture
def world(tmp_path):
    holder = {}
    with https_server(lambda environ, start: holder["app"](environ, start)) as (base_url, ca_bundle):
        port = base_url.rsplit(":", 1)[1]
        network = {"ca_bundle": ca_bundle, "allow_private": True}
        dpo, _ = Node.init(tmp_path / "dpo", "Fife Council", PASS, domain=f"localhost:{port}", public_url=base_url,
                           network=network)
        dpo._passphrase = PASS
        holder["app"] = create_app(dpo)
        iao, _ = Node.init(tmp_path / "iao", "Fife IAO", PASS, did_method="key", network=network)
        iao._passphrase = PASS
        fetcher = Fetcher(allow_private=True, ca_bundle=ca_bundle)
        wallet = Wallet.from_node(iao)
        issued = issuing.issue(dpo, certification(dpo.did, id=iao.did), {"format": "vc+jwt"})
        assert wallet.import_credential(issued.verifiable_credential).ok
        yield dpo, wallet, fetcher, base_url


def test_wallet_answers_and_node_records_the_outcome(world):
    dpo, wallet, fetcher, base_url = world
    made = rp.make_request(dpo, [CERT])
    assert rp.outcome_of(dpo, made["state"]) == {"status": "pending"}
    done = respond(wallet, made["uri"], fetcher=fetcher)
    assert done["verifier"] == base_url + "/oid4vp/response" and len(done["presented"]) == 1
    outcome = requests.get(f"{base_url}/oid4vp/result/{made['state']}", verify=fetcher.ca_bundle, timeout=10).json()
    assert outcome["status"] == "verified", outcome
    assert outcome["holder"] == wallet.holder and outcome["credentials"][0]["types"] == [CERT]
    with pytest.raises(CeadError) as info:               # answered once only
        respond(wallet, made["uri"], fetcher=fetcher)
    assert info.value.code == "oid4vp.refused"


def test_refusals(world):
    dpo, wallet, fetcher, base_url = world
    # nothing of the type asked for: the wallet says so and sends nothing
    made = rp.make_request(dpo, ["DataSharingApprovalCredential"])
    with pytest.raises(CeadError) as info:
        respond(wallet, made["uri"], fetcher=fetcher)
    assert info.value.code == "oid4vp.no_credential"
    # a presentation made for another request (another nonce and audience) is refused and recorded
    made = rp.make_request(dpo, [CERT])
    from wallet.present import build_presentation
    record = wallet.search(type=CERT)[0]
    vp = build_presentation(wallet.holder, wallet.key, wallet.kid, [record.credential], audience="redirect_uri:"
                            "https://elsewhere.example/cb", nonce="another-nonce")
    resp = requests.post(base_url + "/oid4vp/response", data={"vp_token": json.dumps({"credential": [vp]}),
                         "state": made["state"]}, verify=fetcher.ca_bundle, timeout=10)
    assert resp.status_code == 400 and resp.json()["error"] == "access_denied"
    outcome = rp.outcome_of(dpo, made["state"])
    codes = {p["code"] for p in outcome["problems"]}
    assert outcome["status"] == "refused" and {"presentation.binding_mismatch",
                                               "presentation.audience_mismatch"} & codes, codes
    # an unknown state is refused without verifying anything
    resp = requests.post(base_url + "/oid4vp/response", data={"vp_token": "{}", "state": "nope"},
                         verify=fetcher.ca_bundle, timeout=10)
    assert resp.status_code == 400 and "unknown" in resp.json()["error_description"]


def test_someone_elses_credential_is_refused(world, tmp_path):
    """A credential presented by a DID other than its subject (holder binding, OID4VP 1.0 B.1)."""
    dpo, wallet, fetcher, base_url = world
    other, _ = Node.init(tmp_path / "other", "Other", PASS, did_method="key",
                         network={"ca_bundle": fetcher.ca_bundle, "allow_private": True})
    other._passphrase = PASS
    thief = Wallet.from_node(other)
    made = rp.make_request(dpo, [CERT])
    from wallet.present import build_presentation
    stolen = wallet.search(type=CERT)[0].credential
    vp = build_presentation(thief.holder, thief.key, thief.kid, [stolen], audience=rp.client_id(dpo),
                            nonce=made["request"]["nonce"])
    resp = requests.post(base_url + "/oid4vp/response", data={"vp_token": json.dumps({"credential": [vp]}),
                         "state": made["state"]}, verify=fetcher.ca_bundle, timeout=10)
    assert resp.status_code == 400
    assert "oid4vp.holder_mismatch" in {p["code"] for p in rp.outcome_of(dpo, made["state"])["problems"]}


@pytest.mark.parametrize("change,code", [
    (lambda q: q.update(client_id="redirect_uri:https://attacker.example/cb"), "oid4vp.invalid"),
    (lambda q: q.update(response_mode="fragment"), "oid4vp.unsupported"),
    (lambda q: q.update(request_uri="https://x.example/req"), "oid4vp.unsupported"),
    (lambda q: q.pop("nonce"), "oid4vp.invalid"),
    (lambda q: q.update(dcql_query="not json"), "oid4vp.invalid"),
])
def test_wallet_refuses_malformed_or_misdirected_requests(world, change, code):
    from urllib.parse import urlencode
    dpo, wallet, fetcher, _ = world
    params = dict(rp.make_request(dpo, [CERT])["request"])
    change(params)
    with pytest.raises(CeadError) as info:
        parse_request("openid4vp://?" + urlencode(params))
    assert info.value.code == code


def test_independent_wallet_and_verifier(world, tmp_path):
    """openvc-core as the wallet: its VP-JWT (VC 1.1 JWT encoding) around its VC-JWT, bound to the nonce and the full
    client identifier, is accepted by the node; the same presentation for another request is not."""
    ovc = pytest.importorskip("openvc")
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from openvc.proof.vc_jwt import VcJwtProofSuite
    from openvc.proof.vp_jwt import VpJwtProofSuite
    from verifier.did import did_key
    from verifier.keys import PublicKey
    dpo, wallet, fetcher, base_url = world

    # an independent issuer and holder (did:key), answering the node's request
    def key():
        private = ed25519.Ed25519PrivateKey.generate()
        did = did_key(PublicKey.from_crypto(private.public_key()))
        return ovc.Ed25519SigningKey(private, f"{did}#{did[8:]}"), did
    issuer_key, issuer_did = key()
    holder_key, holder_did = key()
    vc = VcJwtProofSuite().sign({"@context": ["https://www.w3.org/2018/credentials/v1"],
                                 "type": ["VerifiableCredential", "StaffTrainingCredential"], "issuer": issuer_did,
                                 "issuanceDate": "2026-01-01T00:00:00Z", "credentialSubject": {"id": holder_did}},
                                signing_key=issuer_key)
    made = rp.make_request(dpo, ["StaffTrainingCredential"], any_type=True)
    vp = VpJwtProofSuite().sign([vc], holder_key=holder_key, audience=rp.client_id(dpo),
                                nonce=made["request"]["nonce"], expires_in_s=120)
    resp = requests.post(base_url + "/oid4vp/response", data={"vp_token": json.dumps({"credential": [vp]}),
                         "state": made["state"]}, verify=fetcher.ca_bundle, timeout=10)
    assert resp.status_code == 200, resp.text
    assert rp.outcome_of(dpo, made["state"])["holder"] == holder_did
    replay = requests.post(base_url + "/oid4vp/response", data={"vp_token": json.dumps({"credential": [vp]}),
                           "state": rp.make_request(dpo, ["StaffTrainingCredential"], any_type=True)["state"]},
                           verify=fetcher.ca_bundle, timeout=10)
    assert replay.status_code == 400


def test_command_line_request_respond_result(world):
    """`cead oid4vp request --type T` on the asking node, `cead wallet respond URI` on the holder's, then
    `cead oid4vp result STATE`: each says in one line (or one JSON object) what happened."""
    import os
    import subprocess
    import sys
    dpo, wallet, fetcher, _ = world
    env = {**os.environ, "CEAD_PASSPHRASE": PASS.decode()}
    run = lambda *args: subprocess.run([sys.executable, "-m", "cead.cli", *args], capture_output=True, text=True,
                                       env=env, timeout=60)
    asked = run("oid4vp", "request", "--type", CERT, "--home", str(dpo.home))
    assert asked.returncode == 0, asked.stderr
    uri, state = asked.stdout.strip(), asked.stderr.split("state ")[1].split(";")[0].strip().rstrip(".")
    pending = run("oid4vp", "result", state, "--home", str(dpo.home))
    assert pending.returncode == 0, (state, pending.stderr)
    assert json.loads(pending.stdout)["status"] == "pending"
    answered = run("wallet", "respond", uri, "--home", str(wallet._node.home))
    assert answered.returncode == 0, answered.stderr
    assert answered.stdout.startswith("Presented urn:uuid:") and "/oid4vp/response" in answered.stdout
    done = run("oid4vp", "result", state, "--home", str(dpo.home))
    assert done.returncode == 0 and json.loads(done.stdout)["status"] == "verified"


def test_a_state_never_reads_as_a_command_line_option():
    # one state in 64 began with "-", and `cead oid4vp result STATE` then failed with "No such option"
    from issuer.oid4vp import new_state
    states = [new_state() for _ in range(3000)]
    assert not any(s.startswith("-") for s in states)
    assert len(set(states)) == len(states) and all(len(s) == 43 for s in states)


def test_the_answer_goes_to_the_response_uri_only_under_the_node_s_network_rules(world, monkeypatch):
    """The response_uri is the verifier's choice. The wallet checked it, then POSTed the presentation with a plain
    ``requests`` session, so a name rebound to a loopback or private address after the check (DNS rebinding) got
    it. Now the POST goes through the fetcher's own session, which checks the connected peer. (The check at
    resolution is skipped here, as a rebinding name would pass it.)"""
    dpo, wallet, fetcher, _ = world
    made = rp.make_request(dpo, [CERT])
    monkeypatch.setattr(Fetcher, "_check_addresses", lambda self, url, host, port: None)
    with pytest.raises(CeadError) as info:
        respond(wallet, made["uri"], fetcher=Fetcher(ca_bundle=fetcher.ca_bundle))
    assert info.value.code == "http.address_refused" and "127.0.0.1" in info.value.message
    assert rp.outcome_of(dpo, made["state"]) == {"status": "pending"}          # nothing arrived
    monkeypatch.undo()
    assert respond(wallet, made["uri"], fetcher=fetcher)["verifier"]
    assert rp.outcome_of(dpo, made["state"])["status"] == "verified"


def test_command_line_refuses_a_type_cead_does_not_define_unless_asked_to(world):
    # `cead oid4vp request --type Frob` printed a link and exited 0: a request no wallet would ever answer
    import os
    import subprocess
    import sys
    dpo = world[0]
    env = {**os.environ, "CEAD_PASSPHRASE": PASS.decode()}
    run = lambda *args: subprocess.run([sys.executable, "-m", "cead.cli", "oid4vp", "request", *args, "--home",
                                        str(dpo.home)], capture_output=True, text=True, env=env, timeout=60)
    frob = run("--type", "Frob")
    assert frob.returncode == 2 and frob.stdout == "", frob
    error = json.loads(frob.stderr)["error"]
    assert error["code"] == "oid4vp.invalid" and "'Frob' is not a credential type Cead defines" in error["message"]
    assert "--any-type" in error["message"] and CERT in error["message"]
    typo = json.loads(run("--type", "DelegatedAuthority").stderr)["error"]
    assert "Did you mean DelegatedAuthorityCredential?" in typo["message"]
    mixed = run("--type", CERT, "--type", "Frob")
    assert mixed.returncode == 2, mixed
    foreign = run("--type", "StaffTrainingCredential", "--any-type")
    assert foreign.returncode == 0 and foreign.stdout.startswith("openid4vp://"), foreign.stderr
    assert run("--type", CERT).returncode == 0
