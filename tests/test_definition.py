"""The gateway publishes what it asks for (DIF Presentation Exchange 2.0), and a wallet given only a URL discovers
it, selects from it and is allowed: verifier.definition, the middleware's 401, the verifier service's
GET /presentation-definition, and wallet.client discovery (requests, httpx, `cead fetch --discover`)."""
from __future__ import annotations

import ssl

import httpx
import jsonschema
import pytest
import requests
from click.testing import CliRunner
from flask import Flask, jsonify, request

from helpers_https import https_server
from verifier.binding import decode_presentation
from verifier.decision import Decider
from verifier.definition import presentation_definition, publish
from verifier.middleware import CeadMiddleware
from verifier.policy import parse_policy
from verifier.results import CeadError
from verifier.app import create_app
from wallet import pex
from wallet.client import CeadAuth, CeadHttpxAuth, fetch
from wallet.store import jwt_payload, make_verifier

from test_wallet_support import (CYBER_ESSENTIALS, DS_CLOTHING, DS_MEALS, ISO27001, P_MEALS, P_STATS, StaticFetcher,
                                 approval_subject, certification_subject, delegation_subject, identity, make_wallet, vc)

# The members PEX 2.0 allows (presentation definition, input descriptor, field, claim format designations), as a
# small JSON Schema (draft 7): unknown members are refused at every level, as in the specification's schema.
_STRINGS = {"type": "array", "items": {"type": "string"}}
PEX2_DEFINITION = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "definitions": {
        "field": {"type": "object", "required": ["path"], "additionalProperties": False, "properties": {
            "id": {"type": "string"}, "path": {**_STRINGS, "minItems": 1}, "purpose": {"type": "string"},
            "name": {"type": "string"}, "optional": {"type": "boolean"}, "intent_to_retain": {"type": "boolean"},
            "filter": {"type": "object"}}},
        "relational": {"type": "array", "items": {
            "type": "object", "required": ["field_id", "directive"], "additionalProperties": False,
            "properties": {"field_id": _STRINGS, "directive": {"enum": ["required", "preferred"]}}}},
        "descriptor": {"type": "object", "required": ["id", "constraints"], "additionalProperties": False,
                       "properties": {
                           "id": {"type": "string"}, "name": {"type": "string"}, "purpose": {"type": "string"},
                           "format": {"$ref": "#/definitions/format"}, "group": _STRINGS,
                           "constraints": {"type": "object", "additionalProperties": False, "properties": {
                               "limit_disclosure": {"enum": ["required", "preferred"]},
                               "fields": {"type": "array", "items": {"$ref": "#/definitions/field"}},
                               "subject_is_issuer": {"enum": ["required", "preferred"]},
                               "is_holder": {"$ref": "#/definitions/relational"},
                               "same_subject": {"$ref": "#/definitions/relational"}}}}},
        "format": {"type": "object", "additionalProperties": False, "patternProperties": {
            "^jwt$|^jwt_vc$|^jwt_vp$": {"type": "object", "additionalProperties": False,
                                        "properties": {"alg": {**_STRINGS, "minItems": 1}}},
            "^ldp$|^ldp_vc$|^ldp_vp$": {"type": "object", "additionalProperties": False,
                                        "properties": {"proof_type": {**_STRINGS, "minItems": 1}}}}},
    },
    "type": "object", "required": ["id", "input_descriptors"], "additionalProperties": False,
    "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "purpose": {"type": "string"},
                   "format": {"$ref": "#/definitions/format"}, "frame": {"type": "object"},
                   "submission_requirements": {"type": "array"},
                   "input_descriptors": {"type": "array", "items": {"$ref": "#/definitions/descriptor"}}},
}


def assert_valid_pex2(definition: dict) -> None:
    jsonschema.Draft7Validator(PEX2_DEFINITION).validate(definition)
    ids = [d["id"] for d in definition["input_descriptors"]]
    assert len(ids) == len(set(ids))
    for descriptor in definition["input_descriptors"]:
        fields = descriptor["constraints"]["fields"]
        for field in fields:
            if "filter" in field:
                jsonschema.Draft7Validator.check_schema(field["filter"])
        field_ids = {f.get("id") for f in fields}
        for relation in descriptor["constraints"].get("is_holder", []):
            assert set(relation["field_id"]) <= field_ids
    # PEX 2.0: a field id is unique across the whole presentation definition, not only within its descriptor
    all_ids = [f["id"] for d in definition["input_descriptors"] for f in d["constraints"]["fields"] if "id" in f]
    assert len(all_ids) == len(set(all_ids)), all_ids


# ---- the definition itself -----------------------------------------------------------------------------------
COUNCIL, BODY = "did:key:z6MkCouncil", "did:key:z6MkBody"
POLICY = parse_policy({"controllers": [{"prefix": "https://data.example.gov.scot/", "controller": COUNCIL}],
                       "certification_bodies": {CYBER_ESSENTIALS: [BODY]},
                       "required_certifications": ["cead:CyberEssentials"]})


def test_the_definition_is_pex2_and_asks_for_the_approval_and_the_required_certifications():
    definition = presentation_definition(POLICY, DS_MEALS, P_MEALS)
    assert_valid_pex2(definition)
    assert definition == presentation_definition(POLICY, DS_MEALS, P_MEALS)          # stable id for the same ask
    assert definition["id"] != presentation_definition(POLICY, DS_MEALS)["id"]
    assert definition["format"]["jwt_vp"] == {"alg": ["ES256", "ES384", "ES512", "EdDSA"]}   # every alg accepted
    assert "DataIntegrityProof" in definition["format"]["ldp_vc"]["proof_type"]
    assert "delegationChain" in definition["purpose"] and "upstream" in definition["purpose"]
    approval, cert = definition["input_descriptors"]
    assert [approval["id"], cert["id"]] == ["approval", "certification-1"]
    assert BODY in cert["purpose"] and "cead:CyberEssentials" in cert["name"]
    assert COUNCIL in approval["purpose"]
    # both forms of a path: VC 2.0 / JSON-LD (a vc+jwt payload is the credential) and a VC 1.1 JWT's vc claim
    assert approval["constraints"]["fields"][1]["path"] == ["$.credentialSubject.datasets",
                                                            "$.vc.credentialSubject.datasets"]


def _doc(type_, subject, issuer=COUNCIL, v11=False):
    doc = {"type": ["VerifiableCredential", type_], "issuer": issuer, "credentialSubject": subject}
    return {"iss": issuer, "vc": doc} if v11 else doc


@pytest.mark.parametrize("v11", [False, True])
def test_the_filters_accept_what_the_gateway_would_allow_and_nothing_else(v11):
    definition = presentation_definition(POLICY, DS_MEALS, P_MEALS)
    approval, cert = definition["input_descriptors"]
    good = approval_subject(COUNCIL, "did:key:z6MkHolder")
    assert pex.descriptor_matches(approval, _doc("DataSharingApprovalCredential", good, v11=v11))
    # a broader purpose (the vocabulary's) is covered, as the decision covers it; expanded IRIs match too
    broad = {**good, "purposes": ["https://w3id.org/dpv#ServiceProvision"]}
    assert pex.descriptor_matches(approval, _doc("DataSharingApprovalCredential", broad, v11=v11))
    for bad in ({**good, "datasets": [DS_CLOTHING]}, {**good, "purposes": [P_STATS]},
                {**good, "discloser": "did:key:z6MkSomeoneElse"}):
        assert not pex.descriptor_matches(approval, _doc("DataSharingApprovalCredential", bad, v11=v11))
    assert not pex.descriptor_matches(approval, _doc("DelegatedAuthorityCredential", good, v11=v11))
    held = certification_subject("did:key:z6MkHolder", CYBER_ESSENTIALS)
    me = "did:key:z6MkHolder"
    assert pex.descriptor_matches(cert, _doc("OrganisationCertificationCredential", held, BODY, v11), me)
    assert pex.descriptor_matches(cert, _doc("OrganisationCertificationCredential", held, {"id": BODY}, v11), me)
    assert not pex.descriptor_matches(cert, _doc("OrganisationCertificationCredential", held, "did:key:z6MkX", v11),
                                      me)
    assert not pex.descriptor_matches(cert, _doc("OrganisationCertificationCredential",
                                                 {**held, "status": "Suspended"}, BODY, v11), me)
    assert not pex.descriptor_matches(cert, _doc("OrganisationCertificationCredential",
                                                 {**held, "scheme": ISO27001}, BODY, v11), me)
    # is_holder: another organisation's certification is not this holder's, however good it is
    assert not pex.descriptor_matches(cert, _doc("OrganisationCertificationCredential", held, BODY, v11),
                                      "did:key:z6MkSomeoneElse")


def test_field_ids_are_unique_across_descriptors_and_is_holder_names_each_subject():
    """PEX 2.0: field ids must be unique in the definition. With two required schemes, each certification
    descriptor has its own subject field (credentialSubject.id), and is_holder names that field."""
    policy = parse_policy({"controllers": [{"prefix": "https://data.example.gov.scot/", "controller": COUNCIL}],
                           "certification_bodies": {CYBER_ESSENTIALS: [BODY], ISO27001: [BODY]},
                           "required_certifications": [CYBER_ESSENTIALS, ISO27001]})
    definition = presentation_definition(policy, DS_MEALS, P_MEALS)
    assert_valid_pex2(definition)
    _, first, second = definition["input_descriptors"]
    for descriptor in (first, second):
        (rule,) = descriptor["constraints"]["is_holder"]
        assert rule["field_id"] == ["subject-" + descriptor["id"]]
        (field,) = [f for f in descriptor["constraints"]["fields"] if f.get("id") == rule["field_id"][0]]
        assert "$.credentialSubject.id" in field["path"]
    me = "did:key:z6MkHolder"
    mine = _doc("OrganisationCertificationCredential", certification_subject(me, ISO27001), BODY)
    assert pex.descriptor_matches(second, mine, me) and not pex.descriptor_matches(second, mine, "did:key:z6MkX")


def test_a_policy_trusting_no_body_says_so():
    policy = parse_policy({"controllers": [{"dataset": DS_MEALS, "controller": COUNCIL}],
                           "required_certifications": [ISO27001]})
    definition = presentation_definition(policy, DS_MEALS)
    assert_valid_pex2(definition)
    assert "names no body trusted" in definition["input_descriptors"][1]["purpose"]
    assert len(definition["input_descriptors"]) == 2


@pytest.mark.parametrize("dataset, purpose, code", [
    (None, None, "definition.dataset_missing"), ("  ", None, "definition.dataset_missing"),
    ("not an iri", None, "definition.dataset_invalid"), ("https://x/" + "a" * 3000, None, "definition.dataset_invalid"),
    (42, None, "definition.dataset_missing"), (DS_MEALS, "no purpose", "definition.purpose_invalid"),
    ("https://elsewhere.example/dataset/x", None, "definition.dataset_unknown"),
])
def test_bad_input_is_named(dataset, purpose, code):
    with pytest.raises(CeadError) as err:
        publish(POLICY, dataset, purpose)
    assert err.value.code == code


# ---- a gateway and a wallet over real HTTPS ------------------------------------------------------------------
@pytest.fixture
def world(tmp_path):
    """A council controls the datasets and delegated approving to an approver, who approved the recipient for
    school meals (requiring ISO 27001); the gateway's policy requires Cyber Essentials from a trusted body. The
    wallet also holds noise: another dataset's approval, an untrusted and a suspended Cyber Essentials
    certification, unrelated credentials."""
    council, approver, recipient, body, rogue = (identity() for _ in range(5))
    fetcher = StaticFetcher()
    wallet = make_wallet(tmp_path, recipient, fetcher)
    delegation = vc(council, "DelegatedAuthorityCredential", delegation_subject(approver.did, council.did))
    approval = vc(approver, "DataSharingApprovalCredential",
                  approval_subject(council.did, recipient.did, chain=[delegation], requirements=[ISO27001]))
    cyber = vc(body, "OrganisationCertificationCredential", certification_subject(recipient.did, CYBER_ESSENTIALS))
    iso = vc(body, "OrganisationCertificationCredential", certification_subject(recipient.did, ISO27001))
    noise = [vc(approver, "DataSharingApprovalCredential",
                approval_subject(council.did, recipient.did, datasets=[DS_CLOTHING], purposes=[P_STATS])),
             *(vc(rogue, "VerifiableCredential", {"id": recipient.did, "n": i}) for i in range(4))]
    for credential in [delegation, approval, cyber, iso, *noise]:
        assert wallet.import_credential(credential).ok
    untrusted = vc(rogue, "OrganisationCertificationCredential", certification_subject(recipient.did,
                                                                                       CYBER_ESSENTIALS))
    suspended = vc(body, "OrganisationCertificationCredential",
                   certification_subject(recipient.did, CYBER_ESSENTIALS, status="Suspended"))
    policy = parse_policy({"controllers": [{"prefix": "https://data.example.gov.scot/", "controller": council.did}],
                           "certification_bodies": {CYBER_ESSENTIALS: [body.did], ISO27001: [body.did]},
                           "required_certifications": [CYBER_ESSENTIALS]})
    decider = Decider(policy, make_verifier(fetcher))
    unauthenticated: list[str] = []
    seen: list[str] = []
    app = Flask("data-api")

    @app.route("/meals", methods=["GET", "POST"])
    def meals():
        seen.append(request.headers["Cead-Presentation"])
        return jsonify({"month": request.args.get("month"), "received": len(request.data)})

    @app.get("/open")
    def open_endpoint():
        return jsonify({"rows": []})

    datasets = {"/meals": DS_MEALS}
    guarded = CeadMiddleware(app.wsgi_app, decider, dataset_for=lambda env: datasets.get(env["PATH_INFO"]))

    def counting(environ, start_response):   # what reaches the gateway without a presentation
        if "HTTP_CEAD_PRESENTATION" not in environ:
            unauthenticated.append(environ["PATH_INFO"])
        return guarded(environ, start_response)

    app.wsgi_app = counting
    with https_server(app) as (base, ca):
        yield dict(wallet=wallet, base=base, ca=ca, seen=seen, unauthenticated=unauthenticated, decider=decider,
                   tmp_path=tmp_path, recipient=recipient, council=council, body=body,
                   credentials=dict(delegation=delegation, approval=approval, cyber=cyber, iso=iso,
                                    untrusted=untrusted, suspended=suspended))


def test_the_401_publishes_the_definition_for_the_endpoints_dataset(world):
    response = requests.get(f"{world['base']}/meals?month=2026-01", verify=world["ca"])
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("VP")
    body = response.json()
    assert body["reasons"][0]["code"] == "presentation.missing" and body["dataset"] == DS_MEALS
    assert_valid_pex2(body["presentation_definition"])
    assert body["presentation_definition"] == presentation_definition(world["decider"].policy, DS_MEALS)
    assert world["council"].did in body["presentation_definition"]["input_descriptors"][0]["purpose"]
    # no dataset_for entry: ?dataset= (and ?purpose=) name it; a bad one is explained, never a crash
    asked = requests.get(f"{world['base']}/open", params={"dataset": DS_MEALS, "purpose": P_MEALS},
                         verify=world["ca"]).json()
    assert asked["purpose"] == "https://w3id.org/cead/vocab#FreeSchoolMealAutoEnrolment"
    assert len(asked["presentation_definition"]["input_descriptors"][0]["constraints"]["fields"]) == 4
    bad = requests.get(f"{world['base']}/open?dataset=nonsense", verify=world["ca"])
    assert bad.status_code == 401 and "presentation_definition" not in bad.json()
    assert bad.json()["presentation_definition_error"]["code"] == "definition.dataset_invalid"
    assert "presentation_definition" not in requests.get(f"{world['base']}/open", verify=world["ca"]).json()
    # a denial (403) does not carry it
    denied = requests.get(f"{world['base']}/meals", verify=world["ca"], auth=CeadAuth(
        world["wallet"], dataset=DS_MEALS, manifest={"dataset": DS_CLOTHING, "columns": ["x"]}, raise_on_denial=False))
    assert denied.status_code == 403 and "presentation_definition" not in denied.json()


def test_the_verifier_service_serves_the_definition(world):
    with https_server(create_app(world["decider"])) as (base, ca):
        url = f"{base}/presentation-definition"
        ok = requests.get(url, params={"dataset": DS_MEALS, "purpose": P_MEALS}, verify=ca)
        assert ok.status_code == 200 and ok.headers["Content-Type"] == "application/json"
        assert ok.json() == publish(world["decider"].policy, DS_MEALS, P_MEALS)
        assert_valid_pex2(ok.json()["presentation_definition"])
        for params, status, code in [({}, 400, "definition.dataset_missing"),
                                     ({"dataset": "no iri"}, 400, "definition.dataset_invalid"),
                                     ({"dataset": DS_MEALS, "purpose": "x y"}, 400, "definition.purpose_invalid"),
                                     ({"dataset": [DS_MEALS, DS_CLOTHING]}, 400, "definition.query_invalid"),
                                     ({"dataset": "https://elsewhere.example/d"}, 404, "definition.dataset_unknown")]:
            bad = requests.get(url, params=params, verify=ca)
            assert bad.status_code == status and bad.json()["problems"][0]["code"] == code, params


def _presented(token: str) -> list:
    claims = jwt_payload(decode_presentation(token))
    return [c["id"].split(",", 1)[1] for c in claims["verifiableCredential"]]


def test_given_only_the_url_the_wallet_discovers_selects_and_is_allowed(world):
    c = world["credentials"]
    auth = CeadAuth(world["wallet"], discover=True)
    session = requests.Session()
    for month in ("2026-01", "2026-02"):
        response = session.get(f"{world['base']}/meals", params={"month": month}, auth=auth, verify=world["ca"])
        assert response.status_code == 200, response.text
        assert response.json()["month"] == month
    assert world["unauthenticated"] == ["/meals"]      # asked once; the definition is kept for the path
    assert len(response.history) == 0 and session.get(f"{world['base']}/meals", auth=CeadAuth(
        world["wallet"], discover=True), verify=world["ca"]).history[0].status_code == 401
    # the approval and the trusted, current certification the definition asks for; the delegation the approval
    # pins and the ISO certification it requires; none of the noise
    assert sorted(_presented(world["seen"][-1])) == sorted([c["approval"], c["cyber"], c["delegation"], c["iso"]])
    # a push, with httpx: the body travels in both requests and is bound to the second
    with httpx.Client(verify=ssl.create_default_context(cafile=world["ca"]),
                      auth=CeadHttpxAuth(world["wallet"], discover=True)) as client:
        # a table of the approval's data items (the gateway counts a push's columns from its body)
        posted = client.post(f"{world['base']}/meals", content=b"pupil_id,entitlement\nP0001,yes\n")
    assert posted.status_code == 200 and posted.json()["received"] == 31
    assert world["unauthenticated"] == ["/meals"] * 3
    # the fetch helper
    assert fetch(world["wallet"], f"{world['base']}/meals?month=2026-03", discover=True,
                 verify=world["ca"]).json()["month"] == "2026-03"


def test_a_wallet_that_cannot_satisfy_the_definition_is_told_what_is_missing(world, tmp_path):
    (tmp_path / "lean").mkdir()
    lean = make_wallet(tmp_path / "lean", world["recipient"])
    for name in ("delegation", "approval", "iso", "untrusted", "suspended"):   # no trusted, current Cyber Essentials
        assert lean.import_credential(world["credentials"][name]).ok
    with pytest.raises(CeadError) as err:
        requests.get(f"{world['base']}/meals", auth=CeadAuth(lean, discover=True), verify=world["ca"])
    assert err.value.code == "pex.unsatisfied"
    assert err.value.detail["missing"] == ["certification-1 (cead:CyberEssentials certification)"]
    assert world["seen"] == []
    # with the certification but without the delegation the approval pins: named too
    (tmp_path / "nodelegation").mkdir()
    partial = make_wallet(tmp_path / "nodelegation", world["recipient"])
    for name in ("approval", "iso", "cyber"):
        assert partial.import_credential(world["credentials"][name]).ok
    with pytest.raises(CeadError) as err:
        fetch(partial, f"{world['base']}/meals", discover=True, verify=world["ca"])
    assert err.value.code == "wallet.delegation_missing"


def test_an_endpoint_that_publishes_no_definition_is_reported(world):
    with pytest.raises(CeadError) as err:
        requests.get(f"{world['base']}/open?dataset=nonsense", auth=CeadAuth(world["wallet"], discover=True),
                     verify=world["ca"])
    assert err.value.code == "pex.definition_missing" and "definition.dataset_invalid" in err.value.message
    assert "name the dataset instead (--dataset)" in err.value.message
    # the dataset named as well (`cead fetch URL --dataset IRI --discover` behind nginx, whose 401 is its own): the
    # message said "name the dataset instead" to someone who had; it says to leave out discovery
    with pytest.raises(CeadError) as err:
        requests.get(f"{world['base']}/open?dataset=nonsense", verify=world["ca"],
                     auth=CeadAuth(world["wallet"], discover=True, dataset="https://data.example/d"))
    assert err.value.code == "pex.definition_missing" and "name the dataset instead" not in err.value.message
    assert "the dataset is named (https://data.example/d), so leave out discovery (--discover" in err.value.message
    # a gateway that asks nothing: the answer is the answer
    plain = Flask("plain")
    plain.get("/x")(lambda: jsonify({"ok": True}))
    with https_server(plain) as (base, ca):
        assert requests.get(f"{base}/x", auth=CeadAuth(world["wallet"], discover=True), verify=ca).json() == {
            "ok": True}
    # a definition for another dataset than the one the pipeline fetches: refused before anything is presented
    # (it used to be presented, bound, and denied by the gateway; now nothing is disclosed at all)
    with pytest.raises(CeadError) as err:
        requests.get(f"{world['base']}/meals", auth=CeadAuth(world["wallet"], discover=True, dataset=DS_CLOTHING,
                                                             purpose=P_STATS), verify=world["ca"])
    assert err.value.code == "pex.definition_mismatch"


def test_cead_fetch_discover(world, tmp_path, monkeypatch):
    from issuer.node import Node
    from wallet.cli import fetch as fetch_command
    monkeypatch.setenv("CEAD_PASSPHRASE", "pass phrase for the test")
    Node.init(tmp_path / "home", "Recipient", b"pass phrase for the test", did_method="key")
    monkeypatch.setenv("CEAD_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(fetch_command, [f"{world['base']}/meals"])
    assert result.exit_code == 2 and "--discover" in result.output
    result = CliRunner().invoke(fetch_command, [f"{world['base']}/meals", "--discover", "--ca-bundle", world["ca"]])
    assert result.exit_code == 1 and "pex.unsatisfied" in result.output and "approval" in result.output


def test_discovery_never_presents_for_a_dataset_other_than_the_one_asked_for(world):
    """A gateway's 401 names the dataset it wants credentials for; when the pipeline said which dataset it is
    fetching, a definition for another one is refused rather than answered with that dataset's approvals."""
    with pytest.raises(CeadError) as info:
        requests.get(f"{world['base']}/meals", auth=CeadAuth(world["wallet"], dataset=DS_CLOTHING, discover=True),
                     verify=world["ca"])
    assert info.value.code == "pex.definition_mismatch"
    assert world["seen"] == []                      # no presentation reached the gateway
