"""SQLite waits are bounded too (issue 11): a request that meets another writer holding the database longer than
the busy timeout answers 503 db.unavailable with Retry-After, and succeeds once the writer is done."""
import json
import sqlite3

from issuer import db
from issuer.app import create_app

from issuer_fixtures import PASS, certification, counts, make_node, token


def test_a_locked_sqlite_database_answers_503_then_recovers(tmp_path, monkeypatch):
    monkeypatch.setattr(db, "LIMITS", db.Limits(sqlite_busy=0.5))
    node = make_node(tmp_path / "h", public_url="https://fife.example")
    node._passphrase = PASS
    client = create_app(node).test_client()
    tok = token(node)

    def issue():
        return client.post("/credentials/issue", data=json.dumps({"credential": certification(node.did)}),
                           headers={"Authorization": f"Bearer {tok}"}, content_type="application/json")

    path = node.engine.url.database
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")             # another writer holds the database
    try:
        r = issue()
        assert r.status_code == 503
        assert r.get_json()["error"]["code"] == "db.unavailable" and int(r.headers["Retry-After"]) > 0
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert issue().status_code == 201
    assert counts(node) == (1, 1)
