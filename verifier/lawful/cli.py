"""`cead lawful FILE`: check an approval against the lawful-basis rulebook, in plain words. Registered by ``cead.cli``.

Exit codes as `cead verify`: 0 lawful (every rule that applies is met), 1 not lawful, 2 bad input (unreadable file,
not an approval, a rulebook that is not the pinned version).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..results import CeadError

EXIT_LAWFUL, EXIT_UNLAWFUL, EXIT_BAD_INPUT = 0, 1, 2


def _fail(message: str, code: str = "input.invalid") -> None:
    click.echo(json.dumps({"error": {"code": code, "message": message}}), err=True)
    sys.exit(EXIT_BAD_INPUT)


@click.command("lawful")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False),
              help="Trust policy whose rulebook (pinned by digest), vocabulary and competent authorities apply "
                   "(default: the rulebook shipped with Cead, the built-in vocabulary).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON instead of sentences.")
def lawful(file, policy_path, as_json):
    """Check an approval (a credential, or its credentialSubject, as JSON or YAML) against the lawful-basis
    rulebook: say which rules it meets and which it does not, what would satisfy each, and the law it cites.

    Exit 0 when lawful, 1 when a rule is not met, 2 for bad input."""
    from schemas.values import load_document
    from schemas.vocab import registry

    from ..policy import load_policy
    from .engine import evaluate
    from schemas.values import read_text, utf8_text
    try:
        text = utf8_text(sys.stdin.buffer.read(), "Standard input") if file == "-" else read_text(file)
    except OSError as exc:
        _fail(f"Cannot read {file!r}: {exc.strerror or exc}", "input.unreadable")
    except ValueError as exc:
        _fail(f"{exc}.", "input.invalid")
    try:
        document = load_document(text, repr(file))
    except ValueError as exc:
        _fail(str(exc))
    try:
        policy = load_policy(policy_path)
        book = policy.rulebook()
        results = evaluate(document, book, vocabulary=policy.vocabulary_for(registry()),
                           competent_authorities=policy.lawful.competent_authorities)
    except CeadError as exc:
        _fail(exc.message, exc.code)
    unmet = [r for r in results if r.failed]
    if as_json:
        click.echo(json.dumps({"rulebook": {"version": book.version, "digest": book.digest}, "lawful": not unmet,
                               "results": [r.to_dict() for r in results]}, indent=2))
    else:
        order = {"unmet": 0, "advice": 1, "met": 2}
        for r in sorted(results, key=lambda r: order[r.outcome]):
            who = f" ({r.party})" if r.party else ""
            if r.outcome == "met":
                click.echo(f"ok       {r.rule}{who}: met")
            else:
                click.echo(f"{r.outcome:<8} {r.title}{who}: {r.finding} What would satisfy it: {r.satisfy} "
                           f"[{r.rule}, {r.citation}]")
        click.echo(f"Checked against rulebook {book.version} ({book.digest}): "
                   + ("lawful." if not unmet else f"{len(unmet)} rule(s) not met."))
    sys.exit(EXIT_UNLAWFUL if unmet else EXIT_LAWFUL)
