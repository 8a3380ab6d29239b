"""The issuer's guard rail verifies the signer's own delegation before signing anything under it: its proof (a
delegation altered after signing, or made up and signed by a key not its issuer's, is refused) and its chain back
to the organisation it acts for (through the delegations it rests on, given with it or kept in HOME/delegations/),
every link in force. Real nodes, served over HTTPS on 127.0.0.1 (DID documents and status lists), real SQLite."""
from __future__ import annotations

import base64
import json
import uuid

import pytest

from issuer import issuing
from issuer.app import create_app
from issuer.signing import add_proof
from schemas.models import credential_digest
from verifier.keys import ED25519
from wallet.store import jwt_payload

from issuer_fixtures import V2_CEAD, counts, delegation, served_nodes, token
from test_wallet_support import approval_subject, identity

MEALS, PUPILS = "https://data.fife.example/meals", "https://data.fife.example/pupils"
PURPOSE = "cead:FreeSchoolMealAutoEnrolment"


@pytest.fixture
def nodes(tmp_path):
    """A council (the controller), its DPO's node and an IAO's node."""
    with served_nodes(tmp_path, "council", "dpo", "iao") as served:
        yield served


def post(node, body: dict) -> tuple[int, dict]:
    """POST /credentials/issue with a token that may issue every kind."""
    secret = token(node, name=f"tester-{uuid.uuid4().hex[:8]}")
    response = create_app(node).test_client().post("/credentials/issue", json=body,
                                                   headers={"Authorization": f"Bearer {secret}"})
    return response.status_code, response.get_json()


def sub_delegation(parent_signed, delegate: str, controller: str, datasets: list[str]) -> dict:
    """An unsigned child of ``parent_signed`` for the parent's delegate to issue."""
    doc = jwt_payload(parent_signed) if isinstance(parent_signed, str) else parent_signed
    return {"@context": V2_CEAD, "type": ["VerifiableCredential", "DelegatedAuthorityCredential"],
            "credentialSubject": {"id": delegate, "role": "InformationAssetOwner", "onBehalfOf": controller,
                                  "allowedActions": ["ApproveDisclosure"],
                                  "scope": {"datasets": datasets, "maxDelegationDepth": 0},
                                  "parentDelegation": {"id": doc["id"], "digest": credential_digest(parent_signed)}}}


def approval(discloser: str, recipient: str, chain: list) -> dict:
    return {"@context": V2_CEAD, "type": ["VerifiableCredential", "DataSharingApprovalCredential"],
            "credentialSubject": approval_subject(discloser, recipient, datasets=[MEALS], purposes=[PURPOSE],
                                                  chain=chain)}


def widened_jwt(token_: str, datasets: list[str]) -> str:
    """The compact vc+jwt with its payload's scope changed and its signature kept."""
    header, payload, signature = token_.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["credentialSubject"]["scope"]["datasets"] = datasets
    encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{encoded}.{signature}"


@pytest.mark.parametrize("fmt", ["eddsa-rdfc-2022", "vc+jwt"])
def test_a_delegation_widened_after_signing_is_refused_and_nothing_is_recorded(nodes, fmt):
    council, dpo = nodes["council"], nodes["dpo"]
    options = {"format": "vc+jwt"} if fmt == "vc+jwt" else {"cryptosuite": fmt}
    genuine = delegation(council, dpo.did, {"datasets": [MEALS]}, role="DataProtectionOfficer",
                         options=options).credential
    if fmt == "vc+jwt":
        altered = widened_jwt(genuine, [MEALS, PUPILS])
        given = {"@context": "https://www.w3.org/ns/credentials/v2", "type": "EnvelopedVerifiableCredential",
                 "id": f"data:application/vc+jwt,{altered}"}   # as VC-API carries a vc+jwt
    else:
        altered = {**genuine, "credentialSubject": {**genuine["credentialSubject"],
                                                    "scope": {"datasets": [MEALS, PUPILS]}}}
        given = altered
    child = sub_delegation(altered, "did:web:approver.example", council.did, [PUPILS])
    status, body = post(dpo, {"credential": child, "options": {"delegation": given}})
    assert status == 400, body
    error = body["error"]
    assert error["code"] == "delegation.invalid" and error["detail"]["failed"] == ["signature"], error
    assert "would not verify" in error["message"] and "proof does not verify" in error["message"]
    assert counts(dpo) == (0, 0)                                # nothing signed, no status entry used
    # the same request under the delegation as signed: within it, so it is only the alteration that is refused
    child = sub_delegation(genuine, "did:web:approver.example", council.did, [MEALS])
    status, body = post(dpo, {"credential": child, "options": {"delegation": genuine}})
    assert status == 201, body


def test_a_self_made_delegation_is_refused(nodes):
    council, dpo = nodes["council"], nodes["dpo"]
    wide = {"datasets": [MEALS, PUPILS]}
    made_up = {"@context": V2_CEAD, "id": "urn:uuid:made-up", "type": ["VerifiableCredential",
                                                                         "DelegatedAuthorityCredential"],
               "issuer": council.did, "validFrom": "2025-01-01T00:00:00Z",
               "credentialSubject": {"id": dpo.did, "role": "DataProtectionOfficer", "onBehalfOf": council.did,
                                     "allowedActions": ["SubDelegate", "ApproveDisclosure"], "scope": wide}}
    stranger = identity()
    signed_by = {"the signer's own key": add_proof(made_up, dpo.signing_key(ED25519),
                                                   dpo.verification_method_for(ED25519)),
                 "a key nobody knows": add_proof(made_up, stranger.key, stranger.kid)}
    for why, forged in signed_by.items():
        child = sub_delegation(forged, "did:web:approver.example", council.did, [PUPILS])
        status, body = post(dpo, {"credential": child, "options": {"delegation": forged}})
        assert status == 400, (why, body)
        error = body["error"]
        assert error["code"] == "delegation.invalid" and error["detail"]["failed"] == ["signature"], (why, error)
        assert "credential.issuer_mismatch" in [p["code"] for p in error["detail"]["problems"]], (why, error)
    # properly signed, by the signer itself, for the council: not the council's, and resting on nothing from it
    own = issuing.issue(dpo, {"@context": V2_CEAD, "type": ["VerifiableCredential", "DelegatedAuthorityCredential"],
                              "credentialSubject": made_up["credentialSubject"]})
    before = counts(dpo)
    status, body = post(dpo, {"credential": sub_delegation(own.credential, "did:web:approver.example", council.did,
                                                           [PUPILS]), "options": {"delegation": own.credential}})
    assert status == 400, body
    error = body["error"]
    assert error["code"] == "delegation.invalid" and error["detail"]["failed"] == ["chain"], error
    assert [p["code"] for p in error["detail"]["problems"]] == ["delegation.issuer_mismatch"], error
    assert f"expected {council.did}" in error["message"]
    assert counts(dpo) == before


def _two_links(nodes):
    """council -> DPO (may sub-delegate) -> IAO, each issued by its node (the second under the guard rail)."""
    council, dpo, iao = nodes["council"], nodes["dpo"], nodes["iao"]
    first = delegation(council, dpo.did, {"datasets": [MEALS], "maxDelegationDepth": 1},
                       role="DataProtectionOfficer")
    second = delegation(dpo, iao.did, {"datasets": [MEALS], "maxDelegationDepth": 0}, controller=council.did,
                        parent=first,
                        actions=("ApproveDisclosure",))
    return first, second


def test_a_genuine_two_link_chain_still_issues(nodes):
    council, iao = nodes["council"], nodes["iao"]
    first, second = _two_links(nodes)
    chain = [first.credential, second.credential]
    recipient = identity().did
    # the IAO's own delegation alone: the one it rests on is neither given nor kept, so the chain is broken
    status, body = post(iao, {"credential": approval(council.did, recipient, chain),
                              "options": {"delegation": second.credential}})
    assert status == 400 and body["error"]["code"] == "delegation.invalid", body
    assert body["error"]["detail"]["failed"] == ["chain"]
    assert [p["code"] for p in body["error"]["detail"]["problems"]] == ["delegation.missing"]
    assert counts(iao) == (0, 0)
    # given with it, root first
    status, body = post(iao, {"credential": approval(council.did, recipient, chain),
                              "options": {"delegation": chain}})
    assert status == 201, body
    # or kept in HOME/delegations/, the IAO's own delegation named by its id
    (iao.home / "delegations").mkdir(exist_ok=True)
    for n, credential in enumerate(chain):
        (iao.home / "delegations" / f"{n}.json").write_text(json.dumps(credential))
    status, body = post(iao, {"credential": approval(council.did, recipient, chain),
                              "options": {"delegation": second.id}})
    assert status == 201, body
    assert counts(iao)[0] == 2


def test_a_link_up_the_chain_not_in_force_stops_it(nodes):
    council, iao = nodes["council"], nodes["iao"]
    first, second = _two_links(nodes)
    chain = [first.credential, second.credential]
    issuing.change_status(council, first.id, "revoke")
    status, body = post(iao, {"credential": approval(council.did, identity().did, chain),
                              "options": {"delegation": chain}})
    assert status == 400, body
    error = body["error"]
    assert error["code"] == "delegation.not_in_force" and error["detail"]["status"] == "revoked", error
    assert error["detail"]["delegation"] == first.id and error["detail"]["under"] == second.id
    assert "is revoked" in error["message"] and second.id in error["message"]
    assert counts(iao) == (0, 0)


def test_a_link_wider_than_its_parent_is_refused(nodes):
    """The gateway's own check of each link against its parent: a sub-delegation issued without the guard rail
    (no delegation given to its issuer) that widens its parent cannot be relied on."""
    council, dpo, iao = nodes["council"], nodes["dpo"], nodes["iao"]
    first = delegation(council, dpo.did, {"datasets": [MEALS], "maxDelegationDepth": 1},
                       role="DataProtectionOfficer")
    wide = issuing.issue(dpo, sub_delegation(first.credential, iao.did, council.did, [MEALS, PUPILS]))
    status, body = post(iao, {"credential": approval(council.did, identity().did, [first.credential,
                                                                                  wide.credential]),
                              "options": {"delegation": [first.credential, wide.credential]}})
    assert status == 400, body
    error = body["error"]
    assert error["code"] == "delegation.invalid" and error["detail"]["failed"] == ["chain"], error
    assert "delegation.widens_parent" in [p["code"] for p in error["detail"]["problems"]], error
    assert counts(iao) == (0, 0)
