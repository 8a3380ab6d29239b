"""The `cead` command line. Each package contributes its own commands; this module only assembles them.

Commands from the node packages (issuer, wallet) are loaded only when installed, so a gateway that installs the
verifier alone still has `cead verify` and `cead verifier serve`.
"""
from __future__ import annotations

import importlib
import sys

import click

# (module, attribute) pairs; each attribute is a click command or group added at the top level.
_COMMANDS = [
    ("verifier.cli", "verify"),
    ("verifier.cli", "verifier"),
    ("issuer.cli", "init"),
    ("issuer.cli", "issuer"),
    ("issuer.cli", "did"),
    ("issuer.cli", "token"),
    ("issuer.cli", "key"),
    ("issuer.cli", "issue"),
    ("issuer.cli", "revoke"),
    ("issuer.cli", "suspend"),
    ("issuer.cli", "reinstate"),
    ("issuer.cli", "issued"),
    ("wallet.cli", "wallet"),
    ("wallet.cli", "fetch"),
    ("cead.demo", "demo"),
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cead")
def main() -> None:
    """Cead: verifiable credentials for lawful public-sector data sharing.

    Organisations run their own node (issuer + wallet); gateways run the stateless verifier.
    """


def _load() -> None:
    for module, attr in _COMMANDS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            # An optional part (node extras) is not installed: leave its commands out.
            if exc.name and exc.name.split(".")[0] in {module.split(".")[0], "sqlmodel", "alembic", "qrcode", "httpx"}:
                continue
            raise
        cmd = getattr(mod, attr, None)
        if cmd is not None:
            main.add_command(cmd)


def _compose() -> None:
    """Serve the node app with the wallet's inbox from `cead issuer serve` when the wallet is installed."""
    try:
        import issuer.cli
        from wallet.app import create_node_app
    except ModuleNotFoundError:
        return
    issuer.cli.app_factory = create_node_app


_load()
_compose()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
