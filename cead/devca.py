"""`cead dev-ca`: a local test certificate authority and a server certificate, for trying Cead on one machine.

Nodes talk HTTPS to each other (did:web, status lists, inboxes), so even on 127.0.0.1 each needs a certificate the
others trust. This makes one CA (``ca.pem``) and one server certificate for 127.0.0.1 and localhost
(``server.pem``, ``server-key.pem``, mode 0600), with `trustme` (a library for test CAs). Never use them in
production: anyone holding the directory can impersonate those addresses to whoever trusts ``ca.pem``.
"""
from __future__ import annotations

import os
from pathlib import Path

import click


@click.command("dev-ca")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=Path("dev-ca"),
              show_default=True, help="Directory to write ca.pem, server.pem and server-key.pem into.")
@click.option("--host", "hosts", multiple=True, default=("127.0.0.1", "localhost"), show_default=True,
              help="Names and addresses the server certificate is for (repeatable).")
def dev_ca(out: Path, hosts: tuple[str, ...]) -> None:
    """Development/test only: make a local test CA and a server certificate for 127.0.0.1, and print the flags
    that use them (`cead init --ca-bundle`, `cead issuer serve --tls-cert/--tls-key`)."""
    import trustme
    if (out / "ca.pem").exists():
        raise click.UsageError(f"{out / 'ca.pem'} exists; a new CA would not be trusted by nodes set up with the old "
                               "one. Use another --out, or delete the directory first.")
    ca = trustme.CA(organization_name="Cead local test CA")
    for host in hosts:   # each on its own, so the error names the one that is wrong; before anything is written
        try:
            ca.issue_cert(host)
        except ValueError as exc:   # idna.IDNAError: empty, spaces, a label too long...
            raise click.BadParameter(f"{host!r} is not a host name or IP address ({exc}); give e.g. 127.0.0.1, "
                                     "localhost or node.example.", param_hint="'--host'") from None
    server = ca.issue_cert(*hosts)
    out.mkdir(parents=True, exist_ok=True)
    ca.cert_pem.write_to_path(str(out / "ca.pem"))
    cert = out / "server.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    key = out / "server-key.pem"
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(server.private_key_pem.bytes())
    click.echo(f"Made a test CA in {out}: {out / 'ca.pem'} (trust it), {cert} and {key} (for {', '.join(hosts)}).")
    click.echo(f"  cead init ... --ca-bundle {out / 'ca.pem'} --allow-private-addresses")
    click.echo(f"  cead issuer serve ... --tls-cert {cert} --tls-key {key}")
