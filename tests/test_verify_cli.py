"""`cead verify FILE`: JSON on stdout; exit 0 allow/verified, 1 deny/not verified, 2 bad input."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from verifier.cli import verify
from verifier.decision import TransferRequest
from transfer_world import API


@pytest.fixture
def policy(w, tmp_path):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(w.policy_data()))
    return str(path)


def run(*args):
    return CliRunner().invoke(verify, [str(a) for a in args], catch_exceptions=False)


def test_generic_credential_verification(w, policy, tmp_path):
    cred = tmp_path / "cert.jwt"
    cred.write_text(w.cert + "\n")
    result = run(cred, "--policy", policy)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["verified"] is True
    head, payload, sig = w.cert.split(".")
    cred.write_text(f"{head}.{payload}.{sig[:-4]}{'AAAA' if sig[-4:] != 'AAAA' else 'AAAQ'}")
    result = run(cred, "--policy", policy)
    assert result.exit_code == 1
    assert json.loads(result.output)["verified"] is False


def test_generic_data_integrity_credential(w, policy, tmp_path):
    cred = tmp_path / "approval.json"
    cred.write_text(json.dumps(w.make_approval(w.controller, fmt="ldp")))
    result = run(cred, "--policy", policy)
    assert result.exit_code == 0, result.output


def test_decide_a_transfer(w, policy, tmp_path):
    url = f"{API}/datasets/homelessness"
    manifest = w.manifest()
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "vp.jwt").write_text(w.present(TransferRequest("GET", url, manifest=manifest)))
    result = run(tmp_path / "vp.jwt", "--policy", policy, "--url", url, "--manifest", tmp_path / "manifest.json")
    assert result.exit_code == 0, result.output
    decision = json.loads(result.output)
    assert decision["allowed"] is True and len(decision["reliedOn"]) == 4


def test_a_credential_given_for_a_transfer_decision_is_bad_input(w, policy, tmp_path):
    """`cead verify cert.json --url U` answered a deny with six presentation.* reasons (type missing, proof purpose,
    challenge, holder, audience, lifetime) that never said the file was a credential, not a presentation."""
    url = f"{API}/datasets/homelessness"
    (tmp_path / "cert.jwt").write_text(w.cert)
    (tmp_path / "approval.json").write_text(json.dumps(w.make_approval(w.controller, fmt="ldp")))
    for name in ("cert.jwt", "approval.json"):
        result = CliRunner().invoke(verify, [str(tmp_path / name), "--policy", policy, "--url", url])
        assert result.exit_code == 2 and result.stdout == "", result.output
        error = json.loads(result.stderr)["error"]
        assert error["code"] == "input.invalid" and "is a credential, but a transfer (--url)" in error["message"]
        assert "Leave out --url to verify the credential itself" in error["message"]


def test_denied_transfer_exits_1_with_reasons(w, policy, tmp_path):
    url = f"{API}/datasets/homelessness"
    manifest = w.manifest(columns=["name"])
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "vp.jwt").write_text(w.present(TransferRequest("POST", url, body=b"x", manifest=manifest)))
    (tmp_path / "body.csv").write_bytes(b"x")
    result = run(tmp_path / "vp.jwt", "--policy", policy, "--method", "POST", "--url", url,
                 "--manifest", tmp_path / "manifest.json", "--body", tmp_path / "body.csv")
    assert result.exit_code == 1
    codes = {r["code"] for r in json.loads(result.output)["reasons"]}
    assert "transfer.column_not_approved" in codes


@pytest.mark.parametrize("content, message", [
    (None, "Cannot read"),
    ("{not json", "not valid JSON"),
    ("", "is empty"),
    ("[1, 2]", "holds a JSON array"),
    ("%%%", "neither JSON"),
])
def test_bad_input_exits_2_without_traceback(tmp_path, content, message):
    path = tmp_path / "input"
    if content is not None:
        path.write_text(content)
    result = CliRunner().invoke(verify, [str(path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert message in result.output


def test_bad_policy_and_options_exit_2(w, tmp_path):
    cred = tmp_path / "cert.jwt"
    cred.write_text(w.cert)
    bad = tmp_path / "policy.yaml"
    bad.write_text("clock_skew: lots\n")
    result = CliRunner().invoke(verify, [str(cred), "--policy", str(bad)])
    assert result.exit_code == 2 and "clock_skew" in result.output
    result = CliRunner().invoke(verify, [str(cred), "--method", "GET"])
    assert result.exit_code == 2 and "--url" in result.output
    result = CliRunner().invoke(verify, [str(cred), "--url", "not-a-url"])
    assert result.exit_code == 2 and "request.url_invalid" in result.output
    result = CliRunner().invoke(verify, [str(cred), "--policy", str(tmp_path / "none.yaml")])
    assert result.exit_code == 2 and "policy.unreadable" in result.output


def test_serve_refuses_half_a_tls_pair_and_a_bad_port(tmp_path):
    from verifier.cli import serve
    cert = tmp_path / "cert.pem"
    cert.write_text("not used")
    result = CliRunner().invoke(serve, ["--port", "8600", "--tls-cert", str(cert)])
    assert result.exit_code == 2 and '"serve.tls"' in result.output
    assert CliRunner().invoke(serve, ["--port", "0"]).exit_code == 2          # not a port


def test_registered_in_cead_cli():
    from cead.cli import main
    result = CliRunner().invoke(main, ["verifier", "serve", "--help"])
    assert result.exit_code == 0 and "--tls-cert" in result.output
    assert "verify" in CliRunner().invoke(main, ["--help"]).output
