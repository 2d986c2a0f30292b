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


def print_status(console: Console, s: Settings, hours: float) -> None:
    """Print the stream, database and worker state; each part says so when its service is down."""
    from shared.db import get_engine
    from shared.rediscon import get_redis
    from shared.status import event_counts, recent_dead_letters, stream_status, totals

    try:
        st = stream_status(get_redis(s))
        console.print(f"[bold]stream[/bold] {st['stream']}: {st['length']} entries, {st['pending']} pending, "
                      f"lag {st['lag']}, {st['consumers']} consumers")
    except redis.RedisError as exc:
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
    except SQLAlchemyError as exc:
        console.print(f"[red]database unavailable: {exc.__class__.__name__}: {exc}[/red]")

    workers = live_workers()
    if workers is None:
        console.print("[red]workers: broker unreachable[/red]")
    else:
        console.print(f"[bold]workers[/bold] {len(workers)} live: {', '.join(workers) or 'none'}")
