"""What ``promptloop status`` reports: the stream's state and what reached the database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import redis
from sqlalchemy import Engine, func, literal, select, union_all

from .constants import GROUP, STREAM
from .models import DeadLetter, EvaluationBatch, EvaluationScore, FeedbackEvent, MetricEvent, ProductionExample


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def stream_status(r: redis.Redis, stream: str = STREAM, group: str = GROUP) -> dict:
    """Length of the stream, and the ingest group's pending entries, lag and consumers."""
    status = {"stream": stream, "length": r.xlen(stream), "pending": 0, "lag": None, "consumers": 0}
    if not r.exists(stream):
        return status
    for g in r.xinfo_groups(stream):
        if _text(g["name"]) == group:
            status.update(pending=g["pending"], lag=g.get("lag"), consumers=g["consumers"],
                          last_delivered=_text(g["last-delivered-id"]))
    return status


def event_counts(engine: Engine, hours: float = 1.0) -> list[dict]:
    """Events received in the last ``hours`` per variant x model, by kind."""
    since = datetime.now(timezone.utc) - timedelta(hours=hours)
    parts = [
        select(literal(kind).label("kind"), t.variant, t.model, func.count().label("n"))
        .where(t.ts >= since).group_by(t.variant, t.model)
        for kind, t in (("metric", MetricEvent), ("feedback", FeedbackEvent), ("example", ProductionExample))
    ]
    rows: dict[tuple, dict] = {}
    with engine.connect() as conn:
        for kind, variant, model, n in conn.execute(union_all(*parts)):
            row = rows.setdefault((variant, model), {"variant": variant, "model": model,
                                                      "metric": 0, "feedback": 0, "example": 0})
            row[kind] = n
    return sorted(rows.values(), key=lambda r: (r["variant"], r["model"]))


def totals(engine: Engine) -> dict:
    """All-time row counts of the event tables and the dead letters."""
    with engine.connect() as conn:
        return {name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for name, t in (("metrics", MetricEvent), ("feedback", FeedbackEvent),
                                ("examples", ProductionExample), ("dead_letters", DeadLetter))}


def recent_dead_letters(engine: Engine, limit: int = 5) -> list[dict]:
    """The newest dead letters, with their reasons."""
    with engine.connect() as conn:
        rows = conn.execute(select(DeadLetter.id, DeadLetter.stream_id, DeadLetter.reason, DeadLetter.delivery_count)
                            .order_by(DeadLetter.id.desc()).limit(limit))
        return [dict(r._mapping) for r in rows]


def recent_batches(engine: Engine, limit: int = 3) -> list[dict]:
    """The newest evaluation batches with their progress."""
    done = (select(EvaluationScore.batch_id, func.count().label("done"))
            .group_by(EvaluationScore.batch_id).subquery())
    query = (select(EvaluationBatch.id, EvaluationBatch.status, EvaluationBatch.n_items, EvaluationBatch.created_at,
                    func.coalesce(done.c.done, 0).label("done"))
             .outerjoin(done, done.c.batch_id == EvaluationBatch.id)
             .order_by(EvaluationBatch.id.desc()).limit(limit))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]
