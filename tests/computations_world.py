"""Parties, approvals and processes for the computation tests, the benchmark and the demo's checks: a PSI holder
(the non-learning party) served by a process of its own over HTTPS, and councils for secure aggregation."""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import trustme

from wallet.computations.aggregation import AggregationInput
from wallet.computations.attest import write_key
from wallet.computations.psi import holder_process

LEGAL_BASIS = ["https://www.legislation.gov.uk/eur/2016/679/article/6/1/e"]


def lawful(*dids: str) -> list[dict]:
    return [{"party": d, "regime": "UKGDPR", "legalBases": LEGAL_BASIS} for d in dids]


def approval(w, issuer, *, recipients: list[str], protocol: list[dict], fmt: str = "ldp", **changes):
    """An approval issued by ``issuer`` for its own disclosure (``discloser`` = its DID)."""
    return w.make_approval(issuer, fmt=fmt, discloser=issuer.did, recipients=recipients,
                           lawfulBases=lawful(issuer.did, *recipients), privacyProtocol=protocol, **changes)


def psi_protocol(holder: str, learner: str, *, epsilon: float = 50.0, delta: float = 1e-6, budget_epsilon=1000.0,
                 max_releases: int = 4) -> list[dict]:
    return [{"kind": "psiCardinality", "parties": [holder, learner], "learners": [learner]},
            {"kind": "differentialPrivacy", "epsilon": epsilon, "delta": delta,
             "budget": {"period": "P1Y", "epsilon": budget_epsilon, "maxReleases": max_releases}}]


def tls_files(folder: Path) -> dict[str, str]:
    """A throwaway CA and a certificate for localhost/127.0.0.1 written to ``folder``."""
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    paths = {"cert": str(folder / "tls.pem"), "certKey": str(folder / "tls.key"), "caBundle": str(folder / "ca.pem")}
    cert.cert_chain_pems[0].write_to_path(paths["cert"])
    cert.private_key_pem.write_to_path(paths["certKey"])
    ca.cert_pem.write_to_path(paths["caBundle"])
    return paths


@contextmanager
def psi_holder(party, items: list[str], approval_credential, folder: Path, *, min_set_size: int = 100,
               network: dict | None = None) -> Iterator[tuple[str, str]]:
    """The holder's PSI service in its own process; yields (https origin, CA bundle path). ``network``: the
    holder node's network settings (config.yaml's ``network`` fields), under which it reads its approval's status
    list on every query: for the test's status server on 127.0.0.1, ``allow_private`` and that server's CA."""
    folder.mkdir(parents=True, exist_ok=True)
    tls = tls_files(folder)
    key_path, passphrase = write_key(folder, "holder", party.key)
    (folder / "items.txt").write_text("\n".join(items), "utf-8")
    (folder / "approval.json").write_text(approval_credential if isinstance(approval_credential, str)
                                          else json.dumps(approval_credential), "utf-8")
    config = {"did": party.did, "kid": party.kid, "keyPem": key_path,
              "items": str(folder / "items.txt"), "approval": str(folder / "approval.json"),
              "ledger": str(folder / "ledger.sqlite"), "minSetSize": min_set_size,
              "cert": tls["cert"], "certKey": tls["certKey"], "network": network}
    with holder_process(config, folder, passphrase) as (url, _proc):
        yield url, tls["caBundle"]


def aggregation_protocol(councils: list, output: str, *, threshold: int = 2) -> dict:
    dids = [c.did for c in councils]
    return {"kind": "secureAggregation", "inputParties": dids, "computeParties": dids, "outputParties": [output],
            "collusionThreshold": threshold}


def aggregation_inputs(councils: list, tables: list[dict], approvals: list, folder: Path) -> list[AggregationInput]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for index, (council, table, credential) in enumerate(zip(councils, tables, approvals)):
        key, passphrase = write_key(folder, f"council-{index}", council.key)
        out.append(AggregationInput(council.did, council.kid, key, table, credential, passphrase))
    return out
