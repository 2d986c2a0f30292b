"""Rows the real-time optimizer reads, written straight into SQL, and a ``send`` that records its calls."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update

from shared.evaluation import register_baselines
from shared.models import FeedbackEvent, MetricEvent, OptimizationRun, OptimizationTrigger, PromptVariant

NOW = datetime.now(timezone.utc).replace(microsecond=0)
EE, RE = "entity_extraction", "relationship_extraction"


def metrics(engine, family, n, quality, minutes_ago, variant="baseline", model="m", success=True, spread=1.0):
    """``n`` calls between ``minutes_ago`` and ``minutes_ago - spread`` minutes before NOW."""
    rows = [dict(event_id=str(uuid.uuid4()), ts=NOW - timedelta(minutes=minutes_ago - spread * i / max(n, 1)),
                 family=family, variant=variant, model=model, latency_ms=100.0,
                 success=success if not callable(success) else success(i), quality=quality)
            for i in range(n)]
    with engine.begin() as conn:
        conn.execute(MetricEvent.__table__.insert(), rows)


def feedback(engine, variant, n, minutes_ago=5, model="m"):
    rows = [dict(event_id=str(uuid.uuid4()), ts=NOW - timedelta(minutes=minutes_ago), variant=variant, model=model,
                 score=0.5, feedback_type="quality") for _ in range(n)]
    with engine.begin() as conn:
        conn.execute(FeedbackEvent.__table__.insert(), rows)


def degrade(engine, family=EE):
    """A day at quality 0.8, then the last 10 minutes at 0.5 (a 37% drop)."""
    metrics(engine, family, 40, 0.8, minutes_ago=20 * 60, spread=18 * 60)
    metrics(engine, family, 25, 0.5, minutes_ago=10, spread=9)


class Sent(list):
    """``send`` for tick: records (family, model, kwargs); raises while ``fail`` is set."""

    fail: Exception | None = None

    def __call__(self, family, model, **kwargs):
        if self.fail:
            raise self.fail
        self.append((family, model, kwargs))


def setup(settings, engine, families=(EE, RE)):
    register_baselines(engine, ["m"], list(families))


def triggers(engine, **where):
    query = select(OptimizationTrigger).order_by(OptimizationTrigger.id)
    for k, v in where.items():
        query = query.where(getattr(OptimizationTrigger, k) == v)
    with engine.connect() as conn:
        return conn.execute(query).all()


def finish_run(engine, job_id, family=EE, best=None, status="done"):
    """The run a worker would have created for job ``job_id``, ended."""
    with engine.connect() as conn:
        parent = conn.execute(select(PromptVariant.id).where(PromptVariant.family == family,
                                                             PromptVariant.status == "active")).scalar()
    with engine.begin() as conn:
        return conn.execute(OptimizationRun.__table__.insert().values(
            job_id=job_id, family=family, model="m", optimizer="demos", seed=0, status=status, cancel_requested=False,
            settings="{}", train_ids=json.dumps([]), val_ids=json.dumps([]), parent_id=parent, best_variant_id=best,
            lease_token=1, lm_calls=0, cached_calls=0, seconds=0.0)).inserted_primary_key[0]


def age_triggers(engine, hours):
    """Move every trigger ``hours`` into the past (as if the cooldown had run)."""
    with engine.begin() as conn:
        for t in conn.execute(select(OptimizationTrigger.id, OptimizationTrigger.created_at)).all():
            conn.execute(update(OptimizationTrigger).where(OptimizationTrigger.id == t.id)
                         .values(created_at=t.created_at - timedelta(hours=hours)))
