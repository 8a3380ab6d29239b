"""The node's append-only log: entries from issuing, status and key changes; proofs from stored subtrees; C2SP
checkpoints and tiles over HTTPS; crash safety with SIGKILL (SQLite and PostgreSQL); witnesses and a split view."""
import base64
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from issuer import db, issuing
from issuer.evidence import record, witness
from issuer.evidence.log import TransparencyLog, decode_entry
from issuer.keys import PrivateKey
from issuer_fixtures import PASS, certification, postgresql_node, ready_node
from verifier.http import Fetcher
from verifier.results import CeadError
from verifier.tlog import merkle, note as notes, tiles
from verifier.tlog.checkpoint import Checkpoint, open_checkpoint

HERE = Path(__file__).parent


def _log(tmp_path, name="n.db"):
    engine = db.migrate(f"sqlite:///{tmp_path / name}")
    return TransparencyLog(engine, "example.org/log", PrivateKey.generate())


def test_appends_prove_against_a_recomputed_tree(tmp_path):
    log = _log(tmp_path)
    leaves = [log.append("receipt", {"receipt": f"{i:064x}"}, {"n": i}).leaf_hash for i in range(45)]
    leaves += [a.leaf_hash for a in log.append_many([("receipt", {"receipt": f"{i:064x}"}, {}) for i in range(45, 300)])]
    assert log.size() == 300 and log.root() == merkle.root_of(leaves)
    for i in (0, 1, 7, 128, 255, 256, 299):
        merkle.verify_inclusion(leaves[i], i, 300, log.inclusion_proof(i), log.root())
        merkle.verify_inclusion(leaves[i], i, 290 if i < 290 else 300, log.inclusion_proof(i, 290 if i < 290 else 300),
                                merkle.root_of(leaves[:290 if i < 290 else 300]))
    for old in (1, 3, 64, 257):
        merkle.verify_consistency(old, 300, log.consistency_proof(old), merkle.root_of(leaves[:old]), log.root())
    # tiles: the level-0 tile is the leaf hashes; the level-1 tile holds the 256-leaf subtree root
    assert log.tile("tile/0/000") == b"".join(leaves[:256])
    assert log.tile("tile/0/001.p/44") == b"".join(leaves[256:300])
    assert log.tile("tile/1/000.p/1") == merkle.root_of(leaves[:256])
    assert [merkle.leaf_hash(e) for e in tiles.unbundle(log.tile("tile/entries/001.p/44"))] == leaves[256:]
    with pytest.raises(CeadError) as err:
        log.tile("tile/0/001.p/45")
    assert err.value.code == "tlog.not_found"


def test_a_large_batch_of_inclusion_proofs_is_answered(tmp_path):
    """The sequencer proves a whole batch of receipts at once: a batch whose proofs need more than a thousand stored
    hashes must be read in several statements (SQLite refused one OR-expression deeper than 1000)."""
    log = _log(tmp_path)
    leaves = [a.leaf_hash for a in log.append_many([("receipt", {"receipt": f"{i:064x}"}, {}) for i in range(3000)])]
    indices = list(range(1000, 1512)) + [0, 2999]
    root = log.root()
    proofs = log.inclusion_proofs(indices, 3000)
    assert len(proofs) == len(indices)
    for index, proof in zip(indices, proofs):
        merkle.verify_inclusion(leaves[index], index, 3000, proof, root)


@pytest.mark.parametrize("meta", [{"name": "x" * 600}, {"nested": {"a": 1}}, {"bad key": 1}, {"v": "a\nb"}])
def test_entries_carry_public_metadata_only(tmp_path, meta):
    log = _log(tmp_path)
    with pytest.raises(CeadError) as err:
        log.append("receipt", {"receipt": "ab" * 32}, meta)
    assert err.value.code == "tlog.entry_invalid"
    with pytest.raises(CeadError):
        log.append("receipt", {"receipt": "not a digest"}, {})
    with pytest.raises(CeadError):
        log.append("Not A Kind", {}, {})
    assert log.size() == 0


def test_node_logs_issuing_status_and_key_changes(tmp_path):
    node = ready_node(tmp_path / "node")
    log = record.log_of(node)
    kinds = lambda: [decode_entry(e)["kind"] for _, e in log.entries()]   # noqa: E731
    assert kinds() == ["key.added", "key.added"]      # the node's keys, from its first moment
    issued = issuing.issue(node, certification(node.did))
    issuing.change_status(node, issued.id, "revoke")
    node.rotate_key()
    assert kinds() == ["key.added", "key.added", "credential.issued", "credential.status", "key.added"]
    entry = decode_entry(log.entry(2))
    from schemas.models import credential_digest
    from verifier.tlog.evidence import digest_hex
    assert entry["digests"]["credential"] == digest_hex(credential_digest(issued.credential))
    assert entry["meta"]["credentialId"] == issued.id and "legalName" not in log.entry(2).decode()
    # a refused issue leaves no entry behind (same transaction)
    with pytest.raises(CeadError):
        issuing.issue(node, certification("did:web:someone-else.example"))
    assert log.size() == 5


def test_log_served_as_c2sp_tiles_over_https(tmp_path):
    from helpers_https import https_server
    from issuer.app import create_app
    node = ready_node(tmp_path / "node")
    for _ in range(3):
        issuing.issue(node, certification(node.did))
    with https_server(create_app(node)) as (base, ca):
        fetch = Fetcher(allow_private=True, ca_bundle=ca)
        note = fetch.get(base + "/log/checkpoint", accept="text/plain").body.decode()
        log_key = notes.NoteKey(record.log_of(node).origin, notes.ALG_ED25519, node.key.public.raw)
        cp = open_checkpoint(note, log_key).checkpoint
        assert cp.size == 5 and cp.origin == "fife.example/log"
        level0 = fetch.get(base + "/log/tile/0/000.p/5", accept="*/*").body
        assert merkle.root_of([level0[i:i + 32] for i in range(0, 160, 32)]) == cp.root
        bundle = fetch.get(base + "/log/tile/entries/000.p/5", accept="*/*").body
        assert [merkle.leaf_hash(e) for e in tiles.unbundle(bundle)] == [level0[i:i + 32] for i in range(0, 160, 32)]
        with pytest.raises(CeadError):
            fetch.get(base + "/log/tile/0/000.p/6", accept="*/*")


def _crash_appends(url):
    proc = subprocess.Popen([sys.executable, str(HERE / "tlog_appender.py"), url], stdout=subprocess.PIPE,
                            text=True, cwd=HERE)
    acked = {}
    try:
        for line in proc.stdout:
            _, index, leaf = line.split()
            acked[int(index)] = bytes.fromhex(leaf)
            if len(acked) >= 150:
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert len(acked) >= 150
    engine = db.make_engine(url)
    log = TransparencyLog(engine, "crash.example/log", PrivateKey.generate())
    size = log.size()
    assert size >= max(acked) + 1                     # nothing acknowledged is lost
    entries = log.entries()
    assert [i for i, _ in entries] == list(range(size))   # no gap, no duplicate
    leaves = [merkle.leaf_hash(e) for _, e in entries]
    for index, leaf in acked.items():
        assert leaves[index] == leaf
    assert log.root() == merkle.root_of(leaves)       # the stored subtrees agree with the entries
    more = log.append("receipt", {"receipt": "ab" * 32}, {})     # and the log goes on where it stopped
    assert more.index == size and log.root() == merkle.root_of(leaves + [more.leaf_hash])
    engine.dispose()


def test_sigkill_during_appends_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    db.migrate(url).dispose()
    _crash_appends(url)


@pytest.mark.skipif(not os.environ.get("CEAD_TEST_DATABASE_URL"), reason="set CEAD_TEST_DATABASE_URL for PostgreSQL")
def test_sigkill_during_appends_postgresql():
    url = os.environ["CEAD_TEST_DATABASE_URL"]
    schema = "cead_tlog_" + uuid.uuid4().hex[:10]
    admin = db.make_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"create schema {schema}"))
    try:
        sep = "&" if "?" in url else "?"
        scoped = f"{url}{sep}options=-csearch_path%3D{schema}"
        db.migrate(scoped).dispose()
        _crash_appends(scoped)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"drop schema {schema} cascade"))
        admin.dispose()


@pytest.mark.skipif(not os.environ.get("CEAD_TEST_DATABASE_URL"), reason="set CEAD_TEST_DATABASE_URL for PostgreSQL")
def test_node_log_on_postgresql(tmp_path):
    with postgresql_node(tmp_path / "pg") as node:
        issuing.issue(node, certification(node.did))
        log = record.log_of(node)
        assert log.size() == 3
        open_checkpoint(log.checkpoint(), log.key)


# ---- witnesses -----------------------------------------------------------------------------------------------

def _poster(node):
    def post(body):
        answer = witness.add_checkpoint(node, body)
        return answer.status, answer.body
    return post


def test_a_checkpoint_submitted_again_moves_nothing_and_is_kept_once(tmp_path, monkeypatch):
    """A submission retried after its claim lapsed (the submitter killed after the witness co-signed, before it
    recorded that): the very same request again is answered 409 with the witness's size and changes nothing; the
    submitter's retry from that size is co-signed again at the same size and root; the log keeps one cosignature
    per witness key."""
    import types
    police, fife = ready_node(tmp_path / "police", "police.example"), ready_node(tmp_path / "fife")
    witness.watch(fife, witness.log_vkey(police))
    log = record.log_of(police)
    record.append(police, "budget.released", {}, {"n": 1})
    witness.submit(log, _poster(fife))
    first_size = log.size()
    record.append(police, "budget.released", {}, {"n": 2})
    note, size = log.checkpoint(), log.size()
    body = witness.request_body(first_size, log.consistency_proof(first_size, size), note)
    answer = witness.add_checkpoint(fife, body)
    assert answer.status == 200
    [before] = witness.watching(fife)
    seen = witness.seen(fife, log.origin)
    assert before.size == size
    # the log did not record that cosignature (killed); the same request is sent again
    again = witness.add_checkpoint(fife, body)
    assert (again.status, again.body) == (409, f"{size}\n")
    assert witness.watching(fife) == [before] and witness.seen(fife, log.origin) == seen
    # the submitter's path: from the size the 409 gave, the same checkpoint is co-signed again, a second later
    import time
    kept = witness.submit(log, _poster(fife))
    monkeypatch.setattr(notes, "time", types.SimpleNamespace(time=lambda: time.time() + 5))
    cosigned = witness.submit(log, _poster(fife))
    [after] = witness.watching(fife)
    assert (after.size, after.vkey) == (size, before.vkey)
    with fife.engine.connect() as conn:
        root = conn.execute(sa.select(witness.witnessed.c.root)).scalar_one()
    assert bytes(root) == log.root(size)
    key = witness.witness_key(fife)
    assert open_checkpoint(cosigned, log.key, [key]).witness_names == [key.name]
    lines = [line for line in log.checkpoint_at(size).split("\n") if line.startswith("\u2014 " + key.name + " ")]
    assert len(lines) == 1 and lines[0] in kept.split("\n")     # one cosignature per witness key: the first
    assert cosigned == kept


def test_witnesses_cosign_only_consistent_growth(tmp_path):
    from helpers_https import https_server
    from issuer.app import create_app
    log_node = ready_node(tmp_path / "log")
    w = ready_node(tmp_path / "w")
    log = record.log_of(log_node)
    witness.watch(w, log.key.vkey())
    with https_server(create_app(w)) as (base, ca):
        post = witness.http_poster(base + "/witness", Fetcher(allow_private=True, ca_bundle=ca))
        first = witness.submit(log, post)
        issuing.issue(log_node, certification(log_node.did))
        second = witness.submit(log, post)           # the witness checks consistency from what it saw
    opened = open_checkpoint(second, log.key, [witness.witness_key(w)])
    assert opened.witness_names == [w.did] and opened.checkpoint.size == 3
    assert open_checkpoint(first, log.key, [witness.witness_key(w)]).checkpoint.size == 2
    # an unknown log and a stale "old" size are refused with the tlog-witness codes
    stranger = _log(tmp_path, "stranger.db")
    stranger.append("receipt", {"receipt": "ab" * 32}, {})
    assert witness.add_checkpoint(w, witness.request_body(0, [], stranger.checkpoint())).status == 404
    assert witness.add_checkpoint(w, witness.request_body(0, [], log.checkpoint())).status == 409


def test_a_forked_log_is_caught_by_two_witnesses(tmp_path):
    """The log's operator keeps two databases under one key and shows each witness a different history."""
    import sqlite3
    key = PrivateKey.generate()
    honest = TransparencyLog(db.migrate(f"sqlite:///{tmp_path / 'a.db'}"), "fork.example/log", key)
    honest.append_many([("credential.issued", {"credential": f"{i:064x}"}, {}) for i in range(4)])
    # the fork: a copy of the database as it stands (entries carry their time, so appending the same four to a
    # second database straddled a second now and then, and the two logs differed from the first entry)
    with sqlite3.connect(tmp_path / "a.db") as source, sqlite3.connect(tmp_path / "b.db") as copy:
        source.backup(copy)
    forked = TransparencyLog(db.migrate(f"sqlite:///{tmp_path / 'b.db'}"), "fork.example/log", key)
    assert forked.checkpoint() == honest.checkpoint()
    w1, w2 = ready_node(tmp_path / "w1"), ready_node(tmp_path / "w2", "dundee.example")
    for w in (w1, w2):
        witness.watch(w, honest.key.vkey())
        witness.submit(honest, _poster(w))               # both saw the same 4 entries
    honest.append("credential.issued", {"credential": "aa" * 32}, {})
    forked.append("credential.issued", {"credential": "bb" * 32}, {})   # back-dated / swapped approval
    a = witness.submit(honest, _poster(w1))
    b = witness.submit(forked, _poster(w2))
    keys = [witness.witness_key(w1), witness.witness_key(w2)]
    # no checkpoint carries both witnesses' cosignatures: a policy asking for 2 of them never accepts either view
    assert len(open_checkpoint(a, honest.key, keys).witnesses) == 1
    assert len(open_checkpoint(b, honest.key, keys).witnesses) == 1
    # the witnesses compare what they cosigned, and have proof of the fork signed by the log itself
    split = witness.compare(witness.seen(w1, "fork.example/log"), witness.seen(w2, "fork.example/log"), honest.key)
    assert split is not None and "different trees of 5" in split.reason
    # the forked history cannot be shown to the first witness either
    forked.append("credential.issued", {"credential": "cc" * 32}, {})
    with pytest.raises(CeadError) as err:
        witness.submit(forked, _poster(w1))
    assert err.value.code == "tlog.witness_refused"
    # growth of one history is not a fork; a different history of another size is
    honest.append("credential.issued", {"credential": "dd" * 32}, {})
    later = honest.checkpoint()
    assert witness.compare(a, later, honest.key, honest.consistency_proof) is None
    assert witness.compare(b, later, honest.key, honest.consistency_proof) is not None
