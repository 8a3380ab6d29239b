"""Hardening of the issuer node after review: status lists re-signed after a key or URL change, `--out` that cannot
lose a signed credential, unknown options refused, did:web and public URL checked with the verifier's rules, a
database checked before `cead init` writes anything and reported as a coded error, unpaired surrogates refused,
ES256 on a did:key node, chunked bodies over the limit, port ranges."""
from __future__ import annotations

import io
import json
import sys

import pytest
import yaml
from click.testing import CliRunner

from cead.cli import main
from issuer import db, issuing
from issuer.app import create_app
from issuer.node import Node, check_public_url, did_web
from verifier.credential import Verifier
from verifier.did import DidMethod, Resolver, default_methods
from verifier.policy import Network
from verifier.results import CeadError
from verifier.status import StatusLists

from issuer_fixtures import PASS, certification, counts, make_node, token

FORMATS = [{}, {"format": "vc+jwt"}, {"cryptosuite": "eddsa-jcs-2022"}]
UNREACHABLE_PG = "postgresql://cead:secret@127.0.0.1:1/cead"


def run(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env={"CEAD_PASSPHRASE": PASS.decode(), **(env or {})})


def post(client, tok, body, raw=None):
    return client.post("/credentials/issue", data=raw if raw is not None else json.dumps(body),
                       headers={"Authorization": f"Bearer {tok}"}, content_type="application/json")


def subject_file(tmp_path, did="did:web:fife.example"):
    path = tmp_path / "subject.json"
    path.write_text(json.dumps(certification(did)["credentialSubject"]))
    return path


# ---- 1. the cached status list follows key rotation, retirement and the public URL --------------------------

class _OwnWeb(DidMethod):
    """did:web answered by the node itself (a DID method of the resolver's protocol)."""
    name = "web"

    def __init__(self, node):
        self.node = node

    def resolve(self, did, msid):
        return self.node.did_document()


def _OwnResolver(node):
    return Resolver(methods=[*default_methods(), _OwnWeb(node)])


class _AppFetcher:
    """A fetcher that answers status-list URLs from the node's own app (no network)."""
    def __init__(self, client):
        self.client = client

    def get(self, url):
        resp = self.client.get("/" + url.split("/", 3)[3])

        class Response:
            pass
        out = Response()
        out.body = out.content = resp.data
        out.headers, out.status, out.media_type = dict(resp.headers), resp.status_code, resp.mimetype
        out.json = lambda: json.loads(resp.data)
        return out


def test_status_list_is_resigned_after_the_key_is_rotated_and_retired(node):
    first = issuing.issue(node, certification(node.did))
    client = create_app(node).test_client()
    before = json.loads(client.get("/status/1").data)
    assert before["proof"]["verificationMethod"] == f"{node.did}#key-1"
    node.rotate_key()
    second = issuing.issue(node, certification(node.did))
    rotated = json.loads(client.get("/status/1").data)
    assert rotated["proof"]["verificationMethod"] == f"{node.did}#key-2"   # the current key, at once
    node.retire_key("key-1")
    served = json.loads(client.get("/status/1").data)
    assert served["proof"]["verificationMethod"] == f"{node.did}#key-2"
    resolver = _OwnResolver(node)
    result = Verifier(resolver).verify_credential(served)
    assert result.verified, [p.code for p in result.problems]
    lists = StatusLists(_AppFetcher(client), verifier=Verifier(resolver))
    assert lists.check(second.credential) == []
    assert lists.check(first.credential) == []
    # unchanged key, URL and bits: the same signed copy (same ETag)
    assert client.get("/status/1").headers["ETag"] == client.get("/status/1").headers["ETag"]


def test_status_list_names_the_new_public_url(node):
    issuing.issue(node, certification(node.did))
    client = create_app(node).test_client()
    assert json.loads(client.get("/status/1").data)["id"] == "https://fife.example/status/1"
    node.config["public_url"] = "https://new.example"          # what `cead issuer serve --public-url` does
    issued = issuing.issue(node, certification(node.did))
    assert issued.credential["credentialStatus"]["statusListCredential"] == "https://new.example/status/1"
    served = json.loads(client.get("/status/1").data)
    assert served["id"] == "https://new.example/status/1"
    assert served["credentialSubject"]["id"] == "https://new.example/status/1#list"


# ---- 2. --out ------------------------------------------------------------------------------------------------

def test_issue_out_into_a_missing_directory_is_refused_before_signing(tmp_path):
    home = tmp_path / "h"
    make_node(home)
    target = tmp_path / "no-such-dir" / "vc.json"
    result = run("issue", "certification", "--home", home, "--file", subject_file(tmp_path), "--out", target)
    assert result.exit_code == 1, result.output
    assert "error [output.unwritable]" in result.stderr and str(target) in result.stderr
    assert "Traceback" not in result.output
    assert counts(Node.open(home)) == (0, 0)          # nothing signed, nothing in the register


def test_issue_out_that_fails_after_signing_prints_the_credential(tmp_path, monkeypatch):
    from issuer import cli
    home = tmp_path / "h"
    make_node(home)

    def full_disk(out, text):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(cli, "_write_out", full_disk)
    target = tmp_path / "vc.json"
    result = run("issue", "certification", "--home", home, "--file", subject_file(tmp_path), "--out", target)
    assert result.exit_code == 1
    assert "error [output.unwritable]" in result.stderr and str(target) in result.stderr
    printed = json.loads(result.stdout)
    rows = issuing.register(Node.open(home))
    assert [r.id for r in rows] == [printed["id"]]     # the credential the register holds reached the DPO


def test_issue_out_is_written_atomically(tmp_path):
    home = tmp_path / "h"
    make_node(home)
    target = tmp_path / "out" / "vc.json"
    target.parent.mkdir()
    target.write_text("old\n")
    result = run("issue", "certification", "--home", home, "--file", subject_file(tmp_path), "--out", target)
    assert result.exit_code == 0, result.output
    assert json.loads(target.read_text())["proof"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["vc.json"]   # no temporary file left behind


def test_cosign_out_into_a_missing_directory_is_a_coded_error(tmp_path):
    home = tmp_path / "h"
    make_node(home)
    cred = tmp_path / "cred.json"
    cred.write_text(json.dumps(certification("did:web:other.example")))
    result = run("cosign", cred, "--home", home, "--out", tmp_path / "missing" / "co.json")
    assert result.exit_code == 1
    assert "error [output.unwritable]" in result.stderr and "Traceback" not in result.output


# ---- 3. options ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("options, field", [
    ({"cryptosuit": "eddsa-jcs-2022"}, "cryptosuit"),
    ({"formt": "vc+jwt"}, "formt"),
    ({"delegaton": {}}, "delegaton"),
    ({"credentialStatus": {"type": "BitstringStatusListEntry", "statusPurpos": ["suspension"]}},
     "credentialStatus.statusPurpos"),
    ({"created": "2020-01-01T00:00:00Z"}, "created"),
    ({"challenge": "abc"}, "challenge"),
    ({"domain": "example.org"}, "domain"),
    ({"credentialId": "urn:uuid:something-else"}, "credentialId"),
    ({"mandatoryPointers": "/issuer"}, "mandatoryPointers"),
])
def test_unknown_or_unsupported_options_are_refused(node, options, field):
    client, tok = create_app(node).test_client(), token(node)
    resp = post(client, tok, {"credential": certification(node.did), "options": options})
    assert resp.status_code == 400, resp.get_json()
    error = resp.get_json()["error"]
    assert error["code"] == "options.invalid" and error["detail"]["field"] == field
    assert counts(node) == (0, 0)


def test_a_subject_did_key_that_decodes_to_no_key_is_refused_before_signing(node):
    """A did:key's syntax admits did:key:zzz; the issuer decodes every did:key and did:jwk in the subject, so it
    never signs a credential naming a key no one can hold (a did:web is checked for syntax only)."""
    from issuer.keys import PrivateKey
    from verifier.did import did_key
    client, tok = create_app(node).test_client(), token(node)
    for bad in ("did:key:zzz", "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2do",   # (one character short)
                "did:jwk:e30"):                                                          # {} : no key
        resp = post(client, tok, {"credential": certification(node.did, id=bad)})
        assert resp.status_code == 400, resp.get_json()
        error = resp.get_json()["error"]
        assert error["code"] == "did.invalid" and error["detail"]["field"] == "credentialSubject.id", error
    assert counts(node) == (0, 0)
    good = did_key(PrivateKey.generate().public)
    assert post(client, tok, {"credential": certification(node.did, id=good)}).status_code == 201
    subject = node.home / "subject.json"
    subject.write_text(json.dumps(certification(node.did)["credentialSubject"]))
    result = run("issue", "certification", "--home", node.home, "--file", subject, "--subject", "did:key:zzz")
    assert result.exit_code != 0 and "did.invalid" in result.output and "Traceback" not in result.output


def test_a_delegation_given_for_a_certification_is_refused_not_ignored(node):
    client, tok = create_app(node).test_client(), token(node)
    resp = post(client, tok, {"credential": certification(node.did), "options": {"delegation": "some-id"}})
    assert resp.status_code == 400
    error = resp.get_json()["error"]
    assert error["code"] == "options.invalid" and error["detail"]["field"] == "delegation"
    assert counts(node) == (0, 0)


def test_a_misspelt_option_names_the_one_meant(node):
    with pytest.raises(CeadError) as err:
        issuing.issue(node, certification(node.did), {"delegaton": {}})
    assert "did you mean 'delegation'" in err.value.message


def test_documented_and_allowed_options_are_accepted(node):
    client, tok = create_app(node).test_client(), token(node)
    cred = {**certification(node.did), "id": "urn:uuid:0b3c5d8e-7c3f-4c53-9b3a-1d7a8c9e0f11"}
    for options in [{"cryptosuite": "eddsa-jcs-2022", "format": "ldp_vc"},
                    {"format": "vc+jwt", "alg": "ES256"},
                    {"credentialStatus": {"type": "BitstringStatusListEntry",
                                          "statusPurpose": ["revocation", "suspension"]}},
                    {"delegation": None, "mandatoryPointers": ["/issuer"]},
                    {"credentialId": cred["id"]}]:
        body = {"credential": cred if "credentialId" in options else certification(node.did), "options": options}
        resp = post(client, tok, body)
        assert resp.status_code == 201, (options, resp.get_json())


# ---- 4. did:web and the public URL -----------------------------------------------------------------------------

@pytest.mark.parametrize("domain, path", [
    ("..", None), ("-", None), ("a..b", None), ("fife.example:99999", None), ("fife.example:0", None),
    ("fife.example:", None), ("fife.example:443", None), ("-fife.example", None), ("fife.example", "a/../b"),
    ("fife.example", "a/./b"), ("fife.example", "a//b"), ("fife.example", "a b"), ("fïfe.example", None),
])
def test_init_refuses_a_domain_the_verifier_would_not_resolve(tmp_path, domain, path):
    home = tmp_path / "h"
    with pytest.raises(CeadError) as err:
        Node.init(home, "Fife Council", PASS, domain=domain, path=path)
    assert err.value.code == "node.domain_invalid" and repr(domain) in err.value.message
    assert not home.exists()


def test_did_web_keeps_the_good_forms():
    assert did_web("Fife.Example") == "did:web:fife.example"
    assert did_web("localhost:8443", "/orgs/fife/") == "did:web:localhost%3A8443:orgs:fife"


def test_cli_init_refuses_a_bad_domain(tmp_path):
    result = run("init", "--name", "Fife", "--domain", "a..b", "--home", tmp_path / "h")
    assert result.exit_code == 1 and "error [node.domain_invalid]" in result.stderr and "'a..b'" in result.stderr
    assert not (tmp_path / "h").exists()


@pytest.mark.parametrize("url", ["fife.example", "ftp://fife.example", "https://", "https:///status",
                                 "https://fife.example?x=1", "https://fife.example/#a", "https://user@fife.example", "https://:pw@fife.example",
                                 "https://fife.example:99999", "https://fife..example", "http://fife.example",
                                 "http://127.0.0.1:8080", "", "https://fife.example/a/../b"])
def test_init_refuses_a_bad_public_url(tmp_path, url):
    home = tmp_path / "h"
    with pytest.raises(CeadError) as err:
        Node.init(home, "Fife Council", PASS, domain="fife.example", public_url=url)
    assert err.value.code == "node.public_url_invalid"
    assert not home.exists()


def test_public_url_forms_that_are_accepted():
    assert check_public_url("https://fife.example/") == "https://fife.example"
    assert check_public_url("https://fife.example:8443/cead") == "https://fife.example:8443/cead"
    dev = Network(allow_private=True)
    assert check_public_url("http://127.0.0.1:8080", dev) == "http://127.0.0.1:8080"
    assert check_public_url("http://fife.example", Network(allow_http=True)) == "http://fife.example"


def test_cli_public_url_is_checked_by_init_and_serve(tmp_path):
    result = run("init", "--name", "Fife", "--domain", "fife.example", "--public-url", "fife.example/status",
                 "--home", tmp_path / "h")
    assert result.exit_code == 1 and "error [node.public_url_invalid]" in result.stderr
    assert "fife.example/status" in result.stderr and not (tmp_path / "h").exists()
    assert run("init", "--name", "Fife", "--domain", "fife.example", "--home", tmp_path / "h").exit_code == 0
    served = run("issuer", "serve", "--home", tmp_path / "h", "--public-url", "ftp://x.example")
    assert served.exit_code == 1 and "error [node.public_url_invalid]" in served.stderr


# ---- 5. the database -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("url, code", [("foo://bar", "node.config_invalid"),
                                       ("sqlite:////nonexistent-cead-dir/x/node.db", "db.unavailable"),
                                       (UNREACHABLE_PG, "db.unavailable")])
def test_init_checks_the_database_before_writing_anything(tmp_path, url, code):
    home = tmp_path / "h"
    result = run("init", "--name", "Fife", "--domain", "fife.example", "--database-url", url, "--home", home)
    assert result.exit_code == 1, result.output
    assert f"error [{code}]" in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert "secret" not in result.stderr                     # the password is never printed
    assert not home.exists()
    again = run("init", "--name", "Fife", "--domain", "fife.example", "--home", home)
    assert again.exit_code == 0 and "Created node" in again.output


def test_commands_report_an_unreachable_database_as_a_coded_error(tmp_path):
    home = tmp_path / "h"
    make_node(home)
    config = yaml.safe_load((home / "config.yaml").read_text())
    for url in (UNREACHABLE_PG, f"sqlite:///{tmp_path}/gone/node.db"):
        config["database_url"] = url
        (home / "config.yaml").write_text(yaml.safe_dump(config))
        for argv in (["issued", "list"], ["token", "list"], ["revoke", "urn:uuid:x"],
                     ["issue", "certification", "--file", subject_file(tmp_path)]):
            result = run(*argv, "--home", home)
            assert result.exit_code == 1, (argv, result.output)
            assert result.stderr.startswith("error [db.unavailable]: "), (argv, result.stderr)
            assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1


def test_the_api_answers_503_when_the_database_is_unavailable(node, tmp_path):
    client = create_app(node).test_client()
    node._engine = db.make_engine(f"sqlite:///{tmp_path}/gone/node.db")
    resp = post(client, "cead_x", {"credential": certification(node.did)})
    assert resp.status_code == 503 and resp.get_json()["error"]["code"] == "db.unavailable"


# ---- 6. unpaired surrogates ------------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["name", "credentialSubject.legalName", "key"])
def test_unpaired_surrogates_are_refused_in_every_format(node, where):
    client, tok = create_app(node).test_client(), token(node)
    cred = certification(node.did)
    if where == "name":
        cred["name"], expected = "a\ud800b", "name"
    elif where == "key":
        cred["credentialSubject"]["x\udfff"], expected = "y", "credentialSubject.x\\udfff"
    else:
        cred["credentialSubject"]["legalName"], expected = "\ud800", "credentialSubject.legalName"
    for options in FORMATS:
        resp = post(client, tok, None, raw=json.dumps({"credential": cred, "options": options}))
        assert resp.status_code == 400, (options, resp.get_data())
        error = resp.get_json()["error"]
        assert error["code"] == "credential.invalid" and error["detail"]["field"] == expected
    assert counts(node) == (0, 0)


def test_unpaired_surrogates_in_options_are_refused(node):
    with pytest.raises(CeadError) as err:
        issuing.issue(node, certification(node.did), {"delegation": "urn:uuid:\ud800"})
    assert err.value.code == "options.invalid" and err.value.detail["field"] == "options.delegation"


def test_the_cli_prints_the_coded_error_for_a_surrogate(tmp_path):
    home = tmp_path / "h"
    make_node(home)
    subject = certification("did:web:fife.example")["credentialSubject"]
    args = [a for k, v in subject.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    result = run("issue", "certification", "--home", home, *args, "--set", "legalName=\udcff")
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error [credential.invalid]: ") and "credentialSubject.legalName" in result.stderr
    assert counts(Node.open(home)) == (0, 0)


# ---- 7. did:key nodes -----------------------------------------------------------------------------------------

def test_es256_on_a_did_key_node_is_a_400(tmp_path):
    node, _ = Node.init(tmp_path / "k", "K", PASS, did_method="key", public_url="https://k.example")
    node._passphrase = PASS
    resp = post(create_app(node).test_client(), token(node),
                {"credential": certification(node.did), "options": {"format": "vc+jwt", "alg": "ES256"}})
    assert resp.status_code == 400
    error = resp.get_json()["error"]
    assert error["code"] == "options.invalid" and "no P-256 key" in error["message"]
    assert counts(node) == (0, 0)


def test_init_did_key_without_public_url_warns(tmp_path):
    result = run("init", "--name", "Jo", "--did", "key", "--home", tmp_path / "k")
    assert result.exit_code == 0
    assert "warning:" in result.stderr and "cannot issue" in result.stderr and "public_url" in result.stderr
    with_url = run("init", "--name", "Jo", "--did", "key", "--public-url", "https://jo.example",
                   "--home", tmp_path / "k2")
    assert with_url.exit_code == 0 and "warning" not in with_url.stderr


# ---- 8. chunked bodies ----------------------------------------------------------------------------------------

def _chunked(app, tok, body: bytes):
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/credentials/issue", "SERVER_NAME": "x", "SERVER_PORT": "80",
               "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True,
               "CONTENT_TYPE": "application/json", "HTTP_AUTHORIZATION": f"Bearer {tok}", "wsgi.errors": sys.stderr,
               "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": False,
               "wsgi.run_once": False, "HTTP_TRANSFER_ENCODING": "chunked"}
    status = []
    out = b"".join(app(environ, lambda s, h: status.append(s)))
    return int(status[0].split()[0]), json.loads(out)


def test_a_chunked_body_over_the_limit_is_413_not_malformed(node):
    app, tok = create_app(node), token(node)
    big = b'{"credential": {"x": "' + b"a" * (2 * 1024 * 1024) + b'"}}'
    status, body = _chunked(app, tok, big)
    assert status == 413 and body["error"]["code"] == "request.too_large"
    good = json.dumps({"credential": certification(node.did)}).encode()
    status, body = _chunked(app, tok, good)
    assert status == 201, body
    small_app = create_app(node, max_body=len(good))
    assert _chunked(small_app, tok, good)[0] == 201                  # exactly the limit is fine
    assert _chunked(create_app(node, max_body=len(good) - 1), tok, good)[0] == 413


# ---- 9. ports -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("port", ["0", "65536", "-1"])
def test_serve_port_out_of_range_is_a_usage_error(tmp_path, port):
    make_node(tmp_path / "h")
    result = run("issuer", "serve", "--home", tmp_path / "h", "--port", port)
    assert result.exit_code == 2 and "--port" in result.output and "Traceback" not in result.output
