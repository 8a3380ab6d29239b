"""`cead demo --fast` end to end: separate node processes on 127.0.0.1, every decision asserted line by line, and
nothing left running afterwards (also when the demo is interrupted)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from cead import demo_world as world
from cead.demo import Demo

ROOT = Path(__file__).resolve().parents[1]

# (organisation, dataset, expected decision, reason code the decision must carry)
EXPECTED_FAST = [
    ("SG Justice <- Police Scotland", "recorded-crime-monthly", "allow", None),
    ("SG Justice <- Police Scotland", "recorded-crime-monthly", "allow", None),
    ("SG Justice <- Police Scotland", "recorded-crime-monthly", "deny", "transfer.column_not_approved"),
    ("Fife DPO -> Fife Housing IAO", "DelegatedAuthority", "refused", "scope.too_wide"),
    # a table that only declares a secure aggregation (no run attestation) is refused
    ("SG Child Poverty <- Fife Council", "homelessness-applications-hl1", "deny", "attestation.missing"),
    ("Fife Council <- Social Security Scot", "scottish-child-payment-recipients", "allow", None),
    ("Fife Council <- Social Security Scot", "scottish-child-payment-recipients", "deny",
     "transfer.purpose_not_approved"),
    ("Glasgow City <- Social Security Scot", "scottish-child-payment-recipients", "deny", "attestation.missing"),
    ("SG Child Poverty <- Glasgow City", "scp-fsm-take-up", "deny", "provenance.upstream_missing"),
    ("SG Child Poverty <- Glasgow City", "scp-fsm-take-up", "allow", None),
    ("SG Justice <- Police Scotland", "recorded-crime-monthly", "deny", "status.revoked"),
    # health and social care (cead.demo_health): no Art 9 condition is refused by the issuer; the Caldicott
    # Guardian's co-signature is required at the gateway
    ("NHS GGC DPO -> Glasgow HSCP", "DataSharingApproval", "refused", "lawful.special_category_condition_missing"),
    ("Glasgow HSCP <- NHS GGC", "delayed-discharge-daily", "deny", "approval.cosigner_missing"),
    ("Glasgow HSCP <- NHS GGC", "delayed-discharge-daily", "allow", None),
]
# the computations that really run (cead/demo_computations.py), played after the script: four PSI releases and the
# fifth refused by SSS's own books; a secure aggregation, the pooled table pulled through Fife's gateway with the
# attestation and every council's approval, then with Fife's alone; the aggregation stopped by Dundee withholding
EXPECTED_FAST += [("Glasgow City", "scp x fsm", "allow", None)] * 4 + [
    ("Glasgow City", "scp x fsm", "deny", "computation.query_budget_exhausted"),
    ("Fife, Dundee, P&K", "homelessness-hl1", "allow", None),
    ("SG Child Poverty <- Fife Council", "homelessness-applications-hl1", "allow", None),
    ("SG Child Poverty <- Fife Council", "homelessness-applications-hl1", "deny",
     "attestation.contributor_not_approved"),
    ("Fife, Dundee, P&K", "homelessness-hl1", "deny", "computation.not_authorised"),
]
ATTESTED = 4 + 3      # the rows whose output has a run attestation: four PSI releases, the aggregation and its pulls


def _run_demo(tmp_path: Path, *extra: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cead.cli", "demo", "--fast", "--workdir", str(tmp_path / "w"),
                             "--report", str(tmp_path / "report.json"), *extra], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def _listening(port: int) -> bool:
    """Something still listens on 127.0.0.1:port. (Connections the servers closed may linger in TIME_WAIT for a
    minute; they hold no listener, and SO_REUSEADDR, which servers set, binds over them.)"""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _assert_all_stopped(report: dict) -> None:
    assert report["processes"], "the report lists the processes the demo started"
    deadline = time.monotonic() + 5
    for proc in report["processes"]:
        while True:
            try:
                os.kill(proc["pid"], 0)
            except ProcessLookupError:
                break
            assert time.monotonic() < deadline, f"{proc['name']} (pid {proc['pid']}) is still running"
            time.sleep(0.1)
        assert not _listening(proc["port"]), f"port {proc['port']} of {proc['name']} is still bound"


def test_demo_fast_decisions_line_by_line_and_cleanup(tmp_path):
    proc = _run_demo(tmp_path)
    output, _ = proc.communicate(timeout=170)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["error"] is None, output
    rows = [(r["organisation"], r["dataset"], r["decision"]) for r in report["rows"]]
    assert rows == [(org, ds, decision) for org, ds, decision, _ in EXPECTED_FAST], output
    for row, (_, _, _, reason) in zip(report["rows"], EXPECTED_FAST):
        if reason is None:
            assert row["reasons"] == [], row
        else:
            assert reason in row["reasons"], row
        if row["kind"] == "transfer":
            assert row["verificationMs"] is not None and row["verificationMs"] >= 0, row
    assert report["ok"] is True and report["mismatches"] == []
    # the table shows the attestation ids of the computations' outputs (the pulls name the aggregation's)
    attested = [r for r in report["rows"] if r["attestation"]]
    assert len(attested) == ATTESTED and all(r["attestation"].startswith("urn:cead:run:") for r in attested)
    assert len({r["attestation"] for r in attested}) == 5
    for r in attested:
        assert r["attestation"].rsplit(":", 1)[-1][:8] in output
    assert proc.returncode == 0, output
    assert "Every decision matched the scenario" in output
    assert "Starting nodes and data APIs" in output
    # the delegations name their delegates (credentialSubject.name, signed by the delegating organisation or DPO)
    assert f"for Police IAO, naming the delegate “{world.DELEGATES['police-iao']}”" in output
    assert f"for Fife Housing IAO, naming the delegate “{world.DELEGATES['fife-housing-iao']}”" in output
    # the audit names the witness that co-signed the audited log by its organisation's name, not its DID
    assert "checkpoints consistent, latest co-signed by Fife Council;" in output, output
    # its printable report names the organisations as the demo knows them (as `cead audit --names` does)
    page = next((tmp_path / "w" / "audit").glob("audit-*.html")).read_text()
    assert "<title>Accountability report: Police Scotland</title>" in page
    assert "Scottish Government Justice Analytical Services<span class=\"id\">did:web:127.0.0.1" in page
    assert "Result: the log is intact" in page and "Fife Council" in page
    # every organisation and person ran as its own process, plus one data API and one receipt sequencer per provider
    providers = [p for p in world.CAST if p.provides_data]
    assert len(report["processes"]) == len(world.CAST) + 2 * len(providers)
    assert sum(1 for p in report["processes"] if p["name"].startswith("receipt sequencer")) == len(providers)
    assert len({p["pid"] for p in report["processes"]}) == len(report["processes"])
    _assert_all_stopped(report)
    assert (tmp_path / "w" / "nodes" / "police" / "node.db").is_file()  # an explicit --workdir is kept


def test_demo_interrupted_stops_every_process(tmp_path):
    proc = _run_demo(tmp_path)
    try:
        for line in proc.stdout:                       # wait until the nodes are up and the script has begun
            if line.startswith("Certification"):
                break
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["error"] == "interrupted" and report["ok"] is False
    _assert_all_stopped(report)


def test_demo_refuses_a_non_empty_workdir(tmp_path):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "something").write_text("x")
    proc = _run_demo(tmp_path)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "not empty" in output
    assert not (tmp_path / "report.json").exists()


def test_script_agrees_with_expected_json_and_uses_only_cast_members():
    keys = {p.key for p in world.CAST}
    for fast in (True, False):
        steps = world.script(fast)
        assert world.check_script_against_expected(steps) == []
        for step in steps:
            for name in ("issuer", "deliver_to", "recipient", "provider"):
                value = getattr(step, name, None)
                assert value is None or value in keys, (step, name)
    pulls = [s for s in world.script(False) if isinstance(s, world.Pull)]
    assert sum(s.label.startswith("monthly extract 2026-") for s in pulls) == 3
    # every example DID a live node stands for is played by exactly one cast member
    played = [d for p in world.CAST for d in p.plays]
    assert len(played) == len(set(played))


def test_substitute_swaps_dids_and_repins_references(tmp_path):
    from schemas.models import credential_digest
    runner = Demo(tmp_path)
    runner.did_map = {"did:web:police.scot.example": "did:web:127.0.0.1%3A1234"}
    signed = {"id": "https://police.scot.example/credentials/delegations/2026-007", "proof": {"x": 1}}
    runner.by_id[signed["id"]] = signed
    approval = world.load_example("police-approval.json")
    out = runner.substitute(approval)
    assert out["credentialSubject"]["discloser"] == "did:web:127.0.0.1%3A1234"
    assert out["credentialSubject"]["delegationChain"] == [{"id": signed["id"], "digest": credential_digest(signed)}]
    # an agreement reference is not a credential the demo issued: left as it is
    assert out["credentialSubject"]["agreement"] == approval["credentialSubject"]["agreement"]
    # parties without a node keep their example DID
    assert out["credentialSubject"]["recipients"] == ["did:web:gov.scot.example:justice-analysis"]


def test_free_port_never_hands_out_a_port_twice():
    # 2,000 draws from the ~28,000 ephemeral ports would repeat one almost surely (birthday bound) if each draw
    # were independent; two demo services on one port both look ready and requests reach the wrong one
    from cead.processes import free_port
    ports = [free_port() for _ in range(2000)]
    assert len(set(ports)) == len(ports)


def test_demo_narration_in_words():
    """The demo's lines name credentials in words, count them in plain English and cut a refusal after a sentence,
    never mid-word."""
    from cead.demo import _a_kind, _first_sentences, _rests_on_words
    assert _a_kind("DelegatedAuthorityCredential") == "a delegation of approval authority"
    assert _a_kind("OrganisationCertificationCredential") == "an organisation certification"
    assert _rests_on_words(1) == "the credential it rests on" and _rests_on_words(3) == "the 3 credentials it rests on"
    message = "Cead will not sign this approval: the law would not allow it. " + "The data categories include " * 20
    cut = _first_sentences(message)
    assert cut == "Cead will not sign this approval: the law would not allow it."
    long_word_cut = _first_sentences("word " * 100)
    assert long_word_cut.endswith("word ...") and len(long_word_cut) <= 245
    assert _first_sentences("Short.") == "Short."
