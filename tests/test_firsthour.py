"""The first hour of a new user (issue 10): the defects met on the way.

- the guard rail refuses to sign under a delegation that is suspended, revoked, expired or whose status cannot be
  established (read from the issuer's real status list over HTTPS);
- a delivery the recipient refuses says the recipient's reason and whether delivering again can help;
- the published presentation definition asks for narrower certification schemes too (CE+ for CE);
- the shipped examples agree: the example gateway (docs/examples/policy.yaml) allows the example transfer;
- node.db is created 0600.
"""
from __future__ import annotations

import json
import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from issuer import issuing
from issuer.node import Node
from schemas import vocab
from verifier.decision import Decider, TransferRequest
from verifier.definition import presentation_definition
from verifier.policy import load_policy, parse_policy
from verifier.results import CeadError
from wallet import sharing
from wallet.pex import descriptor_matches

from test_sharing import DATASET, _credential, make_request, send, the_rest, world  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parent.parent
CEAD = "https://w3id.org/cead/vocab#"


# ---- node.db 0600 ----------------------------------------------------------------------------------------------

def test_node_db_is_created_private_and_an_old_one_is_tightened(tmp_path):
    node, _ = Node.init(tmp_path / "home", "Fife Council", b"pass", domain="fife.example")
    db_file = tmp_path / "home" / "node.db"
    assert stat.S_IMODE(db_file.stat().st_mode) == 0o600
    node.engine.dispose()
    os.chmod(db_file, 0o644)                       # a home made before this fix
    reopened = Node.open(tmp_path / "home", migrate=True)
    assert stat.S_IMODE(db_file.stat().st_mode) == 0o600
    reopened.engine.dispose()
    for extra in ("node.db-journal", "node.db-wal", "node.db-shm"):   # SQLite gives these the database's mode
        path = tmp_path / "home" / extra
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, extra


def _read_locks_on(path: Path) -> int:
    """How many POSIX read locks this process holds on ``path`` (from /proc/locks)."""
    inode, pid, held = os.stat(path).st_ino, str(os.getpid()), 0
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()       # N: POSIX ADVISORY READ|WRITE PID MAJ:MIN:INODE START END ("->" for a waiter)
        if "->" not in fields and fields[3] == "READ" and fields[4] == pid and \
                int(fields[5].rsplit(":", 1)[1]) == inode:
            held += 1
    return held


def test_opening_a_second_node_of_a_home_keeps_the_first_ones_sqlite_locks(tmp_path):
    """Node.engine made sure of node.db's mode by opening and closing the file, and closing any descriptor of a file
    drops every POSIX lock the process holds on it: a second Node of the same home took away the SQLite locks of the
    first's open connection (another process could then checkpoint and remove the WAL under it; seen as "database
    disk image is malformed" in tests/test_notifications_served.py). The first connection keeps its lock."""
    node, _ = Node.init(tmp_path / "home", "Fife Council", b"pass", domain="fife.example")
    db_file = tmp_path / "home" / "node.db"
    first = node.engine.raw_connection()                    # open, idle (no transaction), as a pooled one is
    try:
        first.cursor().execute("select count(*) from sqlite_master").fetchall()
        held = _read_locks_on(db_file)
        assert held >= 1                                    # a WAL connection holds a shared lock while open
        second = Node.open(tmp_path / "home")
        with second.engine.connect() as conn:               # the second Node's engine, and a connection of its own
            assert conn.exec_driver_sql("select count(*) from issuer_credential").scalar_one() == 0
        assert _read_locks_on(db_file) == held
        second.engine.dispose()
    finally:
        first.close()
        node.engine.dispose()


# ---- the guard rail and the delegation's status --------------------------------------------------------------

def _delegation(w, **extra):
    controller, iao = w["controller"]["node"], w["iao"]["node"]
    credential = _credential("DelegatedAuthorityCredential", {
        "id": iao.did, "role": "InformationAssetOwner", "onBehalfOf": controller.did,
        "allowedActions": ["ApproveDisclosure"], "scope": {"datasets": [DATASET]}})
    credential.update(extra)
    issued = issuing.issue(controller, credential, {"credentialStatus": {
        "type": "BitstringStatusListEntry", "statusPurpose": ["revocation", "suspension"]}})
    assert w["iao"]["wallet"].import_credential(issued.credential).ok
    return issued


def _approve(w, delegation_id):
    request_id = send(w)["id"]
    return request_id, lambda: sharing.approve(w["iao"]["node"], w["iao"]["wallet"], request_id, the_rest(w),
                                               delegation=delegation_id)


def test_nothing_is_signed_under_a_suspended_delegation_and_it_is_named(world):
    w = world
    controller, iao = w["controller"]["node"], w["iao"]["node"]
    delegation = _delegation(w)
    issuing.change_status(controller, delegation.id, "suspend")
    before = len(issuing.register(iao))
    request_id, approve = _approve(w, delegation.id)
    with pytest.raises(CeadError) as err:
        approve()
    assert err.value.code == "delegation.not_in_force" and err.value.detail["status"] == "suspended"
    assert "is suspended" in err.value.message and delegation.id in err.value.message
    assert len(issuing.register(iao)) == before                      # nothing signed, nothing recorded
    assert sharing.get_request(w["iao"]["wallet"], request_id).status == sharing.PENDING
    issuing.change_status(controller, delegation.id, "reinstate")
    done = approve()                                                  # reinstated: the same approval goes through
    assert done.request.status == sharing.APPROVED


def test_a_refused_delivery_says_the_recipients_reason_and_whether_delivering_again_helps(world):
    w = world
    # the reply-to inbox is another node's, which refuses an approval that does not name it
    wrong = sharing.send_request(w["requester"]["wallet"], w["iao"]["url"] + "/requests",
                                 make_request(w, replyTo=w["iao"]["url"] + "/inbox"), verify=w["bundle"])
    with pytest.raises(CeadError) as err:
        sharing.approve(w["iao"]["node"], w["iao"]["wallet"], wrong["id"], the_rest(w),
                        delegation=w["delegation"].id)
    assert err.value.code == "sharing.undelivered" and err.value.detail["retry"] is False
    assert "inbox.not_for_us" in err.value.message and "will not help" in err.value.message
    assert "reachable" not in err.value.message
    assert "inbox.not_for_us" in [r["code"] for r in err.value.detail["reasons"]]
    # a node that cannot be reached: delivering again can help
    late = w["late"]["requester"]
    ok = send(w)["id"]
    app, late.app = late.app, _down
    try:
        with pytest.raises(CeadError) as down:
            sharing.approve(w["iao"]["node"], w["iao"]["wallet"], ok, the_rest(w), delegation=w["delegation"].id)
    finally:
        late.app = app
    assert down.value.detail["retry"] is True and "again" in down.value.message
    assert sharing.redeliver(w["iao"]["node"], w["iao"]["wallet"], ok).delivered["stored"]


def test_nothing_is_signed_under_a_revoked_or_expired_delegation(world):
    w = world
    controller = w["controller"]["node"]
    revoked = _delegation(w)
    issuing.change_status(controller, revoked.id, "revoke")
    with pytest.raises(CeadError) as err:
        _approve(w, revoked.id)[1]()
    assert err.value.detail["status"] == "revoked" and "is revoked" in err.value.message
    now = datetime.now(timezone.utc).replace(microsecond=0)
    expired = _delegation_unimported(w, validFrom=_iso(now - timedelta(days=30)),
                                     validUntil=_iso(now - timedelta(days=1)))
    with pytest.raises(CeadError) as err:
        issuing.issue(w["iao"]["node"], _credential("DelegatedAuthorityCredential", {
            "id": "did:web:deputy.example", "role": "Deputy", "onBehalfOf": controller.did,
            "allowedActions": ["ApproveDisclosure"], "scope": {"datasets": [DATASET]}}),
            {"delegation": expired.credential})
    assert err.value.code == "delegation.not_in_force" and err.value.detail["status"] == "expired"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _delegation_unimported(w, **extra):
    controller, iao = w["controller"]["node"], w["iao"]["node"]
    credential = _credential("DelegatedAuthorityCredential", {
        "id": iao.did, "role": "InformationAssetOwner", "onBehalfOf": controller.did,
        "allowedActions": ["ApproveDisclosure", "SubDelegate"], "scope": {"datasets": [DATASET]}})
    credential.update(extra)
    return issuing.issue(controller, credential)


def test_a_status_that_cannot_be_established_signs_nothing(world):
    w = world
    delegation = _delegation(w)
    late = w["late"]["controller"]
    app, late.app = late.app, _down
    try:
        with pytest.raises(CeadError) as err:
            _approve(w, delegation.id)[1]()
    finally:
        late.app = app
    assert err.value.code == "delegation.not_in_force" and err.value.detail["status"] == "unknown"
    assert "network.ca_bundle" in err.value.message


def _down(environ, start_response):
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"down for maintenance"]


# ---- discovery asks for narrower schemes -----------------------------------------------------------------------

def test_the_definition_asks_for_cyber_essentials_plus_where_cyber_essentials_is_required():
    policy = parse_policy({"controllers": [{"prefix": "https://data.example/", "controller": "did:web:c.example"}],
                           "certification_bodies": {CEAD + "CyberEssentials": ["did:web:iasme.example"],
                                                    CEAD + "CyberEssentialsPlus": ["did:web:plus-only.example"]},
                           "required_certifications": [CEAD + "CyberEssentials"]})
    definition = presentation_definition(policy, "https://data.example/d")
    descriptor = definition["input_descriptors"][1]
    holder = "did:web:recipient.example"

    def cert(scheme, issuer="did:web:iasme.example"):
        return {"type": ["VerifiableCredential", "OrganisationCertificationCredential"], "issuer": issuer,
                "credentialSubject": {"id": holder, "scheme": scheme, "status": "Certified"}}

    # what the verifier accepts (Decider._check_certifications: the scheme or a narrower one, from a body trusted
    # for either), the definition asks for
    assert vocab.registry().within(CEAD + "CyberEssentialsPlus", CEAD + "CyberEssentials")
    assert descriptor_matches(descriptor, cert("cead:CyberEssentialsPlus"), holder)
    assert descriptor_matches(descriptor, cert(CEAD + "CyberEssentialsPlus"), holder)
    assert descriptor_matches(descriptor, cert(CEAD + "CyberEssentialsPlus", "did:web:plus-only.example"), holder)
    assert descriptor_matches(descriptor, cert(CEAD + "CyberEssentials"), holder)
    assert not descriptor_matches(descriptor, cert(CEAD + "ISO27001"), holder)
    assert not descriptor_matches(descriptor, cert(CEAD + "CyberEssentials", "did:web:rogue.example"), holder)
    assert "CyberEssentialsPlus" in descriptor["purpose"]


# ---- the shipped examples agree ----------------------------------------------------------------------------------

EXAMPLE_POLICY = ROOT / "docs" / "examples" / "policy.yaml"


def test_the_example_gateway_trusts_the_bodies_that_certify_the_example_recipients():
    policy = load_policy(EXAMPLE_POLICY)
    examples_dir = ROOT / "schemas" / "examples"
    approvals = [json.loads(p.read_text()) for p in sorted(examples_dir.glob("*approval*.json"))]
    certifications = {json.loads(p.read_text())["credentialSubject"]["id"]: json.loads(p.read_text())
                      for p in sorted(examples_dir.glob("*-certification.json"))}
    checked = 0
    for approval in approvals:
        for recipient in approval["credentialSubject"]["recipients"]:
            cert = certifications.get(recipient)
            for scheme in [*approval["credentialSubject"].get("recipientRequirements", []),
                           *policy.required_certifications]:
                assert cert is not None, (approval["id"], scheme)
                held = vocab.expand(cert["credentialSubject"]["scheme"])
                assert vocab.registry().within(held, scheme), (approval["id"], scheme, held)
                trusted = set(policy.trusted_bodies(vocab.expand(scheme))) | set(policy.trusted_bodies(held))
                assert cert["issuer"] in trusted, (approval["id"], scheme, cert["issuer"])
                checked += 1
    assert checked >= 3


def test_the_example_gateway_allows_the_example_transfer(examples):
    policy = load_policy(EXAMPLE_POLICY)
    allowed = 0
    for name, scenario in examples.items():
        dataset = scenario.manifest["dataset"]
        discloser = json.loads(json.dumps(scenario.credentials[0]))["credentialSubject"]["discloser"]
        if policy.controller_of(dataset) != discloser:
            continue                                  # another organisation's gateway
        request = TransferRequest("POST" if scenario.payload else "GET", "https://api.fife.example/data",
                                  body=scenario.payload, manifest=scenario.manifest)
        decider = Decider(policy, fetcher=scenario.fetcher, clock=lambda s=scenario: s.at)
        decision = decider.decide(scenario.present(request), request)
        assert decision.allowed, (name, [(p.code, p.message) for p in decision.reasons])
        allowed += 1
    assert allowed >= 1


# ---- errors that say the fix ---------------------------------------------------------------------------------------

def test_a_private_address_refused_names_the_setting_for_a_local_test():
    from verifier.http import Fetcher
    with pytest.raises(CeadError) as err:
        Fetcher().get("https://127.0.0.1:9/.well-known/did.json")
    assert err.value.code == "http.address_refused"
    assert "network.allow_private" in err.value.message and "--allow-private-addresses" in err.value.message


def test_an_untrusted_certificate_is_said_with_the_setting_that_trusts_it(tmp_path):
    from click.testing import CliRunner
    from flask import Flask

    from cead.cli import main
    from helpers_https import https_server
    from verifier.http import Fetcher
    app = Flask("anything")
    app.add_url_rule("/inbox", "inbox", lambda: ({"stored": []}, 201), methods=["POST"])
    app.add_url_rule("/doc", "doc", lambda: {"ok": True})
    with https_server(app) as (base, ca):
        with pytest.raises(CeadError) as err:
            Fetcher(allow_private=True).get(base + "/doc")
        assert err.value.code == "http.certificate_untrusted"
        assert "not trusted" in err.value.message and "network.ca_bundle" in err.value.message
        assert Fetcher(allow_private=True, ca_bundle=ca).get(base + "/doc").status == 200
        # the command line says it too, and with --ca-bundle the same delivery goes through
        home = tmp_path / "node"
        env = {"CEAD_PASSPHRASE": "pass"}
        runner = CliRunner()
        assert runner.invoke(main, ["init", "--home", str(home), "--name", "Fife", "--domain", "fife.example"],
                             env=env).exit_code == 0
        out = tmp_path / "cert.json"
        issued = runner.invoke(main, ["issue", "certification", "--home", str(home), "--subject",
                                      "did:web:other.example", "--set", "legalName=Other", "--set",
                                      "legalIdentifier=X1", "--set", "scheme=cead:CyberEssentials", "--set",
                                      "certificateNumber=C-1", "--set", 'certificationBody={"name": "B"}', "--set",
                                      "issueDate=2026-01-01", "--set", "expiryDate=2030-01-01", "--out", str(out)],
                               env=env)
        assert issued.exit_code == 0, issued.output
        refused = runner.invoke(main, ["deliver", str(out), "--home", str(home), "--to", base + "/inbox"], env=env)
        assert refused.exit_code == 2
        error = json.loads(refused.stderr if hasattr(refused, "stderr") else refused.output)["error"]
        assert "not trusted" in error["message"] and "--ca-bundle" in error["message"]
        delivered = runner.invoke(main, ["deliver", str(out), "--home", str(home), "--to", base + "/inbox",
                                         "--ca-bundle", ca], env=env)
        assert delivered.exit_code == 0 and delivered.stdout.startswith("Delivered "), delivered.output


def test_list_commands_speak_json_for_scripts(tmp_path):
    from click.testing import CliRunner

    from cead.cli import main
    home = str(tmp_path / "node")
    env = {"CEAD_PASSPHRASE": "pass"}
    runner = CliRunner()
    assert runner.invoke(main, ["init", "--home", home, "--name", "Fife", "--domain", "fife.example"],
                         env=env).exit_code == 0
    made = runner.invoke(main, ["token", "create", "--home", home, "--name", "me", "--scope", "issue:approval"])
    assert made.exit_code == 0 and "Created token me" in made.stderr
    assert json.loads(runner.invoke(main, ["token", "list", "--home", home, "--json"]).stdout)[0]["name"] == "me"
    assert json.loads(runner.invoke(main, ["issued", "list", "--home", home, "--json"]).stdout) == []
    assert json.loads(runner.invoke(main, ["request", "list", "--home", home, "--json"]).stdout) == []
    assert runner.invoke(main, ["request", "list", "--home", home]).stdout.strip() == "No requests."
    assert json.loads(runner.invoke(main, ["wallet", "list", "--home", home, "--json"]).stdout)["credentials"] == []


def test_the_approval_page_says_the_refusal_and_the_delegations_status(world):
    from issuer_fixtures import token
    from test_pages import csrf_of, sign_in
    from wallet.app import create_node_app
    w = world
    iao = w["iao"]["node"]
    client = create_node_app(iao, wallet=w["iao"]["wallet"]).test_client()
    assert sign_in(client, token(iao, "issue:approval", name="page-iao")).status_code == 302

    def approve_on_the_page(request_id, delegation_id):
        page = client.get(f"/wallet/requests/{request_id}")
        subject = json.dumps({**sharing.draft_subject(iao, w["iao"]["wallet"], request_id,
                                                      delegation=delegation_id), **the_rest(w)})
        return client.post(f"/wallet/requests/{request_id}/approve", data={
            "csrf": csrf_of(page.text), "delegation": delegation_id, "subject": subject})

    # refused by the requester's node: its reason, and that delivering again will not help
    wrong = sharing.send_request(w["requester"]["wallet"], w["iao"]["url"] + "/requests",
                                 make_request(w, replyTo=w["iao"]["url"] + "/inbox"), verify=w["bundle"])
    page = approve_on_the_page(wrong["id"], w["delegation"].id)
    assert page.status_code == 502 and "inbox.not_for_us" in page.text and "will not help" in page.text
    assert "once the requester&#39;s node is reachable" not in page.text
    # a suspended delegation: nothing signed, its status named
    delegation = _delegation(w)
    issuing.change_status(w["controller"]["node"], delegation.id, "suspend")
    request_id = send(w)["id"]
    page = approve_on_the_page(request_id, delegation.id)
    assert page.status_code == 422 and "delegation.not_in_force" in page.text and "is suspended" in page.text
    assert sharing.get_request(w["iao"]["wallet"], request_id).status == sharing.PENDING


# ---- the newcomer's commands -------------------------------------------------------------------------------------

def test_dev_ca_makes_a_ca_and_a_private_key_and_never_replaces_them(tmp_path):
    import ssl

    from click.testing import CliRunner

    from cead.cli import main
    runner = CliRunner()
    made = runner.invoke(main, ["dev-ca", "--out", str(tmp_path / "ca")])
    assert made.exit_code == 0, made.output
    assert "--ca-bundle" in made.output and "--tls-cert" in made.output and "--tls-key" in made.output
    assert stat.S_IMODE((tmp_path / "ca" / "server-key.pem").stat().st_mode) == 0o600
    context = ssl.create_default_context(cafile=str(tmp_path / "ca" / "ca.pem"))
    context.load_cert_chain(str(tmp_path / "ca" / "server.pem"), str(tmp_path / "ca" / "server-key.pem"))
    before = (tmp_path / "ca" / "ca.pem").read_bytes()
    again = runner.invoke(main, ["dev-ca", "--out", str(tmp_path / "ca")])
    assert again.exit_code == 2 and "exists" in again.output
    assert (tmp_path / "ca" / "ca.pem").read_bytes() == before


def test_request_create_checks_the_request_as_the_receiver_will(tmp_path):
    from click.testing import CliRunner

    from cead.cli import main
    runner = CliRunner()
    home = str(tmp_path / "node")
    assert runner.invoke(main, ["init", "--home", home, "--name", "Gov", "--domain", "gov.example"],
                         env={"CEAD_PASSPHRASE": "pass"}).exit_code == 0
    agreement = tmp_path / "agreement.txt"
    agreement.write_text("the agreement")
    args = ["request", "create", "--home", home, "--dataset", DATASET, "--item", "pupil_id", "--purpose",
            "cead:HomelessnessStatistics", "--agreement", str(agreement), "--justification", "Statistics.",
            "--out", str(tmp_path / "request.json")]
    bad = runner.invoke(main, [*args, "--cadence", "monthly"])
    assert bad.exit_code == 2 and json.loads(bad.stderr)["error"]["code"] == "sharing.invalid"
    assert not (tmp_path / "request.json").exists()
    good = runner.invoke(main, [*args, "--cadence", "R/2026-01-01T00:00:00Z/P1M"])
    assert good.exit_code == 0 and good.stdout.startswith("Wrote the request")
    request = json.loads((tmp_path / "request.json").read_text())
    assert request["requester"] == "did:web:gov.example" and request["replyTo"] == "https://gov.example/inbox"
    assert sharing.parse_request(request).agreement.digest.startswith("sha256-")
