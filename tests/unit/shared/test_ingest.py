"""Ingest on fakeredis + SQLite: stored once, dead letters, reclaiming, and safe trimming.

The same guarantees are proven on real redis-server, PostgreSQL and Celery workers in
``tests/integration/test_ingest_e2e.py``.
"""

import json
import time

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, OperationalError

from promptloop_client.client import Client
from shared.constants import GROUP, STREAM
from shared.db import make_engine
from shared.ingest import Ingestor, ensure_group
from shared.store import OUTAGE, ROWS, refusal, storable_text
from shared.models import DeadLetter, FeedbackEvent, MetricEvent, ProductionExample
from tests.unit.shared.ingest_fixtures import engine, r  # noqa: F401  (fixtures)


def count(engine, model) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar_one()


def metric(i: int, ts: float = 1.7e9) -> bytes:
    return Client._encode(("metric", ts, "baseline", "3b", float(i), True, None, None, None, "entity_extraction"))


def add(r, payload: bytes, field: bytes = b"e") -> bytes:
    return r.xadd(STREAM, {field: payload})


def make(r, engine, **kw) -> Ingestor:
    return Ingestor(r, engine, **{"consumer": "c1", "batch_size": 50, **kw})


def test_every_kind_is_stored_and_the_stream_is_trimmed(r, engine):
    for i in range(120):
        add(r, metric(i))
    add(r, Client._encode(("feedback", 1.7e9, "DSPY_A", "3b", 0.85, "quality")))
    add(r, Client._encode(("example", 1.7e9, "entity_extraction", "3b", "baseline", "in", "out", "ref", 5.0, 1, 2)))

    stats = make(r, engine).drain()

    assert (stats.read, stats.stored, stats.dead, stats.duplicates, stats.backlog) == (122, 122, 0, 0, False)
    assert (count(engine, MetricEvent), count(engine, FeedbackEvent), count(engine, ProductionExample)) == (120, 1, 1)
    assert r.xpending(STREAM, GROUP)["pending"] == 0


def test_an_event_delivered_twice_is_stored_once(r, engine):
    payload = metric(1)
    add(r, payload)
    add(r, payload)
    first = make(r, engine).drain()
    add(r, payload)
    second = make(r, engine).drain()
    assert (first.stored, first.duplicates, second.stored, second.duplicates) == (1, 1, 0, 1)
    assert count(engine, MetricEvent) == 1


def test_malformed_entries_become_dead_letters_and_the_rest_flow(r, engine):
    wrong_type = metric(2).replace(b'"success":true', b'"success":"yes"')
    add(r, metric(1))
    add(r, b"{broken")
    add(r, wrong_type)
    add(r, b"x" * 5000)
    add(r, b"{}", field=b"other")
    add(r, metric(3))

    stats = make(r, engine, max_event_bytes=4096).drain()

    assert (stats.stored, stats.dead) == (2, 4)
    with engine.connect() as conn:
        letters = conn.execute(select(DeadLetter.raw, DeadLetter.reason).order_by(DeadLetter.id)).all()
    assert [raw for raw, _ in letters][:2] == [b"{broken", wrong_type]
    reasons = [reason for _, reason in letters]
    assert "Invalid JSON" in reasons[0] and "success" in reasons[1]
    assert reasons[2] == "oversized: 5000 bytes > limit 4096" and "no field 'e'" in reasons[3]
    assert r.xpending(STREAM, GROUP)["pending"] == 0


def test_a_bad_event_in_a_producers_batch_costs_only_itself(r, engine):
    good = [metric(i) for i in range(3)]
    entry = r.xadd(STREAM, {b"b": b"\n".join([good[0], b"{oops", good[1], good[2]])})

    stats = make(r, engine).drain()

    assert (stats.entries, stats.read, stats.stored, stats.dead) == (1, 4, 3, 1)
    with engine.connect() as conn:
        letter = conn.execute(select(DeadLetter.__table__)).one()
    assert (letter.stream_id, letter.raw) == (f"{entry.decode()}/1", b"{oops")


def test_a_dead_consumers_entries_are_reclaimed_and_kept_until_then(r, engine):
    for i in range(10):
        add(r, metric(i))
    ensure_group(r)
    r.xreadgroup(GROUP, "dead-worker", {STREAM: ">"}, count=10)  # read, never acknowledged

    live = make(r, engine, reclaim_idle_ms=200)
    assert live.drain().stored == 0
    live.trim()
    assert r.xlen(STREAM) == 10  # pending entries survive trimming

    time.sleep(0.25)
    stats = live.drain()
    assert (stats.reclaimed, stats.stored) == (10, 10)
    assert r.xpending(STREAM, GROUP)["pending"] == 0


def test_an_entry_that_keeps_killing_its_consumers_goes_to_dead_letters(r, engine):
    poison = metric(1)
    add(r, poison)
    ensure_group(r)
    r.xreadgroup(GROUP, "w0", {STREAM: ">"})
    for n in range(3):  # three more consumers claim it and die
        time.sleep(0.12)
        r.xclaim(STREAM, GROUP, f"w{n + 1}", min_idle_time=100, message_ids=[r.xrange(STREAM)[0][0]])
    time.sleep(0.12)

    stats = make(r, engine, reclaim_idle_ms=100, max_deliveries=4).drain()

    assert (stats.stored, stats.dead) == (0, 1)
    with engine.connect() as conn:
        letter = conn.execute(select(DeadLetter.__table__)).one()
    assert letter.delivery_count == 5 and "not acknowledged after 4 deliveries" in letter.reason
    assert letter.raw == poison


def refuse_latencies(engine, condition: str) -> None:
    """Make SQLite itself refuse metric rows matching ``condition`` (a trigger: SQLite has no ADD CONSTRAINT)."""
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TRIGGER refuse BEFORE INSERT ON metric_events WHEN {condition} "
                          "BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END"))


def test_a_row_the_database_refuses_is_isolated(r, engine):
    for i in range(5):
        add(r, metric(i))
    refuse_latencies(engine, "NEW.latency_ms = 3")
    stats = make(r, engine).drain()
    assert (stats.read, stats.stored, stats.dead) == (5, 4, 1)
    with engine.connect() as conn:
        letter = conn.execute(select(DeadLetter.raw, DeadLetter.reason)).one()
    assert json.loads(letter.raw)["latency_ms"] == 3.0 and "database refused: refused by trigger" in letter.reason


def test_refused_rows_are_found_by_bisection_not_row_by_row(r, engine, monkeypatch):
    r.xadd(STREAM, {b"b": b"\n".join(metric(i) for i in range(1024))})
    refuse_latencies(engine, "NEW.latency_ms IN (100, 900)")
    transactions = []
    real = Ingestor._insert
    monkeypatch.setattr(Ingestor, "_insert", lambda self, parsed: transactions.append(len(parsed)) or real(self, parsed))

    stats = make(r, engine).drain()

    assert (stats.stored, stats.dead) == (1022, 2)
    # Two refused rows among 1,024: two paths down a tree of depth 10, not 1,024 single rows.
    print(f"{len(transactions)} transactions for 1,024 rows")
    assert len(transactions) <= 2 * 2 * 10 + 1


def test_a_database_refusing_writes_holds_entries_without_counting_deliveries(r, engine, tmp_path):
    from sqlalchemy import event

    for i in range(5):
        add(r, metric(i))
    read_only = make_engine(f"sqlite:///{tmp_path / 'ingest.db'}")
    event.listen(read_only, "connect", lambda conn, _: conn.execute("PRAGMA query_only = ON"))

    for _ in range(3):  # more often than max_deliveries allows
        with pytest.raises(OperationalError, match="readonly"):
            make(r, read_only, max_deliveries=2, reclaim_idle_ms=100).drain()
        time.sleep(0.01)
    pending = r.xpending_range(STREAM, GROUP, min="-", max="+", count=10)
    assert len(pending) == 5 and {p["times_delivered"] for p in pending} == {0}

    stats = make(r, engine, consumer="c2", max_deliveries=2, reclaim_idle_ms=100).drain()
    assert (stats.reclaimed, stats.stored, stats.dead) == (5, 5, 0)
    assert r.xpending(STREAM, GROUP)["pending"] == 0


@pytest.mark.parametrize("sqlstate, expected", [
    ("23514", ROWS), ("23502", ROWS), ("22001", ROWS), ("22P02", ROWS), ("P0001", ROWS),
    ("25006", OUTAGE), ("53100", OUTAGE), ("08006", OUTAGE), ("57P01", OUTAGE), ("40001", OUTAGE),
    ("42P01", None), ("XX000", None),
])
def test_database_errors_are_told_apart_by_sqlstate(sqlstate, expected):
    import psycopg

    error = psycopg.errors.lookup(sqlstate)("message")
    assert refusal(error) == expected
    assert refusal(DBAPIError.instance("INSERT", {}, error, psycopg.Error)) == expected


def test_reasons_are_made_storable():
    assert storable_text("tag 'a\x00b'") == "tag 'a\\x00b'"
    assert storable_text("lone \udc80") == "lone \\udc80"
    assert storable_text("x" * 10, limit=4) == "xxxx [truncated]"


def test_a_time_budget_leaves_a_backlog_flag(r, engine):
    for i in range(200):
        add(r, metric(i))
    stats = make(r, engine, batch_size=10).drain(budget_s=0)
    assert stats.backlog and stats.read < 200


def test_replayed_dead_letters_are_stored_once_or_refused_again(r, engine):
    from shared.deadletters import replay

    good = metric(7)
    add(r, good)
    add(r, b"{still broken")
    refuse_latencies(engine, "1")
    assert make(r, engine).drain().dead == 2
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER refuse"))

    assert replay(engine, r) == 2
    stats = make(r, engine).drain()
    assert (stats.stored, stats.dead) == (1, 1)
    assert count(engine, MetricEvent) == 1
    with engine.connect() as conn:
        assert "Invalid JSON" in conn.execute(select(DeadLetter.reason)).scalar_one()
