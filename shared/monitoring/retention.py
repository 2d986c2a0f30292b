"""Retention: delete metric and feedback events and production examples older than ``retention_days``.

Deleted in batches of ids (one short transaction each), oldest first, never touching rows that work
in progress reads:

* an open rollout (running or paused) judges its arms on the events of its family x model x
  {candidate, incumbent} since it was created: those events (and examples) are kept;
* a pending or running optimization names its search and validation examples (``train_ids``,
  ``val_ids``): those production examples are kept;
* an evaluation batch that has not finished: its chunks (the example ids) travel in the task messages,
  not in SQL, so while one is unfinished no production example is deleted at all (events still are).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine, and_, delete, not_, select
from sqlalchemy.orm import aliased

from ..models import (EvaluationBatch, FeedbackEvent, MetricEvent, OptimizationRun, ProductionExample, PromptVariant,
                      Rollout)
from ..settings import Settings

log = logging.getLogger(__name__)

OPEN_ROLLOUT = ("running", "paused")
RUNNING_BATCH = ("pending", "running")
RUNNING_OPTIMIZATION = ("pending", "running")


def in_use(engine: Engine) -> dict:
    """What retention must keep: open rollouts' arms, running optimizations' examples, running batches."""
    cand, inc = aliased(PromptVariant), aliased(PromptVariant)
    with engine.connect() as conn:
        rollouts = [dict(r._mapping) for r in conn.execute(
            select(Rollout.id, Rollout.family, Rollout.model, Rollout.created_at,
                   cand.name.label("candidate"), inc.name.label("incumbent"))
            .join(cand, cand.id == Rollout.candidate_id).join(inc, inc.id == Rollout.incumbent_id)
            .where(Rollout.status.in_(OPEN_ROLLOUT)))]
        batches = list(conn.scalars(select(EvaluationBatch.id).where(
            EvaluationBatch.status.in_(RUNNING_BATCH), EvaluationBatch.finished_at.is_(None))))
        runs = list(conn.execute(select(OptimizationRun.id, OptimizationRun.train_ids, OptimizationRun.val_ids)
                                 .where(OptimizationRun.status.in_(RUNNING_OPTIMIZATION))))
    examples = set()
    for _, *id_lists in runs:
        for ids in id_lists:
            examples.update(int(i) for source, i in json.loads(ids or "[]") if source == "production")
    return {"rollouts": rollouts, "evaluation_batches": batches, "optimization_runs": [r[0] for r in runs],
            "example_ids": sorted(examples)}


def _keep_rollouts(table, rollouts: list[dict]) -> list:
    """Conditions excluding the rows each open rollout's gate reads."""
    keep = []
    for r in rollouts:
        arm = [table.model == r["model"], table.variant.in_([r["candidate"], r["incumbent"]]),
               table.ts >= r["created_at"]]
        if hasattr(table, "family"):
            arm.append(table.family == r["family"])
        keep.append(not_(and_(*arm)))
    return keep


def _delete_batches(engine: Engine, table, where: list, batch_size: int, deadline: float) -> tuple[int, bool]:
    """Delete matching rows, ``batch_size`` ids per transaction, until none is left or time is up."""
    total = 0
    while True:
        ids = select(table.id).where(*where).order_by(table.id).limit(batch_size)
        with engine.begin() as conn:
            n = conn.execute(delete(table).where(table.id.in_(ids.scalar_subquery()))).rowcount
        total += n
        if n < batch_size:
            return total, True
        if time.monotonic() > deadline:
            return total, False


def cleanup(engine: Engine, settings: Settings, now: datetime | None = None, batch_size: int = 5000,
            budget_s: float = 60.0) -> dict:
    """Delete what is older than ``settings.retention_days`` (0: keep everything); returns the counts.

    ``complete`` is False when ``budget_s`` ran out first: the next run goes on where this one stopped.
    """
    if settings.retention_days <= 0:
        return {"cutoff": None, "deleted": {}, "held": {}, "complete": True}
    now = now or datetime.now(timezone.utc)
    cutoff = now - timedelta(days=settings.retention_days)
    held = in_use(engine)
    deadline = time.monotonic() + budget_s
    deleted, complete = {}, True
    for name, table in (("metric_events", MetricEvent), ("feedback_events", FeedbackEvent),
                        ("production_examples", ProductionExample)):
        where = [table.ts < cutoff, *_keep_rollouts(table, held["rollouts"])]
        if table is ProductionExample:
            if held["evaluation_batches"]:
                deleted[name] = 0
                continue
            if held["example_ids"]:
                where.append(table.id.not_in(held["example_ids"]))
        deleted[name], done = _delete_batches(engine, table, where, batch_size, deadline)
        complete = complete and done
        if not done:
            break
    if any(deleted.values()):
        log.info("retention: deleted %s older than %s", deleted, cutoff.isoformat())
    return {"cutoff": cutoff.isoformat(), "deleted": deleted, "complete": complete,
            "held": {"rollouts": [r["id"] for r in held["rollouts"]], "evaluation_batches": held["evaluation_batches"],
                     "optimization_runs": held["optimization_runs"]}}
