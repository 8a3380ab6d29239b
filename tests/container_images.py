"""What the container tests (test_deploy.py, test_compose.py) leave on the engine: their multi-stage builds leave the
``build`` stages and their layers without a tag, several hundred MB a run. These remove those, and only those."""
from __future__ import annotations

import subprocess


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)


def image_ids(engine: str) -> set[str] | None:
    """Every image on the engine (intermediate ones too), by id; None if the engine cannot list them."""
    done = _run(engine, "images", "-a", "-q", "--no-trunc")
    return set(done.stdout.split()) if done.returncode == 0 else None


def remove_untagged(engine: str, before: set[str] | None) -> None:
    """Remove the images made since ``before`` (``image_ids`` then) that have no tag, never forced (an image
    something still uses stays), one at a time: a single ``rmi`` of them all removed none (removing a child takes
    its untagged parents with it, and the rest are then unknown)."""
    if before is None:
        return
    for _ in range(8):
        left = [i for i in (image_ids(engine) or set()) - before
                if not _run(engine, "image", "inspect", "--format", "{{.RepoTags}}", i).stdout.strip().strip("[]")]
        if not [i for i in left if _run(engine, "rmi", i).returncode == 0]:
            return
