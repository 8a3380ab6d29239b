"""Bad input at the command line, thrown mechanically (hypothesis): `cead verify` on garbage files and stdin,
`cead wallet import`, `cead wallet present --definition`, `cead issue ... --file/--set`, `cead init` with bad flags.

The rule checked: exit codes as documented (verify and wallet: 0/1/2; the node's commands: 0/1), a JSON or
`error [code]` line on stderr, never a Python traceback; a refused command stores nothing.
"""
from __future__ import annotations

import base64
import json
import re

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from cead.cli import main as cli

from issuer_fixtures import PASS, counts, ready_node

FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ENV = {"CEAD_PASSPHRASE": PASS.decode()}

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=10)
deep = st.tuples(st.sampled_from([("[", "]"), ('{"a":', "}")]), st.integers(2_000, 60_000)).map(
    lambda pair_n: pair_n[0][0] * pair_n[1] + "1" + pair_n[0][1] * pair_n[1])
garbage = st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()) | deep.map(str.encode) | \
    deep.map(lambda t: base64.urlsafe_b64encode(("{\"a\":" + t + "}").encode())) | st.sampled_from([
        b'{"a": NaN}', b"{", b"a.b.c", b"e30", b"W10", b"\xef\xbb\xbf{}", b"- 1\n", b"a: &a [1]\nb: *a"])


def run(args, input=None):
    result = CliRunner().invoke(cli, [str(a) for a in args], input=input, env=ENV)
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    assert not crashed, f"{type(result.exception).__name__}: {result.exception}"
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr[-500:]
    return result


def json_error(result) -> dict:
    error = json.loads(result.stderr.strip().splitlines()[-1])["error"]
    assert re.match(r"^[a-z_]+(\.[a-z_]+)+$", error["code"]) and error["message"]
    return error


@FUZZ
@given(data=garbage)
def test_verify_any_file_exits_1_or_2_without_a_traceback(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("v") / "input"
    path.write_bytes(data)
    result = run(["verify", path])
    assert result.exit_code in (1, 2)
    if result.exit_code == 2:
        json_error(result)
    else:
        assert json.loads(result.stdout)["verified"] is False


@FUZZ
@given(data=garbage)
def test_verify_stdin_exits_1_or_2_without_a_traceback(data):
    result = run(["verify", "-"], input=data)
    assert result.exit_code in (1, 2)
    if result.exit_code == 2:
        json_error(result)


@FUZZ
@given(manifest=garbage, url=st.text(max_size=40) | st.sampled_from(["https://[::1", "http://a:b/", "//x", "https://"]))
def test_verify_with_a_bad_manifest_or_url_is_bad_input(tmp_path_factory, manifest, url):
    home = tmp_path_factory.mktemp("m")
    (home / "vp").write_text('{"type": "VerifiablePresentation"}')
    (home / "manifest").write_bytes(manifest)
    result = run(["verify", home / "vp", "--url", url or "x", "--manifest", home / "manifest"])
    assert result.exit_code in (1, 2)
    if result.exit_code == 2:
        json_error(result)


@pytest.mark.parametrize("content, url", [
    ('{"a":' + "[" * 60_000 + "1" + "]" * 60_000 + "}", "https://a.example/"),    # RecursionError
    (base64.urlsafe_b64encode(b"[" * 60_000).decode(), "https://a.example/"),     # in decode_presentation
    ('{"type": "VerifiablePresentation"}', "https://[::1"),                        # ValueError from urlsplit
])
def test_verify_input_the_decoders_do_not_survive_is_exit_2(tmp_path, content, url):
    path = tmp_path / "input"
    path.write_text(content)
    result = run(["verify", path, "--url", url])
    assert result.exit_code == 2
    json_error(result)


@pytest.mark.parametrize("manifest", ['{"a": NaN}', "[" * 60_000])
def test_verify_a_manifest_json_cannot_carry_is_exit_2(tmp_path, manifest):
    (tmp_path / "vp").write_text('{"type": "VerifiablePresentation"}')
    (tmp_path / "m").write_text(manifest)
    result = run(["verify", tmp_path / "vp", "--url", "https://a.example/", "--manifest", tmp_path / "m"])
    assert result.exit_code == 2 and json_error(result)["code"] == "input.invalid"


# ---- the node's commands -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def home(tmp_path_factory):
    path = tmp_path_factory.mktemp("node") / "h"
    node = ready_node(path)
    from wallet.store import Wallet
    Wallet.from_node(node)   # the wallet's tables
    return path, node


def wallet_rows(node) -> int:
    import sqlalchemy as sa
    with node.engine.connect() as conn:
        return conn.execute(sa.text("select count(*) from wallet_credential")).scalar_one()


@FUZZ
@given(data=garbage.filter(lambda d: len(d) < 2_000))   # (deep nesting: see the test below)
def test_wallet_import_refuses_garbage_and_stores_nothing(home, data):
    path, node = home
    before = wallet_rows(node)
    result = run(["wallet", "import", "-", "--home", path], input=data)
    assert result.exit_code in (1, 2)
    assert wallet_rows(node) == before


def test_wallet_import_of_deeply_nested_json_is_refused(home):
    path, node = home
    result = run(["wallet", "import", "-", "--home", path], input="{\"a\":" + "[" * 60_000 + "}")
    assert result.exit_code == 1
    assert "credential.malformed" in result.output and "Traceback" not in result.output


def test_a_policy_that_is_not_text_and_a_database_url_nobody_speaks_are_clear_errors(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(b"\xff\xfe not utf-8")
    (tmp_path / "vc.json").write_text("{}")
    result = run(["verify", str(tmp_path / "vc.json"), "--policy", str(policy)])
    assert result.exit_code == 2 and "policy.unreadable" in result.output and "Traceback" not in result.output
    result = run(["init", "--home", str(tmp_path / "n"), "--name", "X", "--domain", "x.example",
                  "--database-url", "garbage://nowhere"])
    assert result.exit_code == 1 and "node.config_invalid" in result.output and "Traceback" not in result.output


@FUZZ
@given(data=garbage)
def test_wallet_present_with_a_bad_definition_is_exit_2(home, tmp_path_factory, data):
    path, _ = home
    definition = tmp_path_factory.mktemp("d") / "definition.json"
    definition.write_bytes(data)
    result = run(["wallet", "present", "--definition", definition, "--home", path])
    assert result.exit_code in (1, 2)
    json_error(result)


@FUZZ
@given(data=garbage, kind=st.sampled_from(["certification", "delegation", "approval"]))
def test_issue_from_a_bad_file_is_refused_and_stores_nothing(home, tmp_path_factory, data, kind):
    path, node = home
    file = tmp_path_factory.mktemp("i") / "subject.yaml"
    file.write_bytes(data)
    before = counts(node)
    result = run(["issue", kind, "--file", file, "--home", path])
    assert result.exit_code == 1 and re.match(r"error \[[a-z_.]+\]: ", result.stderr), result.stderr[-300:]
    assert counts(node) == before


@FUZZ
@given(sets=st.lists(st.tuples(st.text(max_size=12), st.text(max_size=20) | json_values.map(json.dumps) | deep),
                     max_size=3))
def test_issue_with_odd_set_flags_is_refused_and_stores_nothing(home, sets):
    path, node = home
    before = counts(node)
    args = [a for name, value in sets for a in ("--set", f"{name}={value}")]
    result = run(["issue", "certification", *args, "--home", path])
    assert result.exit_code == 1 and re.match(r"error \[[a-z_.]+\]: ", result.stderr), result.stderr[-300:]
    assert counts(node) == before


@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(flags=st.fixed_dictionaries({"--name": st.text(max_size=20)}, optional={
    "--domain": st.text(max_size=30), "--did": st.text(max_size=5) | st.sampled_from(["web", "key"]),
    "--path": st.text(max_size=20), "--public-url": st.text(max_size=30)}))
def test_init_with_bad_flags_never_crashes(tmp_path_factory, flags):
    flags = {k: v for k, v in flags.items() if "\x00" not in v}
    result = run(["init", *[a for kv in flags.items() for a in kv], "--home", tmp_path_factory.mktemp("i") / "h"])
    assert result.exit_code in (0, 1, 2)
    if result.exit_code == 1:
        assert re.match(r"error \[[a-z_.]+\]: ", result.stderr), result.stderr[-300:]
