"""One reading of every document (issue 11): JSON naming a member twice is refused wherever Cead parses JSON from
outside, with ``json.duplicate_member`` naming the member (a reader keeping the first value and one keeping the last
would otherwise see two different documents)."""
import json

import pytest
from jwcrypto import jwk, jws

from issuer.app import create_app
from issuer.keys import PrivateKey
from schemas.values import DuplicateMember, load_document, strict_json
from verifier.binding import decode_manifest, decode_presentation
from verifier.did import Resolver, did_key
from verifier.jose import unverified_claims, verify_jwt
from verifier.keys import ED25519, b64url
from verifier.results import CeadError

from issuer_fixtures import certification, ready_node, token


def test_strict_json_refuses_duplicates_at_any_depth():
    assert strict_json('{"a": [{"b": 1}, {"b": 2}], "c": {"d": null}}') == {"a": [{"b": 1}, {"b": 2}],
                                                                            "c": {"d": None}}
    for text, member in (('{"aud": "a", "aud": "b"}', "aud"),
                         ('{"credentialSubject": {"recipients": ["x"], "recipients": ["y"]}}', "recipients"),
                         ('[{"k": 1, "k": 1}]', "k")):
        with pytest.raises(DuplicateMember) as info:
            strict_json(text, "the JWT payload")
        assert info.value.code == "json.duplicate_member" and info.value.detail["member"] == member
        assert info.value.message.startswith("The JWT payload names")
    with pytest.raises(ValueError):
        strict_json('{"n": NaN}')
    with pytest.raises(ValueError, match="more than once"):
        load_document('{"a": 1, "a": 2}', "policy.yaml")


def test_a_signed_jwt_with_a_duplicated_claim_is_refused():
    key = PrivateKey.generate(ED25519)
    did = did_key(key.public)
    kid = f"{did}#{did[8:]}"
    payload = ('{"@context": ["https://www.w3.org/ns/credentials/v2"], "type": ["VerifiableCredential"], '
               f'"issuer": "{did}", "credentialSubject": {{"id": "did:example:a", "id": "did:example:b"}}}}')
    token = jws.JWS(payload.encode())
    token.add_signature(jwk.JWK(**key.private_jwk()), alg="EdDSA",
                        protected=json.dumps({"alg": "EdDSA", "kid": kid, "typ": "vc+jwt"}))
    compact = token.serialize(compact=True)     # a valid signature over a payload with two readings
    with pytest.raises(CeadError) as info:
        verify_jwt(compact, Resolver(), "vc+jwt", "assertionMethod")
    assert info.value.code == "json.duplicate_member" and info.value.detail["member"] == "id"
    with pytest.raises(CeadError) as info:
        unverified_claims(compact)
    assert info.value.code == "json.duplicate_member"
    header = b64url(b'{"alg": "EdDSA", "alg": "none", "kid": "x"}')
    with pytest.raises(CeadError) as info:
        verify_jwt(f"{header}.{compact.split('.', 1)[1]}", Resolver(), "vc+jwt", "assertionMethod")
    assert info.value.code == "json.duplicate_member" and info.value.detail["member"] == "alg"


def test_presentation_and_manifest_headers_with_duplicates_are_refused():
    vp = b64url(b'{"type": ["VerifiablePresentation"], "holder": "did:web:a.example", "holder": "did:web:b.example"}')
    with pytest.raises(CeadError) as info:
        decode_presentation(vp)
    assert info.value.code == "json.duplicate_member" and info.value.detail["member"] == "holder"
    manifest = b64url(b'{"dataset": "x", "columns": ["a"], "rowCount": 1, "rowCount": 1000000}')
    with pytest.raises(CeadError) as info:
        decode_manifest(manifest)
    assert info.value.code == "json.duplicate_member" and info.value.detail["member"] == "rowCount"


def test_request_bodies_with_duplicates_are_refused(tmp_path):
    node = ready_node(tmp_path / "h")
    client = create_app(node).test_client()
    tok = token(node)
    body = json.dumps({"credential": certification(node.did)})
    duplicated = body[:-1] + ', "credential": {}}'
    r = client.post("/credentials/issue", data=duplicated, content_type="application/json",
                    headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 400
    assert r.get_json()["error"]["code"] == "json.duplicate_member"
    assert r.get_json()["error"]["detail"]["member"] == "credential"
    assert client.post("/credentials/issue", data=body, content_type="application/json",
                       headers={"Authorization": f"Bearer {tok}"}).status_code == 201


def test_the_wallets_request_endpoint_and_the_verifier_service_refuse_duplicates(tmp_path):
    from wallet.sharing import receive
    from wallet.store import Wallet
    node = ready_node(tmp_path / "h")
    status, answer = receive(Wallet.from_node(node), b'{"request": {}, "request": {}, "presentation": {}}',
                             "https://fife.example/requests")
    assert status == 400 and answer["problems"][0]["code"] == "json.duplicate_member"

    from verifier.decision import Decider
    from verifier.policy import parse_policy
    from verifier.app import create_app as verifier_app
    app = verifier_app(Decider(parse_policy({})))
    r = app.test_client().post("/credentials/verify", data=b'{"verifiableCredential": {}, "verifiableCredential": 1}',
                               content_type="application/json")
    assert r.status_code == 400 and r.get_json()["errors"][0]["code"] == "json.duplicate_member"
