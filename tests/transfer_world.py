"""A small world of parties and signed credentials for the transfer-decision tests and the benchmark.

A controller (did:key) delegates to an information asset owner (IAO), who sub-delegates to a deputy; the deputy
approves a recipient organisation's access to one dataset; a certification body certifies the recipient for
Cyber Essentials Plus. Every credential is a signed ``vc+jwt`` with revocation and suspension entries in Bitstring
Status Lists served over real HTTPS on 127.0.0.1 by ``StatusServer`` (lists are signed when served, so flipping a
bit takes effect on the verifier's next refresh).
"""
from __future__ import annotations

import json
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

from flask import Flask, Response

from issuer.keys import PrivateKey
from issuer.signing import add_proof, sign_jwt
from schemas import models
from verifier.binding import origin
from verifier.decision import Decider, TransferRequest
from verifier.did import did_key
from verifier.policy import parse_policy
from verifier.status import make_entry, make_list_credential, new_bitstring, set_bit
from wallet.present import build_presentation

try:  # tests/ on sys.path (pytest) or the repository root (benchmarks)
    from helpers_https import https_server
except ImportError:  # pragma: no cover
    from tests.helpers_https import https_server

CEAD = "https://w3id.org/cead/vocab#"
DPV = "https://w3id.org/dpv#"
PD = "https://w3id.org/dpv/pd#"
DATASET = "https://data.fife.example/dataset/homelessness-applications"
OTHER_DATASET = "https://data.fife.example/dataset/council-tax"
API = "https://api.fife.example:8443"


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class Party:
    def __init__(self, name: str):
        self.name = name
        self.key = PrivateKey.generate()
        self.did = did_key(self.key.public)
        self.kid = f"{self.did}#{self.key.public.to_multikey()}"

    def __repr__(self) -> str:
        return f"<Party {self.name}>"


class StatusServer:
    """Bitstring status lists, one per (issuer, purpose), served and signed on each request."""

    def __init__(self) -> None:
        self.lists: dict[str, tuple[Party, str, bytearray]] = {}
        self.next_index: dict[str, int] = {}
        self.base_url = ""
        self.up = True
        self.app = Flask("status-lists")

        @self.app.get("/status/<name>")
        def serve(name: str):
            if not self.up or name not in self.lists:
                return Response("unavailable", status=503)
            issuer, purpose, bits = self.lists[name]
            url = f"{self.base_url}/status/{name}"
            doc = make_list_credential(url, issuer.did, purpose, bytes(bits), _iso(datetime.now(timezone.utc)
                                                                                   - timedelta(minutes=1)))
            return Response(sign_jwt(doc, issuer.key, issuer.kid, typ="vc+jwt"), mimetype="application/vc+jwt")

    def entries(self, issuer: Party) -> list[dict]:
        out = []
        for purpose in ("revocation", "suspension"):
            name = f"{issuer.name}-{purpose}"
            if name not in self.lists:
                self.lists[name] = (issuer, purpose, new_bitstring())
                self.next_index[name] = 7
            index = self.next_index[name]
            self.next_index[name] += 1
            out.append(make_entry(f"{self.base_url}/status/{name}", index, purpose))
        return out

    def set(self, credential_doc: dict, purpose: str, value: bool = True) -> None:
        for entry in credential_doc["credentialStatus"]:
            if entry["statusPurpose"] == purpose:
                name = entry["statusListCredential"].rsplit("/", 1)[1]
                set_bit(self.lists[name][2], int(entry["statusListIndex"]), value)
                return
        raise KeyError(purpose)


class World:
    def __init__(self, status: StatusServer, ca_bundle: str | None):
        self.status = status
        self.ca_bundle = ca_bundle
        # the network settings of a node in this world: its status lists are served on 127.0.0.1
        self.network = {"allow_private": True, "ca_bundle": ca_bundle}
        self.controller = Party("controller")
        self.iao = Party("iao")
        self.deputy = Party("deputy")
        self.body = Party("certbody")
        self.rogue_body = Party("roguebody")
        self.recipient = Party("recipient")
        self.stranger = Party("stranger")
        self.now = datetime.now(timezone.utc)
        self.docs: dict[str, dict] = {}   # credential (as issued: JWT or JSON) -> its JSON document
        # the default chain: controller -> iao (may sub-delegate) -> deputy; deputy approves; body certifies
        self.d1 = self.delegation(self.controller, self.iao, actions=["ApproveDisclosure", "SubDelegate"],
                                  max_depth=1)
        self.d2 = self.delegation(self.iao, self.deputy, parent=self.d1, max_depth=0)
        self.approval = self.make_approval(self.deputy, chain=[self.d1, self.d2])
        self.cert = self.certification(self.body, self.recipient)

    # ---- credentials ---------------------------------------------------------------------------------------
    def issue(self, issuer: Party, subject: models._Subject, *, fmt: str = "jwt", status: bool = True,
              valid_until: datetime | None = None, valid_from: datetime | None = None) -> Any:
        doc = subject.to_credential(issuer.did, id=f"urn:uuid:{uuid.uuid4()}",
                                    valid_from=_iso(valid_from or self.now - timedelta(days=1)),
                                    valid_until=_iso(valid_until or self.now + timedelta(days=365)))
        if status:
            doc["credentialStatus"] = self.status.entries(issuer)
        secured = sign_jwt(doc, issuer.key, issuer.kid) if fmt == "jwt" else add_proof(doc, issuer.key, issuer.kid)
        self.docs[secured if isinstance(secured, str) else secured["id"]] = doc
        return secured

    def doc(self, credential: Any) -> dict:
        return self.docs[credential if isinstance(credential, str) else credential["id"]]

    def ref(self, credential: Any) -> dict:
        return {"id": self.doc(credential)["id"], "digest": models.credential_digest(credential)}

    def scope(self, **changes) -> dict:
        base = {"datasets": [DATASET, OTHER_DATASET],
                "dataItems": ["applicationId", "ageBand", "localAuthority", "outcome", "count"],
                "purposes": [DPV + "ProvideOfficialStatistics"],
                "notBefore": _iso(self.now - timedelta(days=30)), "notAfter": _iso(self.now + timedelta(days=700))}
        base.update(changes)
        return base

    def delegation(self, issuer: Party, delegate: Party, *, parent: Any = None, actions=("ApproveDisclosure",),
                   max_depth: int | None = None, fmt: str = "jwt", **scope_changes) -> Any:
        scope = self.scope(**scope_changes)
        if max_depth is not None:
            scope["maxDelegationDepth"] = max_depth
        subject = models.DelegatedAuthority.model_validate({
            "id": delegate.did, "role": "InformationAssetOwner", "onBehalfOf": self.controller.did,
            "allowedActions": list(actions), "scope": scope,
            **({"parentDelegation": self.ref(parent)} if parent is not None else {})})
        return self.issue(issuer, subject, fmt=fmt)

    def approval_subject(self, **changes) -> dict:
        """The standard approval: no row ceiling (``maxRowsPerTransfer``), so that its pulls may be decided with no
        response to count (a bare ``decide``, nginx ``/authz``, Envoy); a test of the row ceiling passes
        ``maxRowsPerTransfer`` and sends its pulls where the response is counted (middleware, checking proxy)."""
        subject = {
            "agreement": {"id": "https://fife.example/agreements/dsa-17",
                          "digest": "sha256-" + "A" * 43},
            "discloser": self.controller.did,
            "recipients": [self.recipient.did],
            "datasets": [DATASET],
            "dataItems": ["ageBand", "localAuthority", "outcome", "count"],
            "dataCategories": [CEAD + "HousingSituation"],
            "purposes": [CEAD + "HomelessnessStatistics"],
            "lawfulBases": [{"party": self.controller.did, "regime": "UKGDPR",
                             "legalBases": ["https://www.legislation.gov.uk/eur/2016/679/article/6/1/e"]},
                            {"party": self.recipient.did, "regime": "UKGDPR",
                             "legalBases": ["https://www.legislation.gov.uk/eur/2016/679/article/6/1/e"]}],
            "dpia": {"outcome": "LowRisk"},
            "sensitivity": "Personal",
            "recipientRequirements": [CEAD + "CyberEssentials"],
            "cadence": f"R/{_iso(self.now - timedelta(days=10))}/P1M",
            "retention": {"receivedData": "P1Y"},
            "onwardSharing": "Prohibited",
            "notBefore": _iso(self.now - timedelta(days=10)),
            "notAfter": _iso(self.now + timedelta(days=365)),
        }
        subject.update(changes)
        return subject

    def make_approval(self, issuer: Party, *, chain: list | None = None, fmt: str = "jwt", **changes) -> Any:
        subject = self.approval_subject(**changes)
        if chain:
            subject["delegationChain"] = [self.ref(c) for c in chain]
        return self.issue(issuer, models.DataSharingApproval.model_validate(subject), fmt=fmt)

    def certification(self, issuer: Party, holder: Party, *, scheme: str = CEAD + "CyberEssentialsPlus",
                      expiry: str | None = None, **kw) -> Any:
        subject = models.OrganisationCertification.model_validate({
            "id": holder.did, "legalName": "Scottish Government Homelessness Analysis",
            "legalIdentifier": "SC-GOV-0001", "scheme": scheme, "certificateNumber": "CEP-42",
            "certificationBody": {"id": issuer.did, "name": issuer.name},
            "issueDate": (self.now - timedelta(days=100)).date().isoformat(),
            "expiryDate": expiry or (self.now + timedelta(days=200)).date().isoformat()})
        return self.issue(issuer, subject, **kw)

    def bundle(self) -> list:
        return [self.approval, self.d1, self.d2, self.cert]

    # ---- policy, request, presentation ---------------------------------------------------------------------
    def policy_data(self, **changes) -> dict:
        data = {
            "controllers": [{"dataset": DATASET, "controller": self.controller.did},
                            {"prefix": "https://data.fife.example/", "controller": self.controller.did}],
            "certification_bodies": {CEAD + "CyberEssentials": [self.body.did]},
            "caches": {"status_lists": {"size": 64, "ttl": 0}},
            "network": dict(self.network),
        }
        data.update(changes)
        return data

    def decider(self, **policy_changes) -> Decider:
        return Decider(parse_policy(self.policy_data(**policy_changes)))

    @staticmethod
    def manifest(**changes) -> dict:
        m = {"dataset": DATASET, "columns": ["ageBand", "localAuthority", "outcome", "count"], "rowCount": 12,
             "purpose": CEAD + "HomelessnessStatistics"}
        m.update(changes)
        return {k: v for k, v in m.items() if v is not None}

    def request(self, method: str = "GET", url: str = f"{API}/datasets/homelessness", body: bytes | None = None,
                response_checked: bool = False, **manifest_changes) -> TransferRequest:
        """``response_checked``: a pull whose response the gateway will check (as the middleware's are)."""
        return TransferRequest(method=method, url=url, body=body, manifest=self.manifest(**manifest_changes),
                               response_checked=response_checked)

    def present(self, request: TransferRequest, credentials: list | None = None, *, holder: Party | None = None,
                audience: str | None = None, nonce: str | None = None, fmt: str = "jwt", **kw):
        holder = holder or self.recipient
        return build_presentation(holder.did, holder.key, holder.kid,
                                  self.bundle() if credentials is None else credentials, format=fmt,
                                  audience=audience or origin(request.url), nonce=nonce or request.binding, **kw)


@contextmanager
def world() -> Iterator[World]:
    status = StatusServer()
    with https_server(status.app) as (base_url, ca_bundle):
        status.base_url = base_url
        yield World(status, ca_bundle)


def codes(decision) -> set[str]:
    return {p.code for p in decision.reasons}


__all__ = ["World", "world", "codes", "Party", "StatusServer", "DATASET", "OTHER_DATASET", "API", "CEAD", "DPV",
           "Scenario", "scenarios", "SCENARIOS", "EXAMPLES"]


# ---- the worked examples in schemas/examples, signed and served -------------------------------------------------

EXAMPLES = Path(__file__).resolve().parent.parent / "schemas" / "examples"
SCENARIOS = ("police", "homelessness", "fsm", "child-poverty")


class RewritingFetcher:
    """Fetches ``https://<host>/<path>`` from ``<base>/<host>/<path>`` on the local HTTPS test server, so the
    examples' did:web identities resolve over real HTTPS on 127.0.0.1."""

    def __init__(self, base_url: str, ca_bundle: str):
        from verifier.http import Fetcher
        self.base_url = base_url
        self.fetcher = Fetcher(allow_private=True, ca_bundle=ca_bundle)

    def get(self, url: str, *args, **kwargs):
        rest = url.split("://", 1)[1]
        return self.fetcher.get(f"{self.base_url}/{rest}", *args, **kwargs)


class Scenario:
    """One example transfer: its credentials signed (eddsa-rdfc-2022) by keys of the DIDs they name, the chain
    digests re-pinned, the DID documents served, and a policy that trusts exactly the example's parties.

    The two examples whose output is a privacy-preserving computation's (``COMPUTED``) get it by really running
    the computation, once, the first time the scenario's manifest, payload, credentials or clock are asked for:
    homelessness, a secure aggregation (MPyC, one process per council) of ``homelessness-council-tables.json``, each
    council checking its own approval; child poverty, a PSI cardinality with DP noise (openmined-psi) between SSS's
    holder service (HTTPS on 127.0.0.1) and Glasgow. The manifest then carries the co-signed run attestation
    (``runAttestation``), the payload is the attested output, and the presentation holds every contributing
    council's approval. The decision clock moves to the run's end (an attestation is not valid before it)."""

    COMPUTED = ("homelessness", "child-poverty")
    PSI_PARTIES = ("did:web:socialsecurity.gov.scot.example", "did:web:glasgow.example")

    def __init__(self, name: str, files: dict, keys: dict, base_url: str, ca_bundle: str):
        from verifier.did import build_did_document, did_web_url
        load = lambda f: json.loads((EXAMPLES / f).read_text())  # noqa: E731
        expected = load("expected.json")
        self.name = name
        self.base_url, self.ca_bundle = base_url, ca_bundle
        # the computations' nodes fetch DIDs and status lists from this test's servers on 127.0.0.1
        self.local_network = {"allow_private": True, "ca_bundle": ca_bundle}
        case = next(c for c in expected["cases"]
                    if c["check"] == "transfer" and c["subject"] == f"{name}-transfer-allowed.json")
        self._at = datetime.fromisoformat(case["at"].replace("Z", "+00:00"))
        self._manifest = load(case["subject"])
        self._payload = (EXAMPLES / case["payload"]).read_bytes() if case.get("payload") else None
        self.run_attestation: dict | None = None
        self._ran = name not in self.COMPUTED
        approval = load(case["against"])
        by_id = {}
        for f in EXAMPLES.glob("*delegation*.json"):
            doc = json.loads(f.read_text())
            by_id[doc["id"]] = doc
        chain = [by_id[r["id"]] for r in approval["credentialSubject"].get("delegationChain", [])]
        cert_file = EXAMPLES / f"{name}-certification.json"
        certification = json.loads(cert_file.read_text()) if cert_file.exists() else None
        self.holder_did = self._manifest.get("recipient") or approval["credentialSubject"]["recipients"][0]
        self.council_tables = load("homelessness-council-tables.json") if name == "homelessness" else None
        contributors = [load(f) for did, f in self.council_tables["approvals"].items()
                        if f != case["against"]] if self.council_tables else []
        dids = {d["issuer"] for d in [approval, *chain, *contributors] + ([certification] if certification else [])}
        dids.add(self.holder_did)
        if self.council_tables:
            dids |= set(self.council_tables["tables"])
        if name == "child-poverty":
            dids |= set(self.PSI_PARTIES)
        self.keys = keys   # shared by all scenarios: some parties appear in several
        for did in sorted(dids):
            if did not in keys:
                keys[did] = PrivateKey.generate()
                path = "/" + did_web_url(did).split("://", 1)[1]
                files[path] = build_did_document(did, [("#key-1", keys[did].public)])

        def sign(doc: dict) -> dict:
            return add_proof(doc, self.keys[doc["issuer"]], doc["issuer"] + "#key-1", created=self._at
                             - timedelta(days=1))

        signed_chain: list[dict] = []
        for link in chain:
            link = json.loads(json.dumps(link))
            if signed_chain:
                link["credentialSubject"]["parentDelegation"] = {
                    "id": signed_chain[-1]["id"], "digest": models.credential_digest(signed_chain[-1])}
            signed_chain.append(sign(link))
        approval["credentialSubject"]["delegationChain"] = [
            {"id": c["id"], "digest": models.credential_digest(c)} for c in signed_chain]
        self.approval = sign(approval)
        self.contributor_approvals = [sign(c) for c in contributors]   # the other councils' own approvals
        self._credentials = [self.approval, *signed_chain] + ([sign(certification)] if certification else [])
        subject = approval["credentialSubject"]
        schemes = subject.get("recipientRequirements", [])
        bodies = {}
        if certification:
            for scheme in schemes + [certification["credentialSubject"]["scheme"]]:
                bodies[models.vocab.expand(scheme)] = [certification["issuer"]]
        self.policy = {"controllers": [{"dataset": ds, "controller": subject["discloser"]}
                                       for ds in subject["datasets"]],
                       "certification_bodies": bodies}
        self.fetcher = RewritingFetcher(base_url, ca_bundle)

    # ---- the computation behind the output, run once on first use ------------------------------------------------
    def _ensure_run(self) -> None:
        if self._ran:
            return
        self._ran = True
        result = self._aggregate() if self.name == "homelessness" else self._psi()
        self.run_attestation, self._payload = result.attestation, result.output
        self._manifest = self.attested(self._manifest)
        self._credentials = self._credentials + self.contributor_approvals
        completed = datetime.fromisoformat(result.attestation["validFrom"].replace("Z", "+00:00"))
        self._at = max(self._at, completed + timedelta(seconds=1))

    def _signer(self, did: str):
        from wallet.computations.attest import Signer
        return Signer(did, self.keys[did], did + "#key-1")

    def _aggregate(self):
        """The real secure aggregation across the three councils' processes; its output must be the example's
        pooled table exactly (the sum of the councils' tables)."""
        import tempfile
        from wallet.computations.aggregation import AggregationInput, run_secure_aggregation
        from wallet.computations.attest import write_key
        tables = self.council_tables
        approvals = {self.approval["credentialSubject"]["discloser"]: self.approval,
                     **{a["credentialSubject"]["discloser"]: a for a in self.contributor_approvals}}
        with tempfile.TemporaryDirectory(prefix="cead-example-mpc-") as tmp:
            inputs = []
            for index, (did, counts) in enumerate(tables["tables"].items()):
                key_path, passphrase = write_key(Path(tmp), f"council-{index}", self.keys[did])
                inputs.append(AggregationInput(did, did + "#key-1", key_path, counts, approvals[did], passphrase))
            result = run_secure_aggregation(inputs, cells=tables["cells"], columns=tables["columns"],
                                            output_parties=[self.holder_did], network=self.local_network,
                                            did_web_base=self.base_url)
        if result.output != self._payload:
            raise AssertionError(f"the secure aggregation gave {result.output!r}, not the example's pooled table "
                                 f"{self._payload!r} (refused: {result.refused})")
        return result

    def _psi(self):
        """The real PSI cardinality: SSS's holder service (HTTPS on 127.0.0.1) and Glasgow, epsilon 0.5."""
        import tempfile
        from wallet.computations.attest import node_verifier
        from wallet.computations.budget import QueryBudget
        from wallet.computations.psi import Holder, psi_app, run_psi_cardinality
        sss, glasgow = self.PSI_PARTIES
        people = [f"CHI{n:010d}" for n in range(1000, 1400)]
        verifier = node_verifier(self.local_network, did_web_base=self.base_url)
        with tempfile.TemporaryDirectory(prefix="cead-example-psi-") as tmp:
            holder = Holder(self._signer(sss), people[:250], self.approval, QueryBudget(Path(tmp) / "budget.db"),
                            verifier)
            with https_server(psi_app(holder)) as (url, ca):
                holder.origin = url
                dp = next(p for p in self.approval["credentialSubject"]["privacyProtocol"]
                          if p["kind"] == "differentialPrivacy")
                return run_psi_cardinality(url, self._signer(glasgow), people[150:], self.approval, holder=sss,
                                           epsilon=dp["epsilon"], delta=dp["delta"], verifier=verifier,
                                           ca_bundle=ca)

    def attested(self, manifest: dict) -> dict:
        """``manifest`` with the run attestation of this scenario's computation (``runAttestation``)."""
        self._ensure_run()
        return {**manifest, "runAttestation": self.run_attestation}

    @property
    def manifest(self) -> dict:
        self._ensure_run()
        return self._manifest

    @property
    def payload(self) -> bytes | None:
        self._ensure_run()
        return self._payload

    @property
    def credentials(self) -> list:
        self._ensure_run()
        return self._credentials

    @property
    def at(self) -> datetime:
        self._ensure_run()
        return self._at

    def decider(self, ledger=None) -> Decider:
        self._ensure_run()
        return Decider(parse_policy(self.policy), fetcher=self.fetcher, clock=lambda: self._at, ledger=ledger)

    def present(self, request: TransferRequest) -> str:
        key = self.keys[self.holder_did]
        return build_presentation(self.holder_did, key, self.holder_did + "#key-1", self.credentials,
                                  audience=origin(request.url), nonce=request.binding, now=self.at)


@contextmanager
def scenarios() -> Iterator[dict[str, Scenario]]:
    """Every example scenario, with its did:web documents served over HTTPS on 127.0.0.1."""
    files: dict[str, Any] = {}
    with https_server(static=files) as (base_url, ca_bundle):
        models.vocab.registry().load(json.loads((EXAMPLES / "catalogue.json").read_text()))
        keys: dict[str, PrivateKey] = {}
        yield {name: Scenario(name, files, keys, base_url, ca_bundle) for name in SCENARIOS}
