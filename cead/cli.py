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
    "staff": ("issuer.staff.cli", "staff"),
    "key": ("issuer.cli", "key"),
    "issue": ("issuer.cli", "issue"),
    "cosign": ("issuer.cli", "cosign"),
    "revoke": ("issuer.cli", "revoke"),
    "suspend": ("issuer.cli", "suspend"),
    "reinstate": ("issuer.cli", "reinstate"),
    "issued": ("issuer.cli", "issued"),
    "notifications": ("issuer.cli", "notifications_group"),
    "verify": ("verifier.cli", "verify"),
    "verifier": ("verifier.cli", "verifier"),
    "lawful": ("verifier.lawful.cli", "lawful"),
    "wallet": ("wallet.cli", "wallet"),
    "fetch": ("wallet.cli", "fetch"),
    "receipts": ("cead.evidence_cli", "receipts"),
    "audit": ("cead.evidence_cli", "audit"),
    "witness": ("cead.evidence_cli", "witness"),
    "deliver": ("wallet.cli", "deliver"),
    "request": ("wallet.cli", "request_group"),
    "provider": ("wallet.provider.cli", "provider"),
    "dev-ca": ("cead.devca", "dev_ca"),
    "catalogue": ("wallet.cli", "catalogue"),
    "offer": ("wallet.cli", "offer"),
    "oid4vp": ("wallet.cli", "oid4vp"),
    "precedents": ("wallet.cli", "precedents_group"),
    "demo": ("cead.demo", "demo"),
}
# Everything but the verifier's commands needs the node extras; these packages come only with them.
_NODE_EXTRAS = ("sqlmodel", "alembic", "qrcode", "httpx", "trustme")


def _node_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in _NODE_EXTRAS)


def _import(module: str):
    """The module, or None when it needs the node extras and they are not installed."""
    if not module.startswith("verifier.") and not _node_installed():
        return None
    mod = importlib.import_module(module)
    if module == "issuer.cli":
        _compose(mod)
    if module == "issuer.staff.cli":
        _compose_staff(mod)
    return mod


def _compose(issuer_cli) -> None:
    """`cead issuer serve` serves the node app with the wallet's inbox and pages when the wallet is installed
    (the issuer package never imports the wallet; this top layer joins them)."""
    if issuer_cli.app_factory is None:
        def node_app(node):
            from wallet.app import create_node_app
            return create_node_app(node)
        issuer_cli.app_factory = node_app


def _compose_staff(staff_cli) -> None:
    """`cead staff log` names the wallet's data-sharing requests (who asks, for which datasets) and the DIDs and
    datasets the node knows, when the wallet is installed."""
    if staff_cli.log_names is None and importlib.util.find_spec("wallet") is not None:
        def log_names(node):
            from wallet.desk import audit_names
            return audit_names(node)
        staff_cli.log_names = log_names


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in _COMMANDS if _import(_COMMANDS[name][0]) is not None]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in _COMMANDS:
            return None
        module, attr = _COMMANDS[name]
        mod = _import(module)
        if mod is None:
            return _needs_node(name)
        return getattr(mod, attr)


def _needs_node(name: str) -> click.Command:
    @click.command(name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
                   add_help_option=False, hidden=True)
    def missing() -> None:
        click.echo(f"Error: `cead {name}` runs on an organisation's node, which needs the node extras: "
                   "pip install 'cead[node]'. This installation has the verifier only "
                   "(`cead verify`, `cead verifier serve`).", err=True)
        sys.exit(2)
    return missing


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cead")
def main() -> None:
    """Cead: verifiable credentials for lawful public-sector data sharing.

    Organisations run their own node (issuer + wallet); gateways run the stateless verifier.
    """


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
