"""The demo's computations that really run (docs/computations.md), played after the transfer script:

- child-poverty take-up: a PSI cardinality between Social Security Scotland's node (the holder, in a process of its
  own, serving HTTPS) and Glasgow's (the learner), with differential-privacy noise drawn by SSS; four quarterly
  releases, the fifth refused by SSS's own query budget whatever Glasgow says;
- homelessness: a secure aggregation (MPyC, one process per council) across Fife, Dundee and Perth & Kinross, each
  with its own approval; the pooled table is released by Fife's gateway only with the run attestation and every
  council's approval; when Dundee withholds, there is no pooled output at all.

Every output is checked as a gateway would (``verifier.attestation.check_attestation``); the demo's table shows the
attestation ids. Perth & Kinross has no node in the demo: it takes part with a key of its own (did:key).
"""
from __future__ import annotations

import json
import os
import random
import time
import uuid
from datetime import datetime, timedelta, timezone

LEGAL_BASIS = ["https://www.legislation.gov.uk/eur/2016/679/article/6/1/e"]


def _lawful(*dids: str) -> list[dict]:
    return [{"party": d, "regime": "UKGDPR", "legalBases": LEGAL_BASIS} for d in dids]


def _approval_subject(discloser: str, recipient: str, dataset: str, items: list[str], purpose: str,
                      protocol: list[dict]) -> dict:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    return {
        "agreement": {"id": f"https://gov.scot.example/agreements/{uuid.uuid4()}", "digest": "sha256-" + "A" * 43},
        "discloser": discloser, "recipients": [recipient], "datasets": [dataset], "dataItems": items,
        "dataCategories": ["cead:Aggregate"], "purposes": [purpose], "lawfulBases": _lawful(discloser, recipient),
        "dpia": {"outcome": "LowRisk"}, "sensitivity": "Personal", "cadence": f"R/{_z(now - timedelta(days=1))}/P3M",
        "retention": {"receivedData": "P1Y"}, "onwardSharing": "Prohibited", "privacyProtocol": protocol,
        "notBefore": _z(now - timedelta(days=1)), "notAfter": _z(now + timedelta(days=365))}


def _z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _issue_by_node(node, subject: dict) -> dict:
    from issuer import issuing
    credential = issuing.build_credential(node, "DataSharingApprovalCredential", subject)
    return issuing.issue(node, credential, {}).credential


def _issue_by_key(party, subject: dict) -> dict:
    from issuer.signing import add_proof
    from schemas.models import DataSharingApproval
    credential = DataSharingApproval.model_validate(subject).to_credential(
        party.did, id=f"urn:uuid:{uuid.uuid4()}",
        valid_from=subject["notBefore"], valid_until=subject["notAfter"])
    return add_proof(credential, party.key, party.kid)


class _KeyParty:
    """A party without a node (Perth & Kinross): a key of its own."""

    def __init__(self, name: str):
        from issuer.keys import PrivateKey
        from verifier.did import did_key
        self.name = name
        self.key = PrivateKey.generate()
        self.did = did_key(self.key.public)
        self.kid = f"{self.did}#{self.key.public.to_multikey()}"


def pull_output(demo, row, recipient: str, provider: str, path: str, query: str, manifest: dict, presented: list,
                label: str, expected: str, reason: str | None, run_id: str | None) -> None:
    """``recipient`` pulls a computation's output from ``provider``'s gateway (its data API behind the middleware),
    presenting exactly ``presented`` (by id) with ``manifest``; adds the decision's row (the attestation's id)."""
    import requests

    from wallet.client import CeadAuth, TransferDenied, check_response

    from .demo_api import VERIFY_TIME_HEADER
    live = demo.live[provider]
    definition = {"id": f"output-{uuid.uuid4()}", "input_descriptors": [
        {"id": f"c{i}", "constraints": {"fields": [{"path": ["$.id"], "filter": {"type": "string", "const": c["id"]}}]}}
        for i, c in enumerate(presented)]}
    # the definition chooses among everything the wallet holds: the other councils' approvals are for their own
    # datasets, pinned by the run attestation rather than by the transfer's dataset
    auth = CeadAuth(demo.wallet(recipient), manifest=manifest, definition=definition,
                    raise_on_denial=False)
    url = live.api.url + path + query
    response = requests.get(url, auth=auth, verify=str(demo.ca.ca_pem), timeout=60)
    header = response.headers.get(VERIFY_TIME_HEADER)
    decision, reasons = "allow", []
    if response.status_code != 200:
        try:
            check_response(response.status_code, response.content, url)
            decision, reasons = "error", [f"http.{response.status_code}"]
        except TransferDenied as denied:
            decision, reasons = "deny", list(dict.fromkeys(p.code for p in denied.reasons))
    row("transfer", f"{demo.live[recipient].party.short} <- {live.party.short}",
        manifest["dataset"].rsplit("/", 1)[-1], label, expected, reason, decision, reasons,
        float(header) if header else None, attestation=run_id, http_status=response.status_code)


def play_computations(demo) -> None:
    """Play both computations on ``demo``'s live nodes, adding rows to its table."""
    from schemas.errors import CeadError
    from verifier.attestation import attestation_id, check_attestation
    from wallet.computations.aggregation import AggregationInput, run_secure_aggregation
    from wallet.computations.attest import Signer, network_settings, node_verifier, write_key
    from wallet.computations.psi import holder_process, run_psi_cardinality

    from .demo import Row

    folder = demo.workdir / "computations"
    folder.mkdir(exist_ok=True)
    os.chmod(folder, 0o700)
    live = demo.live
    # DIDs and status lists of the live nodes, under Glasgow's (the learner's) own network settings: its node was
    # made with --allow-private-addresses and the demo CA, as every demo node on 127.0.0.1 is
    verifier = node_verifier(live["glasgow"]._node.network)
    step = max((r.step for r in demo.rows), default=0)

    def row(kind: str, org: str, dataset: str, label: str, expected: str, reason: str | None, decision: str,
            reasons: list[str], ms: float | None, *, attestation: str | None = None,
            http_status: int | None = None) -> None:
        nonlocal step
        step += 1
        r = Row(step, kind, org, dataset, label, expected, reason, decision, reasons, ms, http_status,
                attestation)
        demo.rows.append(r)
        demo._say_row(r)

    # ---- child-poverty take-up: PSI cardinality with DP, SSS keeps the books ------------------------------------
    sss, glasgow = live["sss"], live["glasgow"]
    demo.echo("")
    demo.echo("Child-poverty take-up: Glasgow learns how many of its children eligible for free school meals also "
              "receive the Scottish Child Payment (a PSI cardinality with SSS, noised by SSS; 4 releases a year).")
    protocol = [{"kind": "psiCardinality", "parties": [sss.did, glasgow.did], "learners": [glasgow.did]},
                {"kind": "differentialPrivacy", "epsilon": 0.5, "delta": 1e-6,
                 "budget": {"period": "P1Y", "epsilon": 2.0, "maxReleases": 4}}]
    dataset = "https://data.socialsecurity.gov.scot.example/dataset/scottish-child-payment-recipients"
    approval = _issue_by_node(sss._node, _approval_subject(
        sss.did, glasgow.did, dataset, ["recipientId"], "cead:ChildPovertyStatistics", protocol))
    size = 2000 if demo.fast else 20000
    rng = random.Random(2026)
    people = [f"CHI{n:010d}" for n in rng.sample(range(10**9), size * 2)]
    sss_set, glasgow_set = people[:size], people[size // 2: size + size // 2]
    plain = len(set(sss_set) & set(glasgow_set))
    holder = folder / "psi-sss"
    holder.mkdir()
    (holder / "items.txt").write_text("\n".join(sss_set), "utf-8")
    (holder / "approval.json").write_text(json.dumps(approval), "utf-8")
    key_path, passphrase = write_key(holder, "sss", sss._node.key)
    config = {"did": sss.did, "kid": sss._node.verification_method_id, "keyPem": key_path,
              "items": str(holder / "items.txt"), "approval": str(holder / "approval.json"),
              "ledger": str(holder / "psi-budget.sqlite"), "minSetSize": 100, "cert": str(demo.ca.cert_pem),
              "certKey": str(demo.ca.key_pem), "network": network_settings(sss._node.network)}
    learner = Signer.from_node(glasgow._node)
    with holder_process(config, holder, passphrase) as (url, _proc):
        for quarter in range(1, 6):
            started = time.perf_counter()
            label = f"PSI take-up, release {quarter} of 4 a year" + (" (SSS's own books)" if quarter > 4 else "")
            expected, reason = ("allow", None) if quarter <= 4 else ("deny", "computation.query_budget_exhausted")
            try:
                result = run_psi_cardinality(url, learner, glasgow_set, approval, holder=sss.did, epsilon=0.5,
                                             delta=1e-6, verifier=verifier, ca_bundle=str(demo.ca.ca_pem))
            except CeadError as exc:
                row("computation", "Glasgow City", "scp x fsm", label, expected, reason, "deny",
                    [exc.problem.code], (time.perf_counter() - started) * 1e3)
                continue
            problems = check_attestation(result.attestation, result.output, protocol, verifier=verifier,
                                         approvals=[approval])
            row("computation", "Glasgow City", "scp x fsm", f"{label}: {result.cardinality} (plain {plain})",
                expected, reason, "deny" if problems else "allow", [p.code for p in problems],
                (time.perf_counter() - started) * 1e3, attestation=result.run_id)

    # ---- homelessness: secure aggregation across three councils ------------------------------------------------
    fife, dundee, sg = live["fife"], live["dundee"], live["sg-childpov"]
    pkc = _KeyParty("Perth & Kinross Council")
    demo.echo("")
    demo.echo("Homelessness: Fife, Dundee and Perth & Kinross pool their HL1 tables by secure aggregation (MPyC, one "
              "process each); each council's node checks its own approval before its figures are shared.")
    councils = [("fife", fife.did, Signer.from_node(fife._node)), ("dundee", dundee.did, Signer.from_node(dundee._node)),
                ("pkc", pkc.did, Signer(pkc.did, pkc.key, pkc.kid))]
    dids = [c[1] for c in councils]
    sa = {"kind": "secureAggregation", "inputParties": dids, "computeParties": dids, "outputParties": [sg.did],
          "collusionThreshold": 2}
    dataset = "https://data.fife.example/dataset/homelessness-applications-hl1"
    items = ["quarter", "household_type", "count"]
    purpose = "cead:HomelessnessStatistics"
    threshold = {"kind": "threshold", "minCellCount": 10, "zerosAllowed": False}

    def own(org: str) -> str:   # each council approves the disclosure of its own table
        return dataset if org == "fife" else f"https://data.{org}.example/dataset/homelessness-applications-hl1"

    approvals = [_issue_by_node(fife._node, _approval_subject(fife.did, sg.did, own("fife"), items, purpose,
                                                              [sa, threshold])),
                 _issue_by_node(dundee._node, _approval_subject(dundee.did, sg.did, own("dundeecity"), items,
                                                                purpose, [sa, threshold])),
                 _issue_by_key(pkc, _approval_subject(pkc.did, sg.did, own("pkc"), items, purpose,
                                                      [sa, threshold]))]
    cells = [f"2026Q{q}|{h}" for q in (1, 2, 3) for h in ("single male", "single female", "single parent",
                                                            "couple with children", "other")]
    rng = random.Random(11)
    tables = [{cell: rng.randrange(5, 120) for cell in cells} for _ in councils]
    plain = {cell: sum(t[cell] for t in tables) for cell in cells}
    mpc = folder / "mpc"
    mpc.mkdir()

    def inputs(approval_list: list) -> list:
        out = []
        for (name, did, signer), table, credential in zip(councils, tables, approval_list):
            key_path, passphrase = write_key(mpc, name, signer.key)
            out.append(AggregationInput(did, signer.kid, key_path, table, credential, passphrase))
        return out

    started = time.perf_counter()
    result = run_secure_aggregation(inputs(approvals), cells=cells, columns=["quarter", "household_type"],
                                    output_parties=[sg.did], network=fife._node.network)
    ms = (time.perf_counter() - started) * 1e3
    same = result.table == plain
    run_id = attestation_id(result.attestation)
    row("computation", "Fife, Dundee, P&K", "homelessness-hl1",
        f"secure aggregation of {len(cells)} cells{'' if same else ' (DIFFERS from the plain sum)'}", "allow", None,
        "allow" if result.output and same else "deny", sorted({r["code"] for r in result.refused}), ms,
        attestation=run_id)
    # Fife's node, a compute party, holds the pooled table; its gateway releases it to the Scottish Government
    # only with the run attestation covering these bytes and every contributing council's own approval
    if result.output:
        name = run_id.rsplit(":", 1)[-1]
        (demo.outputs_dir("fife") / f"{name}.csv").write_bytes(result.output)
        wallet = demo.wallet("sg-childpov")
        for credential in approvals:
            imported = wallet.import_credential(credential, source="demo: secure aggregation approvals")
            if not imported.ok:
                raise RuntimeError(f"SG's wallet refused a council's approval: {imported.problems}")
        manifest = {"dataset": dataset, "purpose": purpose, "recipient": sg.did, "columns": items,
                    "countColumns": ["count"], "rowCount": len(cells), "protocolRun": [sa],
                    "runAttestation": result.attestation}
        for label, presented, expected, reason in (
                ("pooled table released with the attestation and every council's approval", approvals, "allow",
                 None),
                ("pooled table released under Fife's approval alone", approvals[:1], "deny",
                 "attestation.contributor_not_approved")):
            pull_output(demo, row, "sg-childpov", "fife", "/homelessness-hl1", f"?output={name}", manifest,
                        presented, label, expected, reason, run_id)
    # Dundee withholds: its approval requires a higher collusion threshold than this run offers
    withheld = _issue_by_node(dundee._node, _approval_subject(dundee.did, sg.did, own("dundeecity"), items, purpose,
                                                              [dict(sa, collusionThreshold=3), threshold]))
    started = time.perf_counter()
    result = run_secure_aggregation(inputs([approvals[0], withheld, approvals[2]]), cells=cells,
                                    columns=["quarter", "household_type"], output_parties=[sg.did],
                                    network=fife._node.network)
    row("computation", "Fife, Dundee, P&K", "homelessness-hl1", "secure aggregation, Dundee withholding approval",
        "deny", "computation.not_authorised", "deny" if result.output is None else "allow",
        sorted({r["code"] for r in result.refused}), (time.perf_counter() - started) * 1e3)
