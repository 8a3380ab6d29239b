"""`cead provider serve`: the data provider for near-time services."""
from __future__ import annotations

import json
import logging
import sys

import click

from verifier.results import CeadError


def _fail(exc: CeadError) -> None:
    click.echo(f"Error: {exc.code}: {exc.message}", err=True)
    sys.exit(2)


@click.group("provider")
def provider() -> None:
    """Publish dataset series as an API protected by the gateway (see docs/provider.md)."""


@provider.command("serve")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="The provider's configuration file (YAML or JSON; see docs/provider.md).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8700, show_default=True, type=click.IntRange(0, 65535), help="Port (0 picks a free one).")
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="TLS certificate chain (PEM).")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="TLS private key (PEM).")
@click.option("--check", is_flag=True, help="Check the configuration and the sources, then exit.")
def serve(config_path, host, port, tls_cert, tls_key, check) -> None:
    """Serve each configured dataset series behind the gateway: the release list (paging with cursor and limit,
    `since` for incremental updates), each release, and a server-sent-events stream of new releases; and push
    each new release to the configured recipients, presenting the provider's approval from its node's wallet
    (the key is unlocked with CEAD_PASSPHRASE)."""
    from verifier.decision import Decider
    from verifier.policy import load_policy
    from verifier.serving import serve_wsgi

    from .config import load_config
    from .service import Provider
    _log_to_stderr()    # what the sources and pushes say (a row not served, a push refused), as it happens
    try:
        config = load_config(config_path)
        decider = Decider(load_policy(config.policy))
        wallet = _wallet(config) if any(s.push for s in config.series.values()) else None
        for series in config.series.values():
            try:      # a source that cannot be read is said now, not at the first request
                series.source.releases()
            except CeadError as exc:
                raise CeadError(exc.code, exc.message if exc.message.startswith(f"series.{series.name}")
                                else f"series.{series.name}.source: {exc.message}", **exc.detail) from None
        service = Provider(config, decider, wallet)
        service.check_push_targets()   # the node's network rules: where pushes may go
        if check:
            click.echo(json.dumps({"ok": True, "series": {s.name: s.dataset for s in config.series.values()}}))
            return

        def in_worker() -> None:
            # the watcher runs in the server's worker process, beside the event streams it announces to (a thread
            # started here, before the fork, would not exist there); one worker, so each release is pushed once
            service.after_fork()
            service.start()
        try:
            # a stop (SIGTERM) ends the event streams at once: the server waits for every response to end
            serve_wsgi(service, host, port, tls_cert, tls_key, post_fork=in_worker, on_stop=service.stopping,
                       announce=lambda url: click.echo(
                           f"Serving {len(config.series)} series ({', '.join(config.series)}) at {url}, each "
                           "request decided by the gateway.", err=True))
        finally:
            service.stop()
    except CeadError as exc:
        _fail(exc)


def _log_to_stderr() -> None:
    """Each push (delivered, refused, failed and when it is tried again), each source that cannot be read and each
    row a table holds that cannot be served, one line on stderr: the delivery log has the whole record of pushes
    (docs/provider.md)."""
    logger = logging.getLogger("wallet.provider")
    if not any(isinstance(h, _Stderr) for h in logger.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


class _Stderr(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is when a line is written."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _wallet(config):
    from issuer.node import Node, passphrase_from_env
    from wallet.store import Wallet
    passphrase = passphrase_from_env()
    if not passphrase:
        raise CeadError("key.passphrase_required", "Pushing presents the provider's approval, signed by its node: "
                        "set CEAD_PASSPHRASE.")
    node = Node.open(config.node, passphrase)
    node.signing_key()
    return Wallet.from_node(node)
