"""Key rotation and the log, in one process (the served, multi-process runs are tests/test_key_rotation_served.py).

- A node opened before another opens the same home and rotates (as `cead issuer serve` beside `cead key rotate`)
  signs with the new key from then on, lists it in its DID document, and never signs with a retired key.
- The log's checkpoints are signed by the key the log names; the rotation's own checkpoint (the tree ending with
  the key.added entry) by the old key and the new.
- Two checkpoints either side of a rotation are compared with the log's two keys (witness.compare): one history
  is no split view, a fork still is; a checkpoint signed by neither key is an error naming them.
- A witness follows a rotation only on that proof (issuer.evidence.witness.add_key): a replayed older key.added
  entry, an entry that is not the tree's last, a checkpoint the new key did not sign, one inconsistent with what
  it co-signed, are refused; a chain of rotations is followed step by step.
"""
from __future__ import annotations

import base64
import json
import os

import pytest
import yaml

from issuer.evidence import record, witness
from issuer.node import Node
from issuer_fixtures import PASS, postgresql_node, ready_node
from verifier.results import CeadError
from verifier.tlog import note as notes
from verifier.tlog.checkpoint import Checkpoint, open_checkpoint


def posters(w):
    """In-process add-checkpoint and add-key posters to the witness node ``w``."""
    def post(body):
        answer = witness.add_checkpoint(w, body)
        return answer.status, answer.body

    def post_key(body):
        answer = witness.add_key(w, body)
        return answer.status, answer.body
    return post, post_key


def key_of(node) -> notes.NoteKey:
    return notes.NoteKey.parse(witness.log_vkey(node))


def signed_by(note: str, *keys) -> list:
    out = []
    for key in keys:
        try:
            open_checkpoint(note, key)
            out.append(key)
        except CeadError:
            pass
    return out


def size_of(note: str) -> int:
    return Checkpoint.parse(notes.split(note)[0]).size


@pytest.fixture(params=["sqlite", "postgresql"])
def pair(request, tmp_path):
    """Police Scotland's node (its log on SQLite, or on the PostgreSQL of CEAD_TEST_DATABASE_URL) and Fife
    Council's, watching it."""
    fife = ready_node(tmp_path / "fife", "fife.example")
    if request.param == "sqlite":
        police = ready_node(tmp_path / "police", "police.example")
        witness.watch(fife, witness.log_vkey(police))
        yield police, fife
        return
    if not os.environ.get("CEAD_TEST_DATABASE_URL"):
        pytest.skip("set CEAD_TEST_DATABASE_URL")
    with postgresql_node(tmp_path / "police") as police:
        witness.watch(fife, witness.log_vkey(police))
        yield police, fife


def test_a_node_opened_before_a_rotation_by_another_takes_the_new_key_at_its_next_signature(tmp_path):
    running = ready_node(tmp_path / "h")                    # as `cead issuer serve` holds it
    log = record.log_of(running)
    k1 = key_of(running)
    assert signed_by(log.checkpoint(), k1) == [k1]
    operator = Node.open(tmp_path / "h", PASS)              # as `cead key rotate` opens it, in another process
    vm2 = operator.rotate_key()
    k2 = key_of(operator)
    assert running.verification_method_id == vm2 and running.key.public.raw == k2.public
    assert vm2 in running.did_document()["assertionMethod"]
    record.append(running, "budget.released", {}, {"n": 1})
    assert signed_by(log.checkpoint(), k1, k2) == [k2]
    operator.retire_key("key-1")
    assert f"{running.did}#key-1" not in running.did_document()["assertionMethod"]
    with pytest.raises(CeadError) as err:
        running.private_key_for(running.config["keys"][0]["public"])
    assert err.value.code == "key.retired"
    # a config.yaml that cannot be read as the node's keys leaves the running node's keys as they were
    good = (tmp_path / "h" / "config.yaml").read_text()
    (tmp_path / "h" / "config.yaml").write_text("did: [unclosed\n")
    assert running.verification_method_id == vm2
    (tmp_path / "h" / "config.yaml").write_text(good)
    assert running.verification_method_id == vm2


def test_the_rotation_s_checkpoint_is_signed_by_the_old_key_and_the_new(pair):
    police, _ = pair
    log = record.log_of(police)
    k1 = key_of(police)
    police.rotate_key()
    k2 = key_of(police)
    [(size, note)] = log.handovers()
    assert size == log.size() and json.loads(log.entry(size - 1))["kind"] == "key.added"
    assert signed_by(note, k1, k2) == [k1, k2]
    police.rotate_key("P-256")                              # not the log's key: no handover, the same signer
    record.append(police, "budget.released", {}, {"n": 1})
    assert len(log.handovers()) == 1 and signed_by(log.checkpoint(), k1, k2) == [k2]


def test_a_witness_follows_a_chain_of_rotations_and_not_a_replayed_key(pair):
    police, fife = pair
    log = record.log_of(police)
    post, post_key = posters(fife)
    k1 = key_of(police)
    witness.submit(log, post, post_key)
    police.rotate_key()
    k2 = key_of(police)
    police.rotate_key()
    k3 = key_of(police)
    record.append(police, "budget.released", {}, {"n": 1})
    # without the add-key poster, the witness refuses the new key (it has k1), saying what to do
    with pytest.raises(CeadError) as err:
        witness.submit(log, post)
    assert err.value.detail["status"] == 403
    assert f"cead witness watch https://{log.origin.removesuffix('/log')}" in err.value.message
    note = witness.submit(log, post, post_key)
    assert open_checkpoint(note, k3, [witness.witness_key(fife)]).witnesses
    [w] = witness.watching(fife)
    assert (w.vkey, w.previous_vkey) == (k3.vkey(), k2.vkey())
    assert w.key_since == log.handovers()[-1][0]
    # a key.added entry from before (the one that named k1) cannot be replayed: it is not the last entry
    size = log.size()
    body = json.dumps({"old": size, "consistency": [], "checkpoint": log.checkpoint(),
                       "entry": base64.b64encode(log.entry(0)).decode(),
                       "inclusion": [base64.b64encode(h).decode() for h in log.inclusion_proof(0, size)]})
    answer = witness.add_key(fife, body)
    assert answer.status == 422 and "ends with the log's key.added entry" in answer.body
    # nor can an earlier rotation's checkpoint be given again: the witness is past it
    first_size, first = log.handovers()[0]
    answer = witness.add_key(fife, witness.key_request_body(log, size, first_size, first))
    assert answer.status == 403                            # signed by k1 and k2; the witness has k3
    assert witness.watching(fife)[0].vkey == k3.vkey()


def test_a_rotation_s_checkpoint_must_be_signed_by_the_new_key_and_extend_what_the_witness_saw(pair):
    police, fife = pair
    log = record.log_of(police)
    post, post_key = posters(fife)
    old_key = police.key
    witness.submit(log, post, post_key)
    police.rotate_key()
    size, handover = log.handovers()[0]
    text = notes.split(handover)[0]
    only_old = notes.signed(text, [notes.sign(text, log.origin, old_key)])
    seen = witness.watching(fife)[0].size
    answer = witness.add_key(fife, witness.key_request_body(log, seen, size, only_old))
    assert answer.status == 422 and "not signed by the new key" in answer.body, answer.body
    # a checkpoint of a tree the witness did not see grow from its own (another root): inconsistent
    other = ready_node(police.home.parent / "other", "other.example")
    forged_text = Checkpoint(log.origin, size, bytes(32)).text()
    forged = notes.signed(forged_text, [notes.sign(forged_text, log.origin, old_key),
                                        notes.sign(forged_text, log.origin, police.key)])
    body = json.loads(witness.key_request_body(log, seen, size, handover))
    answer = witness.add_key(fife, json.dumps({**body, "checkpoint": forged}))
    assert answer.status == 422, answer.body
    assert witness.watching(fife)[0].vkey != witness.log_vkey(police)       # not followed
    assert witness.add_key(fife, b"not json").status == 400
    assert witness.add_key(other, json.dumps(body)).status == 404               # not watched there
    # the real one is followed, even once the old key is retired (it signed the handover before)
    police.retire_key("key-1")
    record.append(police, "budget.released", {}, {"n": 1})
    witness.submit(log, post, post_key)
    assert witness.watching(fife)[0].vkey == witness.log_vkey(police)


def test_the_log_signs_only_with_a_key_it_named(tmp_path):
    node = ready_node(tmp_path / "h")
    log = record.log_of(node)
    named = log.named_key()
    # a key made active in config.yaml with no log entry (a quiet re-key, or a rotation cut short before its
    # entry) does not sign the log's checkpoints, and the key the log still names cannot be retired
    config = yaml.safe_load((tmp_path / "h" / "config.yaml").read_text())
    operator = Node.open(tmp_path / "h", PASS)
    operator.rotate_key()
    with operator.engine.begin() as conn:                   # undo its log entry and checkpoint: cut short
        from sqlalchemy import text
        size = conn.execute(text("select size from tlog_head")).scalar_one()
        for table in ("tlog_checkpoint where size = :s", "tlog_digest where idx = :i", "tlog_hash where level = 0 "
                      "and idx = :i", "tlog_entry where idx = :i"):
            conn.execute(text(f"delete from {table}"), {"s": size, "i": size - 1})
        conn.execute(text("update tlog_head set size = :s"), {"s": size - 1})
    assert log.named_key() == named and node.key.public.to_multikey() != named
    record.append(node, "budget.released", {}, {"n": 1})
    k1 = notes.NoteKey(log.origin, notes.ALG_ED25519, node.private_key_for(named).public.raw)
    assert signed_by(log.checkpoint(), k1) == [k1]
    with pytest.raises(CeadError) as err:
        operator.retire_key("key-1")
    assert err.value.code == "key.retire_active" and "cut short" in err.value.message
    # a log whose named key is not in config.yaml signs nothing, and says what to do
    (tmp_path / "h" / "config.yaml").write_text(yaml.safe_dump({**config, "keys": config["keys"][1:] + [
        {**config["keys"][0], "public": "z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"}]}))
    record.append(node, "budget.released", {}, {"n": 2})
    with pytest.raises(CeadError) as err:
        log.checkpoint()
    assert err.value.code == "tlog.key_unavailable" and "cead key rotate" in err.value.message


def test_a_rotation_whose_log_entry_fails_leaves_the_node_as_it_was(tmp_path, monkeypatch):
    node = ready_node(tmp_path / "h")
    before = (tmp_path / "h" / "config.yaml").read_text()

    def broken(*args, **kwargs):
        raise CeadError("db.unavailable", "the database is away")
    monkeypatch.setattr(record, "key_changed", broken)
    with pytest.raises(CeadError):
        node.rotate_key()
    assert (tmp_path / "h" / "config.yaml").read_text() == before
    assert not (tmp_path / "h" / "keys" / "key-2.pem").exists()
    monkeypatch.undo()
    assert node.rotate_key().endswith("#key-2")


def _fork_of(node, home):
    """A second node with the same home (keys, config.yaml) and a copy of the database as it stands: what a log
    that shows two histories runs."""
    import shutil
    import sqlite3
    shutil.copytree(node.home, home, ignore=shutil.ignore_patterns("node.db*"))
    with sqlite3.connect(node.home / "node.db") as source, sqlite3.connect(home / "node.db") as copy:
        source.backup(copy)
    fork = Node.open(home, PASS)
    fork._passphrase = PASS
    return fork


def test_checkpoints_either_side_of_a_rotation_are_compared_with_the_log_s_two_keys(tmp_path):
    police = ready_node(tmp_path / "police", "police.example")
    fife = ready_node(tmp_path / "fife", "fife.example")
    dundee = ready_node(tmp_path / "dundee", "dundee.example")
    for w in (fife, dundee):
        witness.watch(w, witness.log_vkey(police))
    log = record.log_of(police)
    record.append(police, "budget.released", {}, {"n": 1})
    fork = _fork_of(police, tmp_path / "fork")              # the same key and history so far
    forked = record.log_of(fork)
    k1 = key_of(police)
    # the honest log: seen by both witnesses, then rotated, then seen by Fife under the new key
    witness.submit(log, *posters(dundee))
    before = witness.seen(dundee, log.origin)
    witness.submit(log, *posters(fife))
    police.rotate_key()
    k2 = key_of(police)
    record.append(police, "budget.released", {}, {"n": 2})
    witness.submit(log, *posters(fife))
    after = witness.seen(fife, log.origin)
    assert signed_by(before, k1, k2) == [k1] and signed_by(after, k1, k2) == [k2]
    # one history across the rotation: consistent, with the keys in either order
    assert witness.compare(before, after, [k1, k2], log.consistency_proof) is None
    assert witness.compare(after, before, [k2, k1], log.consistency_proof) is None
    # with the new key alone the older checkpoint is not the log's word: an error naming the keys, not a split view
    with pytest.raises(CeadError) as err:
        witness.compare(before, after, k2, log.consistency_proof)
    assert err.value.code == "tlog.signature_invalid"
    assert "first checkpoint" in err.value.message and k2.vkey() in err.value.message
    assert "key before the rotation and the key after it" in err.value.message
    # a key the log never named (another organisation's, under this log's name) is refused the same way
    text = notes.split(after)[0]
    with pytest.raises(CeadError) as err:
        witness.compare(before, notes.signed(text, [notes.sign(text, log.origin, dundee.key)]), [k1, k2])
    assert err.value.code == "tlog.signature_invalid" and "second checkpoint" in err.value.message
    with pytest.raises(CeadError) as err:
        witness.compare(before, after, [k1, witness.witness_key(fife)])
    assert err.value.code == "tlog.note_invalid"
    # the split view: the fork shows Dundee another entry under the old key; the honest log rotates, and Fife has
    # co-signed its newer checkpoint under the new key: still caught across the rotation
    dundee2 = ready_node(tmp_path / "dundee2", "dundee2.example")
    witness.watch(dundee2, witness.log_vkey(fork))
    record.append(fork, "credential.issued", {"credential": "bb" * 32}, {})
    witness.submit(forked, *posters(dundee2))
    other = witness.seen(dundee2, log.origin)
    assert signed_by(other, k1, k2) == [k1] and size_of(other) < size_of(after)
    split = witness.compare(other, after, [k1, k2], log.consistency_proof)
    assert split is not None and split.origin == log.origin
    assert f"does not extend the tree of {size_of(other)}" in split.reason
    # and a fork of the same size, one side signed by each key
    record.append(fork, "credential.issued", {"credential": "cc" * 32}, {})
    while forked.size() < log.size():
        record.append(fork, "credential.issued", {"credential": "dd" * 32}, {})
    assert forked.size() == log.size()
    split = witness.compare(forked.checkpoint(), log.checkpoint(), [k2, k1])
    assert split is not None and "two different trees" in split.reason
