"""Live evidence for a rollout: each arm's calls since the rollout started, aggregated in SQL.

Both arms are measured over the same window (the rollout's start until now), from the events the
producers sent with the variant that actually served each call. Returned as (n, sum, sum of squares)
per metric, enough for a normal-approximation test without moving rows out of the database.
"""

from __future__ import annotations

from sqlalchemy import Engine, case, func, select

from ..models import FeedbackEvent, MetricEvent

Sums = tuple[int, float, float]


def _sums(n, total, squares) -> Sums:
    return int(n or 0), float(total or 0.0), float(squares or 0.0)


def arm_sums(engine: Engine, family: str, model: str, variant: str, since, until=None) -> dict[str, Sums]:
    """{metric: (n, sum, sum of squares)} for "success", "latency_ms", "quality" and "feedback" of the
    calls made from ``since`` (to ``until``, when given: what the gate would have seen then)."""
    ok = case((MetricEvent.success, 1.0), else_=0.0)
    q = MetricEvent.quality
    with engine.connect() as conn:
        m = conn.execute(select(
            func.count(), func.sum(ok), func.sum(ok * ok),
            func.sum(MetricEvent.latency_ms), func.sum(MetricEvent.latency_ms * MetricEvent.latency_ms),
            func.count(q), func.sum(q), func.sum(q * q),
        ).where(MetricEvent.family == family, MetricEvent.model == model, MetricEvent.variant == variant,
                MetricEvent.ts >= since, MetricEvent.ts <= until if until is not None else True)).one()
        f = conn.execute(select(func.count(), func.sum(FeedbackEvent.score),
                                func.sum(FeedbackEvent.score * FeedbackEvent.score))
                         .where(FeedbackEvent.model == model, FeedbackEvent.variant == variant,
                                FeedbackEvent.ts >= since,
                                FeedbackEvent.ts <= until if until is not None else True)).one()
    return {"success": _sums(m[0], m[1], m[2]), "latency_ms": _sums(m[0], m[3], m[4]),
            "quality": _sums(m[5], m[6], m[7]), "feedback": _sums(*f)}
