"""The demo's evidence part (issue 15): each provider's gateway signs a receipt for every decision with its node's
key and stores it in its node (which logs it); recipients' wallets keep their copies; at the end another
organisation witnesses Police Scotland's log over HTTPS and an auditor's `cead audit` of Police Scotland must find
every transfer the demo made to it."""
from __future__ import annotations

from pathlib import Path

AUDITED = "police"       # a Part 3 controller: its report carries the DPA 2018 s.62 view
WITNESS = "fife"         # another organisation's node co-signs its log


def attach(decider, node_home: str, spool: str | None = None) -> None:
    """In a provider's data API: receipts signed as the provider's node; spooled (``spool``: as in production, the
    node's sequencer process stores and logs them, see docs/evidence.md), else stored and logged in its database
    in the decision's own transaction."""
    from issuer.evidence import receipts
    from issuer.evidence.spool import ReceiptSpool
    from issuer.node import Node
    node = Node.open(Path(node_home), migrate=True)
    decider.receipt_signer = receipts.signer_for(node)
    decider.receipt_sink = ReceiptSpool(spool) if spool else receipts.sink(node)


def drained(runner, timeout: float = 60.0) -> None:
    """Wait until every provider's sequencer has logged all that its gateway spooled (typically one 50 ms window)."""
    import time
    from issuer.evidence.spool import pending
    from .demo import DemoError
    spools = [live.spool for live in runner.live.values() if getattr(live, "spool", None)]
    deadline = time.monotonic() + timeout
    while any(pending(spool) for spool in spools):
        if time.monotonic() > deadline:
            raise DemoError(f"the receipt sequencers did not log every spooled receipt within {timeout:.0f}s "
                            f"(logs in {runner.workdir / 'logs'})")
        time.sleep(0.05)


def finish(runner) -> None:
    """Witness the audited node's log, audit it, and check the audit found every transfer made to it."""
    from issuer.evidence import receipts, record, witness
    from verifier.http import Fetcher
    from . import audit
    from .demo import DemoError

    echo = runner.echo
    drained(runner)   # the receipts spooled by the gateways are in their nodes' logs
    live, witness_live = runner.live[AUDITED], runner.live[WITNESS]
    node, witness_node = live._node, witness_live._node
    log = record.log_of(node)
    witness.watch(witness_node, log.key.vkey())
    ca = str(runner.ca.ca_pem)
    witness.submit(log, witness.http_poster(witness_live.url + "/witness", node.fetcher()))   # its network rules
    echo("")
    echo(f"{witness_live.party.name} witnessed {live.party.name}'s log (checked it only grew, and co-signed it).")
    result = audit.run(live.url, fetcher=Fetcher(allow_private=True, ca_bundle=ca),
                       witnesses=[witness.witness_key(witness_node).vkey()])
    named = {other._node.did: other.party.name for other in runner.live.values()}    # witnesses' keys name DIDs
    # the auditor knows the organisations by name (`cead audit --names`); the log holds none
    csv_path, html_path = audit.write_report(result, runner.workdir / "audit", names=named)
    mine = [r for r in runner.rows if r.kind == "transfer" and r.organisation.endswith(f"<- {live.party.short}")]
    allowed = sum(1 for r in mine if r.decision == "allow")
    decided = sum(1 for r in mine if r.decision in ("allow", "deny"))
    found_allowed = sum(1 for r in result.receipts() if r["meta"].get("decision") == "allow")
    # decisions on a presentation (a holder); the health checks' bare requests are refused with receipts too
    found = sum(1 for r in result.receipts() if r["meta"].get("holder"))
    kept = sum(len(receipts.listing(other._node.engine, side=receipts.RECIPIENT)) for other in runner.live.values())
    stored = len(receipts.listing(node.engine, side=receipts.PROVIDER))
    latest = result.checkpoints[-1] if result.checkpoints else {}
    echo(f"Receipts: {live.party.name} stored {stored}; the recipients' wallets hold {kept} copies across all nodes.")
    echo(f"Audit of {live.party.name} ({result.did}): {result.size} log entries, checkpoints "
         f"{'consistent' if result.ok else 'NOT consistent'}, latest co-signed by "
         f"{', '.join(named.get(w, w) for w in latest.get('witnesses') or []) or 'no witness'}; {found_allowed} of {allowed} transfers and "
         f"{found} of {decided} decisions on a presentation found. Report: {csv_path} and {html_path}")
    if not result.ok or found_allowed != allowed or found != decided \
            or not latest.get("witnesses"):
        raise DemoError(f"the audit of {live.party.name} did not find every transfer: "
                        + "; ".join(p.message for p in result.problems))
