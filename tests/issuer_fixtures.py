"""Shared set-up for the issuer tests: a node home, example subjects, a token."""
from __future__ import annotations

import contextlib
import copy
import os
import uuid

import sqlalchemy as sa

from issuer import db, tokens
from issuer.node import Node

PASS = b"correct horse battery staple"

CERT_SUBJECT = {
    "id": "did:web:nhs-fife.example", "legalName": "NHS Fife", "legalIdentifier": "SC-NHS-FIFE",
    "scheme": "https://w3id.org/cead/vocab#CyberEssentials", "certificateNumber": "CE-0001",
    "certificationBody": {"name": "IASME"}, "issueDate": "2025-01-01", "expiryDate": "2030-01-01",
}


def certification(issuer: str, **changes) -> dict:
    from schemas.models import OrganisationCertification
    subject = {**copy.deepcopy(CERT_SUBJECT), **changes}
    return OrganisationCertification.model_validate(subject).to_credential(issuer)


def make_node(home, domain="fife.example", **kw) -> Node:
    node, _ = Node.init(home, "Fife Council", PASS, domain=domain, **kw)
    return node


def token(node, scopes="issue:certification,issue:delegation,issue:approval,status:change", name="tester"):
    return tokens.create_token(node.engine, name, scopes)


def ready_node(home) -> Node:
    """A node whose key is unlocked (as `cead issuer serve` has it), publishing at https://fife.example."""
    node = make_node(home, public_url="https://fife.example")
    node._passphrase = PASS
    return node


def counts(node) -> tuple[int, int]:
    """(register rows, status entries): what an issuing attempt may have stored."""
    with node.engine.connect() as conn:
        return tuple(conn.execute(sa.text(f"select count(*) from {t}")).scalar_one()
                     for t in ("issuer_credential", "issuer_status_entry"))


@contextlib.contextmanager
def postgresql_node(home):
    """A ready node on the PostgreSQL of CEAD_TEST_DATABASE_URL, in a schema of its own dropped afterwards."""
    url = os.environ["CEAD_TEST_DATABASE_URL"]
    schema = "cead_test_" + uuid.uuid4().hex[:12]
    admin = db.make_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"create schema {schema}"))
    try:
        sep = "&" if "?" in url else "?"
        node = make_node(home, database_url=f"{url}{sep}options=-csearch_path%3D{schema}",
                         public_url="https://fife.example")
        node._passphrase = PASS
        try:
            yield node
        finally:
            node.engine.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"drop schema {schema} cascade"))
        admin.dispose()


@contextlib.contextmanager
def https_node(home, **init):
    """A did:web node at ``https://localhost:<port>`` serving its issuer app over HTTPS on 127.0.0.1, unlocked;
    yields ``(node, base_url, ca_bundle)``. ``init`` goes to ``Node.init`` (e.g. ``network``)."""
    from helpers_https import https_server
    from issuer.app import create_app
    holder = {}
    with https_server(lambda environ, start: holder["app"](environ, start)) as (base_url, ca_bundle):
        port = base_url.rsplit(":", 1)[1]
        node, _ = Node.init(home, "Fife Council", PASS, domain=f"localhost:{port}", public_url=base_url, **init)
        node._passphrase = PASS
        holder["app"] = create_app(node)
        yield node, base_url, ca_bundle
