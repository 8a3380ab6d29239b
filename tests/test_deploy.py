"""The container images and the compose file (deploy/): the properties an operator relies on, checked on the files
themselves (non-root users, health checks, read-only root filesystems, a gateway image without the node extras,
the policy a gateway would load), and, where a container engine runs, built and started for real. On a machine
without one (such as this project's CI) the engine test says so and is skipped; the file checks still run."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def _dockerfile(name: str) -> list[str]:
    text = (DEPLOY / name).read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.parametrize("name", ["Dockerfile.node", "Dockerfile.gateway"])
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


def _engine() -> str | None:
    docker = shutil.which("docker") or shutil.which("podman")
    if docker is None:
        return None
    try:
        ok = subprocess.run([docker, "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return docker if ok else None


def test_images_build_and_the_gateway_answers_its_health_check():
    docker = _engine()
    if docker is None:
        pytest.skip("no container engine runs on this machine (docker/podman info fails): the images were not "
                    "built here; the file checks above still ran")
    for name, tag in (("Dockerfile.gateway", "cead-gateway:test"), ("Dockerfile.node", "cead-node:test")):
        built = subprocess.run([docker, "build", "-f", str(DEPLOY / name), "-t", tag, str(ROOT)],
                               capture_output=True, text=True, timeout=1800)
        assert built.returncode == 0, built.stderr[-2000:]
    run = subprocess.run([docker, "run", "--rm", "--read-only", "--entrypoint", "cead", "cead-gateway:test",
                          "--help"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "verifier" in run.stdout
