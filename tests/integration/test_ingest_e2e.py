"""The spine on real services: client -> redis-server -> Celery worker processes -> PostgreSQL."""

from __future__ import annotations

import json
import time

import pytest
import redis
from sqlalchemy import select

from promptloop_client import Client
from shared.constants import GROUP, STREAM
from shared.models import DeadLetter, MetricEvent

pytestmark = pytest.mark.integration


def distinct_metric_latencies(stack) -> set:
    with stack.engine.connect() as conn:
        return set(conn.execute(select(MetricEvent.latency_ms)).scalars())


def test_ten_thousand_events_land_exactly_once(stack):
    stack.start_worker()
    stack.start_beat()
    client = Client(stack.redis.url)
    for i in range(9000):
        client.metric("baseline", "3b", float(i), True, family="entity_extraction")
    for i in range(700):
        client.feedback("DSPY_A", "7b", (i % 100) / 100)
    for i in range(300):
        client.example("entity_extraction", "1.5b", "baseline", f"text {i}", "entity<|#|>X<|#|>Org<|#|>d")
    assert client.close(30), client.stats()

    stack.wait_for(lambda: sum(stack.counts().values()) >= 10_000, 120, "10,000 rows")
    time.sleep(1.5)  # more drains run meanwhile: nothing may be added twice
    assert stack.counts() == {"metric": 9000, "feedback": 700, "example": 300, "dead": 0}
    assert distinct_metric_latencies(stack) == {float(i) for i in range(9000)}
    r = redis.Redis.from_url(stack.redis.url)
    assert r.xpending(STREAM, GROUP)["pending"] == 0


def test_the_same_events_sent_twice_land_once(stack):
    payloads = [Client._encode(("metric", time.time(), "v", "3b", float(i), True, None, None, None, None))
                for i in range(2000)]
    r = redis.Redis.from_url(stack.redis.url)
    for _ in range(2):  # a producer retrying after a timeout sends its batch again
        pipe = r.pipeline(transaction=False)
        for p in payloads:
            pipe.xadd(STREAM, {"e": p})
        pipe.execute()
    stack.start_worker()
    stack.start_beat()
    stack.wait_for(lambda: r.xinfo_groups(STREAM) and r.xinfo_groups(STREAM)[0]["lag"] == 0
                   and r.xpending(STREAM, GROUP)["pending"] == 0, 60, "both copies ingested")
    assert stack.counts()["metric"] == 2000

    pipe = r.pipeline(transaction=False)  # and once more, after the first copies were stored
    for p in payloads[:500]:
        pipe.xadd(STREAM, {"e": p})
    pipe.execute()
    stack.wait_for(lambda: r.xinfo_groups(STREAM)[0]["lag"] == 0 and r.xpending(STREAM, GROUP)["pending"] == 0,
                   60, "third copies ingested")
    assert stack.counts()["metric"] == 2000


def test_a_worker_killed_mid_drain_loses_and_duplicates_nothing(stack):
    total = 30_000
    client = Client(stack.redis.url, batch_size=100)  # 300 entries; the worker reads 10 at a time
    for i in range(total):
        client.metric("baseline", "7b", float(i), True)
    assert client.close(60)

    worker = stack.start_worker("doomed")
    stack.start_beat()
    stack.wait_for(lambda: stack.counts()["metric"] >= 1000, 60, "the first worker to store some rows", 0.01)
    stack.kill(worker)  # SIGKILL to the whole process group: no warm shutdown, no acks
    at_kill = stack.counts()["metric"]
    assert at_kill < total, "the worker finished before it could be killed; raise the event count"
    r = redis.Redis.from_url(stack.redis.url)
    print(f"killed with {at_kill} stored, {r.xpending(STREAM, GROUP)['pending']} entries pending")

    stack.start_worker("survivor")
    stack.wait_for(lambda: stack.counts()["metric"] >= total, 120, "the survivor to finish")
    stack.wait_for(lambda: r.xpending(STREAM, GROUP)["pending"] == 0, 30, "the dead worker's entries reclaimed")
    assert stack.counts()["metric"] == total
    assert distinct_metric_latencies(stack) == {float(i) for i in range(total)}


def test_malformed_events_go_to_dead_letters_while_good_ones_flow(stack):
    r = redis.Redis.from_url(stack.redis.url)
    good = Client(stack.redis.url)
    bad = {
        b"\x80\x81 not json at all": "Invalid JSON",
        json.dumps({"v": 1, "kind": "feedback", "event_id": "6f1c4b1e-0f6e-4b8e-9d3e-1d6a3f1e2b7c", "ts": 1.7e9,
                    "variant": "v", "model": "3b", "score": "high"}).encode(): "score",
        json.dumps({"v": 1, "kind": "metric", "ts": 1.7e9}).encode(): "Field required",
        b'{"pad": "' + b"x" * 400_000 + b'"}': "oversized",
    }
    for i in range(1000):
        good.metric("baseline", "3b", float(i), True)
        if i % 250 == 0:
            payload = list(bad)[i // 250]
            r.xadd(STREAM, {"e": payload})
    r.xadd(STREAM, {"data": b"the wrong field"})
    assert good.close(10)

    stack.start_worker()
    stack.start_beat()
    stack.wait_for(lambda: stack.counts()["metric"] == 1000 and stack.counts()["dead"] == 5, 60, "good rows + 5 dead")
    with stack.engine.connect() as conn:
        letters = {raw: reason for raw, reason in conn.execute(select(DeadLetter.raw, DeadLetter.reason))}
    for payload, reason in bad.items():
        assert reason in letters[payload]
    assert "no field 'e'" in letters[b"data=the wrong field"]


def test_the_host_keeps_working_without_redis_and_delivers_later(stack):
    stack.start_worker()
    stack.start_beat()
    client = Client(stack.redis.url, flush_interval=0.02, socket_timeout=0.5)
    for i in range(100):
        client.metric("baseline", "3b", float(i), True)
    assert client.flush(10)

    stack.redis.stop()
    host_results = []
    for i in range(100, 2100):  # the host app goes on calling its model and emitting
        client.metric("baseline", "3b", float(i), True)
        host_results.append(i * 2)
    assert len(host_results) == 2000
    assert not client.flush(1.0)
    assert client.stats()["buffered"] == 2000 and client.stats()["send_errors"] >= 1

    stack.redis.start()  # same port and data directory: the AOF restores the stream
    assert client.flush(30), client.stats()
    stack.wait_for(lambda: stack.counts()["metric"] == 2100, 120, "all 2,100 events after Redis returned")
    assert distinct_metric_latencies(stack) == {float(i) for i in range(2100)}
    assert client.stats()["dropped"] == 0
    client.close(1)


def test_a_database_outage_loses_nothing_and_misfiles_nothing(redis_server, tmp_path):
    from shared.db import make_engine
    from shared.local import PG_BIN, PostgresServer, free_port
    from shared.migrate import upgrade

    from .conftest import Stack

    if not (PG_BIN / "initdb").exists():
        pytest.skip("needs PostgreSQL binaries to stop and restart a server of its own")
    pg = PostgresServer(tmp_path / "pg", free_port()).start()  # its own server: this test stops it
    engine = make_engine(pg.url)
    upgrade(engine)
    stack = Stack(redis_server, pg.url, tmp_path, engine)
    try:
        stack.start_worker()
        stack.start_beat()
        client = Client(stack.redis.url)
        for i in range(1000):
            client.metric("baseline", "3b", float(i), True)
        assert client.flush(10)
        stack.wait_for(lambda: stack.counts()["metric"] == 1000, 60, "the first 1,000 rows")

        pg.stop()
        for i in range(1000, 3000):
            client.metric("baseline", "3b", float(i), True)
        assert client.flush(10)  # Redis is up: the events are accepted and wait in the stream
        time.sleep(4)  # several drains fail meanwhile (reclaim idle is 1.5 s in these tests)
        r = redis.Redis.from_url(stack.redis.url)
        group = r.xinfo_groups(STREAM)[0]
        assert group["lag"] + group["pending"] > 0

        pg.start()
        stack.wait_for(lambda: stack.counts()["metric"] == 3000, 120, "all 3,000 rows after the database returned")
        assert stack.counts()["dead"] == 0
        assert distinct_metric_latencies(stack) == {float(i) for i in range(3000)}
        client.close(1)
    finally:
        stack.stop_all()
        engine.dispose()
        pg.stop()
