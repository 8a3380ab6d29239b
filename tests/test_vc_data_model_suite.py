"""What the W3C VC Data Model 2.0 test suite found in Cead (w3c/vc-data-model-2.0-test-suite@6e07524, run on
2026-12-03, docs/interop.md): VC Data Model 2.0 rules on a credential's own properties that neither issuer nor
verifier enforced, and the enveloped credential's @context.

- Section 4.4: an ``id`` MUST be a single URL (``"https ://..."`` has a space in its scheme and is none).
- Section 4.5: ``credentialStatus``, ``credentialSchema``, ``evidence``, ``refreshService`` and ``termsOfUse``
  objects MUST have a type; section 4.11: a ``credentialSchema`` MUST have an ``id`` that is a URL.
- Section 5.3: ``relatedResource`` MUST be one or more objects, each with a URL ``id``, unique among them, and at
  least a ``digestSRI`` or a ``digestMultibase``.
- Section 4.13 (Enveloped Verifiable Credentials): an ``EnvelopedVerifiableCredential``'s ``@context`` MUST be
  present and include a context defining its terms (the base context).

The suite only asks the issuer to refuse these (400); here the issuer's reason is asserted over real HTTPS, and the
verifier's, for credentials signed anyway (a peer that does not check), at ``/credentials/verify``. The suite's
input credentials are in tests/vectors/vc-data-model-suite/; its relatedResource cases are built here from the
values the suite uses (the base context's URL and the digests it gives for it).
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import requests

from helpers_https import https_server, vc_api_verify
from issuer.keys import PrivateKey
from issuer.signing import add_proof
from issuer_fixtures import https_node, token
from schemas.values import is_url
from verifier.decision import Decider
from verifier.did import did_key
from verifier.keys import ED25519
from verifier.policy import parse_policy
from verifier.app import create_app as verifier_app

VECTORS = Path(__file__).parent / "vectors" / "vc-data-model-suite"
V2 = "https://www.w3.org/ns/credentials/v2"
# the suite's relatedResource values (its fixtures): the base context, with digests it gives for it
RELATED = {"id": V2, "digestSRI": "sha384-NSOcNpmdIVUxIJGvGUoe22FjTWrXiaXlsZ8q6912LdnR3KraQO2n75Ica4wK4Qeg",
           "digestMultibase": "uJKGMkOmFbVJhEfKTduMC2XCyvRAYLjOVmZWwIH1wQ7k"}
BASE = {"@context": [V2], "type": ["VerifiableCredential"], "credentialSubject": {"name": "Alice"}}


def vector(name: str) -> dict:
    return json.loads((VECTORS / f"{name}.json").read_text())


def related(value) -> dict:
    credential = copy.deepcopy(BASE)
    credential["relatedResource"] = value
    return credential


INVALID = {   # what the suite sends, and the property Cead names
    "credential-id-not-url-fail": "id",
    "credential-id-subject-multi-fail": "credentialSubject.id",
    "credential-evidence-missing-type-fail": "evidence",
    "credential-termsofuse-no-type-fail": "termsOfUse",
    "credential-refresh-no-type-fail": "refreshService",
    "credential-schema-no-type-fail": "credentialSchema",
    "credential-schema-no-id-fail": "credentialSchema.id",
    "credential-schema-non-url-id-fail": "credentialSchema.id",
}
INVALID_RELATED = [   # (relatedResource, the property named)
    ([RELATED["id"]], "relatedResource[0]"),                                          # an array of strings
    ([{"digestMultibase": RELATED["digestMultibase"]}], "relatedResource[0].id"),     # no id
    ([{"id": V2, "digestSRI": RELATED["digestSRI"]},
      {"id": V2, "digestMultibase": RELATED["digestMultibase"]}], "relatedResource[1].id"),   # the same id twice
    ([{"id": V2}], "relatedResource[0]"),                                             # no digest
]
VALID = [vector("credential-ok"), vector("credential-evidence-ok"), vector("credential-termsofuse-id-ok"),
         vector("credential-refresh-ok"), related({"id": V2, "digestSRI": RELATED["digestSRI"]}),
         related({"id": V2, "digestMultibase": RELATED["digestMultibase"]}),
         related([{"id": V2, "mediaType": "application/ld+json", "digestSRI": RELATED["digestSRI"]}])]


@pytest.fixture(scope="module")
def issuer(tmp_path_factory):
    with https_node(tmp_path_factory.mktemp("node")) as (node, base_url, ca_bundle):
        yield node, base_url, ca_bundle, token(node, "issue:any", name="suite")


@pytest.fixture(scope="module")
def verifier(issuer):
    """Cead's verifier service; its network policy lets it read the issuer node's did:web on 127.0.0.1."""
    policy = parse_policy({"version": 1, "network": {"allow_private": True, "ca_bundle": str(issuer[2])}})
    with https_server(verifier_app(Decider(policy))) as (base_url, ca_bundle):
        yield base_url, ca_bundle


@pytest.fixture(scope="module")
def signer():
    key = PrivateKey.generate(ED25519)
    did = did_key(key.public)
    return key, did, f"{did}#{did[8:]}"


def issue(issuer, credential, options=None) -> requests.Response:
    node, base_url, ca_bundle, tok = issuer
    credential = {**copy.deepcopy(credential), "issuer": node.did}
    return requests.post(base_url + "/credentials/issue", json={"credential": credential, "options": options},
                         headers={"Authorization": f"Bearer {tok}"}, verify=ca_bundle, timeout=30)


def verify(verifier, credential) -> tuple[int, dict]:
    return vc_api_verify(*verifier, credential)


def signed(signer, credential) -> dict:
    key, did, vm = signer
    return add_proof({**copy.deepcopy(credential), "issuer": did, "validFrom": "2025-01-01T00:00:00Z"}, key, vm)


def property_problems(body: dict) -> set[str]:
    return {p["detail"]["property"] for p in body["error"]["detail"]["problems"]
            if p["code"] == "credential.property_invalid"}


@pytest.mark.parametrize("value, url", [
    ("https://example.org/credentials/1", True), ("did:example:subject", True), ("urn:uuid:3f1c7f4e", True),
    ("https ://not-a-url/vcs/343cf54b", False), ("not-a-url", False), ("https://", False), ("https:///x", False),
    ("", False), (["https://example.org/1"], False), (None, False), ("did:example:a b", False),
])
def test_a_url_is_a_single_absolute_url(value, url):
    assert is_url(value) is url


@pytest.mark.parametrize("name", sorted(INVALID))
def test_the_issuer_refuses_the_suites_invalid_properties(issuer, name):
    response = issue(issuer, vector(name))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "credential.invalid"
    assert property_problems(response.json()) == {INVALID[name]}


@pytest.mark.parametrize("value, where", INVALID_RELATED)
def test_the_issuer_refuses_malformed_related_resources(issuer, value, where):
    response = issue(issuer, related(value))
    assert response.status_code == 400, response.text
    assert property_problems(response.json()) == {where}


@pytest.mark.parametrize("index", range(len(VALID)))
def test_the_issuer_signs_the_suites_valid_credentials(issuer, index):
    response = issue(issuer, VALID[index])
    assert response.status_code == 201, response.text


# (a list of subject ids, and a credentialStatus type 2, are not JSON-LD at all: nothing can sign them with RDFC)
SIGNABLE = {name: where for name, where in INVALID.items() if name != "credential-id-subject-multi-fail"}


@pytest.mark.parametrize("credential, where", [
    *((vector(name), where) for name, where in SIGNABLE.items()),
    *((related(value), where) for value, where in INVALID_RELATED),
    (vector("credential-status-missing-type-fail"), "credentialStatus"),
    (vector("credential-status-nonurl-id-fail"), "credentialStatus.id"),
])
def test_the_verifier_refuses_them_when_signed(verifier, signer, credential, where):
    """A peer that signs them anyway: the proof verifies, and the verifier refuses the credential for the property
    (and, for a credentialSchema, also says it could not validate against it, as for any schema it does not hold)."""
    status, body = verify(verifier, signed(signer, credential))
    assert (status, body["verified"]) == (400, False)
    expected = {"credential.property_invalid"} | ({"credential.schema_unknown"} if "credentialSchema" in credential
                                                   else set())
    assert {e["code"] for e in body["errors"]} == expected, body["errors"]
    assert {e["detail"]["property"] for e in body["errors"] if e["code"] == "credential.property_invalid"} == {where}


def test_the_verifier_accepts_the_valid_ones_signed(verifier, signer):
    for credential in VALID:
        status, body = verify(verifier, signed(signer, credential))
        assert (status, body["errors"]) == (200, []), credential


def test_an_enveloped_credential_needs_the_base_context(issuer, verifier):
    response = issue(issuer, vector("credential-ok"), {"format": "vc+jwt"})
    assert response.status_code == 201, response.text
    envelope = response.json()["verifiableCredential"]
    status, body = verify(verifier, envelope)
    assert (status, body["errors"]) == (200, [])
    for context in ([], "https://www.w3.org/ns/credentials/examples/v2", None):
        changed = copy.deepcopy(envelope)
        if context is None:
            del changed["@context"]
        else:
            changed["@context"] = context
        status, body = verify(verifier, changed)
        assert (status, [e["code"] for e in body["errors"]]) == (400, ["credential.malformed"]), context
        assert "@context" in body["errors"][0]["message"]


def test_a_credential_with_a_context_that_changes_nothing_is_issued_so_that_it_verifies(issuer, verifier):
    """The suite's credential-id-single-ok: its examples context defines nothing the base context does not, so an
    eddsa-rdfc-2022 proof without @context would not pin it and Cead's verifier would refuse the credential Cead
    issued (proof.context_unsigned). The proof now carries the document's @context."""
    credential = vector("credential-id-single-ok")
    response = issue(issuer, credential)
    assert response.status_code == 201, response.text
    issued = response.json()["verifiableCredential"]
    assert issued["proof"]["@context"] == issued["@context"] == credential["@context"]
    status, body = verify(verifier, issued)
    assert (status, body["errors"]) == (200, [])
    changed = {**issued, "@context": issued["@context"][:1]}    # the other encoding is refused
    status, body = verify(verifier, changed)
    assert (status, [e["code"] for e in body["errors"]]) == (400, ["proof.context_mismatch"])


def test_a_credential_whose_contexts_all_matter_gets_no_proof_context(issuer, verifier):
    credential = {"@context": [V2, "https://www.w3.org/ns/credentials/examples/v2"],
                  "type": ["VerifiableCredential", "ExampleDegreeCredential"],   # an IRI under the examples @vocab
                  "credentialSubject": {"name": "Alice"}}
    response = issue(issuer, credential)
    assert response.status_code == 201, response.text
    issued = response.json()["verifiableCredential"]
    assert "@context" not in issued["proof"]
    status, body = verify(verifier, issued)
    assert (status, body["errors"]) == (200, [])


def test_a_vocab_reset_the_json_ld_library_cannot_process_is_refused_in_words(issuer):
    """The suite's credential-type-unmapped-fail: {"@vocab": null} after the base context (which sets no @vocab at
    its top level) and a type only a @vocab would define. Refused, as the suite expects; the reason used to be
    pyld's bare "KeyError: '@vocab'"."""
    response = issue(issuer, vector("credential-type-unmapped-fail"))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "jsonld.invalid"
    assert '{"@vocab": null}' in error["message"] and "KeyError" not in error["message"]
