"""Fixtures shared by many test files. A file that needs something different defines its own fixture of the same
name, which takes precedence over these.

- ``w``: the transfer world of tests/transfer_world.py (parties, credentials, a status list server on HTTPS,
  a decider), one per test module: building it is not cheap, and tests in a module may add to it.
- ``examples``: the worked scenarios of transfer_world.scenarios(), one set per test module.
- ``node``: a fresh issuer node in ``tmp_path / "h"`` with its key unlocked, publishing at https://fife.example
  (issuer_fixtures.ready_node), one per test.
"""
from __future__ import annotations

import pytest

# The helpers are imported inside the fixtures, so a test file that uses none of them imports nothing more than it
# did before this conftest existed.


@pytest.fixture(scope="module")
def w():
    from transfer_world import world
    with world() as w:
        yield w


@pytest.fixture(scope="module")
def examples():
    from transfer_world import scenarios
    with scenarios() as found:
        yield found


@pytest.fixture
def node(tmp_path):
    from issuer_fixtures import ready_node
    return ready_node(tmp_path / "h")
