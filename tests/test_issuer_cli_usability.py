"""Usability of the DPO's command line after review: --subject/--set/--valid-until apply to a whole credential too
(never ignored), a warning when a delegation or approval is issued for another organisation without --delegation,
`key.passphrase_required` instead of a prompt nobody can answer, and --help that is true for each command."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cead.cli import main
from issuer import cli as issuer_cli

from issuer_fixtures import PASS, make_node

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "schemas" / "examples"
POLICE = "did:web:police.scot.example"
IAO = "did:web:police.scot.example:iao:justice-data"
DELEGATE = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"


def run(*args, env=None, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input,
                              env={"CEAD_PASSPHRASE": PASS.decode(), **(env or {})})


def police(tmp_path, name="police", **kw):
    """The controller's node: did:web:police.scot.example, the issuer the examples name."""
    make_node(tmp_path / name, domain="police.scot.example", public_url="https://police.scot.example", **kw)
    return tmp_path / name


def iao(tmp_path):
    """The Information Asset Owner's node: the delegate of the police example, issuer of its approval."""
    make_node(tmp_path / "iao", domain="police.scot.example", path="iao/justice-data",
              public_url="https://police.scot.example/iao/justice-data", vocabulary=str(EXAMPLES / "catalogue.json"))
    return tmp_path / "iao"


def issued(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# ---- 1. --subject, --set, --valid-until on a whole credential ---------------------------------------------------

def test_subject_set_and_valid_until_apply_to_a_whole_credential(tmp_path):
    """What docs/guide-dpo.md section 2 leads a DPO to do: the example credential, the delegate's DID on the
    command line. The flags must reach its credentialSubject (they were silently dropped)."""
    home = police(tmp_path)
    out = tmp_path / "d.json"
    result = run("issue", "delegation", "--home", home, "--file", EXAMPLES / "police-delegation.json",
                 "--subject", DELEGATE, "--set", "role=DataProtectionOfficer", "--set", "scope.maxRowsPerTransfer=1000",
                 "--valid-until", "2027-06-30T23:59:59Z", "--out", out)
    assert result.exit_code == 0, result.output
    credential = json.loads(out.read_text())
    subject = credential["credentialSubject"]
    assert subject["id"] == DELEGATE
    assert subject["role"] == "DataProtectionOfficer" and subject["scope"]["maxRowsPerTransfer"] == 1000
    assert subject["onBehalfOf"] == POLICE and subject["scope"]["maxDelegationDepth"] == 0   # the rest as in the file
    assert credential["validUntil"] == "2027-06-30T23:59:59Z"
    listing = run("issued", "list", "--home", home)
    assert DELEGATE in listing.output and IAO not in listing.output      # the register names the new subject


def test_the_flags_reach_a_whole_credential_in_yaml_and_as_a_jwt(tmp_path):
    import yaml
    home = police(tmp_path)
    whole = json.loads((EXAMPLES / "police-delegation.json").read_text())
    del whole["id"], whole["issuer"]
    path = tmp_path / "whole.yaml"
    path.write_text(yaml.safe_dump(whole))
    result = run("issue", "delegation", "--home", home, "--file", path, "--subject", DELEGATE, "--format", "vc+jwt")
    assert result.exit_code == 0, result.output
    from verifier.jose import unverified_claims
    assert unverified_claims(result.stdout.strip())["credentialSubject"]["id"] == DELEGATE


def test_subject_on_an_approval_is_refused_not_ignored(tmp_path):
    """An approval's subject has no id: --subject was silently dropped for a whole approval."""
    home = iao(tmp_path)
    result = run("issue", "approval", "--home", home, "--file", EXAMPLES / "police-approval.json",
                 "--subject", DELEGATE)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("error [request.invalid]: --subject") and "recipients" in result.stderr
    assert run("issued", "list", "--home", home).output == ""


def test_delegation_on_a_certification_is_refused_not_ignored(tmp_path):
    home = police(tmp_path)
    result = run("issue", "certification", "--home", home, "--file", EXAMPLES / "police-certification.json",
                 "--delegation", EXAMPLES / "police-delegation.json")
    assert result.exit_code == 1 and "error [options.invalid]: --delegation" in result.stderr
    assert run("issued", "list", "--home", home).output == ""


def test_set_on_a_whole_credential_whose_subject_is_not_an_object_is_refused(tmp_path):
    home = police(tmp_path)
    whole = json.loads((EXAMPLES / "police-delegation.json").read_text())
    whole["credentialSubject"] = [whole["credentialSubject"]]
    path = tmp_path / "list.json"
    path.write_text(json.dumps(whole))
    result = run("issue", "delegation", "--home", home, "--file", path, "--set", "role=X")
    assert result.exit_code == 1 and "error [request.invalid]" in result.stderr
    assert "not a single JSON object" in result.stderr and "Traceback" not in result.output


def test_issuing_the_same_credential_again_says_it_was_already_issued(tmp_path):
    """A re-run of the same `cead issue` (same credential id, same content) is answered with the credential first
    signed (issuer.issuing._replay). It must not say "Issued" as if it were new: it says when it was issued and that
    this is that same credential, and the register still holds one row."""
    home = police(tmp_path)
    first, again = tmp_path / "first.json", tmp_path / "again.json"
    result = run("issue", "delegation", "--home", home, "--file", EXAMPLES / "police-delegation.json", "--out", first)
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("Issued ") and "Already" not in result.stderr
    from issuer import db
    from issuer.node import Node
    with Node.open(home).session() as s:
        issued_at = s.get(db.IssuedCredential, json.loads(first.read_text())["id"]).issued_at

    result = run("issue", "delegation", "--home", home, "--file", EXAMPLES / "police-delegation.json", "--out", again)
    assert result.exit_code == 0, result.output
    assert "Issued " not in result.stderr
    assert result.stderr.startswith(f"Already issued at {issued_at}: this is that same credential")
    assert f"Written to {again}" in result.stderr
    assert again.read_text() == first.read_text()               # the first signature, not a new one

    result = run("issue", "delegation", "--home", home, "--file", EXAMPLES / "police-delegation.json")   # to stdout
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads(first.read_text())
    assert f"Already issued at {issued_at}" in result.stderr
    assert len(run("issued", "list", "--home", home).output.strip().splitlines()) == 1


# ---- 2. issuing for another organisation without --delegation ---------------------------------------------------

def test_an_approval_for_another_discloser_without_delegation_warns(tmp_path):
    result = run("issue", "approval", "--home", iao(tmp_path), "--file", EXAMPLES / "police-approval.json")
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)                                   # the credential alone on stdout
    assert result.stderr.startswith("warning:")
    assert f"discloser is {POLICE}" in result.stderr and IAO in result.stderr and "--delegation" in result.stderr


def test_a_delegation_on_behalf_of_another_without_delegation_warns(tmp_path):
    whole = json.loads((EXAMPLES / "police-delegation.json").read_text())
    del whole["id"], whole["issuer"]
    path = tmp_path / "sub.json"
    path.write_text(json.dumps(whole))
    result = run("issue", "delegation", "--home", iao(tmp_path), "--file", path, "--subject", DELEGATE)
    assert result.exit_code == 0, result.output
    assert f"onBehalfOf is {POLICE}" in result.stderr and "--delegation" in result.stderr


def _example_for(path: Path, dids: dict[str, str], out: Path, **changes) -> Path:
    """An example credential with its DIDs replaced (longest first) and without the id and issuer it names, as a
    file for --file."""
    text = path.read_text()
    for old in sorted(dids, key=len, reverse=True):
        text = text.replace(f'"{old}"', f'"{dids[old]}"')
    credential = json.loads(text)
    del credential["id"], credential["issuer"]
    credential["credentialSubject"].update(changes)
    out.write_text(json.dumps(credential))
    return out


def test_no_warning_for_the_controller_or_with_a_delegation(tmp_path):
    """The police node and its IAO's node, served over HTTPS on 127.0.0.1 (the guard rail verifies the IAO's
    delegation against the police node's DID document and reads its status list)."""
    from issuer_fixtures import served_nodes
    from schemas.models import credential_digest
    import yaml
    with served_nodes(tmp_path, "police", "iao") as nodes:
        home, iao_home = tmp_path / "police", tmp_path / "iao"
        dids = {POLICE: nodes["police"].did, IAO: nodes["iao"].did}
        # the IAO's vocabulary: the examples' catalogue, and the police node as the competent authority the
        # rulebook knows police.scot.example to be (Part 3)
        vocabulary = {**json.loads((EXAMPLES / "catalogue.json").read_text()),
                      "competentAuthorities": [nodes["police"].did]}
        (tmp_path / "vocabulary.json").write_text(json.dumps(vocabulary))
        for where in (home, iao_home):
            config = yaml.safe_load((where / "config.yaml").read_text())
            config["vocabulary"] = str(tmp_path / "vocabulary.json")
            (where / "config.yaml").write_text(yaml.safe_dump(config))
        delegation = tmp_path / "iao-delegation.json"
        result = run("issue", "delegation", "--home", home, "--file",
                     _example_for(EXAMPLES / "police-delegation.json", dids, tmp_path / "d.json"), "--out", delegation)
        assert result.exit_code == 0 and "warning:" not in result.stderr, result.output
        held = json.loads(delegation.read_text())
        pinned = {"delegationChain": [{"id": held["id"], "digest": credential_digest(held)}]}
        approval = _example_for(EXAMPLES / "police-approval.json", dids, tmp_path / "a.json", **pinned)
        with_delegation = run("issue", "approval", "--home", iao_home, "--file", approval, "--delegation", delegation)
        assert with_delegation.exit_code == 0 and "warning:" not in with_delegation.stderr, with_delegation.output
        by_controller = run("issue", "approval", "--home", home, "--file", approval)
        assert by_controller.exit_code == 0 and by_controller.stderr == "", by_controller.output


# ---- 3. no passphrase and no terminal ---------------------------------------------------------------------------

KEYED = [["revoke", "urn:uuid:x"], ["suspend", "urn:uuid:x"], ["reinstate", "urn:uuid:x"],
         ["issue", "certification", "--file", EXAMPLES / "police-certification.json"],
         ["issue", "delegation", "--file", EXAMPLES / "police-delegation.json"],
         ["issue", "approval", "--file", EXAMPLES / "police-approval.json"],
         ["cosign", EXAMPLES / "police-approval.json"], ["key", "rotate"], ["issuer", "serve"]]


@pytest.mark.parametrize("argv", KEYED, ids=lambda a: " ".join(str(x) for x in a[:2] if isinstance(x, str)))
def test_no_passphrase_and_no_terminal_is_a_coded_error(tmp_path, argv):
    home = police(tmp_path)
    result = run(*argv, "--home", home, env={"CEAD_PASSPHRASE": None})
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error [key.passphrase_required]: ")
    assert "CEAD_PASSPHRASE" in result.stderr and "Aborted" not in result.output and result.stdout == ""


def test_init_without_passphrase_and_terminal_writes_nothing(tmp_path):
    result = run("init", "--name", "Fife", "--domain", "fife.example", "--home", tmp_path / "new",
                 env={"CEAD_PASSPHRASE": None})
    assert result.exit_code == 2 and result.stderr.startswith("error [key.passphrase_required]")
    assert not (tmp_path / "new").exists()


def test_init_names_a_bad_setting_before_asking_for_a_passphrase(tmp_path):
    """Nobody types (and confirms) a passphrase only to learn that the domain was wrong, and a script learns the
    real problem rather than key.passphrase_required."""
    result = run("init", "--name", "Fife", "--domain", "bad_dom", "--home", tmp_path / "new",
                 env={"CEAD_PASSPHRASE": None})
    assert result.exit_code != 0 and result.stderr.startswith("error [node.domain_invalid]"), result.stderr
    assert not (tmp_path / "new").exists()


def test_init_names_the_flag_of_a_bad_file_not_a_config_yaml_that_does_not_exist(tmp_path):
    """`cead init --vocabulary catalogue.json` with no such file said "new/config.yaml vocabulary: no such file",
    sending the reader to a config.yaml init had not written, instead of naming the flag they typed."""
    (tmp_path / "bad.pem").write_text("not a certificate\n")
    (tmp_path / "bad.json").write_text('{"isPartOf": 3}')
    for flag, value, said in (("--vocabulary", tmp_path / "nope.json", "no such file"),
                              ("--vocabulary", tmp_path / "bad.json", "'isPartOf' must be an object"),
                              ("--ca-bundle", tmp_path / "nope.pem", "no such file"),
                              ("--ca-bundle", tmp_path / "bad.pem", "is not a readable PEM")):
        result = run("init", "--name", "Fife", "--domain", "fife.example", flag, value, "--home", tmp_path / "new")
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith(f"error [node.config_invalid]: {flag}: ") and said in result.stderr, \
            result.stderr
        assert "config.yaml" not in result.stderr and not (tmp_path / "new").exists()


def test_a_script_without_passphrase_gets_the_code_not_a_getpass_warning(tmp_path):
    """The reviewer's case as a real process: `cead revoke --home H x </dev/null`, no controlling terminal."""
    home = police(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "CEAD_PASSPHRASE"}
    proc = subprocess.run([sys.executable, "-m", "cead.cli", "revoke", "--home", str(home), "urn:uuid:x"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, cwd=ROOT,
                          start_new_session=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error [key.passphrase_required]: ") and proc.stderr.count("\n") == 1
    assert "GetPassWarning" not in proc.stderr and "Aborted" not in proc.stderr


def test_on_a_terminal_the_passphrase_is_asked_for(tmp_path, monkeypatch):
    home = police(tmp_path)
    monkeypatch.setattr(issuer_cli, "_on_a_terminal", lambda: True)
    result = run("revoke", "--home", home, "urn:uuid:x", env={"CEAD_PASSPHRASE": None}, input=PASS.decode() + "\n")
    assert "Key passphrase" in result.output
    assert result.exit_code == 1 and "error [credential.not_found]" in result.stderr   # unlocked, then looked up


def test_a_missing_home_is_said_before_the_passphrase_is_asked_for(tmp_path):
    result = run("revoke", "--home", tmp_path / "nowhere", "urn:uuid:x", env={"CEAD_PASSPHRASE": None})
    assert result.exit_code == 1 and "error [node.not_found]" in result.stderr


# ---- 4. --help ---------------------------------------------------------------------------------------------------

def _help(*argv) -> str:
    result = CliRunner().invoke(main, [*argv, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_each_issue_type_says_what_applies_to_it():
    certification, delegation, approval = (_help("issue", k) for k in ("certification", "delegation", "approval"))
    assert "OrganisationCertificationCredential" in certification
    assert "guard rail refuses a delegation or approval" not in certification
    assert "not checked against a delegation" in certification
    assert "onBehalfOf" in delegation and "guard rail refuses a delegation wider" in delegation
    assert "discloser" in approval and "guard rail refuses an approval wider" in approval
    assert "Not for approvals" in approval
    for text in (certification, delegation, approval):
        assert "whole credential" in text and "override" in text


def _options(command: click.Command, path=()):
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _options(sub, (*path, name))
        return
    for param in command.params:
        if isinstance(param, click.Option):
            yield " ".join(path), param


def test_every_issuer_command_option_has_help():
    commands = [issuer_cli.init, issuer_cli.did, issuer_cli.issuer, issuer_cli.token, issuer_cli.key,
                issuer_cli.issue, issuer_cli.cosign, issuer_cli.revoke, issuer_cli.suspend, issuer_cli.reinstate,
                issuer_cli.issued]
    missing = [f"{path} {param.opts[0]}" for command in commands
               for path, param in _options(command, (command.name,)) if not param.help]
    assert not missing, f"options without help: {missing}"
    serve = _help("issuer", "serve")
    for option in ("--host", "--port", "--tls-cert", "--tls-key"):
        assert option in serve
    assert "Address to listen on" in serve and "TCP port" in serve and "PEM" in serve
    assert "did:web from --domain" in _help("init")
