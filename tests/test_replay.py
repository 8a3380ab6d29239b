"""Replay protection that scales: an id is kept only until its presentation expires plus the skew; a shared
Redis store lets several gateway instances share one guard; when the guard cannot record, the transfer is denied
with an explicit code (HTTP 503) and counted in a metric."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from transfer_world import codes
from verifier.decision import Decider
from verifier.decision.codes import http_status
from verifier.policy import parse_policy
from verifier.replay import MemoryReplayStore, RedisReplayStore, ReplayGuard

REDIS = "redis://127.0.0.1:6379/11"     # a database of its own; each test a key prefix of its own


def test_an_id_is_kept_until_its_presentation_expires_plus_the_skew():
    now = [1_000_000.0]
    guard = ReplayGuard(MemoryReplayStore(size=2, clock=lambda: now[0]), skew=timedelta(seconds=300))
    expires = datetime.fromtimestamp(now[0] + 60, timezone.utc)
    assert guard.check("a", expires) is None
    assert guard.check("a", expires).code == "presentation.replayed"
    now[0] += 60 + 299
    assert guard.seen("a").code == "presentation.replayed"      # still inside expiry + skew
    now[0] += 2
    assert guard.seen("a") is None and len(guard.store) == 0    # gone: the guard's memory follows the window


def test_capacity_follows_the_real_window_and_a_full_guard_says_so():
    now = [1_000_000.0]
    metrics_seen = []

    class Metrics:
        def record_replay_failure(self, reason):
            metrics_seen.append(reason)

    guard = ReplayGuard(MemoryReplayStore(size=2, clock=lambda: now[0]), skew=timedelta(seconds=10),
                        metrics=Metrics())
    soon = datetime.fromtimestamp(now[0] + 20, timezone.utc)
    assert guard.check("a", soon) is None and guard.check("b", soon) is None
    full = guard.check("c", soon)
    assert full.code == "presentation.replay_guard_full" and metrics_seen == ["full"]
    now[0] += 31                                                 # a and b expired: room again
    assert guard.check("c", datetime.fromtimestamp(now[0] + 20, timezone.utc)) is None


def _decider(w, **changes) -> Decider:
    return Decider(parse_policy(w.policy_data(**changes)))


def test_two_gateways_sharing_redis_share_one_guard(w):
    prefix = f"cead:test:{uuid.uuid4().hex}:"
    first = _decider(w, replay_store=REDIS)
    second = _decider(w, replay_store=REDIS)
    first.replay.store = RedisReplayStore(REDIS, prefix=prefix)
    second.replay.store = RedisReplayStore(REDIS, prefix=prefix)
    request = w.request()
    vp = w.present(request)
    assert first.decide(vp, request).allowed
    again = second.decide(vp, request)
    assert not again.allowed and codes(again) == {"presentation.replayed"}
    # kept only until the presentation's expiry plus the skew
    key = next(iter(first.replay.store._redis.scan_iter(prefix + "*")))
    ttl = first.replay.store._redis.pttl(key) / 1000
    assert 0 < ttl <= 60 + 300 + 5
    first.replay.store._redis.delete(key)


def test_an_unreachable_shared_store_denies_with_its_own_code_and_metric(w):
    decider = _decider(w, replay_store="redis://127.0.0.1:1/0")
    request = w.request()
    decision = decider.decide(w.present(request), request)
    assert not decision.allowed and codes(decision) == {"presentation.replay_guard_unavailable"}
    assert http_status(decision) == 503
    assert decider.metrics.replay_failures("unavailable") >= 1
    assert 'cead_replay_guard_failures_total{reason="unavailable"}' in decider.metrics.render()


def test_a_busy_gateway_is_not_locked_out_after_its_capacity_of_decisions(w):
    """With the old fixed TTL, 100,000 decisions filled the guard for 15 minutes; now each id leaves when its
    presentation expires. Here: a guard of 3 live ids, presentations expiring, decisions keep being allowed."""
    now = [datetime.now(timezone.utc)]
    decider = _decider(w, caches={"status_lists": {"size": 64, "ttl": 600}, "replay": {"size": 3, "ttl": 600}},
                       clock_skew=5)
    decider.replay.store = MemoryReplayStore(size=3, clock=lambda: now[0].timestamp())
    for round_ in range(3):
        for _ in range(3):
            request = w.request()
            request.time = now[0]
            assert decider.decide(w.present(request, now=now[0], lifetime=30),
                                  request).allowed
        now[0] += timedelta(seconds=36)


def test_a_shared_store_is_asked_once_per_decision_and_still_refuses_a_replay():
    """With Redis the early "seen?" round trip is skipped (one round trip per fresh presentation): the atomic
    record at the end refuses the replay, with the same code."""
    store = RedisReplayStore(REDIS, prefix=f"cead:test:{uuid.uuid4().hex}:")
    guard = ReplayGuard(store, skew=timedelta(seconds=5))
    soon = datetime.now(timezone.utc) + timedelta(seconds=30)
    assert guard.check("a", soon) is None
    assert guard.seen("a") is None                      # not asked: the store is remote
    assert guard.check("a", soon).code == "presentation.replayed"
    assert store.seen("a")                              # the store itself still answers when asked
    memory = ReplayGuard(MemoryReplayStore(size=4), skew=timedelta(seconds=5))
    assert memory.check("a", soon) is None and memory.seen("a").code == "presentation.replayed"
    store._redis.delete(store.prefix + "a")


def test_the_memory_store_drops_whole_buckets_and_keeps_expiry_exact():
    now = [1_000_000.0]
    store = MemoryReplayStore(size=1_000, clock=lambda: now[0], bucket=16)
    for i in range(100):
        assert store.add(f"id{i}", now[0] + 10 + i)     # expiries spread over 100 s: several buckets
    assert len(store) == 100 and len(store._buckets) > 5
    now[0] += 10 + 50                                   # ids 0..50 expired (until <= now), the rest live
    assert not store.seen("id50") and store.seen("id51")
    assert len(store) == 49
    assert store.add("id50", now[0] + 5)                # an expired id may be recorded again
    assert not store.add("id51", now[0] + 5)            # a live one may not
    now[0] += 100
    assert len(store) == 0 and not store._buckets       # every bucket dropped whole
