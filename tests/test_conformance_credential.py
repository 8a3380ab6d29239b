"""VC Data Model 2.0 and VC-JOSE-COSE conformance: dateTimeStamp formats, the validity window, NumericDate claims,
did:web ports; and the issuer refusing to sign what its own verifier would refuse."""
from __future__ import annotations

import pytest

from issuer.keys import PrivateKey
from issuer.signing import add_proof, sign_jwt
from verifier.credential import Verifier, is_datetime_stamp
from verifier.did import did_key, did_web_url
from verifier.keys import ED25519
from verifier.results import CeadError

from issuer_fixtures import certification, ready_node

V2 = "https://www.w3.org/ns/credentials/v2"
V1 = "https://www.w3.org/2018/credentials/v1"


@pytest.fixture(scope="module")
def party():
    key = PrivateKey.generate(ED25519)
    did = did_key(key.public)
    return key, did, f"{did}#{did[8:]}"


def credential(did, **extra):
    doc = {"@context": [V2], "id": "urn:uuid:3f1c7f4e-0000-4000-8000-000000000002",
           "type": ["VerifiableCredential"], "issuer": did, "validFrom": "2025-01-01T00:00:00Z",
           "credentialSubject": {"id": "did:example:subject", "name": "Alice"}}
    doc.update(extra)
    return doc


def codes(result):
    return {p.code for p in result.problems}


NOT_DATETIME_STAMPS = [
    "20250101T000000Z",             # ISO 8601 basic format
    "2025-01-01 00:00:00Z",         # space for T
    "2025-01-01T00:00Z",            # no seconds
    "2025-01-01T00Z",               # hour only
    "2025-W01-3T00:00:00Z",         # ISO week date
    "2025-01-01T00:00:00+0000",     # offset without colon
    "2025-01-01T00:00:00z",         # lower-case z
    " 2025-01-01T00:00:00Z",        # surrounding space
    "2025-01-01",                   # a date, not a dateTime
]


@pytest.mark.parametrize("value", NOT_DATETIME_STAMPS)
def test_vc2_dates_must_be_xsd_datetime_stamps(party, value):
    key, did, vm = party
    for name in ("validFrom", "validUntil"):
        signed = add_proof(credential(did, **{name: value}), key, vm, cryptosuite="eddsa-jcs-2022")
        result = Verifier().verify_credential(signed)
        assert not result.verified and "credential.date_invalid" in codes(result), (name, value, codes(result))


@pytest.mark.parametrize("value", ["2025-01-01T00:00:00Z", "2025-01-01T00:00:00.123456789Z",
                                   "2025-01-01T01:00:00+01:00", "2025-01-01T00:00:00-00:00"])
def test_vc2_valid_datetime_stamps_are_accepted(party, value):
    key, did, vm = party
    signed = add_proof(credential(did, validFrom=value), key, vm, cryptosuite="eddsa-jcs-2022")
    assert Verifier().verify_credential(signed).verified
    assert is_datetime_stamp(value)


def test_valid_until_before_valid_from_is_refused(party):
    """VC 2.0: validFrom MUST be the same as or earlier than validUntil. Within the clock skew both bounds of an
    inverted window could otherwise pass."""
    key, did, vm = party
    signed = add_proof(credential(did, validFrom="2025-06-01T12:02:00Z", validUntil="2025-06-01T12:01:00Z"),
                       key, vm, cryptosuite="eddsa-jcs-2022")
    from datetime import datetime, timezone
    result = Verifier().verify_credential(signed, now=datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc))
    assert not result.verified and "credential.date_invalid" in codes(result)


@pytest.mark.parametrize("claims", [{"exp": 1e300}, {"nbf": 1e300}, {"exp": -1e300}, {"nbf": 10 ** 30},
                                    {"iat": 1e300}])
def test_out_of_range_numeric_dates_are_malformed_not_internal_errors(party, claims):
    key, did, vm = party
    token = sign_jwt({**credential(did), **claims}, key, vm)
    result = Verifier().verify_credential(token)
    assert not result.verified and codes(result) == {"jose.malformed"}, codes(result)


def test_did_web_port_must_be_ascii_digits():
    assert did_web_url("did:web:example.com%3A8443") == "https://example.com:8443/.well-known/did.json"
    with pytest.raises(CeadError) as err:                 # Arabic-Indic "80": int() reads it, a URL does not
        did_web_url("did:web:example.com%3A%D9%A8%D9%A0")
    assert err.value.code == "did.invalid"


@pytest.mark.parametrize("value", NOT_DATETIME_STAMPS)
def test_issuer_refuses_dates_its_verifier_would_refuse(tmp_path_factory, value):
    from issuer import issuing
    node = _node(tmp_path_factory)
    for name in ("validFrom", "validUntil"):
        with pytest.raises(CeadError) as err:
            issuing.check_request(node, {**certification(node.did), name: value}, {})
        assert err.value.code == "credential.invalid" and err.value.detail.get("field") == name, value


def test_issuer_accepts_datetime_stamps(tmp_path_factory):
    from issuer import issuing
    node = _node(tmp_path_factory)
    cred, _, _ = issuing.check_request(node, {**certification(node.did), "validFrom": "2025-01-01T00:00:00Z",
                                              "validUntil": "2030-01-01T00:00:00.5+01:00"}, {})
    assert cred["validUntil"] == "2030-01-01T00:00:00.5+01:00"


_NODES: dict = {}


def _node(tmp_path_factory):
    if "node" not in _NODES:
        _NODES["node"] = ready_node(tmp_path_factory.mktemp("conformance") / "h")
    return _NODES["node"]


@pytest.mark.parametrize("status", [["revoked"], {"status": "revoked"}, 1, None])
def test_status_request_with_a_non_string_status_is_request_invalid(status):
    """VC-API POST /credentials/status: a list or object as `status` was a TypeError (a 500), not a 400."""
    from issuer import issuing
    with pytest.raises(CeadError) as err:
        issuing.parse_status_request({"credentialId": "urn:uuid:x",
                                      "credentialStatus": [{"type": "BitstringStatusListCredential",
                                                            "status": status}]})
    assert err.value.code == "request.invalid" and err.value.detail.get("field") == "status"
