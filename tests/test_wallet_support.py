"""Shared helpers for the wallet tests (no tests here): identities, credentials, status lists, a wallet."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from issuer.db import make_engine
from issuer.keys import PrivateKey
from issuer.signing import sign_jwt
from schemas.models import credential_digest
from verifier.did import did_key
from verifier.http import FetchResult
from verifier.results import CeadError
from verifier.status import make_entry, make_list_credential, new_bitstring, set_bit
from wallet.store import Wallet, make_verifier, upgrade

V2 = "https://www.w3.org/ns/credentials/v2"
DS_MEALS = "https://data.example.gov.scot/dataset/school-meals"
DS_CLOTHING = "https://data.example.gov.scot/dataset/clothing-grants"
P_MEALS = "cead:FreeSchoolMealAutoEnrolment"
P_STATS = "cead:HomelessnessStatistics"
CYBER_ESSENTIALS = "https://w3id.org/cead/vocab#CyberEssentials"
ISO27001 = "https://w3id.org/cead/vocab#ISO27001"


@dataclass
class Identity:
    did: str
    key: PrivateKey
    kid: str


def identity() -> Identity:
    key = PrivateKey.generate()
    did = did_key(key.public)
    return Identity(did, key, f"{did}#{did.split(':')[-1]}")


def _ts(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def now() -> datetime:
    return datetime.now(timezone.utc)


def vc(issuer: Identity, type_: str, subject: dict, *, valid_for: timedelta = timedelta(days=365),
       valid_from: datetime | None = None, status: dict | None = None, fmt: str = "jwt") -> dict | str:
    """A signed VC 2.0 credential (VC-JOSE by default) with a fresh urn:uuid id."""
    start = valid_from or now() - timedelta(days=1)
    doc = {"@context": [V2], "id": f"urn:uuid:{uuid.uuid4()}", "type": ["VerifiableCredential", type_],
           "issuer": issuer.did, "validFrom": _ts(start), "validUntil": _ts(start + valid_for),
           "credentialSubject": subject}
    if status:
        doc["credentialStatus"] = status
    if fmt == "jwt":
        return sign_jwt(doc, issuer.key, issuer.kid)
    from issuer.signing import add_proof
    return add_proof(doc, issuer.key, issuer.kid)


def approval_subject(discloser: str, recipient: str, *, datasets=(DS_MEALS,), purposes=(P_MEALS,),
                     requirements=(), chain=()) -> dict:
    """A credentialSubject that satisfies schemas.models.DataSharingApproval."""
    return {
        "agreement": {"id": f"urn:uuid:{uuid.uuid4()}", "digest": "sha256-" + "A" * 43},
        "discloser": discloser, "recipients": [recipient],
        "delegationChain": [{"id": _id_of(c), "digest": credential_digest(c)} for c in chain],
        "datasets": list(datasets), "dataItems": ["pupil_id", "entitlement"],
        "dataCategories": ["pd:OfficialID"], "purposes": list(purposes),
        "lawfulBases": [{"party": p, "regime": "UKGDPR",
                         "legalBases": ["https://www.legislation.gov.uk/eur/2016/679/article/6/1/e"]}
                        for p in (discloser, recipient)],
        "dpia": {"outcome": "LowRisk"}, "sensitivity": "Personal",
        "recipientRequirements": list(requirements), "cadence": "R/2025-01-01T00:00:00Z/P1M",
        "retention": {"receivedData": "P1Y"}, "onwardSharing": "Prohibited",
        "notBefore": "2025-01-01T00:00:00Z", "notAfter": "2030-01-01T00:00:00Z",
    }


def _id_of(credential) -> str:
    from wallet.store import jwt_payload
    return (jwt_payload(credential) if isinstance(credential, str) else credential)["id"]


def delegation_subject(delegate: str, controller: str, parent=None) -> dict:
    subject = {"id": delegate, "role": "InformationAssetOwner", "onBehalfOf": controller,
               "allowedActions": ["ApproveDisclosure"], "scope": {"datasets": [DS_MEALS]}}
    if parent is not None:
        subject["parentDelegation"] = {"id": _id_of(parent), "digest": credential_digest(parent)}
    return subject


def certification_subject(org: str, scheme: str, status: str = "Certified") -> dict:
    return {"id": org, "legalName": "Example Council", "legalIdentifier": "SC000001", "scheme": scheme,
            "certificateNumber": str(uuid.uuid4())[:8], "status": status,
            "issueDate": "2025-01-01", "expiryDate": "2030-01-01",
            "certificationBody": {"name": "Example Certification Ltd"}}


class StaticFetcher:
    """A stand-in for verifier.http.Fetcher serving documents from a dict (status lists in tests)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}

    def get(self, url: str) -> FetchResult:
        if url not in self.files:
            raise CeadError("status.unreachable", f"{url} not found")
        return FetchResult(self.files[url], {}, 200, url)


class StatusListFixture:
    """A revocation (or suspension) list published by ``issuer`` at ``url`` through a StaticFetcher."""

    def __init__(self, issuer: Identity, fetcher: StaticFetcher, url: str = "https://status.example/lists/1",
                 purpose: str = "revocation"):
        self.issuer, self.fetcher, self.url, self.purpose = issuer, fetcher, url, purpose
        self.bits = new_bitstring()
        self.publish()

    def entry(self, index: int) -> dict:
        return make_entry(self.url, index, self.purpose)

    def publish(self) -> None:
        doc = make_list_credential(self.url, self.issuer.did, self.purpose, bytes(self.bits), _ts(now()))
        self.fetcher.files[self.url] = sign_jwt(doc, self.issuer.key, self.issuer.kid).encode()

    def revoke(self, index: int) -> None:
        """Set the bit (revoked, or suspended on a suspension list)."""
        self.set(index, True)

    def set(self, index: int, value: bool) -> None:
        set_bit(self.bits, index, value)
        self.publish()


def make_wallet(tmp_path, holder: Identity | None = None, fetcher=None) -> Wallet:
    holder = holder or identity()
    engine = make_engine(f"sqlite:///{tmp_path / 'node.db'}")
    upgrade(engine)
    return Wallet(engine, holder.did, key=holder.key, kid=holder.kid, verifier=make_verifier(fetcher or StaticFetcher()))

