"""Secure aggregation across three or more nodes with MPyC (Shamir secret sharing, semi-honest, honest majority):
each input party's table of counts is secret-shared among the compute parties, only the cell-by-cell sum is opened.

Each party is a process of its own (``python -m wallet.computations.aggregation``, the MPyC runtime connecting the
parties over TCP on 127.0.0.1). Before its input is shared, every party

1. checks its own approval (``verifier.attestation.approval_allows_run``: its own disclosure, a
   ``secureAggregation`` at least as strict, the output parties named as recipients);
2. tells the others whether it consents, with its commitment to its input and its approval's pin: if any party
   withholds, every party stops before anything is shared (no pooled output exists);
3. checks that everyone runs the same run (the same parameters' hash).

Then the table is summed in secret and opened to the compute parties, which here are the input parties
themselves: each learns the pooled table (so the sum of the others' tables; with at least three input parties,
never one other council's figures). Every compute party builds the same run attestation, signs it, and the proofs
are exchanged and combined (issuer: the first party).

``run_secure_aggregation`` starts the processes and collects their results (used by tests, benchmark and demo).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas import jcs
from schemas.errors import CeadError

from .attest import KEY_PASSPHRASE_ENV

IMPLEMENTATION = "mpyc"
CONFIG_ENV = "CEAD_MPC_CONFIG"
BIT_LENGTH = 48            # counts and their sums fit easily


def implementation_version() -> str:
    from importlib.metadata import version
    return version("mpyc")


@dataclass
class AggregationInput:
    """One input party (here also a compute party): identity, key file, its table and its approval."""
    did: str
    kid: str
    key_pem: str               # path of its PKCS#8 key (``attest.write_key``: encrypted with a one-time passphrase)
    counts: dict[str, int]     # cell label -> count (missing cells count 0)
    approval: Any              # its own data-sharing approval (JSON or vc+jwt)
    key_passphrase: str | None = None   # given to its process in the environment, never on the command line


@dataclass
class AggregationResult:
    run_id: str
    output: bytes | None                # the pooled table as CSV (cell,count), identical at every party
    attestation: dict | None
    refused: list[dict]                 # parties that withheld, with their reasons (empty when it ran)
    table: dict[str, int] | None = None


CELL_SEPARATOR = "|"


def output_csv(cells: list[str], sums: list[int], columns: list[str] | None = None) -> bytes:
    """The pooled table as CSV: ``cell,count``, or with ``columns`` (e.g. ``["quarter", "household_type"]``) each
    cell label split at ``|`` into those columns, then ``count`` (a table a gateway's disclosure checks can read)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*(columns or ["cell"]), "count"])
    for cell, value in zip(cells, sums):
        writer.writerow([*(cell.split(CELL_SEPARATOR) if columns else [cell]), value])
    return out.getvalue().encode()


def _read_table(output: str, columns: list[str] | None) -> dict[str, int]:
    rows = csv.DictReader(io.StringIO(output))
    return {(CELL_SEPARATOR.join(row[c] for c in columns) if columns else row["cell"]): int(row["count"])
            for row in rows}


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run_secure_aggregation(inputs: list[AggregationInput], *, cells: list[str], output_parties: list[str],
                           collusion_threshold: int = 2, run_id: str | None = None, network=None,
                           min_input_parties: int = 3, timeout: float = 600, columns: list[str] | None = None,
                           did_web_base: str | None = None) -> AggregationResult:
    """Run one secure aggregation of ``cells`` across ``inputs`` (each a process); returns party 0's result.
    ``network``: the network settings the parties resolve DIDs and read status lists under (``node.network``,
    ``node.fetcher()`` or a mapping of config.yaml's ``network`` fields; None: the defaults, private addresses
    refused; ``attest.node_verifier``); ``columns``: name the parts of the ``|``-separated cell labels in the output
    table (``output_csv``); ``did_web_base``: the parties resolve did:web through this mirror."""
    from .attest import network_settings, new_run_id, now_utc
    from schemas.values import xsd_datetime
    if columns and any(len(c.split(CELL_SEPARATOR)) != len(columns) for c in cells):
        raise CeadError("computation.request_invalid", f"Every cell label must have {len(columns)} parts separated "
                        f"by '{CELL_SEPARATOR}' (one per column {columns}).")
    if len(inputs) < 3:
        raise CeadError("computation.too_few_parties", f"Secure aggregation needs at least 3 parties (MPyC's honest "
                        f"majority, and a pooled output of fewer input parties reveals them); got {len(inputs)}.")
    settings = network_settings(network)      # a bad value is refused here, before any process starts
    run_id = run_id or new_run_id()
    dids = [i.did for i in inputs]
    protocol = {"kind": "secureAggregation", "inputParties": dids, "computeParties": dids,
                "outputParties": list(output_parties), "collusionThreshold": collusion_threshold,
                "threatModel": "semiHonest"}
    run = {"runId": run_id, "cells": list(cells), "protocol": protocol, "minInputParties": min_input_parties,
           "threshold": collusion_threshold - 1, "startedAt": xsd_datetime(now_utc()),
           **({"columns": list(columns)} if columns else {})}
    ports = _free_ports(len(inputs))
    with tempfile.TemporaryDirectory(prefix="cead-mpc-") as tmp:
        procs = []
        for index, party in enumerate(inputs):
            config = {"run": run, "index": index, "did": party.did, "kid": party.kid, "keyPem": party.key_pem,
                      "counts": party.counts, "approval": party.approval, "network": settings,
                      "didWebBase": did_web_base,
                      "out": str(Path(tmp) / f"party-{index}.json")}
            path = Path(tmp) / f"config-{index}.json"
            path.write_text(json.dumps(config), "utf-8")
            argv = [sys.executable, "-m", "wallet.computations.aggregation", "-M", str(len(inputs)), "-I",
                    str(index), "-T", str(collusion_threshold - 1), "--no-log", "--no-prss"]
            for port in ports:
                argv += ["-P", f"127.0.0.1:{port}"]
            env = {**os.environ, CONFIG_ENV: str(path)}
            env.pop(KEY_PASSPHRASE_ENV, None)
            if party.key_passphrase:
                env[KEY_PASSPHRASE_ENV] = party.key_passphrase
            procs.append(subprocess.Popen(argv, env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        errors = []
        for proc in procs:
            try:
                _, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                for p in procs:
                    p.kill()
                raise CeadError("computation.timeout", f"The secure aggregation did not finish in {timeout} s.")
            if proc.returncode not in (0, 3):
                errors.append(err[-800:])
        results = []
        for index in range(len(inputs)):
            path = Path(tmp) / f"party-{index}.json"
            results.append(json.loads(path.read_text("utf-8")) if path.exists() else None)
    if errors or any(r is None for r in results):
        raise CeadError("computation.failed", "A secure-aggregation party failed: " + " | ".join(errors)[-1500:])
    first = results[0]
    if first.get("refused"):
        return AggregationResult(run_id, None, None, first["refused"])
    outputs = {r["output"] for r in results}
    if len(outputs) != 1:
        raise CeadError("computation.failed", "The parties did not obtain the same output.")
    output = first["output"].encode()
    table = _read_table(first["output"], columns)
    return AggregationResult(run_id, output, first["attestation"], [], table)


# ---- one party's process ------------------------------------------------------------------------------------

def _run_hash(run: dict) -> str:
    return hashlib.sha256(jcs.dumps(run)).hexdigest()


async def _party(config: dict) -> int:
    from mpyc.runtime import mpc

    from schemas.attestation import commitment, output_digest
    from schemas.models import Ref, credential_digest
    from verifier.attestation import approval_allows_run
    from verifier.protocols import parse_protocols

    from .attest import Signer, combine, node_verifier, read_key, sign, unsigned_attestation

    run, out_path = config["run"], Path(config["out"])
    cells = run["cells"]
    protocol = parse_protocols(run["protocol"])
    approval = config["approval"]
    verifier = node_verifier(config.get("network"), did_web_base=config.get("didWebBase"))
    why = approval_allows_run(approval, config["did"], "secureAggregation", protocol, run["protocol"]["outputParties"],
                              verifier=verifier)
    unknown = sorted(set(config["counts"]) - set(cells))
    bad = [c for c, v in config["counts"].items() if not isinstance(v, int) or isinstance(v, bool) or v < 0]
    if why is None and (unknown or bad):
        why = f"its table has cells outside the run's ({unknown[:3]}) or counts that are not whole numbers {bad[:3]}."
    vector = [int(config["counts"].get(cell, 0)) for cell in cells]
    own_commitment, salt = commitment({"cells": cells, "counts": vector})
    try:
        ref = Ref(id=(approval.get("id") if isinstance(approval, dict) else None) or "urn:cead:unidentified-approval",
                  digest=credential_digest(approval)).to_json()
    except CeadError:
        ref = None
    mine = {"party": config["did"], "consent": why is None, "reason": why, "commitment": own_commitment,
            "approval": ref, "run": _run_hash(run)}

    await mpc.start()
    everyone = await mpc.transfer(mine)
    refused = [{"party": e["party"], "code": "computation.not_authorised" if not e["consent"] else
                "computation.run_mismatch", "reason": e["reason"] or "it was given a different run."}
               for e in everyone if not e["consent"] or e["run"] != mine["run"]]
    if refused:
        await mpc.shutdown()
        out_path.write_text(json.dumps({"refused": refused}), "utf-8")
        return 3
    secint = mpc.SecInt(BIT_LENGTH)
    shared = mpc.input([secint(v) for v in vector])           # one list per party
    total = shared[0]
    for other in shared[1:]:
        total = mpc.vector_add(total, other)
    sums = [int(v) for v in await mpc.output(total)]
    completed = await mpc.transfer(xsd_datetime_now() if mpc.pid == 0 else None, senders=0)
    output = output_csv(cells, sums, run.get("columns"))
    signer = Signer(config["did"], read_key(config["keyPem"]), config["kid"])
    document = unsigned_attestation(
        everyone[0]["party"], id=run["runId"], protocol_kind="secureAggregation", implementation=IMPLEMENTATION,
        implementation_version=implementation_version(),
        run_parameters={"kind": "secureAggregation", "protocol": [run["protocol"]],
                        "minInputParties": run["minInputParties"], "cells": len(cells),
                        **({"columns": run["columns"]} if run.get("columns") else {}),
                        "shamirThreshold": run["threshold"], "parties": len(everyone)},
        inputs=[{"party": e["party"], "commitment": e["commitment"],
                 **({"approval": e["approval"]} if e["approval"] else {})} for e in everyone],
        compute_parties=[e["party"] for e in everyone], output_parties=run["protocol"]["outputParties"],
        output_digest=output_digest(output), started_at=run["startedAt"], completed_at=completed)
    proofs = await mpc.transfer(sign(document, signer))
    await mpc.shutdown()
    out_path.write_text(json.dumps({"output": output.decode(), "attestation": combine(document, proofs),
                                    "salt": salt}), "utf-8")
    return 0


def xsd_datetime_now() -> str:
    from schemas.values import xsd_datetime
    from .attest import now_utc
    return xsd_datetime(now_utc())


def main() -> int:  # pragma: no cover - a process started by run_secure_aggregation
    config = json.loads(Path(os.environ[CONFIG_ENV]).read_text("utf-8"))
    from mpyc.runtime import mpc
    return mpc.run(_party(config))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
