"""The receipt spool and its sequencer (issuer.evidence.spool): a gateway's receipt is acknowledged once spooled
(one write, no database on the decision's path); a separate process stores and logs it in group commits. Shown
here: every spooled receipt is logged exactly once, a replay after a lost offset logs nothing twice, a half-written
line waits, a garbage line is skipped, and a SIGKILL of the gateway and of the sequencer (several times, mid-commit)
loses no acknowledged receipt and leaves no gap (SQLite and PostgreSQL)."""
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from issuer import db
from issuer.evidence import receipts as store
from issuer.evidence.log import TransparencyLog, decode_entry
from issuer.evidence.spool import ReceiptSpool, drain, pending, _DatabaseNode
from issuer.keys import PrivateKey
from jwcrypto import jwk
from verifier.receipts import ReceiptSigner
from verifier.tlog import merkle

HERE = Path(__file__).parent
ROOT = HERE.parent


def _signer():
    return ReceiptSigner(jwk.JWK(**PrivateKey.generate().private_jwk()), kid="did:web:gw.example#key-1")


def _receipt(signer, decision="allow"):
    return signer.sign({"jti": f"urn:uuid:{uuid.uuid4()}", "decision": decision, "reasons": [],
                        "holder": "did:web:r.example", "approval": "urn:uuid:a",
                        "payload": {"direction": "push", "sha256": "ab" * 32, "bytes": 3, "rows": 1}})


def _node(tmp_path):
    url = f"sqlite:///{tmp_path / 'node.db'}"
    db.migrate(url).dispose()
    return _DatabaseNode(url, "gw.example/log")


def _check_log(engine, acked: set[str]):
    """Every acknowledged receipt is stored and logged once; the log has no gap and its hashes agree."""
    log = TransparencyLog(engine, "gw.example/log")
    rows = {r.id: r for r in store.listing(engine, side=store.PROVIDER)}
    assert acked <= set(rows), f"{len(acked - set(rows))} acknowledged receipts lost"
    assert all(rows[j].log_index is not None for j in acked)
    entries = log.entries()
    size = log.size()
    assert [i for i, _ in entries] == list(range(size))                  # no gap, no duplicate index
    logged = [decode_entry(e)["meta"]["receiptId"] for _, e in entries]
    assert len(logged) == len(set(logged)) == len(rows)                   # each receipt logged exactly once
    assert {rows[j].log_index for j in rows} == set(range(size))
    assert log.root() == merkle.root_of([merkle.leaf_hash(e) for _, e in entries])


def test_spooled_receipts_are_logged_once_even_when_replayed(tmp_path):
    node, signer = _node(tmp_path), _signer()
    spool = ReceiptSpool(tmp_path / "spool")
    tokens = [_receipt(signer) for _ in range(30)]
    for token in tokens[:20]:
        spool(token, {})
    assert pending(tmp_path / "spool") > 0
    assert drain(node, tmp_path / "spool") == 20
    assert pending(tmp_path / "spool") == 0 and drain(node, tmp_path / "spool") == 0
    for token in tokens[20:]:
        spool(token, {})
    for offset in (tmp_path / "spool").glob("*.offset"):   # a crash between a commit and its offset record
        offset.unlink()
    assert drain(node, tmp_path / "spool") == 30            # everything is read again ...
    ids = {store._parse(t)[1] for t in tokens}
    _check_log(node.engine, ids)                            # ... and nothing is logged twice
    assert TransparencyLog(node.engine, "gw.example/log").size() == 30


def test_a_half_written_line_waits_and_a_garbage_line_is_skipped(tmp_path, caplog):
    node, signer = _node(tmp_path), _signer()
    folder = tmp_path / "spool"
    folder.mkdir()
    segment = folder / f"{time.time_ns():020d}-{os.getpid()}.spool"
    first, second = _receipt(signer), _receipt(signer)
    segment.write_bytes(b"not a receipt\n" + first.encode() + b"\n" + second.encode()[:40])
    assert drain(node, folder) == 1                         # the garbage line is skipped, loudly
    assert "not a receipt" in caplog.text
    with open(segment, "ab") as f:
        f.write(second.encode()[40:] + b"\n")                # the line is finished: now it is read
    assert drain(node, folder) == 1
    _check_log(node.engine, {store._parse(first)[1], store._parse(second)[1]})


def test_a_sealed_segment_is_removed_once_committed(tmp_path):
    node, signer = _node(tmp_path), _signer()
    spool = ReceiptSpool(tmp_path / "spool", max_segment=4000)   # a receipt is ~600 bytes: several segments
    tokens = [_receipt(signer) for _ in range(20)]
    for token in tokens:
        spool(token)
    assert len(list((tmp_path / "spool").glob("*.spool"))) > 2
    assert drain(node, tmp_path / "spool") == 20
    left = list((tmp_path / "spool").glob("*.spool"))
    assert len(left) == 1                                    # only the segment still open for writing
    spool.close()
    drain(node, tmp_path / "spool")
    assert list((tmp_path / "spool").iterdir()) == []
    _check_log(node.engine, {store._parse(t)[1] for t in tokens})


def test_a_replayed_denial_is_not_told_twice(tmp_path):
    """Denials are notified for receipts this drain logged (``newly_logged``); a replay logs and tells nothing."""
    node, signer = _node(tmp_path), _signer()
    spool = ReceiptSpool(tmp_path / "spool")
    spool(_receipt(signer, "deny"))
    seen = []
    drain(node, tmp_path / "spool", on_stored=seen.append)
    for offset in (tmp_path / "spool").glob("*.offset"):
        offset.unlink()
    drain(node, tmp_path / "spool", on_stored=seen.append)
    assert [[r.newly_logged for r in rows] for rows in seen] == [[True], [False]]
    assert seen[0][0].log_index == seen[1][0].log_index == 0


def _sigkill_run(url: str, tmp_path: Path):
    folder = tmp_path / "spool"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}
    producer = subprocess.Popen([sys.executable, str(HERE / "spool_producer.py"), str(folder), "20000"],
                                stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    acked: set[str] = set()
    rng = random.Random(15)
    try:
        for round_ in range(4):   # the sequencer killed mid-work several times, restarted each time
            report = tmp_path / f"sequencer-{round_}.txt"
            with open(report, "w") as out:
                sequencer = subprocess.Popen([sys.executable, "-m", "issuer.evidence.spool", str(folder),
                                              "--database", url, "--origin", "gw.example/log", "--interval", "0.001",
                                              "--report"], cwd=ROOT, env=env, stdout=out,
                                             stderr=subprocess.DEVNULL)
            while "stored" not in report.read_text():   # started, and committing
                assert sequencer.poll() is None, "the sequencer stopped"
                if pending(folder) == 0:   # the last sequencer logged all there was, and the gateway waits on its
                    acked.add(producer.stdout.readline().split()[1])    # full pipe: let it spool more (or wait)
                time.sleep(0.02)
            target = len(acked) + 60 + rng.randrange(60)
            for line in producer.stdout:
                acked.add(line.split()[1])
                if len(acked) >= target:
                    break
            time.sleep(rng.random() * 0.2)
            os.kill(sequencer.pid, signal.SIGKILL)
            sequencer.wait()
        for line in producer.stdout:          # a few more, then the gateway is killed too
            acked.add(line.split()[1])
            if len(acked) >= target + 30:
                break
        os.kill(producer.pid, signal.SIGKILL)
    finally:
        producer.kill()
        producer.wait()
    assert len(acked) >= 270
    engine = db.make_engine(url)
    logged_before = TransparencyLog(engine, "gw.example/log").size()
    assert 0 < logged_before                   # the killed sequencers did commit work
    subprocess.run([sys.executable, "-m", "issuer.evidence.spool", str(folder), "--database", url, "--origin",
                    "gw.example/log", "--once"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    _check_log(engine, acked)
    assert pending(folder) == 0
    engine.dispose()


def test_sigkill_of_gateway_and_sequencer_loses_no_acknowledged_receipt_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    db.migrate(url).dispose()
    _sigkill_run(url, tmp_path)


@pytest.mark.skipif(not os.environ.get("CEAD_TEST_DATABASE_URL"), reason="set CEAD_TEST_DATABASE_URL for PostgreSQL")
def test_sigkill_of_gateway_and_sequencer_loses_no_acknowledged_receipt_postgresql(tmp_path):
    url = os.environ["CEAD_TEST_DATABASE_URL"]
    schema = "cead_spool_" + uuid.uuid4().hex[:10]
    admin = db.make_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"create schema {schema}"))
    try:
        sep = "&" if "?" in url else "?"
        scoped = f"{url}{sep}options=-csearch_path%3D{schema}"
        db.migrate(scoped).dispose()
        _sigkill_run(scoped, tmp_path)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"drop schema {schema} cascade"))
        admin.dispose()


def test_cead_receipts_sequence_logs_a_nodes_spool(tmp_path):
    from click.testing import CliRunner
    from cead.cli import main
    from issuer.evidence import record
    from issuer_fixtures import PASS, ready_node
    node = ready_node(tmp_path / "provider")
    signer = store.signer_for(node)
    spool = ReceiptSpool(tmp_path / "spool")
    tokens = [_receipt(signer) for _ in range(3)]
    for token in tokens:
        spool(token)
    before = record.log_of(node).size()
    result = CliRunner().invoke(main, ["receipts", "sequence", str(tmp_path / "spool"), "--once", "--home",
                                       str(node.home)], env={"CEAD_PASSPHRASE": PASS.decode()})
    assert result.exit_code == 0 and "Logged 3 receipts" in result.output, result.output
    assert record.log_of(node).size() == before + 3
    assert all(store.get(node.engine, store._parse(t)[1]).log_index is not None for t in tokens)


def test_a_forked_gateway_worker_spools_to_its_own_segment(tmp_path):
    node, signer = _node(tmp_path), _signer()
    spool = ReceiptSpool(tmp_path / "spool")
    parent, child = _receipt(signer), _receipt(signer)
    spool(parent)
    pid = os.fork()                      # a pre-forking server: the worker inherits the open spool
    if pid == 0:
        try:
            spool(child)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    segments = sorted((tmp_path / "spool").glob("*.spool"))
    assert len(segments) == 2 and all(len(s.read_bytes().splitlines()) == 1 for s in segments)
    assert drain(node, tmp_path / "spool") == 2
    _check_log(node.engine, {store._parse(parent)[1], store._parse(child)[1]})
    assert len(list((tmp_path / "spool").glob("*.spool"))) == 1   # the worker is gone: its segment is removed
