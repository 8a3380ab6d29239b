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
    # in plain words, with the node's names: the recipient (this node) by its name, not its DID
    assert "Data-sharing approval" in svg.read_text() and "Recipient Council may receive the data" in svg.read_text()
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


# ---- usability review -------------------------------------------------------------------------------------------
def _error(result) -> dict:
    assert "Traceback" not in result.output, result.output
    return json.loads(result.output.strip().splitlines()[-1])["error"]


@pytest.mark.parametrize("content, args, code", [
    ("{not json", (), "input.invalid"),
    ("[1, 2]", (), "input.invalid"),
    ('{"rowCount": -1}', (), "manifest.invalid"),
    ('{"rowCount": "many"}', (), "manifest.invalid"),
    ('{"rowCount": 5}', ("--row-count", "6"), "input.invalid"),
    ('{"dataset": "https://data.example/other"}', (), "input.invalid"),
    (None, (), "input.unreadable"),
])
def test_a_fetch_manifest_that_cannot_be_used_is_bad_input(home, tmp_path, content, args, code):
    path = tmp_path / "manifest.json"
    if content is not None:
        path.write_text(content)
    result = CliRunner().invoke(fetch, ["https://127.0.0.1:9/data", "--dataset", DS_MEALS, "--manifest", str(path),
                                        *args])
    assert result.exit_code == 2 and _error(result)["code"] == code, result.output


def test_fetch_row_count_must_be_a_count(home):
    result = CliRunner().invoke(fetch, ["https://127.0.0.1:9/data", "--dataset", DS_MEALS, "--row-count", "-5"])
    assert result.exit_code == 2 and "Traceback" not in result.output and "--row-count" in result.output


def test_fetch_passes_the_row_count_and_manifest_to_the_client(home, tmp_path, monkeypatch):
    import importlib
    calls = []

    class Fetched:
        content = b"rows"

    monkeypatch.setattr(importlib.import_module("wallet.client"), "fetch", lambda *a, **k: calls.append(k) or Fetched())
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"columns": ["pupil_id"], "protocolRun": [{"kind": "pseudonymisation"}]}))
    result = CliRunner().invoke(fetch, ["https://gw.example/data", "--dataset", DS_MEALS, "--row-count", "200000",
                                        "--manifest", str(path)])
    assert result.exit_code == 0, result.output
    assert calls[-1]["manifest_fields"] == {"columns": ["pupil_id"], "protocolRun": [{"kind": "pseudonymisation"}],
                                            "rowCount": 200000}
    assert CliRunner().invoke(fetch, ["https://gw.example/data", "--dataset", DS_MEALS]).exit_code == 0
    assert calls[-1]["manifest_fields"] is None


def test_list_shows_datasets_and_purposes(home):
    issuer = identity()
    run("import", "-", input=vc(issuer, "DataSharingApprovalCredential", approval_subject(issuer.did, home.did)))
    human = run("list")
    assert f"datasets: {DS_MEALS}" in human.output and "purposes: cead:FreeSchoolMealAutoEnrolment" in human.output
    listed = json.loads(run("list", "--json").output)["credentials"][0]
    assert listed["datasets"] == [DS_MEALS]
    assert listed["purposes"] == ["https://w3id.org/cead/vocab#FreeSchoolMealAutoEnrolment"]


@pytest.mark.parametrize("args", [
    ("request", "--client-id", "did:web:gw.example", "--request-uri", "http://gw.example/r/1"),
    ("offer", "--issuer", "http://issuer.example", "--config", "X"),
])
def test_qr_links_the_wallet_fetches_must_be_https(home, args):
    result = run("qr", *args)
    assert result.exit_code == 2 and _error(result)["code"] == "qr.url_invalid" and "https" in result.output


def test_qr_links_may_use_http_on_loopback_for_tests(home):
    for host in ("127.0.0.1:8443", "localhost", "[::1]:8080"):
        assert run("qr", "request", "--client-id", "c", "--request-uri", f"http://{host}/r/1").exit_code == 0


@pytest.mark.parametrize("name", ["out.jpg", "out.png.txt", "out"])
def test_a_qr_file_must_be_named_for_its_format(home, tmp_path, name):
    """`-o out.jpg` silently wrote a PNG under a .jpg name."""
    out = tmp_path / name
    result = run("qr", "request", "--client-id", "c", "--request-uri", "https://gw.example/r/1", "-o", str(out))
    assert result.exit_code == 2 and _error(result)["code"] == "input.invalid" and ".png or .svg" in result.output
    assert not out.exists()
    result = run("qr", "offer", "--issuer", "https://issuer.example", "--config", "X", "-o", str(out))
    assert result.exit_code == 2 and not out.exists()
    svg = tmp_path / "out.SVG"
    assert run("qr", "request", "--client-id", "c", "--request-uri", "https://gw.example/r/1",
               "-o", str(svg)).exit_code == 0
    assert svg.read_text().startswith("<svg")


def _break_database(home, how):
    import yaml
    if how == "sqlite":        # a node.db that cannot be opened as a database
        (home.home / "node.db").unlink()
        for extra in home.home.glob("node.db-*"):
            extra.unlink()
        (home.home / "node.db").mkdir()
    else:                      # a PostgreSQL server that does not answer
        config = yaml.safe_load((home.home / "config.yaml").read_text())
        config["database_url"] = "postgresql://cead@127.0.0.1:1/cead"
        (home.home / "config.yaml").write_text(yaml.safe_dump(config))


@pytest.mark.parametrize("how", ["sqlite", "postgresql"])
@pytest.mark.parametrize("args", [("list",), ("show", "abcd"), ("import", "-"), ("remove", "abcd"),
                                  ("present", "--dataset", DS_MEALS)])
def test_a_database_that_cannot_be_reached_is_one_coded_line(home, how, args):
    _break_database(home, how)
    result = CliRunner().invoke(wallet, list(args), input="{}")
    assert result.exit_code == 2 and (result.exception is None or isinstance(result.exception, SystemExit))
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert _error(result)["code"] == "db.unavailable"
    fetched = CliRunner().invoke(fetch, ["https://127.0.0.1:9/data", "--dataset", DS_MEALS])
    assert fetched.exit_code == 2 and _error(fetched)["code"] == "db.unavailable"


# ---- what the wallet holds but cannot present exits 1, as wallet.no_approval does ---------------------------------
def _cannot_present(home, case: str) -> str:
    """Import into the node's wallet an approval for DS_MEALS that cannot be presented because of ``case``; the code
    the wallet answers with."""
    from datetime import datetime, timezone

    from schemas.models import credential_digest
    from test_wallet_support import CYBER_ESSENTIALS, delegation_subject
    issuer, council = identity(), identity()
    past = (datetime.now(timezone.utc) - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    to_import = []
    if case in ("delegation_missing", "delegation_ended"):
        subject = delegation_subject(issuer.did, council.did)
        if case == "delegation_ended":
            subject["scope"]["notAfter"] = past
        delegation = vc(council, "DelegatedAuthorityCredential", subject)
        approval = vc(issuer, "DataSharingApprovalCredential",
                      approval_subject(council.did, home.did, chain=[delegation]))
        to_import = [approval] + ([delegation] if case == "delegation_ended" else [])
    elif case in ("upstream_missing", "upstream_ended"):
        subject = approval_subject(council.did, issuer.did)
        if case == "upstream_ended":
            subject["notAfter"] = past
        upstream = vc(council, "DataSharingApprovalCredential", subject)
        pin = {"id": jwt_payload(upstream)["id"], "digest": credential_digest(upstream)}
        derived = vc(issuer, "DataSharingApprovalCredential",
                     {**approval_subject(issuer.did, home.did), "upstream": [pin]})
        to_import = [derived] + ([upstream] if case == "upstream_ended" else [])
    elif case == "certification_missing":
        to_import = [vc(issuer, "DataSharingApprovalCredential",
                        approval_subject(issuer.did, home.did, requirements=[CYBER_ESSENTIALS]))]
    elif case == "approval_ended":
        ended = {**approval_subject(issuer.did, home.did), "notAfter": past}     # the period it approves ended
        to_import = [vc(issuer, "DataSharingApprovalCredential", ended)]
    for credential in to_import:
        imported = run("import", "-", input=credential if isinstance(credential, str) else json.dumps(credential))
        assert imported.exit_code == 0, imported.output
    return {"delegation_missing": "wallet.delegation_missing", "delegation_ended": "delegation.not_in_force",
            "upstream_missing": "wallet.upstream_missing", "upstream_ended": "provenance.upstream.expired",
            "certification_missing": "wallet.certification_missing", "approval_ended": "wallet.no_approval",
            "nothing": "wallet.no_approval"}[case]


@pytest.mark.parametrize("case", ["nothing", "approval_ended", "delegation_missing", "delegation_ended",
                                  "upstream_missing", "upstream_ended", "certification_missing"])
@pytest.mark.parametrize("command", ["fetch", "present"])
def test_an_approval_the_wallet_cannot_present_exits_1_like_no_approval(home, case, command):
    """docs/wallet.md: `cead fetch` exits 1 with wallet.no_approval "(and the like) when the wallet has nothing
    usable to present", 2 for bad input or a setup it cannot use. A delegation or upstream approval not held, or
    held but ended (delegation.not_in_force, provenance.upstream.expired), or a certification missing exited 2, as
    if the pipeline had been called wrongly: it is the same outcome as no approval (nothing is sent; someone must
    renew or supply a credential), so it exits 1 with its code, and `cead wallet present` alike."""
    code = _cannot_present(home, case)
    if command == "fetch":
        result = CliRunner().invoke(fetch, ["https://127.0.0.1:9/data", "--dataset", DS_MEALS])
    else:
        result = CliRunner().invoke(wallet, ["present", "--dataset", DS_MEALS])
    assert (result.exit_code, _error(result)["code"]) == (1, code), result.output
    assert len(result.output.strip().splitlines()) == 1            # one JSON line, no stack trace
