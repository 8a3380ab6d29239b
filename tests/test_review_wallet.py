"""Review of the wallet: status re-checks fail closed and hold no lock, concurrent imports, ids, bad definitions."""
from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest

from verifier.results import CeadError
from wallet import pex
from wallet.store import STATUS_REVOKED, STATUS_UNKNOWN

from test_wallet_support import StaticFetcher, StatusListFixture, identity, make_wallet, now, vc


def _revoked_in_wallet(tmp_path):
    holder, issuer = identity(), identity()
    fetcher = StaticFetcher()
    lists = StatusListFixture(issuer, fetcher)
    w = make_wallet(tmp_path, holder, fetcher)
    rec = w.import_credential(vc(issuer, "VerifiableCredential", {"id": holder.did}, status=lists.entry(7),
                                 valid_for=timedelta(days=30))).record
    lists.revoke(7)
    assert [p.detail["status"] for p in w.check_status()] == ["revoked"]
    return w, rec, lists, fetcher


def test_a_revocation_seen_once_is_not_forgotten_when_the_list_is_unreachable(tmp_path):
    w, rec, lists, fetcher = _revoked_in_wallet(tmp_path)
    del fetcher.files[lists.url]                           # the issuer's status list is down for a while
    w.check_status()
    assert w.get(rec.id).status_now == STATUS_REVOKED
    assert rec.id not in {r.id for r in w.search(usable=True)}
    assert [p.code for p in w.warnings(days=0)] == ["wallet.status_changed"]


def test_a_revocation_is_not_forgotten_when_the_credential_fails_another_check(tmp_path):
    w, rec, _, _ = _revoked_in_wallet(tmp_path)
    w.check_status(now=now() + timedelta(days=40))        # expired by then: no status list is read at all
    assert w.get(rec.id).status_now == STATUS_REVOKED


def test_a_status_that_could_not_be_read_is_unknown_not_active(tmp_path):
    holder, issuer = identity(), identity()
    fetcher = StaticFetcher()
    lists = StatusListFixture(issuer, fetcher)
    w = make_wallet(tmp_path, holder, fetcher)
    rec = w.import_credential(vc(issuer, "VerifiableCredential", {"id": holder.did}, status=lists.entry(3))).record
    fetcher.files[lists.url] = b"not a status list"
    w.check_status()
    assert w.get(rec.id).status_now == STATUS_UNKNOWN
    lists.publish()
    w.check_status()
    assert w.get(rec.id).status_now == "active"


def test_check_status_holds_no_database_lock_while_it_fetches(tmp_path):
    """The status re-check reads lists over the network; the node's database (SQLite: one writer) must stay
    writable meanwhile, or the issuer and the inbox stall behind it."""
    holder, issuer = identity(), identity()
    fetcher = StaticFetcher()
    lists = StatusListFixture(issuer, fetcher)
    w = make_wallet(tmp_path, holder, fetcher)
    w.import_credential(vc(issuer, "VerifiableCredential", {"id": holder.did}, status=lists.entry(5)))
    w.import_credential(vc(issuer, "VerifiableCredential", {"id": holder.did}, status=lists.entry(6)))
    path = str(tmp_path / "node.db")
    writable = []
    real_get = fetcher.get

    def get(url):
        conn = sqlite3.connect(path, timeout=0.2, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            writable.append(True)
        except sqlite3.OperationalError:
            writable.append(False)
        finally:
            conn.close()
        return real_get(url)

    fetcher.get = get
    w.check_status()
    assert writable and all(writable), writable


def test_the_same_credential_imported_twice_at_once_is_a_duplicate_not_a_crash(tmp_path):
    holder, issuer = identity(), identity()
    w = make_wallet(tmp_path, holder)
    cred = vc(issuer, "VerifiableCredential", {"id": holder.did})
    first = w.import_credential(cred).record
    real = w._by_digest
    calls = []

    def racing(digest):          # the other import commits between this one's look-up and its insert
        calls.append(digest)
        return None if len(calls) == 1 else real(digest)

    w._by_digest = racing
    again = w.import_credential(cred)
    assert again.ok and again.duplicate and again.record.id == first.id
    assert len(w.search()) == 1


def test_lookup_by_prefix_takes_like_wildcards_literally(tmp_path):
    holder, issuer = identity(), identity()
    w = make_wallet(tmp_path, holder)
    rec = w.import_credential(vc(issuer, "VerifiableCredential", {"id": holder.did})).record
    assert w.get(rec.id[:5]).id == rec.id
    for pattern in ("____", "%%%%", rec.id[:3] + "_", "%" + rec.id[1:6]):
        assert w.get(pattern) is None, pattern
    assert w.delete("%%%%") is False
    assert w.get(rec.id) is not None


DOC = {"type": ["VerifiableCredential"], "credentialSubject": {"id": "did:web:a.example", "n": "x"}}


@pytest.mark.parametrize("descriptor", [
    {"id": "d", "constraints": [1]},
    {"id": "d", "constraints": "x"},
    {"id": "d", "constraints": {"fields": ["$.type"]}},
    {"id": "d", "constraints": {"fields": [None]}},
    {"id": "d", "constraints": {"fields": [{"path": ["$.type"], "filter": 5}]}},
    {"id": "d", "constraints": {"fields": [{"path": ["$.type"], "filter": ["string"]}]}},
    {"id": "d", "constraints": {"fields": [{"path": ["$.type"], "filter": {"$ref": "https://127.0.0.1:9/s"}}]}},
    {"id": "d", "constraints": {"fields": [{"path": ["$.type"], "filter": {"$ref": "#/definitions/nope"}}]}},
    {"id": "d", "constraints": {"fields": [{"path": ["$.credentialSubject.missing"], "optional": "no"}]}},
])
def test_a_bad_presentation_definition_is_invalid_not_a_crash(descriptor):
    with pytest.raises(CeadError) as err:
        pex.select({"id": "def", "input_descriptors": [descriptor]}, [("cred", DOC)])
    assert err.value.code == "pex.definition_invalid"


def test_good_definitions_still_select():
    field = {"path": ["$.credentialSubject.n"], "filter": {"type": "string", "const": "x"}}
    optional = {"path": ["$.credentialSubject.missing"], "optional": True}
    chosen = pex.select({"id": "def", "input_descriptors": [{"id": "d", "constraints": {"fields": [field, optional]}}]},
                        [("cred", DOC)])
    assert chosen.credentials == ["cred"]
