"""``cead staff``: the node's staff accounts for its web pages (add, list, disable, enable) and the audit log."""
from __future__ import annotations

import json
import os
from typing import Callable

import click

from verifier.results import CeadError

from ..cli import _fail_on_cead_error, _on_a_terminal, _open, home_option
from . import ROLES, audit_log, create_account, list_accounts, log_lines, migrate, record, set_disabled

PASSWORD_ENV = "CEAD_STAFF_PASSWORD"
# ``node -> (name, more)`` for :func:`issuer.staff.log_lines`: the wallet's names for DIDs and datasets and for its
# data-sharing requests. Set by the top layer (``cead.cli``) when the wallet is installed; the issuer never imports it.
log_names: Callable | None = None


@click.group("staff")
def staff():
    """Staff accounts for the web pages: one role each (analyst, iao, dpo, admin)."""


def _engine(home):
    node = _open(home)
    migrate(node.engine)
    return node.engine


@staff.command("add")
@home_option
@click.option("--username", required=True, help="What the person types to sign in.")
@click.option("--name", "full_name", required=True, help="The person's full name (shown in the audit log).")
@click.option("--role", required=True, type=click.Choice(list(ROLES)),
              help="analyst: sends requests; iao: decides them; dpo: also delegates; admin: also manages staff.")
@_fail_on_cead_error
def staff_add(home, username, full_name, role):
    """Add an account. The password is asked for (or read from CEAD_STAFF_PASSWORD) and kept only as an argon2id
    hash."""
    engine = _engine(home)     # a missing home is said before the password is asked for
    password = os.environ.get(PASSWORD_ENV)
    if not password:
        if not _on_a_terminal():   # a script, </dev/null: one coded line, not a prompt nobody can answer
            raise CeadError("staff.password_required", f"cead staff add needs the account's password: set "
                            f"{PASSWORD_ENV} (there is no terminal to ask for it on).")
        password = click.prompt("Password (at least 12 characters)", hide_input=True, confirmation_prompt=True)
    row = create_account(engine, username, full_name, role, password)
    record(engine, "(command line)", "created staff account", target=row.username, detail={"role": role})
    click.echo(f"Account {row.username} ({ROLES[role]['label']}) added.")


@staff.command("list")
@home_option
@_fail_on_cead_error
def staff_list(home):
    """List the accounts: username, name, role, created, status."""
    for row in list_accounts(_engine(home)):
        click.echo(f"{row.username}\t{row.full_name}\t{row.role}\t{row.created}\t"
                   f"{'disabled' if row.disabled else 'active'}")


@staff.command("disable")
@home_option
@click.argument("username")
@_fail_on_cead_error
def staff_disable(home, username):
    """Disable an account: it is signed out at its next page and cannot sign in."""
    engine = _engine(home)
    set_disabled(engine, username, True)
    record(engine, "(command line)", "disabled staff account", target=username)
    click.echo(f"Account {username} disabled.")


@staff.command("enable")
@home_option
@click.argument("username")
@_fail_on_cead_error
def staff_enable(home, username):
    """Enable a disabled account again."""
    engine = _engine(home)
    set_disabled(engine, username, False)
    record(engine, "(command line)", "enabled staff account", target=username)
    click.echo(f"Account {username} enabled.")


@staff.command("log")
@home_option
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="How many entries, newest first (at least 1).")
@click.option("--json", "as_json", is_flag=True,
              help="JSON for scripts: a list, newest first; each entry's codes (at, who, role, action, target, "
                   "detail) and the same in words (who_name, role_label, action_words, target_words).")
@_fail_on_cead_error
def staff_log(home, limit, as_json):
    """The audit log of what staff did on the pages, in words: when (UTC), who (full name, username in
    brackets), role, what they did, and what on (named where the node can name it, its identifier in brackets).
    One entry a line, the five separated by tabs."""
    node = _open(home)
    migrate(node.engine)
    name, more = log_names(node) if log_names is not None else (None, None)
    lines = log_lines(node.engine, audit_log(node.engine, limit=limit), name=name, more=more)
    if as_json:
        click.echo(json.dumps([line.as_dict() for line in lines], indent=2, ensure_ascii=False))
        return
    for line in lines:
        e = line.entry
        who = f"{line.who_name} ({e.who})" if line.who_name else e.who
        on = f"{line.target_words} ({e.target})" if line.target_words else (e.target or "")
        click.echo(f"{e.at}\t{who}\t{line.role_label or ''}\t{line.action_words}\t{on}")
