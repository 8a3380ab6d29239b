"""The compose trial (deploy/compose.yaml) brought up for real with podman-compose: two organisations' nodes (Fife on
PostgreSQL, Dundee on SQLite), the Cead gateway, a provider's files behind nginx whose ``auth_request`` asks the
gateway, and PostgreSQL. Once every service is healthy, both nodes answer their DID documents over HTTPS with the
trial's private CA, Fife's tables are in PostgreSQL, and nginx refuses a dataset request that carries no
presentation (the gateway's 401 ``presentation.missing``). Then everything is taken down, volumes too.

No container registry is needed: the Cead images are built from the working tree on ``CEAD_TEST_IMAGE_BASE``
(default: the public python:3.11-slim, pulled if absent; ``cead-base:bookworm`` from ``deploy/local-base.sh`` where no
registry is reached), and PostgreSQL and nginx from Debian's packages on the same base (``deploy/Dockerfile.postgres``,
``deploy/Dockerfile.nginx``), named to compose through ``CEAD_POSTGRES_IMAGE`` and ``CEAD_NGINX_IMAGE``. Every tag,
container, volume and network is unique to the run and removed afterwards. Without podman, podman-compose or the base
image the test is skipped and says which is missing."""
from __future__ import annotations

import http.client
import importlib.util
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from container_images import image_ids, remove_untagged

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DEFAULT_BASE = "docker.io/library/python:3.11-slim"
BUILDS = {   # compose's image variable: (image name, Dockerfile, build context)
    "CEAD_NODE_IMAGE": ("cead-node", "Dockerfile.node", ROOT),
    "CEAD_GATEWAY_IMAGE": ("cead-gateway", "Dockerfile.gateway", ROOT),
    "CEAD_POSTGRES_IMAGE": ("cead-postgres", "Dockerfile.postgres", DEPLOY),
    "CEAD_NGINX_IMAGE": ("cead-nginx", "Dockerfile.nginx", DEPLOY),
}


def _run(*args, timeout: float = 300, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=env)
    if check:
        assert done.returncode == 0, f"{' '.join(map(str, args[:6]))}...: {(done.stdout + done.stderr)[-3000:]}"
    return done


def _podman() -> str | None:
    path = shutil.which("podman")
    if path is None:
        return None
    try:
        return path if subprocess.run([path, "info"], capture_output=True, timeout=60).returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(port: int, host: str, path: str, ca: str) -> tuple[int, dict, bytes]:
    """GET https://HOST/PATH from the port published on 127.0.0.1, checking the certificate against the trial's CA
    under the service's own name (fife.local, ...), as another organisation would."""
    context = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=15) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        answer = http.client.HTTPResponse(tls)
        answer.begin()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()


class Stack:
    """One run of deploy/compose.yaml under its own project name."""

    def __init__(self, podman: str, env: dict, project: str):
        self.podman, self.env, self.project = podman, env, project

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        return _run(sys.executable, "-m", "podman_compose", "-p", self.project, "-f", DEPLOY / "compose.yaml", *args,
                    timeout=timeout, check=check, env=self.env)

    def container(self, service: str) -> str:
        names = _run(self.podman, "ps", "-a", "--filter", f"label=io.podman.compose.project={self.project}",
                     "--filter", f"label=com.docker.compose.service={service}", "--format", "{{.Names}}"
                     ).stdout.split()
        assert len(names) == 1, f"{service}: containers {names}"
        return names[0]

    def logs(self, service: str) -> str:
        done = _run(self.podman, "logs", self.container(service), check=False)
        return (done.stdout + done.stderr)[-3000:]

    def wait_healthy(self, service: str, deadline: float = 300) -> None:
        """Run the image's own HEALTHCHECK until it passes: podman without systemd cannot schedule it itself, and
        podman-compose before podman 4.6 does not wait for ``service_healthy``."""
        name = self.container(service)
        until = time.monotonic() + deadline
        while _run(self.podman, "healthcheck", "run", name, check=False).returncode != 0:
            state = _run(self.podman, "inspect", "--format", "{{.State.Status}}", name, check=False).stdout.strip()
            if time.monotonic() > until or state in ("exited", "stopped"):
                raise AssertionError(f"{service} ({state}) never became healthy; it said:\n{self.logs(service)}")
            time.sleep(2)

    def remove(self) -> None:
        """Take it all down, volumes and network too, even after a failure half-way."""
        label = f"label=io.podman.compose.project={self.project}"
        # `rm -v` first: podman-compose's `down -v` leaves the anonymous volumes (an image's VOLUME) behind
        for name in _run(self.podman, "ps", "-aq", "--filter", label, check=False).stdout.split():
            _run(self.podman, "rm", "-f", "-v", "-t", "5", name, check=False)
        self.compose("down", "-v", "-t", "5", timeout=300, check=False)
        for name in _run(self.podman, "volume", "ls", "-q", "--filter", label, check=False).stdout.split():
            _run(self.podman, "volume", "rm", "-f", name, check=False)
        _run(self.podman, "network", "rm", "-f", f"{self.project}_default", check=False)


@pytest.fixture(scope="module")
def stack():
    podman = _podman()
    if podman is None:
        pytest.skip("no podman runs on this machine (`podman info` fails or podman is absent): the compose trial was "
                    "not brought up; tests/test_deploy.py still checks the compose file itself")
    if importlib.util.find_spec("podman_compose") is None:
        pytest.skip("podman-compose is not installed in this Python (it is in the `test` extra: pip install "
                    "'.[test]'): the compose trial was not brought up")
    base = os.environ.get("CEAD_TEST_IMAGE_BASE") or DEFAULT_BASE
    if _run(podman, "image", "inspect", base, check=False).returncode != 0 and \
            _run(podman, "pull", base, timeout=600, check=False).returncode != 0:
        pytest.skip(f"the base image {base} is not on this machine and cannot be pulled (no container registry "
                    "reached): build one from Debian's packages with deploy/local-base.sh and set "
                    "CEAD_TEST_IMAGE_BASE=cead-base:bookworm; the compose trial was not brought up")
    run_id = uuid.uuid4().hex[:8]
    extra: list[str] = []
    if os.environ.get("PIP_INDEX_URL", "").startswith(("http://", "https://")):
        extra += ["--build-arg", f"PIP_INDEX_URL={os.environ['PIP_INDEX_URL']}"]
    cert = os.environ.get("PIP_CERT")
    if cert and Path(cert).is_file():
        extra += ["-v", f"{cert}:/run/cead-build/ca.pem:ro", "--build-arg", "PIP_CERT=/run/cead-build/ca.pem"]
    env = {**os.environ, "CEAD_IMAGE_BASE": base, "CEAD_PYTHON_IMAGE": base,
           "CEAD_PASSPHRASE_FIFE": secrets.token_urlsafe(16), "CEAD_PASSPHRASE_DUNDEE": secrets.token_urlsafe(16),
           "POSTGRES_PASSWORD": secrets.token_urlsafe(16), "CEAD_FIFE_PORT": str(_free_port()),
           "CEAD_DUNDEE_PORT": str(_free_port()), "CEAD_PROVIDER_PORT": str(_free_port())}
    built: list[str] = []
    before = image_ids(podman)
    running = Stack(podman, env, f"cead-test-{run_id}")
    try:
        for variable, (name, dockerfile, context) in BUILDS.items():
            tag = f"localhost/{name}:compose-{run_id}"
            _run(podman, "build", "--format", "docker", "--build-arg", f"BASE={base}", *extra,
                 "-f", DEPLOY / dockerfile, "-t", tag, context, timeout=1800)
            built.append(tag)
            env[variable] = tag
        # PostgreSQL first and healthy: podman-compose before podman 4.6 starts Fife without waiting for it
        running.compose("up", "-d", "--no-build", "postgres")
        running.wait_healthy("postgres")
        running.compose("up", "-d", "--no-build")
        for service in ("fife", "dundee", "gateway"):
            running.wait_healthy(service)
        yield running
    finally:
        running.remove()
        for tag in built:
            _run(podman, "rmi", "-f", tag, check=False)
        remove_untagged(podman, before)


@pytest.fixture(scope="module")
def ca(stack, tmp_path_factory) -> str:
    """The trial's private CA, made on first start in the certs volume."""
    path = tmp_path_factory.mktemp("compose") / "client.pem"
    path.write_text(_run(stack.podman, "exec", stack.container("fife"), "cat", "/certs/client.pem").stdout)
    return str(path)


@pytest.mark.timeout(3600)
@pytest.mark.parametrize(("service", "host", "port"), [("fife", "fife.local", "CEAD_FIFE_PORT"),
                                                        ("dundee", "dundee.local", "CEAD_DUNDEE_PORT")])
def test_both_nodes_answer_their_did_documents_over_https(stack, ca, service, host, port):
    status, headers, body = _get(int(stack.env[port]), host, "/.well-known/did.json", ca)
    assert status == 200, body[:500]
    document = json.loads(body)
    assert document["id"] == f"did:web:{host}%3A8443"
    assert document["verificationMethod"], document


@pytest.mark.timeout(3600)
def test_fife_keeps_its_tables_in_postgresql(stack):
    tables = _run(stack.podman, "exec", stack.container("postgres"), "psql", "-U", "cead", "-d", "fife", "-At",
                  "-c", "select tablename from pg_tables where schemaname = 'public'").stdout.split()
    assert "alembic_version_issuer" in tables and len(tables) > 5, tables


@pytest.mark.timeout(3600)
def test_the_gateway_in_front_of_the_provider_refuses_a_request_without_a_presentation(stack, ca):
    status, headers, body = _get(int(stack.env["CEAD_PROVIDER_PORT"]), "provider.local",
                                 "/datasets/homelessness.csv", ca)
    assert status == 401, (status, body[:500], stack.logs("nginx"))
    assert "presentation.missing" in headers.get("cead-decision-reasons", ""), (headers, stack.logs("gateway"))
    data = (DEPLOY / "provider-data" / "homelessness.csv").read_bytes()
    assert data.splitlines()[1] not in body
