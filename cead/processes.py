"""Starting and stopping local node processes over HTTPS (used by `cead demo` and the end-to-end tests).

Everything binds to 127.0.0.1. A test certificate authority made for the run signs one server certificate
that every process presents; clients trust only that CA.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests


_HANDED_OUT: set[int] = set()   # ports this process has already given to a service


def free_port() -> int:
    """A loopback port nothing listens on now, and never one this process handed out before: the kernel may give
    a just-closed ephemeral port again, and two services on one port would both look ready (the second one's
    readiness probe would be answered by the first, whose certificate the demo CA also signed)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def port_is_bound(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


@dataclass
class LocalCA:
    """A certificate authority for 127.0.0.1, written to ``directory`` (ca.pem, server.pem, server-key.pem)."""

    directory: Path
    ca_pem: Path = field(init=False)
    cert_pem: Path = field(init=False)
    key_pem: Path = field(init=False)

    def __post_init__(self) -> None:
        import trustme

        self.directory.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA(organization_name="Cead demo CA")
        server = ca.issue_cert("127.0.0.1", "localhost")
        self.ca_pem = self.directory / "ca.pem"
        self.cert_pem = self.directory / "server.pem"
        self.key_pem = self.directory / "server-key.pem"
        ca.cert_pem.write_to_path(str(self.ca_pem))
        server.cert_chain_pems[0].write_to_path(str(self.cert_pem))
        for extra in server.cert_chain_pems[1:]:
            extra.write_to_path(str(self.cert_pem), append=True)
        server.private_key_pem.write_to_path(str(self.key_pem))
        os.chmod(self.key_pem, 0o600)


@dataclass
class Service:
    name: str
    argv: list[str]
    port: int
    health_path: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


class ProcessGroup:
    """Starts services as child processes and guarantees they are stopped (context manager)."""

    def __init__(self, ca: LocalCA):
        self.ca = ca
        self.services: list[Service] = []

    def start(self, service: Service) -> Service:
        env = dict(os.environ)
        env.update(service.env)
        log = open(service.log_path, "ab")
        service.proc = subprocess.Popen(
            service.argv, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,  # its own process group, so a stop reaches any children too
        )
        log.close()
        self.services.append(service)
        return service

    def is_ready(self, service: Service) -> bool:
        """One readiness probe (any answer below 500; a service without a port, e.g. a receipt sequencer: running);
        raises RuntimeError if the process has exited."""
        if service.proc is not None and service.proc.poll() is not None:
            tail = service.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{service.name} exited with status {service.proc.returncode}:\n{tail}")
        if not service.port:
            return True
        try:
            return requests.get(service.url + service.health_path, verify=str(self.ca.ca_pem),
                                timeout=1).status_code < 500
        except requests.RequestException:
            return False

    def wait_ready(self, service: Service, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        url = service.url + service.health_path
        while time.monotonic() < deadline:
            if service.proc is not None and service.proc.poll() is not None:
                tail = service.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{service.name} exited with status {service.proc.returncode}:\n{tail}")
            try:
                if requests.get(url, verify=str(self.ca.ca_pem), timeout=2).status_code < 500:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{service.name} did not become ready on {url} within {timeout:.0f}s")

    def stop_all(self, timeout: float = 10.0) -> None:
        for service in reversed(self.services):
            proc = service.proc
            if proc is None or proc.poll() is not None:
                continue
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + timeout
        for service in self.services:
            proc = service.proc
            if proc is None:
                continue
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()

    def __enter__(self) -> "ProcessGroup":
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()


def python_argv(*args: str) -> list[str]:
    """Run the `cead` command line with this interpreter (no reliance on PATH)."""
    return [sys.executable, "-m", "cead.cli", *args]
