"""Windowed metrics per family x variant x model, computed in SQL from the ingested events.

One query over ``metric_events`` (count, success rate, latency mean and nearest-rank p95, quality,
tokens) and one over ``feedback_events`` (feedback carries no family: its mean is that of the
variant x model, shown on every family row of that variant x model). The p95 uses window functions
(``ROW_NUMBER``/``COUNT OVER``), so SQLite and PostgreSQL give the same number.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine, case, func, select

from ..models import FeedbackEvent, MetricEvent

#: The metrics an alert rule may name, and the sample count its ``min_samples`` is checked against.
METRICS = {
    "count": "count",
    "success_rate": "count",
    "error_rate": "count",
    "latency_mean": "count",
    "latency_p95": "count",
    "quality_mean": "quality_n",
    "feedback_mean": "feedback_n",
    "tokens_mean": "tokens_n",
}


def _window(minutes: float, now: datetime | None) -> tuple[datetime, datetime]:
    until = now or datetime.now(timezone.utc)
    return until - timedelta(minutes=minutes), until


def _empty(family, variant, model) -> dict:
    return {"family": family, "variant": variant, "model": model, "count": 0, "success_rate": None,
            "error_rate": None, "latency_mean": None, "latency_p95": None, "quality_mean": None, "quality_n": 0,
            "tokens_in": 0, "tokens_out": 0, "tokens_mean": None, "tokens_n": 0,
            "feedback_mean": None, "feedback_n": 0}


def _call_rows(engine: Engine, since, until, family, model) -> list[dict]:
    m = MetricEvent
    where = [m.ts >= since, m.ts <= until]
    if family is not None:
        where.append(m.family == family)
    if model is not None:
        where.append(m.model == model)
    part = (m.family, m.variant, m.model)
    tokens = func.coalesce(m.tokens_in, 0) + func.coalesce(m.tokens_out, 0)
    has_tokens = case(((m.tokens_in.is_not(None)) | (m.tokens_out.is_not(None)), tokens), else_=None)
    ranked = select(
        *part, m.latency_ms.label("lat"), case((m.success, 1.0), else_=0.0).label("ok"), m.quality.label("q"),
        m.tokens_in.label("tin"), m.tokens_out.label("tout"), has_tokens.label("tok"),
        func.row_number().over(partition_by=part, order_by=m.latency_ms).label("rn"),
        func.count().over(partition_by=part).label("n"),
    ).where(*where).subquery()
    c = ranked.c
    query = select(
        c.family, c.variant, c.model, func.count(), func.avg(c.ok), func.avg(c.lat),
        func.min(case((c.rn >= 0.95 * c.n, c.lat), else_=None)),
        func.count(c.q), func.avg(c.q), func.sum(c.tin), func.sum(c.tout), func.count(c.tok), func.avg(c.tok),
    ).group_by(c.family, c.variant, c.model)
    rows = []
    with engine.connect() as conn:
        for fam, var, mod, n, ok, lat, p95, qn, q, tin, tout, tn, tmean in conn.execute(query):
            row = _empty(fam, var, mod)
            row.update(count=n, success_rate=float(ok), error_rate=1.0 - float(ok), latency_mean=float(lat),
                       latency_p95=float(p95), quality_n=qn, quality_mean=None if q is None else float(q),
                       tokens_in=int(tin or 0), tokens_out=int(tout or 0), tokens_n=tn,
                       tokens_mean=None if tmean is None else float(tmean))
            rows.append(row)
    return rows


def _feedback(engine: Engine, since, until, model) -> dict[tuple, tuple[int, float]]:
    f = FeedbackEvent
    where = [f.ts >= since, f.ts <= until] + ([f.model == model] if model is not None else [])
    with engine.connect() as conn:
        return {(v, mo): (n, float(mean)) for v, mo, n, mean in conn.execute(
            select(f.variant, f.model, func.count(), func.avg(f.score)).where(*where).group_by(f.variant, f.model))}


def window_metrics(engine: Engine, minutes: float, now: datetime | None = None, family: str | None = None,
                   model: str | None = None) -> list[dict]:
    """One dict per family x variant x model with calls or feedback in the last ``minutes`` (to ``now``).

    Keys: family, variant, model, count, success_rate, error_rate, latency_mean, latency_p95 (ms),
    quality_mean and quality_n (calls that reported a quality), tokens_in, tokens_out (sums),
    tokens_mean and tokens_n (calls that reported tokens), feedback_mean and feedback_n. Feedback of a
    variant x model without calls in the window gets a row with ``family`` None (unless ``family``
    is asked for). Sorted by family, variant, model.
    """
    since, until = _window(minutes, now)
    rows = _call_rows(engine, since, until, family, model)
    feedback = _feedback(engine, since, until, model)
    seen = set()
    for row in rows:
        key = (row["variant"], row["model"])
        if key in feedback:
            seen.add(key)
            row["feedback_n"], row["feedback_mean"] = feedback[key]
    if family is None:
        for (variant, mod), (n, mean) in feedback.items():
            if (variant, mod) not in seen:
                rows.append({**_empty(None, variant, mod), "feedback_n": n, "feedback_mean": mean})
    return sorted(rows, key=lambda r: (r["family"] or "", r["variant"], r["model"]))
