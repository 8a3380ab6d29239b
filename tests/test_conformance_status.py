"""Bitstring Status List v1.0 conformance: the list credential's id, the issuer equality check, statusSize."""
import json
from datetime import timedelta

import pytest

from verifier.http import FetchResult
from verifier.results import CeadError, Problem, VerificationResult
from verifier.status import StatusLists, make_entry, make_list_credential, new_bitstring, set_bit

ISSUER = "did:web:fife.example"
URL = "https://fife.example/status/1"


class Fetcher:
    def __init__(self):
        self.lists = {}

    def get(self, url):
        if url not in self.lists:
            raise CeadError("http.status", "404", url=url, status=404)
        return FetchResult(json.dumps(self.lists[url]).encode(), {}, 200, url)


class ProofOk:
    def verify_credential(self, credential, now=None):
        if isinstance(credential, dict) and credential.get("proof") == "ok":
            return VerificationResult(True, document=credential)
        return VerificationResult.failed(Problem("proof.signature_invalid", "bad signature"))


def publish(fetcher, revoked=(), url=URL, issuer=ISSUER, **changes):
    bits = new_bitstring()
    for index in revoked:
        set_bit(bits, index)
    cred = make_list_credential(url, issuer, "revocation", bits, "2025-01-01T00:00:00Z")
    cred.update(changes, proof="ok")
    fetcher.lists[url] = cred
    return cred


@pytest.fixture
def env():
    fetcher = Fetcher()
    return fetcher, StatusLists(fetcher, ProofOk(), ttl=60, max_staleness=timedelta(minutes=10))


def codes(problems):
    return [p.code for p in problems]


def test_a_list_credential_without_id_is_refused(env):
    """The spec: the list credential's id MUST be the entry's statusListCredential. Without that, a signed list
    (e.g. another, all-clear list of the same issuer) could be served in place of the one the entry names."""
    fetcher, checker = env
    cred = publish(fetcher, revoked=[5])
    assert codes(checker.check({"issuer": ISSUER, "credentialStatus": make_entry(URL, 5, "revocation")})) == \
        ["status.revoked"]
    other = "https://fife.example/status/2"
    clean = publish(fetcher, url=other)
    del clean["id"]
    fetcher.lists[URL] = clean                  # an id-less list, served where list 1 should be
    checker.clear()
    assert cred["id"] == URL
    assert codes(checker.check({"issuer": ISSUER, "credentialStatus": make_entry(URL, 5, "revocation")})) == \
        ["status.list_invalid"]


@pytest.mark.parametrize("issuer", [{"@id": ISSUER}, {"@id": ISSUER, "name": "Fife"}])
def test_issuer_as_at_id_object_is_still_compared_with_the_list_issuer(env, issuer):
    """The Verifier reads {"@id": ...} as the issuer; the status checker must compare the same value with the
    list's issuer rather than skip the comparison."""
    fetcher, checker = env
    publish(fetcher, issuer="did:web:evil.example")
    problems = checker.check({"issuer": issuer, "credentialStatus": make_entry(URL, 5, "revocation")})
    assert codes(problems) == ["status.list_invalid"]
    assert "did:web:evil.example" in problems[0].message


def test_same_issuer_written_as_at_id_passes(env):
    fetcher, checker = env
    publish(fetcher, issuer={"@id": ISSUER})
    assert checker.check({"issuer": {"@id": ISSUER}, "credentialStatus": make_entry(URL, 5, "revocation")}) == []
    assert checker.check({"issuer": ISSUER, "credentialStatus": make_entry(URL, 5, "revocation")}) == []


def test_a_credential_without_issuer_is_not_silently_passed(env):
    fetcher, checker = env
    publish(fetcher)
    assert codes(checker.check({"credentialStatus": make_entry(URL, 5, "revocation")})) == ["status.entry_invalid"]
    assert checker.check({}) == []     # nothing to check
    refresh = {**make_entry(URL, 5, "revocation"), "statusPurpose": "refresh"}
    assert checker.check({"credentialStatus": refresh}) == []   # informative purposes are ignored


@pytest.mark.parametrize("size", [True, 1.0, "1", 0, 2, None])
def test_status_size_must_be_the_integer_one(env, size):
    fetcher, checker = env
    publish(fetcher)
    entry = {**make_entry(URL, 5, "revocation"), "statusSize": size}
    assert codes(checker.check({"issuer": ISSUER, "credentialStatus": entry})) == ["status.entry_invalid"]


def test_status_size_one_is_accepted(env):
    fetcher, checker = env
    publish(fetcher, revoked=[5])
    entry = {**make_entry(URL, 5, "revocation"), "statusSize": 1}
    assert codes(checker.check({"issuer": ISSUER, "credentialStatus": entry})) == ["status.revoked"]
