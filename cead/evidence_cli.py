"""Evidence commands: `cead receipts list|show|verify` (receipts kept at this node: as provider or recipient),
`cead audit NODE_URL` (an auditor's check of another organisation's log, with a CSV and printable HTML report) and
`cead witness key` (the key a witness's co-signatures are checked with, for `cead audit --witness`).

Exit codes: 0 done (audit: every check passed), 1 a receipt that does not verify or an audit that found problems,
2 bad input (unknown receipt, no node home, unreachable node). Errors are one JSON line on stderr."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from verifier.results import CeadError

home_option = click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar="CEAD_HOME",
                           default=None, help="The node home (default: $CEAD_HOME or ./cead-home).")


def _fail(exc: CeadError, exit_code: int = 2) -> None:
    click.echo(json.dumps({"error": {"code": exc.code, "message": exc.message}}), err=True)
    sys.exit(exit_code)


def _node(home):
    from issuer.node import Node
    try:
        return Node.open(home, migrate=True)
    except CeadError as exc:
        _fail(exc)


@click.group()
def receipts() -> None:
    """Decision receipts kept by this node: those its own gateway signed ("signed here"; --side provider) and the
    copies it received from another organisation's gateway, whichever way the data moved ("copy received"; --side
    recipient)."""


# what `cead receipts list` says for each stored side: who signed the receipt, not which way the data moved (a
# provider pushing data keeps the copy the recipient's gateway signed: a copy received, stored on the side
# "recipient"). The stored names, and --side, stay as they were: scripts use them.
SIDE_WORDS = {"provider": "signed here", "recipient": "copy received"}
SIGNATURE_WORDS = {
    "verified": "signature verified",
    "invalid": "SIGNATURE INVALID",
    "unverified": "signature not checked: signer unreachable when it arrived (try `cead receipts verify {id}` "
                  "later)",
    "uncheckable": "signature not checked: signer not named by a DID (cannot be checked against a DID document)",
}


@receipts.command("list")
@click.option("--approval", default=None, help="Only receipts for decisions under this approval id.")
@click.option("--side", type=click.Choice(["provider", "recipient"]), default=None,
              help="provider: only the receipts this node's own gateway signed (listed as \"signed here\"); "
                   "recipient: only the copies it received from another organisation's gateway, whether it pulled "
                   "data or pushed it (listed as \"copy received\").")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON instead of a table (side: provider or recipient, as --side names them; group: "
                   "approval, noApproval or withoutPresentation, the group the table lists it in; reasons: its "
                   "reason codes).")
@home_option
def list_(approval, side, as_json, home) -> None:
    """List stored receipts, oldest first, grouped by the approval they were made under; then those refused before
    an approval was found (a presentation was sent, but no approval in it could be read or relied on); last, apart,
    requests without any presentation (probes, health checks, misconfigured clients), as `cead audit` and the
    node's /log/transfers group them. Each line: when, the
    decision, who signed the receipt ("signed here": this node's gateway; "copy received": another organisation's
    gateway, whichever way the data moved), rows, the recipient, the receipt id, and for a copy received what was
    checked as it arrived (the bytes against the receipt; the signature against the gateway's DID document)."""
    from issuer.evidence import receipts as store
    rows = store.listing(_node(home).engine, side=side, approval=approval)
    if as_json:
        click.echo(store.to_json(rows))
        return
    if not rows:
        click.echo("No receipts stored.")
        return
    from issuer.evidence.report import NOBODY
    heads = {store.NO_APPROVAL: "Refused before an approval was found (a presentation was sent, but no approval in "
                                "it could be read or relied on)",
             store.WITHOUT_PRESENTATION: "Requests without any presentation (probes, health checks, misconfigured "
                                         "clients): refused, nothing moved, nobody identified"}
    current = object()
    # as the audit report and /log/transfers group them: each approval's, then those refused before an approval
    # was found, then the requests that carried no presentation at all
    grouped = sorted(((r.group, r) for r in rows), key=lambda g: (store.GROUPS.index(g[0]), g[1].approval or "",
                                                                  g[1].at))
    for kind, row in grouped:
        if (kind, row.approval) != current:
            current = (kind, row.approval)
            click.echo(f"Approval {row.approval}" if kind == store.APPROVAL_GROUP else heads[kind])
        check = {"matches": "  bytes match", "differs": "  BYTES DIFFER from the receipt"}.get(
            row.payload_check or "", "")
        state = row.signature_state
        check += f"  {SIGNATURE_WORDS[state].format(id=row.id)}" if state in SIGNATURE_WORDS else ""
        side_words = SIDE_WORDS.get(row.side, row.side or "-")
        click.echo(f"  {row.at}  {row.decision:5}  {side_words:13}  "
                   f"rows={row.rows if row.rows is not None else '-':<6}  "
                   f"{row.holder or (NOBODY if kind == store.WITHOUT_PRESENTATION else '-')}  {row.id}{check}")


@receipts.command("show")
@click.argument("receipt_id")
@home_option
def show(receipt_id, home) -> None:
    """Print a stored receipt: what it says (its claims), the signed token itself, and (for a receipt this node's
    gateway signed) its place in the node's log with its inclusion proof, once the sequencer has logged it."""
    from issuer.evidence import receipts as store
    from verifier.receipts import receipt_form
    node = _node(home)
    try:
        row = store.get(node.engine, receipt_id)
        inclusion = store.inclusion(node, row)
        signed = receipt_form(row.token)   # alone, or one of a batch sharing a signature (docs/evidence.md)
    except CeadError as exc:
        _fail(exc)
    click.echo(json.dumps({**row.summary(), "claims": row.claims, "signed": signed, "token": row.token,
                           "inclusion": inclusion}, indent=2))


class _Seconds(click.ParamType):
    """A finite number of seconds above 0 (0 would spin a core; NaN and infinity are no waits)."""
    name = "seconds"

    def convert(self, value, param, ctx):
        import math
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds.", param, ctx)
        if not (math.isfinite(seconds) and seconds > 0):
            self.fail(f"{value!r} is not a number of seconds above 0 (e.g. 0.05).", param, ctx)
        return seconds


@receipts.command("sequence")
@click.argument("spool", type=click.Path(file_okay=False, path_type=Path))
@click.option("--once", is_flag=True, help="Log what is spooled now, then exit (default: keep running).")
@click.option("--interval", type=_Seconds(), default=0.05, show_default=True,
              help="The group-commit window in seconds (more than 0).")
@click.option("--nice", type=int, default=10, show_default=True,
              help="Lower the running sequencer's CPU priority by this much: on a busy machine decisions come first.")
@home_option
def sequence(spool, once, interval, nice, home) -> None:
    """Run the receipt sequencer: store and log, in group commits, the receipts this node's gateways spool in
    SPOOL (``issuer.evidence.spool.ReceiptSpool``), off their decisions' path. Run it as its own service."""
    import os
    import signal
    import threading
    from issuer.evidence import spool as spooling
    node = _node(home)
    if once:
        if not spool.is_dir():   # a mistyped folder would log nothing, every time, and say nothing
            raise click.BadParameter(f"{str(spool)!r} does not exist: name the folder the gateway's ReceiptSpool "
                                     "writes receipts into.", param_hint="'SPOOL'")
        click.echo(f"Logged {spooling.drain(node, spool)} receipts.")
        return
    if nice:   # the service, not a one-off drain
        os.nice(nice)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    spooling.run(node, spool, interval=interval, stop=stop)


@receipts.command("verify")
@click.argument("receipt_id")
@click.option("--payload", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="The bytes that moved: the receipt must name exactly their SHA-256.")
@home_option
def verify(receipt_id, payload, home) -> None:
    """Check a stored receipt's signature against its gateway's DID document (and, with --payload, that it is
    the receipt for those bytes)."""
    from issuer.evidence import receipts as store
    from verifier.did import Resolver
    from verifier.receipts import verify_receipt_with
    node = _node(home)
    try:
        row = store.get(node.engine, receipt_id)
        claims = verify_receipt_with(row.token, Resolver(node.fetcher()),
                                     payload=payload.read_bytes() if payload else None)
    except CeadError as exc:
        _fail(exc, 2 if exc.code == "receipt.not_found" else 1)
    click.echo(f"Receipt {claims.get('jti')} verifies: {claims.get('decision')} by {claims.get('iss')}"
               + (", and matches the payload." if payload else "."))


@click.command()
@click.argument("node_url")
@click.option("--did", default=None, help="The organisation's DID (default: the did:web of NODE_URL).")
@click.option("--witness", "witnesses", multiple=True,
              help="A witness's note verifier key (name+keyid+base64), as the witnessing organisation's "
                   "`cead witness key` prints it (obtain it from that organisation, never from the node audited); "
                   "repeat for each witness you trust.")
@click.option("--min-witnesses", type=click.IntRange(0, 32), default=0,
              help="Cosignatures each checkpoint needs from those witnesses (default 0).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              help="Folder for the report (audit-<did>.csv and .html; default: here).")
@click.option("--ca-bundle", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Extra trust anchors (PEM) for the node's HTTPS.")
@click.option("--allow-private-addresses", is_flag=True, help="Development: allow a node on a private address.")
@click.option("--names", "names_file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="JSON or YAML file of the names you know organisations and datasets by, {\"DID or IRI\": "
                   "\"Name\"}: the report shows them beside the identifiers (the log holds none).")
def audit(node_url, did, witnesses, min_witnesses, out, ca_bundle, allow_private_addresses, names_file) -> None:
    """Audit an organisation's log at NODE_URL: verify every checkpoint, rebuild the tree from every entry, list
    every approval with the transfers made under it, and write a CSV and printable HTML accountability report
    (with the DPA 2018 s.62 view of disclosures)."""
    from verifier.http import Fetcher, private_fix
    from . import audit as auditing
    fetcher = Fetcher(allow_private=allow_private_addresses, ca_bundle=ca_bundle,
                      private_fix=private_fix("`cead audit --allow-private-addresses`"))
    try:
        names = auditing.load_names(names_file) if names_file else None
        result = auditing.run(node_url, did=did, witnesses=list(witnesses), fetcher=fetcher,
                              min_witnesses=min_witnesses)
        csv_path, html_path = auditing.write_report(result, out, names)
    except CeadError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(CeadError("output.unwritable", f"Cannot write the report in {out}: {exc.strerror or exc}"))
    allowed = sum(1 for r in result.receipts() if r["meta"].get("decision") == "allow")
    relied = {r["meta"].get("approval") for r in result.receipts() if r["meta"].get("approval")}
    n_cp, n_problems = len(result.checkpoints), len(result.problems)
    verdict = (("all checks passed" + ("" if witnesses else " (witnesses not checked: no --witness given)"))
               if result.ok else f"{n_problems} problem{'s' if n_problems != 1 else ''} found")
    bare = len(result.without_presentation())   # health checks, probes: refused, nothing moved, nobody identified
    decisions = f"{len(result.receipts())} decisions" + (
        f", {bare} of them request{'s' if bare != 1 else ''} without any presentation" if bare else "")
    click.echo(f"Audited {result.did}: {result.size} entries, {n_cp} checkpoint{'s' if n_cp != 1 else ''}, "
               f"{len(result.approvals())} approvals issued here and {len(relied)} relied on, {allowed} transfers "
               f"({decisions}); {verdict}; report {csv_path} and {html_path}")
    for problem in result.problems:
        click.echo(f"  {problem.code}: {problem.message}", err=True)
    sys.exit(0 if result.ok else 1)


@click.group()
def witness() -> None:
    """This node as a witness of other organisations' logs (it co-signs their checkpoints, C2SP tlog-witness)."""


@witness.command("key")
@click.option("--all", "every", is_flag=True,
              help="Also print the keys a key rotation left in use (checkpoints co-signed before the rotation "
                   "carry those), one per line, the current key first (--did prints every key in use anyway).")
@click.option("--did", default=None,
              help="Instead of this node's key: compute the witness keys of the organisation with this DID from its "
                   "DID document (one per Ed25519 key it lists for use).")
@click.option("--ca-bundle", type=click.Path(dir_okay=False, exists=True), default=None,
              help="With --did: extra trust anchors (PEM) for the DID document's HTTPS.")
@click.option("--allow-private-addresses", is_flag=True,
              help="With --did: development: allow a DID document on a private address.")
@home_option
def witness_key(every, did, ca_bundle, allow_private_addresses, home) -> None:
    """Print this node's witness key: the C2SP note verifier key (name+keyid+base64) its co-signatures of other
    organisations' checkpoints are checked with. An auditor gives it to `cead audit NODE_URL --witness KEY`, a
    gateway lists it under its trust policy's transparency.witnesses. Send it to them yourself (in the sharing
    agreement, a signed letter): an auditor must not take a witness's key from the node being audited.

    With --did, an auditor computes the witness keys of the organisation named by that DID from its own DID
    document (the witness's name is its DID, its key an Ed25519 key of that document), to check the key the
    organisation sent."""
    from issuer.evidence import witness as witnessing
    if did:
        from verifier.did import Resolver
        from verifier.http import Fetcher, private_fix
        fetcher = Fetcher(allow_private=allow_private_addresses, ca_bundle=ca_bundle,
                          private_fix=private_fix("`cead witness key --did DID --allow-private-addresses`"))
        try:
            keys = witnessing.witness_keys_in(Resolver(fetcher).resolve(did))
        except CeadError as exc:
            _fail(exc)
        if not keys:
            _fail(CeadError("tlog.witness_key_missing", f"The DID document of {did} lists no Ed25519 key for use: "
                            "it cannot co-sign as a witness."))
    else:
        if ca_bundle or allow_private_addresses:
            raise click.UsageError("--ca-bundle and --allow-private-addresses go with --did.")
        node = _node(home)
        try:
            keys = witnessing.witness_keys(node)
        except CeadError as exc:
            _fail(exc)
        keys = keys if every else keys[:1]
    for key in keys:
        click.echo(key.vkey())


@witness.command("log-key")
@home_option
def witness_log_key(home) -> None:
    """Print this node's log verifier key (origin+keyid+base64): what another organisation gives `cead witness
    watch` to witness this node's log, when it does not take it from this node's URL. Send it with the agreement
    (no passphrase needed: it is public). After `cead key rotate` it changes; the witnesses follow the rotation by
    themselves (the log hands them over to the new key), so it is needed again only for a witness that cannot."""
    from issuer.evidence import witness as witnessing
    node = _node(home)
    try:
        click.echo(witnessing.log_vkey(node))
    except CeadError as exc:
        _fail(exc)


@witness.command("watch")
@click.argument("log")
@click.option("--did", default=None,
              help="With a NODE_URL: the organisation's DID, when it is not the did:web of the URL.")
@home_option
def witness_watch(log, did, home) -> None:
    """Witness another organisation's log: from now on this node co-signs its checkpoints (at POST
    /witness/add-checkpoint) as long as each extends the last one it co-signed.

    LOG is the node's URL (https://police.example): its log's origin is read from /log/checkpoint and its key from
    the organisation's DID document (the Ed25519 key listed for use that signs that checkpoint), over this node's
    network rules. Or LOG is the log's verifier key (origin+keyid+base64) as the organisation's `cead witness
    log-key` prints it. After the log's key rotation this node follows by itself when the log proves the handover
    (the old key signed the tree that ends with the entry naming the new key); run it again only for a rotation
    the log cannot prove, after checking the new key with the log's organisation (the new key replaces the old;
    the history it must extend stays)."""
    from issuer.evidence import witness as witnessing
    node = _node(home)
    try:
        if log.startswith(("https://", "http://")):
            fetcher = node.fetcher()
            try:
                key = witnessing.log_key_of(log, fetcher, did=did)
            finally:
                fetcher.close()
            vkey = key.vkey()
            where = f" (its key from the DID document of {did or _did_web(log)})"
        else:
            if did:
                raise click.UsageError("--did goes with a NODE_URL.")
            vkey, where = log, ""
        replaced = witnessing.watch(node, vkey)
    except CeadError as exc:
        _fail(exc)
    origin = vkey.split("+", 1)[0]
    click.echo(f"Watching {origin}{where}: {vkey}")
    if replaced:
        click.echo(f"  (it replaces the key {replaced}: the log's checkpoints must still extend the "
                   "history this node co-signed)")
    public = node.config.get("public_url")
    click.echo(f"Send the log's organisation this node's witness URL, for its config.yaml witnesses:, "
               f"{public.rstrip('/') + '/witness' if public else '(this node has no public_url)'}, and its witness "
               f"key: {witnessing.witness_key(node).vkey()}", err=True)


def _did_web(url: str) -> str:
    from verifier.did import did_web_from_url
    return did_web_from_url(url.rstrip("/"))


@witness.command("unwatch")
@click.argument("origin")
@home_option
def witness_unwatch(origin, home) -> None:
    """Stop witnessing the log ORIGIN (as `cead witness list` shows it): its checkpoints are refused from now on."""
    from issuer.evidence import witness as witnessing
    if not witnessing.unwatch(_node(home), origin):
        _fail(CeadError("tlog.not_watched", f"This node does not watch the log {origin} (see `cead witness list`)."))
    click.echo(f"No longer watching {origin}.")


@witness.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON, for scripts.")
@home_option
def witness_list(as_json, home) -> None:
    """The logs this node witnesses: origin, the size it last co-signed and when, the log key it checks them with;
    then, if config.yaml names witnesses for this node's own log, what each of them last co-signed."""
    from issuer.evidence import witness as witnessing
    node = _node(home)
    try:
        watched = witnessing.watching(node)
        submitted = witnessing.submission_state(node)
    except CeadError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps({
            "watching": [{"origin": w.origin, "size": w.size, "at": w.at, "logKey": w.vkey,
                          "followed": None if w.key_since is None else {
                              "from": w.previous_vkey, "atSize": w.key_since, "at": w.key_followed_at}}
                         for w in watched],
            "witnesses": [{"url": url, "size": row.size if row else None, "cosigner": row.cosigner if row else None,
                           "cosignedAt": row.cosigned_at if row else None,
                           "lastError": row.last_error if row else None} for url, row in submitted]}, indent=2))
        return
    if not watched:
        click.echo("This node witnesses no log (cead witness watch NODE_URL).")
    for w in watched:
        state = f"co-signed size {w.size} at {w.at}" if w.size else f"nothing co-signed yet (watching since {w.at})"
        click.echo(f"{w.origin}  {state}  key {w.vkey}")
        if w.key_since is not None:
            click.echo(f"  followed the log's key rotation at size {w.key_since} ({w.key_followed_at}), from "
                       f"{w.previous_vkey}: the old key vouched for the new one in the log")
    for url, row in submitted:
        if row is None or (row.size is None and not row.last_error):
            state = "not submitted yet"
        else:
            state = (f"co-signed size {row.size} at {row.cosigned_at} as {row.cosigner}" if row.size is not None
                     else "never co-signed")
            if row.last_error:
                state += f"; last refusal: {row.last_error}"
        click.echo(f"this log -> {url}  {state}")


@witness.command("submit")
@click.option("--again", is_flag=True, help="Also to witnesses that co-signed the current size already.")
@home_option
def witness_submit(again, home) -> None:
    """Submit this node's current checkpoint to each witness named under witnesses: in config.yaml, now, and keep
    their cosignatures (served at /log/witnessed-checkpoint). Prints one line per witness: co-signed, or refused
    with the reason. Exit 1 if any refused or could not be reached. `cead issuer serve` does this by itself every
    witness_interval seconds; this is for cron or a check by hand (never at the same time as the server: each
    witness is claimed in the database). Signing a new checkpoint needs the key passphrase ($CEAD_PASSPHRASE)."""
    from issuer.evidence import record, witness as witnessing
    from issuer.node import Node
    node = _node(home)
    try:
        if not witnessing.targets(node):
            _fail(CeadError("tlog.witnesses_missing", "config.yaml names no witnesses: add a witnesses: list of "
                            "witness URLs (e.g. - https://fife.example/witness); see docs/evidence.md."))
        log = record.log_of(node)
        if log.checkpoint_at(log.size()) is None:     # a checkpoint to sign: the key is needed
            from issuer.cli import _passphrase
            node = Node.open(node.home, _passphrase(), migrate=True)
        outcomes = witnessing.submit_to_witnesses(node, again=again, wait=2 * witnessing.SUBMIT_TIMEOUT + 5)
    except CeadError as exc:
        _fail(exc)
    for o in outcomes:
        if o.outcome == "cosigned":
            click.echo(f"{o.url}: co-signed the checkpoint of {o.size} entries, as {o.cosigner}")
        elif o.outcome == "already":
            click.echo(f"{o.url}: co-signed the checkpoint of {o.size} entries already, at {o.at}, as {o.cosigner}")
        elif o.outcome == "busy":
            click.echo(f"{o.url}: not submitted: another process (the server?) is still submitting to it")
        else:
            status = f"HTTP {o.status}" if o.status else "not reached"
            click.echo(f"{o.url}: REFUSED the checkpoint of {o.size} entries ({status}): {o.reason}")
    sys.exit(1 if any(o.failed for o in outcomes) else 0)
