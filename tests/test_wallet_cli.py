"""`cead wallet ...` and `cead fetch` on a real node home."""
from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
import zxingcpp
from click.testing import CliRunner
from PIL import Image

from issuer.node import Node
from wallet.cli import fetch, wallet
from wallet.store import jwt_payload

from test_wallet_support import DS_MEALS, approval_subject, identity, vc

PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CEAD_PASSPHRASE", PASSPHRASE)
    node, created = Node.init(tmp_path / "home", "Recipient Council", PASSPHRASE.encode(), did_method="key")
    assert created
    monkeypatch.setenv("CEAD_HOME", str(tmp_path / "home"))
    return node


def run(*args, input=None):
    result = CliRunner().invoke(wallet, list(args), input=input, catch_exceptions=False)
    return result


def test_import_list_show_remove(home, tmp_path):
    issuer = identity()
    approval = vc(issuer, "DataSharingApprovalCredential", approval_subject(issuer.did, home.did),
                  valid_for=timedelta(days=10))
    path = tmp_path / "approval.jwt"
    path.write_text(approval)
    result = run("import", str(path))
    assert result.exit_code == 0, result.output
    stored = json.loads(result.output)["stored"]
    assert stored["types"] == ["DataSharingApprovalCredential"] and stored["issuer"] == issuer.did

    listed = run("list", "--json")
    data = json.loads(listed.output)
    assert [c["id"] for c in data["credentials"]] == [stored["id"]]
    assert [w["code"] for w in data["warnings"]] == ["wallet.expiring"]
    assert run("list", "--json", "--warn-days", "5").output.count("wallet.expiring") == 0
    assert json.loads(run("list", "--json", "--dataset", DS_MEALS).output)["credentials"]
    assert json.loads(run("list", "--json", "--type", "OrganisationCertificationCredential").output)[
        "credentials"] == []
    human = run("list")
    assert stored["id"] in human.output and "wallet.expiring" in human.output

    shown = json.loads(run("show", stored["id"]).output)
    assert shown["credential"]["credentialSubject"]["datasets"] == [DS_MEALS]
    assert run("show", stored["id"], "--raw").output.strip() == approval
    assert run("remove", stored["id"]).exit_code == 0
    missing = run("show", stored["id"])
    assert missing.exit_code == 2 and "wallet.not_found" in missing.output


def test_import_from_stdin_and_refusal(home):
    issuer = identity()
    good = vc(issuer, "VerifiableCredential", {"id": home.did})
    assert run("import", "-", input=good).exit_code == 0
    header, payload, signature = good.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]   # always another byte
    bad = run("import", "-", input=f"{header}.{payload}.{flipped}")
    assert bad.exit_code == 1 and "refused" in bad.output
    unreadable = run("import", "/nonexistent/file.json")
    assert unreadable.exit_code == 2 and "input.unreadable" in unreadable.output


def test_present_prints_a_bound_presentation(home, tmp_path):
    issuer = identity()
    run("import", "-", input=vc(issuer, "DataSharingApprovalCredential", approval_subject(issuer.did, home.did)))
    result = run("present", "--dataset", DS_MEALS, "--audience", "https://api.example:443", "--nonce", "n-1")
    assert result.exit_code == 0, result.output
    claims = jwt_payload(result.output.strip())
    assert claims["iss"] == home.did and claims["aud"] == "https://api.example:443" and claims["nonce"] == "n-1"
    assert "PRIVATE" not in result.output
    nothing = run("present", "--dataset", "https://data.example/other")
    assert nothing.exit_code == 1 and "wallet.no_approval" in nothing.output
    definition = tmp_path / "pd.json"
    definition.write_text(json.dumps({"presentation_definition": {"id": "x", "input_descriptors": [
        {"id": "iso", "constraints": {"fields": [{"path": ["$.credentialSubject.scheme"]}]}}]}}))
    unmet = run("present", "--definition", str(definition))
    assert unmet.exit_code == 1 and "pex.unsatisfied" in unmet.output and "iso" in unmet.output


def test_qr_commands(home, tmp_path):
    out = tmp_path / "req.png"
    result = run("qr", "request", "--client-id", "did:web:gw.example", "--request-uri", "https://gw.example/r/1",
                 "-o", str(out))
    assert result.exit_code == 0
    uri = result.output.strip()
    assert [b.text for b in zxingcpp.read_barcodes(Image.open(out))] == [uri]
    issuer = identity()
    stored = json.loads(run("import", "-", input=vc(issuer, "DataSharingApprovalCredential",
                                                     approval_subject(issuer.did, home.did))).output)["stored"]
    png = tmp_path / "summary.png"
    assert run("qr", "summary", stored["id"], "--verify-url", "https://n.example/verify?id=1", "-o",
               str(png)).exit_code == 0
    assert [b.text for b in zxingcpp.read_barcodes(Image.open(io.BytesIO(png.read_bytes())))] == [
        "https://n.example/verify?id=1"]
    svg = tmp_path / "summary.svg"
    assert run("qr", "summary", stored["id"], "--verify-url", "https://n.example/v", "-o", str(svg)).exit_code == 0
    assert svg.read_text().startswith("<svg")
    assert run("qr", "offer", "--issuer", "not a url", "--config", "X").exit_code == 2


def test_fetch_denied_without_approval(home):
    result = CliRunner().invoke(fetch, ["https://127.0.0.1:9/data", "--dataset", DS_MEALS])
    assert result.exit_code == 1 and "wallet.no_approval" in result.output


def test_missing_home_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("CEAD_HOME", str(tmp_path / "nowhere"))
    result = run("list")
    assert result.exit_code == 2 and "node.not_found" in result.output


# ---- review: option bounds, unwritable output files, bounded summaries -----------------------------------------
@pytest.mark.parametrize("option", ["--expiring-within", "--warn-days"])
def test_a_day_count_past_any_date_is_a_bad_option_not_a_crash(home, option):
    result = CliRunner().invoke(wallet, ["list", option, "99999999999"])
    assert result.exit_code == 2 and (result.exception is None or isinstance(result.exception, SystemExit))
    assert "OverflowError" not in result.output and "Traceback" not in result.output
    assert "99999999999" in result.output          # click names the value it refused
    assert run("list", "--json", option, "36500").exit_code == 0


def test_the_wallet_api_takes_any_day_count(home, tmp_path):
    from wallet.store import Wallet
    issuer = identity()
    w = Wallet.from_node(home)
    assert w.import_credential(vc(issuer, "DataSharingApprovalCredential", approval_subject(issuer.did, home.did),
                                  valid_for=timedelta(days=10))).ok
    assert len(w.search(expiring_within=99999999999)) == 1
    assert [p.code for p in w.warnings(days=99999999999)] == ["wallet.expiring"]


def test_an_output_file_that_cannot_be_written_is_bad_input(home, tmp_path, monkeypatch):
    nowhere = str(tmp_path / "no" / "such" / "dir" / "x.png")
    result = CliRunner().invoke(wallet, ["qr", "request", "--client-id", "did:web:gw.example", "--request-uri",
                                         "https://gw.example/r/1", "-o", nowhere])
    assert result.exit_code == 2 and "output.unwritable" in result.output, result.output
    issuer = identity()
    stored = json.loads(run("import", "-", input=vc(issuer, "DataSharingApprovalCredential",
                                                     approval_subject(issuer.did, home.did))).output)["stored"]
    for suffix in (".png", ".svg"):
        result = CliRunner().invoke(wallet, ["qr", "summary", stored["id"], "--verify-url", "https://n.example/v",
                                             "-o", nowhere.replace(".png", suffix)])
        assert result.exit_code == 2 and "output.unwritable" in result.output, result.output

    class Fetched:
        content = b"rows"

    import importlib
    monkeypatch.setattr(importlib.import_module("wallet.client"), "fetch", lambda *a, **k: Fetched())
    result = CliRunner().invoke(fetch, ["https://gw.example/data", "--dataset", DS_MEALS, "-o", nowhere])
    assert result.exit_code == 2 and "output.unwritable" in result.output, result.output
    done = tmp_path / "rows.csv"
    assert CliRunner().invoke(fetch, ["https://gw.example/data", "--dataset", DS_MEALS, "-o", str(done)]).exit_code == 0
    assert done.read_bytes() == b"rows"
