"""The `cead` command line. Each package contributes its own commands; this module only assembles them.

Commands are imported only when they run (or when `cead --help` lists them), so `cead verify` does not pay for
the node's database libraries. Commands of the node packages (issuer, wallet) are left out when their extras
(`pip install 'cead[node]'`) are not installed, so a gateway that installs the verifier alone still has
`cead verify` and `cead verifier serve`.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys

import click

# top-level name -> (module, attribute): a click command or group defined by the package that owns it
_COMMANDS = {
    "init": ("issuer.cli", "init"),
    "issuer": ("issuer.cli", "issuer"),
    "did": ("issuer.cli", "did"),
    "token": ("issuer.cli", "token"),
    "key": ("issuer.cli", "key"),
    "issue": ("issuer.cli", "issue"),
    "revoke": ("issuer.cli", "revoke"),
    "suspend": ("issuer.cli", "suspend"),
    "reinstate": ("issuer.cli", "reinstate"),
    "issued": ("issuer.cli", "issued"),
    "verify": ("verifier.cli", "verify"),
    "verifier": ("verifier.cli", "verifier"),
    "wallet": ("wallet.cli", "wallet"),
    "fetch": ("wallet.cli", "fetch"),
    "demo": ("cead.demo", "demo"),
}
# the third-party packages that only the node extras bring
_NODE_EXTRAS = {"sqlmodel", "sqlalchemy", "alembic", "qrcode", "httpx", "psycopg", "trustme", "PIL"}


def _import(module: str):
    """The module, or None when it needs node extras that are not installed."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in _NODE_EXTRAS:
            return None
        raise
    if module == "issuer.cli":
        _compose(mod)
    return mod


def _compose(issuer_cli) -> None:
    """`cead issuer serve` serves the node app with the wallet's inbox and pages when the wallet is installed
    (the issuer package never imports the wallet; this top layer joins them)."""
    if issuer_cli.app_factory is None and importlib.util.find_spec("qrcode") is not None:
        def node_app(node):
            from wallet.app import create_node_app
            return create_node_app(node)
        issuer_cli.app_factory = node_app


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in _COMMANDS if self.get_command(ctx, name) is not None]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in _COMMANDS:
            return None
        module, attr = _COMMANDS[name]
        mod = _import(module)
        return getattr(mod, attr, None) if mod is not None else None


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cead")
def main() -> None:
    """Cead: verifiable credentials for lawful public-sector data sharing.

    Organisations run their own node (issuer + wallet); gateways run the stateless verifier.
    """


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
