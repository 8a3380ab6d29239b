"""The discloser keeps the books: the privacy-budget ledger in the data owner's node database.

Races are real: 8 threads (each its own connection) and 8 processes go for the last slot of a budget at once, on a
real SQLite file and on the machine's PostgreSQL; exactly one wins."""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from issuer import db
from issuer.ledger import SqlLedger
from verifier.ledger import Budget, Release

DATASET = "https://data.socialsecurity.gov.scot.example/dataset/scottish-child-payment"
CHILDREN = "https://w3id.org/dpv/pd#Child"
START = datetime(2026, 4, 1, tzinfo=timezone.utc)
NOW = datetime(2026, 9, 1, tzinfo=timezone.utc)
YEAR = Budget(start=START, period_seconds=365 * 86400, epsilon=2.0, max_releases=4)


def release(approval="urn:approval:a", eps=0.5, subjects=(CHILDREN,), recipient="did:web:glasgow.example"):
    return Release(dataset=DATASET, approval=approval, recipient=recipient, subjects=tuple(subjects),
                   unit="person", mechanism="laplace", epsilon=eps)


@contextlib.contextmanager
def sqlite_url(tmp_path):
    yield f"sqlite:///{tmp_path / 'node.db'}"


@contextlib.contextmanager
def postgres_url():
    url = os.environ["CEAD_TEST_DATABASE_URL"]
    schema = "cead_ledger_" + uuid.uuid4().hex[:12]
    admin = db.make_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"create schema {schema}"))
    try:
        sep = "&" if "?" in url else "?"
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"drop schema {schema} cascade"))
        admin.dispose()


needs_pg = pytest.mark.skipif(not os.environ.get("CEAD_TEST_DATABASE_URL"),
                              reason="set CEAD_TEST_DATABASE_URL for PostgreSQL")
BACKENDS = [pytest.param("sqlite", id="sqlite"), pytest.param("postgresql", id="postgresql", marks=needs_pg)]


@contextlib.contextmanager
def ledger_url(kind, tmp_path):
    with (sqlite_url(tmp_path) if kind == "sqlite" else postgres_url()) as url:
        engine = db.migrate(url)
        engine.dispose()
        yield url


def test_releases_are_counted_by_the_owner_and_the_fifth_is_refused(tmp_path):
    ledger = SqlLedger(db.migrate(f"sqlite:///{tmp_path / 'n.db'}"))
    for _ in range(4):
        assert ledger.charge(release(eps=0.4), YEAR, NOW) == []
    [p] = ledger.charge(release(eps=0.0001), YEAR, NOW)
    assert p.code == "protocol.release_limit" and p.detail["releases"] == 4 and p.detail["limit"] == 4
    assert len(ledger.releases(DATASET)) == 4        # the refused release was not recorded
    # the next period (anchored at the stated start) has a fresh budget
    assert ledger.charge(release(), YEAR, START + timedelta(days=366)) == []


def test_epsilon_budget_and_period_start(tmp_path):
    ledger = SqlLedger(db.migrate(f"sqlite:///{tmp_path / 'n.db'}"))
    budget = Budget(start=START, period_seconds=365 * 86400, epsilon=1.0)
    assert ledger.charge(release(eps=0.7), budget, NOW) == []
    [p] = ledger.charge(release(eps=0.4), budget, NOW)
    assert p.code == "protocol.budget_exhausted" and p.detail["spent"] == pytest.approx(0.7)
    assert ledger.charge(release(eps=0.3), budget, NOW) == []
    [p] = ledger.charge(release(eps=0.1), budget, START - timedelta(days=1))
    assert p.code == "protocol.budget_not_started"


def test_two_approvals_on_the_same_subjects_share_one_budget(tmp_path):
    """A second approval over the same dataset's children does not double the budget; one over other people of
    the dataset has its own; one over all the dataset's subjects overlaps everyone."""
    ledger = SqlLedger(db.migrate(f"sqlite:///{tmp_path / 'n.db'}"))
    budget = Budget(start=START, period_seconds=365 * 86400, epsilon=1.0)
    assert ledger.charge(release("urn:approval:a", 0.6), budget, NOW) == []
    [p] = ledger.charge(release("urn:approval:b", 0.6, recipient="did:web:edinburgh.example"), budget, NOW)
    assert p.code == "protocol.budget_exhausted"
    assert ledger.charge(release("urn:approval:c", 0.6, subjects=["https://w3id.org/dpv/pd#Adult"]), budget,
                         NOW) == []
    [p] = ledger.charge(release("urn:approval:d", 0.6, subjects=[]), budget, NOW)
    assert p.code == "protocol.budget_exhausted" and p.detail["spent"] == pytest.approx(1.2)


def test_zcdp_and_pure_releases_compose(tmp_path):
    ledger = SqlLedger(db.migrate(f"sqlite:///{tmp_path / 'n.db'}"))
    rho_budget = Budget(start=START, period_seconds=365 * 86400, rho=0.5)
    assert ledger.charge(release(eps=0.8), rho_budget, NOW) == []          # 0.8 eps = 0.32 rho
    r = Release(dataset=DATASET, approval="x", recipient="y", subjects=(CHILDREN,), rho=0.2)
    [p] = ledger.charge(r, rho_budget, NOW)
    assert p.code == "protocol.budget_exhausted"
    approx = Release(dataset="other", approval="x", recipient="y", epsilon=0.1, delta=1e-6)
    [p] = ledger.charge(approx, rho_budget, NOW)                            # (eps, delta)-DP never fits zCDP
    assert p.code == "protocol.budget_exhausted"


def _race_thread(url, n):
    ledger = SqlLedger(db.make_engine(url))
    budget = Budget(start=START, period_seconds=365 * 86400, epsilon=2.0, max_releases=4)
    for _ in range(3):                              # three releases already made: one slot left
        assert ledger.charge(release(), budget, NOW) == []
    barrier = threading.Barrier(n)
    results = []

    def go(i):
        own = SqlLedger(db.make_engine(url))       # each gateway worker has its own connection pool
        barrier.wait()
        results.append(own.charge(release(f"urn:approval:{i}", 0.1), budget, NOW))
        own.engine.dispose()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, ledger


def _race_process(url, i, barrier, queue):
    ledger = SqlLedger(db.make_engine(url))
    budget = Budget(start=START, period_seconds=365 * 86400, epsilon=2.0, max_releases=4)
    barrier.wait()
    queue.put([p.code for p in ledger.charge(release(f"urn:approval:{i}", 0.1), budget, NOW)])
    ledger.engine.dispose()


@pytest.mark.parametrize("kind", BACKENDS)
def test_eight_threads_race_for_the_last_release(kind, tmp_path):
    with ledger_url(kind, tmp_path) as url:
        results, ledger = _race_thread(url, 8)
        assert sum(1 for r in results if r == []) == 1
        assert sorted(p.code for r in results for p in r) == ["protocol.release_limit"] * 7
        assert len(ledger.releases(DATASET)) == 4
        ledger.engine.dispose()


@pytest.mark.parametrize("kind", BACKENDS)
def test_eight_processes_race_for_the_last_epsilon(kind, tmp_path):
    with ledger_url(kind, tmp_path) as url:
        ledger = SqlLedger(db.make_engine(url))
        budget = Budget(start=START, period_seconds=365 * 86400, epsilon=2.0, max_releases=40)
        assert ledger.charge(release(eps=1.9), budget, NOW) == []       # 0.1 epsilon left
        ctx = multiprocessing.get_context("spawn")
        barrier, queue = ctx.Barrier(8), ctx.Queue()
        procs = [ctx.Process(target=_race_process, args=(url, i, barrier, queue)) for i in range(8)]
        for p in procs:
            p.start()
        results = [queue.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        assert sorted(map(tuple, results)) == [()] + [("protocol.budget_exhausted",)] * 7
        assert len(ledger.releases(DATASET)) == 2
        ledger.engine.dispose()


def test_outputs_are_kept_for_differencing(tmp_path):
    ledger = SqlLedger(db.migrate(f"sqlite:///{tmp_path / 'n.db'}"))
    ledger.record_output(DATASET, "q", b"a,b\n1,2\n", "urn:a", "did:web:x.example")
    ledger.record_output(DATASET, "q", b"a,b\n1,2\n", "urn:a", "did:web:x.example")   # same bytes kept once
    ledger.record_output(DATASET, "q", b"a,b\n1,3\n", "urn:a", "did:web:x.example")
    assert ledger.earlier_outputs(DATASET, "q") == [b"a,b\n1,2\n", b"a,b\n1,3\n"]
    assert ledger.earlier_outputs(DATASET, "other") == []


def test_the_ledger_over_its_authenticated_local_endpoint(tmp_path):
    """An nginx/Envoy gateway's verifier service reaches the node's ledger over HTTPS on 127.0.0.1 with a token of
    scope 'ledger'; no token, a token without the scope, or an unreachable ledger refuse the release."""
    from issuer import tokens
    from issuer.app import create_app
    from tests.helpers_https import https_server
    from tests.issuer_fixtures import ready_node
    from verifier.ledger import HttpLedger

    node = ready_node(tmp_path / "sss")
    secret = tokens.create_token(node.engine, "gateway", "ledger")
    other = tokens.create_token(node.engine, "issuer", "issue:approval")
    with https_server(create_app(node)) as (base, ca):
        ledger = HttpLedger(base, secret, verify=ca)
        now = datetime.now(timezone.utc)
        budget = Budget(start=now - timedelta(days=1), period_seconds=365 * 86400, epsilon=2.0, max_releases=2)
        assert ledger.charge(release(), budget) == []
        assert ledger.charge(release(), budget) == []
        [p] = ledger.charge(release(), budget)
        assert p.code == "protocol.release_limit" and p.detail["limit"] == 2
        assert len(SqlLedger(node.engine).releases(DATASET)) == 2
        ledger.record_output(DATASET, "s", b"a\n1\n", "urn:a", "did:web:x.example")
        assert ledger.earlier_outputs(DATASET, "s") == [b"a\n1\n"]
        [p] = HttpLedger(base, other, verify=ca).charge(release(), budget)
        assert p.code == "protocol.ledger_unavailable" and "403" in p.message
        [p] = HttpLedger(base, "cead_wrong", verify=ca).charge(release(), budget)
        assert p.code == "protocol.ledger_unavailable" and "401" in p.message
    [p] = HttpLedger(base, secret, verify=ca, timeout=2).charge(release(), budget)   # the node is gone
    assert p.code == "protocol.ledger_unavailable"


def test_the_ledger_endpoint_answers_only_its_own_host(tmp_path):
    from issuer import tokens
    from issuer.app import create_app
    from tests.issuer_fixtures import ready_node

    node = ready_node(tmp_path / "sss")
    secret = tokens.create_token(node.engine, "gateway", "ledger")
    client = create_app(node).test_client()
    body = {"release": release().to_json(), "budget": None}
    far = client.post("/ledger/charge", json=body, headers={"Authorization": f"Bearer {secret}"},
                      environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert far.status_code == 403 and far.get_json()["error"]["code"] == "auth.not_local"
    near = client.post("/ledger/charge", json=body, headers={"Authorization": f"Bearer {secret}"},
                       environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert near.status_code == 200 and near.get_json() == {"problems": []}
    bad = client.post("/ledger/charge", json={"release": {"dataset": 1}}, headers={"Authorization": f"Bearer {secret}"},
                      environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "request.invalid"


def test_verifier_serve_needs_the_ledger_token_with_a_ledger_url(monkeypatch):
    """`cead verifier serve --ledger-url` without CEAD_LEDGER_TOKEN stops with one line before serving anything."""
    from click.testing import CliRunner
    from verifier.cli import verifier as verifier_group
    monkeypatch.delenv("CEAD_LEDGER_TOKEN", raising=False)
    result = CliRunner().invoke(verifier_group, ["serve", "--port", "1", "--ledger-url", "https://127.0.0.1:9"])
    assert result.exit_code == 2 and "CEAD_LEDGER_TOKEN" in result.output and "Traceback" not in result.output
    help_text = CliRunner().invoke(verifier_group, ["serve", "--help"]).output
    assert "--ledger-url" in help_text and "--ledger-ca" in help_text
