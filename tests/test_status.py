"""Bitstring Status List: the codec and the verifier-side checker (fake fetcher, fake list verifier)."""
import base64
import gzip
import json
from datetime import timedelta

import pytest

from verifier.http import FetchResult
from verifier.jose import to_document, unverified_claims
from verifier.keys import b64url
from verifier.results import CeadError, Problem, VerificationResult
from verifier.status import (MIN_ENTRIES, StatusLists, decode_list, encode_list, get_bit, make_entry,
                             make_list_credential, new_bitstring, set_bit)

ISSUER = "did:web:fife.example"
URL = "https://fife.example/status/1"


def test_round_trip_and_bit_order():
    bits = new_bitstring()
    assert len(bits) * 8 == MIN_ENTRIES
    set_bit(bits, 0)
    set_bit(bits, 9)
    assert bits[0] == 0x80 and bits[1] == 0x40          # index 0 is the left-most bit
    encoded = encode_list(bits)
    assert encoded.startswith("u") and "=" not in encoded
    back = decode_list(encoded)
    assert get_bit(back, 0) and get_bit(back, 9) and not get_bit(back, 1)
    set_bit(bits, 9, False)
    assert not get_bit(bits, 9)


def test_decodes_an_independently_encoded_list():
    raw = bytearray(MIN_ENTRIES // 8)
    raw[12345 // 8] = 0x80 >> (12345 % 8)
    encoded = "u" + base64.urlsafe_b64encode(gzip.compress(bytes(raw))).decode().rstrip("=")
    assert get_bit(decode_list(encoded), 12345)


@pytest.mark.parametrize("value, fragment", [
    (None, "no encodedList"),
    ("H4sIAAAAAAAA", "multibase"),
    ("u!!!", "base64url"),
    ("u" + base64.urlsafe_b64encode(b"not gzip at all").decode().rstrip("="), "GZIP"),
    ("u" + base64.urlsafe_b64encode(gzip.compress(bytes(1000))).decode().rstrip("="), "at least"),
    ("u" + base64.urlsafe_b64encode(gzip.compress(bytes(17 * 1024 * 1024))).decode().rstrip("="), "inflates"),
    ("u" + base64.urlsafe_b64encode(gzip.compress(bytes(MIN_ENTRIES // 8))[:-10]).decode().rstrip("="),
     "truncated"),
])
def test_decode_rejects_bad_lists(value, fragment):
    with pytest.raises(CeadError) as err:
        decode_list(value)
    assert err.value.code == "status.list_invalid" and fragment in err.value.message


def test_bit_range_and_list_size():
    with pytest.raises(CeadError) as err:
        get_bit(new_bitstring(), MIN_ENTRIES)
    assert err.value.code == "status.index_out_of_range"
    with pytest.raises(CeadError):
        new_bitstring(1024)


# ---- the checker -----------------------------------------------------------------------------------------------

class FakeFetcher:
    def __init__(self):
        self.lists = {}          # url -> list credential (dict) or an exception to raise
        self.calls = 0

    def get(self, url):
        self.calls += 1
        value = self.lists.get(url)
        if isinstance(value, Exception):
            raise value
        if value is None:
            raise CeadError("http.status", "404", url=url)
        return FetchResult(value.encode() if isinstance(value, str) else json.dumps(value).encode(), {}, 200, url)


class FakeVerifier:
    """Accepts a list credential whose proof is the string "ok" (a JWT: whose signature segment is "ok")."""
    def verify_credential(self, credential, now=None):
        if isinstance(credential, dict) and credential.get("proof") == "ok":
            return VerificationResult(True, document=credential)
        if isinstance(credential, str) and credential.endswith(".ok"):
            return VerificationResult(True, document=to_document(unverified_claims(credential), "vc"))
        return VerificationResult.failed(Problem("proof.signature_invalid", "bad signature"))


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def publish(fetcher, purpose="revocation", set_indexes=(), url=URL, issuer=ISSUER, proof="ok", bits=None):
    if bits is None:
        bits = new_bitstring()
        for i in set_indexes:
            set_bit(bits, i)
    cred = make_list_credential(url, issuer, purpose, bits, "2025-01-01T00:00:00Z")
    cred["proof"] = proof
    fetcher.lists[url] = cred


def credential(*entries, issuer=ISSUER):
    return {"issuer": issuer, "credentialStatus": list(entries) if len(entries) != 1 else entries[0]}


@pytest.fixture
def env():
    fetcher, clock = FakeFetcher(), Clock()
    checker = StatusLists(fetcher, FakeVerifier(), ttl=60, max_staleness=timedelta(minutes=10), clock=clock)
    return fetcher, clock, checker


def codes(problems):
    return [p.code for p in problems]


def test_active_revoked_and_suspended(env):
    fetcher, _, checker = env
    publish(fetcher, set_indexes=[42])
    susp = "https://fife.example/status/2"
    publish(fetcher, "suspension", [7], url=susp)
    assert checker.check(credential(make_entry(URL, 41, "revocation"))) == []
    assert codes(checker.check(credential(make_entry(URL, 42, "revocation")))) == ["status.revoked"]
    both = credential(make_entry(URL, 41, "revocation"), make_entry(susp, 7, "suspension"))
    assert codes(checker.check(both)) == ["status.suspended"]
    assert checker.check({"issuer": ISSUER}) == []       # no credentialStatus: nothing to check


def test_refetches_after_ttl_and_sees_revocation(env):
    fetcher, clock, checker = env
    publish(fetcher)
    entry = credential(make_entry(URL, 5, "revocation"))
    assert checker.check(entry) == []
    publish(fetcher, set_indexes=[5])
    clock.t += 30
    assert checker.check(entry) == [] and fetcher.calls == 1      # cached within ttl
    clock.t += 31
    assert codes(checker.check(entry)) == ["status.revoked"] and fetcher.calls == 2


def test_unreachable_and_stale(env):
    fetcher, clock, checker = env
    entry = credential(make_entry(URL, 5, "revocation"))
    assert codes(checker.check(entry)) == ["status.unreachable"]
    publish(fetcher)
    assert checker.check(entry) == []
    fetcher.lists[URL] = CeadError("http.timeout", "timeout")
    clock.t += 120                       # past ttl, within max_staleness: the cached copy still counts
    assert checker.check(entry) == []
    clock.t += 600                       # older than max_staleness: deny
    assert codes(checker.check(entry)) == ["status.stale"]


@pytest.mark.parametrize("change, code", [
    (dict(proof="forged"), "status.list_invalid"),
    (dict(issuer="did:web:evil.example"), "status.list_invalid"),
    (dict(purpose="suspension"), "status.list_invalid"),
    (dict(bits=bytearray(1024)), "status.list_invalid"),
])
def test_bad_lists_deny(env, change, code):
    fetcher, _, checker = env
    publish(fetcher, **change)
    assert codes(checker.check(credential(make_entry(URL, 5, "revocation")))) == [code]


def test_list_served_under_another_id_is_refused(env):
    fetcher, _, checker = env
    publish(fetcher, url="https://fife.example/status/9")
    fetcher.lists[URL] = fetcher.lists.pop("https://fife.example/status/9")
    assert codes(checker.check(credential(make_entry(URL, 5, "revocation")))) == ["status.list_invalid"]


def test_a_list_must_name_the_url_it_is_served_at(env):
    """Bitstring Status List v1.0 section 2.2 lets a list omit its id; this verifier requires it (documented as a
    deliberate policy): otherwise another signed list of the same issuer could be served in its place. A different
    id (or @id) is refused too, and so is a list from another issuer (a trust policy as well)."""
    fetcher, _, checker = env
    publish(fetcher, set_indexes=[5])
    assert codes(checker.check(credential(make_entry(URL, 5, "revocation")))) == ["status.revoked"]
    checker.clear()
    del fetcher.lists[URL]["id"]
    problems = checker.check(credential(make_entry(URL, 5, "revocation")))
    assert codes(problems) == ["status.list_invalid"] and "must name the URL" in problems[0].message
    checker.clear()
    fetcher.lists[URL]["@id"] = "https://fife.example/status/9"
    problems = checker.check(credential(make_entry(URL, 5, "revocation")))
    assert codes(problems) == ["status.list_invalid"] and "status/9" in problems[0].message
    checker.clear()
    publish(fetcher, issuer="did:web:other.example")
    problems = checker.check(credential(make_entry(URL, 5, "revocation")))
    assert codes(problems) == ["status.list_invalid"] and "did:web:other.example" in problems[0].message


def test_bad_entries(env):
    fetcher, _, checker = env
    publish(fetcher)
    good = make_entry(URL, 5, "revocation")
    assert codes(checker.check(credential({**good, "statusListIndex": 5}))) == ["status.entry_invalid"]
    assert codes(checker.check(credential({**good, "statusListIndex": "-1"}))) == ["status.entry_invalid"]
    assert codes(checker.check(credential({**good, "type": "MadeUpStatus"}))) == ["status.unsupported"]
    assert codes(checker.check(credential({**good, "statusListCredential": "ftp://x"}))) == ["status.entry_invalid"]
    assert codes(checker.check(credential({**good, "statusListIndex": str(MIN_ENTRIES)}))) == \
        ["status.index_out_of_range"]
    assert codes(checker.check({"credentialStatus": "revoked"})) == ["status.entry_invalid"]


def test_status_index_too_long_for_int_is_an_invalid_entry():
    """An absurd index is a bad entry, never an exception."""
    lists = StatusLists(fetcher=None)
    doc = {"issuer": "did:key:z6Mk", "credentialStatus": {
        "type": "BitstringStatusListEntry", "statusPurpose": "revocation", "statusListIndex": "1" * 5000,
        "statusListCredential": "https://status.example/1"}}
    assert [p.code for p in lists.check(doc)] == ["status.entry_invalid"]


def test_lists_are_verified_by_a_status_less_verifier():
    """A list credential that itself carries credentialStatus must not send the checker into a loop: the list
    client verifies lists with a verifier that has no status checker (a given one is replaced by its status-less
    copy), so nothing holds anything back and no thread-local guard is needed."""
    fetcher = FakeFetcher()
    plain = FakeVerifier()

    class Holding(FakeVerifier):
        status = "a status checker"

        def without_status(self):
            return plain

    checker = StatusLists(fetcher, Holding())
    assert checker.verifier is plain
    publish(fetcher, set_indexes=[3])
    fetcher.lists[URL]["credentialStatus"] = make_entry(URL, 3, "revocation")
    assert codes(checker.check(credential(make_entry(URL, 3, "revocation")))) == ["status.revoked"]


def test_a_re_entrant_list_check_fails_closed_at_once():
    """A verifier that (wrongly) checks status while the same list is being fetched gets status.unreachable at
    once from the single-flight guard, rather than waiting for itself."""
    fetcher = FakeFetcher()

    class Recursing(FakeVerifier):
        def verify_credential(self, credential, now=None):
            inner.extend(codes(checker.check(credential)))
            return super().verify_credential(credential, now)

    inner: list = []
    checker = StatusLists(fetcher, Recursing())
    publish(fetcher, set_indexes=[3])
    fetcher.lists[URL]["credentialStatus"] = make_entry(URL, 3, "revocation")
    assert codes(checker.check(credential(make_entry(URL, 3, "revocation")))) == ["status.revoked"]
    assert inner == ["status.unreachable"]


@pytest.mark.parametrize("form", ["vc11-expirationDate", "jwt-exp"])
def test_a_list_past_its_expiration_date_or_jwt_exp_is_never_used_from_the_cache(env, form):
    """Not only VC 2.0 validUntil: a VC 1.1 list's expirationDate and a vc+jwt list's exp end its use too (the
    exp claim is not part of the document the verifier returns, so it is read from the token)."""
    from datetime import datetime, timezone
    fetcher, clock, checker = env
    publish(fetcher)
    ends = datetime.now(timezone.utc) + timedelta(seconds=30)
    listed = dict(fetcher.lists[URL])
    if form == "jwt-exp":
        del listed["proof"]
        claims = dict(listed, exp=int(ends.timestamp()))
        fetcher.lists[URL] = ".".join(b64url(json.dumps(p).encode()) for p in ({"alg": "EdDSA"}, claims)) + ".ok"
    else:
        listed["@context"] = ["https://www.w3.org/2018/credentials/v1"]
        listed["expirationDate"] = ends.strftime("%Y-%m-%dT%H:%M:%SZ")
        fetcher.lists[URL] = listed
    entry = credential(make_entry(URL, 5, "revocation"))
    assert checker.check(entry) == []
    fetcher.lists[URL] = CeadError("http.timeout", "timeout")        # the issuer is unreachable from now on
    clock.t += 20
    assert checker.check(entry) == []                                 # within ttl and the list's validity
    clock.t += 15                                                     # past expirationDate / exp (but < ttl)
    problems = checker.check(entry)
    assert codes(problems) == ["status.stale"] and "exp" in problems[0].message


def test_problems_name_the_specs_processing_error(env):
    """Bitstring Status List v1.0 section 3.6: each processing error carries the spec's type IRI in detail.type;
    revoked and suspended are statuses, not errors, and carry none. The list's own errors live in the status-list
    namespace; RANGE_ERROR and MALFORMED_VALUE_ERROR are VC Data Model 2.0 processing errors (section 7.2)."""
    fetcher, _, checker = env
    publish(fetcher, set_indexes=[3])
    spec = "https://www.w3.org/ns/credentials/status-list#"
    vcdm = "https://www.w3.org/TR/vc-data-model#"

    def kinds(*entries):
        return [(p.code, p.detail.get("type")) for p in checker.check(credential(*entries))]

    assert kinds(make_entry(URL, 3, "revocation")) == [("status.revoked", None)]
    assert kinds(make_entry(URL, MIN_ENTRIES + 5, "revocation")) == [
        ("status.index_out_of_range", vcdm + "RANGE_ERROR")]
    assert kinds(dict(make_entry(URL, 1, "revocation"), statusListIndex="one")) == [
        ("status.entry_invalid", vcdm + "MALFORMED_VALUE_ERROR")]
    missing = "https://fife.example/status/404"
    assert kinds(make_entry(missing, 1, "revocation")) == [("status.unreachable", spec + "STATUS_RETRIEVAL_ERROR")]
    forged = "https://fife.example/status/forged"
    publish(fetcher, url=forged, proof="bad")
    assert kinds(make_entry(forged, 1, "revocation")) == [("status.list_invalid", spec + "STATUS_VERIFICATION_ERROR")]
    short = "https://fife.example/status/short"
    publish(fetcher, url=short, bits=bytearray(16))
    assert kinds(make_entry(short, 1, "revocation")) == [("status.list_invalid", spec + "STATUS_LIST_LENGTH_ERROR")]


def test_the_lists_own_ttl_shortens_the_cache(env):
    """Bitstring Status List v1.0 `ttl` (milliseconds): a list asking to be re-read sooner than our TTL is."""
    fetcher, clock, checker = env
    publish(fetcher)
    fetcher.lists[URL]["credentialSubject"]["ttl"] = 5000          # 5 s, below the checker's 60 s
    entry = credential(make_entry(URL, 5, "revocation"))
    assert checker.check(entry) == [] and fetcher.calls == 1
    clock.t += 4
    assert checker.check(entry) == [] and fetcher.calls == 1
    clock.t += 2
    assert checker.check(entry) == [] and fetcher.calls == 2
    fetcher.lists[URL]["credentialSubject"]["ttl"] = "soon"
    clock.t += 6
    assert codes(checker.check(entry)) == ["status.list_invalid"]


@pytest.mark.parametrize("field,value,expected", [("ttl", 10 ** 400, []),
                                                  ("validUntil", "next Tuesday", ["status.list_invalid"]),
                                                  ("validUntil", "2030-01-01T00:00:00", ["status.list_invalid"])])
def test_a_status_list_ttl_too_big_for_a_float_or_an_unreadable_valid_until(env, field, value, expected):
    """A ttl too long for a float is simply longer than any cache lives (not an internal error); a validUntil that
    is not a date-time with a zone (a VC 1.1 list is not format-checked for it) makes the list invalid."""
    fetcher, _, checker = env
    publish(fetcher)
    target = fetcher.lists[URL]["credentialSubject"] if field == "ttl" else fetcher.lists[URL]
    target[field] = value
    problems = checker.check(credential(make_entry(URL, 5, "revocation")))
    assert [p.code for p in problems] == expected


def test_status_list_not_relied_on_past_max_staleness_even_within_ttl():
    """A cache TTL longer than the maximum staleness must not keep an old list in use."""
    fetcher, clock = FakeFetcher(), Clock()
    checker = StatusLists(fetcher, FakeVerifier(), ttl=3600, max_staleness=timedelta(seconds=60), clock=clock)
    publish(fetcher)
    entry = credential(make_entry(URL, 5, "revocation"))
    assert checker.check(entry) == []
    publish(fetcher, set_indexes=[5])          # revoked at the source
    clock.t += 30
    assert checker.check(entry) == []          # within max_staleness: the cached copy may be used
    clock.t += 100                             # older than max_staleness (though within ttl): refetch
    assert [p.code for p in checker.check(entry)] == ["status.revoked"]


def test_a_list_past_its_valid_until_is_never_used_from_the_cache(env):
    from datetime import datetime, timedelta, timezone
    fetcher, clock, checker = env
    publish(fetcher)
    fetcher.lists[URL]["validUntil"] = (datetime.now(timezone.utc) + timedelta(seconds=30)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    entry = credential(make_entry(URL, 5, "revocation"))
    assert checker.check(entry) == []
    fetcher.lists[URL] = CeadError("http.timeout", "timeout")        # the issuer is unreachable from now on
    clock.t += 20
    assert checker.check(entry) == []                                 # within ttl and validUntil: cached copy
    clock.t += 15                                                     # past the list's validUntil (but < ttl)
    problems = checker.check(entry)                                   # the expired copy is not used
    assert codes(problems) == ["status.stale"] and "validUntil" in problems[0].message
