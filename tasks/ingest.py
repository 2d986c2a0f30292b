"""Ingest tasks: drain the event stream into SQL."""

from __future__ import annotations

import dataclasses

from shared.db import get_engine
from shared.ingest import Ingestor, drain_in_slot
from shared.rediscon import get_redis
from shared.settings import get_settings
from workers.app import app
from workers.queues import Queue

_ingestor: Ingestor | None = None


def _process_ingestor() -> Ingestor:
    # One consumer per worker process (its name holds the pid), created after fork.
    global _ingestor
    if _ingestor is None or _ingestor.redis is not get_redis():
        _ingestor = Ingestor.from_settings(get_redis(), get_engine(), get_settings())
    return _ingestor


@app.task(
    name="tasks.ingest.drain_events",
    queue=Queue.INGEST.value,
    # Safe to run twice: inserts are keyed on event_id, and acks happen after commit.
    acks_late=True,
    ignore_result=False,
)
def drain_events() -> dict:
    """Drain the stream for up to the configured budget; continue in a new task if a backlog remains.

    No autoretry: on a Redis or database outage the task fails (visible in Flower) and beat's next
    tick is the retry, so retries never pile up during a long outage.
    """
    settings = get_settings()
    stats = drain_in_slot(_process_ingestor(), settings.ingest_parallel, settings.ingest_drain_budget_s)
    if stats is None:
        return {"skipped": "all drain slots busy"}
    if stats.backlog:
        drain_events.apply_async()
    return dataclasses.asdict(stats)
