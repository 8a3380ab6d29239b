"""The `cead` command line as scripts and other teams call it: the names, --help on each, and a gateway install."""
import click
import pytest
from click.testing import CliRunner

import cead.cli
from cead.cli import main

NAMES = ["init", "issuer serve", "did show", "token create", "key rotate", "issue certification", "issue delegation",
         "issue approval", "revoke", "suspend", "reinstate", "issued list", "verify", "verifier serve",
         "wallet import", "wallet list", "wallet show", "wallet present", "fetch", "demo", "lawful"]


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
