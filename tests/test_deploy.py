"""The container images and the compose file (deploy/): the properties an operator relies on, checked on the files
themselves (non-root users, health checks, read-only root filesystems, a gateway image without the node extras,
the policy a gateway would load), and, where a container engine runs, built and started for real: each image runs
as its unprivileged user on a read-only root filesystem with every capability dropped, answers its own health check
and does its job (the gateway and the provider refuse a request without a presentation; the node publishes its DID
document). On a machine without an engine, or without the base image, those tests say so and are skipped; the file
checks still run.

The engine tests use ``CEAD_TEST_IMAGE_BASE`` as the images' BASE (default: the public python:3.11-slim, pulled if
absent); where no container registry is reached, build a Debian base with ``deploy/local-base.sh`` and name it
(``CEAD_TEST_IMAGE_BASE=cead-base:bookworm``). A ``PIP_CERT`` or ``PIP_INDEX_URL`` in the environment is passed to
the build as well (with podman the CA bundle is mounted into the build), so the build reaches PyPI the way pip on
this machine does."""
from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from container_images import image_ids, remove_untagged
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def _dockerfile(name: str) -> list[str]:
    text = (DEPLOY / name).read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


IMAGES = {"gateway": "Dockerfile.gateway", "node": "Dockerfile.node", "provider": "Dockerfile.provider"}
DEFAULT_BASE = "docker.io/library/python:3.11-slim"


@pytest.mark.parametrize("name", sorted(IMAGES.values()))
def test_images_run_unprivileged_with_a_health_check(name):
    lines = _dockerfile(name)
    final = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")):]   # the runtime stage
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), users
    assert any(line.startswith("HEALTHCHECK ") for line in final)
    copied = [line.split()[1] for line in lines if line.startswith("COPY ") and "--from" not in line]
    for source in copied:
        assert (ROOT / source).exists(), f"{name} copies {source}, which is not in the repository"


def test_the_gateway_image_installs_the_verifier_alone():
    lines = _dockerfile("Dockerfile.gateway")
    installs = [line for line in lines if "pip install" in line]
    assert installs and all("[node]" not in line for line in installs)


def test_compose_services_are_hardened_and_the_policy_loads():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"fife", "dundee", "gateway", "provider", "nginx", "postgres"} <= set(services)
    for name in ("fife", "dundee", "gateway", "provider", "nginx"):
        assert services[name].get("read_only") is True, name
        assert services[name].get("cap_drop") == ["ALL"], name
    assert services["fife"]["environment"]["CEAD_DATABASE_URL"].startswith("postgresql://")
    nginx = (DEPLOY / "nginx.conf").read_text()
    assert re.search(r"auth_request\s+/_cead;", nginx) and "/authz" in nginx
    from verifier.policy import parse_policy
    policy = yaml.safe_load((DEPLOY / "gateway-policy.yaml").read_text())
    policy["network"]["ca_bundle"] = None                 # the CA is made when the trial starts
    loaded = parse_policy(policy)
    assert loaded.controller_of("https://provider.local/datasets/homelessness.csv") == "did:web:fife.local%3A8443"


def test_images_take_their_base_as_a_build_argument_defaulting_to_the_public_python_image():
    for name in IMAGES.values():
        lines = _dockerfile(name)
        assert f"ARG BASE={DEFAULT_BASE}" in lines, name
        froms = [line for line in lines if line.startswith("FROM ")]
        assert froms and all(line.split()[1] == "${BASE}" for line in froms), froms


def test_compose_images_are_overridable_with_the_public_images_as_defaults():
    """Where no registry is reached, PostgreSQL and nginx come from Debian's packages on a local base
    (Dockerfile.postgres, Dockerfile.nginx); the defaults stay the public images."""
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    assert services["postgres"]["image"] == "${CEAD_POSTGRES_IMAGE:-docker.io/library/postgres:16}"
    assert services["nginx"]["image"] == "${CEAD_NGINX_IMAGE:-docker.io/library/nginx:stable}"
    assert services["provider"]["image"] == "${CEAD_PYTHON_IMAGE:-docker.io/library/python:3.11-slim}"
    for name in ("Dockerfile.postgres", "Dockerfile.nginx"):
        lines = _dockerfile(name)
        assert [line for line in lines if line.startswith("FROM ")] == ["FROM ${BASE}"], name
        for source in (line.split()[1] for line in lines if line.startswith("COPY ")):
            assert (DEPLOY / source).exists(), f"{name} copies {source}, which is not in deploy/"
    for service in services.values():   # published on loopback only
        assert all(str(port).startswith("127.0.0.1:") for port in service.get("ports", [])), service


def _engine() -> str | None:
    """The first of podman and docker whose ``info`` answers (a docker client without a daemon does not)."""
    for name in ("podman", "docker"):
        path = shutil.which(name)
        if path is None:
            continue
        try:
            if subprocess.run([path, "info"], capture_output=True, timeout=60).returncode == 0:
                return path
        except (OSError, subprocess.TimeoutExpired):
            continue
    return None


def _run(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, f"{' '.join(map(str, args[:4]))}...: {done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def engine():
    docker = _engine()
    if docker is None:
        pytest.skip("no container engine runs on this machine (`podman info` and `docker info` fail or are absent):"
                    " the images were not built or run here; the file checks above still ran")
    base = os.environ.get("CEAD_TEST_IMAGE_BASE") or DEFAULT_BASE
    if _run(docker, "image", "inspect", base, check=False).returncode != 0 and \
            _run(docker, "pull", base, timeout=600, check=False).returncode != 0:
        pytest.skip(f"the base image {base} is not on this machine and cannot be pulled (no container registry "
                    "reached): build one from Debian's packages with deploy/local-base.sh and set "
                    "CEAD_TEST_IMAGE_BASE=cead-base:bookworm")
    return docker, base


@pytest.fixture(scope="module")
def images(engine, tmp_path_factory):
    """The three images, built from the repository as it is (tags unique to this run, removed afterwards)."""
    docker, base = engine
    podman = Path(docker).name == "podman"
    run_id = uuid.uuid4().hex[:8]
    extra: list[str] = []
    if os.environ.get("PIP_INDEX_URL", "").startswith(("http://", "https://")):
        extra += ["--build-arg", f"PIP_INDEX_URL={os.environ['PIP_INDEX_URL']}"]
    cert = os.environ.get("PIP_CERT")
    if cert and Path(cert).is_file() and podman:   # docker build cannot mount a file into its RUN steps
        extra += ["-v", f"{cert}:/run/cead-build/ca.pem:ro", "--build-arg", "PIP_CERT=/run/cead-build/ca.pem"]
    built = {}
    before = image_ids(docker)
    try:
        for image, dockerfile in IMAGES.items():
            tag = f"localhost/cead-{image}:test-{run_id}"
            _run(docker, "build", *(["--format", "docker"] if podman else []), "--build-arg", f"BASE={base}",
                 *extra, "-f", DEPLOY / dockerfile, "-t", tag, ROOT, timeout=1500)
            built[image] = tag
        yield docker, built, tmp_path_factory.mktemp("containers")
    finally:
        for tag in built.values():
            _run(docker, "rmi", "-f", tag, check=False)
        remove_untagged(docker, before)


def _shared(path: Path, mode: int = 0o755) -> Path:
    """Make a mounted file or folder readable by the images' unprivileged users."""
    path.chmod(mode)
    for child in path.rglob("*") if path.is_dir() else []:
        child.chmod(0o755 if child.is_dir() else 0o644)
    return path


def _certs(tmp: Path) -> Path:
    import trustme
    ca = trustme.CA()
    folder = tmp / "tls"
    folder.mkdir()
    server = ca.issue_cert("localhost", "127.0.0.1")
    server.private_key_pem.write_to_path(folder / "server.key")
    (folder / "server.pem").write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    ca.cert_pem.write_to_path(folder / "client.pem")
    return _shared(folder)


class Container:
    """One hardened container: the image's own user, a read-only root filesystem, no capabilities, no new
    privileges; its port published on 127.0.0.1 only."""

    def __init__(self, docker: str, image: str, port: int, *options: str):
        self.docker = docker
        self.id = _run(docker, "run", "-d", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
                       "--security-opt", "no-new-privileges", "-p", f"127.0.0.1::{port}", *options, image
                       ).stdout.strip()
        mapped = _run(docker, "port", self.id, str(port)).stdout.strip().splitlines()[0]
        self.base = f"https://127.0.0.1:{mapped.rsplit(':', 1)[1]}"

    def logs(self) -> str:
        done = _run(self.docker, "logs", self.id, check=False)
        return (done.stdout + done.stderr)[-3000:]

    def get(self, path: str, ca: Path, deadline: float = 120, headers: dict | None = None) -> tuple[int, bytes]:
        """GET over HTTPS, waiting (up to ``deadline`` s) for the service to start listening."""
        context = ssl.create_default_context(cafile=str(ca))
        until = time.monotonic() + deadline
        while True:
            try:
                request = urllib.request.Request(self.base + path, headers=headers or {})
                with urllib.request.urlopen(request, context=context, timeout=10) as answer:
                    return answer.status, answer.read()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read()
            except (urllib.error.URLError, ConnectionError, ssl.SSLError, TimeoutError):
                running = _run(self.docker, "inspect", "--format", "{{.State.Running}}", self.id, check=False)
                if time.monotonic() > until or running.stdout.strip() != "true":
                    raise AssertionError(f"{path} did not answer; the container said:\n{self.logs()}") from None
                time.sleep(0.5)

    def healthy(self) -> bool:
        """Run the image's own HEALTHCHECK now (podman), or wait for the engine's verdict (docker)."""
        if Path(self.docker).name == "podman":
            return _run(self.docker, "healthcheck", "run", self.id, check=False).returncode == 0
        until = time.monotonic() + 120
        while time.monotonic() < until:
            status = _run(self.docker, "inspect", "--format", "{{.State.Health.Status}}", self.id).stdout.strip()
            if status != "starting":
                return status == "healthy"
            time.sleep(1)
        return False

    def hardened(self, user: str) -> None:
        assert _run(self.docker, "exec", self.id, "id", "-u").stdout.strip() == user
        denied = _run(self.docker, "exec", self.id, "sh", "-c", "echo x > /opt/cead/written", check=False)
        assert denied.returncode != 0 and "Read-only file system" in denied.stderr, denied.stderr

    def stop(self) -> None:
        _run(self.docker, "rm", "-f", self.id, check=False)


@pytest.fixture
def containers():
    started: list[Container] = []
    yield started
    for container in started:
        container.stop()


@pytest.mark.timeout(1800)
def test_the_gateway_image_runs_hardened_answers_its_health_check_and_decides(images, containers):
    docker, built, tmp = images
    (tmp / "gateway").mkdir()
    tls = _certs(tmp / "gateway")
    policy = tmp / "gateway" / "policy.yaml"
    policy.write_text((DEPLOY / "gateway-policy.yaml").read_text())    # the compose trial's policy, as shipped
    _shared(policy, 0o644)
    gateway = Container(docker, built["gateway"], 8600, "-v", f"{policy}:/etc/cead/policy.yaml:ro",
                        "-v", f"{tls}:/etc/cead/tls:ro")
    containers.append(gateway)
    assert gateway.get("/healthz", tls / "client.pem")[0] == 200
    assert gateway.healthy(), gateway.logs()
    gateway.hardened("10002")
    assert "Read-only file system" not in gateway.logs()     # the server writes nothing outside /tmp
    # nginx's auth_request asks /authz: without a presentation the answer is 401, naming what is missing
    status, body = gateway.get("/authz", tls / "client.pem", headers={
        "X-Original-URI": "/datasets/homelessness.csv", "X-Original-Host": "provider.local",
        "X-Original-Proto": "https"})
    assert status == 401 and b"presentation.missing" in body, body[:500]
    # the gateway image carries the verifier alone: no node extras
    missing = _run(docker, "exec", gateway.id, "python3", "-c", "import sqlmodel", check=False)
    assert missing.returncode != 0 and "ModuleNotFoundError" in missing.stderr


@pytest.mark.timeout(1800)
def test_the_node_image_starts_a_node_on_its_volume_and_answers_its_health_check(images, containers):
    docker, built, tmp = images
    (tmp / "node").mkdir()
    tls = _certs(tmp / "node")
    data = tmp / "node" / "data"
    data.mkdir()
    os.chown(data, 10001, 10001) if os.geteuid() == 0 else data.chmod(0o777)
    node = Container(docker, built["node"], 8443, "-v", f"{data}:/data", "-v", f"{tls}:/etc/cead/tls:ro",
                     "-e", "CEAD_PASSPHRASE=container test passphrase", "-e", "CEAD_NAME=Container Council",
                     "-e", "CEAD_DOMAIN=node.example", "-e", "CEAD_PUBLIC_URL=https://node.example")
    containers.append(node)
    status, body = node.get("/.well-known/did.json", tls / "client.pem", deadline=240)
    assert status == 200 and json.loads(body)["id"] == "did:web:node.example", body[:500]
    assert node.healthy(), node.logs()
    node.hardened("10001")
    assert (data / "config.yaml").is_file()          # the node home is the volume, written by the node's user
    assert (data / "config.yaml").stat().st_uid == 10001
    # board packs as PDF: WeasyPrint finds the system's Pango in the image
    pdf = _run(docker, "exec", node.id, "python3", "-c", "import sys, weasyprint; "
               "sys.stdout.write(weasyprint.HTML(string='<p>Board pack</p>').write_pdf()[:5].decode())")
    assert pdf.stdout == "%PDF-", pdf.stderr[-1000:]


@pytest.mark.timeout(1800)
def test_the_provider_image_serves_its_series_behind_the_gateway_and_answers_its_health_check(images, containers):
    docker, built, tmp = images
    (tmp / "provider").mkdir()
    tls = _certs(tmp / "provider")
    conf = tmp / "provider" / "conf"
    (conf / "monthly").mkdir(parents=True)
    (conf / "monthly" / "2026-01.csv").write_text("localAuthority,period,applications\nFife,2026-01,40\n")
    (conf / "policy.yaml").write_text(json.dumps({
        "controllers": [{"prefix": "https://data.fife.example/", "controller": "did:web:fife.example"}]}))
    (conf / "provider.yaml").write_text(json.dumps({
        "policy": "policy.yaml", "state": "/data/state",
        "series": {"monthly": {"dataset": "https://data.fife.example/dataset/monthly",
                               "source": {"files": "monthly"}}}}))
    _shared(conf)
    data = tmp / "provider" / "data"
    data.mkdir()
    os.chown(data, 10003, 10003) if os.geteuid() == 0 else data.chmod(0o777)
    provider = Container(docker, built["provider"], 8700, "-v", f"{conf}:/etc/cead/provider:ro",
                         "-v", f"{tls}:/etc/cead/tls:ro", "-v", f"{data}:/data")
    containers.append(provider)
    assert provider.get("/healthz", tls / "client.pem")[0] == 200
    assert provider.healthy(), provider.logs()
    provider.hardened("10003")
    listed = json.loads(provider.get("/series", tls / "client.pem")[1])["series"]
    assert [s["name"] for s in listed] == ["monthly"]
    status, body = provider.get("/series/monthly/releases/2026-01", tls / "client.pem")
    assert status == 401 and b"presentation.missing" in body and b"Fife,2026-01" not in body
