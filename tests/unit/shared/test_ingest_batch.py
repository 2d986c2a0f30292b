"""Ingest's batch bookkeeping: a refused row's dead letter names its own entry and line, whatever the
other events around it (invalid ones, other entries, other kinds) were; the collector is left as found."""

import gc

import pytest
from sqlalchemy import select, text

from promptloop_client.client import Client
from shared.constants import STREAM
from shared.ingest import Ingestor
from shared.models import DeadLetter, FeedbackEvent, MetricEvent
from tests.unit.shared.ingest_fixtures import engine, r  # noqa: F401  (fixtures)


def metric(i: int) -> bytes:
    return Client._encode(("metric", 1.7e9, "baseline", "3b", float(i), True, None, None, None, "entity_extraction"))


def feedback() -> bytes:
    return Client._encode(("feedback", 1.7e9, "DSPY_A", "3b", 0.85, "quality"))


def test_a_refused_row_is_traced_back_to_its_entry_and_line(r, engine):
    with engine.begin() as conn:
        conn.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON metric_events WHEN NEW.latency_ms = 3 "
                          "BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END"))
    r.xadd(STREAM, {b"e": metric(0)})
    r.xadd(STREAM, {b"b": b"\n".join([b"{broken", metric(1), feedback(), b"", metric(2)])})
    three = metric(3)
    refused_in = r.xadd(STREAM, {b"b": b"\n".join([metric(4), b"[]", three, metric(5)])}).decode()
    r.xadd(STREAM, {b"e": metric(6)})

    stats = Ingestor(r, engine, consumer="c1").drain()

    assert (stats.read, stats.stored, stats.dead) == (11, 7, 4)
    with engine.connect() as conn:
        letters = {row.stream_id: row for row in conn.execute(select(DeadLetter.__table__))}
        stored = {row.latency_ms for row in conn.execute(select(MetricEvent.latency_ms))}
        feedbacks = conn.execute(select(FeedbackEvent.variant)).scalars().all()
    assert stored == {0.0, 1.0, 2.0, 4.0, 5.0, 6.0} and feedbacks == ["DSPY_A"]
    refused = letters[f"{refused_in}/2"]
    assert refused.raw == three and "database refused: refused by trigger" in refused.reason
    assert letters[f"{refused_in}/1"].raw == b"[]"


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_left_as_it_was(r, engine, enabled):
    r.xadd(STREAM, {b"b": b"\n".join(metric(i) for i in range(100))})
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        Ingestor(r, engine, consumer="c1").drain()
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
