"""`cead receipts list` in plain words: who signed each receipt ("signed here" by this node's gateway, or a "copy
received" from another organisation's gateway, whichever way the data moved: a provider pushing data keeps the
copy the recipient's gateway signed), and, for a copy, why a signature was not checked: a signer named by a key
thumbprint has no DID document to check it against ever, a signer whose DID document could not be fetched can be
checked later. Stored values stay as scripts know them (`--side provider|recipient`, `side` and `signatureCheck` in
--json), and a copy stored as "unverified" before the two were told apart reads right. Real parts: a node serving
its DID document over HTTPS on 127.0.0.1, receipts signed as a gateway signs them, SQLite, the command run as a
process."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from jwcrypto import jwk

from issuer.app import create_app
from issuer.keys import PrivateKey
from issuer.evidence import receipts as store
from issuer.node import Node
from issuer_fixtures import PASS
from helpers_https import https_server
from verifier.did import Resolver
from verifier.http import Fetcher
from verifier.receipts import ReceiptSigner, payload_evidence, seal

ROOT = Path(__file__).resolve().parent.parent
TABLE = b"area,count\nFife,12\nPerth,40\n"
APPROVAL = "urn:uuid:7d1c2f9e-1111-4a5b-9c3d-000000000001"


def decision(direction="pull", holder="did:web:justice.gov.scot.example"):
    return SimpleNamespace(
        allowed=True, reasons=[], relied_on=[f"{APPROVAL} sha256-abc"], holder=holder, approval_id=APPROVAL,
        method="GET" if direction == "pull" else "POST", url="https://api.example/data",
        decided_at=datetime.now(timezone.utc),
        manifest={"dataset": "https://data.example/ds", "purpose": "https://w3id.org/dpv#X"},
        evidence={"binding": "urn:x", "manifestSha256": "00" * 32,
                  "payload": payload_evidence(TABLE, "text/csv", direction)}, receipt=None)


def signed(signer, direction="pull", sink=None) -> str:
    d = decision(direction)
    seal(signer, d, sink)
    return d.receipt


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def world(tmp_path):
    """Two organisations' nodes: the council's (whose gateway signs receipts, its DID document served over HTTPS)
    and the regulator's (which keeps copies). A third gateway names its key by its DID on an address nobody
    serves, a fourth by its key's thumbprint."""
    holder = {}
    with https_server(lambda environ, start: holder["app"](environ, start)) as (base, ca):
        port = base.rsplit(":", 1)[1]
        council, _ = Node.init(tmp_path / "council", "Fife Council", PASS, domain=f"localhost:{port}",
                               public_url=base)
        council._passphrase = PASS
        holder["app"] = create_app(council)
        regulator, _ = Node.init(tmp_path / "regulator", "Regulator", PASS, domain="regulator.example",
                                 public_url="https://regulator.example")
        regulator._passphrase = PASS
        gone = closed_port()
        away, _ = Node.init(tmp_path / "away", "Away", PASS, domain=f"localhost:{gone}",
                            public_url=f"https://localhost:{gone}")
        away._passphrase = PASS
        thumb = ReceiptSigner(jwk.JWK(**PrivateKey.generate("Ed25519").private_jwk()))   # kid: urn:cead:receipt-key:
        resolver = Resolver(Fetcher(allow_private=True, ca_bundle=ca, timeout=5))
        yield SimpleNamespace(council=council, regulator=regulator, away=away, thumb=thumb, resolver=resolver)


def listing(node, *args):
    env = {**os.environ, "CEAD_PASSPHRASE": PASS.decode()}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run([sys.executable, "-m", "cead.cli", "receipts", "list", "--home", str(node.home), *args],
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def line_of(output: str, receipt_id: str) -> str:
    return next(line for line in output.splitlines() if receipt_id in line)


def jti(token: str) -> str:
    return store.unverified_claims(token)["jti"]


def test_why_a_signature_was_not_checked_is_said_plainly(world):
    w = world
    verified = signed(store.signer_for(w.council))
    thumbprinted = signed(w.thumb)
    unreachable = signed(store.signer_for(w.away))
    for token in (verified, thumbprinted, unreachable):
        store.keep_copy(w.regulator.engine, token, received=TABLE, resolver=w.resolver)
    stored = {t: store.get(w.regulator.engine, jti(t)).signature_check for t in (verified, thumbprinted, unreachable)}
    assert stored == {verified: "verified", thumbprinted: "uncheckable", unreachable: "unverified"}

    out = listing(w.regulator)
    assert "signature verified" in line_of(out, jti(verified))
    thumb_line = line_of(out, jti(thumbprinted))
    assert "signer not named by a DID (cannot be checked against a DID document)" in thumb_line
    assert "unreachable" not in thumb_line and "cead receipts verify" not in thumb_line
    away_line = line_of(out, jti(unreachable))
    assert f"signer unreachable when it arrived (try `cead receipts verify {jti(unreachable)}` later)" in away_line
    assert "not named by a DID" not in away_line
    as_json = {r["id"]: r for r in json.loads(listing(w.regulator, "--json"))}
    assert as_json[jti(thumbprinted)]["signatureCheck"] == "uncheckable"
    assert as_json[jti(unreachable)]["signatureCheck"] == "unverified"
    assert as_json[jti(verified)]["signatureCheck"] == "verified"


def test_a_copy_stored_as_unverified_before_the_distinction_reads_right(world):
    """Copies stored before "uncheckable" existed say "unverified" for a thumbprint-named signer too; the stored
    value is left as it is (no migration), and the listing tells the two apart by the receipt's own key id."""
    w = world
    old_thumb, old_away = signed(w.thumb), signed(store.signer_for(w.away))
    for token in (old_thumb, old_away):                    # as the copy was stored before this change
        store.keep(w.regulator.engine, token, store.RECIPIENT, payload_check="matches", signature_check="unverified")
    out = listing(w.regulator)
    assert "signer not named by a DID" in line_of(out, jti(old_thumb))
    assert "signer unreachable" in line_of(out, jti(old_away))
    as_json = {r["id"]: r for r in json.loads(listing(w.regulator, "--json"))}
    assert as_json[jti(old_thumb)]["signatureCheck"] == "uncheckable"
    assert as_json[jti(old_away)]["signatureCheck"] == "unverified"
    with w.regulator.engine.connect() as conn:              # the stored values are untouched
        values = dict(conn.execute(sa.select(store.table.c.id, store.table.c.signature_check)).all())
    assert values == {jti(old_thumb): "unverified", jti(old_away): "unverified"}


def test_each_receipt_says_who_signed_it_and_side_still_filters(world):
    """The council's node both signs receipts (its gateway, for data pulled from it) and keeps copies (the
    regulator's gateway signed the receipt for data the council pushed to it): "signed here" and "copy received",
    never "recipient" for the council's own push."""
    w = world
    own = signed(store.signer_for(w.council), sink=store.sink(w.council))          # this node's gateway
    # the council pushes data to the regulator, whose gateway (named by its thumbprint here) signs the receipt
    pushed = signed(w.thumb, direction="push")
    store.keep_copy(w.council.engine, pushed, sent=TABLE, resolver=w.resolver)
    out = listing(w.council)
    own_line, pushed_line = line_of(out, jti(own)), line_of(out, jti(pushed))
    assert "signed here" in own_line and "copy received" in pushed_line
    assert "bytes match" in pushed_line                     # what it sent is what the receipt names
    for line in (own_line, pushed_line):
        assert " provider " not in line and " recipient " not in line
    # --side keeps its values (scripts call it), and --json its stored names
    assert jti(own) in listing(w.council, "--side", "provider") and jti(pushed) not in listing(w.council, "--side",
                                                                                                "provider")
    assert jti(pushed) in listing(w.council, "--side", "recipient")
    assert jti(own) not in listing(w.council, "--side", "recipient")
    sides = {r["id"]: r["side"] for r in json.loads(listing(w.council, "--json"))}
    assert sides == {jti(own): "provider", jti(pushed): "recipient"}


def refused(signer, sink, reason: str) -> str:
    """A refusal before any approval was found, as the gateway seals it: nobody identified, nothing moved."""
    d = SimpleNamespace(
        allowed=False, reasons=[SimpleNamespace(code=reason)], relied_on=[], holder=None, approval_id=None,
        method="GET", url="https://api.example/data", decided_at=datetime.now(timezone.utc), manifest=None,
        evidence={"binding": "urn:x", "manifestSha256": "00" * 32, "payload": payload_evidence(None, "text/csv",
                                                                                              "pull")}, receipt=None)
    seal(signer, d, sink)
    return d.receipt


def test_requests_without_any_presentation_are_a_group_of_their_own(world):
    """A request that carried no presentation at all (a health check, a probe: presentation.missing) is listed
    apart from a refusal of a presentation that was sent but held no approval that could be relied on, under the
    headings `cead audit` and /log/transfers use, after the approvals' groups; --json keeps every key it had and
    says the group (and the reasons) of each."""
    w = world
    signer, sink = store.signer_for(w.council), store.sink(w.council)
    probe = refused(signer, sink, "presentation.missing")
    under = signed(signer, sink=sink)
    unreadable = refused(signer, sink, "presentation.malformed")
    probe2 = refused(signer, sink, "presentation.missing")
    out = listing(w.council).splitlines()
    heads = [line for line in out if not line.startswith("  ")]
    assert heads == [f"Approval {APPROVAL}",
                     "Refused before an approval was found (a presentation was sent, but no approval in it could be "
                     "read or relied on)",
                     "Requests without any presentation (probes, health checks, misconfigured clients): refused, "
                     "nothing moved, nobody identified"], out
    group_of = {}
    for line in out:
        if not line.startswith("  "):
            head = line
        else:
            group_of[line.split()[-1]] = head
    assert group_of[jti(under)] == heads[0] and group_of[jti(unreadable)] == heads[1]
    assert group_of[jti(probe)] == group_of[jti(probe2)] == heads[2]
    assert "nobody (no presentation was sent)" in line_of("\n".join(out), jti(probe))
    listed = {r["id"]: r for r in json.loads(listing(w.council, "--json"))}
    assert {i: r["group"] for i, r in listed.items()} == {
        jti(under): "approval", jti(unreadable): "noApproval", jti(probe): "withoutPresentation",
        jti(probe2): "withoutPresentation"}
    assert listed[jti(probe)]["reasons"] == ["presentation.missing"] and listed[jti(under)]["reasons"] == []
    for r in listed.values():                     # the keys it had before, unchanged
        assert {"id", "side", "decision", "approval", "holder", "gateway", "payloadSha256", "rows", "logIndex",
                "at"} <= set(r)
    assert listed[jti(probe)]["approval"] is None and listed[jti(probe)]["side"] == "provider"
