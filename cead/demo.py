"""`cead demo`: separate organisation nodes on 127.0.0.1 play the Scottish scenarios of ``schemas/examples``.

Each organisation and each person who signs (DPO, Information Asset Owner) gets a node home with its own SQLite
database and keys, served over HTTPS by its own process with a certificate from a CA made for the run; each data
provider runs a data API behind the verifier middleware. The demo then acts as the people and pipelines: it asks
nodes to issue over their VC-API, delivers credentials to inboxes, pulls data with fresh presentations and records
every decision. It exits 0 only if every decision is the one the scenario expects.

This module drives; it does no checking or signing of its own (the nodes, ``wallet`` and ``verifier`` do; an
approver's decision runs ``wallet.sharing.approve`` on that approver's node home, as its approvals page would).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import threading
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from . import demo_health, demo_world as world
from .processes import LocalCA, ProcessGroup, Service, free_port, python_argv


@dataclass
class Live:
    """A party's running node."""
    party: world.Party
    home: Path
    port: int
    did: str
    token: str
    service: Service | None = None
    api: Service | None = None
    sequencer: Service | None = None   # a provider's receipt sequencer (logs what its gateway spools)
    spool: Path | None = None
    _node: Any = None
    _wallet: Any = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


@dataclass
class Row:
    step: int
    kind: str                 # transfer | issue
    organisation: str
    dataset: str
    label: str
    expected: str             # allow | deny | issued | refused
    expected_reason: str | None
    decision: str = "not played"
    reasons: list[str] = field(default_factory=list)
    ms: float | None = None
    http_status: int | None = None
    attestation: str | None = None   # the run attestation's id (urn:cead:run:...) behind a computation's output

    @property
    def ok(self) -> bool:
        if self.decision != self.expected:
            return False
        return self.expected_reason is None or self.expected_reason in self.reasons

    def to_dict(self) -> dict:
        return {"step": self.step, "kind": self.kind, "organisation": self.organisation, "dataset": self.dataset,
                "label": self.label, "expected": self.expected, "expectedReason": self.expected_reason,
                "decision": self.decision, "reasons": self.reasons, "verificationMs": self.ms,
                "httpStatus": self.http_status, "attestation": self.attestation, "ok": self.ok}


def _a_kind(type_name: str) -> str:
    """``DelegatedAuthorityCredential`` -> "a delegation of approval authority" (schemas.words' plain name)."""
    from schemas.words import kind_name
    words = kind_name(type_name)
    words = words[0].lower() + words[1:] if words != type_name else words
    return f"{'an' if words[0] in 'aeiouAEIOU' else 'a'} {words}"


def _rests_on_words(count: int) -> str:
    return "the credential it rests on" if count == 1 else f"the {count} credentials it rests on"


def _first_sentences(message: str, limit: int = 240) -> str:
    """A refusal's message up to ``limit`` characters, cut after a sentence (or a word), never mid-word."""
    if len(message) <= limit:
        return message
    cut = message.rfind(". ", 0, limit)
    return message[:cut + 1] if cut > 0 else message[:message.rfind(" ", 0, limit)] + " ..."


def short_run_id(run_id: str | None) -> str:
    """The first 8 characters of a run attestation's uuid (``urn:cead:run:<uuid>``), as the table shows it."""
    return run_id.rsplit(":", 1)[-1][:8] if run_id else "-"


class DemoError(Exception):
    pass


class Demo:
    def __init__(self, workdir: Path, *, fast: bool = False, echo=click.echo):
        self.workdir = workdir
        self.fast = fast
        self.echo = echo
        self.passphrase = secrets.token_urlsafe(24)   # encrypts every demo key at rest; never printed
        self.ca: LocalCA | None = None
        self.group: ProcessGroup | None = None
        self.live: dict[str, Live] = {}
        self.did_map: dict[str, str] = {}
        self.issued: dict[str, Any] = {}       # example file -> the signed credential
        self.by_id: dict[str, Any] = {}        # credential id -> the signed credential
        self.rows: list[Row] = []
        self.vocabulary_path: Path | None = None   # the run's vocabulary (examples + live competent authorities)

    # ---- set-up ----------------------------------------------------------------------------------------------
    def setup(self) -> None:
        """Create every node home with `cead init` (in parallel), then open each here for its token and wallet."""
        from issuer.node import Node
        from issuer.tokens import SCOPES, create_token
        self.ca = LocalCA(self.workdir / "ca")
        self.group = ProcessGroup(self.ca)
        (self.workdir / "logs").mkdir(exist_ok=True)
        self.echo(f"Node homes, logs and the demo CA: {self.workdir}")
        ports = {party.key: free_port() for party in world.CAST}
        vocabulary = str(self._vocabulary(ports))
        commands = {}
        for party in world.CAST:
            port = ports[party.key]
            commands[party.key] = python_argv(
                "init", "--name", party.name, "--home", str(self._home(party)), "--domain", f"127.0.0.1:{port}",
                "--did", "key" if party.is_person else "web", "--public-url", f"https://127.0.0.1:{port}",
                "--ca-bundle", str(self.ca.ca_pem), "--allow-private-addresses", "--vocabulary", vocabulary)
        self._init_all(commands)
        for party in world.CAST:
            node = Node.open(self._home(party), self.passphrase.encode())
            token = create_token(node.engine, "cead-demo", SCOPES)
            live = Live(party, self._home(party), ports[party.key], node.did, token)
            live._node = node
            self.live[party.key] = live
            for example_did in party.plays:
                self.did_map[example_did] = node.did

    def _vocabulary(self, ports: dict[str, int]) -> Path:
        """The examples' vocabulary, plus the live DIDs of the parties that play a competent authority of the
        rulebook (DPA 2018 Schedule 7), so that nodes and gateways know them as the rulebook knows the examples."""
        from issuer.node import did_web
        from verifier.lawful import builtin
        data = json.loads(world.vocabulary_file().read_text(encoding="utf-8"))
        known = builtin().competent_authorities()
        data["competentAuthorities"] = [did_web(f"127.0.0.1:{ports[p.key]}") for p in world.CAST
                                        if not p.is_person and known & set(p.plays)]
        path = self.workdir / "vocabulary.json"
        path.write_text(json.dumps(data, indent=2), encoding="utf-8")
        self.vocabulary_path = path
        return path

    def _home(self, party: world.Party) -> Path:
        return self.workdir / "nodes" / party.key

    def _init_all(self, commands: dict[str, list[str]]) -> None:
        """Run the `cead init` commands side by side (output in logs/<name>-init.log); a failure stops the demo."""
        env = {**os.environ, "CEAD_PASSPHRASE": self.passphrase}
        running: dict[str, tuple[subprocess.Popen, Path]] = {}
        try:
            for name, argv in commands.items():
                log = self.workdir / "logs" / f"{name}-init.log"
                with open(log, "wb") as out:
                    running[name] = (subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                                      start_new_session=True), log)
            deadline = time.monotonic() + 120
            shown = -1
            while True:
                _check_interrupted()
                for name, (proc, log) in running.items():
                    if proc.poll() not in (None, 0):
                        raise DemoError(f"`cead init` for {name} failed: {log.read_text(errors='replace').strip()}")
                done = sum(proc.poll() == 0 for proc, _ in running.values())
                shown = self._progress("Creating node homes (cead init)", done, len(running), shown)
                if done == len(running):
                    break
                if time.monotonic() > deadline:
                    raise DemoError("`cead init` did not finish within 120 s")
                time.sleep(0.1)
        finally:
            for proc, _ in running.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()

    def _policy(self) -> dict:
        from schemas.vocab import expand
        body = self.live["certbody"].did
        return {
            "controllers": [{"prefix": p.data_prefix, "controller": self.live[p.key].did}
                            for p in world.CAST if p.data_prefix],
            "certification_bodies": {expand(s): [body] for s in
                                     ("cead:CyberEssentials", "cead:CyberEssentialsPlus", "cead:ISO27001")},
            "caches": {"status_lists": {"size": 64, "ttl": 0}},
            "network": {"allow_private": True, "ca_bundle": str(self.ca.ca_pem)},
        }

    def outputs_dir(self, key: str) -> Path:
        """Where a provider's node keeps the computation outputs its data API may release (``?output=``)."""
        folder = self.workdir / "outputs" / key
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def start(self) -> None:
        """Serve every node with `cead issuer serve`, and each provider's data API."""
        env = {"CEAD_PASSPHRASE": self.passphrase}
        ca = self.ca
        for live in self.live.values():
            argv = python_argv("issuer", "serve", "--home", str(live.home), "--port", str(live.port),
                               "--tls-cert", str(ca.cert_pem), "--tls-key", str(ca.key_pem))
            live.service = self.group.start(Service(f"node {live.party.key}", argv, live.port, "/",
                                                    self.workdir / "logs" / f"{live.party.key}.log", env=env))
        # the gateways know which catalogue each dataset is part of from their trust policy, as a real one would
        policy = {**self._policy(), "vocabulary": [str(self.vocabulary_path)]}
        for live in self.live.values():
            if not live.party.provides_data:
                continue
            port = free_port()
            routes = {path: {**route, "outputs": str(self.outputs_dir(live.party.key))} if route.get("outputs")
                      else route for path, route in live.party.data.items()}
            config = {"port": port, "cert": str(ca.cert_pem), "key": str(ca.key_pem), "policy": policy,
                      "routes": routes, "examples": str(world.EXAMPLES),
                      # the provider's gateway keeps its privacy-budget books in its own node's database
                      "ledger": f"sqlite:///{live.home / 'node.db'}",
                      "node_home": str(live.home),   # receipts signed and kept by the provider's node (issue 15)
                      # spooled by the gateway, logged by the node's sequencer process, as in production
                      "receipt_spool": str(live.home / "receipt-spool")}
            live.spool = live.home / "receipt-spool"
            live.sequencer = self.group.start(Service(
                f"receipt sequencer {live.party.key}",
                python_argv("receipts", "sequence", str(live.spool), "--home", str(live.home)), 0, "",
                self.workdir / "logs" / f"sequencer-{live.party.key}.log", env=env))
            path = self.workdir / f"api-{live.party.key}.json"
            path.write_text(json.dumps(config, indent=2))
            live.api = self.group.start(Service(f"data API {live.party.key}",
                                                [sys.executable, "-m", "cead.demo_api", "api", "--config",
                                                 str(path)], port, "/", self.workdir / "logs" /
                                                f"api-{live.party.key}.log", env=env))
        self._wait_all(timeout=90)

    def _wait_all(self, timeout: float) -> None:
        pending = list(self.group.services)
        total = len(pending)
        deadline = time.monotonic() + timeout
        shown = -1
        while pending:
            _check_interrupted()
            for service in list(pending):
                if self.group.is_ready(service):
                    pending.remove(service)
            shown = self._progress("Starting nodes and data APIs", total - len(pending), total, shown)
            if pending and time.monotonic() > deadline:
                names = ", ".join(s.name for s in pending)
                raise DemoError(f"not ready after {timeout:.0f}s: {names} (logs in {self.workdir / 'logs'})")
            if pending:
                time.sleep(0.15)

    def _progress(self, label: str, done: int, total: int, shown: int) -> int:
        """A progress bar: redrawn in place on a terminal, a line every few steps otherwise. Returns ``done``."""
        if done != shown:
            line = f"{label} [{'#' * done}{'.' * (total - done)}] {done}/{total}"
            if sys.stdout.isatty():
                self.echo("\r" + line, nl=done == total)
            elif done == total or done // 4 != shown // 4:
                self.echo(line)
        return done

    # ---- helpers ----------------------------------------------------------------------------------------------
    def substitute(self, value: Any) -> Any:
        """Swap example DIDs for live ones and re-pin {id, digest} references to what was really signed."""
        from schemas.models import credential_digest
        if isinstance(value, str):
            return self.did_map.get(value, value)
        if isinstance(value, list):
            return [self.substitute(v) for v in value]
        if isinstance(value, dict):
            out = {k: self.substitute(v) for k, v in value.items()}
            if set(out) == {"id", "digest"} and out["id"] in self.by_id:
                out["digest"] = credential_digest(self.by_id[out["id"]])
            return out
        return value

    def wallet(self, key: str):
        """The party's wallet, opened here from its node home (network settings and vocabulary from its config)."""
        from wallet.store import Wallet
        live = self.live[key]
        if live._wallet is None:
            live._wallet = Wallet.from_node(live._node)
        return live._wallet

    def _post(self, live: Live, path: str, body: dict):
        import requests
        return requests.post(live.url + path, json=body, headers={"Authorization": f"Bearer {live.token}"},
                             verify=str(self.ca.ca_pem), timeout=60)

    @staticmethod
    def _short(iri: str) -> str:
        return iri.rstrip("/").rsplit("/", 1)[-1]

    # ---- the steps ----------------------------------------------------------------------------------------------
    def issue(self, step: world.Issue, number: int) -> None:
        issuer = self.live[step.issuer]
        credential = self.substitute(world.load_example(step.example))
        credential["credentialSubject"].update(self.substitute(step.changes))
        kind = next(t for t in credential["type"] if t != "VerifiableCredential")
        options: dict = {}
        if step.under:   # the signer's delegation, after those it rests on (the guard rail verifies the chain)
            chain = self._delegation_chain(self.issued[step.under])
            options["delegation"] = chain if len(chain) > 1 else chain[0]
        subject = credential["credentialSubject"].get("id") or ", ".join(credential["credentialSubject"].get(
            "recipients", []))
        target = self.live[step.deliver_to].party.short if step.deliver_to else self._name_of(subject)
        row = None
        if step.refused:
            row = Row(number, "issue", f"{issuer.party.short} -> {target}", kind.replace("Credential", ""),
                      step.example.removesuffix(".json"), "refused", step.refused)
            self.rows.append(row)
        response = self._post(issuer, "/credentials/issue", {"credential": credential, "options": options})
        if response.status_code != 201:
            error = self._error_of(response)
            if row is not None:
                row.decision, row.reasons, row.http_status = "refused", [error["code"]], response.status_code
                self.echo(f"  - {issuer.party.name} tried to issue {step.example}: refused ({error['code']}): "
                          f"{_first_sentences(error['message'])}")
                return
            raise DemoError(f"{issuer.party.name} could not issue {step.example}: HTTP {response.status_code} "
                            f"{error['code']}: {error['message']}")
        if row is not None:
            row.decision, row.http_status = "issued", response.status_code
            self.echo(f"  - {issuer.party.name} issued {step.example}, which should have been refused")
            return
        signed = response.json()["verifiableCredential"]
        self.issued[step.example] = signed
        self.by_id[credential["id"]] = signed
        note = f" ({step.note})" if step.note else ""
        if kind == "DelegatedAuthorityCredential" and credential["credentialSubject"].get("name"):
            note = f", naming the delegate “{credential['credentialSubject']['name']}”{note}"
        self.echo(f"  - {issuer.party.name} issued {_a_kind(kind)} for {target}{note}")
        if step.deliver_to:
            self.deliver(issuer, self.live[step.deliver_to], signed, kind)

    def request(self, step: world.Request) -> None:
        """The requester's node sends a data-sharing request to the approver's node; the approver approves it with
        ``wallet.sharing.approve`` (as its approvals page does), which issues the approval under the approver's
        delegation (guard rail) and delivers it, with the delegation it pins, to the requester's inbox."""
        from wallet.sharing import FROM_REQUEST, approve, send_request
        requester, approver = self.live[step.recipient], self.live[step.issuer]
        example = self.substitute(world.load_example(step.example))
        subject = example["credentialSubject"]
        request = {"requester": requester.did, "datasets": subject["datasets"], "dataItems": subject["dataItems"],
                   "purposes": subject["purposes"],
                   "lawfulBasis": next(b for b in subject["lawfulBases"] if b["party"] == requester.did),
                   "cadence": subject["cadence"], "agreement": subject["agreement"],
                   "justification": step.justification, "replyTo": requester.url + "/inbox"}
        ca = str(self.ca.ca_pem)
        answer = send_request(self.wallet(step.recipient), approver.url + "/requests", request, verify=ca)
        self.echo(f"  - {requester.party.name} sent a data-sharing request to {approver.party.name} "
                  f"(pending as {answer['id']})")
        # the approver states the rest: its own lawful basis, categories, DPIA, retention, period...
        rest = {k: v for k, v in subject.items() if k not in FROM_REQUEST or k == "lawfulBases"}
        done = approve(approver._node, self.wallet(step.issuer), answer["id"], rest,
                       delegation=self.issued[step.under], valid_until=example.get("validUntil"), verify=ca)
        signed = done.issued.credential
        self.issued[step.example] = signed
        self.by_id[done.issued.id] = signed
        self.echo(f"  - {approver.party.name} approved it: {_a_kind('DataSharingApprovalCredential')} for "
                  f"{requester.party.short}, delivered to its inbox with {_rests_on_words(len(done.delivered['stored']) - 1)}")

    def _name_of(self, did: str) -> str:
        return next((l.party.short for l in self.live.values() if l.did == did), did)

    @staticmethod
    def _error_of(response) -> dict:
        try:
            error = response.json().get("error") or {}
        except ValueError:
            error = {}
        return {"code": error.get("code", f"http.{response.status_code}"), "message": error.get("message", "")}

    def deliver(self, sender: Live, recipient: Live, signed: Any, kind: str) -> None:
        """Deliver to the recipient's inbox; an approval goes with the credentials it pins by digest (its delegation
        chain and, for a derived dataset, the upstream approvals with theirs), which the recipient presents."""
        from wallet.client import deliver
        node = sender._node
        pinned = self._rests_on(signed) if kind == "DataSharingApprovalCredential" else []
        deliver(sender.did, node.key, node.verification_method_id, [signed, *pinned], recipient.url + "/inbox",
                verify=str(self.ca.ca_pem))
        also = f", with {_rests_on_words(len(pinned))}" if pinned else ""
        self.echo(f"    delivered to the inbox of {recipient.party.name}{also}")

    def _delegation_chain(self, signed: Any) -> list:
        """``signed`` (a delegation) after the delegations it rests on, root first, followed through
        ``parentDelegation`` among what the demo has issued."""
        from verifier.credential import unwrap_enveloped
        from wallet.store import jwt_payload
        chain = [signed]
        while True:
            raw = unwrap_enveloped(chain[0])
            ref = ((jwt_payload(raw) if isinstance(raw, str) else raw).get("credentialSubject") or {}).get(
                "parentDelegation")
            if not isinstance(ref, dict) or ref.get("id") not in self.by_id or len(chain) > 16:
                return chain
            chain.insert(0, self.by_id[ref["id"]])

    def _rests_on(self, credential: Any) -> list:
        """What ``credential`` pins by digest, recursively, as it was signed (the wallet's one walk of it)."""
        from wallet.store import jwt_payload, walk_pinned

        def document(c: Any) -> dict:
            return jwt_payload(c) if isinstance(c, str) else c

        def find(ref: dict):
            pinned = self.by_id.get(ref["id"])
            return (pinned, document(pinned)) if pinned is not None else None

        found: list = []
        for _, _, pinned in walk_pinned(document(credential), find):
            if pinned is not None and all(pinned is not f for f in found):
                found.append(pinned)
        return found

    def revoke(self, step: world.Revoke) -> None:
        issuer = self.live[step.issuer]
        signed = self.issued[step.example]
        cid = signed["id"] if isinstance(signed, dict) else None
        response = self._post(issuer, "/credentials/status", {
            "credentialId": cid, "credentialStatus": [{"type": "BitstringStatusListCredential",
                                                        "status": "revoked"}]})
        if response.status_code != 200:
            error = self._error_of(response)
            raise DemoError(f"{issuer.party.name} could not revoke {cid}: {error['code']}: {error['message']}")
        self.echo(f"  - {issuer.party.name} revoked {cid}")

    def manifest_for(self, step: world.Pull) -> dict:
        if isinstance(step.manifest, dict):
            return self.substitute(step.manifest)
        if step.manifest == "derived":
            from schemas.models import DataSharingApproval
            from wallet.store import jwt_payload
            signed = self.issued[step.approval]
            model = DataSharingApproval.from_credential(jwt_payload(signed) if isinstance(signed, str) else signed)
            return {"dataset": model.datasets[0], "columns": list(model.data_items), "rowCount": 3,
                    "purpose": model.purposes[0], "recipient": self.live[step.recipient].did}
        manifest = self.substitute(world.load_example(step.manifest))
        manifest.update(step.changes)
        return manifest

    def pull(self, step: world.Pull, number: int) -> None:
        import requests

        from verifier.results import CeadError
        from wallet.client import CeadAuth, TransferDenied, check_response
        from .demo_api import VERIFY_TIME_HEADER
        recipient, provider = self.live[step.recipient], self.live[step.provider]
        route = provider.party.data[step.path]
        row = Row(number, "transfer", f"{recipient.party.short} <- {provider.party.short}",
                  self._short(route["dataset"]), step.label, step.expect, step.reason)
        self.rows.append(row)
        manifest = self.manifest_for(step)
        definition = None
        if step.present:
            definition = {"id": f"demo-step-{number}", "input_descriptors": [
                {"id": f"c{i}", "constraints": {"fields": [{"path": ["$.id"], "filter": {
                    "type": "string", "const": self._id_of(self.issued[name])}}]}}
                for i, name in enumerate(step.present)]}
        auth = CeadAuth(self.wallet(step.recipient), dataset=route["dataset"], manifest=manifest,
                        definition=definition, raise_on_denial=False)
        url = provider.api.url + step.path + step.query
        try:
            response = requests.get(url, auth=auth, verify=str(self.ca.ca_pem), timeout=60)
        except CeadError as exc:   # the wallet could not present (e.g. no approval held)
            row.decision, row.reasons = "error", [exc.code]
            self._say_row(row)
            return
        except requests.RequestException as exc:
            row.decision, row.reasons = "error", [f"network: {exc.__class__.__name__}"]
            self._say_row(row)
            return
        row.http_status = response.status_code
        header = response.headers.get(VERIFY_TIME_HEADER)
        row.ms = float(header) if header else None
        if response.status_code == 200:
            row.decision = "allow"
        else:
            try:
                check_response(response.status_code, response.content, url)
                row.decision, row.reasons = "error", [f"http.{response.status_code}"]
            except TransferDenied as denied:
                row.decision = "deny"
                row.reasons = list(dict.fromkeys(p.code for p in denied.reasons))
        self._say_row(row)

    @staticmethod
    def _id_of(signed: Any) -> str:
        from wallet.store import jwt_payload
        return (jwt_payload(signed) if isinstance(signed, str) else signed)["id"]

    def _say_row(self, row: Row) -> None:
        mark = "ok" if row.ok else "UNEXPECTED"
        reasons = f" ({', '.join(row.reasons)})" if row.reasons else ""
        ms = f" in {row.ms:.0f} ms" if row.ms is not None else ""
        self.echo(f"  - {row.organisation}: {row.label}: {row.decision.upper()}{reasons}{ms} [{mark}]")

    def play(self) -> None:
        steps = world.script(self.fast)
        disagreements = world.check_script_against_expected(steps)
        if disagreements:
            raise DemoError("the script disagrees with schemas/examples/expected.json: " + "; ".join(disagreements))
        number = 0
        for step in steps:
            _check_interrupted()
            if isinstance(step, world.Say):
                self.echo("")
                self.echo(step.text)
            elif isinstance(step, world.Issue):
                if step.refused:
                    number += 1
                self.issue(step, number)
            elif isinstance(step, world.Request):
                self.request(step)
            elif isinstance(step, world.Revoke):
                self.revoke(step)
            elif isinstance(step, world.Pull):
                number += 1
                self.pull(step, number)
            elif isinstance(step, demo_health.Cosign):
                demo_health.cosign(self, step)

    # ---- output --------------------------------------------------------------------------------------------
    def table(self) -> str:
        headers = ["#", "organisation", "dataset", "what", "decision", "expected", "reasons", "attestation", "ms"]
        lines = [[str(r.step), r.organisation, r.dataset, r.label, r.decision,
                  r.expected + (f" ({r.expected_reason})" if r.expected_reason else ""),
                  ", ".join(r.reasons) or "-", short_run_id(r.attestation),
                  f"{r.ms:.0f}" if r.ms is not None else "-"] for r in self.rows]
        widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(headers)]
        fmt = "  ".join(f"{{:{w}}}" for w in widths)
        out = [fmt.format(*headers), fmt.format(*("-" * w for w in widths))]
        out += [fmt.format(*l) + ("" if r.ok else "   <-- MISMATCH") for l, r in zip(lines, self.rows)]
        return "\n".join(out)

    def processes(self) -> list[dict]:
        out = []
        for service in self.group.services if self.group else []:
            out.append({"name": service.name, "pid": service.proc.pid if service.proc else None,
                        "port": service.port, "url": service.url})
        return out

    def report(self, error: str | None = None) -> dict:
        mismatches = [r.to_dict() for r in self.rows if not r.ok]
        return {"ok": error is None and bool(self.rows) and not mismatches, "error": error, "fast": self.fast,
                "rows": [r.to_dict() for r in self.rows], "mismatches": mismatches,
                "processes": self.processes()}


_interrupted = threading.Event()


def _raise_interrupt(signum, frame):
    # Remember it too: an exception raised while a finalizer happens to run is swallowed by Python, so the
    # script also checks the flag between steps (see _check_interrupted).
    _interrupted.set()
    raise KeyboardInterrupt


def _check_interrupted() -> None:
    if _interrupted.is_set():
        raise KeyboardInterrupt


@click.command("demo")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where node homes, logs and the CA go (default: a temporary directory, removed afterwards).")
@click.option("--keep-running", is_flag=True, help="Leave the nodes up after the script; stop with Ctrl-C.")
@click.option("--fast", is_flag=True, help="Fewer pulls (used by the test suite).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the decision table (and the processes started) as JSON to this file.")
def demo(workdir: Path | None, keep_running: bool, fast: bool, report_path: Path | None) -> None:
    """Run the multi-organisation demonstration on 127.0.0.1 (exit 0 only if every decision is as expected)."""
    if report_path is not None and not report_path.resolve().parent.is_dir():
        raise click.UsageError(f"--report {report_path}: the folder {str(report_path.resolve().parent)!r} does not "
                               "exist.")
    own_dir = workdir is None
    if own_dir:
        workdir = Path(tempfile.mkdtemp(prefix="cead-demo-"))
    elif workdir.exists() and any(workdir.iterdir()):
        raise click.UsageError(f"--workdir {workdir} is not empty; give a new or empty directory.")
    result: dict = {"ok": False}
    workdir.mkdir(parents=True, exist_ok=True)
    _interrupted.clear()
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    runner = Demo(workdir.resolve(), fast=fast)
    error = None
    started = time.monotonic()
    try:
        runner.setup()
        runner.start()
        runner.play()
        from .demo_computations import play_computations   # PSI and secure aggregation that really run
        play_computations(runner)
        from .demo_evidence import finish
        finish(runner)   # receipts on both sides; a witness; an audit that finds every transfer (issue 15)
    except KeyboardInterrupt:
        error = "interrupted"
    except DemoError as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001  report, stop everything, exit 1
        error = f"{exc.__class__.__name__}: {exc}"
    try:
        click.echo("")
        if runner.rows:
            click.echo(runner.table())
        result = runner.report(error)
        if report_path is not None:
            try:
                report_path.write_text(json.dumps(result, indent=2))
            except OSError as exc:
                click.echo(f"Cannot write the report to {str(report_path)!r}: {exc.strerror}", err=True)
                result["ok"] = False
        if error:
            click.echo(f"\nThe demo stopped: {error}", err=True)
        elif result["mismatches"]:
            names = "; ".join(f"#{m['step']} {m['label']}: {m['decision']} (expected {m['expected']})"
                              for m in result["mismatches"])
            click.echo(f"\n{len(result['mismatches'])} decision(s) differ from the scenario: {names}", err=True)
        else:
            click.echo(f"\nEvery decision matched the scenario ({len(runner.rows)} checks, "
                       f"{time.monotonic() - started:.0f} s).")
        if keep_running and error is None:
            click.echo(f"\nThe nodes keep running (Ctrl-C stops them). Homes and logs: {runner.workdir}; "
                       f"the demo CA (for curl --cacert): {runner.ca.ca_pem}")
            tokens = runner.workdir / "dpo-tokens.txt"
            tokens.write_text("".join(f"{live.url}/dpo/  {live.token}  {live.party.name}\n"
                                      for live in runner.live.values()))
            os.chmod(tokens, 0o600)
            click.echo(f"Each organisation's web interface is at its URL; sign in to its DPO pages (/dpo/) with the "
                       f"token listed in {tokens}.")
            for live in runner.live.values():
                api = f"   data API {live.api.url}" if live.api else ""
                click.echo(f"  {live.party.name:58} {live.url}{api}")
            try:
                while not _interrupted.wait(1.0):
                    pass
            except KeyboardInterrupt:
                pass
    finally:
        if runner.group is not None:
            runner.group.stop_all()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if own_dir and not keep_running:
            shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(0 if result["ok"] else 1)
