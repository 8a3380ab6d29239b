"""`cead issuer serve` of one node home in its own process, over TLS on 127.0.0.1, until ``stop`` (SIGTERM): for
tests of what only a served node does (its worker's background loops, a graceful stop). ``env`` must carry
CEAD_PASSPHRASE and PYTHONPATH, so the process runs this tree with the home's key unlocked."""
from __future__ import annotations

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
