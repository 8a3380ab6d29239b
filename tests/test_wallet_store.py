"""The credential store: verify on receipt, hold, search, warn; status re-checks; migrations; crash safety."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlmodel import Session, select

from wallet.store import STATUS_REVOKED, STATUS_UNKNOWN, WalletCredential, WalletTerm, upgrade

from test_wallet_support import (CYBER_ESSENTIALS, DS_CLOTHING, DS_MEALS, P_MEALS, StaticFetcher, StatusListFixture,
                                 approval_subject, certification_subject, identity, make_wallet, now, vc)

ROOT = Path(__file__).resolve().parents[1]


def test_import_verifies_and_indexes(tmp_path):
    holder, provider = identity(), identity()
    w = make_wallet(tmp_path, holder)
    cred = vc(provider, "DataSharingApprovalCredential", approval_subject(provider.did, holder.did))
    result = w.import_credential(cred, source="file.jwt")
    assert result.ok and not result.duplicate
    rec = result.record
    assert rec.format == "jwt" and rec.raw == cred and rec.issuer == provider.did
    assert rec.digest.startswith("sha256-")
    assert rec.status_at_receipt == "none"
    terms = w.terms(rec.id)
    assert terms["dataset"] == [DS_MEALS]
    assert terms["purpose"] == ["https://w3id.org/cead/vocab#FreeSchoolMealAutoEnrolment"]
    assert provider.did in terms["party"] and holder.did not in terms["party"]
    assert w.get(rec.id).raw == cred and w.get(rec.credential_id).id == rec.id and w.get(rec.id[:6]).id == rec.id
    again = w.import_credential(cred)
    assert again.ok and again.duplicate and again.record.id == rec.id
    assert len(w.search()) == 1


def test_import_data_integrity_credential(tmp_path):
    holder, issuer = identity(), identity()
    w = make_wallet(tmp_path, holder)
    cred = vc(issuer, "VerifiableCredential", {"id": holder.did}, fmt="ldp")
    result = w.import_credential(json.dumps(cred).encode())
    assert result.ok, result.problems
    assert result.record.format == "ldp" and result.record.credential == cred


@pytest.mark.parametrize("mangle, code_prefix", [
    (lambda c: c[:-4] + ("AAAA" if not c.endswith("AAAA") else "AAAQ"), ("jose.", "proof.")),
    (lambda c: "not a credential", ("credential.malformed",)),
    (lambda c: b"\xff\xfe", ("credential.malformed",)),
    (lambda c: "{\"oops\": ", ("credential.malformed",)),
    (lambda c: "[1, 2]", ("credential.malformed",)),
])
def test_import_refuses_invalid_with_reason(tmp_path, mangle, code_prefix):
    holder, issuer = identity(), identity()
    w = make_wallet(tmp_path, holder)
    good = vc(issuer, "VerifiableCredential", {"id": holder.did})
    result = w.import_credential(mangle(good))
    assert not result.ok and result.record is None
    assert result.problems and result.problems[0].code.startswith(code_prefix), result.problems
    assert w.search() == []


def test_import_refuses_expired(tmp_path):
    holder, issuer = identity(), identity()
    w = make_wallet(tmp_path, holder)
    old = vc(issuer, "VerifiableCredential", {"id": holder.did}, valid_from=now() - timedelta(days=30),
             valid_for=timedelta(days=2))
    result = w.import_credential(old)
    assert [p.code for p in result.problems] == ["credential.expired"]


def test_search_by_type_dataset_counterparty_expiry(tmp_path):
    holder, a, b, cb = identity(), identity(), identity(), identity()
    w = make_wallet(tmp_path, holder)
    meals = w.import_credential(vc(a, "DataSharingApprovalCredential", approval_subject(a.did, holder.did),
                                   valid_for=timedelta(days=10))).record
    clothing = w.import_credential(vc(b, "DataSharingApprovalCredential",
                                      approval_subject(b.did, holder.did, datasets=[DS_CLOTHING]))).record
    cert = w.import_credential(vc(cb, "OrganisationCertificationCredential",
                                  certification_subject(holder.did, CYBER_ESSENTIALS))).record
    ids = lambda rows: {r.id for r in rows}  # noqa: E731
    assert ids(w.search(type="DataSharingApprovalCredential")) == {meals.id, clothing.id}
    assert ids(w.search(type="OrganisationCertificationCredential")) == {cert.id}
    assert ids(w.search(dataset=DS_CLOTHING)) == {clothing.id}
    assert ids(w.search(purpose=P_MEALS)) == {meals.id, clothing.id}      # compact IRIs are expanded
    assert ids(w.search(counterparty=a.did)) == {meals.id}
    assert ids(w.search(counterparty=cb.did)) == {cert.id}
    assert ids(w.search(expiring_within=30)) == {meals.id}
    assert ids(w.search(type="DataSharingApprovalCredential", dataset=DS_MEALS, counterparty=b.did)) == set()


def test_warnings_expiring_and_expired(tmp_path):
    holder, issuer = identity(), identity()
    w = make_wallet(tmp_path, holder)
    w.expiry_warning_days = 20
    soon = w.import_credential(vc(issuer, "VerifiableCredential", {"id": holder.did},
                                  valid_for=timedelta(days=10))).record
    w.import_credential(vc(issuer, "VerifiableCredential", {"id": holder.did}, valid_for=timedelta(days=400)))
    warnings = w.warnings()
    assert [(p.code, p.detail["id"]) for p in warnings] == [("wallet.expiring", soon.id)]
    assert w.warnings(days=5) == []
    later = now() + timedelta(days=12)
    assert [p.code for p in w.warnings(now=later)] == ["wallet.expired"]
    assert soon.id not in {r.id for r in w.search(usable=True, now=later)}


def _ending_by_not_after(tmp_path):
    """A wallet holding, each valid for ten years: an approval whose notAfter is in 10 days, a delegation whose
    scope.notAfter is in 15, and an approval whose notAfter (2030) and validUntil are far off; returns the wallet
    and the three records."""
    from test_wallet_support import _ts, delegation_subject
    holder, issuer = identity(), identity()
    w = make_wallet(tmp_path, holder)
    subject = approval_subject(issuer.did, holder.did)
    subject["notAfter"] = _ts(now() + timedelta(days=10))
    approval = w.import_credential(vc(issuer, "DataSharingApprovalCredential", subject,
                                      valid_for=timedelta(days=3650))).record
    scoped = delegation_subject(holder.did, issuer.did)
    scoped["scope"]["notAfter"] = _ts(now() + timedelta(days=15))
    delegation = w.import_credential(vc(issuer, "DelegatedAuthorityCredential", scoped,
                                        valid_for=timedelta(days=3650))).record
    lasting = w.import_credential(vc(issuer, "DataSharingApprovalCredential",
                                     approval_subject(issuer.did, holder.did), valid_for=timedelta(days=3650))).record
    return w, approval, delegation, lasting


def test_an_approval_or_delegation_ending_by_its_not_after_is_warned_as_its_badge_says(tmp_path):
    """An approval's notAfter (the end of the period it approves), or a delegation's scope.notAfter, before its
    validUntil ends it: it is warned as expiring, then as expired, as the status badge says, naming what ended it."""
    w, approval, delegation, _ = _ending_by_not_after(tmp_path)
    w.expiry_warning_days = 20
    warned = {p.detail["id"]: p for p in w.warnings()}
    assert set(warned) == {approval.id, delegation.id}
    assert {p.code for p in warned.values()} == {"wallet.expiring"}
    assert warned[approval.id].detail["endsBy"] == "notAfter"
    assert warned[approval.id].detail["ends"] == approval.document["credentialSubject"]["notAfter"]
    assert "the notAfter it states" in warned[approval.id].message
    assert "Data-sharing approval" in warned[approval.id].message       # the kind in words, not its type code
    later = now() + timedelta(days=12)
    assert {p.detail["id"]: p.code for p in w.warnings(now=later)} == {approval.id: "wallet.expired",
                                                                       delegation.id: "wallet.expiring"}
    assert w.warnings(days=5) == []


def test_status_change_since_receipt_is_warned(tmp_path):
    holder, issuer = identity(), identity()
    fetcher = StaticFetcher()
    lists = StatusListFixture(issuer, fetcher)
    w = make_wallet(tmp_path, holder, fetcher)
    rec = w.import_credential(vc(issuer, "VerifiableCredential", {"id": holder.did}, status=lists.entry(7))).record
    other = w.import_credential(vc(issuer, "VerifiableCredential", {"id": holder.did}, status=lists.entry(8))).record
    assert rec.status_at_receipt == "active"
    assert w.check_status() == []
    lists.revoke(7)
    changed = w.check_status()
    assert [(p.code, p.detail["id"], p.detail["status"]) for p in changed] == [("wallet.status_changed", rec.id,
                                                                                 "revoked")]
    assert any(p.code == "wallet.status_changed" for p in w.warnings())
    assert {r.id for r in w.search(usable=True)} == {other.id}


def test_revoked_credential_is_refused_on_receipt(tmp_path):
    holder, issuer = identity(), identity()
    fetcher = StaticFetcher()
    lists = StatusListFixture(issuer, fetcher)
    lists.revoke(3)
    w = make_wallet(tmp_path, holder, fetcher)
    result = w.import_credential(vc(issuer, "VerifiableCredential", {"id": holder.did}, status=lists.entry(3)))
    assert [p.code for p in result.problems] == ["status.revoked"]


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


def test_upgrade_is_idempotent_and_keeps_credentials(tmp_path):
    holder, issuer = identity(), identity()
    w = make_wallet(tmp_path, holder)
    rec = w.import_credential(vc(issuer, "VerifiableCredential", {"id": holder.did})).record
    upgrade(w.engine)
    upgrade(w.engine)
    assert w.get(rec.id).raw == rec.raw
    with w.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version_wallet")).scalars().all() == [_head()]


def _head() -> str:
    """The newest wallet revision: the one no other revision names as its down_revision."""
    import re
    from wallet.store import VERSIONS_DIR
    texts = [p.read_text() for p in Path(VERSIONS_DIR).glob("*.py")]
    revisions = {re.search(r'^revision = "([^"]+)"', t, re.M).group(1) for t in texts}
    parents = {m.group(1) for t in texts for m in [re.search(r'^down_revision = "([^"]+)"', t, re.M)] if m}
    (head,) = revisions - parents
    return head


def test_a_database_from_before_redelivery_keeps_its_requests(tmp_path):
    """A node whose wallet tables are at wallet_0002 (no delivery columns) upgrades in place: requests kept."""
    from issuer.db import ISSUER_VERSIONS, _upgrade, make_engine
    from wallet.store import VERSIONS_DIR
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    _upgrade(engine, ISSUER_VERSIONS, "alembic_version_issuer")
    _upgrade(engine, Path(VERSIONS_DIR).resolve(), "alembic_version_wallet", revision="wallet_0002")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO wallet_request (id, requester, body, certifications, presentation_digest, "
                          "status, approval_id, received_at) VALUES ('r1', 'did:web:a.example', '{}', '[]', 'd1', "
                          "'approved', 'urn:uuid:1', '2026-11-01 10:00:00')"))
    upgrade(engine)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT status, approval_id, delivery, delivered_at FROM wallet_request")).one()
    assert tuple(row) == ("approved", "urn:uuid:1", None, None)


@pytest.mark.skipif(not os.environ.get("CEAD_TEST_DATABASE_URL"), reason="needs CEAD_TEST_DATABASE_URL (PostgreSQL)")
def test_postgresql(tmp_path):
    import uuid

    from sqlalchemy import create_engine

    from issuer.db import make_engine
    from wallet.store import Wallet, make_verifier
    engine = make_engine(os.environ["CEAD_TEST_DATABASE_URL"])   # set, so it must be reachable: no skip
    schema = f"wallet_test_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        url = engine.url.set(query={"options": f"-csearch_path={schema}"})
        pg = create_engine(url)
        upgrade(pg)
        holder, issuer = identity(), identity()
        w = Wallet(pg, holder.did, key=holder.key, kid=holder.kid, verifier=make_verifier(StaticFetcher()))
        rec = w.import_credential(vc(issuer, "VerifiableCredential", {"id": holder.did},
                                     valid_for=timedelta(days=3))).record
        upgrade(pg)
        assert w.get(rec.id).raw == rec.raw
        assert [r.id for r in w.search(expiring_within=5)] == [rec.id]
        pg.dispose()
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


# ---- crash safety --------------------------------------------------------------------------------------------
def _consistent(engine) -> None:
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        assert conn.execute(text("PRAGMA foreign_key_check")).all() == []
        orphans = conn.execute(text("SELECT COUNT(*) FROM wallet_term WHERE credential_id NOT IN "
                                    "(SELECT id FROM wallet_credential)")).scalar()
        assert orphans == 0


def test_exception_between_insert_and_commit_leaves_nothing(tmp_path):
    holder, issuer = identity(), identity()
    w = make_wallet(tmp_path, holder)
    cred = vc(issuer, "DataSharingApprovalCredential", approval_subject(issuer.did, holder.did))
    flushed = []

    def boom(session, context):
        flushed.append(len(session.new) + len(session.identity_map))
        raise RuntimeError("power cut")

    event.listen(Session, "after_flush_postexec", boom)
    try:
        with pytest.raises(RuntimeError, match="power cut"):
            w.import_credential(cred)
    finally:
        event.remove(Session, "after_flush_postexec", boom)
    assert flushed, "the failure was injected after the row was written"
    with Session(w.engine) as s:
        assert s.exec(select(WalletCredential)).all() == [] and s.exec(select(WalletTerm)).all() == []
    _consistent(w.engine)
    assert w.import_credential(cred).ok  # and a retry stores it fully
    assert w.terms(w.search()[0].id)["dataset"] == [DS_MEALS]


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from sqlalchemy import event
    from sqlmodel import Session
    from issuer.db import make_engine
    from wallet.store import Wallet, make_verifier
    from test_wallet_support import StaticFetcher
    engine = make_engine(sys.argv[1])
    wallet = Wallet(engine, sys.argv[2], verifier=make_verifier(StaticFetcher()))
    state = {"flushes": 0}
    def die(session, context):
        state["flushes"] += 1
        if state["flushes"] == int(sys.argv[4]):   # the credential row (and maybe its terms) written, not committed
            os.kill(os.getpid(), signal.SIGKILL)
    event.listen(Session, "after_flush_postexec", die)
    result = wallet.import_credential(open(sys.argv[3]).read())
    print("stored" if result.ok else result.problems)
""")


@pytest.mark.parametrize("kill_at_flush", [1, 2, 99])
def test_killed_import_is_all_or_nothing(tmp_path, kill_at_flush):
    holder, issuer = identity(), identity()
    w = make_wallet(tmp_path, holder)
    cred = vc(issuer, "DataSharingApprovalCredential", approval_subject(issuer.did, holder.did))
    (tmp_path / "cred.jwt").write_text(cred)
    (tmp_path / "kill.py").write_text(KILL_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    proc = subprocess.run([sys.executable, str(tmp_path / "kill.py"), f"sqlite:///{tmp_path / 'node.db'}",
                           holder.did, str(tmp_path / "cred.jwt"), str(kill_at_flush)],
                          env=env, capture_output=True, text=True, timeout=60)
    rows = w.search()
    if kill_at_flush == 99:   # never killed: fully stored
        assert proc.returncode == 0 and "stored" in proc.stdout, proc.stderr
        assert len(rows) == 1 and w.terms(rows[0].id)["dataset"] == [DS_MEALS]
    else:
        assert proc.returncode == -9, proc.stderr
        assert rows == []
    _consistent(w.engine)
    assert w.import_credential(cred).ok
    assert len(w.search()) == 1


def test_search_reads_the_end_an_approval_or_delegation_states_as_the_warnings_do(tmp_path):
    """``usable`` and ``include_expired=False`` (what choosing credentials to present reads) and ``expiring_within``
    take a credential as ended at its validUntil or at the notAfter it states, whichever comes first: the same
    rule as the warnings and the status badge (``WalletCredential.ends``), on the real SQLite store."""
    w, approval, delegation, lasting = _ending_by_not_after(tmp_path)
    assert w.engine.dialect.name == "sqlite"
    ids = lambda rows: {r.id for r in rows}  # noqa: E731
    everything = {approval.id, delegation.id, lasting.id}
    assert ids(w.search(usable=True)) == everything
    assert ids(w.search(expiring_within=12)) == {approval.id}              # by its notAfter, not its validUntil
    later = now() + timedelta(days=12)
    assert ids(w.search(usable=True, now=later)) == {delegation.id, lasting.id}
    assert ids(w.search(include_expired=False, now=later)) == {delegation.id, lasting.id}
    assert ids(w.search(now=later)) == everything                          # still held, and listed
    assert approval.ends() == (approval.in_force()[1], "notAfter") and approval.out_of_force(later) == "ended"
    assert lasting.ends()[1] == "notAfter"                                 # 2030, before its validUntil
    even_later = now() + timedelta(days=20)
    assert ids(w.search(usable=True, now=even_later)) == {lasting.id}
    # the warnings read the same rule: what search no longer takes as usable is warned as expired
    assert {p.detail["id"] for p in w.warnings(days=0, now=even_later) if p.code == "wallet.expired"} == {
        approval.id, delegation.id}


def test_a_wallet_from_before_the_stored_window_is_read_by_the_same_end_rule(tmp_path):
    """A wallet whose tables are at wallet_0005 (no in_force_from / in_force_until) upgrades in place: every
    credential kept as it was, and its window read from it by the end rule (``WalletCredential.in_force``), so an
    approval ended by the notAfter it states is not usable, one not yet in force by its notBefore neither."""
    from issuer.db import ISSUER_VERSIONS, _upgrade, make_engine
    from test_wallet_support import _ts
    from wallet.store import VERSIONS_DIR, Wallet, describe, jwt_payload, make_verifier
    from schemas.models import credential_digest
    holder, issuer = identity(), identity()
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    _upgrade(engine, ISSUER_VERSIONS, "alembic_version_issuer")
    _upgrade(engine, Path(VERSIONS_DIR).resolve(), "alembic_version_wallet", revision="wallet_0005")
    ended, later, lasting = (approval_subject(issuer.did, holder.did) for _ in range(3))
    ended["notAfter"] = _ts(now() - timedelta(days=1))
    later["notBefore"] = _ts(now() + timedelta(days=1))
    creds = {name: vc(issuer, "DataSharingApprovalCredential", s, valid_for=timedelta(days=3650))
             for name, s in (("ended", ended), ("later", later), ("lasting", lasting))}
    with engine.begin() as conn:       # as the previous code stored them
        for name, cred in creds.items():
            facts = describe(jwt_payload(cred), holder.did)
            conn.execute(text("INSERT INTO wallet_credential (id, digest, format, raw, credential_id, types, issuer, "
                              "subject, valid_from, valid_until, status_at_receipt, status_now, received_at) VALUES "
                              "(:id, :digest, 'jwt', :raw, :cid, :types, :issuer, NULL, :vf, :vu, 'none', 'none', "
                              "'2026-11-01 10:00:00')"),
                         {"id": name, "digest": credential_digest(cred), "raw": cred, "cid": facts["credential_id"],
                          "types": json.dumps(facts["types"]), "issuer": facts["issuer"],
                          "vf": facts["valid_from"].strftime("%Y-%m-%d %H:%M:%S.%f"),
                          "vu": facts["valid_until"].strftime("%Y-%m-%d %H:%M:%S.%f")})
    upgrade(engine)
    w = Wallet(engine, holder.did, verifier=make_verifier(StaticFetcher()))
    assert {r.id: r.raw for r in w.search()} == creds                      # kept, unchanged
    assert [r.id for r in w.search(usable=True)] == ["lasting"]
    assert {r.id for r in w.search(include_expired=False)} == {"later", "lasting"}
    for row in w.search():
        assert (_aware(row.in_force_from), _aware(row.in_force_until)) == row.in_force()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version_wallet")).scalars().all() == [_head()]


def _aware(value):
    from wallet.store import _aware as aware
    return aware(value)


def test_search_narrows_by_datasets_subject_and_digests(tmp_path):
    """The criteria choosing what to present narrows by: any of several datasets, the subject, the digests."""
    holder, issuer = identity(), identity()
    w = make_wallet(tmp_path, holder)
    meals = w.import_credential(vc(issuer, "DataSharingApprovalCredential",
                                   approval_subject(issuer.did, holder.did))).record
    clothing = w.import_credential(vc(issuer, "DataSharingApprovalCredential",
                                      approval_subject(issuer.did, holder.did, datasets=(DS_CLOTHING,)))).record
    cert = w.import_credential(vc(issuer, "OrganisationCertificationCredential",
                                  certification_subject(holder.did, CYBER_ESSENTIALS))).record
    other = w.import_credential(vc(issuer, "OrganisationCertificationCredential",
                                   certification_subject(issuer.did, CYBER_ESSENTIALS))).record
    ids = lambda rows: [r.id for r in rows]  # noqa: E731
    assert ids(w.search(datasets=[DS_MEALS])) == [meals.id]
    assert set(ids(w.search(datasets=[DS_MEALS, DS_CLOTHING]))) == {meals.id, clothing.id}
    assert ids(w.search(datasets=[])) == []
    assert ids(w.search(subject=holder.did, type="OrganisationCertificationCredential")) == [cert.id]
    assert ids(w.search(subject=issuer.did)) == [other.id]
    assert ids(w.search(digests=[clothing.digest, other.digest], usable=True)) == [other.id, clothing.id]
    assert ids(w.search(digests=[])) == []
    assert ids(w.search(status="none", type="OrganisationCertificationCredential")) == [other.id, cert.id]
    assert ids(w.search(status="suspended")) == []
