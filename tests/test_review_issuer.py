"""Review of the issuer node: what a caller can get signed, bad input that must be a 4xx and never a 500."""
import json
import uuid

import pytest

from issuer import issuing
from issuer.app import create_app
from issuer.node import Node
from verifier.credential import Verifier
from verifier.did import Resolver

from issuer_fixtures import PASS, certification, counts, make_node, ready_node, token

FORMATS = [{}, {"format": "vc+jwt"}, {"cryptosuite": "eddsa-jcs-2022"}]


@pytest.fixture
def node(tmp_path):
    return ready_node(tmp_path / "h")


def issue(client, tok, credential, options):
    return client.post("/credentials/issue", data=json.dumps({"credential": credential, "options": options}),
                       headers={"Authorization": f"Bearer {tok}"}, content_type="application/json")


def test_a_vc_claim_cannot_smuggle_another_credential_into_a_jwt(tmp_path):
    """A VC 1.1 reader takes a JWT's ``vc`` claim as the whole credential. A token that may only issue
    certifications must not get a verifying approval (unchecked subject, no status entry) signed that way."""
    node, _ = Node.init(tmp_path / "k", "Service", PASS, did_method="key", public_url="https://k.example")
    smuggled = {"@context": ["https://www.w3.org/ns/credentials/v2", "https://w3id.org/cead/v1"],
                "type": ["VerifiableCredential", "DataSharingApprovalCredential"], "issuer": node.did,
                "validFrom": "2025-01-01T00:00:00Z",
                "credentialSubject": {"recipients": ["did:web:evil.example"], "anything": "goes"}}
    with pytest.raises(issuing.CeadError) as err:
        issuing.issue(node, {**certification(node.did), "vc": smuggled}, {"format": "vc+jwt"},
                      scopes=["issue:certification"])
    assert err.value.code == "credential.invalid" and err.value.detail["field"] == "vc"
    assert counts(node) == (0, 0)
    # what is still signed verifies as exactly what the node checked
    issued = issuing.issue(node, certification(node.did), {"format": "vc+jwt"}, scopes=["issue:certification"])
    result = Verifier(Resolver()).verify_credential(issued.credential)
    assert result.verified and "OrganisationCertificationCredential" in result.document["type"]


@pytest.mark.parametrize("claim, value", [("vc", {"type": "VerifiableCredential"}), ("vp", {}),
                                          ("iss", "did:web:evil.example"), ("exp", 1), ("nbf", 4102444800),
                                          ("sub", "did:web:evil.example"), ("cnf", {"kid": "x"})])
def test_jwt_claims_in_the_request_are_refused(node, claim, value):
    client = create_app(node).test_client()
    tok = token(node)
    for options in FORMATS:
        resp = issue(client, tok, {**certification(node.did), claim: value}, options)
        assert resp.status_code == 400, (claim, options, resp.get_json())
        assert resp.get_json()["error"]["code"] == "credential.invalid"
        assert resp.get_json()["error"]["detail"]["field"] == claim
    assert counts(node) == (0, 0)


@pytest.mark.parametrize("changes, field", [
    ({"validUntil": "garbage"}, "validUntil"),
    ({"validFrom": "2025-01-01T00:00:00"}, "validFrom"),                       # no time zone
    ({"validFrom": ["2025-01-01T00:00:00Z"]}, "validFrom"),
    ({"validFrom": "2030-01-01T00:00:00Z", "validUntil": "2026-01-01T00:00:00Z"}, "validUntil"),
    ({"validUntil": "2000-01-01T00:00:00Z"}, "validUntil"),                    # before the default validFrom (now)
    ({"type": ["VerifiableCredential", "OrganisationCertificationCredential", 5]}, "type"),
    ({"type": ["VerifiableCredential", "OrganisationCertificationCredential", {"id": "x"}]}, "type"),
])
def test_credentials_that_could_never_verify_are_refused_not_signed(node, changes, field):
    client = create_app(node).test_client()
    tok = token(node)
    for options in FORMATS:
        resp = issue(client, tok, {**certification(node.did), **changes}, options)
        assert resp.status_code == 400, (changes, options, resp.get_json())
        error = resp.get_json()["error"]
        assert error["code"] == "credential.invalid" and error["detail"]["field"] == field
    assert counts(node) == (0, 0)


def test_a_valid_window_is_still_accepted(node):
    client = create_app(node).test_client()
    tok = token(node)
    cred = {**certification(node.did), "validFrom": "2025-01-01T00:00:00Z", "validUntil": "2031-01-01T00:00:00+01:00"}
    assert issue(client, tok, cred, {"format": "vc+jwt"}).status_code == 201


def test_an_issuer_object_naming_two_ids_is_refused(node):
    client = create_app(node).test_client()
    tok = token(node)
    for issuer in ({"id": node.did, "@id": "did:web:evil.example"}, {"@id": "did:web:evil.example"}):
        for options in FORMATS:
            resp = issue(client, tok, {**certification(node.did), "issuer": issuer}, options)
            assert resp.status_code == 400, (issuer, options, resp.get_json())
            assert resp.get_json()["error"]["code"] == "credential.issuer_mismatch"
    assert counts(node) == (0, 0)
    assert issue(client, tok, {**certification(node.did), "issuer": {"@id": node.did, "name": "Fife"}},
                 {"format": "vc+jwt"}).status_code == 201


def test_a_status_list_id_too_large_for_the_database_is_a_404(node):
    client = create_app(node).test_client()
    for path in ("/status/99999999999999999999999", f"/status/{2 ** 63}"):
        resp = client.get(path)
        assert resp.status_code == 404, resp.get_data()
        assert resp.get_json()["error"]["code"] == "status.list_not_found"
    cred = {**certification(node.did), "id": f"urn:uuid:{uuid.uuid4()}"}
    issuing.issue(node, cred)
    assert client.get("/status/1").status_code == 200


def test_keys_and_config_reach_the_disk_before_they_are_relied_on(tmp_path, monkeypatch):
    """A crash right after ``cead init`` or ``cead key rotate`` must not leave an empty config.yaml or key file:
    each is fsynced before it is renamed into place or named by the config. config.yaml is mode 0600."""
    import os
    import stat
    synced: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    def replace(src, dst):
        assert str(src) in synced, f"{src} renamed into place before it was flushed to disk"
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    node = make_node(tmp_path / "h", public_url="https://fife.example")
    node._passphrase = PASS
    assert any(p.endswith("keys/key-1.pem") for p in synced)
    synced.clear()
    node.rotate_key()
    assert any(p.endswith("keys/key-2.pem") for p in synced)
    assert any(p.endswith("config.yaml.tmp") for p in synced)
    assert stat.S_IMODE((tmp_path / "h" / "config.yaml").stat().st_mode) == 0o600
