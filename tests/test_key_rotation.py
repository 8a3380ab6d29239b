"""Key rotation and the log, in one process (the served, multi-process runs are tests/test_key_rotation_served.py).

- A node opened before another opens the same home and rotates (as `cead issuer serve` beside `cead key rotate`)
  signs with the new key from then on, lists it in its DID document, and never signs with a retired key.
- The log's checkpoints are signed by the key the log names; the rotation's own checkpoint (the tree ending with
  the key.added entry) by the old key and the new.
- Two checkpoints either side of a rotation are compared with the log's two keys (witness.compare): one history
  is no split view, a fork still is; a checkpoint signed by neither key is an error naming them.
- A rotation killed between its writes (SIGKILL in a subprocess) leaves no key in use that the log does not
  name, loses nothing, and `cead key rotate` again completes it with the key it had made.
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
    # rotating again completes that rotation (from before rotations went through a pending key): the active key
    # is logged, handed over by the key before it, rather than a third key made
    assert operator.unfinished_rotation()["id"] == "key-2"
    assert operator.rotate_key().endswith("#key-2") and operator.unfinished_rotation() is None
    assert log.named_key() == node.key.public.to_multikey() and len(log.handovers()) == 1
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


CRASH = """
import os, signal, sys
from issuer.evidence import record
from issuer.node import Node
node = Node.open(sys.argv[1], {pass_!r})
where = sys.argv[2]
if where == "before-log":           # config.yaml names the new key; its key.added entry is not written yet
    record.key_changed = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
else:                               # the entry and its handover checkpoint are committed; config.yaml not final yet
    save, calls = Node.save_config, []
    def second_save(self):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        save(self)
    Node.save_config = second_save
node.rotate_key()
print("not killed")
"""


def _rotate_and_crash(home, where: str) -> None:
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, "-c", CRASH.format(pass_=PASS), str(home), where], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, (proc.returncode, proc.stdout, proc.stderr)


def _signed_only_with_named_keys(node) -> None:
    """Every credential in the register and every checkpoint the log keeps is signed by a key the log names."""
    from sqlmodel import select

    from issuer import db
    log = record.log_of(node)
    named = {multikey for _, _, multikey in log.named_keys()}
    by_vm = {node.vm_id(m): m["public"] for m in node.config["keys"]}
    with node.session() as s:
        vms = [row.verification_method for row in s.exec(select(db.IssuedCredential))]
    assert vms and all(by_vm[vm] in named for vm in vms), (vms, named)
    from verifier.keys import PublicKey
    keys = [notes.NoteKey(log.origin, notes.ALG_ED25519, PublicKey.from_multikey(m).raw) for m in named]
    for note in log.checkpoints():
        ids = {sig.id for sig in notes.split(note)[1] if sig.name == log.origin}
        assert ids and ids <= {k.id for k in keys}, note
        assert signed_by(note, *keys)


@pytest.mark.parametrize("where", ["before-log", "after-log"])
def test_a_rotation_killed_between_its_writes_leaves_no_unlogged_key_in_use_and_completes_when_run_again(
        tmp_path, where):
    from issuer import issuing
    from issuer_fixtures import certification
    home = tmp_path / "h"
    node = ready_node(home, "police.example")
    issuing.issue(node, certification(node.did))
    log = record.log_of(node)
    entries = log.entries()
    k1 = key_of(node)
    _rotate_and_crash(home, where)
    # what the killed rotation left: the new key written and named pending in config.yaml, never active
    node = Node.open(home, PASS)
    log = record.log_of(node)
    assert [(m["id"], m["status"]) for m in node.config["keys"] if m["kind"] == "Ed25519"] == \
        [("key-1", "active"), ("key-2", "pending")]
    assert (home / "keys" / "key-2.pem").exists()
    pending = node.config["keys"][-1]["public"]
    logged = bool(log.find(record.key_digest(pending), kind="key.added"))
    assert logged == (where == "after-log")
    assert log.entries()[:len(entries)] == entries                  # nothing stored before is lost
    assert node.unfinished_rotation()["id"] == "key-2"
    # the node goes on: its credentials are signed by the key it had, its checkpoints by the key the log names
    assert node.verification_method_id.endswith("#key-1")
    issuing.issue(node, certification(node.did))
    record.append(node, "budget.released", {}, {"n": 1})
    signing = key_of_multikey(log.origin, pending) if logged else k1
    assert signed_by(log.checkpoint(), k1, key_of_multikey(log.origin, pending)) == [signing]
    assert key_of(node) == signing                 # `cead witness log-key` prints the key that signs checkpoints
    assert [k.public for k in witness.witness_keys(node)] == [node.key.public.raw]   # and cosigns only with key-1
    _signed_only_with_named_keys(node)
    with pytest.raises(CeadError) as err:
        node.retire_key("key-2")
    assert err.value.code == "key.retire_active" and "cead key rotate" in err.value.message
    # `cead key rotate` again completes it with the same key (no key-3), logged once, handed over by key-1
    from click.testing import CliRunner

    from cead.cli import main
    done = CliRunner().invoke(main, ["key", "rotate", "--home", str(home)], env={"CEAD_PASSPHRASE": PASS.decode()})
    assert done.exit_code == 0, done.output
    assert done.stdout.strip().endswith("#key-2") and "Completed the rotation to key-2" in done.stderr
    node = Node.open(home, PASS)
    log = record.log_of(node)
    assert [(m["id"], m["status"]) for m in node.config["keys"] if m["kind"] == "Ed25519"] == \
        [("key-1", "previous"), ("key-2", "active")]
    assert not (home / "keys" / "key-3.pem").exists() and node.unfinished_rotation() is None
    assert len(log.find(record.key_digest(pending), kind="key.added")) == 1
    k2 = key_of(node)
    assert k2 == key_of_multikey(log.origin, pending)
    [(size, handover)] = log.handovers()
    assert signed_by(handover, k1, k2) == [k1, k2]
    issuing.issue(node, certification(node.did))
    record.append(node, "budget.released", {}, {"n": 2})
    assert signed_by(log.checkpoint(), k1, k2) == [k2]
    _signed_only_with_named_keys(node)
    assert log.entries()[:len(entries)] == entries
    assert Node.open(home, PASS).rotate_key().endswith("#key-3")     # and the next rotation is a new key


def key_of_multikey(origin: str, multikey: str) -> notes.NoteKey:
    from verifier.keys import PublicKey
    return notes.NoteKey(origin, notes.ALG_ED25519, PublicKey.from_multikey(multikey).raw)


def test_a_rotation_cut_short_whose_key_file_is_gone_is_undone_and_made_afresh(tmp_path):
    home = tmp_path / "h"
    ready_node(home, "police.example")
    _rotate_and_crash(home, "before-log")
    node = Node.open(home, PASS)
    lost = node.config["keys"][-1]["public"]
    (home / "keys" / "key-2.pem").unlink()
    assert node.rotate_key().endswith("#key-2")
    [(_, new)] = [(m["status"], m["public"]) for m in node.config["keys"] if m["id"] == "key-2"]
    assert new != lost and record.log_of(node).named_key() == new
    assert not record.log_of(node).find(record.key_digest(lost))
    assert [m["status"] for m in node.config["keys"] if m["kind"] == "Ed25519"] == ["previous", "active"]
