"""Ingest throughput and the client's cost per call, each next to a ceiling measured in the same run.

    .venv/bin/python bench/ingest.py [--events 100000] [--rounds 3]

Starts its own redis-server and PostgreSQL 15 (or uses BENCH_REDIS_URL / BENCH_DATABASE_URL), then:

1. ceiling A: pipelined XADD of the N pre-encoded events, one process, as the client packs them
   (entries of 500 newline-separated events), and, for reference, one event per entry;
2. ceiling B: COPY of the same N rows straight into ``metric_events``, made as ingest makes it;
3. the client alone: N metric events emitted and flushed to Redis while the worker process
   (``promptloop worker -c 1``) is stopped; then drain only: that backlog drained by the worker
   once it continues;
4. end to end: the client emits N metric events while that worker drains them into PostgreSQL;
   time from the first emit to the last row committed;
5. emit cost: the client's ``metric(...)`` per call on the caller's thread, next to one synchronous
   XADD round trip.

2-4 run in ``--rounds`` interleaved rounds and each is reported as its best round, so that a noisy
neighbour's burst does not land on one measure only. Run it on a quiet machine; it prints ratios so
that numbers from noisy machines still compare. On a small machine the end-to-end figure also pays
for the producer: the client's emits and encoding share the cores with the worker and PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from promptloop_client import Client  # noqa: E402
from shared.constants import GROUP, STREAM  # noqa: E402
from shared.db import make_engine  # noqa: E402
from shared.local import PostgresServer, RedisServer, free_port  # noqa: E402
from shared.migrate import upgrade  # noqa: E402
from shared.events import parse_event  # noqa: E402
from shared.store import copy_rows, event_row  # noqa: E402


def metric_tuple(i: int) -> tuple:
    return ("metric", time.time(), "baseline", "3b", float(i), True, 0.8, 1800, 250, "entity_extraction")


def xadd_ceiling(r: redis.Redis, payloads: list[bytes], per_entry: int) -> float:
    """Events/s appended with XADD, ``per_entry`` events per entry, 500 events per round trip."""
    r.delete("bench:xadd")
    started = time.perf_counter()
    for i in range(0, len(payloads), 500):
        pipe = r.pipeline(transaction=False)
        chunk = payloads[i:i + 500]
        for j in range(0, len(chunk), per_entry):
            pipe.xadd("bench:xadd", {"b": b"\n".join(chunk[j:j + per_entry])})
        pipe.execute()
    elapsed = time.perf_counter() - started
    r.delete("bench:xadd")
    return len(payloads) / elapsed


def copy_ceiling(engine, payloads: list[bytes]) -> float:
    """Rows/s of one COPY of the rows ingest would write for ``payloads`` (prepared untimed), made
    the way ingest makes it (``copy_rows``: binary), so the ceiling moves with ingest's own COPY."""
    n = len(payloads)
    rows = [event_row(parse_event(p, 1 << 20)) for p in payloads]
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE metric_events"))
    started = time.perf_counter()
    with engine.begin() as conn:
        copy_rows(conn, "metric_events", "metric", rows)
    elapsed = time.perf_counter() - started
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE metric_events"))
    return n / elapsed


def count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM metric_events")).scalar_one()


def start_worker(env: dict, workdir: Path) -> subprocess.Popen:
    log = open(workdir / "worker.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "cli.main", "worker", "-Q", "ingest", "-c", "1", "-n", "bench@%h",
                             "--loglevel", "WARNING"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_rows(engine, r: redis.Redis, n: int, timeout: float = 600) -> float:
    """``perf_counter()`` when ``n`` rows are in ``metric_events``.

    Waits on Redis, then counts once: ingest acknowledges an entry only after its rows commit, so
    once the group has read everything and nothing is pending, the rows are there. Polling
    ``count(*)`` instead (a table scan: ~40 ms at 100k rows on a 2-core machine, every 20 ms) kept
    PostgreSQL busy counting while the worker needed it for COPY, which the COPY ceiling never paid.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all_acknowledged(r):
            done = time.perf_counter()
            if count(engine) >= n:
                return done
        time.sleep(0.02)
    raise SystemExit(f"timed out: {count(engine)} of {n} rows")


def all_acknowledged(r: redis.Redis) -> bool:
    """Whether the ingest group has read the whole stream and acknowledged every entry it read."""
    try:
        groups = {g["name"].decode(): g for g in r.xinfo_groups(STREAM)}
        last = r.xinfo_stream(STREAM)["last-generated-id"]
    except redis.ResponseError:  # no stream or group yet
        return False
    group = groups.get(GROUP)
    return group is not None and group["pending"] == 0 and group["last-delivered-id"] == last


def wait_worker_ready(r: redis.Redis, timeout: float = 60) -> None:
    # The worker's consumer joins the group on its first drain.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if r.exists(STREAM) and r.xinfo_consumers(STREAM, GROUP):
                return
        except redis.ResponseError:
            pass
        time.sleep(0.05)
    raise SystemExit("worker did not start draining")


def producer_then_drain(engine, r: redis.Redis, client: Client, n: int, worker: subprocess.Popen) -> tuple[float, float]:
    """Events/s of the client alone (emit and flush, the worker stopped), then of the worker
    draining that backlog once it continues."""
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE metric_events"))
    os.killpg(worker.pid, signal.SIGSTOP)
    try:
        started = time.perf_counter()
        emit(client, n)
        producer = n / (time.perf_counter() - started)
    finally:
        started = time.perf_counter()
        os.killpg(worker.pid, signal.SIGCONT)
    return producer, n / (wait_rows(engine, r, n) - started)


def end_to_end(engine, r: redis.Redis, client: Client, n: int) -> float:
    """Events/s from the client's first emit to the last row committed by the running worker."""
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE metric_events"))
    started = time.perf_counter()
    emit(client, n)
    return n / (wait_rows(engine, r, n) - started)


def emit(client: Client, n: int) -> None:
    """``n`` metric events through the client, flushed to Redis."""
    for i in range(n):
        client.metric("baseline", "3b", float(i), True, quality=0.8, tokens_in=1800, tokens_out=250,
                      family="entity_extraction")
    if not client.flush(120):
        raise SystemExit("the client could not flush to Redis")


def emit_cost(client: Client, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        client.metric("baseline", "3b", 12.5, True, family="entity_extraction")
    return (time.perf_counter() - started) / n * 1e6


def xadd_round_trip(r: redis.Redis, payload: bytes, n: int = 2000) -> float:
    started = time.perf_counter()
    for _ in range(n):
        r.xadd("bench:rtt", {"e": payload})
    elapsed = time.perf_counter() - started
    r.delete("bench:rtt")
    return elapsed / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description="promptloop ingest benchmark")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the COPY, drain and end-to-end measures; "
                        "each is reported as its best round")
    args = parser.parse_args()
    n = args.events
    workdir = Path(tempfile.mkdtemp(prefix="promptloop-bench-"))
    servers = []
    redis_url = os.environ.get("BENCH_REDIS_URL")
    db_url = os.environ.get("BENCH_DATABASE_URL")
    if not redis_url:
        servers.append(RedisServer(workdir / "redis", free_port()).start())
        redis_url = servers[-1].url
    if not db_url:
        servers.append(PostgresServer(workdir / "pg", free_port()).start())
        db_url = servers[-1].url
    r = redis.Redis.from_url(redis_url)
    engine = make_engine(db_url)
    upgrade(engine)
    env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": db_url, "PROMPTLOOP_DATA_DIR": str(workdir),
           "PROMPTLOOP_DRAIN_INTERVAL_S": "0.2"}
    procs = []
    try:
        payloads = [Client._encode(metric_tuple(i)) for i in range(n)]
        xadd_rate = xadd_ceiling(r, payloads, 500)
        xadd_single_rate = xadd_ceiling(r, payloads, 1)
        procs.append(start_worker(env, workdir))
        procs.append(subprocess.Popen([sys.executable, "-m", "cli.main", "beat", "--loglevel", "WARNING"], cwd=ROOT,
                                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))
        r.xadd(STREAM, {"b": payloads[0]})  # the worker's consumer joins the group on its first drain
        wait_worker_ready(r)
        wait_rows(engine, r, 1)
        rounds = {"copy": [], "producer": [], "drain": [], "e2e": []}
        client = Client(redis_url)
        for _ in range(args.rounds):  # interleaved, so a noisy neighbour hits every measure alike
            rounds["copy"].append(copy_ceiling(engine, payloads))
            producer, drain = producer_then_drain(engine, r, client, n, procs[0])
            rounds["producer"].append(producer)
            rounds["drain"].append(drain)
            rounds["e2e"].append(end_to_end(engine, r, client, n))
        copy_rate, producer_rate, drain_rate, e2e_rate = (max(rounds[k]) for k in ("copy", "producer", "drain", "e2e"))

        # 5. the caller's cost per emit, flusher running, next to one synchronous XADD.
        cost = min(emit_cost(client, 20_000) for _ in range(5))
        client.flush(120)
        rtt = min(xadd_round_trip(r, payloads[0]) for _ in range(3))
        client.close(30)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        for s in reversed(servers):
            s.stop()

    print(f"\npromptloop ingest bench: {n:,} metric events, {os.cpu_count()} cores, best of {args.rounds} "
          "interleaved rounds\n")
    print(f"{'measure':<58}{'value':>14}{'ratio':>12}")
    print(f"{'ceiling A: pipelined XADD alone, 500 events/entry (ev/s)':<58}{xadd_rate:>14,.0f}")
    print(f"{'  reference: pipelined XADD, 1 event/entry (events/s)':<58}{xadd_single_rate:>14,.0f}")
    print(f"{'ceiling B: COPY of the same rows alone (rows/s)':<58}{copy_rate:>14,.0f}")
    print(f"{'end to end: client -> Redis -> 1 worker -> PostgreSQL (ev/s)':<58}{e2e_rate:>14,.0f}"
          f"{e2e_rate / copy_rate:>11.2f}x of COPY")
    print(f"{'drain only: backlog -> 1 worker -> PostgreSQL (events/s)':<58}{drain_rate:>14,.0f}"
          f"{drain_rate / copy_rate:>11.2f}x of COPY")
    print(f"{'  bound: the client alone, emit + flush, 1 thread (events/s)':<58}{producer_rate:>14,.0f}"
          f"{producer_rate / copy_rate:>11.2f}x of COPY")
    for name, key in (("COPY", "copy"), ("client alone", "producer"), ("drain only", "drain"),
                      ("end to end", "e2e")):
        print(f"  rounds, {name} (/s): " + ", ".join(f"{v:,.0f}" for v in rounds[key]))
    print(f"{'client emit, caller thread (us/call)':<58}{cost:>14.2f}")
    print(f"{'one synchronous XADD round trip (us)':<58}{rtt:>14.2f}{rtt / cost:>11.1f}x emit")


if __name__ == "__main__":
    main()
