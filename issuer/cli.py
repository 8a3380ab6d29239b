"""The DPO's command line for a node: init, serve, DID, tokens, keys, issuing, co-signing, status changes and the
register.

Every command takes ``--home`` (default ``$CEAD_HOME`` or ``./cead-home``). The key passphrase comes from
``$CEAD_PASSPHRASE`` or, on a terminal, a prompt; it is never stored. Errors print ``error [code]: message`` and exit
1; ``key.passphrase_required`` (no passphrase and no terminal to ask on) exits 2, as a usage error does.
"""
from __future__ import annotations

import functools
import json
import os
import sys
import tempfile
from pathlib import Path

import click

from schemas.values import load_document, read_text
from verifier.keys import ED25519, JOSE_ALGS, KINDS
from verifier.suites import DEFAULT_SUITES
from verifier.results import CeadError

from . import issuing, tokens
from .node import Node, check_public_url, default_home, passphrase_from_env

home_option = click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=None,
                           help="Node home directory (default $CEAD_HOME or ./cead-home).")


def _fail_on_cead_error(func):
    """``error [code]: message`` on stderr and exit 1, never a stack trace: for a ``CeadError``, and for a database
    that cannot be reached or fails (``db.unavailable``, ``db.error``, one line)."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from . import db
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            if not isinstance(exc, CeadError):
                if not db.is_database_error(exc):
                    raise
                exc = db.database_error(exc)
            message = exc.message.encode("utf-8", "backslashreplace").decode("utf-8")  # printable, whatever it quotes
            click.echo(f"error [{exc.code}]: {message}", err=True)
            sys.exit(_EXIT_CODES.get(exc.code, 1))
    return wrapper


# Codes that mean the command cannot run as it was started (fix the invocation, not the data): exit 2, as click's
# own usage errors do. Every other error exits 1.
_EXIT_CODES = {"key.passphrase_required": 2, "staff.password_required": 2}


# ---- --out files -------------------------------------------------------------------------------------------------

def _check_out(out: str | None) -> None:
    """Before anything is signed: ``--out`` must name a file that can be written (its directory exists and is
    writable; it is not a directory). Raises ``output.unwritable`` naming the path."""
    if not out:
        return
    path = Path(out)
    parent = path.parent if str(path.parent) else Path(".")
    problem = None
    if path.is_dir():
        problem = "it is a directory"
    elif not parent.is_dir():
        problem = f"the directory {str(parent)!r} does not exist"
    elif not os.access(parent, os.W_OK | os.X_OK):
        problem = f"the directory {str(parent)!r} is not writable"
    elif path.exists() and not os.access(path, os.W_OK):
        problem = "the file is not writable"
    if problem:
        raise CeadError("output.unwritable", f"Cannot write --out {out!r}: {problem}. Nothing was signed.", path=out)


def _write_out(out: str, text: str) -> None:
    """Write ``text`` to ``out`` atomically (a temporary file in the same directory, flushed, then renamed into
    place): a failure leaves the old file or none, never half a credential."""
    path = Path(out)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _deliver(out: str | None, text: str, done: str, what: str) -> None:
    """Print ``text``, or write it to ``out`` (``done`` is said on stderr). If writing fails after signing, the
    credential is printed on stdout instead, so it is not lost, and ``output.unwritable`` names the path."""
    if not out:
        click.echo(text)
        return
    try:
        _write_out(out, text + "\n")
    except (OSError, UnicodeError) as exc:
        click.echo(text)
        reason = getattr(exc, "strerror", None) or exc
        raise CeadError("output.unwritable", f"Could not write --out {out!r} ({reason}); {what} is printed on stdout "
                        "above instead.", path=out) from None
    click.echo(done, err=True)


def _on_a_terminal() -> bool:
    """Whether a person can be asked for the passphrase: standard input is a terminal."""
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):      # closed or detached
        return False


def _passphrase(new: bool = False) -> bytes:
    """The key passphrase: ``$CEAD_PASSPHRASE``, else a prompt on a terminal. With neither (a script, a service,
    ``</dev/null``) ``key.passphrase_required``, one line and exit 2, rather than a prompt nobody can answer."""
    value = passphrase_from_env()
    if value:
        return value
    if not _on_a_terminal():
        raise CeadError("key.passphrase_required", "This command needs the passphrase of the node's keys: set "
                        "CEAD_PASSPHRASE (there is no terminal to ask for it on).")
    text = click.prompt("Key passphrase", hide_input=True, confirmation_prompt=new)
    if not text:
        raise CeadError("key.passphrase_required", "A passphrase is needed.")
    return text.encode()


def _open(home: Path | None, unlock: bool = False) -> Node:
    home = home or default_home()
    node = Node.open(home)      # a missing or broken home is said before anyone is asked for a passphrase
    if unlock:
        node = Node.open(home, _passphrase())
    from . import db
    db.migrate(node.engine)
    return node


# ---- init, did ---------------------------------------------------------------------------------------------------

@click.command("init")
@click.option("--name", required=True, help="The organisation's name, e.g. 'Fife Council'.")
@click.option("--domain", default=None, help="did:web host (with optional :port), e.g. fife.example.")
@click.option("--path", "did_path", default=None, help="did:web path, e.g. orgs/fife -> did:web:host:orgs:fife.")
@click.option("--did", "did_method", type=click.Choice(["web", "key"]), default="web", show_default=True,
              help="The node's DID method: web (did:web from --domain and --path, for an organisation) or key (a "
                   "did:key, e.g. a person's own node; give --public-url if it is to issue).")
@click.option("--database-url", default=None, help="SQLAlchemy URL (default: SQLite node.db in the home).")
@click.option("--public-url", default=None, help="Public base URL for status lists (default https://DOMAIN).")
@click.option("--ca-bundle", type=click.Path(dir_okay=False), default=None,
              help="PEM file of extra trust anchors for fetching DID documents and status lists (e.g. the test CA "
                   "`cead dev-ca` makes; saved as network.ca_bundle).")
@click.option("--allow-private-addresses", is_flag=True,
              help="Development/test only: let the node fetch DID documents and status lists from loopback and "
                   "private addresses (e.g. 127.0.0.1). Never use in production.")
@click.option("--vocabulary", type=click.Path(dir_okay=False), default=None,
              help="JSON/YAML file of extra vocabulary terms ({broader: {...}, isPartOf: {...}}), e.g. a local "
                   "DCAT catalogue or narrower purposes, for the guard rail and the wallet.")
@home_option
@_fail_on_cead_error
def init(name, domain, did_path, did_method, database_url, public_url, ca_bundle, allow_private_addresses,
         vocabulary, home):
    """Create a node home: keys (encrypted), DID, database and config. Never overwrites keys.

    On one machine, for a test (docs/quickstart.md): --domain 127.0.0.1:PORT (or --did key --public-url
    https://127.0.0.1:PORT), --ca-bundle dev-ca/ca.pem and --allow-private-addresses."""
    home = home or default_home()
    exists = (home / "config.yaml").exists()
    network = {"allow_private": True} if allow_private_addresses else {}
    if ca_bundle:
        network["ca_bundle"] = ca_bundle
    node, created = Node.init(home, name, None if exists else (lambda: _passphrase(new=True)), domain=domain,
                              path=did_path, did_method=did_method, database_url=database_url,
                              public_url=public_url, network=network, vocabulary=vocabulary)
    if created:
        click.echo(f"Created node {node.did} in {home}")
        if not node.config.get("public_url"):
            click.echo("warning: this did:key node has no public URL (--public-url), so it has nowhere to publish "
                       "status lists: it can hold and present credentials, but it cannot issue any "
                       "(node.public_url_missing) until public_url is set in "
                       f"{home / 'config.yaml'}.", err=True)
    else:
        click.echo(f"{home} already holds node {node.did}; keys and settings left unchanged "
                   f"(edit {home / 'config.yaml'} to change them).")
    click.echo(node.did)


@click.group("did")
def did():
    """The node's DID."""


@did.command("show")
@click.option("--document", is_flag=True, help="Print the DID document instead of the DID.")
@home_option
@_fail_on_cead_error
def did_show(document, home):
    """Print the node's DID (or, with --document, its DID document)."""
    node = Node.open(home)
    click.echo(json.dumps(node.did_document(), indent=2) if document else node.did)


# ---- serve -------------------------------------------------------------------------------------------------------

@click.group("issuer")
def issuer():
    """The issuer HTTP service."""


# The web app `cead issuer serve` runs. The top-level command line (cead.cli) swaps in the node app that adds the
# wallet's inbox when the wallet is installed, so this package never imports the wallet.
app_factory = None


@issuer.command("serve")
@home_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 for every interface).")
@click.option("--port", type=click.IntRange(1, 65535), default=8443, show_default=True,
              help="TCP port to listen on (1-65535).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None,
              help="PEM certificate (chain) to serve HTTPS with; give --tls-key too. Without both, plain HTTP "
                   "(behind a TLS-terminating proxy).")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None,
              help="PEM private key of --tls-cert.")
@click.option("--public-url", default=None, help="Override the public base URL used in status entries.")
@_fail_on_cead_error
def serve(home, host, port, tls_cert, tls_key, public_url):
    """Serve the DID document, VC-API issuing and status endpoints, the status lists (and the wallet inbox) on
    granian (one worker process of 8 threads; TLS with --tls-cert/--tls-key; SIGTERM stops it gracefully). Its
    worker also sends due notifications and submits new log checkpoints to the witnesses of config.yaml."""
    from verifier.serving import serve_wsgi

    from .app import create_app
    if bool(tls_cert) != bool(tls_key):
        raise CeadError("serve.tls", "Give both --tls-cert and --tls-key, or neither.")
    node = _open(home, unlock=True)
    node.signing_key()  # fail now, not on the first request, if the passphrase is wrong
    for kind in KINDS:
        unfinished = node.unfinished_rotation(kind)
        if unfinished is not None:      # safe to serve (it signs nothing yet), but the rotation is not done
            click.echo(f"warning: the rotation to the {kind} key {unfinished['id']} was cut short; credentials are "
                       "still signed with the key before it: run `cead key rotate"
                       + ("" if kind == ED25519 else f" --kind {kind}") + "` to complete it.", err=True)
    if public_url is not None:
        node.config["public_url"] = check_public_url(public_url, node.network)
    app = (app_factory or create_app)(node)
    from . import notifications
    notifications.subscriptions(node)   # a bad notifications: section fails now, not on the first event
    notifications.interval(node)
    from .evidence import witness
    witness.targets(node)               # and a bad witnesses: section, not on the first checkpoint
    witness.submit_interval(node)

    def in_worker() -> None:
        engine = getattr(node, "_engine", None)
        if engine is not None:          # no database connection carried across the fork
            engine.dispose(close=False)
        # the notification dispatcher runs in the worker, the process that serves and uses the database (a thread
        # started before the fork runs in granian's main process only, which a restarted worker is forked from
        # with that thread perhaps in the middle of a delivery, holding the node's or SQLite's locks)
        notifications.start_dispatcher(node)
        # likewise the submission of new checkpoints to the witnesses of config.yaml witnesses: (each witness
        # claimed in the database, so `cead witness submit` from cron never submits to it at the same time)
        witness.start_submitter(node)

    node.engine.dispose()   # this process holds no database connection from here on: none is carried into a worker
    serve_wsgi(app, host, port, tls_cert, tls_key, post_fork=in_worker,
               announce=lambda url: click.echo(f"Serving {node.did} on {url}", err=True))


# ---- tokens and keys ---------------------------------------------------------------------------------------------

@click.group("token")
def token():
    """Bearer tokens for the issuing API."""


@token.command("create")
@home_option
@click.option("--name", required=True, help="Who the caller is (one token per caller).")
@click.option("--scope", required=True, help=f"Comma-separated: {', '.join(tokens.SCOPES)}.")
@_fail_on_cead_error
def token_create(home, name, scope):
    """Create a token; it is printed once and stored only as a hash."""
    node = _open(home)
    click.echo(tokens.create_token(node.engine, name, scope))
    click.echo(f"Created token {name} ({scope}); it is shown once, above.", err=True)


@token.command("list")
@home_option
@click.option("--json", "as_json", is_flag=True, help="JSON, for scripts.")
@_fail_on_cead_error
def token_list(home, as_json):
    """List the node's tokens: name, scopes, created (never the secret)."""
    node = _open(home)
    if as_json:
        click.echo(json.dumps([{"name": row.name, "scopes": row.scopes.split(","), "created": str(row.created),
                                "status": "revoked" if row.revoked else "active"}
                               for row in tokens.list_tokens(node.engine)], indent=2))
        return
    for row in tokens.list_tokens(node.engine):
        click.echo(f"{row.name}\t{row.scopes}\t{row.created}\t{'revoked' if row.revoked else 'active'}")


@token.command("revoke")
@home_option
@click.argument("name")
@_fail_on_cead_error
def token_revoke(home, name):
    """Revoke a token by name; it stops working at once."""
    tokens.revoke_token(_open(home).engine, name)
    click.echo(f"Token {name} revoked.")


@click.group("key")
def key():
    """Signing keys: rotate and retire."""


@key.command("rotate")
@home_option
@click.option("--kind", type=click.Choice(list(KINDS)), default=ED25519, show_default=True,
              help="Key type: Ed25519 (Data Integrity and EdDSA JWTs), P-256 (ES256), P-384 (ES384) or P-521 "
                   "(ES512 JWTs).")
@_fail_on_cead_error
def key_rotate(home, kind):
    """Add a new signing key; the previous one keeps verifying until retired. A rotation cut short (a crash
    part-way) is completed instead, with the key it had made."""
    home = home or default_home()
    Node.open(home)         # a missing or broken home is said before anyone is asked for a passphrase
    node = Node.open(home, _passphrase())
    unfinished = node.unfinished_rotation(kind)
    vm = node.rotate_key(kind)
    if unfinished is not None:
        click.echo(f"Completed the rotation to {unfinished['id']} that was cut short (no new key made).", err=True)
    click.echo(vm)


@key.command("retire")
@home_option
@click.argument("key_id")
@_fail_on_cead_error
def key_retire(home, key_id):
    """Take a previous key out of the DID document's purposes (its credentials stop verifying)."""
    Node.open(home or default_home()).retire_key(key_id)
    click.echo(f"Retired {key_id}.")


# ---- issuing -----------------------------------------------------------------------------------------------------

_KINDS = issuing.KINDS


def _load_file(path: str) -> dict:
    try:
        return load_document(read_text(path, path), path)
    except OSError as exc:
        raise CeadError("request.invalid", f"Cannot read {path}: {exc.strerror or exc}.") from None
    except ValueError as exc:
        raise CeadError("request.invalid", f"Cannot read {path}: {exc}") from None


def _not_json(name: str):
    raise ValueError(f"{name} is not a JSON value")


def _set_path(target: dict, dotted: str, raw: str) -> None:
    try:
        value = json.loads(raw, parse_constant=_not_json)   # NaN/Infinity stay text: JSON cannot carry them
    except ValueError:
        value = raw
    except RecursionError:
        raise CeadError("request.invalid", f"--set {dotted}: the value is nested too deeply.") from None
    *parents, last = dotted.split(".")
    for part in parents:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise CeadError("request.invalid", f"--set {dotted}: {part} is not an object.")
    target[last] = value


# What each kind is about, for its --help; `cead issue --help` lists the _SHORT line.
_ABOUT = {
    "certification": "Issue an OrganisationCertificationCredential: as a certification body, state that an "
                     "organisation (--subject) holds a certification.",
    "delegation": "Issue a DelegatedAuthorityCredential: let a delegate (--subject) act for a controller "
                  "(onBehalfOf) within a scope.",
    "approval": "Issue a DataSharingApprovalCredential: the discloser approves sharing datasets with the "
                "recipients.",
}
_GUARD = {
    "certification": "A certification is not checked against a delegation (--delegation is refused).",
    "delegation": "With --delegation (your own delegation, when you are yourself a delegate) the guard rail refuses "
                  "a delegation wider than it; without it this node should be the controller named in onBehalfOf "
                  "(otherwise a warning says so).",
    "approval": "With --delegation (the approver's own delegation) the guard rail refuses an approval wider than "
                "it; without it this node should be the discloser (otherwise a warning says so).",
}
_SHORT = {"certification": "An OrganisationCertificationCredential (certification body).",
          "delegation": "A DelegatedAuthorityCredential for a delegate.",
          "approval": "A DataSharingApprovalCredential (the discloser's approval)."}
# The subject field naming the organisation a guarded credential speaks for (warned about without --delegation).
_FOR_WHOM = {"delegation": "onBehalfOf", "approval": "discloser"}


def _issue_help(kind: str) -> str:
    flags = "--set and --valid-until" if kind == "approval" else "--subject, --set and --valid-until"
    return (f"{_ABOUT[kind]}\n\nFrom flags, or a JSON/YAML --file holding a whole credential or just its "
            f"credentialSubject; {flags} apply to either and override what the file says. {_GUARD[kind]}")


def _check_flags(kind: str, subject: str | None, delegation: str | None, delegate_name: str | None = None) -> None:
    """Flags that cannot apply to ``kind`` are refused, never ignored."""
    if delegate_name is not None and kind != "delegation":
        raise CeadError("request.invalid", "--delegate-name names the delegate of a delegation; "
                        f"a{'n' if kind == 'approval' else ''} {kind} has none. Leave it out.", field="--delegate-name")
    if subject and kind == "approval":
        raise CeadError("request.invalid", "--subject sets credentialSubject.id, which an approval does not have: "
                        "name its recipients with --set 'recipients=[\"did:...\"]' (or in the file).",
                        field="--subject")
    if delegation and kind not in _FOR_WHOM:
        raise CeadError("options.invalid", "--delegation applies to delegations and approvals; a certification is "
                        "not checked against one. Leave it out.", field="--delegation")


def _build(node: Node, kind: str, file: str | None, subject: str | None, sets: tuple[str, ...],
           valid_until: str | None, delegate_name: str | None = None) -> dict:
    """The credential to issue: the file (a whole credential or its credentialSubject), then the flags, which apply
    to the subject in both cases and override the file (``--valid-until`` overrides ``validUntil``;
    ``--delegate-name`` sets ``name``, after any ``--set``)."""
    data = _load_file(file) if file else {}
    target = data
    if "credentialSubject" in data:     # a whole credential: the flags go into its subject
        target = data["credentialSubject"]
        if (subject or sets or delegate_name) and not isinstance(target, dict):
            raise CeadError("request.invalid", f"--subject, --set and --delegate-name apply to the credentialSubject "
                            f"of {file}, which is not a single JSON object.", field="credentialSubject")
    if subject:
        target["id"] = subject
    for item in sets:
        name, sep, raw = item.partition("=")
        if not sep:
            raise CeadError("request.invalid", f"--set needs name=value, got {item!r}.")
        _set_path(target, name, raw)
    if delegate_name is not None:
        target["name"] = delegate_name
    return issuing.build_credential(node, _KINDS[kind], data, valid_until=valid_until)


def _warn_without_delegation(node: Node, kind: str, credential: dict) -> None:
    """A delegation or approval issued without --delegation for an organisation other than this node: the guard
    rail did not run, and verifiers accept it only through a delegation chain. Legitimate for a controller, so a
    warning (stderr), not an error."""
    field = _FOR_WHOM.get(kind)
    subject = credential.get("credentialSubject")
    party = subject.get(field) if field and isinstance(subject, dict) else None
    if not party or party == node.did:
        return
    click.echo(f"warning: this {kind}'s {field} is {party}, not this node ({node.did}), and no --delegation was "
               f"given: the guard rail has not checked it against your own delegation, and verifiers accept it "
               f"only with a delegation chain from {party} to this node. If you act under a delegation, issue with "
               "--delegation FILE|ID (your own DelegatedAuthorityCredential).", err=True)


def _issue_command(kind: str):
    guarded = kind in _FOR_WHOM

    @click.command(kind, help=_issue_help(kind), short_help=_SHORT[kind])
    @home_option
    @click.option("--file", "file", type=click.Path(exists=True, dir_okay=False), default=None,
                  help="JSON/YAML: a whole credential, or its credentialSubject.")
    @click.option("--subject", default=None,
                  help="Not for approvals (their subject has no id; name recipients with --set)." if kind == "approval"
                  else "The subject's DID (credentialSubject.id); overrides the file's.")
    @click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
                  help="A credentialSubject field (dotted path; VALUE parsed as JSON when it can be), in a whole "
                       "credential too; overrides the file's. Repeatable.")
    @click.option("--valid-until", default=None, help="Expiry, e.g. 2027-03-31T23:59:59Z; overrides the file's "
                                                      "validUntil.")
    @click.option("--format", "fmt", type=click.Choice([*DEFAULT_SUITES.names(signing=True), "vc+jwt"]),
                  default=DEFAULT_SUITES.names(signing=True)[0], show_default=True,
                  help="Data Integrity cryptosuite, or vc+jwt (VC-JOSE-COSE, a JWT).")
    @click.option("--alg", type=click.Choice(list(JOSE_ALGS.values())), default=None,
                  help="JWT algorithm, with --format vc+jwt only (default EdDSA; ES256/ES384/ES512 need a "
                       "P-256/P-384/P-521 key: `cead key rotate --kind`).")
    @click.option("--suspendable", is_flag=True, help="Add a suspension status entry too.")
    @click.option("--delegation", default=None,
                  help="The signer's own DelegatedAuthorityCredential (file, or id in HOME/delegations/): the guard "
                       "rail refuses anything wider than it." if guarded
                  else "Not used: a certification is not checked against a delegation (refused).")
    @click.option("--delegate-name", default=None, metavar="NAME",
                  help="The delegate's name as you vouch for it: the person or post (\"Jane Smith\", \"Head of Housing "
                       "Analysis\"), credentialSubject.name, at most 200 characters; other nodes then show "
                       "\"Jane Smith (Information Asset Owner for <the controller>)\". Overrides the file's."
                  if kind == "delegation" else "Delegations only (refused).")
    @click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write to a file, not stdout.")
    @_fail_on_cead_error
    def command(home, file, subject, sets, valid_until, fmt, alg, suspendable, delegation, delegate_name, out):
        _check_flags(kind, subject, delegation, delegate_name)
        if delegation and not Path(delegation).is_file() and ":" not in delegation:
            raise CeadError("request.invalid", f"--delegation {delegation!r}: no such file, and not a credential id "
                            "(an id is a URI, e.g. urn:uuid:...). Give the file of your own "
                            "DelegatedAuthorityCredential, or its id.", field="--delegation")
        _check_out(out)     # before signing: a credential in the register must reach its holder
        node = _open(home, unlock=True)
        credential = _build(node, kind, file, subject, sets, valid_until, delegate_name)
        options: dict = {"format": "vc+jwt"} if fmt == "vc+jwt" else {"cryptosuite": fmt}
        if alg:
            options["alg"] = alg
        if suspendable:
            options["credentialStatus"] = {"type": "BitstringStatusListEntry",
                                           "statusPurpose": ["revocation", "suspension"]}
        if delegation:
            options["delegation"] = _load_file(delegation) if Path(delegation).is_file() else delegation
        issued = issuing.issue(node, credential, options, issued_by="cli")
        if not delegation:
            _warn_without_delegation(node, kind, credential)
        text = issued.credential if isinstance(issued.credential, str) else json.dumps(issued.credential, indent=2)
        if issued.replayed:
            already = _already_issued(node, issued.id)
            _deliver(out, text, f"{already} Written to {out}.",
                     f"the credential {issued.id} (issued before, not again) is")
            if not out:
                click.echo(already, err=True)
            return
        _deliver(out, text, f"Issued {issued.id} -> {out}",
                 f"the credential {issued.id} is issued (it is in the register) and")
    return command


def _already_issued(node: Node, credential_id: str) -> str:
    """What to say when ``issue`` answered a repeat of a request it had already signed (``Issued.replayed``: the same
    credential id and content): nothing new was signed or registered, and the credential given is the first one."""
    from . import db
    with node.session() as s:
        row = s.get(db.IssuedCredential, credential_id)
    when = f" at {row.issued_at}" if row is not None and row.issued_at else ""
    return (f"Already issued{when}: this is that same credential, {credential_id}, not a new one (an earlier run of "
            "this same request signed it; nothing was signed or registered now). To issue another, give it a new id, "
            "or leave \"id\" out of the file.")


@click.group("issue")
def issue():
    """Issue credentials as this node."""


for _kind in _KINDS:
    issue.add_command(_issue_command(_kind))


@click.command("cosign")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@home_option
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write to a file, not stdout.")
@_fail_on_cead_error
def cosign(file, home, out):
    """Co-sign a Data Integrity credential (e.g. an approval naming this node in coSigners): check that it
    verifies, then add this node's proof to its proof set. A vc+jwt credential cannot be co-signed."""
    try:
        text = read_text(file, file).strip()
    except OSError as exc:
        raise CeadError("request.invalid", f"Cannot read {file}: {exc.strerror or exc}.") from None
    except ValueError as exc:
        raise CeadError("request.invalid", f"Cannot read {file}: {exc}") from None
    credential = text if not text.startswith(("{", "[")) and text.count(".") == 2 else _load_file(file)
    _check_out(out)
    node = _open(home, unlock=True)
    signed = issuing.cosign(node, credential)
    _deliver(out, json.dumps(signed, indent=2), f"Co-signed {signed.get('id', file)} as {node.did} -> {out}",
             "the co-signed credential")


def _status_command(action: str, help_text: str):
    @click.command(action, help=help_text)
    @home_option
    @click.argument("credential_id")
    @click.option("--reason", default=None, help="Recorded in the status log.")
    @_fail_on_cead_error
    def command(home, credential_id, reason):
        node = _open(home, unlock=True)
        result = issuing.change_status(node, credential_id, action, by="cli", reason=reason)
        click.echo(f"{result['credentialId']}: {result['status']}")
        click.echo(_when_gateways_see_it(action), err=True)
    return command


def _when_gateways_see_it(action: str) -> str:
    """A status change is published at once, but a gateway decides against its cached copy of the status list
    until the copy is ``caches.status_lists.ttl`` seconds old (verifier.status.StatusLists; docs/gateway.md)."""
    from verifier.policy import Caches
    ttl = Caches().status_lists.ttl
    meanwhile = "refuse it as suspended" if action == "reinstate" else "accept it"
    return (f"Recorded in this node's status list. Gateways may still {meanwhile} until they refresh their copy of "
            f"the list: for up to {ttl} s with a default trust policy (its caches.status_lists.ttl, which a gateway "
            "can set shorter). See docs/gateway.md, \"How soon a status change is seen\".")


revoke = _status_command("revoke", "Revoke a credential this node issued (final).")
suspend = _status_command("suspend", "Suspend a credential issued with a suspension entry.")
reinstate = _status_command("reinstate", "Lift a suspension.")


@click.group("issued")
def issued():
    """The register of credentials this node issued."""


@issued.command("list")
@home_option
@click.option("--csv", "as_csv", is_flag=True, help="CSV for the DPO's accountability log.")
@click.option("--json", "as_json", is_flag=True, help="JSON (a list, oldest first), for scripts.")
@_fail_on_cead_error
def issued_list(home, as_csv, as_json):
    """List every credential this node issued: id, type, subject (with its name, where the credential states one),
    dates, status, digest."""
    rows = issuing.register(_open(home))
    if as_csv and as_json:
        raise CeadError("options.invalid", "Give --csv or --json, not both.")
    if as_csv:
        click.echo(issuing.register_csv(rows), nl=False)
        return
    if as_json:
        click.echo(json.dumps([{f: getattr(row, f) for f in issuing.REGISTER_FIELDS} for row in rows], indent=2,
                              default=str))
        return
    for row in rows:
        named = f" ({row.subject_name})" if row.subject_name else ""
        click.echo(f"{row.issued_at}  {row.status:9}  {row.types.split(',')[-1]:36}  {row.id}  {row.subject or ''}"
                   f"{named}")


# ---- notifications -------------------------------------------------------------------------------------------------

@click.group("notifications")
def notifications_group():
    """Webhook and Microsoft Teams notifications of node events (config.yaml notifications:)."""


@notifications_group.command("send")
@home_option
@click.option("--expiring-within", type=click.IntRange(1, 3650), default=30, show_default=True,
              help="Also queue credential.expiring for credentials this node issued that end within this many days.")
@_fail_on_cead_error
def notifications_send(home, expiring_within):
    """Deliver every message that is due now, once (`cead issuer serve` does this every notifications_interval
    seconds, 10 by default); never one that the server is sending at the same time."""
    from . import notifications
    node = _open(home, unlock=True)
    queued = notifications.check_expiring(node, expiring_within)
    counts = notifications.deliver_due(node)
    click.echo(f"Delivered {counts['delivered']}, retrying {counts['retrying']} later, failed {counts['failed']}"
               + (f" ({queued} expiry warning(s) queued)" if queued else "") + ".")


@notifications_group.command("list")
@home_option
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@_fail_on_cead_error
def notifications_list(home, as_json):
    """The outbox, newest first: event, subscriber, attempts, delivered or failed (with the last error)."""
    from . import notifications
    rows = notifications.outbox(_open(home))
    if as_json:
        click.echo(json.dumps([{"id": r.id, "event": r.event, "subscription": r.subscription, "subject": r.subject,
                                "created": r.created, "attempts": r.attempts, "deliveredAt": r.delivered_at,
                                "failedAt": r.failed_at, "lastError": r.last_error} for r in rows], indent=2))
        return
    for r in rows:
        state = (f"delivered {r.delivered_at}" if r.delivered_at else f"failed {r.failed_at}: {r.last_error}"
                 if r.failed_at else f"pending (next {r.next_attempt}{'; ' + r.last_error if r.last_error else ''})")
        click.echo(f"{r.created}  {r.event:22}  {r.subscription:16}  tries {r.attempts}  {state}")
