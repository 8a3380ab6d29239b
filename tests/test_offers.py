"""OID4VCI pre-authorised code flow over HTTPS on 127.0.0.1: a DPO's node offers a credential it issued to an
Information Asset Owner's DID, and the IAO's wallet collects it with a key proof. The offer and the issuer
metadata are checked by an independent implementation (openvc-core's OID4VCI parsers), and so is the wallet's
credential request with its key proof; the wrong holder, a wrong transaction code, a spent code and a stale nonce
are all refused with the protocol's error codes."""
from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from helpers_https import https_server
from issuer import offers, issuing
from issuer.app import create_app
from issuer.node import Node
from issuer_fixtures import PASS, certification
from verifier.http import Fetcher
from verifier.results import CeadError
from wallet.offers import collect, parse_offer
from wallet.store import Wallet


@pytest.fixture
def world(tmp_path):
    holder = {}
    with https_server(lambda environ, start: holder["app"](environ, start)) as (base_url, ca_bundle):
        port = base_url.rsplit(":", 1)[1]
        dpo, _ = Node.init(tmp_path / "dpo", "Fife Council", PASS, domain=f"localhost:{port}", public_url=base_url)
        dpo._passphrase = PASS
        holder["app"] = create_app(dpo)
        network = {"ca_bundle": ca_bundle, "allow_private": True}
        iao, _ = Node.init(tmp_path / "iao", "Fife IAO", PASS, did_method="key", network=network)
        iao._passphrase = PASS
        other, _ = Node.init(tmp_path / "other", "Someone else", PASS, did_method="key", network=network)
        other._passphrase = PASS
        fetcher = Fetcher(allow_private=True, ca_bundle=ca_bundle)
        yield dpo, Wallet.from_node(iao), Wallet.from_node(other), fetcher, base_url


def _issue_to(dpo, did, fmt=None):
    options = {"format": "vc+jwt"} if fmt == "jwt" else {}
    return issuing.issue(dpo, certification(dpo.did, id=did), options).verifiable_credential


@pytest.mark.parametrize("fmt", ["ldp", "jwt"])
def test_wallet_collects_an_offered_credential(world, fmt):
    dpo, iao, _, fetcher, base_url = world
    issued = _issue_to(dpo, iao.holder, fmt)
    made = offers.make_offer(dpo, issued, tx_code=True)
    assert made["uri"].startswith("openid-credential-offer://?credential_offer=")
    assert made["offer"]["credential_configuration_ids"] == [
        "OrganisationCertificationCredential_" + ("jwt_vc_json" if fmt == "jwt" else "ldp_vc")]
    result = collect(iao, made["uri"], tx_code=made["tx_code"], fetcher=fetcher)
    assert result.ok, result
    held = iao.search(type="OrganisationCertificationCredential")
    assert len(held) == 1 and held[0].credential_id == made["credential"]
    # the code is single use: a second pick-up is refused by the token endpoint
    with pytest.raises(CeadError) as info:
        collect(iao, made["uri"], tx_code=made["tx_code"], fetcher=fetcher)
    assert info.value.code == "offer.refused" and info.value.detail["error"] == "invalid_grant"


def test_only_the_subject_can_collect_and_codes_are_guarded(world):
    dpo, iao, other, fetcher, base_url = world
    made = offers.make_offer(dpo, _issue_to(dpo, iao.holder), tx_code=True)
    with pytest.raises(CeadError) as info:               # another DID's key proof
        collect(other, made["uri"], tx_code=made["tx_code"], fetcher=fetcher)
    assert info.value.detail["error"] == "invalid_proof" and iao.holder in info.value.message
    assert other.search(type="OrganisationCertificationCredential") == []

    made = offers.make_offer(dpo, _issue_to(dpo, iao.holder), tx_code=True)
    with pytest.raises(CeadError) as info:
        collect(iao, made["uri"], fetcher=fetcher)       # no transaction code at hand
    assert info.value.code == "offer.tx_code_required"
    for attempt in range(offers.MAX_TX_TRIES):
        with pytest.raises(CeadError) as info:
            collect(iao, made["uri"], tx_code="000000" if made["tx_code"] != "000000" else "111111",
                    fetcher=fetcher)
        assert info.value.detail["error"] == "invalid_grant"
    with pytest.raises(CeadError) as info:               # three wrong guesses withdrew the offer
        collect(iao, made["uri"], tx_code=made["tx_code"], fetcher=fetcher)
    assert info.value.detail["error"] == "invalid_grant"


def test_only_what_the_node_issued_can_be_offered(world):
    dpo, iao, _, fetcher, _ = world
    issued = _issue_to(dpo, iao.holder)
    tampered = json.loads(json.dumps(issued))
    tampered["credentialSubject"]["legalName"] = "Someone Else"
    with pytest.raises(CeadError) as info:
        offers.make_offer(dpo, tampered)
    assert info.value.code == "offer.not_issued"
    issuing.change_status(dpo, issued["id"], "revoke")
    with pytest.raises(CeadError) as info:
        offers.make_offer(dpo, issued)
    assert info.value.code == "offer.not_issued" and "revoked" in info.value.message


def test_protocol_errors_over_http(world):
    dpo, iao, _, fetcher, base_url = world
    made = offers.make_offer(dpo, _issue_to(dpo, iao.holder))
    code = made["offer"]["grants"][offers.PRE_AUTHORIZED]["pre-authorized_code"]
    post = lambda path, **kw: requests.post(base_url + path, verify=fetcher.ca_bundle, timeout=10, **kw)
    assert post("/oid4vci/token", data={"grant_type": "authorization_code"}).json()["error"] == \
        "unsupported_grant_type"
    token = post("/oid4vci/token", data={"grant_type": offers.PRE_AUTHORIZED, "pre-authorized_code": code}).json()
    assert token["token_type"] == "Bearer"
    bearer = {"Authorization": "Bearer " + token["access_token"]}
    config = made["offer"]["credential_configuration_ids"][0]
    resp = post("/oid4vci/credential", json={"credential_configuration_id": config})
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_token"
    resp = post("/oid4vci/credential", headers=bearer, json={"credential_configuration_id": "Other_ldp_vc",
                                                             "proofs": {"jwt": ["x"]}})
    assert resp.json()["error"] == "unknown_credential_configuration"
    from issuer.signing import sign_jwt
    import time
    stale = offers.new_nonce(dpo, now=time.time() - 2 * offers.NONCE_TTL)
    proof = sign_jwt({"aud": dpo.public_url, "iat": int(time.time()), "nonce": stale}, iao.key, iao.kid,
                     typ="openid4vci-proof+jwt")
    resp = post("/oid4vci/credential", headers=bearer, json={"credential_configuration_id": config,
                                                             "proofs": {"jwt": [proof]}})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_nonce" and resp.json()["c_nonce"]
    forged = offers.new_nonce(dpo)[:-2] + "AA"
    proof = sign_jwt({"aud": dpo.public_url, "iat": int(time.time()), "nonce": forged}, iao.key, iao.kid,
                     typ="openid4vci-proof+jwt")
    resp = post("/oid4vci/credential", headers=bearer, json={"credential_configuration_id": config,
                                                             "proofs": {"jwt": [proof]}})
    assert resp.json()["error"] == "invalid_nonce"
    wrong_aud = sign_jwt({"aud": "https://elsewhere.example", "iat": int(time.time()),
                          "nonce": offers.new_nonce(dpo)}, iao.key, iao.kid, typ="openid4vci-proof+jwt")
    resp = post("/oid4vci/credential", headers=bearer, json={"credential_configuration_id": config,
                                                             "proofs": {"jwt": [wrong_aud]}})
    assert resp.json()["error"] == "invalid_proof"
    good = sign_jwt({"aud": dpo.public_url, "iat": int(time.time()), "nonce": offers.new_nonce(dpo)}, iao.key,
                    iao.kid, typ="openid4vci-proof+jwt")
    resp = post("/oid4vci/credential", headers=bearer, json={"credential_configuration_id": config,
                                                             "proofs": {"jwt": [good]}})
    assert resp.status_code == 200 and resp.json()["credentials"][0]["credential"]["id"] == made["credential"]


def test_independent_implementation_accepts_offer_metadata_and_key_proof(world):
    """openvc-core (an independent OID4VCI 1.0 implementation) parses the offer and the issuer metadata this node
    publishes, and verifies the credential request and key proof the Cead wallet sends."""
    ovc = pytest.importorskip("openvc.openid4vci")
    import time
    from issuer.signing import sign_jwt
    from verifier.did import Resolver
    dpo, iao, _, fetcher, base_url = world
    made = offers.make_offer(dpo, _issue_to(dpo, iao.holder), tx_code=True)
    offer = ovc.parse_credential_offer(made["offer"])
    assert offer.credential_issuer == dpo.public_url.rstrip("/")
    uri_offer = parse_qs(urlsplit(made["uri"]).query)["credential_offer"][0]
    assert ovc.parse_credential_offer(uri_offer).credential_issuer == offer.credential_issuer
    assert parse_offer(made["uri"], fetcher) == made["offer"]
    metadata = requests.get(base_url + "/.well-known/openid-credential-issuer", verify=fetcher.ca_bundle,
                            timeout=10).json()
    parsed = ovc.parse_credential_issuer_metadata(metadata)
    assert parsed.credential_endpoint == base_url + "/oid4vci/credential"

    nonce = offers.new_nonce(dpo)
    proof = sign_jwt({"aud": dpo.public_url.rstrip("/"), "iat": int(time.time()), "nonce": nonce}, iao.key, iao.kid,
                     typ="openid4vci-proof+jwt")
    body = {"credential_configuration_id": made["offer"]["credential_configuration_ids"][0],
            "proofs": {"jwt": [proof]}}
    spent = []

    def consume(value):
        spent.append(value)
        return value == nonce

    def resolve(kid):
        return Resolver().public_key_for(kid, "authentication")[1].to_jwk()

    verified = ovc.verify_credential_request_proofs(body, credential_issuer=dpo.public_url.rstrip("/"),
                                                    check_nonce=consume, resolve_proof_key=resolve)
    assert len(verified) == 1 and spent == [nonce]


def test_command_line_offer_and_receive(world, tmp_path):
    """`cead offer FILE --tx-code -o qr.png` on the DPO's node, `cead wallet receive URI --tx-code` on the IAO's:
    each prints one line saying what it did; the QR code holds the offer URI."""
    import os
    import subprocess
    import sys
    dpo, iao, _, fetcher, _ = world
    issued = _issue_to(dpo, iao.holder, "jwt")
    file = tmp_path / "cert.json"
    file.write_text(json.dumps(issued))
    env = {**os.environ, "CEAD_PASSPHRASE": PASS.decode()}
    qr = tmp_path / "offer.png"
    made = subprocess.run([sys.executable, "-m", "cead.cli", "offer", str(file), "--tx-code", "-o", str(qr),
                           "--home", str(dpo.home)], capture_output=True, text=True, env=env, timeout=60)
    assert made.returncode == 0, made.stderr
    uri = made.stdout.strip()
    assert uri.startswith("openid-credential-offer://") and qr.stat().st_size > 0
    pin = made.stderr.split("transaction code ")[1][:6]
    zxing = pytest.importorskip("zxingcpp")
    from PIL import Image
    assert zxing.read_barcodes(Image.open(qr))[0].text == uri
    got = subprocess.run([sys.executable, "-m", "cead.cli", "wallet", "receive", uri, "--tx-code", pin,
                          "--home", str(iao._node.home)], capture_output=True, text=True, env=env, timeout=60)
    assert got.returncode == 0, got.stderr
    assert got.stdout.startswith("Received OrganisationCertificationCredential urn:uuid:")
    assert f"from {dpo.did} into the wallet" in got.stdout
    again = subprocess.run([sys.executable, "-m", "cead.cli", "wallet", "receive", uri, "--tx-code", pin,
                            "--home", str(iao._node.home)], capture_output=True, text=True, env=env, timeout=60)
    assert again.returncode == 2 and json.loads(again.stderr)["error"]["code"] == "offer.refused"


def test_the_issuer_s_endpoints_are_posted_to_only_under_the_node_s_network_rules(world, monkeypatch):
    """The token and credential endpoints are the issuer's choice (its metadata names them). The wallet checked each
    URL, then POSTed with a plain ``requests`` session: a name that resolved to a public address when checked and to
    a loopback or private one when connected (DNS rebinding) was posted to, environment proxies were used, and the
    pre-authorised code and key proof went there. Now the POSTs go through the fetcher's own session, which checks
    the connected peer as every fetch does. (Here the check at resolution is skipped, as a rebinding name would
    pass it; the metadata is read through an open fetcher, so only the POSTs meet the node's rules.)"""
    dpo, iao, _, open_fetcher, _ = world
    made = offers.make_offer(dpo, _issue_to(dpo, iao.holder), tx_code=True)

    class Rebound(Fetcher):          # production rules (no private address), the metadata read as it was served
        def get(self, url, *args, **kwargs):
            return open_fetcher.get(url, *args, **kwargs)

    monkeypatch.setattr(Fetcher, "_check_addresses", lambda self, url, host, port: None)
    with pytest.raises(CeadError) as info:
        collect(iao, made["uri"], tx_code=made["tx_code"], fetcher=Rebound(ca_bundle=open_fetcher.ca_bundle))
    assert info.value.code == "http.address_refused" and "127.0.0.1" in info.value.message
    assert not iao.search(type="OrganisationCertificationCredential")
    monkeypatch.undo()
    assert collect(iao, made["uri"], tx_code=made["tx_code"], fetcher=open_fetcher).ok   # the code was not spent
