"""A key rotation while the nodes run, as operators run it: Police Scotland's and Fife Council's nodes, each
`cead issuer serve` in its own process over HTTPS on 127.0.0.1 (a `cead dev-ca` certificate), Fife Council
witnessing Police Scotland's log. `cead key rotate` and `cead key retire` run in their own processes beside the
served node, as an operator runs them.

1. The running node signs with the new key from the rotation on, without a restart: its checkpoints, the
   credentials it issues, its DID document; after `cead key retire` nothing is signed with the retired key.
2. The witness follows the rotation by itself: the rotation's checkpoint (the tree ending with the key.added
   entry, signed by the old key and the new) hands it over, and it co-signs checkpoints under the new key with
   nobody running `cead witness watch`.
3. A key the log has not handed over is refused: a key put into config.yaml (and so the DID document) without a
   log entry signs no checkpoint and a checkpoint forged with it is refused (403, saying what to do); a copy of
   the log that forked from what the witness co-signed and then rotated is refused (422), its key not followed.
"""
from __future__ import annotations

import json
import shutil
import sqlite3
import time

import pytest
import requests
import yaml

from issuer.evidence import record, witness
from issuer.keys import PrivateKey
from issuer.node import Node, _write_key
from issuer_fixtures import PASS, certification
from test_witness_served import ENV, Served, cead, make_home, set_config
from verifier.compose import build_verifier
from verifier.http import Fetcher
from verifier.tlog import note as notes
from verifier.tlog.checkpoint import Checkpoint, open_checkpoint

INTERVAL = 0.3        # config.yaml witness_interval of the log's node
WITHIN = 15.0         # seconds from an entry to its co-signed checkpoint


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("served-rotation")
    ca = tmp / "dev-ca"
    cead("dev-ca", "--out", ca)
    police, police_port, police_url = make_home(tmp, "Police Scotland", "police", ca)
    fife, fife_port, fife_url = make_home(tmp, "Fife Council", "fife", ca)
    set_config(police, witnesses=[fife_url + "/witness"], witness_interval=INTERVAL)
    token = cead("token", "create", "--home", police, "--name", "tests", "--scope", "issue:certification"
                 ).stdout.strip()
    served = []
    try:
        served.append(Served(fife, fife_port, ca))
        served.append(Served(police, police_port, ca))
        yield {"tmp": tmp, "ca": ca, "police": police, "fife": fife, "police_url": police_url,
               "fife_url": fife_url, "fife_served": served[0], "police_served": served[1], "token": token,
               "origin": police_url.split("://")[1] + "/log"}
    finally:
        codes = [s.stop() for s in served]
        assert codes == [0] * len(served), [s.log_path.read_text() for s in served]


def log_key(home) -> notes.NoteKey:
    """The log key the home's organisation prints (`cead witness log-key`, read here in this process)."""
    return notes.NoteKey.parse(witness.log_vkey(Node.open(home)))


def watched(home, origin: str) -> witness.Watched:
    """What the witness of ``home`` has for the log ``origin`` (`cead witness list`, read in this process)."""
    return next(w for w in witness.watching(Node.open(home)) if w.origin == origin)


def signers(note: str, *keys: notes.NoteKey) -> list[notes.NoteKey]:
    """Which of ``keys`` signed the checkpoint ``note``."""
    out = []
    for key in keys:
        try:
            open_checkpoint(note, key)
            out.append(key)
        except Exception:
            pass
    return out


def issue_served(world, **changes) -> dict:
    """A certification issued by the served node (its VC-API, with a token): signed by the running process."""
    did = Node.open(world["police"]).did
    answer = requests.post(world["police_url"] + "/credentials/issue", json={"credential": certification(
        did, certificateNumber=f"CE-{time.monotonic_ns()}", **changes)},
        headers={"Authorization": f"Bearer {world['token']}"}, verify=str(world["ca"] / "ca.pem"), timeout=30)
    assert answer.status_code == 201, answer.text
    return answer.json()["verifiableCredential"]


def issue_cli(world) -> None:
    """A certification issued by `cead issue` (its own process): a log entry the served node did not write."""
    did = Node.open(world["police"]).did
    path = world["tmp"] / f"cert-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(certification(did, certificateNumber=f"CE-{time.monotonic_ns()}")))
    cead("issue", "certification", "--home", world["police"], "--file", path, "--out", path.with_suffix(".out"))


def proof_verifies(world, credential: dict) -> bool:
    verifier = build_verifier(fetcher=Fetcher(allow_private=True, ca_bundle=str(world["ca"] / "ca.pem")),
                              status=False)
    return verifier.verify_credential(credential).verified


def wait_cosigned(world, size: int, key: notes.NoteKey, witness: notes.NoteKey) -> str:
    deadline = time.monotonic() + WITHIN
    note = ""
    while time.monotonic() < deadline:
        note = world["police_served"].get("/log/witnessed-checkpoint")
        try:
            opened = open_checkpoint(note, key, [witness])
        except Exception:
            opened = None
        if opened is not None and opened.checkpoint.size >= size and opened.witnesses:
            return note
        time.sleep(0.1)
    raise AssertionError(f"no checkpoint of {size} entries signed by {key.vkey()} and co-signed within {WITHIN} "
                         f"s: {note}\n{world['police_served'].log_path.read_text()[-3000:]}")


def size_of(note: str) -> int:
    return Checkpoint.parse(notes.split(note)[0]).size


def handover_of(world, key: notes.NoteKey) -> str:
    """The checkpoint the log signed when it logged ``key``: the tree ending with that key's key.added entry."""
    checkpoints = json.loads(world["police_served"].get("/log/checkpoints"))["checkpoints"]
    found = [c for c in checkpoints if signers(c, key) and len([line for line in c.split("\n")
                                                                 if line.startswith("\u2014 " + key.name)]) >= 2]
    assert found, checkpoints
    return found[0]


def test_the_running_node_signs_with_the_new_key_from_the_rotation_on(world):
    police, served = world["police"], world["police_served"]
    old = log_key(police)
    before = served.get("/log/checkpoint")
    assert signers(before, old) == [old]
    assert proof_verifies(world, issue_served(world))

    rotated = cead("key", "rotate", "--home", police).stdout.strip()       # its own process, beside the server
    new = log_key(police)
    assert new != old and rotated.endswith("#key-2"), rotated

    # the served DID document lists the new key at once (no restart)
    doc = json.loads(served.get("/.well-known/did.json"))
    assert rotated in doc["assertionMethod"], doc
    # the credentials the running node issues are signed with the new key, and verify against its DID document
    credential = issue_served(world)
    assert credential["proof"]["verificationMethod"] == rotated, credential["proof"]
    assert proof_verifies(world, credential)
    # the checkpoints it signs from the rotation on are signed by the new key only, whoever wrote the entries
    issue_cli(world)
    note = served.get("/log/checkpoint")
    assert signers(note, old, new) == [new], note
    # and the rotation's own checkpoint (the tree that ends with the key.added entry) by both: the old key vouches
    handover = handover_of(world, new)
    assert signers(handover, old, new) == [old, new], handover
    assert size_of(before) < size_of(handover) < size_of(note)

    # after `cead key retire`, nothing is signed with the retired key
    cead("key", "retire", "--home", police, "key-1")
    doc = json.loads(served.get("/.well-known/did.json"))
    assert not [m for m in doc["assertionMethod"] if m.endswith("#key-1")], doc
    credential = issue_served(world)
    assert credential["proof"]["verificationMethod"] == rotated and proof_verifies(world, credential)
    note = served.get("/log/checkpoint")
    assert size_of(note) > size_of(handover) and signers(note, old, new) == [new], note
    # a retired key cannot be the log's named key: retiring the current one is refused, the log says why
    refused = cead("key", "retire", "--home", police, "key-2", check=False)
    assert refused.returncode != 0 and "current signing key" in refused.stderr, refused.stderr


def test_the_witness_follows_the_log_s_rotation_by_itself(world):
    police, fife, origin = world["police"], world["fife"], world["origin"]
    cead("witness", "watch", world["police_url"], "--home", fife)
    witness_key = witness.witness_key(Node.open(fife))
    old = log_key(police)
    issue_served(world)
    wait_cosigned(world, size_of(world["police_served"].get("/log/checkpoint")), old, witness_key)

    cead("key", "rotate", "--home", police)
    new = log_key(police)
    assert new != old
    issue_served(world)
    size = size_of(world["police_served"].get("/log/checkpoint"))
    # nobody runs `cead witness watch`: the served node's submitter hands the witness over and it co-signs
    note = wait_cosigned(world, size, new, witness_key)
    assert signers(note, old, new) == [new]
    handover = handover_of(world, new)
    mine = next(w for w in json.loads(cead("witness", "list", "--home", fife, "--json").stdout)["watching"]
                if w["origin"] == origin)
    assert mine["logKey"] == new.vkey()
    assert mine["followed"]["from"] == old.vkey() and mine["followed"]["atSize"] == size_of(handover)
    assert f"followed the key rotation of the log {origin}" in world["fife_served"].log_path.read_text()
    # the rotation's checkpoint carries the witness's cosignature too: the step it followed is on the record
    cosigned_handover = next(c for c in json.loads(world["police_served"].get("/log/checkpoints"))["checkpoints"]
                             if size_of(c) == size_of(handover))
    assert open_checkpoint(cosigned_handover, old, [witness_key]).witnesses
    # Police Scotland's own view: the witness co-signed, no refusal left
    theirs = json.loads(cead("witness", "list", "--home", police, "--json").stdout)["witnesses"][0]
    assert theirs["lastError"] is None and theirs["size"] >= size, theirs


def test_a_key_the_log_did_not_hand_over_is_refused(world):
    police, fife, origin = world["police"], world["fife"], world["origin"]
    witness_url = world["fife_url"] + "/witness"
    ca = str(world["ca"] / "ca.pem")
    cead("witness", "watch", world["police_url"], "--home", fife)      # (idempotent after the test before)
    witness_key = witness.witness_key(Node.open(fife))
    named = log_key(police)
    issue_served(world)
    wait_cosigned(world, size_of(world["police_served"].get("/log/checkpoint")), named, witness_key)

    # (a) a quiet re-key: a key put into config.yaml, so into the served DID document, with no log entry
    saved = (police / "config.yaml").read_text()
    quiet = PrivateKey.generate()
    _write_key(police / "keys" / "key-quiet.pem", quiet, PASS)
    config = yaml.safe_load(saved)
    for meta in config["keys"]:
        if meta["kind"] == "Ed25519" and meta["status"] == "active":
            meta["status"] = "previous"
    config["keys"].append({"id": "key-quiet", "kind": "Ed25519", "file": "keys/key-quiet.pem",
                           "public": quiet.public.to_multikey(), "status": "active", "created": "2026-12-04T00:00:00Z"})
    (police / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    quiet_key = notes.NoteKey(origin, notes.ALG_ED25519, quiet.public.raw)
    try:
        doc = json.loads(world["police_served"].get("/.well-known/did.json"))
        assert any(m.endswith("#key-quiet") for m in doc["assertionMethod"])       # the DID document changed
        credential = issue_served(world)
        assert credential["proof"]["verificationMethod"].endswith("#key-quiet")  # (the node uses it to issue)
        note = world["police_served"].get("/log/checkpoint")
        # but the log signs with the key it named, never with one it has not: the quiet key signs no checkpoint
        assert signers(note, named, quiet_key) == [named], note
        wait_cosigned(world, size_of(note), named, witness_key)

        # a checkpoint the quiet key signed, consistent with what the witness co-signed, is refused all the same
        text = notes.split(note)[0]
        forged = notes.signed(text, [notes.sign(text, origin, quiet)])
        answer = requests.post(witness_url + "/add-checkpoint", data=f"old {size_of(note)}\n\n{forged}",
                               verify=ca, timeout=10)
        assert answer.status_code == 403, answer.text
        assert "not signed by the key this witness has" in answer.text
        assert f"cead witness watch {world['police_url']}" in answer.text          # what the operator does
        assert f"refused a checkpoint of the log {origin}" in world["fife_served"].log_path.read_text()
        # nor does add-key take it: the checkpoint is not signed by the key the witness has
        entry, inclusion = last_entry(police, size_of(note))
        body = {"old": size_of(note), "consistency": [], "checkpoint": forged, "entry": entry,
                "inclusion": inclusion}
        answer = requests.post(witness_url + "/add-key", json=body, verify=ca, timeout=10)
        assert answer.status_code == 403, answer.text
        # and a checkpoint the named key signed, whose newest entry is no key change, hands over nothing
        answer = requests.post(witness_url + "/add-key", json={**body, "checkpoint": note}, verify=ca, timeout=10)
        assert answer.status_code == 422 and "not a key.added entry" in answer.text, answer.text
    finally:
        (police / "config.yaml").write_text(saved)
    before = watched(fife, origin)
    assert before.vkey == named.vkey()

    # (b) a fork: a copy of the log that diverged from what the witness co-signed, then rotated its key
    fork = world["tmp"] / "police-fork"
    shutil.copytree(police, fork, ignore=shutil.ignore_patterns("node.db*", "*.log"))
    with sqlite3.connect(police / "node.db") as live, sqlite3.connect(fork / "node.db") as copy:
        live.backup(copy)
    issue_served(world)                                   # the real log grows; the witness co-signs it
    real = world["police_served"].get("/log/checkpoint")
    wait_cosigned(world, size_of(real), named, witness_key)
    forked = Node.open(fork, PASS)
    for n in range(2):                                    # the fork grows otherwise, past the witness's size
        record.append(forked, "budget.released", {}, {"fork": n})
    cead("key", "rotate", "--home", fork)
    forked_key = log_key(fork)
    assert forked_key != named
    record.append(forked, "budget.released", {}, {"fork": 2})      # and goes on under its new key
    refused = cead("witness", "submit", "--home", fork, check=False)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "REFUSED" in refused.stdout and "(HTTP 403)" in refused.stdout, refused.stdout
    assert "not handed over to this log's new key" in refused.stdout, refused.stdout
    assert "(422)" in refused.stdout and "a fork" in refused.stdout, refused.stdout
    after = watched(fife, origin)
    assert (after.vkey, after.size, after.key_since) == (named.vkey(), size_of(real), before.key_since)
    # the real log is still co-signed under its own key
    issue_served(world)
    wait_cosigned(world, size_of(world["police_served"].get("/log/checkpoint")), named, witness_key)


def last_entry(home, size: int) -> tuple[str, list[str]]:
    """The last entry of the log's tree of ``size`` and its inclusion proof (base64), read from the home's log."""
    import base64
    from issuer.evidence import record
    from issuer.node import Node
    log = record.log_of(Node.open(home))
    return (base64.b64encode(log.entry(size - 1)).decode(),
            [base64.b64encode(h).decode() for h in log.inclusion_proof(size - 1, size)])
