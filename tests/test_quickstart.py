"""docs/quickstart.md works as written: its ```sh blocks, in order, in an empty directory, with real `cead`
processes (four nodes and the example gateway, HTTPS on 127.0.0.1 with the test CA `cead dev-ca` makes).

The blocks run as one bash script (``set -euo pipefail``: any command that fails stops it), so the shell
variables and background nodes of one block are there for the next, as in the reader's terminal. The test then
checks what the guide says happens: the first fetch is allowed and writes the rows (with --discover too, where
the gateway requires Cyber Essentials and the recipient holds Cyber Essentials Plus), the fetch after the revocation
is denied with ``approval.revoked``, and the files the nodes hold are private.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "quickstart.md"
PORTS = (9441, 9442, 9443, 9444, 9445)


def sh_blocks(text: str) -> list[str]:
    """The guide's ```sh blocks, in order (```bash blocks are shown, not run)."""
    return re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M)


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_the_guide_links_first_from_the_readme_and_has_blocks_to_run():
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert links[0] == "docs/quickstart.md"
    blocks = sh_blocks(GUIDE.read_text())
    assert len(blocks) >= 10
    script = "\n".join(blocks)
    for command in ("cead dev-ca", "cead init", "--did key", "cead issuer serve", "cead deliver",
                    "cead request create", "cead request send", "cead request approve", "cead fetch", "cead revoke"):
        assert command in script, command


@pytest.mark.skipif(shutil.which("curl") is None, reason="the guide waits for its nodes with curl (.ci/run "
                                                          "installs it)")
def test_the_quickstart_runs_as_written(tmp_path):
    busy = [p for p in PORTS if not _free(p)]
    assert not busy, f"ports {busy} are in use; the guide's nodes need them"
    script = "set -euo pipefail\n" + "\n".join(sh_blocks(GUIDE.read_text()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CEAD_")}
    env.update(CEAD_REPO=str(ROOT), HOME=str(tmp_path), PATH=os.pathsep.join([str(Path(sys.executable).parent),
                                                                                env.get("PATH", "")]))
    proc = subprocess.Popen(["bash", "-x", "-c", script], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=300)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)     # the nodes the guide started, if it stopped early
        except ProcessLookupError:
            pass
    assert proc.returncode == 0, output[-6000:]
    assert "Approved request" in output and "Delivered urn:uuid:" in output
    assert (tmp_path / "fife-rows.csv").read_text().startswith("local_authority,quarter,household_type,count")
    assert "Wrote 92 bytes" in output and "to fife-rows.csv" in output
    # --discover: the gateway requires Cyber Essentials, the recipient holds Cyber Essentials Plus
    assert (tmp_path / "fife-rows-again.csv").read_text() == (tmp_path / "fife-rows.csv").read_text()
    denial = json.loads((tmp_path / "denial.json").read_text())
    assert denial["error"]["code"] == "transfer.denied"
    assert "approval.revoked" in {r["code"] for r in denial["error"]["detail"]["reasons"]}
    assert not (tmp_path / "denied.csv").exists()
    for node in ("fife", "iao", "govscot", "certbody"):
        for name in ("node.db", "config.yaml"):
            assert stat.S_IMODE((tmp_path / node / name).stat().st_mode) == 0o600, (node, name)
