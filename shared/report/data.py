"""What ``promptloop report`` shows, read with plain SQL: lists of dicts, every time an aware UTC datetime.

Metric events are aggregated in SQL into at most ``MAX_BUCKETS`` time buckets per series, so the report
reads a few thousand rows however many events the table holds. SQLite returns naive datetimes (stored
as UTC) and PostgreSQL aware ones: ``utc`` makes both aware UTC.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Engine, Float, Integer, case, cast, func, inspect, literal, select

from ..models import (
    Alert, AlertRule, MetricEvent, OptimizationRun, OptimizationTrial, PromptVariant, Rollout, RolloutTransition,
)

MAX_BUCKETS = 120
#: Fewer buckets when there are few events: about this many events per bucket (all series together).
EVENTS_PER_BUCKET = 40
MIN_BUCKETS = 12
#: Bucket widths in seconds: the smallest giving at most MAX_BUCKETS buckets over the data's span is used.
WIDTHS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
          2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400)


def utc(value: datetime | None) -> datetime | None:
    """``value`` as an aware UTC datetime (a naive one is taken as UTC, as SQLite stores it)."""
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def bucket_width(span_s: float, n_events: int | None = None) -> int:
    """The smallest of ``WIDTHS`` giving fewer buckets than MAX_BUCKETS (fewer still for few events)."""
    most = MAX_BUCKETS if n_events is None else min(MAX_BUCKETS, max(MIN_BUCKETS, n_events // EVENTS_PER_BUCKET))
    for width in WIDTHS:
        if span_s / width < most:
            return width
    return WIDTHS[-1] * (int(span_s / WIDTHS[-1] / most) + 1)


def _epoch(engine: Engine, column):
    """Seconds since 1970 of a timestamp column, in the engine's own SQL."""
    if engine.dialect.name == "sqlite":  # julianday's doubles err by ~50 us: rounded to ms, a boundary stays exact
        return func.round((func.julianday(column) - 2440587.5) * 86400.0, 3)
    return cast(func.extract("epoch", column), Float)


def _bucket(engine: Engine, column, t0: float, width: int):
    """The bucket index of each row: floor((epoch - t0) / width)."""
    offset = (_epoch(engine, column) - literal(t0, Float)) / literal(float(width), Float)
    if engine.dialect.name == "sqlite":  # offsets are >= 0, so CAST's truncation is floor (floor() is optional)
        return cast(offset, Integer)
    return cast(func.floor(offset), Integer)


def _since(since: datetime | None) -> list:
    # UTC for both: SQLite compares the stored UTC text with the bound value written without its offset.
    return [MetricEvent.ts >= since.astimezone(timezone.utc)] if since is not None else []


def metric_series(engine: Engine, since: datetime | None = None) -> dict:
    """Per family x variant x model and time bucket: calls, quality mean, latency mean, success rate.

    ``{"width_s", "start", "end", "rows": [{"family", "variant", "model", "t", "n", "quality", "n_quality",
    "latency_ms", "success"}]}``, ``t`` the bucket's middle; ``rows`` is empty when there are no events.
    """
    where = _since(since)
    with engine.connect() as conn:
        lo, hi, n = conn.execute(select(func.min(MetricEvent.ts), func.max(MetricEvent.ts), func.count())
                                 .where(*where)).one()
        if lo is None:
            return {"width_s": None, "start": None, "end": None, "rows": []}
        lo, hi = utc(lo), utc(hi)
        t0 = float(int(lo.timestamp()))
        width = bucket_width((hi - lo).total_seconds(), n)
        bucket = _bucket(engine, MetricEvent.ts, t0, width).label("bucket")
        query = (select(MetricEvent.family, MetricEvent.variant, MetricEvent.model, bucket,
                        func.count().label("n"), func.avg(MetricEvent.quality).label("quality"),
                        func.count(MetricEvent.quality).label("n_quality"),
                        func.avg(MetricEvent.latency_ms).label("latency_ms"),
                        func.avg(case((MetricEvent.success, 1.0), else_=0.0)).label("success"))
                 .where(*where).group_by(MetricEvent.family, MetricEvent.variant, MetricEvent.model, bucket)
                 .order_by(bucket))
        rows = conn.execute(query).mappings().all()
    return {"width_s": width, "start": lo, "end": hi,
            "rows": [{**r, "t": datetime.fromtimestamp(t0 + (r["bucket"] + 0.5) * width, timezone.utc),
                      "quality": None if r["quality"] is None else float(r["quality"]),
                      "latency_ms": float(r["latency_ms"]), "success": float(r["success"])} for r in rows]}


def variant_summary(engine: Engine, series: dict) -> list[dict]:
    """Every registered variant (trials left out) with the totals of its buckets in ``series``
    (``metric_series``'s result: the events are not read twice)."""
    stats: dict[tuple, dict] = {}
    for r in series["rows"]:
        s = stats.setdefault((r["family"], r["variant"], r["model"]),
                             {"n": 0, "nq": 0, "q": 0.0, "lat": 0.0, "ok": 0.0})
        s["n"] += r["n"]
        s["nq"] += r["n_quality"]
        s["q"] += (r["quality"] or 0.0) * r["n_quality"]
        s["lat"] += r["latency_ms"] * r["n"]
        s["ok"] += r["success"] * r["n"]
    stats = {k: {"n": s["n"], "quality": s["q"] / s["nq"] if s["nq"] else None, "latency_ms": s["lat"] / s["n"],
                 "success": s["ok"] / s["n"]} for k, s in stats.items()}
    with engine.connect() as conn:
        variants = conn.execute(select(PromptVariant.id, PromptVariant.family, PromptVariant.model, PromptVariant.name,
                                       PromptVariant.status, PromptVariant.created_at)
                                .where(PromptVariant.status != "trial")
                                .order_by(PromptVariant.family, PromptVariant.model, PromptVariant.id)).all()
    out = []
    for v in variants:
        s = stats.pop((v.family, v.name, v.model), None)
        out.append({"id": v.id, "family": v.family, "model": v.model, "name": v.name, "status": v.status,
                    "created_at": utc(v.created_at), "calls": s["n"] if s else 0,
                    "quality": s["quality"] if s else None, "latency_ms": s["latency_ms"] if s else None,
                    "success": s["success"] if s else None})
    for (family, name, model), s in sorted(stats.items(), key=lambda kv: tuple(str(k) for k in kv[0])):
        out.append({"id": None, "family": family, "model": model, "name": name, "status": "(events only)",
                    "created_at": None, "calls": s["n"], "quality": s["quality"],
                    "latency_ms": s["latency_ms"], "success": s["success"]})
    return out


def rollouts(engine: Engine, limit: int = 10) -> list[dict]:
    """The newest rollouts with their candidate and incumbent names and all their transitions, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(Rollout).order_by(Rollout.id.desc()).limit(limit)).all()
        ids = [r.id for r in rows]
        steps = conn.execute(select(RolloutTransition).where(RolloutTransition.rollout_id.in_(ids))
                             .order_by(RolloutTransition.rollout_id, RolloutTransition.version)).all()
        names = dict(conn.execute(select(PromptVariant.id, PromptVariant.name).where(
            PromptVariant.id.in_({r.candidate_id for r in rows} | {r.incumbent_id for r in rows}))).all())
    by_rollout: dict[int, list[dict]] = {}
    for t in steps:
        by_rollout.setdefault(t.rollout_id, []).append(
            {"version": t.version, "action": t.action, "from_status": t.from_status, "to_status": t.to_status,
             "from_percentage": t.from_percentage, "to_percentage": t.to_percentage, "actor": t.actor,
             "reason": t.reason, "at": utc(t.created_at)})
    return [{"id": r.id, "family": r.family, "model": r.model, "candidate": names.get(r.candidate_id, "?"),
             "incumbent": names.get(r.incumbent_id, "?"), "status": r.status, "percentage": r.percentage,
             "hold_s": r.hold_s, "created_at": utc(r.created_at), "finished_at": utc(r.finished_at),
             "transitions": by_rollout.get(r.id, [])} for r in rows]


def optimizations(engine: Engine, limit: int = 60) -> list[dict]:
    """The newest runs (``run_history``'s fields) with their trials' scores, oldest first."""
    from ..optimize.history import run_history

    runs = run_history(engine, limit=limit)
    with engine.connect() as conn:
        trials = conn.execute(select(OptimizationTrial.run_id, OptimizationTrial.trial, OptimizationTrial.score)
                              .where(OptimizationTrial.run_id.in_([r["id"] for r in runs]))
                              .order_by(OptimizationTrial.run_id, OptimizationTrial.trial)).all()
        finished = dict(conn.execute(select(OptimizationRun.id, OptimizationRun.finished_at)
                                     .where(OptimizationRun.id.in_([r["id"] for r in runs]))).all())
    scores: dict[int, list[float]] = {}
    for t in trials:
        scores.setdefault(t.run_id, []).append(t.score)
    return [{**r, "created_at": utc(r["created_at"]), "finished_at": utc(finished.get(r["id"])),
             "trial_scores": scores.get(r["id"], [])} for r in reversed(runs)]


def alerts(engine: Engine, limit: int = 50) -> list[dict]:
    """The newest alerts with their rule's name; empty when the table does not exist (an older schema)."""
    if not inspect(engine).has_table(Alert.__tablename__):
        return []
    with engine.connect() as conn:
        rows = conn.execute(select(Alert.__table__, AlertRule.name.label("rule"), AlertRule.metric_name,
                                   AlertRule.comparison)
                            .join(AlertRule, AlertRule.id == Alert.rule_id, isouter=True)
                            .order_by(Alert.id.desc()).limit(limit)).mappings().all()
    return [{"id": r["id"], "rule": r["rule"], "metric": r["metric_name"], "comparison": r["comparison"],
             "scope": r["scope"], "status": r["status"], "value": r["value"], "threshold": r["threshold"],
             "message": r["message"], "fired_at": utc(r["fired_at"]), "resolved_at": utc(r["resolved_at"])}
            for r in rows]
