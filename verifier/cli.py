"""Verifier commands: `cead verify FILE` and `cead verifier serve`. Registered by ``cead.cli``.

`cead verify` prints the decision (or, with no request given, the generic verification result) as JSON and exits
0 when allowed/verified, 1 when denied/not verified, 2 for bad input (unreadable file, bad JSON, bad policy).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .binding import decode_presentation
from .results import CeadError

EXIT_ALLOW, EXIT_DENY, EXIT_BAD_INPUT = 0, 1, 2


def _fail(message: str, code: str = "input.invalid") -> None:
    click.echo(json.dumps({"error": {"code": code, "message": message}}), err=True)
    sys.exit(EXIT_BAD_INPUT)


def _read(path: str, what: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        _fail(f"Cannot read {what} {path!r}: {exc.strerror or exc}", "input.unreadable")
    return b""  # unreachable


def _not_json(name: str):
    raise ValueError(f"{name} is not a JSON value")


def _json_object(text: str | bytes, what: str) -> dict:
    """A JSON object read from a file, or exit 2 naming ``what`` (bad JSON, NaN/Infinity, nested too deeply)."""
    try:
        doc = json.loads(text, parse_constant=_not_json)
    except ValueError as exc:
        _fail(f"{what} is not valid JSON: {exc}")
    except RecursionError:
        _fail(f"{what} is JSON nested too deeply.")
    if not isinstance(doc, dict):
        _fail(f"{what} must hold a JSON object.")
    return doc


def _load_document(path: str):
    """A credential or presentation: JSON object, compact JWT, or a Cead-Presentation header value."""
    raw = _read(path, "the credential/presentation file")
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        _fail(f"{path!r} is not UTF-8 text.")
    if not text:
        _fail(f"{path!r} is empty.")
    if text.startswith("{"):
        return _json_object(text, f"{path!r}")
    if text.startswith("["):
        _fail(f"{path!r} holds a JSON array; give one credential or presentation (a JSON object or a compact JWT).")
    try:
        return decode_presentation(text)
    except CeadError as exc:
        _fail(f"{path!r} holds neither JSON, a compact JWT nor a base64url presentation: {exc.message}", exc.code)
    except RecursionError:
        _fail(f"{path!r} holds a presentation nested too deeply.")


def _private_fix(command: str, policy_path: str | None) -> str:
    """What ``http.address_refused`` tells the user of ``command`` to change: the trust policy it was given (or,
    without --policy, that it needs one), and for the gateway that it reads it when it starts."""
    from .http import private_fix
    if command == "verify":
        if policy_path is None:
            return private_fix("a trust policy given to `cead verify --policy FILE` saying `network: {allow_private: "
                               "true}` (there is no flag for it; docs/trust-policy.md)")
        return private_fix(f"network.allow_private: true in the trust policy {policy_path} (--policy)")
    if policy_path is None:
        return private_fix("a trust policy given to `cead verifier serve --policy FILE` saying `network: "
                           "{allow_private: true}` (there is no flag for it; docs/trust-policy.md)")
    return private_fix(f"network.allow_private: true in the trust policy {policy_path} (--policy), then restart "
                       "`cead verifier serve`: it reads the policy when it starts")


def _decider(policy_path: str | None, replay_store: str | None = None, ledger=None, command: str = "verify"):
    from .compose import fetcher_for
    from .decision import Decider
    from .policy import load_policy
    try:
        policy = load_policy(policy_path)
        if replay_store:
            policy = policy.model_copy(update={"replay_store": replay_store})
        fetcher = fetcher_for(policy.network, policy.path, _private_fix(command, policy_path))
        return Decider(policy, ledger=ledger, fetcher=fetcher)
    except CeadError as exc:
        _fail(exc.message, exc.code)
    except ValueError as exc:   # e.g. a replay store URL that is not redis://
        _fail(str(exc), "policy.invalid")


@click.command("verify")
@click.argument("file", type=str)
@click.option("--policy", "policy_path", type=str, help="Trust policy file (YAML or JSON).")
@click.option("--method", default=None, help="HTTP method of the transfer request (default GET with --url).")
@click.option("--url", default=None, help="Full URL of the transfer request; with it, the transfer is decided.")
@click.option("--body", "body_path", default=None, help="File holding the request body.")
@click.option("--manifest", "manifest_path", default=None, help="File holding the transfer manifest (JSON).")
@click.option("--dataset", default=None, help="Dataset IRI served by the endpoint (default: from the manifest).")
@click.option("--challenge", default=None, help="Without --url: expected presentation challenge/nonce.")
@click.option("--domain", default=None, help="Without --url: expected presentation domain/audience.")
def verify(file, policy_path, method, url, body_path, manifest_path, dataset, challenge, domain):
    """Verify FILE (a credential or presentation; '-' for stdin) and print the result as JSON.

    With --url, decide the transfer against the trust policy (exit 0 allow, 1 deny). Without it, verify the
    credential or presentation generically: proofs, validity, status (exit 0 verified, 1 not verified).
    Exit 2 means bad input.
    """
    from .decision import TransferRequest, is_presentation
    from .app import vc_api_result

    document = _load_document(file)
    if url is None and any(v is not None for v in (method, body_path, manifest_path, dataset)):
        _fail("--method, --body, --manifest and --dataset describe a transfer request and need --url.")
    body = _read(body_path, "the body file") if body_path else None
    manifest = None
    if manifest_path:
        manifest = _json_object(_read(manifest_path, "the manifest file"), f"The manifest {manifest_path!r}")
    decider = _decider(policy_path)
    if url is not None:
        try:
            request = TransferRequest(method=method or "GET", url=url, body=body, manifest=manifest, dataset=dataset)
        except CeadError as exc:
            _fail(exc.message, exc.code)
        except ValueError as exc:  # urlsplit refuses some URLs outright, e.g. "https://[::1"
            _fail(f"--url {url!r} is not a URL: {exc}.", "request.url_invalid")
        if _is_credential(document):
            _fail(f"{file!r} is a credential, but a transfer (--url) is decided on a presentation made for that "
                  "request (what `cead fetch` sends; `cead wallet present` prints one). Leave out --url to verify "
                  "the credential itself.", "input.invalid")
        decision = decider.decide(document, request)
        click.echo(json.dumps(decision.to_dict(), indent=2))
        sys.exit(EXIT_ALLOW if decision.allowed else EXIT_DENY)
    if is_presentation(document):
        result = decider.verify_presentation(document, challenge=challenge, domain=domain)
    else:
        if challenge or domain:
            _fail("--challenge and --domain apply to presentations only.")
        result = decider.verify_credential(document)
    click.echo(json.dumps(vc_api_result(result), indent=2))
    sys.exit(EXIT_ALLOW if result.verified else EXIT_DENY)


def _is_credential(document) -> bool:
    """A credential (JSON, enveloped, or a vc+jwt) rather than a presentation."""
    from schemas.values import as_list
    from .keys import b64url_decode
    if isinstance(document, dict):
        types = as_list(document.get("type"))
        return ("VerifiableCredential" in types or "EnvelopedVerifiableCredential" in types) \
            and "VerifiablePresentation" not in types
    try:
        header = json.loads(b64url_decode(document.split(".")[0]))
    except (ValueError, IndexError, CeadError, AttributeError):
        return False
    return isinstance(header, dict) and header.get("typ") == "vc+jwt"


@click.group("verifier")
def verifier() -> None:
    """The stateless verifier service for API gateways."""


@verifier.command("serve")
@click.option("--policy", "policy_path", type=str, help="Trust policy file (YAML or JSON). Without it nothing is "
              "trusted: every transfer is denied.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), required=True, help="TCP port to listen on.")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="PEM certificate (chain).")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="PEM private key for --tls-cert.")
@click.option("--ledger-url", default=None, help="The data owner's node (e.g. https://127.0.0.1:8443), whose "
              "privacy-budget ledger charges differentially private releases; its token (scope 'ledger') is read "
              "from CEAD_LEDGER_TOKEN.")
@click.option("--ledger-ca", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CA bundle that signed the node's certificate (default: the system's).")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Worker processes (default: one per CPU core with a shared --replay-store / replay_store, else 1, "
                   "since each process would keep its own replay guard).")
@click.option("--threads", type=click.IntRange(1, 256), default=8, show_default=True,
              help="Threads per worker process.")
@click.option("--replay-store", default=None, metavar="URL",
              help="redis://host:port/db: a replay guard shared by every worker and gateway instance (overrides "
                   "the policy's replay_store).")
@click.option("--upstream", default=None, metavar="URL",
              help="The data API (http(s)://host:port): requests to /proxy/<path> are decided, forwarded there, and "
                   "their answers checked against the approval before they leave (pulls under a minimum cell count "
                   "behind nginx or Envoy).")
@click.option("--upstream-ca", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CA bundle that signed the --upstream certificate (default: the system's).")
@click.option("--server", type=click.Choice(["granian", "gunicorn"]), default="granian", show_default=True,
              help="The WSGI server: granian (HTTP and TLS in Rust, less CPU per request) or gunicorn (gthread).")
def serve(policy_path, host, port, tls_cert, tls_key, ledger_url, ledger_ca, workers, threads, replay_store,
          upstream, upstream_ca, server):
    """Serve VC-API verification, nginx auth_request (/authz), Envoy ext_authz (/envoy), the checking proxy
    (/proxy, with --upstream), /metrics, /healthz on granian or gunicorn (TLS with --tls-cert/--tls-key; SIGTERM
    stops it gracefully)."""
    import os
    from .ledger import HttpLedger
    from .serving import serve_wsgi
    from .app import create_app

    ledger = None
    if ledger_url:
        from urllib.parse import urlsplit
        try:
            parts = urlsplit(ledger_url)
            usable = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
        except ValueError:          # a port that is no number or out of range, "https://[::1"
            usable = False
        if not usable:   # found now, not at the first differentially private release (which would be denied)
            _fail(f"--ledger-url must be the data owner's node as an http(s) URL (e.g. https://127.0.0.1:8443), not "
                  f"{ledger_url!r}.", "input.invalid")
        token = os.environ.get("CEAD_LEDGER_TOKEN", "").strip()
        if not token:
            _fail("--ledger-url needs the node's ledger token in CEAD_LEDGER_TOKEN (cead token create --scope "
                  "ledger).", "input.invalid")
        ledger = HttpLedger(ledger_url, token, verify=ledger_ca or True)

    if bool(tls_cert) != bool(tls_key):
        _fail("--tls-cert and --tls-key go together.", "serve.tls")
    if policy_path is None:
        click.echo("cead verifier: no --policy given, so no controller or certification body is trusted and every "
                   "transfer will be denied (VC-API verification still works).", err=True)
    decider = _decider(policy_path, replay_store, ledger, command="serve")
    shared = decider.policy.replay_store is not None
    if workers is None:
        workers = (os.cpu_count() or 1) if shared else 1
    elif workers > 1 and not shared:
        click.echo(f"cead verifier: {workers} workers without a shared replay store: each keeps its own replay "
                   "guard, so a presentation could be used once per worker; set --replay-store.", err=True)
    try:
        app = create_app(decider, upstream=upstream, upstream_ca=upstream_ca)
    except ValueError as exc:   # an --upstream that is no http(s) URL
        _fail(str(exc), "serve.upstream_invalid")
    try:
        serve_wsgi(app, host, port, tls_cert, tls_key, workers=workers, threads=threads, server=server,
                   announce=lambda url: click.echo(f"cead verifier listening on {url} ({server}, {workers} "
                                                   f"worker(s) x {threads} threads)", err=True))
    except CeadError as exc:
        _fail(exc.message, exc.code)
