"""`cead audit NODE_URL` over HTTPS: every checkpoint verified and matched against the rebuilt tree, every approval
with the transfers made under it, a CSV and a printable HTML report (with the DPA 2018 s.62 view); a log whose
history was rewritten is caught. `cead receipts list|show|verify` on the stored receipts."""
from __future__ import annotations

import base64
import csv
import io
from datetime import datetime, timezone
import json
import uuid
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from cead.cli import main
from issuer.app import create_app
from issuer.evidence import receipts as store
from issuer.evidence import record, witness
from issuer.evidence.log import decode_entry
from issuer.node import Node
from issuer_fixtures import PASS, ready_node
from helpers_https import https_server
from verifier.receipts import payload_evidence, seal

TABLE = b"area,count\nFife,12\nPerth,40\n"


def _transfer(node, signer, approval, allowed=True, payload=TABLE):
    decision = SimpleNamespace(allowed=allowed, reasons=[] if allowed else [SimpleNamespace(code="transfer.volume_exceeded")],
                               relied_on=[f"{approval} sha256-abc"], holder="did:web:recipient.example",
                               approval_id=approval, method="GET", url="https://api.example/data",
                               decided_at=datetime.now(timezone.utc),
                               manifest={"dataset": "https://data.example/ds", "purpose": "https://w3id.org/dpv#X"},
                               evidence={"binding": "urn:x", "manifestSha256": "00" * 32,
                                         "payload": payload_evidence(payload if allowed else None, "text/csv",
                                                                     "pull")},
                               receipt=None)
    seal(signer, decision, store.sink(node))
    return decision.receipt


def _jti(token: str) -> str:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["jti"]


@pytest.fixture()
def served(tmp_path):
    holder = {}
    with https_server(lambda environ, start: holder["app"](environ, start)) as (base, ca):
        port = base.rsplit(":", 1)[1]
        node, _ = Node.init(tmp_path / "police", "Police Scotland", PASS, domain=f"localhost:{port}", public_url=base)
        node._passphrase = PASS
        holder["app"] = create_app(node)
        yield node, base, ca


def test_audit_finds_every_transfer(served, tmp_path):
    node, base, ca = served
    signer = store.signer_for(node)
    a1, a2 = f"urn:uuid:{uuid.uuid4()}", f"urn:uuid:{uuid.uuid4()}"
    for a in (a1, a2):
        record.issued(node, None, credential_id=a, types=["VerifiableCredential", "DataSharingApprovalCredential"],
                      digest="ab" * 32, verification_method=node.verification_method_id)
    log = record.log_of(node)
    w = ready_node(tmp_path / "witness")
    witness.watch(w, log.key.vkey())
    poster = lambda body: (lambda a: (a.status, a.body))(witness.add_checkpoint(w, body))   # noqa: E731
    witness.submit(log, poster)
    tokens = [_transfer(node, signer, a1), _transfer(node, signer, a1), _transfer(node, signer, a2),
              _transfer(node, signer, a2, allowed=False)]
    witness.submit(log, poster)
    out = tmp_path / "report"
    runner = CliRunner()
    result = runner.invoke(main, ["audit", base, "--ca-bundle", ca, "--allow-private-addresses", "--out", str(out),
                                  "--witness", witness.witness_key(w).vkey(), "--min-witnesses", "1"])
    assert result.exit_code == 0, result.output
    assert "all checks passed" in result.output and "3 transfers (4 decisions)" in result.output
    csv_file = next(out.glob("*.csv"))
    rows = list(csv.DictReader(io.StringIO(csv_file.read_text())))
    assert len(rows) == 4 and {r["approval"] for r in rows} == {a1, a2}
    assert sorted(r["decision"] for r in rows) == ["allow", "allow", "allow", "deny"]
    stored = {store.get(node.engine, _jti(t)).log_index for t in tokens}
    assert {int(r["logIndex"]) for r in rows} == stored
    page = next(out.glob("*.html")).read_text()
    assert "section 62" in page and "legislation.gov.uk/ukpga/2018/12/section/62" in page and a1 in page
    # the printable report reads in words (the CSV keeps the exact values): times, decisions, log events
    from schemas.words import moment_words
    for r in rows:
        assert moment_words(r["decidedAt"], seconds=True) in page and r["decidedAt"] not in page
    assert '"decision">refused</td>' in page and '"decision">allowed</td>' in page
    assert "key added to the DID document" in page
    assert "Result: the log is intact" in page
    # each approval with what it was for, each refusal's reason in words with its code beside it
    assert f"<h3>Approval <code>{a1}</code>" in page and "Used for: dataset <code>https://data.example/ds</code>" in page
    assert "more rows than the approval allows in one transfer (transfer.volume_exceeded)" in page

    # the node's own page of transfers under each approval (from its public log)
    import requests
    page = requests.get(base + "/log/transfers", verify=ca, timeout=10).text
    assert page.count("<h2>") == 2 and a1 in page and a2 in page
    assert "more rows than the approval allows in one transfer (transfer.volume_exceeded)" in page
    assert '"Decision">refused</td>' in page and all(moment_words(r["decidedAt"], seconds=True) in page for r in rows)

    # receipts on the node's command line
    env = {"CEAD_PASSPHRASE": PASS.decode()}
    listed = runner.invoke(main, ["receipts", "list", "--home", str(node.home), "--json"], env=env)
    assert listed.exit_code == 0 and len(json.loads(listed.output)) == 4
    first = json.loads(listed.output)[0]["id"]
    shown = runner.invoke(main, ["receipts", "show", first, "--home", str(node.home)], env=env)
    assert shown.exit_code == 0 and json.loads(shown.output)["claims"]["jti"] == first
    inclusion = json.loads(shown.output)["inclusion"]   # its place in the log, proved under a signed checkpoint
    assert inclusion["status"] == "logged" and inclusion["checkpoint"]
    from verifier.tlog import merkle
    log = record.log_of(node)
    merkle.verify_inclusion(merkle.leaf_hash(log.entry(inclusion["index"])), inclusion["index"], inclusion["size"],
                            [base64.b64decode(h) for h in inclusion["proof"]], base64.b64decode(inclusion["root"]))
    assert base64.b64decode(inclusion["root"]) == log.root(inclusion["size"])
    assert inclusion["receiptSha256"] in decode_entry(log.entry(inclusion["index"]))["digests"].values()

    # a rewritten history (an entry changed in the database) no longer matches the signed checkpoints
    with node.engine.begin() as conn:
        conn.execute(sa.text("update tlog_entry set entry = :e where idx = 2"), {"e": b'{"kind":"forged"}'})
    result = runner.invoke(main, ["audit", base, "--ca-bundle", ca, "--allow-private-addresses", "--out", str(out)])
    assert result.exit_code == 1 and "audit.inconsistent" in result.output
    page = next(out.glob("*.html")).read_text()
    assert "Result: problems found" in page and "audit.inconsistent" in page and page.count("<li>") >= 1
    assert ".;" not in page and "Result: the log is intact" not in page


def test_audit_names_purposes_it_knows():
    from cead.audit import purpose_words
    from schemas import vocab
    known = next(iter(vocab.PURPOSES.values()))
    assert purpose_words(known.iri) == f"{known.label} ({vocab.compact(known.iri)})"
    assert purpose_words("https://w3id.org/dpv#NoSuchPurpose") == "dpv:NoSuchPurpose"
    assert purpose_words(None) == ""


def test_receipt_verify_command(served, tmp_path):
    node, base, ca = served
    token = _transfer(node, store.signer_for(node), "urn:uuid:1")
    rid = _jti(token)
    runner = CliRunner()
    payload = tmp_path / "payload.csv"
    payload.write_bytes(TABLE)
    other = tmp_path / "other.csv"
    other.write_bytes(TABLE + b"Angus,7\n")
    node.config["network"] = {**node.config["network"], "allow_private": True, "ca_bundle": ca}
    node.save_config()
    env = {"CEAD_PASSPHRASE": PASS.decode()}
    ok = runner.invoke(main, ["receipts", "verify", rid, "--payload", str(payload), "--home", str(node.home)], env=env)
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(main, ["receipts", "verify", rid, "--payload", str(other), "--home", str(node.home)], env=env)
    assert bad.exit_code == 1 and "receipt.payload_mismatch" in bad.output
    missing = runner.invoke(main, ["receipts", "verify", "nope", "--home", str(node.home)], env=env)
    assert missing.exit_code == 2 and "receipt.not_found" in missing.output


def test_every_reason_the_gateway_gives_reads_in_words():
    """Every code the decision's stages and the checks they call can give (each ``Problem("family.x", ...)`` in
    verifier/) has words, or a family's words: a report never shows an auditor a bare code alone."""
    import pathlib
    import re
    from verifier.decision.reasons import FAMILIES, reason_words, reasons_words
    root = pathlib.Path(__file__).resolve().parents[1] / "verifier"
    codes = set()
    for path in root.rglob("*.py"):
        codes |= set(re.findall(r'"((?:presentation|manifest|approval|delegation|holder|certification|transfer|'
                                r'provenance|protocol|attestation|lawful|scope|status|proof|jose|did|credential)'
                                r'\.[a-z_0-9]+)"', path.read_text()))
    assert len(codes) > 100
    assert not [c for c in codes if reason_words(c) == c]
    assert reason_words("delegation.revoked") == "a delegation in the chain had been revoked"
    assert reason_words("certification.issuer_unreachable").startswith("a certification came from an issuer")
    assert reason_words("nosuch.code") == "nosuch.code" and "nosuch" not in FAMILIES      # never a guess
    assert reasons_words(["status.revoked", "nosuch.code"]) == \
        "a credential relied on had been revoked (status.revoked); nosuch.code"
