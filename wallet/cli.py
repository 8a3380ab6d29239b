"""Wallet commands: `cead wallet import|list|show|remove|present|qr ...`, `cead fetch URL`, `cead deliver FILE
--to INBOX` and `cead request create|send|list|approve|deliver|refuse`. Registered by ``cead.cli``.

Exit codes: 0 done, 1 refused or denied (a credential that does not verify, a transfer the gateway denies, a
definition the wallet cannot satisfy, no usable approval or nothing usable that it rests on: ``_CANNOT_PRESENT``),
2 bad input or an unusable setup (unreadable file,
unwritable output file, unknown id, bad option, no node home, a database that cannot be reached: ``db.unavailable``
or fails: ``db.error``). Errors go to stderr as JSON ``{"error": {"code", "message"}}``, one line, never a stack
trace; private keys are never printed.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click

from verifier.results import CeadError

EXIT_OK, EXIT_REFUSED, EXIT_BAD_INPUT = 0, 1, 2
MAX_DAYS = 36500          # --expiring-within / --warn-days: a century (a date further off does not exist)
# the wallet holds nothing usable to present (docs/wallet.md: "1 with wallet.no_approval (and the like) when the
# wallet has nothing usable to present"): no usable approval, or what it rests on is not held, or held but ended,
# suspended or revoked. Nothing was sent and someone must renew or supply a credential: the same outcome as a
# denial, not a pipeline called wrongly (2)
_CANNOT_PRESENT = ("wallet.no_approval", "wallet.delegation_missing", "wallet.upstream_missing",
                   "wallet.certification_missing", "delegation.not_in_force", "provenance.upstream.expired",
                   "provenance.upstream.revoked", "provenance.upstream.suspended", "provenance.upstream.invalid")
_REFUSALS = ("transfer.denied", "pex.unsatisfied", *_CANNOT_PRESENT)
# a request id that names nothing to decide (no such request, decided already, another decision under way) or
# overrides that do not fit: bad input (2), as for `cead request refuse`, not a refusal of the approval (1)
_NOT_DECIDABLE = ("sharing.not_found", "sharing.not_pending", "sharing.not_approved", "sharing.in_progress",
                  "sharing.invalid")

home_option = click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar="CEAD_HOME",
                           default=None, help="The node home (default: $CEAD_HOME or ./cead-home).")


def _fail(code: str, message: str, exit_code: int = EXIT_BAD_INPUT, **detail) -> None:
    error = {"code": code, "message": message, **({"detail": detail} if detail else {})}
    click.echo(json.dumps({"error": error}), err=True)
    sys.exit(exit_code)


def _read_text(path, what: str) -> str:
    """The text of a file named on the command line: ``input.unreadable`` if it cannot be read (missing, a
    directory), ``input.invalid`` if it is not UTF-8 text (``what`` names it, e.g. "the definition 'x.json'")."""
    from schemas.values import read_text
    try:
        return read_text(path, what[:1].upper() + what[1:])
    except OSError as exc:
        _fail("input.unreadable", f"Cannot read {what}: {exc.strerror or exc}")
    except ValueError as exc:
        _fail("input.invalid", f"{exc}.")


def _fail_with(exc: CeadError) -> None:
    _fail(exc.code, exc.message, EXIT_REFUSED if exc.code in _REFUSALS else EXIT_BAD_INPUT, **exc.detail)


class _CodedErrors:
    """A database failure anywhere in a command (the node's PostgreSQL server down, a SQLite file that cannot be
    opened) is one coded line, ``db.unavailable`` or ``db.error`` (``issuer.db.database_error``), exit 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)      # type: ignore[misc]
        except Exception as exc:
            from issuer import db
            if isinstance(exc, CeadError) or not db.is_database_error(exc):
                raise
            coded = db.database_error(exc)
            _fail(coded.code, coded.message, EXIT_BAD_INPUT)


class _Group(_CodedErrors, click.Group):
    pass


class _Command(_CodedErrors, click.Command):
    pass


def _wallet(home: Path | None):
    from issuer.node import Node
    from .store import Wallet
    try:
        return Wallet.from_node(Node.open(home))
    except CeadError as exc:
        _fail_with(exc)


def _write(output: Path, data: bytes | str) -> None:
    """Write an output file; a path that cannot be written (no such directory, no permission) is bad input."""
    try:
        if isinstance(data, str):
            output.write_text(data)
        else:
            output.write_bytes(data)
    except OSError as exc:
        _fail("output.unwritable", f"Cannot write {str(output)!r}: {exc.strerror or exc}")


def _few(iris: list[str], shown: int = 3, *, names=None) -> str:
    """IRIs for one line: by name where ``names`` (a ``wallet.names.Directory``) knows one, else compact
    (``cead:X``); the first few, then how many more."""
    from schemas.vocab import compact
    word = (lambda i: str(names.name(i))) if names is not None else compact   # noqa: E731
    text = ", ".join(word(i) for i in iris[:shown])
    return text + (f" (+{len(iris) - shown} more)" if len(iris) > shown else "")


def _named(names, did: str) -> str:
    """An organisation for one line: its name with its DID when the node knows one, else the DID."""
    known = names.known(did) if names is not None else None
    return f"{known} ({did})" if known else did


def _print(data) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@click.group(cls=_Group)
def wallet() -> None:
    """The organisation's wallet: credentials it holds, and presenting them."""


@wallet.command("import")
@click.argument("source")
@home_option
def import_(source: str, home: Path | None) -> None:
    """Verify and store a credential from FILE, URL or - (stdin). Refused with the reasons if invalid. A URL is
    fetched under the node's network rules (config.yaml network: https, its CA bundle, no loopback or private
    address unless allow_private)."""
    w = _wallet(home)
    if source.startswith(("https://", "http://")):
        from .inbox import MAX_BYTES
        # the node's own rules (not a plain client): the address is checked when the name is resolved and again on
        # the connected socket, every redirect too, so a URL cannot make the node fetch from its own network
        fetcher = w._node.fetcher()
        fetcher.max_bytes = MAX_BYTES             # a credential, as large as the inbox takes one
        try:
            data = fetcher.get(source, accept="application/vc+jwt, application/json").body
        except CeadError as exc:
            _fail("input.unreadable", exc.message, cause=exc.code)
    else:
        try:
            data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
        except OSError as exc:
            _fail("input.unreadable", f"Cannot read {source!r}: {exc.strerror or exc}")
    result = w.import_credential(data, source=source)
    if not result.ok:
        click.echo(json.dumps({"refused": [p.to_dict() for p in result.problems]}, indent=2), err=True)
        sys.exit(EXIT_REFUSED)
    _print({"stored": result.record.summary(), "duplicate": result.duplicate})


@wallet.command("list")
@click.option("--type", "type_", help="Only credentials of this type, e.g. DataSharingApprovalCredential.")
@click.option("--dataset", help="Only credentials naming this dataset IRI.")
@click.option("--purpose", help="Only credentials naming this purpose IRI.")
@click.option("--counterparty", help="Only credentials involving this DID (issuer or named party).")
@click.option("--expiring-within", type=click.IntRange(0, MAX_DAYS), help="Only credentials ending within DAYS.")
@click.option("--warn-days", type=click.IntRange(0, MAX_DAYS), default=None,
              help="Warn about credentials ending within DAYS (default: the node's wallet.expiry_warning_days, 30).")
@click.option("--check-status", is_flag=True, help="Re-read every credential's status list first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@home_option
def list_(type_, dataset, purpose, counterparty, expiring_within, warn_days, check_status, as_json, home) -> None:
    """List held credentials, with warnings (expiring, expired, revoked or suspended since receipt)."""
    w = _wallet(home)
    if check_status:
        w.check_status()
    rows = w.search(type=type_, dataset=dataset, purpose=purpose, counterparty=counterparty,
                    expiring_within=expiring_within)
    warnings = w.warnings(days=warn_days)
    terms = {r.id: w.terms(r.id) for r in rows}
    if as_json:
        _print({"credentials": [{**r.summary(), "datasets": terms[r.id].get("dataset", []),
                                 "purposes": terms[r.id].get("purpose", [])} for r in rows],
                "warnings": [p.to_dict() for p in warnings]})
        return
    for r in rows:
        s = r.summary()
        click.echo(f"{s['id']}  {','.join(s['types']) or 'VerifiableCredential':<36} {s['issuer']}  "
                   f"until {s['validUntil'] or '-'}  status {s['statusNow']}")
        for label, kind in (("datasets", "dataset"), ("purposes", "purpose")):
            if terms[r.id].get(kind):
                click.echo(f"    {label}: {_few(terms[r.id][kind])}")
    if not rows:
        click.echo("No credentials.")
    for p in warnings:
        click.echo(f"warning {p.code}: {p.message}", err=True)


@wallet.command("show")
@click.argument("ident")
@click.option("--raw", is_flag=True, help="Print the credential exactly as held (JSON or JWT).")
@home_option
def show(ident: str, raw: bool, home: Path | None) -> None:
    """Show one credential (by local id, unique id prefix or credential id)."""
    w = _wallet(home)
    record = w.get(ident)
    if record is None:
        _fail("wallet.not_found", f"No credential {ident!r} in the wallet.")
    if raw:
        click.echo(record.raw)
        return
    _print({**record.summary(), "terms": w.terms(record.id), "credential": record.document})


@wallet.command("remove")
@click.argument("ident")
@home_option
def remove(ident: str, home: Path | None) -> None:
    """Delete a credential from the wallet."""
    if not _wallet(home).delete(ident):
        _fail("wallet.not_found", f"No credential {ident!r} in the wallet.")
    click.echo(f"removed {ident}")


@wallet.command("present")
@click.option("--dataset", help="Dataset IRI: present the approval covering it and what that approval relies on.")
@click.option("--purpose", help="Purpose IRI (with --dataset).")
@click.option("--definition", type=click.Path(dir_okay=False, path_type=Path),
              help="A DIF Presentation Exchange 2.0 presentation definition (JSON file).")
@click.option("--audience", "--domain", "audience", help="The verifier (aud / proof domain).")
@click.option("--nonce", "--challenge", "nonce", help="The verifier's challenge (nonce / proof challenge).")
@click.option("--format", "fmt", type=click.Choice(["jwt", "ldp"]), default="jwt", show_default=True)
@click.option("--lifetime", type=click.IntRange(1, 300), default=60, show_default=True)
@home_option
def present(dataset, purpose, definition, audience, nonce, fmt, lifetime, home) -> None:
    """Print a presentation of the credentials a verifier needs."""
    from .present import build_presentation, select_credentials
    definition_doc = None
    if definition is not None:
        text = _read_text(definition, f"the definition {str(definition)!r}")
        try:
            definition_doc = json.loads(text)
        except ValueError as exc:
            _fail("input.unreadable", f"Cannot read the definition {str(definition)!r}: {exc}")
        except RecursionError:
            _fail("input.invalid", f"The definition {str(definition)!r} is JSON nested too deeply.")
        definition_doc = definition_doc.get("presentation_definition", definition_doc) \
            if isinstance(definition_doc, dict) else definition_doc
    w = _wallet(home)
    try:
        credentials = select_credentials(w, dataset=dataset, purpose=purpose, definition=definition_doc)
        vp = build_presentation(w.holder, w.key, w.kid, credentials, format=fmt, audience=audience, nonce=nonce,
                                lifetime=lifetime)
    except CeadError as exc:
        _fail_with(exc)
    click.echo(vp if isinstance(vp, str) else json.dumps(vp, indent=2))


# ---- QR codes ----------------------------------------------------------------------------------------------------
@wallet.group()
def qr() -> None:
    """QR codes: presentation requests, credential offers, printable summaries."""


def _image_format(output: Path) -> str:
    """``png`` or ``svg`` from the output file's extension; any other is bad input (nothing is written)."""
    fmt = output.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg"):
        _fail("input.invalid", f"The output file {str(output)!r} must end in .png or .svg (the image formats "
              "written); nothing was written.")
    return fmt


def _write_qr(text: str, output: Path | None) -> None:
    from . import qr as q
    if output is None:
        click.echo(text)
        return
    fmt = _image_format(output)
    _write(output, q.qr_svg(text).encode() if fmt == "svg" else q.qr_png(text))
    click.echo(text)


@qr.command("request")
@click.option("--client-id", required=True, help="The verifier's client_id (e.g. its DID or redirect URI).")
@click.option("--request-uri", required=True,
              help="HTTPS URL of the signed request object (http only for localhost, when testing).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="PNG or SVG file (.png, .svg).")
def qr_request(client_id: str, request_uri: str, output: Path | None) -> None:
    """An OpenID4VP presentation request link (openid4vp://?client_id=...&request_uri=...)."""
    from . import qr as q
    try:
        _write_qr(q.presentation_request_uri(client_id, request_uri), output)
    except CeadError as exc:
        _fail_with(exc)


@qr.command("offer")
@click.option("--issuer", "credential_issuer", required=True,
              help="The credential issuer's HTTPS URL (http only for localhost, when testing).")
@click.option("--config", "configs", multiple=True, required=True, help="A credential configuration id.")
@click.option("--pre-authorized-code", help="Pre-authorized code grant.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="PNG or SVG file (.png, .svg).")
def qr_offer(credential_issuer: str, configs: tuple[str, ...], pre_authorized_code: str | None,
             output: Path | None) -> None:
    """An OpenID4VCI credential offer link."""
    from . import qr as q
    try:
        _write_qr(q.credential_offer_uri(credential_issuer, list(configs), pre_authorized_code=pre_authorized_code),
                  output)
    except CeadError as exc:
        _fail_with(exc)


@qr.command("summary")
@click.argument("ident")
@click.option("--verify-url", required=True, help="Where the QR code leads: a page that verifies the credential.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output file: .png or .svg.")
@home_option
def qr_summary(ident: str, verify_url: str, output: Path, home: Path | None) -> None:
    """A printable summary of a held approval or certification, with a QR code to its verification."""
    from . import qr as q
    fmt = _image_format(output)
    from .names import Directory
    wallet = _wallet(home)
    record = wallet.get(ident)
    if record is None:
        _fail("wallet.not_found", f"No credential {ident!r} in the wallet.")
    names = Directory.for_pages(wallet._node, wallet)   # organisations, datasets and terms by name, as the pages
    try:
        if fmt == "svg":
            _write(output, q.summary_svg(record.document, verify_url, names))
        else:
            _write(output, q.summary_png(record.document, verify_url, names))
    except CeadError as exc:
        _fail_with(exc)
    click.echo(str(output))


# ---- the pipeline client for scripts -----------------------------------------------------------------------------
def _manifest_file(path: Path) -> dict:
    """The JSON object of ``--manifest FILE``; unreadable is ``input.unreadable``, anything else ``input.invalid``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        _fail("input.unreadable", f"Cannot read the manifest {str(path)!r}: {exc.strerror or exc}")
    except UnicodeDecodeError:
        _fail("input.invalid", f"The manifest {str(path)!r} is not UTF-8 text.")
    except ValueError as exc:
        _fail("input.invalid", f"The manifest {str(path)!r} is not JSON: {exc}")
    except RecursionError:
        _fail("input.invalid", f"The manifest {str(path)!r} is JSON nested too deeply.")
    if not isinstance(data, dict):
        _fail("input.invalid", f"The manifest {str(path)!r} must be a JSON object (e.g. {{\"rowCount\": 5000}}), "
              f"not a JSON {type(data).__name__}.")
    return data


@click.command(cls=_Command)
@click.argument("url")
@click.option("--dataset", help="The dataset IRI being fetched.")
@click.option("--purpose", help="The purpose IRI of the transfer.")
@click.option("--discover", is_flag=True,
              help="Ask the gateway what to present (its published presentation definition); no --dataset needed.")
@click.option("--row-count", type=click.IntRange(min=0),
              help="The most rows asked for (the manifest's rowCount): needed when the approval limits rows per "
                   "transfer (maxRowsPerTransfer), and at most that limit.")
@click.option("--manifest", "manifest_path", type=click.Path(dir_okay=False, path_type=Path),
              help="A JSON object laid over the transfer manifest the wallet makes (dataset, purpose, recipient, "
                   "columns from the approval), e.g. {\"columns\": [...], \"rowCount\": 5000, \"protocolRun\": [...]}.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the body here.")
@click.option("--ca-bundle", type=click.Path(exists=True, dir_okay=False),
              help="CA certificates to trust (default: the node's network.ca_bundle, then the system's).")
@home_option
def fetch(url: str, dataset: str | None, purpose: str | None, discover: bool, row_count: int | None,
          manifest_path: Path | None, output: Path | None, ca_bundle: str | None, home: Path | None) -> None:
    """GET URL from a Cead-protected data API, presenting the approval for DATASET (or, with --discover, what the
    gateway's presentation definition asks for). A denial exits 1 with the verifier's reasons; so does nothing
    usable to present (no usable approval, or what it rests on not held, ended, suspended or revoked), before
    anything is sent. Bad input or a setup that cannot be used exits 2."""
    from schemas.vocab import expand

    from .client import TransferDenied
    from .client import fetch as do_fetch
    from .present import manifest_overlay
    if dataset is None and not discover:
        _fail("input.invalid", "Give --dataset IRI, or --discover to ask the gateway what to present.")
    fields = _manifest_file(manifest_path) if manifest_path is not None else None
    if fields is not None and dataset is not None and isinstance(fields.get("dataset"), str) \
            and expand(fields["dataset"]) != expand(dataset):
        _fail("input.invalid", f"The manifest names the dataset {fields['dataset']!r}, but --dataset is {dataset!r}.")
    if fields is not None and row_count is not None and fields.get("rowCount", row_count) != row_count:
        _fail("input.invalid", f"Two row counts: rowCount {fields['rowCount']!r} in --manifest and --row-count "
              f"{row_count}; give one.")
    try:
        fields = manifest_overlay(fields, row_count)
    except CeadError as exc:
        _fail_with(exc)
    w = _wallet(home)
    try:
        response = do_fetch(w, url, dataset=dataset, purpose=purpose, verify=_verify_for(w._node, ca_bundle),
                            discover=discover, manifest_fields=fields)
    except TransferDenied as exc:
        message = exc.message
        if "rowCount" not in (fields or {}) and any(r.code == "transfer.row_count_missing" for r in exc.reasons):
            message += " (The approval limits rows per transfer: give --row-count N, the most rows asked for.)"
        _fail(exc.code, message, EXIT_REFUSED, **exc.detail)
    except CeadError as exc:
        _fail_with(exc)
    if output is None:        # the body is what it wrote, on stdout, for a pipe
        sys.stdout.buffer.write(response.content)
    else:
        _write(output, response.content)
        kind = (getattr(response, "headers", None) or {}).get("Content-Type") or "no content type"
        click.echo(f"Wrote {len(response.content)} bytes ({kind}) from {url}, allowed by its gateway, to {output}.")


# ---- delivering a credential, and data-sharing requests from the command line -----------------------------------
def _node(home: Path | None, unlock: bool = False):
    """The node of ``--home`` (its key unlocked with $CEAD_PASSPHRASE when ``unlock``)."""
    from issuer.node import Node, passphrase_from_env
    try:
        node = Node.open(home)
        if unlock:
            passphrase = passphrase_from_env()
            if not passphrase:
                _fail("key.passphrase_required", "This command signs as the node: set CEAD_PASSPHRASE.")
            node = Node.open(home, passphrase)
            node.signing_key()
        return node
    except CeadError as exc:
        _fail_with(exc)


def _credential_file(path: str) -> dict | str:
    """A credential from a file: JSON (a Data Integrity credential, or an EnvelopedVerifiableCredential) or a
    compact vc+jwt."""
    text = _read_text(path, repr(path)).strip()
    if not text.startswith(("{", "[")) and text.count(".") == 2:
        return text
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        _fail("input.invalid", f"{path!r} is neither a JSON credential nor a vc+jwt.")
    if isinstance(data, dict) and "verifiableCredential" in data:       # what VC-API's issue endpoint answers
        data = data["verifiableCredential"]
    if not isinstance(data, dict):
        _fail("input.invalid", f"{path!r} must hold one credential (a JSON object or a vc+jwt).")
    from verifier.credential import unwrap_enveloped
    return unwrap_enveloped(data)


def _verify_for(node, ca_bundle: str | None) -> str | bool:
    """TLS trust for talking to other nodes: --ca-bundle, else the node's network.ca_bundle, else the system's."""
    return ca_bundle or (node.network.ca_bundle if node is not None else None) or True


ca_bundle_option = click.option("--ca-bundle", type=click.Path(exists=True, dir_okay=False), default=None,
                                help="CA certificates to trust (default: the node's network.ca_bundle).")


@click.command(cls=_Command)
@click.argument("file")
@click.option("--to", "inbox", required=True, help="The recipient node's inbox URL, e.g. https://HOST:PORT/inbox.")
@ca_bundle_option
@home_option
def deliver(file: str, inbox: str, ca_bundle: str | None, home: Path | None) -> None:
    """Deliver a credential this node issued (FILE: JSON or vc+jwt, as `cead issue ... --out` wrote it) to
    another node's inbox, in a presentation signed by this node. Needs $CEAD_PASSPHRASE."""
    from .client import deliver as send
    credential = _credential_file(file)
    node = _node(home, unlock=True)
    try:
        answer = send(node.did, node.key, node.verification_method_id, [credential], inbox,
                      verify=_verify_for(node, ca_bundle))
    except CeadError as exc:
        _fail(exc.code, exc.message, EXIT_REFUSED if exc.code.endswith(".refused") else EXIT_BAD_INPUT,
              **exc.detail)
    stored = answer.get("stored") or []
    ids = ", ".join(s.get("credentialId") or s.get("id") or "?" for s in stored)
    click.echo(f"Delivered {ids or file} to {inbox}.")


@click.group("request", cls=_Group)
def request_group() -> None:
    """Data-sharing requests: create and send one (the requester), list and decide them (the data holder's IAO)."""


@request_group.command("create")
@click.option("--dataset", "datasets", multiple=True, required=True, help="Dataset IRI asked for (repeatable).")
@click.option("--item", "items", multiple=True, required=True, help="A data item (column) asked for (repeatable).")
@click.option("--purpose", "purposes", multiple=True, required=True,
              help="Purpose IRI, e.g. cead:HomelessnessStatistics (repeatable).")
@click.option("--legal-basis", "legal_bases", multiple=True,
              default=("https://www.legislation.gov.uk/eur/2016/679/article/6/1/e",), show_default=True,
              help="Your lawful basis: a legislation.gov.uk IRI (repeatable). The default is UK GDPR Art 6(1)(e), "
                   "a task in the public interest.")
@click.option("--regime", default="UKGDPR", show_default=True, help="UKGDPR or DPA2018Part3 (law enforcement).")
@click.option("--cadence", required=True, help="How often, as an ISO 8601 repeating interval, e.g. "
                                               "R/2026-01-01T00:00:00Z/P3M (quarterly).")
@click.option("--agreement", "agreement_file", type=click.Path(exists=True, dir_okay=False), required=True,
              help="The data-sharing agreement document; the request pins it by its SHA-256 digest.")
@click.option("--agreement-id", default=None, help="The agreement's identifier (default: a new urn:uuid).")
@click.option("--justification", required=True, help="Why you need the data, in plain words.")
@click.option("--reply-to", default=None, help="Your inbox, where the approval is delivered (default: this node's "
                                              "public URL + /inbox).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The request file.")
@home_option
def request_create(datasets, items, purposes, legal_bases, regime, cadence, agreement_file, agreement_id,
                   justification, reply_to, out, home) -> None:
    """Write a data-sharing request from this node (checked as the data holder will check it)."""
    import base64
    import hashlib
    import uuid
    from .sharing import parse_request
    node = _node(home)
    digest = hashlib.sha256(Path(agreement_file).read_bytes()).digest()
    if reply_to is None:
        try:
            reply_to = node.public_url + "/inbox"
        except CeadError as exc:
            _fail(exc.code, exc.message + " Or give --reply-to URL.")
    body = {"requester": node.did, "datasets": list(datasets), "dataItems": list(items), "purposes": list(purposes),
            "lawfulBasis": {"party": node.did, "regime": regime, "legalBases": list(legal_bases)},
            "cadence": cadence,
            "agreement": {"id": agreement_id or f"urn:uuid:{uuid.uuid4()}",
                          "digest": "sha256-" + base64.urlsafe_b64encode(digest).decode().rstrip("=")},
            "justification": justification, "replyTo": reply_to}
    try:
        body = parse_request(body).to_json()
    except CeadError as exc:
        _fail_with(exc)
    _write(out, json.dumps(body, indent=2) + "\n")
    click.echo(f"Wrote the request for {', '.join(datasets)} to {out}; send it with "
               f"`cead request send {out} --to URL`.")


@request_group.command("send")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--to", "url", required=True, help="The data holder's node (https://HOST:PORT, or its /requests URL).")
@ca_bundle_option
@home_option
def request_send(file: Path, url: str, ca_bundle: str | None, home: Path | None) -> None:
    """Send a request (from `cead request create`) to the data holder's node, with a presentation of this node's
    certifications. Prints the request's id there. Needs $CEAD_PASSPHRASE."""
    from .sharing import send_request
    text = _read_text(file, f"the request {str(file)!r}")
    try:
        body = json.loads(text)
    except (ValueError, RecursionError) as exc:
        _fail("input.unreadable", f"Cannot read the request {str(file)!r}: {exc}")
    target = url.rstrip("/")
    if not target.endswith("/requests"):
        target += "/requests"
    node = _node(home, unlock=True)
    from .store import Wallet
    try:
        answer = send_request(Wallet.from_node(node), target, body, verify=_verify_for(node, ca_bundle))
    except CeadError as exc:
        _fail(exc.code, exc.message, EXIT_REFUSED if exc.code.endswith(".refused") else EXIT_BAD_INPUT,
              **exc.detail)
    click.echo(f"Sent request {answer['id']} to {target}: {answer.get('status', 'pending')}.")


@request_group.command("list")
@click.option("--status", type=click.Choice(["pending", "approving", "reopening", "approved", "refused"]),
              help="Only requests in this state.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the ids, one a line (for scripts).")
@home_option
def request_list(status, as_json, quiet, home) -> None:
    """List the data-sharing requests this node received, pending first."""
    from .sharing import list_requests
    rows = [r for r in list_requests(_wallet(home)) if status is None or r.status == status]
    if as_json:
        _print([{"id": r.id, "status": r.status, "requester": r.requester, "receivedAt": _when(r.received_at),
                 "approval": r.approval_id, "reason": r.reason, "request": r.request,
                 "certifications": r.certification_list} for r in rows])
        return
    names = None
    if rows and not quiet:
        from .names import Directory
        wallet = _wallet(home)
        names = Directory.for_pages(wallet._node, wallet)   # who and what by name, as the decision page says them
    for r in rows:
        if quiet:
            click.echo(r.id)
            continue
        req = r.request
        click.echo(f"{r.id}  {r.status:9}  {_named(names, r.requester)}  {_few(req.get('datasets', []), names=names)}"
                   f"  for {_few(req.get('purposes', []), names=names)}")
    if not rows and not quiet:
        click.echo("No requests.")


def _when(moment) -> str | None:
    return moment.isoformat() if moment is not None else None


@request_group.command("approve")
@click.argument("request_id")
@click.option("--subject", "subject_file", type=click.Path(exists=True, dir_okay=False), required=True,
              help="JSON/YAML: what you decide beyond the request (your lawful basis, dataCategories, dpia, "
                   "sensitivity, retention, onwardSharing, notBefore/notAfter, recipientRequirements...).")
@click.option("--delegation", default=None,
              help="Your own DelegatedAuthorityCredential: a file, or the id of one in your wallet.")
@click.option("--valid-until", default=None, help="The approval's expiry, e.g. 2027-03-31T23:59:59Z.")
@click.option("--legal-basis", "legal_bases", multiple=True,
              default=("https://www.legislation.gov.uk/eur/2016/679/article/6/1/e",), show_default=True,
              help="The discloser's own lawful basis (legislation.gov.uk IRI, repeatable), added to the requester's "
                   "when --subject gives no lawfulBases. The default is UK GDPR Art 6(1)(e).")
@click.option("--regime", default="UKGDPR", show_default=True, help="The regime of --legal-basis.")
@ca_bundle_option
@home_option
def request_approve(request_id, subject_file, delegation, valid_until, legal_bases, regime, ca_bundle,
                    home) -> None:
    """Approve a pending request: issue the approval (the guard rail checks it against your delegation, and that
    the delegation is in force) and deliver it, with the delegations it rests on, to the requester's inbox. Needs
    $CEAD_PASSPHRASE."""
    from schemas.values import load_document
    from . import sharing
    text = _read_text(subject_file, f"the approval subject {subject_file!r}")
    try:
        overrides = load_document(text, subject_file)
    except ValueError as exc:
        _fail("input.invalid", f"Cannot read the approval subject {subject_file!r}: {exc}")
    if delegation is not None and Path(delegation).is_file():
        delegation = _credential_file(delegation)
    elif delegation is not None and ":" not in delegation:
        _fail("input.unreadable", f"--delegation {delegation!r}: no such file, and not a credential id (an id is a "
              "URI, e.g. urn:uuid:...). Give the file of your own DelegatedAuthorityCredential, or its id.")
    node = _node(home, unlock=True)
    from .store import Wallet
    w = Wallet.from_node(node)
    if not isinstance(overrides, dict):
        _fail("input.invalid", f"The approval subject {subject_file!r} must be a mapping of fields.")
    try:
        if "lawfulBases" not in overrides:       # the requester's (from the request) and the discloser's own
            draft = sharing.draft_subject(node, w, request_id, delegation=delegation)
            overrides["lawfulBases"] = [*draft["lawfulBases"], {"party": draft["discloser"], "regime": regime,
                                                                 "legalBases": list(legal_bases)}]
        done = sharing.approve(node, w, request_id, overrides, delegation=delegation, valid_until=valid_until,
                               issued_by="cli", verify=_verify_for(node, ca_bundle))
    except CeadError as exc:
        _fail(exc.code, exc.message, EXIT_BAD_INPUT if exc.code in _NOT_DECIDABLE else EXIT_REFUSED, **exc.detail)
    click.echo(f"Approved request {request_id}: issued {done.issued.id} and delivered it to "
               f"{done.request.request['replyTo']}.")


@request_group.command("deliver")
@click.argument("request_id")
@ca_bundle_option
@home_option
def request_redeliver(request_id, ca_bundle, home) -> None:
    """Deliver an approved request's approval again (after a failed delivery)."""
    from . import sharing
    node = _node(home, unlock=True)
    from .store import Wallet
    try:
        done = sharing.redeliver(node, Wallet.from_node(node), request_id, verify=_verify_for(node, ca_bundle))
    except CeadError as exc:
        _fail(exc.code, exc.message, EXIT_BAD_INPUT if exc.code in _NOT_DECIDABLE else EXIT_REFUSED, **exc.detail)
    click.echo(f"Delivered {done.request.approval_id} again to {done.request.request['replyTo']}.")


@request_group.command("refuse")
@click.argument("request_id")
@click.option("--reason", required=True, help="Why (kept with the request).")
@home_option
def request_refuse(request_id, reason, home) -> None:
    """Refuse a pending request, with the reason."""
    from . import sharing
    try:
        sharing.refuse(_wallet(home), request_id, reason, by="cli")
    except CeadError as exc:
        _fail_with(exc)
    click.echo(f"Refused request {request_id}.")


# ---- the dataset catalogue ---------------------------------------------------------------------------------------
@click.group("catalogue", cls=_Group)
def catalogue() -> None:
    """The organisation's DCAT dataset catalogue: import it (CKAN, DCAT-AP, DCAT 3), list it, export it for a
    gateway's trust policy."""


def _publisher_map(values: tuple[str, ...]) -> dict[str, str]:
    mapping = {}
    for value in values:
        iri, sep, did = value.partition("=")
        if not sep or not iri or not did.startswith("did:"):
            _fail("input.invalid", f"--publisher {value!r} must be PUBLISHER_IRI=DID (the controller DID of that "
                  "publisher's datasets).")
        mapping[iri] = did
    return mapping


@catalogue.command("import")
@click.argument("source")
@click.option("--format", "fmt", type=click.Choice(["json-ld", "turtle", "xml"]), default=None,
              help="The RDF format (default: from the file name or the server's Content-Type).")
@click.option("--publisher", "publishers", multiple=True, metavar="IRI=DID",
              help="Map a publisher to its controller DID (repeat); a gateway's policy takes controllers from it.")
@home_option
def catalogue_import(source: str, fmt: str | None, publishers: tuple[str, ...], home: Path | None) -> None:
    """Import or refresh a DCAT catalogue from an https URL or a file. Datasets that left it are flagged as removed
    (never deleted), and held credentials naming them are listed: they keep working, but someone should look."""
    from issuer import catalogue as cat
    from issuer.node import Node
    from .store import Wallet
    mapping = _publisher_map(publishers)
    try:
        node = Node.open(home)
        result = cat.import_catalogue(node, source, fmt=fmt, publishers=mapping)
    except CeadError as exc:
        _fail_with(exc)
    click.echo(f"Imported {result.total} datasets from {source}: {len(result.added)} added, {len(result.updated)} "
               f"updated, {len(result.removed)} removed (flagged, not deleted).")
    if result.removed:
        wallet = Wallet.from_node(node)
        for iri in result.removed:
            for record in wallet.search(dataset=iri):
                click.echo(f"  {record.credential_id} ({', '.join(record.summary()['types'])}) names {iri}, which "
                           "left the catalogue.", err=True)


@catalogue.command("list")
@click.option("--removed", is_flag=True, help="Include datasets that left their catalogue.")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@home_option
def catalogue_list(removed: bool, as_json: bool, home: Path | None) -> None:
    """The datasets this node knows from its catalogues: IRI, title, publisher, contact (the IAO)."""
    from dataclasses import asdict
    from issuer import catalogue as cat
    from issuer.node import Node
    try:
        rows = cat.entries(Node.open(home), include_removed=removed)
    except CeadError as exc:
        _fail_with(exc)
    if as_json:
        _print([{**asdict(r.dataset), "source": r.source, "controller": r.controller, "removedAt": r.removed_at}
                for r in rows])
        return
    for row in rows:
        ds = row.dataset
        flag = f"  [removed {row.removed_at}]" if row.removed_at else ""
        who = ds.contact_name or ds.contact_email or "-"
        click.echo(f"{ds.iri}  {ds.title or '(untitled)'}  publisher: {ds.publisher_name or ds.publisher or '-'}  "
                   f"contact: {who}{flag}")


@catalogue.command("export")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The JSON-LD file to write (name it in a gateway policy's catalogues:).")
@click.option("--id", "catalogue_iri", required=True, help="The catalogue's IRI.")
@home_option
def catalogue_export(out: Path, catalogue_iri: str, home: Path | None) -> None:
    """Write the catalogue (datasets in force, with controller DIDs and series) as JSON-LD a gateway reads."""
    from issuer import catalogue as cat
    from issuer.node import Node
    try:
        rows = cat.entries(Node.open(home))
    except CeadError as exc:
        _fail_with(exc)
    _write(out, json.dumps(cat.to_jsonld(rows, catalogue_iri), indent=2))
    click.echo(f"Wrote {len(rows)} datasets to {out}.")
# ---- OpenID for Verifiable Credential Issuance: offering and collecting -------------------------------------------
@click.command("offer", cls=_Command)
@click.argument("credential_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--tx-code", is_flag=True,
              help="Also require a six-digit transaction code, printed here: give it to the person by another "
                   "channel (a call, a letter), never beside the QR code.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the offer as a QR code (.png or .svg) too.")
@home_option
def offer(credential_file: Path, tx_code: bool, output: Path | None, home: Path | None) -> None:
    """Offer a credential this node issued to its subject's wallet (OpenID4VCI, pre-authorised code).

    CREDENTIAL_FILE is the signed credential as `cead issue --out` wrote it. The offer is single use and expires
    in ten minutes; only a wallet that proves control of the credential subject's DID can collect it."""
    from issuer import offers
    from issuer.node import Node
    if output is not None:
        _image_format(output)
    text = _read_text(credential_file, repr(str(credential_file))).strip()
    try:
        credential = json.loads(text) if text.startswith("{") else text
    except ValueError:
        _fail("input.invalid", f"{str(credential_file)!r} is neither a JSON credential nor a compact JWT.")
    try:
        node = Node.open(home)
        made = offers.make_offer(node, credential, tx_code=tx_code)
    except CeadError as exc:
        _fail_with(exc)
    if output is not None:
        _write_qr(made["uri"], output)
    else:
        click.echo(made["uri"])
    click.echo(f"Offered {made['credential']} to its subject's wallet until {made['expires']}"
               + (f"; transaction code {made['tx_code']} (give it separately)" if "tx_code" in made else "")
               + (f"; QR code in {output}" if output else "") + ".", err=True)


@wallet.command("receive")
@click.argument("offer_uri")
@click.option("--tx-code", default=None, help="The transaction code the issuer gave you separately, if any.")
@home_option
def receive(offer_uri: str, tx_code: str | None, home: Path | None) -> None:
    """Collect an offered credential (an openid-credential-offer:// link or QR code's text) into this wallet,
    proving control of this node's DID; the credential is verified before it is stored."""
    from issuer.node import Node
    from .offers import collect
    from .store import Wallet
    try:
        node = Node.open(home)
        result = collect(Wallet.from_node(node), offer_uri, tx_code=tx_code, fetcher=node.fetcher())
    except CeadError as exc:
        _fail_with(exc)
    if not result.ok:
        click.echo(json.dumps({"refused": [p.to_dict() for p in result.problems]}, indent=2), err=True)
        sys.exit(EXIT_REFUSED)
    summary = result.record.summary()
    kinds = ", ".join(summary["types"]) or "credential"
    click.echo(f"Received {kinds} {summary['credentialId']} from {summary['issuer']} into the wallet "
               f"(wallet id {summary['id']}).")


@click.group("oid4vp", cls=_Group)
def oid4vp() -> None:
    """Ask a person's wallet to present a credential (OpenID for Verifiable Presentations), and read the answer."""


@oid4vp.command("request")
@click.option("--type", "types", multiple=True, required=True,
              help="A credential type to ask for (repeat for several types in one credential), e.g. "
                   "DelegatedAuthorityCredential.")
@click.option("--format", "fmt", type=click.Choice(["jwt_vc_json", "ldp_vc"]), default="jwt_vc_json",
              show_default=True, help="The credential format to ask for.")
@click.option("--any-type", is_flag=True,
              help="Allow a --type Cead does not define (another scheme's credential, spelled exactly as its "
                   "credentials carry it); without it such a type is refused as a likely typo.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the request as a QR code (.png or .svg) too.")
@home_option
def oid4vp_request(types: tuple[str, ...], fmt: str, any_type: bool, output: Path | None, home: Path | None) -> None:
    """Make a presentation request (valid ten minutes): prints the openid4vp:// link, and its state on stderr
    (read the answer with `cead oid4vp result STATE`)."""
    from issuer import oid4vp as rp
    from issuer.node import Node
    if output is not None:
        _image_format(output)
    try:
        made = rp.make_request(Node.open(home), list(types), fmt=fmt, any_type=any_type)
    except CeadError as exc:
        _fail_with(exc)
    _write_qr(made["uri"], output) if output is not None else click.echo(made["uri"])
    click.echo(f"Asked for a {' '.join(types)} until {made['expires']}; state {made['state']}"
               + (f"; QR code in {output}" if output else "") + ".", err=True)


@oid4vp.command("result")
@click.argument("state")
@home_option
def oid4vp_result(state: str, home: Path | None) -> None:
    """What became of a presentation request: pending, verified (who presented what) or refused (why)."""
    from issuer import oid4vp as rp
    from issuer.node import Node
    try:
        outcome = rp.outcome_of(Node.open(home), state)
    except CeadError as exc:
        _fail_with(exc)
    _print(outcome)
    if outcome["status"] == "refused":
        sys.exit(EXIT_REFUSED)


@wallet.command("respond")
@click.argument("request_uri")
@home_option
def respond(request_uri: str, home: Path | None) -> None:
    """Answer an openid4vp:// presentation request with a credential this wallet holds (bound to the request)."""
    from issuer.node import Node
    from .oid4vp import respond as answer
    from .store import Wallet
    try:
        node = Node.open(home)
        done = answer(Wallet.from_node(node), request_uri, fetcher=node.fetcher())
    except CeadError as exc:
        _fail_with(exc)
    click.echo(f"Presented {', '.join(done['presented'])} to {done['verifier']}.")


# ---- precedents --------------------------------------------------------------------------------------------------
@click.group("precedents", cls=_Group)
def precedents_group() -> None:
    """Earlier decisions, this node's and its peers' (signed feeds): follow them and find the nearest."""


@precedents_group.command("refresh")
@home_option
def precedents_refresh(home: Path | None) -> None:
    """Fetch, verify and store every feed in config.yaml precedents.follow (one failing peer never stops the rest)."""
    from issuer.node import Node
    from . import precedents
    from .store import Wallet
    try:
        node = Node.open(home)
        results = precedents.refresh(node, Wallet.from_node(node))
    except CeadError as exc:
        _fail_with(exc)
    for url, outcome in results.items():
        click.echo(f"{url}: {outcome} decision(s) stored" if isinstance(outcome, int) else f"{url}: {outcome}")
    if not results:
        click.echo("No feeds to follow (config.yaml precedents.follow is empty).")


@precedents_group.command("search")
@click.argument("request_id")
@click.option("-k", "count", type=click.IntRange(1, 50), default=5, show_default=True, help="How many to show.")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@home_option
def precedents_search(request_id: str, count: int, as_json: bool, home: Path | None) -> None:
    """The earlier decisions nearest to a received request, own and followed, with what they share."""
    from . import precedents
    from . import sharing
    wallet = _wallet(home)
    try:
        row = sharing.get_request(wallet, request_id)
        near = precedents.nearest(wallet, dict(row.request, _id=row.id), k=count, requester=row.requester)
    except CeadError as exc:
        _fail_with(exc)
    if as_json:
        _print(near)
        return
    if not near:
        click.echo("No earlier decision is near this request.")
    for item in near:
        who = "this node" if item["mine"] else item["decider"]
        click.echo(f"{item['score']:.2f}  {item['outcome']:8}  {item['decidedAt'] or '':20}  by {who}")
        for why in item["why"]:
            click.echo(f"        {why}")
        if item.get("reasons"):
            click.echo(f"        reasons: {item['reasons']}")


@request_group.command("agreement")
@click.argument("request_id")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The .docx file to write.")
@home_option
def request_agreement(request_id: str, out: Path, home: Path | None) -> None:
    """Draft the data sharing agreement for a received request as a Word document (structured on the ICO Data
    Sharing Code's contents); prints its digest, which the approval's agreement.digest pins."""
    from issuer.node import Node
    from . import agreements
    from .store import Wallet
    if out.suffix.lower() != ".docx":
        _fail("input.invalid", f"--out {str(out)!r} must end in .docx; nothing was written.")
    try:
        node = Node.open(home)
        data, digest = agreements.agreement_docx(node, Wallet.from_node(node), request_id)
    except CeadError as exc:
        _fail_with(exc)
    _write(out, data)
    click.echo(f"Wrote the agreement for request {request_id} to {out} (digest {digest}).")


@request_group.command("suggest")
@click.argument("justification")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
def request_suggest(justification: str, as_json: bool) -> None:
    """Suggest DPV purposes (and the bases public bodies usually rely on) for a justification, offline. A
    suggestion only: what you choose is checked like anything else."""
    from .suggest import suggest_purposes
    if not re.search(r"\w", justification):
        _fail("input.invalid", "The justification has no words to suggest a purpose from: say why the data is "
              "needed, in your own words, e.g. cead request suggest \"quarterly homelessness statistics\".")
    found = suggest_purposes(justification)
    if as_json:
        _print(found)
        return
    if not found:
        click.echo("No purpose matches these words; choose one from the vocabulary (docs/vocabulary.md).")
    for item in found:
        click.echo(f"{item['purpose']}  ({item['label']}; matched: {', '.join(item['matched']) or '-'})  "
                   f"usual basis: {', '.join(item['usualBases'])}")


@request_group.command("board-pack")
@click.argument("request_id")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The file to write: .pdf or .html.")
@home_option
def request_board_pack(request_id: str, out: Path, home: Path | None) -> None:
    """The information-governance board pack for a received request (who asks, what for, the ICO checklist,
    precedents, the decision so far) as PDF or HTML."""
    from . import boardpack
    kind = out.suffix.lower()
    if kind not in (".pdf", ".html"):
        _fail("input.invalid", f"--out {str(out)!r} must end in .pdf or .html; nothing was written.")
    from issuer.node import Node
    from .store import Wallet
    try:
        node = Node.open(home)
        wallet = Wallet.from_node(node)
        data = (boardpack.board_pack_pdf(node, wallet, request_id) if kind == ".pdf"
                else boardpack.board_pack_html(node, wallet, request_id))
    except CeadError as exc:
        _fail_with(exc)
    _write(out, data)
    click.echo(f"Wrote the board pack for request {request_id} to {out}.")
