"""Ingest under faults of the real services: rows PostgreSQL refuses, NUL bytes in what ingest itself
writes, Redis restarted empty, and a database that answers but refuses writes.

Each fault is produced by the service itself (a constraint, a trigger, a read-only database, a wiped
redis-server), never by a monkeypatched exception.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid

import psycopg
import pytest
import redis
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from shared.constants import BATCH_FIELD, FIELD, GROUP, STREAM
from shared.ingest import Ingestor
from shared.models import DeadLetter, MetricEvent

pytestmark = pytest.mark.integration


def metric(latency: float, event_id: str | None = None, kind: str = "metric") -> bytes:
    return json.dumps({"v": 1, "kind": kind, "event_id": event_id or str(uuid.uuid4()), "ts": 1.7e9,
                       "variant": "baseline", "model": "3b", "latency_ms": latency, "success": True}).encode()


def send_batches(r: redis.Redis, payloads: list[bytes], per_entry: int = 100) -> None:
    """Append ``payloads`` as producer batch entries (one event per line), as the client does."""
    pipe = r.pipeline(transaction=False)
    for start in range(0, len(payloads), per_entry):
        pipe.xadd(STREAM, {BATCH_FIELD: b"\n".join(payloads[start:start + per_entry])})
    pipe.execute()


def settled(r: redis.Redis) -> bool:
    """Every entry read and acknowledged."""
    groups = r.xinfo_groups(STREAM)
    return bool(groups) and groups[0]["lag"] == 0 and groups[0]["pending"] == 0


def drain_like_a_worker(ingestor: Ingestor, r: redis.Redis, seconds: float) -> list[BaseException]:
    """Drain again and again as beat's ticks would, until everything is acknowledged; returns the failures.

    A drain that raises is a failed Celery task: logged, and retried on the next tick. Whatever it
    raised is collected (Celery catches every exception a task raises, so this does too).
    """
    failures: list[BaseException] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        failures += try_drain(ingestor)
        if settled(r):
            break
        time.sleep(0.05)
    return failures


def try_drain(ingestor: Ingestor, budget_s: float = 1.0) -> list[BaseException]:
    """One drain as one Celery task runs it: what it raised, if anything (Celery records any exception)."""
    try:
        ingestor.drain(budget_s)
    except Exception as exc:  # noqa: BLE001 - a failed task, as Celery would record it
        return [exc]
    return []


def latencies(engine) -> set:
    with engine.connect() as conn:
        return set(conn.execute(select(MetricEvent.latency_ms)).scalars())


def letters(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(select(DeadLetter.stream_id, DeadLetter.raw, DeadLetter.reason, DeadLetter.delivery_count)
                            .order_by(DeadLetter.id)).all()


def admin(db_url: str) -> tuple[str, str]:
    """A libpq connection string to the server's ``postgres`` database, and the test database's name."""
    url = make_url(db_url)
    conninfo = f"host={url.host} port={url.port} user={url.username} dbname=postgres"
    return conninfo + (f" password={url.password}" if url.password else ""), url.database


def set_read_only(db_url: str, on: bool) -> None:
    """Make the database refuse (or accept) writes, as after a failover: new setting, sessions dropped.

    ``ALTER DATABASE ... SET`` applies to new sessions only; terminating the current ones makes every
    client reconnect and meet the new setting, as clients of a promoted or demoted server do.
    """
    conninfo, name = admin(db_url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if on:
            conn.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
        else:
            conn.execute(f"ALTER DATABASE {name} RESET default_transaction_read_only")
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = %s AND pid <> pg_backend_pid()", [name])


def max_deliveries_pending(r: redis.Redis) -> int:
    pending = r.xpending_range(STREAM, GROUP, min="-", max="+", count=10_000)
    return max((p["times_delivered"] for p in pending), default=0)


# ----- 1. a row PostgreSQL refuses ------------------------------------------------------------------------


def test_rows_postgresql_refuses_cost_only_themselves(stack):
    with stack.engine.begin() as conn:  # the database, not ingest, refuses latencies ending in 50
        conn.execute(text("ALTER TABLE metric_events ADD CONSTRAINT no_fifties CHECK (latency_ms::int % 100 <> 50)"))
    r = redis.Redis.from_url(stack.redis.url)
    payloads = [metric(float(i)) for i in range(1000)]
    send_batches(r, payloads)  # ten producer batches of 100, one refused row in each
    ingestor = Ingestor(r, stack.engine, consumer="c1", batch_size=10, reclaim_idle_ms=100, max_deliveries=3)

    failures = drain_like_a_worker(ingestor, r, 20)

    refused = {float(i) for i in range(50, 1000, 100)}
    stored = latencies(stack.engine)
    print(f"stored {len(stored)} of 990 good events; {len(letters(stack.engine))} dead letters; "
          f"{len(failures)} failed drains, first: {failures[:1]}")
    assert stored == {float(i) for i in range(1000)} - refused
    dead = letters(stack.engine)
    assert sorted(raw for _, raw, _, _ in dead) == sorted(payloads[int(x)] for x in refused)
    assert all("database refused" in reason and "no_fifties" in reason for _, _, reason, _ in dead)
    assert settled(r) and not failures

    # Again with rows already stored in the same batch: the duplicate sends COPY to its staging path,
    # where the refusal surfaces differently (from INSERT ... SELECT), and must cost only its row.
    again = payloads[:50] + [metric(2000.0 + i) for i in range(51)]  # 2050 is refused
    send_batches(r, again)
    failures = drain_like_a_worker(ingestor, r, 20)
    assert latencies(stack.engine) == stored | {2000.0 + i for i in range(50)}
    assert len(letters(stack.engine)) == 11 and settled(r) and not failures


# ----- 2. nothing ingest writes itself may wedge it ---------------------------------------------------


def test_nul_bytes_in_kinds_and_field_names_never_wedge_the_consumer(stack):
    r = redis.Redis.from_url(stack.redis.url)
    nul_kind = metric(1000.0, kind="met\x00ric")
    good = [metric(float(i)) for i in range(300)]
    send_batches(r, good[:100])
    r.xadd(STREAM, {FIELD: nul_kind})
    nul_field = r.xadd(STREAM, {b"e\x00": b"payload"}).decode()  # a stream field name with a NUL in it
    send_batches(r, good[100:150] + [nul_kind] + good[150:])  # and the NUL kind inside a producer batch
    ingestor = Ingestor(r, stack.engine, consumer="c1", batch_size=10, reclaim_idle_ms=100, max_deliveries=3)

    failures = drain_like_a_worker(ingestor, r, 20)

    dead = letters(stack.engine)
    print(f"stored {len(latencies(stack.engine))} of 300 good events; dead letters: "
          f"{[(sid, reason[:60]) for sid, _, reason, _ in dead]}; {len(failures)} failed drains: {failures[:1]}")
    assert latencies(stack.engine) == {float(i) for i in range(300)}
    assert settled(r) and not failures
    assert len(dead) == 3
    by_id = {sid: (raw, reason) for sid, raw, reason, _ in dead}
    assert by_id[nul_field] == (b"e\x00=payload", "entry has no field 'e' or 'b' (fields: e\\x00)")
    nul_kinds = [(raw, reason) for sid, (raw, reason) in by_id.items() if sid != nul_field]
    assert [raw for raw, _ in nul_kinds] == [nul_kind, nul_kind]  # byte for byte, NUL included
    assert all("'met\\x00ric'" in reason for _, reason in nul_kinds)


def test_a_dead_letter_the_database_refuses_degrades_to_a_minimal_one(stack):
    with stack.engine.begin() as conn:  # the database refuses some reasons outright
        conn.execute(text("ALTER TABLE dead_letters ADD CONSTRAINT no_forbidden CHECK (reason NOT LIKE '%forbidden%')"))
    r = redis.Redis.from_url(stack.redis.url)
    refused_reason = metric(1.0, kind="forbidden")  # its reason quotes the kind
    send_batches(r, [metric(0.0), refused_reason, b"{broken", metric(2.0)])
    ingestor = Ingestor(r, stack.engine, consumer="c1", reclaim_idle_ms=100, max_deliveries=3)

    failures = drain_like_a_worker(ingestor, r, 10)

    dead = {raw: reason for _, raw, reason, _ in letters(stack.engine)}
    print(f"dead letters: {dead}; {len(failures)} failed drains: {failures[:1]}")
    assert latencies(stack.engine) == {0.0, 2.0}
    assert set(dead) == {refused_reason, b"{broken"}
    assert "Invalid JSON" in dead[b"{broken"]  # the other letter keeps its full reason
    assert "forbidden" not in dead[refused_reason] and "refused" in dead[refused_reason]
    assert settled(r) and not failures


# ----- 3. Redis restarted empty ------------------------------------------------------------------------


def test_workers_keep_draining_after_redis_restarts_empty(stack):
    stack.start_worker()
    stack.start_beat()
    r = redis.Redis.from_url(stack.redis.url)
    send_batches(r, [metric(float(i)) for i in range(300)])
    stack.wait_for(lambda: stack.counts()["metric"] == 300, 60, "the first 300 rows")

    # No AOF survives (or a failover to an empty replica): the stream and its group are gone.
    stack.redis.stop()
    shutil.rmtree(stack.redis.directory)
    stack.redis.start()
    r = redis.Redis.from_url(stack.redis.url)
    send_batches(r, [metric(float(i)) for i in range(300, 600)])

    stack.wait_for(lambda: stack.counts()["metric"] == 600, 60, "the 300 rows sent after Redis came back empty")
    stack.wait_for(lambda: settled(r), 30, "everything acknowledged")
    assert latencies(stack.engine) == {float(i) for i in range(600)}
    assert stack.counts()["dead"] == 0


# ----- 4. a database that answers but refuses writes ----------------------------------------------------


def test_a_read_only_database_is_an_outage_not_bad_events(stack):
    stack.extra_env["PROMPTLOOP_MAX_DELIVERIES"] = "3"
    stack.start_worker()
    stack.start_beat()
    r = redis.Redis.from_url(stack.redis.url)
    send_batches(r, [metric(float(i)) for i in range(500)])
    stack.wait_for(lambda: stack.counts()["metric"] == 500, 60, "the first 500 rows")

    set_read_only(stack.db_url, True)
    try:
        send_batches(r, [metric(float(i)) for i in range(500, 3000)])
        # Reclaim idle is 1.5 s: long enough for every entry to be claimed past 3 deliveries.
        time.sleep(8)
        during = max_deliveries_pending(r)
    finally:
        set_read_only(stack.db_url, False)

    stack.wait_for(lambda: settled(r), 90, "the stream drained after writes came back")
    time.sleep(1)  # further drains meanwhile must add nothing
    dead_events = sum(raw.count(b"\n") + 1 for _, raw, _, _ in letters(stack.engine))
    print(f"after read-only: {stack.counts()}, {dead_events} good events in dead letters; "
          f"highest delivery count while read-only: {during}")
    assert stack.counts()["dead"] == 0
    assert latencies(stack.engine) == {float(i) for i in range(3000)}
    assert during <= 1


def test_writes_refused_mid_batch_are_held_without_counting_deliveries(stack):
    # A trigger that fails every insert with disk_full's SQLSTATE: the database accepts connections and
    # reads, reports itself writable, and refuses the batch only when ingest writes it.
    with stack.engine.begin() as conn:
        conn.execute(text("CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS "
                          "$$ BEGIN RAISE EXCEPTION 'could not extend file' USING ERRCODE = '53100'; END $$"))
        conn.execute(text("CREATE TRIGGER disk_full BEFORE INSERT ON metric_events "
                          "FOR EACH STATEMENT EXECUTE FUNCTION disk_full()"))
    r = redis.Redis.from_url(stack.redis.url)
    send_batches(r, [metric(float(i)) for i in range(1000)])
    ingestor = Ingestor(r, stack.engine, consumer="c1", batch_size=10, reclaim_idle_ms=100, max_deliveries=3)

    failures = []
    for _ in range(10):  # well past max_deliveries, each drain reclaiming what the last one held
        failures += try_drain(ingestor)
        time.sleep(0.12)
    held = r.xpending(STREAM, GROUP)["pending"] + r.xinfo_groups(STREAM)[0]["lag"]
    counted = max_deliveries_pending(r)
    with stack.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER disk_full ON metric_events"))
    more = drain_like_a_worker(ingestor, r, 20)

    print(f"{len(failures)} failed drains ({failures[:1]}); {held} entries held, highest delivery count "
          f"{counted}; then {len(latencies(stack.engine))} stored, {len(letters(stack.engine))} dead")
    assert len(failures) == 10 and held == 10
    assert counted == 0
    assert latencies(stack.engine) == {float(i) for i in range(1000)}
    assert letters(stack.engine) == [] and settled(r) and not more


def test_a_group_lost_mid_drain_is_recreated_and_the_drain_goes_on(stack):
    r = redis.Redis.from_url(stack.redis.url)
    send_batches(r, [metric(float(i)) for i in range(100)], per_entry=10)
    # A long idle wait keeps the drain blocked in XREADGROUP when Redis loses its data.
    ingestor = Ingestor(redis.Redis.from_url(stack.redis.url), stack.engine, consumer="c1", batch_size=10,
                        idle_wait_ms=2000)
    failures: list[BaseException] = []
    drain = threading.Thread(target=lambda: failures.extend(try_drain(ingestor, budget_s=15)))
    drain.start()
    stack.wait_for(lambda: stack.counts()["metric"] == 100, 30, "the first 100 rows")

    # The data goes while the connection stays (a restart drops the connection, and the next drain
    # starts by recreating the group: the workers test above): FLUSHALL, or a failover behind a proxy.
    r.flushall()
    time.sleep(0.2)
    send_batches(r, [metric(float(i)) for i in range(100, 200)], per_entry=10)
    drain.join(30)

    print(f"{stack.counts()['metric']} stored; drain raised {failures}")
    assert not drain.is_alive() and not failures
    assert latencies(stack.engine) == {float(i) for i in range(200)}
    assert settled(r)
