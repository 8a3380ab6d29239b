"""One request shares one RDF canonicalization budget, however many Data Integrity documents it packs."""
from issuer.keys import PrivateKey
from issuer.signing import add_proof, sign_jwt
from verifier import rdfc
from verifier.credential import Verifier
from verifier.did import did_key


def _twins_credential(key, did):
    # two anonymous subjects with identical statements: their blank nodes need RDFC's n-degree hashing
    return add_proof({"@context": ["https://www.w3.org/ns/credentials/v2"], "type": ["VerifiableCredential"],
                      "issuer": did, "credentialSubject": [{"name": "twin"}, {"name": "twin"}]},
                     key, f"{did}#{did[8:]}")


def _calls_one_needs(credential, monkeypatch) -> int:
    """The smallest request budget with which the credential verifies (0: it never did)."""
    for budget in range(1, 200):
        monkeypatch.setattr(rdfc, "REQUEST_MAX_CALLS", budget)
        if Verifier().verify_credential(credential).verified:
            monkeypatch.undo()
            return budget
    monkeypatch.undo()
    return 0


def test_the_budget_spans_every_credential_in_a_presentation(monkeypatch):
    key = PrivateKey.generate()
    did = did_key(key.public)
    credential = _twins_credential(key, did)
    assert Verifier().verify_credential(credential).verified
    one = _calls_one_needs(credential, monkeypatch)
    assert one >= 1                                   # it does draw on the budget
    vp = sign_jwt({"@context": ["https://www.w3.org/ns/credentials/v2"], "type": ["VerifiablePresentation"],
                   "holder": did, "verifiableCredential": [credential] * 3, "nonce": "n"},
                  key, f"{did}#{did[8:]}", typ="vp+jwt")
    assert Verifier().verify_presentation(vp, nonce="n").verified
    monkeypatch.setattr(rdfc, "REQUEST_MAX_CALLS", one * 2)     # enough for each credential alone, not for three
    result = Verifier().verify_presentation(vp, nonce="n")
    assert not result.verified
    codes = [p.code for c in result.credentials for p in c.problems] + [p.code for p in result.problems]
    assert "rdfc.too_complex" in codes
    assert Verifier().verify_credential(credential).verified    # a single credential still fits
