"""Node home, keys at rest, DIDs, rotation, tokens, migrations and the DPO command line."""
import json
import os
import stat

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from cead.cli import main
from issuer import db, issuing, tokens
from issuer.node import Node, did_web
from verifier.results import CeadError

from issuer_fixtures import PASS, certification, make_node, token


def test_did_web_forms():
    assert did_web("fife.example") == "did:web:fife.example"
    assert did_web("127.0.0.1:8443") == "did:web:127.0.0.1%3A8443"
    assert did_web("host", "orgs/fife") == "did:web:host:orgs:fife"
    for bad in ("fife example", "https://fife.example", ""):
        with pytest.raises(CeadError) as err:
            did_web(bad)
        assert err.value.code == "node.domain_invalid"


def test_keys_are_encrypted_private_and_never_overwritten(tmp_path):
    node = make_node(tmp_path / "h")
    pem_files = sorted((tmp_path / "h" / "keys").glob("*.pem"))
    assert len(pem_files) == 2
    before = {p: p.read_bytes() for p in pem_files}
    for path, data in before.items():
        assert b"BEGIN ENCRYPTED PRIVATE KEY" in data
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert "passphrase" not in (tmp_path / "h" / "config.yaml").read_text().lower()
    with pytest.raises(CeadError) as err:
        Node.open(tmp_path / "h", b"wrong").signing_key()
    assert err.value.code == "key.locked"
    again, created = Node.init(tmp_path / "h", "Fife Council", PASS, domain="fife.example")
    assert not created and again.did == node.did
    assert {p: p.read_bytes() for p in pem_files} == before
    with pytest.raises(CeadError) as err:
        Node.init(tmp_path / "h", "Fife Council", PASS, domain="other.example")
    assert err.value.code == "node.exists_conflict"


def test_did_key_node(tmp_path):
    node, _ = Node.init(tmp_path / "k", "Service", PASS, did_method="key")
    assert node.did.startswith("did:key:z6Mk")
    doc = node.did_document()
    assert doc["id"] == node.did and doc["assertionMethod"] == [node.verification_method_id]
    with pytest.raises(CeadError) as err:
        node.rotate_key()
    assert err.value.code == "key.rotate_unsupported"


def test_rotate_then_retire(tmp_path):
    node = make_node(tmp_path / "h")
    old = node.verification_method_id
    new = node.rotate_key()
    assert node.verification_method_id == new != old
    assert Node.open(tmp_path / "h", PASS).verification_method_id == new
    doc = node.did_document()
    assert {old, new} <= set(doc["assertionMethod"])
    with pytest.raises(CeadError):
        node.retire_key(new)                                # the current key cannot be retired
    node.retire_key(old)
    doc = Node.open(tmp_path / "h").did_document()
    assert old not in doc["assertionMethod"] and new in doc["assertionMethod"]


def test_keys_and_config_reach_the_disk_before_they_are_relied_on(tmp_path, monkeypatch):
    """A crash right after ``cead init`` or ``cead key rotate`` must not leave an empty config.yaml or key file:
    each is fsynced before it is renamed into place or named by the config. config.yaml is mode 0600."""
    synced: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    def replace(src, dst):
        assert str(src) in synced, f"{src} renamed into place before it was flushed to disk"
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    node = make_node(tmp_path / "h", public_url="https://fife.example")
    node._passphrase = PASS
    assert any(p.endswith("keys/key-1.pem") for p in synced)
    synced.clear()
    node.rotate_key()
    assert any(p.endswith("keys/key-2.pem") for p in synced)
    assert any(p.endswith("config.yaml.tmp") for p in synced)
    assert stat.S_IMODE((tmp_path / "h" / "config.yaml").stat().st_mode) == 0o600


def test_every_revision_id_fits_alembics_version_column():
    """alembic keeps the revision id in a VARCHAR(32): SQLite ignores the length, PostgreSQL refuses a longer id
    (an id of 33 characters failed every PostgreSQL migration while every SQLite test passed)."""
    import ast
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    found = {}
    for path in root.glob("**/migrations/versions/*.py"):
        if ".venv" in path.parts:
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["revision"]:
                found[path.name] = node.value.value
    assert len(found) >= 15, found   # issuer, staff, evidence, wallet and answers migrations were all read
    assert {name: rev for name, rev in found.items() if len(rev) > 32} == {}


def test_migrations_are_idempotent_and_keep_rows(tmp_path):
    node = make_node(tmp_path / "h")
    token(node)
    db.migrate(node.engine)
    db.migrate(node.engine)
    assert [t.name for t in tokens.list_tokens(node.engine)] == ["tester"]
    names = sa.inspect(node.engine).get_table_names()
    assert "alembic_version_issuer" in names and "issuer_credential" in names


def test_tokens_hashed_and_scoped(tmp_path):
    node = make_node(tmp_path / "h")
    secret = token(node, "issue:certification")
    with node.engine.connect() as conn:
        stored = conn.execute(sa.text("select token_hash from issuer_token")).scalar_one()
    assert secret not in stored and len(stored) == 64
    row = tokens.authenticate(node.engine, f"Bearer {secret}")
    tokens.require(row, "issue:certification")
    with pytest.raises(CeadError) as err:
        tokens.require(row, "status:change")
    assert err.value.code == "auth.scope"
    for header, code in [(None, "auth.missing"), ("Bearer nope", "auth.invalid"), (f"Basic {secret}", "auth.invalid")]:
        with pytest.raises(CeadError) as err:
            tokens.authenticate(node.engine, header)
        assert err.value.code == code
    with pytest.raises(CeadError) as err:
        tokens.create_token(node.engine, "x", "issue:everything")
    assert err.value.code == "token.scope_invalid"


def test_revocation_is_final_and_register_records(tmp_path):
    node = make_node(tmp_path / "h", public_url="https://fife.example")
    node._passphrase = PASS
    issued = issuing.issue(node, certification(node.did), {"format": "vc+jwt", "credentialStatus": {
        "type": "BitstringStatusListEntry", "statusPurpose": ["revocation", "suspension"]}})
    assert issuing.change_status(node, issued.id, "suspend")["status"] == "suspended"
    assert issuing.change_status(node, issued.id, "reinstate")["status"] == "active"
    assert issuing.change_status(node, issued.id, "revoke")["status"] == "revoked"
    with pytest.raises(CeadError) as err:
        issuing.change_status(node, issued.id, "reinstate")
    assert err.value.code == "status.revoked_permanent"
    [row] = issuing.register(node)
    assert row.id == issued.id and row.status == "revoked" and row.subject == "did:web:nhs-fife.example"
    assert row.digest.startswith("sha256-") and len(json.loads(row.status_entries)) == 2


# ---- the command line ------------------------------------------------------------------------------------------

def run(*args, env=None):
    result = CliRunner().invoke(main, list(args), env={"CEAD_PASSPHRASE": PASS.decode(), **(env or {})})
    return result


def test_cli_will_not_suspend_or_reinstate_a_credential_whose_period_is_over(tmp_path):
    """`cead suspend` / `cead reinstate` of a credential no longer in force (a delegation whose scope ended in 2025)
    stop with the register's reason on one line, `error [status.period_over]: ...`, exit 1, as the other refusals
    (`status.revoked_permanent`) do, and change nothing; `cead revoke` still revokes it."""
    from issuer_fixtures import delegation
    from test_issuer_api import SUSPENDABLE, _state, ended_words
    home = tmp_path / "h"
    node = make_node(home, public_url="https://fife.example")
    node._passphrase = PASS
    ended = delegation(node, "did:web:iao.example", {"datasets": ["https://data.fife.example/meals"],
                                                     "notAfter": "2025-12-31T23:59:59Z"}, options=SUSPENDABLE)
    for action in ("suspend", "reinstate"):
        refused = run(action, ended.id, "--home", str(home))
        assert refused.exit_code == 1, refused.output
        assert refused.stderr == f"error [status.period_over]: {ended_words(ended.id, action)}\n"
        assert refused.stdout == "" and "Traceback" not in refused.output
    assert _state(node, ended.id) == ("active", False, False, 0)
    revoked = run("revoke", ended.id, "--home", str(home))
    assert revoked.exit_code == 0 and revoked.stdout == f"{ended.id}: revoked\n", revoked.output
    assert _state(node, ended.id)[0] == "revoked"


def test_cli_init_twice_issue_revoke_and_csv(tmp_path):
    home = str(tmp_path / "h")
    first = run("init", "--name", "Fife Council", "--domain", "fife.example", "--home", home)
    assert first.exit_code == 0, first.output
    assert first.output.strip().endswith("did:web:fife.example")
    keys = {p.name: p.read_bytes() for p in (tmp_path / "h" / "keys").iterdir()}
    second = run("init", "--name", "Fife Council", "--domain", "fife.example", "--home", home)
    assert second.exit_code == 0 and "unchanged" in second.output
    assert {p.name: p.read_bytes() for p in (tmp_path / "h" / "keys").iterdir()} == keys
    conflict = run("init", "--name", "Fife Council", "--domain", "other.example", "--home", home)
    assert conflict.exit_code != 0 and "node.exists_conflict" in conflict.output
    assert run("did", "show", "--home", home).output.strip() == "did:web:fife.example"

    subject = tmp_path / "subject.yaml"
    subject.write_text("\n".join(f"{k}: {json.dumps(v)}" for k, v in
                                 certification("did:web:fife.example")["credentialSubject"].items()))
    out = tmp_path / "vc.jwt"
    issued = run("issue", "certification", "--home", home, "--file", str(subject), "--format", "vc+jwt",
                 "--out", str(out))
    assert issued.exit_code == 0, issued.output
    assert out.read_text().count(".") == 2
    bad = run("issue", "certification", "--home", home, "--subject", "did:web:x.example", "--format", "vc+jwt")
    assert bad.exit_code == 1 and "schema.invalid" in bad.output

    listing = run("issued", "list", "--home", home, "--csv")
    lines = listing.output.strip().splitlines()
    assert lines[0].startswith("id,types,subject") and len(lines) == 2
    cid = lines[1].split(",")[0]
    assert run("revoke", cid, "--home", home).exit_code == 0
    assert "revoked" in run("issued", "list", "--home", home).output
    assert run("suspend", cid, "--home", home).exit_code == 1    # revoked is final (and no suspension entry)

    tok = run("token", "create", "--home", home, "--name", "pipeline", "--scope", "issue:approval")
    assert tok.exit_code == 0 and tok.output.strip().startswith("cead_")
    rotated = run("key", "rotate", "--home", home)
    assert rotated.exit_code == 0 and rotated.output.strip() == "did:web:fife.example#key-2"


# ---- network settings and vocabulary ---------------------------------------------------------------------------

MEALS, CATALOGUE = "https://data.fife.example/dataset/meals", "https://data.fife.example/catalogue/education"


def _vocabulary_file(path):
    path.write_text(f"isPartOf:\n  {MEALS}: [{CATALOGUE}]\n")
    return path


def test_cli_init_network_and_vocabulary_settings(tmp_path):
    import shutil

    import yaml

    from cead.processes import LocalCA
    from schemas.vocab import registry
    ca = LocalCA(tmp_path / "ca")
    vocab = _vocabulary_file(tmp_path / "vocab.yaml")
    home = tmp_path / "h"
    result = run("init", "--name", "Fife Council", "--domain", "127.0.0.1:8443", "--home", str(home),
                 "--ca-bundle", str(ca.ca_pem), "--allow-private-addresses", "--vocabulary", str(vocab))
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((home / "config.yaml").read_text())
    assert config["network"] == {"allow_http": False, "allow_private": True, "ca_bundle": str(ca.ca_pem.resolve()),
                                 "timeout": 5.0}
    assert config["vocabulary"] == str(vocab.resolve())
    node = Node.open(home)
    fetcher = node.fetcher()
    assert (fetcher.allow_private, fetcher.allow_http, fetcher.ca_bundle) == (True, False, str(ca.ca_pem.resolve()))
    assert node.vocabulary.within(MEALS, CATALOGUE)
    assert not registry().within(MEALS, CATALOGUE)      # the node's terms do not leak into the process registry

    # relative paths in config.yaml resolve against the home
    shutil.copy(ca.ca_pem, home / "ca.pem")
    shutil.copy(vocab, home / "terms.yaml")
    config["network"]["ca_bundle"], config["vocabulary"] = "ca.pem", "terms.yaml"
    (home / "config.yaml").write_text(yaml.safe_dump(config))
    node = Node.open(home)
    assert node.fetcher().ca_bundle == str((home / "ca.pem").resolve()) and node.vocabulary.within(MEALS, CATALOGUE)

    # without the flags: public HTTPS only, system CAs, the built-in vocabulary
    plain = make_node(tmp_path / "plain")
    assert (plain.fetcher().allow_private, plain.fetcher().ca_bundle) == (False, None)
    assert not plain.vocabulary.within(MEALS, CATALOGUE)
    assert "development/test only" in run("init", "--help").output.lower()


@pytest.mark.parametrize("flags, needle", [
    (["--ca-bundle", "{tmp}/missing.pem"], "--ca-bundle: no such file"),
    (["--ca-bundle", "{tmp}/not-a-cert.pem"], "is not a readable PEM"),
    (["--vocabulary", "{tmp}/missing.yaml"], "--vocabulary: no such file"),
    (["--vocabulary", "{tmp}/bad-vocab.json"], "unknown vocabulary keys: ['narrower']"),
])
def test_cli_init_refuses_bad_settings_before_writing_anything(tmp_path, flags, needle):
    (tmp_path / "not-a-cert.pem").write_text("hello\n")
    (tmp_path / "bad-vocab.json").write_text('{"narrower": {}}')
    home = tmp_path / "h"
    result = run("init", "--name", "Fife Council", "--domain", "fife.example", "--home", str(home),
                 *[f.format(tmp=tmp_path) for f in flags])
    assert result.exit_code == 1
    assert "error [node.config_invalid]" in result.output and needle in result.output, result.output
    assert not (home / "config.yaml").exists() and not list(home.glob("keys/*.pem"))


@pytest.mark.parametrize("network, needle", [
    ({"allow_privat": True}, "allow_privat: unknown key"),
    ({"timeout": 0}, "timeout: Input should be greater than 0"),
    ({"allow_http": "sometimes"}, "allow_http: Input should be a valid boolean"),
    ("yes", "network: must be a mapping"),
])
def test_bad_network_section_stops_open_and_serve(tmp_path, network, needle):
    import yaml
    home = tmp_path / "h"
    make_node(home)
    config = yaml.safe_load((home / "config.yaml").read_text())
    config["network"] = network
    (home / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(CeadError) as err:
        Node.open(home)
    assert err.value.code == "node.config_invalid" and needle in err.value.message
    served = run("issuer", "serve", "--home", str(home), "--port", "8443")   # refused before it binds
    assert served.exit_code == 1 and "node.config_invalid" in served.output and needle in served.output


def test_guard_rail_uses_the_nodes_vocabulary(tmp_path):
    """A delegation for a dataset inside the catalogue the signer's own delegation covers: within it only for a
    node that knows the dataset is part of that catalogue. The signers hold real delegations from a council (served
    over HTTPS on 127.0.0.1: the guard rail verifies them)."""
    from schemas.models import credential_digest
    from issuer_fixtures import delegation, served_nodes
    vocab = _vocabulary_file(tmp_path / "vocab.yaml")
    results = {}
    for name, extra in (("plain", {}), ("with-vocabulary", {"vocabulary": vocab})):
        with served_nodes(tmp_path / name, "council", "dpo", **extra) as nodes:
            council, node = nodes["council"], nodes["dpo"]
            parent = delegation(council, node.did, {"datasets": [CATALOGUE]}, role="DataProtectionOfficer")
            child = {"@context": ["https://www.w3.org/ns/credentials/v2", "https://w3id.org/cead/v1"],
                     "type": ["VerifiableCredential", "DelegatedAuthorityCredential"], "credentialSubject": {
                         "id": "did:web:iao.example", "role": "InformationAssetOwner", "onBehalfOf": council.did,
                         "allowedActions": ["ApproveDisclosure"], "scope": {"datasets": [MEALS]},
                         "parentDelegation": {"id": parent.id, "digest": credential_digest(parent.credential)}}}
            try:
                results[name] = issuing.issue(node, child, {"delegation": parent.credential}).id
            except CeadError as exc:
                results[name] = exc.code
    assert results["plain"] == "scope.too_wide"
    assert results["with-vocabulary"].startswith("urn:uuid:")
