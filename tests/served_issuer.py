"""`cead issuer serve` of one node home in its own process, over TLS on 127.0.0.1, until ``stop`` (SIGTERM): for
tests of what only a served node does (its worker's background loops, a graceful stop). ``env`` must carry
CEAD_PASSPHRASE and PYTHONPATH, so the process runs this tree with the home's key unlocked.

``workers(proc)`` and ``sigterm_measured(proc)`` serve any `cead ... serve` process: its worker processes, and how
long a stop takes and how much work it does."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import requests

from cead.processes import python_argv


class ServedIssuer:
    def __init__(self, home: Path, port: int, cert: Path, key: Path, ca: str, log_path: Path, env: dict):
        self.base, self.ca, self.log_path = f"https://localhost:{port}", str(ca), log_path
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            python_argv("issuer", "serve", "--home", str(home), "--port", str(port),
                        "--tls-cert", str(cert), "--tls-key", str(key)),
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(self.base + "/.well-known/did.json", verify=self.ca, timeout=2)
                return
            except requests.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise AssertionError(self.log_path.read_text())
                time.sleep(0.1)

    def workers(self) -> set[int]:
        return workers(self.proc)

    def get(self, path: str) -> str:
        answer = requests.get(self.base + path, verify=self.ca, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.text

    def stop(self) -> int:
        """SIGTERM, then the exit status (killed after 40 s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(40)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
            self.log.close()


def workers(proc: subprocess.Popen) -> set[int]:
    """The process ids of a served process's workers (its children, as the kernel lists them)."""
    with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
        return {int(pid) for pid in f.read().split()}


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU seconds of process ``pid`` so far (with ``children``: and of the children it reaped)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def sigterm_measured(proc: subprocess.Popen, within: float = 40) -> tuple[int, float, float]:
    """SIGTERM to a served process: its exit status, the seconds until it exited, and the CPU seconds its processes
    spent stopping (user + system: from /proc just before the signal, and from the exit's resource usage, which
    includes the workers the main process reaped). The CPU is the work a stop does, which a loaded machine does not
    stretch as it stretches the seconds. Killed, workers and all (and AssertionError), if it has not exited ``within``
    seconds."""
    main, children = proc.pid, workers(proc)
    spent = cpu_seconds(main, children=True) + sum(cpu_seconds(pid) for pid in children)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    while True:
        pid, status, usage = os.wait4(main, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, time.monotonic() - started, usage.ru_utime + usage.ru_stime - spent
        if time.monotonic() - started > within:
            for pid in [*workers(proc), main]:      # the workers too: a worker whose parent is gone stays
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.wait(10)
            raise AssertionError(f"the server did not stop within {within} s of SIGTERM")
        time.sleep(0.005)
