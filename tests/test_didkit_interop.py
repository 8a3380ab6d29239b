"""Interoperability with didkit 0.3.3 (SpruceID), using did:key on both sides.

didkit speaks VC 1.1 only. Its functions are async. It is run in a child process: the native module has been seen
to crash the interpreter at exit, which must not take the test run down with it.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from issuer.keys import PrivateKey
from issuer.signing import sign_jwt
from verifier.credential import Verifier
from verifier.did import Resolver, did_key
from verifier.keys import ED25519, P256

import didkit  # noqa: E402,F401  (a test dependency: interop is shown, never skipped)

# Issues two credentials with a fresh did:key (Ed25519Signature2020 and JWT) and verifies the JWTs it is given.
DIDKIT_SCRIPT = r"""
import asyncio, json, os, sys
import didkit

async def main(request):
    key = didkit.generate_ed25519_key()
    did = didkit.key_to_did("key", key)
    vm = await didkit.key_to_verification_method("key", key)
    credential = dict(request["credential"], issuer=did)
    ldp = await didkit.issue_credential(json.dumps(credential), json.dumps(
        {"proofPurpose": "assertionMethod", "verificationMethod": vm, "type": "Ed25519Signature2020"}), key)
    jwt = await didkit.issue_credential(json.dumps(credential), json.dumps(
        {"proofPurpose": "assertionMethod", "verificationMethod": vm, "proofFormat": "jwt"}), key)
    checks = [json.loads(await didkit.verify_credential(token, json.dumps({"proofFormat": "jwt"})))
              for token in request["verify"]]
    ldp_check = json.loads(await didkit.verify_credential(ldp, json.dumps({"proofPurpose": "assertionMethod"})))
    return {"did": did, "vm": vm, "ldp": json.loads(ldp), "jwt": jwt, "checks": checks, "ldp_check": ldp_check}

out = asyncio.run(main(json.load(sys.stdin)))
sys.stdout.write(json.dumps(out))
sys.stdout.flush()
os._exit(0)  # skip interpreter teardown, where the native module can crash
"""

SUBJECT = "did:example:ebfeb1f712ebc6f1c276e12ec21"
CREDENTIAL_11 = {
    "@context": ["https://www.w3.org/2018/credentials/v1"],
    "id": "urn:uuid:9b6c5b2e-1f0a-4b7e-8a2f-5d7c3b1a0e11",
    "type": ["VerifiableCredential"],
    "issuanceDate": "2024-01-01T00:00:00Z",
    "credentialSubject": {"id": SUBJECT},
}


def cead_jwt(kind: str) -> str:
    """A VC-JOSE credential issued by Cead in the VC 1.1 JWT shape didkit reads (claims iss/sub/nbf/jti + vc)."""
    key = PrivateKey.generate(kind)
    did = did_key(key.public)
    claims = {"iss": did, "sub": SUBJECT, "nbf": int(time.time()) - 60, "jti": CREDENTIAL_11["id"],
              "vc": dict(CREDENTIAL_11, issuer=did)}
    return sign_jwt(claims, key, f"{did}#{did[8:]}")


def tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    return f"{header}.{payload}.{signature[:-6]}{'AAAAAA' if signature[-6:] != 'AAAAAA' else 'AAAAAQ'}"


@pytest.fixture(scope="module")
def didkit_run():
    tokens = {"ed25519": cead_jwt(ED25519), "p256": cead_jwt(P256)}
    tokens["tampered"] = tampered(tokens["ed25519"])
    request = {"credential": CREDENTIAL_11, "verify": list(tokens.values())}
    proc = subprocess.run([sys.executable, "-c", DIDKIT_SCRIPT], input=json.dumps(request), capture_output=True,
                          text=True, timeout=120)
    assert proc.stdout, f"didkit run failed (rc={proc.returncode}): {proc.stderr[-2000:]}"
    out = json.loads(proc.stdout)
    out["tokens"] = dict(zip(tokens, out["checks"]))
    return out


def test_didkit_ed25519signature2020_verifies_in_cead(didkit_run):
    credential = didkit_run["ldp"]
    assert credential["proof"]["type"] == "Ed25519Signature2020"
    assert didkit_run["ldp_check"]["errors"] == []
    result = Verifier(Resolver()).verify_credential(credential)
    assert result.verified, result.problems
    assert (result.format, result.issuer, result.verification_method) == ("ldp", didkit_run["did"], didkit_run["vm"])
    changed = json.loads(json.dumps(credential))
    changed["credentialSubject"]["id"] = "did:example:someone-else"
    result = Verifier(Resolver()).verify_credential(changed)
    assert not result.verified and "proof.signature_invalid" in {p.code for p in result.problems}


def test_didkit_jwt_verifies_in_cead(didkit_run):
    token = didkit_run["jwt"]
    result = Verifier(Resolver()).verify_credential(token)
    assert result.verified, result.problems
    assert result.format == "jwt" and result.issuer == didkit_run["did"]
    assert result.document["credentialSubject"]["id"] == SUBJECT
    assert result.document["issuanceDate"] == "2024-01-01T00:00:00Z"
    result = Verifier(Resolver()).verify_credential(tampered(token))
    assert not result.verified and "jose.signature_invalid" in {p.code for p in result.problems}


@pytest.mark.parametrize("name", ["ed25519", "p256"])
def test_cead_jwt_verifies_in_didkit(didkit_run, name):
    assert didkit_run["tokens"][name]["errors"] == [], didkit_run["tokens"][name]
    assert "JWS" in didkit_run["tokens"][name]["checks"]


def test_didkit_rejects_tampered_cead_jwt(didkit_run):
    assert didkit_run["tokens"]["tampered"]["errors"]
