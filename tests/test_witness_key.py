"""`cead witness key`: what an auditor gives `cead audit --witness`. The witnessing organisation prints its key
(no passphrase needed: it is public), or the auditor computes it from that organisation's own DID document
(`--did`); either verifies the cosignature of a checkpoint really witnessed over HTTPS, and a key that is not the
witness's (another node's, or one with the witness's name and other key material) counts for nothing. After the
witness rotates its key, `--all` gives the key that co-signed the earlier checkpoints too, and one witness with two
keys is still one witness. Real parts: two nodes each serving over HTTPS on 127.0.0.1, the log submitting its
checkpoint to the witness's /witness/add-checkpoint, the commands run as processes."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from issuer.app import create_app
from issuer.evidence import record, witness
from issuer.node import Node
from issuer_fixtures import PASS, ready_node
from helpers_https import https_server
from verifier.tlog import note as notes

ROOT = Path(__file__).resolve().parent.parent


def serving(stack):
    """An HTTPS server on 127.0.0.1 whose app is set later: (holder, base URL, CA file)."""
    holder = {}
    base, ca = stack.enter_context(https_server(lambda environ, start: holder["app"](environ, start)))
    return holder, base, ca


def node_at(holder, base, home, name, cas):
    port = base.rsplit(":", 1)[1]
    node, _ = Node.init(home, name, PASS, domain=f"localhost:{port}", public_url=base,
                        network={"allow_private": True, "ca_bundle": str(cas)})   # its peers are on 127.0.0.1
    node._passphrase = PASS
    holder["app"] = create_app(node)
    return node


@pytest.fixture()
def world(tmp_path):
    """Police Scotland's node (the log audited) and Fife Council's node (its witness), each on its own HTTPS
    server; Police Scotland's checkpoint co-signed by Fife Council through the witness endpoint."""
    import contextlib
    with contextlib.ExitStack() as stack:
        (police_app, police_url, police_ca), (fife_app, fife_url, fife_ca) = serving(stack), serving(stack)
        cas = tmp_path / "cas.pem"
        cas.write_text(Path(police_ca).read_text() + Path(fife_ca).read_text())
        police = node_at(police_app, police_url, tmp_path / "police", "Police Scotland", cas)
        fife = node_at(fife_app, fife_url, tmp_path / "fife", "Fife Council", cas)
        record.issued(police, None, credential_id=f"urn:uuid:{uuid.uuid4()}",
                      types=["VerifiableCredential", "DataSharingApprovalCredential"], digest="ab" * 32,
                      verification_method=police.verification_method_id)
        log = record.log_of(police)
        witness.watch(fife, log.key.vkey())

        def witnessed():
            return witness.submit(log, witness.http_poster(fife_url + "/witness", police.fetcher()))
        witnessed()
        yield SimpleNamespace(police=police, police_url=police_url, fife=fife, fife_url=fife_url, cas=cas,
                              log=log, witnessed=witnessed, tmp=tmp_path)


def cead(*args, home=None):
    """`cead ARGS` as a process, without the passphrase in its environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("CEAD_PASSPHRASE", "CEAD_HOME")}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if home is not None:
        env["CEAD_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "cead.cli", *map(str, args)], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)


def audit(w, *witness_args):
    out = w.tmp / f"report-{uuid.uuid4().hex[:6]}"
    proc = cead("audit", w.police_url, "--ca-bundle", w.cas, "--allow-private-addresses", "--out", out,
                *witness_args)
    page = next(out.glob("*.html")).read_text() if out.exists() else ""
    return proc, page


def test_the_printed_key_verifies_the_witness_and_a_wrong_key_does_not_count(world):
    printed = cead("witness", "key", home=world.fife.home)
    assert printed.returncode == 0, printed.stderr
    lines = printed.stdout.splitlines()
    assert len(lines) == 1                                    # one line: `--witness "$(cead witness key)"` works
    key = notes.NoteKey.parse(lines[0])                       # a C2SP note verifier key, name+keyid+base64
    assert key.name == world.fife.did and key.alg == notes.ALG_COSIGNATURE_V1
    assert key.public == world.fife.key.public.raw           # the key its cosignatures are made with

    ok, page = audit(world, "--witness", lines[0], "--min-witnesses", "1")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "all checks passed" in ok.stdout and "witnesses not checked" not in ok.stdout
    assert "the checkpoint is co-signed by them" in page and world.fife.did in page.split("<h2>Checkpoints")[1]

    # a key that is not Fife Council's: another node's, and one with Fife Council's name but other key material
    other = ready_node(world.tmp / "other")
    impostor = notes.NoteKey(world.fife.did, notes.ALG_COSIGNATURE_V1, other.key.public.raw).vkey()
    for wrong in (witness.witness_key(other).vkey(), impostor):
        refused, page = audit(world, "--witness", wrong, "--min-witnesses", "1")
        assert refused.returncode == 1, refused.stdout
        assert "audit.witnesses_insufficient" in refused.stderr and "co-signed by 0 of the witnesses" in refused.stderr
        assert "none of the witnesses named" in page
        counted, page = audit(world, "--witness", wrong)      # not required: the report says nobody it names signed
        assert counted.returncode == 0 and "0 of the 1 checkpoints are co-signed by them, but not the latest" in page


def test_an_auditor_computes_the_key_from_the_witnesses_own_did_document(world):
    from_home = cead("witness", "key", home=world.fife.home).stdout.strip()
    from_did = cead("witness", "key", "--did", world.fife.did, "--ca-bundle", world.cas, "--allow-private-addresses")
    assert from_did.returncode == 0, from_did.stderr
    assert from_did.stdout.splitlines() == [from_home]
    # the same DID document over the network rules of an auditor who did not allow private addresses: refused
    refused = cead("witness", "key", "--did", world.fife.did, "--ca-bundle", world.cas)
    assert refused.returncode == 2 and "--allow-private-addresses" in refused.stderr
    assert '"code"' in refused.stderr and "Traceback" not in refused.stderr
    # the --did options only mean something with --did
    misused = cead("witness", "key", "--allow-private-addresses", home=world.fife.home)
    assert misused.returncode == 2 and "go with --did" in misused.stderr


def test_after_the_witness_rotates_its_key_all_gives_both_and_one_witness_counts_once(world):
    before = cead("witness", "key", home=world.fife.home).stdout.strip()
    world.fife.rotate_key()                                   # a key rotation on the witnessing node
    after = cead("witness", "key", home=world.fife.home).stdout.strip()
    assert after != before and notes.NoteKey.parse(after).name == world.fife.did
    every = cead("witness", "key", "--all", home=world.fife.home).stdout.splitlines()
    assert every == [after, before]                           # the current key first
    from_did = cead("witness", "key", "--did", world.fife.did, "--ca-bundle", world.cas,
                    "--allow-private-addresses").stdout.splitlines()
    assert sorted(from_did) == sorted(every)

    # the checkpoint was co-signed with the key of before the rotation: the new key alone does not verify it
    size = world.log.size()
    only_new, _ = audit(world, "--witness", after, "--min-witnesses", "1")
    assert only_new.returncode == 1 and f"The checkpoint of {size} entries is co-signed by 0" in only_new.stderr
    both = ["--witness", every[0], "--witness", every[1]]
    ok, page = audit(world, *both, "--min-witnesses", "1")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "the checkpoint is co-signed by them" in page

    # the checkpoint submitted again: the witness co-signs it with its new key, so it carries a cosignature by each
    # of Fife Council's keys, and is still co-signed by one witness, not two
    world.witnessed()
    ids = {notes.NoteKey.parse(k).id for k in every}
    signatures = [s for s in notes.split(world.log.checkpoint())[1] if s.name == world.fife.did]
    assert {s.id for s in signatures} == ids
    ok, _ = audit(world, *both, "--min-witnesses", "1")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    two, _ = audit(world, *both, "--min-witnesses", "2")
    assert two.returncode == 1
    assert f"The checkpoint of {size} entries is co-signed by 1 of the witnesses given; 2 needed" in two.stderr
