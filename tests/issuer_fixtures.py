"""Shared set-up for the issuer tests: a node home, example subjects, a token."""
from __future__ import annotations

import copy

from issuer import tokens
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
