"""The producer: argument checks, delivery, bounded buffering and recovery (fakeredis)."""

import json
import math
import sys
import time
import uuid
from datetime import datetime, timezone

import fakeredis
import pytest

from promptloop_client import Client, wire
from promptloop_client.client import MIN_EVENT_BYTES


def stream_events(server) -> list[dict]:
    r = fakeredis.FakeRedis(server=server)
    return [json.loads(line) for _, fields in r.xrange(wire.STREAM) for line in fields[b"b"].split(b"\n")]


def test_each_kind_arrives_with_a_uuid_and_timestamp(client, server):
    client.feedback("DSPY_A", "3b", 0.85, "quality")
    client.metric("DSPY_B", "7b", 1200, True, quality=0.9, tokens_in=10, tokens_out=3, family="entity_extraction")
    client.example("entity_extraction", "1.5b", "baseline", "in", "out", reference="ref")
    assert client.flush(5)

    events = stream_events(server)
    assert [e["kind"] for e in events] == ["feedback", "metric", "example"]
    assert {k: events[0][k] for k in ("variant", "model", "score", "feedback_type")} == {
        "variant": "DSPY_A", "model": "3b", "score": 0.85, "feedback_type": "quality"}
    assert events[1]["latency_ms"] == 1200 and events[1]["success"] is True and events[1]["family"] == "entity_extraction"
    assert events[2]["reference"] == "ref" and events[2]["input"] == "in"
    for e in events:
        assert uuid.UUID(e["event_id"]).version == 4
        assert e["ts"] > 1.7e9 and e["v"] == wire.SCHEMA_VERSION
    assert len({e["event_id"] for e in events}) == 3


@pytest.mark.parametrize("call", [
    lambda c: c.feedback("v", "3b", 1.5),
    lambda c: c.feedback("v", "3b", -0.1),
    lambda c: c.feedback("v", "3b", math.nan),
    lambda c: c.feedback("v", "3b", "0.5"),
    lambda c: c.feedback("", "3b", 0.5),
    lambda c: c.feedback("v", None, 0.5),
    lambda c: c.metric("v", "3b", -1, True),
    lambda c: c.metric("v", "3b", math.inf, True),
    lambda c: c.metric("v", "3b", 10, "yes"),
    lambda c: c.metric("v", "3b", 10, True, quality=2),
    lambda c: c.metric("v", "3b", 10, True, tokens_in=1.5),
    lambda c: c.example("f", "3b", "v", None, "out"),
    lambda c: c.metric("v", "3b", 10, True, tokens_in=2**31),
    lambda c: c.metric("v", "3b", 10, True, family="f" * 65),
    lambda c: c.feedback("v" * 201, "3b", 0.5),
    lambda c: c.feedback("v", "3b", 0.5, ts=time.time() * 1000),
    lambda c: c.feedback("v", "3b", 0.5, ts=datetime.now()),
    lambda c: c.feedback("v", "3b", 0.5, ts="2024-05-01T12:00:00+00:00"),
    lambda c: c.feedback("v", "3b", 0.5, ts=True),
    lambda c: c.example("f", "3b", "v", "in\x00", "out"),
    lambda c: c.example("f", "3b", "v", "in", "out \ud800"),
    lambda c: c.example("f", "3b", "v", "x" * wire.MAX_EVENT_BYTES, "out"),
])
def test_wrong_arguments_raise_value_error_at_once_and_send_nothing(client, server, call):
    with pytest.raises(ValueError):
        call(client)
    assert client.flush(5)
    assert stream_events(server) == []
    assert client.stats()["emitted"] == 0


def test_redis_down_buffers_then_delivers_when_it_returns(server):
    server.connected = False
    c = Client(connection=fakeredis.FakeRedis(server=server), flush_interval=0.01)
    for i in range(50):
        c.metric("v", "3b", i, True)  # never raises into the host
    assert not c.flush(0.3)
    stats = c.stats()
    assert stats["buffered"] == 50 and stats["send_errors"] >= 1 and "ConnectionError" in stats["last_error"]

    server.connected = True
    assert c.flush(10)
    assert [e["latency_ms"] for e in stream_events(server)] == list(range(50))
    assert c.stats()["sent"] == 50 and c.stats()["dropped"] == 0
    c.close(1)


def test_full_buffer_drops_the_oldest_and_counts_them(server):
    server.connected = False
    c = Client(connection=fakeredis.FakeRedis(server=server), max_buffer=10, flush_interval=0.01)
    for i in range(25):
        c.metric("v", "3b", i, True)
    assert c.stats()["dropped"] == 15
    server.connected = True
    assert c.flush(10)
    assert [e["latency_ms"] for e in stream_events(server)] == list(range(15, 25))
    c.close(1)


def test_stream_at_its_cap_holds_events_in_the_client(server):
    r = fakeredis.FakeRedis(server=server)
    for _ in range(5):
        r.xadd(wire.STREAM, {"e": b"{}"})
    c = Client(connection=r, stream_cap=5, flush_interval=0.01)
    c._stream_len = 5
    c.feedback("v", "3b", 0.5)
    assert not c.flush(0.3)
    assert "cap" in c.stats()["last_error"] and r.xlen(wire.STREAM) == 5

    r.xtrim(wire.STREAM, maxlen=0)  # workers caught up
    assert c.flush(10)
    assert r.xlen(wire.STREAM) == 1
    c.close(1)


def test_close_drains_and_reports_leftovers(server):
    c = Client(connection=fakeredis.FakeRedis(server=server), flush_interval=10)
    c.feedback("v", "3b", 0.1)
    assert c.close(5) is True
    assert len(stream_events(server)) == 1

    server.connected = False
    c2 = Client(connection=fakeredis.FakeRedis(server=server), flush_interval=0.01)
    c2.feedback("v", "3b", 0.1)
    assert c2.close(0.2) is False
    assert c2.stats()["buffered"] == 1


async def _async_use(c):
    c.feedback("v", "3b", 0.3)
    return await c.aflush(5)


def test_usable_from_asyncio(client, server):
    import asyncio

    assert asyncio.run(_async_use(client)) is True
    assert len(stream_events(server)) == 1


def test_a_retried_batch_keeps_its_event_ids(server):
    c = Client(connection=fakeredis.FakeRedis(server=server), flush_interval=0.01)
    encoded = [Client._encode(("feedback", 1.0, "v", "3b", 0.5, "quality"))]
    c._give_back(encoded)
    assert c.flush(5)
    assert stream_events(server)[0]["event_id"] == json.loads(encoded[0])["event_id"]
    c.close(1)


def test_events_after_close_are_counted_as_dropped(server):
    c = Client(connection=fakeredis.FakeRedis(server=server))
    c.close(1)
    c.feedback("v", "3b", 0.5)
    assert c.stats()["dropped"] == 1 and c.stats()["buffered"] == 0


def test_a_forked_child_sends_its_own_events_only(server):
    import os

    r = fakeredis.FakeRedis(server=server)
    c = Client(connection=r, flush_interval=0.01)
    server.connected = False
    c.feedback("parent", "3b", 0.5)  # stays buffered in the parent
    server.connected = True
    pid = os.fork()
    if pid == 0:  # the child (its own copy of the fake server): a fresh buffer and flusher thread
        c.feedback("child", "3b", 0.5)
        ok = c.flush(5) and [e["variant"] for e in stream_events(server)] == ["child"]
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert c.flush(5)
    assert [e["variant"] for e in stream_events(server)] == ["parent"]
    c.close(1)


def test_the_largest_metric_and_feedback_fit_the_smallest_event_limit():
    """So only examples need a size check on the caller's path."""
    name, kind = "\x01" * wire.NAME_MAX, "\x01" * wire.KIND_MAX  # 6 bytes each as JSON
    big = sys.float_info.max
    metric = Client._encode(("metric", wire.TS_MAX - 0.123456, name, name, big, False, 0.123456789, wire.TOKENS_MAX,
                             wire.TOKENS_MAX, kind))
    feedback = Client._encode(("feedback", wire.TS_MAX - 0.123456, name, name, 0.123456789, kind))
    assert max(len(metric), len(feedback)) <= MIN_EVENT_BYTES


def test_an_explicit_timestamp_is_sent_in_seconds(client, server):
    when = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    client.feedback("v", "3b", 0.5, ts=when)
    client.metric("v", "3b", 1.0, True, ts=1_714_564_800)
    assert client.flush(5)
    assert [e["ts"] for e in stream_events(server)] == [when.timestamp(), 1_714_564_800.0]
