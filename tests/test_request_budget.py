"""One request shares one RDF canonicalization budget, however many Data Integrity documents it packs."""
from issuer.keys import PrivateKey
from issuer.signing import add_proof, sign_jwt
from verifier.context import Limits, VerificationContext
from verifier.credential import Verifier
from verifier.did import did_key


def _twins_credential(key, did):
    # two anonymous subjects with identical statements: their blank nodes need RDFC's n-degree hashing
    return add_proof({"@context": ["https://www.w3.org/ns/credentials/v2"], "type": ["VerifiableCredential"],
                      "issuer": did, "credentialSubject": [{"name": "twin"}, {"name": "twin"}]},
                     key, f"{did}#{did[8:]}")


def _budgeted(calls: int) -> Verifier:
    """A verifier whose work limits (passed in through its context) allow ``calls`` canonicalisation calls."""
    return Verifier(context=VerificationContext(limits=Limits(rdfc_calls=calls)))


def _calls_one_needs(credential) -> int:
    """The smallest request budget with which the credential verifies (0: it never did)."""
    for budget in range(1, 200):
        if _budgeted(budget).verify_credential(credential).verified:
            return budget
    return 0


def test_the_budget_spans_every_credential_in_a_presentation():
    key = PrivateKey.generate()
    did = did_key(key.public)
    credential = _twins_credential(key, did)
    assert Verifier().verify_credential(credential).verified
    one = _calls_one_needs(credential)
    assert one >= 1                                   # it does draw on the budget
    vp = sign_jwt({"@context": ["https://www.w3.org/ns/credentials/v2"], "type": ["VerifiablePresentation"],
                   "holder": did, "verifiableCredential": [credential] * 3, "nonce": "n"},
                  key, f"{did}#{did[8:]}", typ="vp+jwt")
    assert Verifier().verify_presentation(vp, nonce="n").verified
    result = _budgeted(one * 2).verify_presentation(vp, nonce="n")   # enough for each credential alone, not for three
    assert not result.verified
    codes = [p.code for c in result.credentials for p in c.problems] + [p.code for p in result.problems]
    assert "rdfc.too_complex" in codes
    assert _budgeted(one * 2).verify_credential(credential).verified    # a single credential still fits
