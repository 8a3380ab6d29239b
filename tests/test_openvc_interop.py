"""Interop both ways with openvc-core, an independent Python implementation (LGPL-3.0; a test dependency only):
it issues VC-JWT credentials on Ed25519, P-256 and P-384 keys that Cead's verifier accepts, and it verifies the
eddsa-jcs-2022 and eddsa-rdfc-2022 Data Integrity credentials a Cead node issues. (openvc reads JWT credentials only
with an ``iss`` claim, the VC 1.1 JWT encoding; a VC 2.0 ``vc+jwt`` claim set, which is the credential itself, has
none, so that one direction is covered by didkit instead.) Beside
tests/test_didkit_interop.py (didkit, Rust). Tampering on either side is refused by the other."""
from __future__ import annotations

import json

import pytest

ovc = pytest.importorskip("openvc")

from cryptography.hazmat.primitives.asymmetric import ec, ed25519          # noqa: E402

from issuer import issuing                                                  # noqa: E402
from issuer.keys import PrivateKey                                          # noqa: E402
from issuer.node import Node                                                # noqa: E402
from issuer_fixtures import PASS                                            # noqa: E402
from verifier.credential import Verifier                                    # noqa: E402
from verifier.did import Resolver, did_key                                  # noqa: E402
from verifier.keys import P256, P384, PublicKey                             # noqa: E402

V1 = "https://www.w3.org/2018/credentials/v1"
V2 = "https://www.w3.org/ns/credentials/v2"


def _openvc_key(kind):
    """An openvc signing key and its did:key DID URL (the did:key is encoded by Cead, resolved by both)."""
    if kind == "Ed25519":
        private = ed25519.Ed25519PrivateKey.generate()
        public = PublicKey.from_crypto(private.public_key())
        did = did_key(public)
        return ovc.Ed25519SigningKey(private, f"{did}#{did[8:]}"), did
    curve = ec.SECP256R1() if kind == P256 else ec.SECP384R1()
    private = ec.generate_private_key(curve)
    did = did_key(PublicKey.from_crypto(private.public_key()))
    cls = ovc.P256SigningKey if kind == P256 else ovc.P384SigningKey
    return cls(private, f"{did}#{did[8:]}"), did


@pytest.mark.parametrize("kind", ["Ed25519", P256, P384])
def test_cead_verifies_what_openvc_issues(kind):
    from openvc.proof.vc_jwt import VcJwtProofSuite
    key, did = _openvc_key(kind)
    credential = {"@context": [V1], "id": "urn:uuid:3a6f6f0e-2f67-4c1e-9a8e-6d7b7b5f0a11",
                  "type": ["VerifiableCredential"], "issuer": did, "issuanceDate": "2026-01-01T00:00:00Z",
                  "credentialSubject": {"id": "did:example:staff-member-7"}}
    token = VcJwtProofSuite().sign(credential, signing_key=key)
    result = Verifier(resolver=Resolver()).verify_credential(token)
    assert result.verified, [p.to_dict() for p in result.problems]
    assert result.issuer == did and result.document["credentialSubject"]["id"] == "did:example:staff-member-7"
    head, payload, sig = token.split(".")
    forged = f"{head}.{payload}.{sig[:-6]}{'AAAAAA' if not sig.endswith('AAAAAA') else 'BBBBBB'}"
    assert not Verifier(resolver=Resolver()).verify_credential(forged).verified


@pytest.fixture
def did_key_node(tmp_path):
    node, _ = Node.init(tmp_path / "h", "Training provider", PASS, did_method="key")
    node._passphrase = PASS
    return node


def _training(node) -> dict:
    return {"@context": [V2], "type": ["VerifiableCredential"], "issuer": node.did,
            "credentialSubject": {"id": "did:example:staff-member-7"}}


@pytest.mark.parametrize("options", [{"cryptosuite": "eddsa-jcs-2022"}, {"cryptosuite": "eddsa-rdfc-2022"}])
def test_openvc_verifies_what_cead_issues(did_key_node, options):
    issued = issuing.issue(did_key_node, _training(did_key_node), options, scopes=["issue:any"])
    credential = issued.verifiable_credential
    result = ovc.verify_credential(credential, policy=ovc.VerificationPolicy(require_status=False))
    assert result.issuer == did_key_node.did
    assert result.credential["credentialSubject"]["id"] == "did:example:staff-member-7"
    tampered = json.loads(json.dumps(credential))
    tampered["credentialSubject"]["id"] = "did:example:someone-else"
    with pytest.raises(ovc.OpenvcError):
        ovc.verify_credential(tampered, policy=ovc.VerificationPolicy(require_status=False))
