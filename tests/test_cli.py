"""The `cead` command line as scripts and other teams call it: the names, --help on each, and a gateway install."""
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import cead.cli
from cead.cli import main

ROOT = Path(__file__).resolve().parent.parent
NAMES = ["init", "issuer serve", "did show", "token create", "key rotate", "issue certification", "issue delegation",
         "issue approval", "revoke", "suspend", "reinstate", "issued list", "verify", "verifier serve",
         "wallet import", "wallet list", "wallet show", "wallet present", "fetch", "demo", "lawful", "witness key"]


def _walk(group, ctx, path=()):
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _walk(command, ctx, (*path, name))


def test_every_command_the_issues_name_exists_and_says_what_it_does():
    runner = CliRunner()
    for name in NAMES:
        result = runner.invoke(main, [*name.split(), "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage:" in result.output
    commands = dict(_walk(main, click.Context(main)))
    assert {tuple(n.split()) for n in NAMES} <= set(commands)
    undocumented = [" ".join(path) for path, cmd in commands.items() if not (cmd.help or cmd.short_help)]
    assert not undocumented, f"commands without --help text: {undocumented}"


def test_a_gateway_install_has_the_verifier_and_says_what_the_rest_needs(monkeypatch):
    monkeypatch.setattr(cead.cli, "_node_installed", lambda: False)
    runner = CliRunner()
    listing = runner.invoke(main, ["--help"]).output.split("Commands:")[1].split()
    assert "verify" in listing and "verifier" in listing
    assert "wallet" not in listing and "init" not in listing
    assert runner.invoke(main, ["verifier", "serve", "--help"]).exit_code == 0
    result = runner.invoke(main, ["wallet", "list", "--home", "x"])
    assert result.exit_code == 2
    assert "pip install 'cead[node]'" in result.output


@pytest.mark.parametrize("argv", [["nonsense"], ["issue", "nonsense"]])
def test_unknown_commands_are_usage_errors(argv):
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 2 and "No such command" in result.output


# ---- bad input: a clear error naming what is wrong, never a stack trace, a hang or exit 0 ------------------------

BINARY = b"\xff\xfe\x00\x89PNG binary"


def _node_home(tmp_path):
    from issuer_fixtures import make_node
    make_node(tmp_path / "home", public_url="https://fife.example")
    return tmp_path / "home"


def _bad(argv, tmp_path, home=None, env=None):
    """Run `cead ARGV` on real files; it must fail (non-zero) with one clear line, never a traceback."""
    from issuer_fixtures import PASS
    result = CliRunner().invoke(main, [str(a) for a in argv], env={
        "CEAD_PASSPHRASE": PASS.decode(), "CEAD_HOME": str(home or tmp_path / "nowhere"), **(env or {})})
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"{type(result.exception).__name__}: {result.exception}"
    assert "Traceback" not in result.output and result.exit_code != 0, result.output
    return result


# Every command that reads a file a person names: a binary file (or text in another encoding) is said to be one.
BINARY_FILE = [["lawful", "{f}"], ["issue", "approval", "--file", "{f}"], ["cosign", "{f}"],
               ["deliver", "{f}", "--to", "https://127.0.0.1:1/inbox"], ["offer", "{f}"],
               ["request", "approve", "x", "--subject", "{f}"], ["request", "send", "{f}", "--to", "https://x.example"],
               ["wallet", "present", "--definition", "{f}"], ["provider", "serve", "--config", "{f}", "--check"],
               ["init", "--name", "X", "--domain", "fife.example", "--vocabulary", "{f}", "--home", "{new}"]]


@pytest.mark.parametrize("argv", BINARY_FILE, ids=lambda a: " ".join(a[:2]))
def test_a_file_that_is_not_utf8_text_is_said_to_be_one(tmp_path, argv):
    path = tmp_path / "input.json"
    path.write_bytes(BINARY)
    home = _node_home(tmp_path)
    result = _bad([a.format(f=path, new=tmp_path / "new") for a in argv], tmp_path, home)
    assert "is not UTF-8 text (byte 0xff at offset 0" in result.stderr, result.stderr
    assert "codec" not in result.stderr


def test_a_node_whose_config_is_not_text_is_a_coded_error(tmp_path):
    home = _node_home(tmp_path)
    (home / "config.yaml").write_bytes(BINARY)
    for argv in (["did", "show"], ["wallet", "list"], ["issued", "list"]):
        result = _bad(argv, tmp_path, home)
        assert "node.config_invalid" in result.stderr and "config.yaml is not UTF-8 text" in result.stderr
    (home / "config.yaml").unlink()
    (home / "config.yaml").mkdir()
    result = _bad(["did", "show"], tmp_path, home)
    assert "error [node.config_invalid]: Cannot read" in result.stderr and "Is a directory" in result.stderr


@pytest.mark.parametrize("interval", ["-1", "0", "nan", "inf", "soon"])
def test_the_sequencer_interval_must_be_seconds_above_zero(tmp_path, interval):
    """-1, NaN or infinity were a stack trace from time.sleep after the first drain; 0 spun a core."""
    home = _node_home(tmp_path)
    (tmp_path / "spool").mkdir()
    result = _bad(["receipts", "sequence", tmp_path / "spool", "--once", "--interval", interval], tmp_path, home)
    assert result.exit_code == 2 and "Invalid value for '--interval'" in result.stderr
    assert "is not a number of seconds" in result.stderr


def test_draining_a_spool_folder_that_does_not_exist_is_a_usage_error(tmp_path):
    home = _node_home(tmp_path)
    result = _bad(["receipts", "sequence", tmp_path / "spoool", "--once"], tmp_path, home)
    assert result.exit_code == 2 and "spoool' does not exist" in result.stderr and "Logged" not in result.output
    (tmp_path / "spool").mkdir()
    ok = CliRunner().invoke(main, ["receipts", "sequence", str(tmp_path / "spool"), "--once", "--home", str(home)])
    assert ok.exit_code == 0 and "Logged 0 receipts." in ok.output


@pytest.mark.parametrize("host", ["not a host", "", "a..b"])
def test_dev_ca_names_a_host_it_cannot_certify_and_writes_nothing(tmp_path, host):
    """These were a stack trace from idna, after the --out directory had been made."""
    result = _bad(["dev-ca", "--out", tmp_path / "ca", "--host", "127.0.0.1", "--host", host], tmp_path)
    assert result.exit_code == 2 and f"'{host}' is not a host name or IP address" in result.stderr
    assert not (tmp_path / "ca").exists()


def test_staff_add_without_a_password_or_a_terminal_is_a_coded_error(tmp_path):
    """It was 'Password (at least 12 characters): Aborted!' (and a GetPassWarning from a real process)."""
    import os
    import subprocess
    import sys
    home = _node_home(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "CEAD_STAFF_PASSWORD"}
    proc = subprocess.run([sys.executable, "-m", "cead.cli", "staff", "add", "--home", str(home), "--username", "ian",
                           "--name", "Ian Owner", "--role", "iao"], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, env=env, start_new_session=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error [staff.password_required]: ") and "CEAD_STAFF_PASSWORD" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Aborted" not in proc.stderr
    listed = CliRunner().invoke(main, ["staff", "list", "--home", str(home)])
    assert listed.exit_code == 0 and "ian" not in listed.output


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_the_staff_log_limit_is_a_count(tmp_path, limit):
    """-1 was every entry (SQL LIMIT -1) and 0 none, both with exit 0."""
    result = _bad(["staff", "log", "--limit", limit], tmp_path, _node_home(tmp_path))
    assert result.exit_code == 2 and f"{limit} is not in the range x>=1" in result.stderr


def _closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound for a moment, then closed)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CLOSED = [["wallet", "import", "{url}/credential"], ["fetch", "{url}/data", "--discover"],
          ["deliver", "{cred}", "--to", "{url}/inbox"], ["audit", "{url}", "--allow-private-addresses"],
          ["witness", "key", "--did", "{did}", "--allow-private-addresses"]]


@pytest.mark.parametrize("argv", CLOSED, ids=lambda a: " ".join(a[:2]) if a[0] == "witness" else a[0])
def test_a_server_that_is_not_there_is_said_plainly(tmp_path, argv):
    """An https URL to a closed port on 127.0.0.1 fails at once saying the connection was refused, not with
    requests' 'HTTPSConnectionPool(...): Max retries exceeded ... NewConnectionError(...)' nor a bare
    'ConnectionError'."""
    import os
    import subprocess
    import sys
    from issuer_fixtures import PASS, make_node
    # the node may talk to 127.0.0.1 (`cead wallet import URL` fetches under its network rules)
    home = make_node(tmp_path / "home", public_url="https://fife.example", network={"allow_private": True}).home
    cred = tmp_path / "credential.json"
    cred.write_text('{"type": ["VerifiableCredential"], "credentialSubject": {}}')
    port = _closed_port()
    url, did = f"https://127.0.0.1:{port}", f"did:web:127.0.0.1%3A{port}"
    proc = subprocess.run([sys.executable, "-m", "cead.cli", *(a.format(url=url, cred=cred, did=did) for a in argv)],
                          env={**os.environ, "CEAD_HOME": str(home), "CEAD_PASSPHRASE": PASS.decode()},
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    error = __import__("json").loads(proc.stderr.strip().splitlines()[-1])["error"]
    assert url in error["message"] and "the connection was refused (nothing is listening" in error["message"]
    assert "Max retries" not in error["message"] and "ConnectionError" not in error["message"]


def test_a_file_that_is_no_dcat_catalogue_imports_nothing_and_removes_nothing(tmp_path):
    """`{}` or `[1, 2]` parsed as an empty graph: 'Imported 0 datasets ... N removed', exit 0, flagging every dataset
    of that source removed. A JSON string was rdflib's 'cannot access local variable' message."""
    import json
    home = _node_home(tmp_path)
    source = tmp_path / "catalogue.jsonld"
    source.write_text(json.dumps({"@context": {"dcat": "http://www.w3.org/ns/dcat#"}, "@graph": [
        {"@id": "https://data.fife.example/catalog", "@type": "dcat:Catalog"},
        {"@id": "https://data.fife.example/dataset/meals", "@type": "dcat:Dataset"}]}))
    runner = CliRunner(env={"CEAD_HOME": str(home)})
    assert "1 added" in runner.invoke(main, ["catalogue", "import", str(source)]).output
    for wrong in ({}, [1, 2], {"@context": {"x": "https://x.example/"}, "x:title": "notes"}):
        source.write_text(json.dumps(wrong))
        result = _bad(["catalogue", "import", source], tmp_path, home)
        assert result.exit_code == 2 and "catalogue.invalid" in result.stderr
        assert "it is not a DCAT catalogue (nothing was imported)" in result.stderr
    source.write_text('"a catalogue"')
    result = _bad(["catalogue", "import", source], tmp_path, home)
    assert "The catalogue holds a JSON string, not JSON-LD" in result.stderr
    listed = json.loads(runner.invoke(main, ["catalogue", "list", "--json"]).output)
    assert [d["iri"] for d in listed] == ["https://data.fife.example/dataset/meals"]   # still in force
    source.write_text(json.dumps({"@context": {"dcat": "http://www.w3.org/ns/dcat#"},
                                  "@id": "https://data.fife.example/catalog", "@type": "dcat:Catalog"}))
    emptied = runner.invoke(main, ["catalogue", "import", str(source)])     # an empty catalogue is one
    assert emptied.exit_code == 0 and "0 datasets" in emptied.output and "1 removed" in emptied.output


@pytest.mark.parametrize("url", ["notaurl", "https://", "ftp://node.example", "https://node.example:port"])
def test_verifier_serve_refuses_a_ledger_url_that_is_no_url_before_serving(tmp_path, url):
    """It served, and denied every differentially private release later (protocol.ledger_unavailable). (--tls-cert
    without --tls-key: had the URL passed, the command would stop on that, never serve, in this test.)"""
    import json
    (tmp_path / "cert.pem").write_text("not used")
    result = _bad(["verifier", "serve", "--port", "8443", "--ledger-url", url, "--tls-cert", tmp_path / "cert.pem"],
                  tmp_path, env={"CEAD_LEDGER_TOKEN": "a-token"})
    error = json.loads(result.stderr.strip().splitlines()[-1])["error"]
    assert result.exit_code == 2 and error["code"] == "input.invalid"
    assert error["message"] == f"--ledger-url must be the data owner's node as an http(s) URL (e.g. " \
                               f"https://127.0.0.1:8443), not {url!r}."


@pytest.mark.parametrize("argv", [["request", "approve", "nope", "--subject", "{subject}"],
                                  ["request", "deliver", "nope"], ["request", "refuse", "nope", "--reason", "x"]],
                         ids=lambda a: " ".join(a[:2]))
def test_a_request_id_that_names_no_request_is_bad_input_for_every_decision(tmp_path, argv):
    """`cead request refuse nope` exited 2 (bad input) but `cead request approve nope` and `cead request deliver
    nope` exited 1, the code for a refusal, with the same sharing.not_found: a script could not tell a wrong id from
    an approval the guard rail refused."""
    subject = ROOT / "docs" / "examples" / "approval-decision.yaml"
    result = _bad([a.format(subject=subject) for a in argv], tmp_path, _node_home(tmp_path))
    error = json.loads(result.stderr)["error"]
    assert error["code"] == "sharing.not_found" and result.exit_code == 2, result.stderr


@pytest.mark.parametrize("argv", [["request", "approve", "x", "--subject", "{subject}", "--delegation", "my-del.json"],
                                  ["issue", "approval", "--file", "{subject}", "--delegation", "my-del.json"]],
                         ids=lambda a: " ".join(a[:2]))
def test_a_delegation_file_that_is_not_there_is_said_to_be_missing(tmp_path, argv):
    """--delegation my-del.json with no such file was taken for a credential id: "No delegation 'my-del.json' in
    HOME/delegations", or for a request id that names nothing, "No data-sharing request", never that the file is
    missing. A credential id is a URI; a name without ':' can only have been meant as a file."""
    subject = ROOT / "docs" / "examples" / "approval-decision.yaml"
    result = _bad([a.format(subject=subject) for a in argv], tmp_path, _node_home(tmp_path))
    assert "--delegation 'my-del.json': no such file" in result.stderr, result.stderr
    assert "Give the file of your own DelegatedAuthorityCredential, or its id" in result.stderr


def _docs_cead_lines():
    """Every `cead ...` command line the documents show (code blocks and inline code), continuation lines joined
    and shell comments and pipes cut off."""
    import re
    for path in sorted([*(ROOT / "docs").glob("*.md"), ROOT / "README.md"]):
        text = re.sub(r"\\\n\s*", " ", path.read_text())
        for number, line in enumerate(text.splitlines(), 1):
            line = re.sub(r"\s#\s.*", "", line)
            for match in re.finditer(r"(?<![\w/.-])cead((?: +[^\s`;&)\"'<>]+)+)", line):
                words = match.group(1).split(" | ")[0]
                yield f"{path.name}:{number}", [w for w in re.split(r"[\s\[\]|]+", words) if w]


def test_every_command_and_flag_the_documents_name_exists():
    """A reader who types what docs/*.md show gets a command that exists, with flags it takes."""
    import re
    commands = {path: cmd for path, cmd in _walk(main, click.Context(main))}
    commands[()] = main
    wrong = []
    for where, words in _docs_cead_lines():
        path, i = (), 0
        while i < len(words) and (*path, words[i]) in commands:
            path, i = (*path, words[i]), i + 1
        if not path:
            continue            # prose: "the cead command", "cead's node"
        command = commands[path]
        if isinstance(command, click.Group) and i < len(words) and re.fullmatch(r"[a-z][a-z0-9-]+", words[i]):
            wrong.append(f"{where}: no command `cead {' '.join(path)} {words[i]}`")
            continue
        if isinstance(command, click.Group) and i < len(words) and words[i].isupper():
            continue            # `cead issue TYPE --out`: a placeholder for the subcommand
        known = {"--help", "-h"} | {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
        for word in words[i:]:
            flag = word.split("=")[0].rstrip(".,:")
            if re.fullmatch(r"--?[a-zA-Z][\w-]*", flag) and flag not in known:
                wrong.append(f"{where}: `cead {' '.join(path)}` has no {flag}")
    assert not wrong, "\n".join(wrong)
