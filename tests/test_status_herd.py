"""Status lists under concurrency (issue 11): one current list per purpose, whatever the number of issuers at once,
and no list served while it holds fewer than the minimum population (other than a purpose's first list, whose crowd
is everything the node has issued for that purpose)."""
import json
import os
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlmodel import func, select

from issuer import db, statuslist
from issuer.app import create_app

from issuer_fixtures import certification, postgresql_node, ready_node, token

PG = pytest.mark.skipif(not os.environ.get("CEAD_TEST_DATABASE_URL"), reason="set CEAD_TEST_DATABASE_URL")
CLIENTS, CREDENTIALS = 8, 40


def _issue_concurrently(node):
    """8 clients issue 40 credentials at once over the HTTP API, half of them with a suspension entry too."""
    client = create_app(node).test_client()
    tok = token(node, name=f"t-{uuid.uuid4()}")
    barrier = threading.Barrier(CLIENTS)

    def one(i):
        if i < CLIENTS:
            barrier.wait()
        options = {"credentialStatus": {"type": "BitstringStatusListEntry",
                                        "statusPurpose": ["revocation", "suspension"]}} if i % 2 else {}
        return client.post("/credentials/issue", data=json.dumps({"credential": certification(node.did),
                                                                  "options": options}),
                           headers={"Authorization": f"Bearer {tok}"}, content_type="application/json")

    with ThreadPoolExecutor(CLIENTS) as pool:
        responses = list(pool.map(one, range(CREDENTIALS)))
    assert [r.status_code for r in responses] == [201] * CREDENTIALS, [r.get_json() for r in responses][:3]
    return client


def _lists(node):
    with node.session() as s:
        lists = list(s.exec(select(db.StatusList).order_by(db.StatusList.id)))
        population = {lst.id: s.exec(select(func.count()).select_from(db.StatusEntry)
                                     .where(db.StatusEntry.list_id == lst.id)).one() for lst in lists}
    return lists, population


def _check_served(client, lists, population):
    """Every list either serves (first of its purpose, or at least the minimum) or says it is not ready (503)."""
    served = []
    for lst in lists:
        r = client.get(f"/status/{lst.id}")
        if lst.seq == 0 or population[lst.id] >= statuslist.MIN_POPULATION:
            assert r.status_code == 200, r.get_data(as_text=True)
            served.append(lst.id)
        else:
            assert r.status_code == 503
            assert r.get_json()["error"]["code"] == "status.list_not_ready"
            assert int(r.headers["Retry-After"]) > 0
    return served


def _one_list_per_purpose(node):
    client = _issue_concurrently(node)
    lists, population = _lists(node)
    assert Counter(lst.purpose for lst in lists) == {"revocation": 1, "suspension": 1}
    by_purpose = {lst.purpose: population[lst.id] for lst in lists}
    assert by_purpose == {"revocation": CREDENTIALS, "suspension": CREDENTIALS // 2}
    assert len(_check_served(client, lists, population)) == 2


def test_one_list_per_purpose_sqlite(tmp_path):
    _one_list_per_purpose(ready_node(tmp_path / "h"))


@PG
def test_one_list_per_purpose_postgresql(tmp_path):
    with postgresql_node(tmp_path / "pg") as node:
        _one_list_per_purpose(node)


def _successors(node, monkeypatch):
    """Lists that fill up quickly (12 entries): the next lists are opened one at a time, never two at once, and a
    successor below the minimum (6) is not served."""
    monkeypatch.setattr(statuslist, "FILL_LIMIT", 12)
    monkeypatch.setattr(statuslist, "MIN_POPULATION", 6)
    client = _issue_concurrently(node)
    lists, population = _lists(node)
    revocation = sorted((lst for lst in lists if lst.purpose == "revocation"), key=lambda lst: lst.seq)
    assert [lst.seq for lst in revocation] == list(range(len(revocation)))   # no two lists with one place
    # every list but the newest was full when the next one opened (a race would leave half-empty lists behind)
    assert all(population[lst.id] >= 12 for lst in revocation[:-1])
    assert sum(population[lst.id] for lst in revocation) == CREDENTIALS
    served = _check_served(client, lists, population)
    assert all(population[i] >= 6 or next(lst for lst in lists if lst.id == i).seq == 0 for i in served)
    # a list below the minimum becomes servable once enough credentials join it
    # then, one at a time: issue until the next revocation list opens; it is not served below the minimum, and is
    # served once it reaches it
    tok = token(node, name="more")

    def issue_one():
        assert client.post("/credentials/issue", data=json.dumps({"credential": certification(node.did)}),
                           headers={"Authorization": f"Bearer {tok}"},
                           content_type="application/json").status_code == 201

    while True:
        issue_one()
        lists, population = _lists(node)
        newest = max((lst for lst in lists if lst.purpose == "revocation"), key=lambda lst: lst.seq)
        if newest.seq > revocation[-1].seq:
            break
    for _ in range(5):
        assert client.get(f"/status/{newest.id}").status_code == 503
        issue_one()
    assert _lists(node)[1][newest.id] == 6
    assert client.get(f"/status/{newest.id}").status_code == 200


def test_successor_lists_sqlite(tmp_path, monkeypatch):
    _successors(ready_node(tmp_path / "h"), monkeypatch)


@PG
def test_successor_lists_postgresql(tmp_path, monkeypatch):
    with postgresql_node(tmp_path / "pg") as node:
        _successors(node, monkeypatch)
