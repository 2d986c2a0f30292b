"""What the real-time optimizer is doing: open optimizations (and what started them), recent decisions."""

from __future__ import annotations

import json

from sqlalchemy import Engine, func, select

from ..models import OptimizationRun, OptimizationTrigger, Recommendation
from ..optimize.runs import OPEN


def running_optimizations(engine: Engine) -> list[dict]:
    """Open runs, newest first, with the trigger that started each (None: started by hand)."""
    query = (select(OptimizationRun.id, OptimizationRun.family, OptimizationRun.model, OptimizationRun.status,
                    OptimizationRun.optimizer, OptimizationRun.lm_calls, OptimizationRun.created_at,
                    OptimizationTrigger.kind.label("trigger"))
             .outerjoin(OptimizationTrigger, (OptimizationTrigger.job_id == OptimizationRun.job_id)
                        & (OptimizationTrigger.status == "started"))
             .where(OptimizationRun.status.in_(OPEN)).order_by(OptimizationRun.id.desc()))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def recent_triggers(engine: Engine, limit: int = 10) -> list[dict]:
    query = (select(OptimizationTrigger.id, OptimizationTrigger.family, OptimizationTrigger.model,
                    OptimizationTrigger.kind, OptimizationTrigger.status, OptimizationTrigger.reason,
                    OptimizationTrigger.run_id, OptimizationTrigger.evidence, OptimizationTrigger.created_at)
             .order_by(OptimizationTrigger.id.desc()).limit(limit))
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        row["evidence"] = json.loads(row["evidence"] or "{}")
    return rows


def recommendation_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(select(Recommendation.status, func.count()).group_by(Recommendation.status)).all())
