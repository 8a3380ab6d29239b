"""The gateway's cache of an issuer's log (verifier.tlog.cache) under a ``transparency`` policy, counted at a real
HTTPS node on 127.0.0.1: a warm decision makes no request to the log; with ``checkpoint_cache: 0`` the checkpoint
is revalidated by ETag (a 304) and nothing else is fetched; a full tile is fetched once, ever; a grown log costs
only the new checkpoint and its partial tiles; a wrong cached tile makes the gateway ask the log again, never
allow on it; memory stays within the policy's bound."""
from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest

from issuer.app import create_app
from issuer.evidence import record, witness
from issuer.node import Node
from issuer_fixtures import PASS, ready_node
from helpers_https import https_server
from schemas.models import credential_digest
from transfer_world import world
from verifier.http import Fetcher
from verifier.tlog import merkle, tiles
from verifier.tlog.cache import LogCache, cache_for


def _poster(node):
    def post(body):
        answer = witness.add_checkpoint(node, body)
        return answer.status, answer.body
    return post


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("logcache")
    holder, hits = {}, Counter()

    def counted(environ, start):
        def start_counted(status, headers, exc_info=None):
            if environ["PATH_INFO"].startswith("/log/"):
                hits[(environ["PATH_INFO"], int(status.split()[0]))] += 1
            return start(status, headers, exc_info)
        return holder["app"](environ, start_counted)

    with world() as w, https_server(counted) as (base, ca):
        port = base.rsplit(":", 1)[1]
        node, _ = Node.init(tmp / "deputy", "Fife Housing IAO deputy", PASS, domain=f"localhost:{port}",
                            public_url=base)
        node._passphrase = PASS
        holder["app"] = create_app(node)
        bundle = tmp / "cas.pem"
        bundle.write_text(open(w.ca_bundle).read() + open(ca).read())
        w1, w2 = ready_node(tmp / "w1"), ready_node(tmp / "w2", "dundee.example")
        deputy = SimpleNamespace(did=node.did, key=node.key, kid=node.verification_method_id, name="deputy-web")
        w.d2 = w.delegation(w.iao, deputy, parent=w.d1, max_depth=0)
        w.approval = w.make_approval(deputy, chain=[w.d1, w.d2])
        record.issued(node, None, credential_id=w.doc(w.approval)["id"], types=["DataSharingApprovalCredential"],
                      digest=credential_digest(w.approval), verification_method=deputy.kid)
        log = record.log_of(node)
        log.append_many([("receipt", {"receipt": f"{i:064x}"}, {"n": i}) for i in range(300)])  # full tiles
        for wn in (w1, w2):
            witness.watch(wn, log.key.vkey())
        env = SimpleNamespace(w=w, node=node, log=log, w1=w1, w2=w2, hits=hits, base=base, ca=str(bundle))
        env.witness = lambda: [witness.submit(log, _poster(wn)) for wn in (w1, w2)]
        env.witness()

        def decider(**changes):
            transparency = {"require_for": ["approval"], "min_witnesses": 2, "max_age": 3600,
                            "witnesses": [witness.witness_key(w1).vkey(), witness.witness_key(w2).vkey()],
                            **changes}
            return w.decider(transparency=transparency, network={"allow_private": True, "ca_bundle": str(bundle)})
        env.decider = decider
        yield env


def decide(env, decider):
    request = env.w.request()
    decision = decider.decide(env.w.present(request), request)
    assert decision.allowed, [p.to_dict() for p in decision.reasons]
    return decision


def _log_hits(env) -> Counter:
    return Counter({k: v for k, v in env.hits.items()})


def _new(env, before: Counter) -> Counter:
    return Counter({k: v - before.get(k, 0) for k, v in env.hits.items() if v - before.get(k, 0)})


def test_a_warm_decision_makes_no_request_to_the_log(env):
    decider = env.decider(checkpoint_cache=3600)
    before = _log_hits(env)
    decide(env, decider)                       # cold: the log is asked where the approval and its key are
    cold = _new(env, before)
    assert cold == {("/log/evidence", 200): 2}, cold
    before = _log_hits(env)
    for _ in range(3):
        decide(env, decider)
    assert _new(env, before) == {}             # warm: nothing at all
    env.log.append_many([("receipt", {"receipt": "ee" * 32}, {})])   # the log grows and is witnessed again ...
    env.witness()
    decide(env, decider)                       # ... and the checkpoint kept is still good for the policy's minute
    assert _new(env, before) == {}


def _grow(env, n=10):
    start = env.log.size()
    env.log.append_many([("receipt", {"receipt": f"{start + i:064x}"}, {}) for i in range(n)])
    env.witness()


def test_checkpoint_revalidated_by_etag_and_full_tiles_fetched_once(env):
    decider = env.decider(checkpoint_cache=0)  # revalidate the checkpoint on every decision
    decide(env, decider)                       # cold: evidence (with the log's own proofs)
    before = _log_hits(env)
    decide(env, decider)                       # the checkpoint fetched once with its ETag, then revalidated
    first = _new(env, before)
    assert set(first) <= {("/log/witnessed-checkpoint", 200), ("/log/witnessed-checkpoint", 304)}, first
    before = _log_hits(env)
    decide(env, decider)
    assert set(_new(env, before)) == {("/log/witnessed-checkpoint", 304)}   # unchanged: bodiless 304s only
    _grow(env)
    before = _log_hits(env)
    decide(env, decider)                       # a new checkpoint: the proofs are built from tiles
    grown = _new(env, before)
    assert grown[("/log/witnessed-checkpoint", 200)] == 1 and ("/log/evidence", 200) not in grown, grown
    assert grown[("/log/tile/0/000", 200)] == 1, grown      # the full tile holding the early entries
    for _ in range(2):
        _grow(env)
        before = _log_hits(env)
        decide(env, decider)
        again = _new(env, before)
        assert ("/log/evidence", 200) not in again
        assert all(path.endswith("checkpoint") or ".p/" in path for path, _ in again), again   # partial tiles only
    assert env.hits[("/log/tile/0/000", 200)] == 1          # the full tile was never fetched again


def test_a_wrong_cached_tile_is_refetched_never_trusted(env):
    decider = env.decider(checkpoint_cache=0)
    decide(env, decider)
    _grow(env)
    decide(env, decider)                                    # proofs from tiles, now cached
    cache = cache_for(decider.verifier, decider.verifier.resolver.fetcher, 16 * 1024 * 1024)
    poisoned = [k for k in list(cache._lru) if k[0] == "tile"]
    assert poisoned
    for key in poisoned:                                    # every cached tile replaced by wrong hashes
        size = len(cache._get(key))
        cache._put(key, b"\x07" * size, size)
    before = _log_hits(env)
    decide(env, decider)                                    # the proof fails on the cached tiles: asked afresh
    assert _new(env, before)[("/log/evidence", 200)] >= 1


def test_tiles_give_the_logs_own_proofs_and_memory_is_bounded(env):
    fetcher = Fetcher(allow_private=True, ca_bundle=env.ca)
    size = env.log.size()
    limit = 3 * (tiles.TILE_WIDTH * merkle.HASH_SIZE + 64)   # room for three full tiles
    cache = LogCache(fetcher, max_bytes=limit)
    log = f"{env.base}/log"
    for index in (0, 5, 255, 256, size - 1):
        assert cache.inclusion_proof(log, index, size) == env.log.inclusion_proof(index, size)
    for i in range(50):                                      # many entries located: the oldest are evicted
        cache.remember_entry(log, "receipt", f"{i:064x}", i, b"x" * 2000)
    assert cache.bytes <= limit
    assert cache.located(log, "receipt", f"{49:064x}") == (49, b"x" * 2000)
    assert cache.located(log, "receipt", f"{0:064x}") is None
