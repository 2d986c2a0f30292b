"""Rendering ``promptloop status``."""

from __future__ import annotations

import redis
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from shared.settings import Settings


def live_workers(timeout: float = 1.0) -> list[str] | None:
    """Names of the workers answering a ping, or None if the broker is unreachable."""
    from workers.app import app

    try:
        replies = app.control.inspect(timeout=timeout).ping() or {}
    except Exception:  # kombu raises several connection types; any of them means "unknown"
        return None
    return sorted(replies)


def print_evaluations(console: Console, engine) -> None:
    """The latest evaluation batches and the best variants of the last week."""
    from shared.ranking import get_top_performing_variants
    from shared.status import recent_batches

    for b in recent_batches(engine):
        console.print(f"[bold]evaluation[/bold] batch {b['id']}: {b['status']}, {b['done']}/{b['n_items']} items, "
                      f"created {b['created_at']:%Y-%m-%d %H:%M}")
    top = get_top_performing_variants(engine, days_back=7, limit=8)
    if top:
        table = Table("variant", "family", "model", "score", "mean of scored", "n", "failed", "batch",
                      title="top variants (7 days; score counts failures as 0)")
        for t in top:
            table.add_row(t["name"], t["family"], t["model"], f"{t['score']:.3f}", f"{t['mean']:.3f} ± {t['std']:.3f}", str(t["n"]),
                          str(t["n_failed"]), str(t["batch_id"]))
        console.print(table)


def print_optimizations(console: Console, engine) -> None:
    """Optimization runs per family x model and their trend (``promptloop optimize history`` for each run)."""
    from shared.optimize.history import trends

    rows = trends(engine)
    if not rows:
        return
    table = Table("family", "model", "runs", "running", "candidates", "first gain", "latest gain", "latest",
                  title="optimizations (gain: candidate - parent on validation)")
    for t in rows:
        table.add_row(t["family"], t["model"], str(t["runs"]), str(t["running"]), str(t["candidates"]),
                      _gain(t["first_gain"]), _gain(t["latest_gain"]), str(t["latest"]))
    console.print(table)


def print_rollouts(console: Console, engine) -> None:
    """Rollouts, open ones first (``promptloop rollout status ID`` for one rollout's transitions)."""
    from shared.rollout.status import rollout_table

    rows = rollout_table(engine, limit=5)
    if not rows:
        return
    table = Table("id", "family", "model", "candidate", "over", "status", "share", "last check", title="rollouts")
    for r in rows:
        table.add_row(str(r["id"]), r["family"], r["model"], r["candidate"], r["incumbent"], r["status"],
                      f"{r['percentage']:.0%}", r["last_check"])
    console.print(table)


def print_alerts(console: Console, engine) -> None:
    """Firing alerts first, then the latest resolved ones."""
    from shared.monitoring.alerts import recent_alerts

    rows = recent_alerts(engine, limit=5)
    if not rows:
        return
    table = Table("id", "rule", "family | variant | model", "status", "value", "threshold", "fired", "resolved",
                  title="alerts")
    for a in rows:
        table.add_row(str(a["id"]), a["rule"], a["scope"].replace("|", " | "), a["status"], f"{a['value']:.4g}",
                      f"{a['threshold']:g}", f"{a['fired_at']:%m-%d %H:%M:%S}",
                      f"{a['resolved_at']:%m-%d %H:%M:%S}" if a["resolved_at"] else "")
    console.print(table)


def print_beat_and_lag(console: Console, s: Settings) -> None:
    """Beat's last tick and the age of the oldest event not yet stored (``shared.monitoring.health``)."""
    from shared.monitoring.health import INGEST_LAG_LIMIT_S, beat_limit_s, ingest_lag
    from shared.monitoring.slots import last_tick
    from shared.rediscon import get_redis

    tick, lag = last_tick(get_redis(s)), ingest_lag(get_redis(s))["lag_s"]
    beat = ("[red]beat: no tick recorded[/red]" if tick is None else
            f"[{'green' if tick[1] <= beat_limit_s(s) else 'red'}]beat: last tick {tick[1]:.1f} s ago[/]")
    console.print(f"{beat}; [{'green' if lag <= INGEST_LAG_LIMIT_S else 'red'}]ingest lag {lag:.1f} s[/]")


def _lag(stream: dict) -> str:
    """Entries not yet delivered to ingest: a number, or "unknown" when Redis can't tell (after deletions)."""
    if stream.get("lag") is not None:
        return str(stream["lag"])
    if "last_delivered" not in stream:  # no ingest group yet: every entry is still to be read
        return str(stream.get("length", 0))
    return "unknown"


def _gain(value) -> str:
    return "-" if value is None else f"{value:+.3f}"


def print_status(console: Console, s: Settings, hours: float) -> None:
    """Print the stream, database and worker state; each part says so when its service is down."""
    from shared.db import get_engine
    from shared.rediscon import get_redis
    from shared.status import event_counts, recent_dead_letters, stream_status, totals

    redis_up = True
    try:
        st = stream_status(get_redis(s))
        console.print(f"[bold]stream[/bold] {st['stream']}: {st['length']} entries, {st['pending']} pending, "
                      f"lag {_lag(st)}, {st['consumers']} consumers")
        print_beat_and_lag(console, s)
    except redis.RedisError as exc:
        redis_up = False
        console.print(f"[red]redis unreachable at {s.redis_url}: {exc}[/red]")

    engine = get_engine(s)
    try:
        t = totals(engine)
        console.print(f"[bold]database[/bold] {engine.url.render_as_string(hide_password=True)}: "
                      f"{t['metrics']} metrics, {t['feedback']} feedback, {t['examples']} examples, "
                      f"{t['dead_letters']} dead letters")
        table = Table("variant", "model", "metrics", "feedback", "examples", title=f"events in the last {hours:g} h")
        for row in event_counts(engine, hours):
            table.add_row(row["variant"], row["model"], str(row["metric"]), str(row["feedback"]), str(row["example"]))
        console.print(table)
        for letter in recent_dead_letters(engine, 3):
            console.print(f"  dead letter {letter['stream_id']}: {letter['reason']}")
        print_evaluations(console, engine)
        print_optimizations(console, engine)
        print_rollouts(console, engine)
        print_alerts(console, engine)
    except SQLAlchemyError as exc:
        from cli.errors import explain

        console.print(f"[red]{explain(exc)}[/red]")

    # With Redis down Celery's inspect retries its connection for seconds: the answer is known already.
    workers = live_workers() if redis_up else None
    if workers is None:
        console.print("[red]workers: broker unreachable[/red]")
    else:
        console.print(f"[bold]workers[/bold] {len(workers)} live: {', '.join(workers) or 'none'}")
