"""Witnessing run as operators run it: two nodes, each `cead issuer serve` in its own process over HTTPS on
127.0.0.1 (a `cead dev-ca` certificate; each node's network rules trust that CA and allow private addresses).
Fife Council's node witnesses Police Scotland's log (`cead witness watch https://police...`, the log key read from
what Police Scotland's node serves); Police Scotland's config.yaml names Fife Council's witness URL, so after
`cead issue` writes a log entry its served node submits the new checkpoint by itself and Fife Council co-signs it:
/log/witnessed-checkpoint carries a cosignature that `cead witness key` of Fife Council verifies. `cead witness
submit` (cron) reports co-signed; a witness that stops watching refuses (404) and `submit` says so and exits 1."""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from cead.processes import free_port, python_argv
from issuer_fixtures import PASS, certification
from served_issuer import ServedIssuer
from verifier.tlog import note as notes
from verifier.tlog.checkpoint import open_checkpoint

ENV = {**os.environ, "CEAD_PASSPHRASE": PASS.decode()}   # with PYTHONPATH, so the processes run this tree
INTERVAL = 0.3        # config.yaml witness_interval of the log's node
WITHIN = 10.0         # seconds from an entry to its co-signed checkpoint


def cead(*args, check=True, env=None):
    done = subprocess.run(python_argv(*[str(a) for a in args]), env=env or ENV, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


class Served(ServedIssuer):
    """`cead issuer serve` of one home in its own process, until ``stop`` (SIGTERM)."""

    def __init__(self, home: Path, port: int, ca: Path):
        super().__init__(home, port, ca / "server.pem", ca / "server-key.pem", str(ca / "ca.pem"),
                         home.parent / (home.name + "-serve.log"), ENV)


def make_home(tmp: Path, name: str, short: str, ca: Path) -> tuple[Path, int, str]:
    home, port = tmp / short, free_port()
    cead("init", "--name", name, "--home", home, "--domain", f"localhost:{port}", "--public-url",
         f"https://localhost:{port}", "--ca-bundle", ca / "ca.pem", "--allow-private-addresses")
    return home, port, f"https://localhost:{port}"


def set_config(home: Path, **values) -> None:
    config = yaml.safe_load((home / "config.yaml").read_text())
    config.update(values)
    (home / "config.yaml").write_text(yaml.safe_dump(config))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("served-witness")
    ca = tmp / "dev-ca"
    cead("dev-ca", "--out", ca)
    police, police_port, police_url = make_home(tmp, "Police Scotland", "police", ca)
    fife, fife_port, fife_url = make_home(tmp, "Fife Council", "fife", ca)
    set_config(police, witnesses=[fife_url + "/witness"], witness_interval=INTERVAL)
    served = []
    try:
        served.append(Served(fife, fife_port, ca))
        served.append(Served(police, police_port, ca))
        yield {"tmp": tmp, "police": police, "fife": fife, "police_url": police_url, "fife_url": fife_url,
               "fife_served": served[0], "police_served": served[1]}
    finally:
        codes = [s.stop() for s in served]
        assert codes == [0] * len(served), [s.log_path.read_text() for s in served]


def wait_cosigned(served: Served, size: int, key: notes.NoteKey, log_key: notes.NoteKey) -> str:
    deadline = time.monotonic() + WITHIN
    while time.monotonic() < deadline:
        note = served.get("/log/witnessed-checkpoint")
        opened = open_checkpoint(note, log_key, [key])
        if opened.checkpoint.size >= size and opened.witnesses:
            return note
        time.sleep(0.1)
    raise AssertionError(f"no checkpoint of {size} entries co-signed within {WITHIN} s: {note}")


def test_a_served_node_submits_its_new_checkpoints_and_the_watching_witness_cosigns(world):
    police, fife = world["police"], world["fife"]
    # Police Scotland's log key, as its organisation prints it, and as Fife Council's node finds it from the URL
    printed = cead("witness", "log-key", "--home", police, env={**ENV, "CEAD_PASSPHRASE": ""}).stdout.strip()
    log_key = notes.NoteKey.parse(printed)
    assert log_key.name == world["police_url"].split("://")[1] + "/log" and log_key.alg == notes.ALG_ED25519
    watched = cead("witness", "watch", world["police_url"], "--home", fife)
    assert f"Watching {log_key.name}" in watched.stdout and printed in watched.stdout
    assert world["fife_url"] + "/witness" in watched.stderr          # what to send the log's organisation
    listed = cead("witness", "list", "--home", fife, "--json")
    assert [w["origin"] for w in json.loads(listed.stdout)["watching"]] == [log_key.name]

    # Police Scotland issues: a log entry; its served node submits the new checkpoint by itself
    credential = world["tmp"] / "cert.json"
    did = cead("did", "show", "--home", police).stdout.strip()
    credential.write_text(json.dumps(certification(did)))
    cead("issue", "certification", "--home", police, "--file", credential, "--out", world["tmp"] / "issued.json")
    fife_key = notes.NoteKey.parse(cead("witness", "key", "--home", fife).stdout.strip())
    current = open_checkpoint(world["police_served"].get("/log/checkpoint"), log_key).checkpoint.size
    assert current >= 1                                               # the credential's entry at least
    note = wait_cosigned(world["police_served"], current, fife_key, log_key)
    opened = open_checkpoint(note, log_key, [fife_key])
    assert [w.key.name for w in opened.witnesses] == [fife_key.name]
    # a key that is not Fife Council's finds no cosignature
    other = notes.NoteKey(fife_key.name, notes.ALG_COSIGNATURE_V1, bytes(32 * [7]))
    assert not open_checkpoint(note, log_key, [other]).witnesses

    # Fife Council's list shows the size it co-signed; Police Scotland's list shows who co-signed what
    mine = json.loads(cead("witness", "list", "--home", fife, "--json").stdout)["watching"][0]
    assert mine["size"] == opened.checkpoint.size and mine["at"]
    theirs = json.loads(cead("witness", "list", "--home", police, "--json").stdout)["witnesses"]
    assert theirs == [{"url": world["fife_url"] + "/witness", "size": opened.checkpoint.size,
                       "cosigner": fife_key.name, "cosignedAt": theirs[0]["cosignedAt"], "lastError": None}]

    # the cron job: nothing new to submit (said so), and --again submits now; both report co-signed, exit 0
    cron = cead("witness", "submit", "--home", police)
    assert "co-signed the checkpoint of" in cron.stdout and "already" in cron.stdout, cron.stdout
    again = cead("witness", "submit", "--again", "--home", police)
    assert f"{world['fife_url']}/witness: co-signed the checkpoint of {opened.checkpoint.size} entries, as " \
           f"{fife_key.name}" in again.stdout, again.stdout + again.stderr


def test_a_witness_that_does_not_watch_the_log_refuses_and_submit_says_so(world):
    police, fife = world["police"], world["fife"]
    origin = world["police_url"].split("://")[1] + "/log"
    cead("witness", "unwatch", origin, "--home", fife)
    try:
        refused = cead("witness", "submit", "--again", "--home", police, check=False)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "REFUSED" in refused.stdout and "(HTTP 404)" in refused.stdout, refused.stdout
        assert f"does not watch the log {origin}" in refused.stdout
        state = json.loads(cead("witness", "list", "--home", police, "--json").stdout)["witnesses"][0]
        assert "404" in state["lastError"]
    finally:
        cead("witness", "watch", world["police_url"], "--home", fife)


def test_a_bad_witnesses_section_stops_the_node_from_starting(world, tmp_path):
    home = tmp_path / "bad"
    ca = world["tmp"] / "dev-ca"
    cead("init", "--name", "Bad Config", "--home", home, "--domain", "localhost:1", "--ca-bundle", ca / "ca.pem",
         "--allow-private-addresses")
    set_config(home, witnesses="https://fife.example/witness")
    started = cead("issuer", "serve", "--home", home, "--port", free_port(), check=False)
    assert started.returncode == 1
    assert "node.config_invalid" in started.stderr and "config.yaml witnesses" in started.stderr
    set_config(home, witnesses=["ftp://fife.example"])
    started = cead("issuer", "serve", "--home", home, "--port", free_port(), check=False)
    assert "config.yaml witnesses[0]" in started.stderr and "not a witness URL" in started.stderr
