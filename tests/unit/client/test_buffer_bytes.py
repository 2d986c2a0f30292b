"""The client's buffer is bounded in bytes as well as events, with a real Redis server unreachable.

Before this bound, 150,000 examples of 20 KB grew a host by 1.9 GiB while Redis was down: the event
cap (100,000) alone lets big examples take any amount of memory.
"""

import json
import os
import signal
import time
import tracemalloc

import pytest
import redis

from promptloop_client import Client, wire

MiB = 1024 * 1024


def arrived(url: str) -> list[dict]:
    r = redis.Redis.from_url(url)
    return [json.loads(line) for _, fields in r.xrange(wire.STREAM) for line in fields[b"b"].split(b"\n")]


def test_with_redis_unreachable_memory_stays_under_the_byte_cap_and_the_oldest_go_first(redis_server):
    cap = 8 * MiB
    c = Client(redis_server.url, max_buffer_bytes=cap, flush_interval=0.01, socket_timeout=0.5)
    c.feedback("v", "3b", 0.5)
    assert c.flush(5)  # connected once, so the outage below hits a live client
    redis_server.stop()

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    n, size = 3_000, 20_000
    for i in range(n):  # 60 MB of examples, each its own string, as LightRAG's prompts are
        c.example("entity_extraction", "3b", "baseline", f"{i:08d}" + "x" * size, "out", latency_ms=float(i))
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()

    stats = c.stats()
    assert grown < cap * 1.25, f"buffer grew the host by {grown / MiB:.1f} MiB with an {cap / MiB:.0f} MiB cap"
    assert stats["buffered_bytes"] <= cap
    assert stats["emitted"] == n + 1 and stats["dropped"] > 0
    assert stats["buffered"] + stats["dropped"] == n  # the feedback was sent before the outage
    assert stats["send_errors"] >= 1 and stats["last_error"]

    redis_server.start()
    assert c.flush(30)
    latencies = [e["latency_ms"] for e in arrived(redis_server.url) if e["kind"] == "example"]
    # What arrived is the newest examples, in order: exactly the `dropped` oldest are missing.
    assert latencies == [float(i) for i in range(stats["dropped"], n)]
    assert c.stats()["dropped"] == stats["dropped"] and c.stats()["buffered_bytes"] == 0
    c.close(1)


def test_events_dropped_while_in_flight_are_uncounted_when_their_send_succeeds(redis_server):
    # Redis stopped (SIGSTOP) holds the flusher's XADD open: its batch is in flight while the caller
    # goes over the cap, so that batch (the oldest events) is marked dropped first; then Redis goes
    # on, the XADD succeeds, and those events count as sent, not dropped.
    c = Client(redis_server.url, max_buffer=100, batch_size=50, flush_interval=60, socket_timeout=30)
    c.feedback("v", "3b", 0.5)
    assert c.flush(5)
    os.kill(redis_server.proc.pid, signal.SIGSTOP)
    try:
        for i in range(50):  # a full batch wakes the flusher, which takes it and waits on Redis
            c.metric("v", "3b", float(i), True)
        deadline = time.monotonic() + 10
        while not (c._sending and not c._buf):
            assert time.monotonic() < deadline, "the flusher never took the batch"
            time.sleep(0.001)
        for i in range(50, 200):
            c.metric("v", "3b", float(i), True)
        during = c.stats()
        assert (during["buffered"], during["dropped"]) == (100, 100)  # the 50 in flight, then 50..99
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)
    assert c.flush(10)
    after = c.stats()
    assert (after["sent"], after["dropped"], after["buffered"], after["buffered_bytes"]) == (151, 50, 0, 0)
    latencies = [e["latency_ms"] for e in arrived(redis_server.url) if e["kind"] == "metric"]
    assert latencies == [float(i) for i in [*range(50), *range(100, 200)]]
    c.close(1)


def test_small_events_are_still_capped_by_count(redis_server):
    redis_server.stop()
    c = Client(redis_server.url, max_buffer=100, max_buffer_bytes=64 * MiB, flush_interval=0.01,
               socket_timeout=0.5)
    for i in range(250):
        c.metric("v", "3b", float(i), True)
    assert (c.stats()["buffered"], c.stats()["dropped"]) == (100, 150)
    c.close(0.1)


@pytest.mark.parametrize("options", [{"max_buffer_bytes": 0}, {"max_buffer_bytes": 1.5},
                                     {"max_buffer_bytes": 1000, "max_event_bytes": 4096},
                                     {"max_event_bytes": 100}])
def test_a_wrong_byte_cap_is_a_value_error(options):
    with pytest.raises(ValueError):
        Client("redis://127.0.0.1:1/0", **options)
