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


def ready_node(home, domain: str = "fife.example") -> Node:
    """A node whose key is unlocked (as `cead issuer serve` has it), publishing at https://DOMAIN (fife.example):
    two organisations need two domains (a witness is known by its DID)."""
    node = make_node(home, domain=domain, public_url=f"https://{domain}")
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


V2_CEAD = ["https://www.w3.org/ns/credentials/v2", "https://w3id.org/cead/v1"]


@contextlib.contextmanager
def served_nodes(tmp, *names: str, **init):
    """did:web nodes at ``https://localhost:<port>``, each serving its issuer app (DID document, status lists) over
    HTTPS on 127.0.0.1 and trusting every one's test CA (``network``: ``allow_private``, one CA bundle), unlocked;
    yields ``{name: node}``. ``init`` goes to every ``Node.init`` (e.g. ``vocabulary``)."""
    from pathlib import Path

    from helpers_https import https_server
    from issuer.app import create_app

    class Late:
        app = None

        def __call__(self, environ, start_response):
            return self.app(environ, start_response)

    tmp = Path(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        served = {}
        for name in names:
            late = Late()
            base, ca = stack.enter_context(https_server(late))
            served[name] = (late, base, ca)
        bundle = tmp / "ca-bundle.pem"
        bundle.write_text("".join(Path(ca).read_text() for _, _, ca in served.values()))
        nodes = {}
        for name, (late, base, _) in served.items():
            node, _ = Node.init(tmp / name, name.title(), PASS, domain=base.removeprefix("https://"),
                                public_url=base, network={"allow_private": True, "ca_bundle": str(bundle)}, **init)
            node._passphrase = PASS
            late.app = create_app(node)
            nodes[name] = node
        yield nodes


def delegation(issuer_node, delegate: str, scope: dict, *, controller: str | None = None, parent=None,
               actions=("SubDelegate", "ApproveDisclosure"), options: dict | None = None, **subject):
    """A DelegatedAuthorityCredential really issued by ``issuer_node`` (``issuing.issue``) to ``delegate``, acting
    for ``controller`` (default: the issuer); ``parent``: the issuer's own delegation (an ``Issued``), pinned by
    digest and given to the guard rail. Returns the ``Issued``."""
    from issuer import issuing
    from schemas.models import credential_digest
    body = {"id": delegate, "role": "InformationAssetOwner", "onBehalfOf": controller or issuer_node.did,
            "allowedActions": list(actions), "scope": scope, **subject}
    opts = dict(options or {})
    if parent is not None:
        body["parentDelegation"] = {"id": parent.id, "digest": credential_digest(parent.credential)}
        opts.setdefault("delegation", parent.credential)
    credential = {"@context": V2_CEAD, "type": ["VerifiableCredential", "DelegatedAuthorityCredential"],
                  "credentialSubject": body}
    return issuing.issue(issuer_node, credential, opts)
