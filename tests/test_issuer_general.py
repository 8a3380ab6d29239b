"""The general issuing profile (scope issue:any): any well-formed VC 2.0 or VC 1.1 credential, signed as this node in
every format it supports, with status entries on request, after the same document checks a verifier runs. Cead's
own three types keep their scopes, schema checks and guard rails. The request shapes follow the VC Data Model 2.0
and VC-API specifications' examples (several subjects, termsOfUse, evidence, refreshService, relatedResource,
credentialSchema, the examples context)."""
from __future__ import annotations

import copy
import json

import pytest
import requests

from issuer.app import create_app
from issuer_fixtures import certification, counts, https_node, ready_node, token
from verifier.credential import Verifier
from verifier.did import Resolver
from verifier.http import Fetcher
from verifier.status import StatusLists

V2 = "https://www.w3.org/ns/credentials/v2"
EXAMPLES = "https://www.w3.org/ns/credentials/examples/v2"


def degree(issuer: str) -> dict:
    """VC Data Model 2.0 example 'A simple example of a verifiable credential', grown with the optional parts."""
    return {
        "@context": [V2, EXAMPLES],
        "id": "http://university.example/credentials/3732",
        "type": ["VerifiableCredential", "ExampleDegreeCredential"],
        "issuer": {"id": issuer, "name": "Example University"},
        "validFrom": "2010-01-01T00:00:00Z",
        "credentialSubject": [
            {"id": "did:example:ebfeb1f712ebc6f1c276e12ec21",
             "degree": {"type": "ExampleBachelorDegree", "name": "Bachelor of Science and Arts"}},
            {"id": "did:example:c276e12ec21ebfeb1f712ebc6f1", "name": "Second subject"},
        ],
        "termsOfUse": {"type": "ExampleTermsOfUsePolicy", "prohibition": [{"action": ["Archival"]}]},
        "evidence": [{"id": "https://university.example/evidence/f2aeec97", "type": ["ExampleEvidence"],
                      "verifier": "https://university.example/issuers/14"}],
        "refreshService": {"id": "https://university.example/refresh/3732", "type": "ExampleRefreshService"},
        "relatedResource": [{"id": "https://www.w3.org/ns/credentials/v2",
                             "digestSRI": "sha384-abc123"}],
        "credentialSchema": {"id": "https://university.example/schemas/degree.json", "type": "JsonSchema"},
    }


def vc11(issuer: str) -> dict:
    return {"@context": ["https://www.w3.org/2018/credentials/v1", "https://www.w3.org/ns/credentials/examples/v2"],
            "type": ["VerifiableCredential", "ExampleAlumniCredential"], "issuer": issuer,
            "issuanceDate": "2010-01-01T19:23:24Z",
            "credentialSubject": {"id": "did:example:ebfeb1f712ebc6f1c276e12ec21", "alumniOf": "Example University"}}


def test_general_credentials_issue_in_every_format_and_verify(tmp_path):
    with https_node(tmp_path / "h") as (node, base_url, ca_bundle):
        tok = token(node, "issue:any,status:change", name="training")
        fetcher = Fetcher(allow_private=True, ca_bundle=ca_bundle)
        verifier = Verifier(resolver=Resolver(fetcher), status=StatusLists(fetcher, ttl=0))

        def issue(credential, options=None):
            return requests.post(base_url + "/credentials/issue", json={"credential": credential,
                                 "options": options or {}}, headers={"Authorization": f"Bearer {tok}"},
                                 verify=ca_bundle, timeout=10)

        for options in ({"cryptosuite": "eddsa-rdfc-2022"}, {"cryptosuite": "eddsa-jcs-2022"}, {"format": "vc+jwt"},
                        {"format": "vc+jwt", "alg": "ES256"}):
            credential = degree(node.did)
            credential["id"] += "/" + (options.get("cryptosuite") or options.get("alg", "EdDSA"))
            resp = issue(credential, options)
            assert resp.status_code == 201, (options, resp.text)
            vc = resp.json()["verifiableCredential"]
            result = verifier.verify_credential(vc)
            codes = [p.code for p in result.problems]
            # Cead's verifier fetches no schema: the one thing it says of this credential is that it could not
            # validate the example schema; the proof, issuer and data model are all fine.
            assert codes == ["credential.schema_unknown"], (options, codes)
            doc = result.document
            assert "credentialStatus" not in doc          # status only on request
            assert doc["issuer"] == {"id": node.did, "name": "Example University"}
            assert len(doc["credentialSubject"]) == 2

        # status on request, in the VC-API shape; revocation then shows
        plain = {k: v for k, v in degree(node.did).items() if k != "credentialSchema"}
        plain["id"] = "urn:uuid:5e1b7bd4-7a38-4b61-9c8a-1c0f8f0c0a01"
        resp = issue(plain, {"credentialStatus": {"type": "BitstringStatusListEntry",
                                                  "statusPurpose": ["revocation", "suspension"]}})
        assert resp.status_code == 201, resp.text
        vc = resp.json()["verifiableCredential"]
        assert len(vc["credentialStatus"]) == 2
        assert verifier.verify_credential(vc).verified
        resp = requests.post(base_url + "/credentials/status", json={"credentialId": plain["id"], "credentialStatus": [
            {"type": "BitstringStatusListCredential", "status": "revoked"}]}, headers={"Authorization": f"Bearer {tok}"},
            verify=ca_bundle, timeout=10)
        assert resp.status_code == 200, resp.text
        assert "status.revoked" in [p.code for p in verifier.verify_credential(vc).problems]

        # VC 1.1 for older peers: Data Integrity, issuanceDate kept, the Data Integrity context added
        resp = issue(vc11(node.did), {"cryptosuite": "eddsa-rdfc-2022"})
        assert resp.status_code == 201, resp.text
        vc = resp.json()["verifiableCredential"]
        assert vc["@context"][0] == "https://www.w3.org/2018/credentials/v1" and vc["issuanceDate"]
        result = verifier.verify_credential(vc)
        assert result.verified, [p.to_dict() for p in result.problems]


@pytest.mark.parametrize("change,options,field", [
    (lambda c: c.update({"validFrom": "2010-01-01T00:00:00Z"}), {}, "validFrom"),            # VC 2.0 term in 1.1
    (lambda c: None, {"format": "vc+jwt"}, "format"),                                          # VC-JOSE is for 2.0
    (lambda c: None, {"credentialStatus": {"type": "BitstringStatusListEntry"}}, "credentialStatus"),
    (lambda c: c.update({"@context": ["https://www.w3.org/2018/credentials/v1",
                                      "https://example.org/unpinned/v1"]}), {}, None),
    (lambda c: c.update({"credentialSubject": []}), {}, "credentialSubject"),
    (lambda c: c.update({"credentialSubject": [{}, {"id": "did:example:1"}]}), {}, "credentialSubject"),
])
def test_vc11_and_malformed_general_requests_refused_with_400(tmp_path, change, options, field):
    node = ready_node(tmp_path / "h")
    client = create_app(node).test_client()
    tok = token(node, "issue:any")
    credential = vc11(node.did)
    change(credential)
    before = counts(node)
    resp = client.post("/credentials/issue", json={"credential": credential, "options": options},
                       headers={"Authorization": f"Bearer {tok}"})
    assert resp.status_code == 400, resp.get_json()
    error = resp.get_json()["error"]
    assert error["code"] in ("credential.invalid", "options.invalid")
    if field:
        assert error["detail"]["field"] == field
    assert counts(node) == before                 # nothing signed, nothing stored


def test_cead_types_keep_their_scopes_and_guard_rails(tmp_path):
    """issue:any never reaches Cead's three types: a certification still needs issue:certification and its
    typed-model check; a token without issue:any cannot issue another type."""
    node = ready_node(tmp_path / "h")
    client = create_app(node).test_client()
    general = token(node, "issue:any", name="general")
    resp = client.post("/credentials/issue", json={"credential": certification(node.did)},
                       headers={"Authorization": f"Bearer {general}"})
    assert resp.status_code == 403 and resp.get_json()["error"]["detail"]["scope"] == "issue:certification"
    bad_cert = certification(node.did)
    del bad_cert["credentialSubject"]["legalName"]
    full = token(node, "issue:any,issue:certification", name="full")
    resp = client.post("/credentials/issue", json={"credential": bad_cert}, headers={"Authorization": f"Bearer {full}"})
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "schema.invalid"
    narrow = token(node, "issue:certification", name="narrow")
    resp = client.post("/credentials/issue", json={"credential": degree(node.did)},
                       headers={"Authorization": f"Bearer {narrow}"})
    assert resp.status_code == 403 and resp.get_json()["error"]["detail"]["scope"] == "issue:any"
    two = copy.deepcopy(certification(node.did))
    two["type"].append("DataSharingApprovalCredential")
    resp = client.post("/credentials/issue", json={"credential": two}, headers={"Authorization": f"Bearer {full}"})
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "credential.type_unknown"
