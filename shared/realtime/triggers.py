"""The real-time optimizer's triggers, read from SQL: degradation, feedback volume, schedule.

Each ``*_incidents`` function returns the family x model pairs whose trigger holds now, with the numbers
behind it; ``shared.realtime.optimizer.tick`` decides which of them start an optimization.

- **degradation**: the last ``degradation_window_minutes`` of metric events against the
  ``degradation_baseline_hours`` before them. Quality mean when both periods have ``min_samples`` events
  with a quality, else success rate when both have ``min_samples`` events; it holds when the recent value
  is more than ``performance_threshold`` (relative) below the baseline's. Only metric events that name
  their family count (the LightRAG adapter always does).
- **feedback**: feedback items received since the family x model's last optimization (its newest run or
  started trigger) reach ``feedback_threshold``. Feedback events carry a variant name and a model but no
  family, and names repeat across families (``baseline`` and ``DSPY_A`` exist in each): an item is
  attributed to the families having a variant of that name on that model, split in proportion to each
  family's metric events of that variant and model over the last ``degradation_baseline_hours`` (evenly
  when there are none).
  The count is therefore an estimate wherever a name is shared.
- **schedule**: no optimization of the family x model for ``optimization_interval_hours`` (counted from
  its first metric event when it never had one) while it had ``min_samples`` metric events in that time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine, case, func, select

from ..families import PromptFamily
from ..models import FeedbackEvent, MetricEvent, OptimizationRun, OptimizationTrigger, PromptVariant
from ..settings import Settings

#: Events each period needs before degradation or schedule is judged at all.
MIN_SAMPLES = 20
FAMILIES = {f.value for f in PromptFamily}


@dataclass
class Incident:
    family: str
    model: str
    kind: str  # degradation | feedback | schedule | manual
    reason: str
    evidence: dict = field(default_factory=dict)


def utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes (stored in UTC); PostgreSQL aware ones."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def last_optimized(engine: Engine) -> dict[tuple[str, str], datetime]:
    """(family, model) -> when its newest optimization run was created or trigger started."""
    out: dict[tuple[str, str], datetime] = {}
    with engine.connect() as conn:
        rows = list(conn.execute(select(OptimizationRun.family, OptimizationRun.model,
                                        func.max(OptimizationRun.created_at))
                                 .group_by(OptimizationRun.family, OptimizationRun.model)))
        rows += list(conn.execute(select(OptimizationTrigger.family, OptimizationTrigger.model,
                                         func.max(OptimizationTrigger.created_at))
                                  .where(OptimizationTrigger.status == "started")
                                  .group_by(OptimizationTrigger.family, OptimizationTrigger.model)))
    for family, model, at in rows:
        at = utc(at)
        if at is not None and ((family, model) not in out or at > out[(family, model)]):
            out[(family, model)] = at
    return out


def _usable(family: str | None, model: str, settings: Settings) -> bool:
    return family in FAMILIES and model in settings.models


def degradation_incidents(engine: Engine, settings: Settings, now: datetime | None = None,
                          min_samples: int = MIN_SAMPLES) -> list[Incident]:
    now = now or now_utc()
    w_start = now - timedelta(minutes=settings.degradation_window_minutes)
    b_start = w_start - timedelta(hours=settings.degradation_baseline_hours)
    recent = MetricEvent.ts >= w_start
    ok = case((MetricEvent.success, 1.0), else_=0.0)
    q = (select(MetricEvent.family, MetricEvent.model,
                func.sum(case((recent, 1), else_=0)), func.sum(case((recent, 0), else_=1)),
                func.sum(case((recent & MetricEvent.quality.is_not(None), 1), else_=0)),
                func.sum(case((~recent & MetricEvent.quality.is_not(None), 1), else_=0)),
                func.avg(case((recent, MetricEvent.quality))), func.avg(case((~recent, MetricEvent.quality))),
                func.avg(case((recent, ok))), func.avg(case((~recent, ok))))
         .where(MetricEvent.ts >= b_start, MetricEvent.ts <= now, MetricEvent.family.is_not(None))
         .group_by(MetricEvent.family, MetricEvent.model))
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    found = []
    for family, model, n_r, n_b, nq_r, nq_b, q_r, q_b, s_r, s_b in rows:
        if not _usable(family, model, settings):
            continue
        if nq_r >= min_samples and nq_b >= min_samples:
            metric, value, base = "quality", float(q_r), float(q_b)
        elif n_r >= min_samples and n_b >= min_samples:
            metric, value, base = "success_rate", float(s_r), float(s_b)
        else:
            continue
        drop = (base - value) / base if base > 0 else 0.0
        if drop > settings.performance_threshold:
            found.append(Incident(family, model, "degradation",
                                  f"{metric} {value:.3f} over the last {settings.degradation_window_minutes:g} min is "
                                  f"{drop:.0%} below its baseline {base:.3f} (threshold "
                                  f"{settings.performance_threshold:.0%})",
                                  {"metric": metric, "recent": value, "baseline": base, "drop": drop,
                                   "n_recent": int(n_r), "n_baseline": int(n_b), "window_start": w_start.isoformat(),
                                   "baseline_start": b_start.isoformat()}))
    return found


def _feedback_since(conn, since: datetime, now: datetime) -> dict[tuple[str, str], int]:
    rows = conn.execute(select(FeedbackEvent.variant, FeedbackEvent.model, func.count())
                        .where(FeedbackEvent.ts > since, FeedbackEvent.ts <= now)
                        .group_by(FeedbackEvent.variant, FeedbackEvent.model))
    return {(v, m): n for v, m, n in rows}


def feedback_incidents(engine: Engine, settings: Settings, now: datetime | None = None) -> list[Incident]:
    now = now or now_utc()
    last = last_optimized(engine)
    epoch = datetime(2000, 1, 1, tzinfo=timezone.utc)
    with engine.connect() as conn:
        variants = conn.execute(select(PromptVariant.family, PromptVariant.model, PromptVariant.name)
                                .where(PromptVariant.status != "trial").distinct()).all()
        owners: dict[tuple[str, str], list[str]] = {}  # (variant name, model) -> families having it
        for family, model, name in variants:
            if _usable(family, model, settings):
                owners.setdefault((name, model), []).append(family)
        pairs = sorted({(family, model) for (_, model), fams in owners.items() for family in fams})
        since = {p: last.get(p, epoch) for p in pairs}
        # One grouped scan per distinct cut-off (pairs never optimized share one), not one per pair.
        counted = {cut: _feedback_since(conn, cut, now) for cut in set(since.values())}
        # Attribution weights: each family's calls of a name over the baseline period (indexed on ts).
        recent = now - timedelta(hours=settings.degradation_baseline_hours)
        traffic = {(f, v, m): n for f, v, m, n in conn.execute(
            select(MetricEvent.family, MetricEvent.variant, MetricEvent.model, func.count())
            .where(MetricEvent.ts >= recent, MetricEvent.ts <= now, MetricEvent.family.is_not(None))
            .group_by(MetricEvent.family, MetricEvent.variant, MetricEvent.model))}
    found = []
    for family, model in pairs:
        fb = {name: n for (name, m), n in counted[since[(family, model)]].items()
              if m == model and family in owners.get((name, m), ())}
        count, shared = 0.0, {}
        for name, n in fb.items():
            fams = owners[(name, model)]
            total = sum(traffic.get((f, name, model), 0) for f in fams)
            share = traffic.get((family, name, model), 0) / total if total else 1 / len(fams)
            count += n * share
            if len(fams) > 1:
                shared[name] = round(share, 3)
        if count >= settings.feedback_threshold:
            cut = since[(family, model)]
            when = "and never optimized" if cut == epoch else f"since {cut:%Y-%m-%d %H:%M}"
            found.append(Incident(family, model, "feedback",
                                  f"{count:.0f} feedback items {when} (threshold {settings.feedback_threshold})",
                                  {"feedback": round(count, 2), "by_variant": fb, "shared_names": shared,
                                   "since": cut.isoformat()}))
    return found


def schedule_incidents(engine: Engine, settings: Settings, now: datetime | None = None,
                       min_samples: int = MIN_SAMPLES) -> list[Incident]:
    now = now or now_utc()
    interval = timedelta(hours=settings.optimization_interval_hours)
    last = last_optimized(engine)
    with engine.connect() as conn:
        rows = conn.execute(select(MetricEvent.family, MetricEvent.model, func.min(MetricEvent.ts),
                                   func.sum(case((MetricEvent.ts >= now - interval, 1), else_=0)))
                            .where(MetricEvent.family.is_not(None), MetricEvent.ts <= now)
                            .group_by(MetricEvent.family, MetricEvent.model)).all()
    found = []
    for family, model, first, recent in rows:
        if not _usable(family, model, settings) or (recent or 0) < min_samples:
            continue
        since = last.get((family, model)) or utc(first)
        if now - since >= interval:
            found.append(Incident(family, model, "schedule",
                                  f"not optimized since {since:%Y-%m-%d %H:%M} "
                                  f"({settings.optimization_interval_hours:g} h "
                                  f"interval), {recent} calls in that time",
                                  {"since": since.isoformat(), "calls": int(recent)}))
    return found
