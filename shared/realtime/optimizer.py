"""The real-time optimizer: which incidents start an optimization (``tick``), and what follows one.

All of its state is in SQL (``optimization_triggers``, ``optimization_runs``, ``rollouts``,
``recommendations``), so beat, workers and the database may all restart without losing a decision.

**One incident, one optimization.** Every started trigger's ``dedupe_key`` is ``start|after:<id>``,
``<id>`` being the newest started trigger when the tick began reading. Two ticks deciding at once (two
beats, a retried task) read the same id and write the same key: exactly one insert succeeds and the
other tick stops and decides again on its next run, when it sees the first one's start. Starts are thus
serialized across processes, which makes both the per-family x model cooldown and
``max_concurrent_optimizations`` exact. A family x model does not start again while an optimization of
it is open, while a rollout of it is open, or within ``optimization_interval_hours`` of its last start;
degradation also needs a window that begins after that start (fresh evidence). A declined incident is
recorded once (``status='skipped'``, key ``skip|family|model|kind|why|after:<id>``), not every tick.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import Engine, case, exists, func, select, update
from sqlalchemy.exc import IntegrityError

from ..models import EvalExample, OptimizationRun, OptimizationTrigger, ProductionExample, Rollout
from ..optimize.runs import OPEN
from ..settings import Settings
from .triggers import (MIN_SAMPLES, Incident, degradation_incidents, feedback_incidents, now_utc,
                       schedule_incidents, utc)

log = logging.getLogger(__name__)
PRIORITY = {"degradation": 0, "feedback": 1, "schedule": 2, "manual": 3}
#: send(family, model, *, job_id, dataset, budget_minutes): enqueue tasks.optimize.optimize_family.
Send = Callable[..., object]


def horizon(settings: Settings, now: datetime) -> datetime:
    """Older open runs count as dead: the driver stops a run at twice its time budget."""
    return now - timedelta(minutes=2 * settings.optimization_timeout_minutes + 5)


def open_work(engine: Engine, settings: Settings, now: datetime) -> tuple[set, set, int]:
    """(family x model with an open optimization, with an open rollout, open optimizations counted)."""
    since = horizon(settings, now)
    with engine.connect() as conn:
        runs = conn.execute(select(OptimizationRun.family, OptimizationRun.model).where(
            OptimizationRun.status.in_(OPEN),
            (OptimizationRun.created_at >= since) | (OptimizationRun.lease_expires_at > now))).all()
        # Started, but no worker has created the run yet (queued behind others).
        queued = conn.execute(select(OptimizationTrigger.family, OptimizationTrigger.model).where(
            OptimizationTrigger.status == "started", OptimizationTrigger.created_at >= since,
            ~exists().where(OptimizationRun.job_id == OptimizationTrigger.job_id))).all()
        rollouts = conn.execute(select(Rollout.family, Rollout.model).where(Rollout.open_key.is_not(None))).all()
    busy = {tuple(r) for r in runs + queued}
    return busy, {tuple(r) for r in rollouts}, len(runs) + len(queued)


def last_started(engine: Engine) -> tuple[int, dict]:
    """The newest started trigger's id, and each family x model's newest start time."""
    with engine.connect() as conn:
        newest = conn.execute(select(func.max(OptimizationTrigger.id))
                              .where(OptimizationTrigger.status == "started")).scalar() or 0
        per = conn.execute(select(OptimizationTrigger.family, OptimizationTrigger.model,
                                  func.max(OptimizationTrigger.created_at))
                           .where(OptimizationTrigger.status == "started")
                           .group_by(OptimizationTrigger.family, OptimizationTrigger.model)).all()
    return newest, {(f, m): utc(at) for f, m, at in per}


def examples_source(engine: Engine, settings: Settings, family: str, model: str) -> tuple[bool, str | None]:
    """(enough examples?, dataset): production examples of the last 30 days when there are enough for a
    search and a validation set, else the imported dataset with the most held-out examples of the family."""
    need = settings.optimize_train + settings.optimize_val
    since = now_utc() - timedelta(days=30)
    with engine.connect() as conn:
        produced = conn.execute(select(func.count()).select_from(ProductionExample).where(
            ProductionExample.family == family, ProductionExample.model == model,
            ProductionExample.ts >= since)).scalar_one()
        if produced >= need:
            return True, None
        per = conn.execute(select(EvalExample.dataset, func.count(),
                                  func.sum(case((EvalExample.split != "train", 1), else_=0)))
                           .where(EvalExample.family == family).group_by(EvalExample.dataset)).all()
    usable = sorted(((held or n, name) for name, n, held in per), reverse=True)
    if usable and usable[0][0] >= need:
        return True, usable[0][1]
    return False, None


def _insert_trigger(engine: Engine, inc: Incident, status: str, key: str, now: datetime, reason: str,
                    job_id: str | None = None) -> int | None:
    try:
        with engine.begin() as conn:
            return conn.execute(OptimizationTrigger.__table__.insert().values(
                family=inc.family, model=inc.model, kind=inc.kind, status=status, reason=reason,
                evidence=json.dumps(inc.evidence, sort_keys=True, default=str), dedupe_key=key, job_id=job_id,
                created_at=now)).inserted_primary_key[0]
    except IntegrityError:
        return None


def _blocker(inc: Incident, settings: Settings, now: datetime, busy: set, rolling: set, started: dict,
             count: int) -> tuple[str, str] | None:
    key = (inc.family, inc.model)
    if key in busy:
        return "open_optimization", "an optimization of it is already open"
    if key in rolling:
        return "open_rollout", "a rollout of it is open (its gate judges the live traffic)"
    last = None if inc.kind == "manual" else started.get(key)  # a person asked: no cooldown
    if last is not None and now - last < timedelta(hours=settings.optimization_interval_hours):
        return "cooldown", f"last started {last:%H:%M:%S}, cooldown {settings.optimization_interval_hours:g} h"
    window = inc.evidence.get("window_start")
    if last is not None and window and datetime.fromisoformat(window) <= last:
        return "cooldown", "the degraded window began before the last optimization"
    if count >= settings.max_concurrent_optimizations:
        return "max_concurrent", f"{count} optimizations open (max {settings.max_concurrent_optimizations})"
    return None


def incidents(engine: Engine, settings: Settings, now: datetime, min_samples: int = MIN_SAMPLES) -> list[Incident]:
    found = (degradation_incidents(engine, settings, now, min_samples) + feedback_incidents(engine, settings, now)
             + schedule_incidents(engine, settings, now, min_samples))
    return sorted(found, key=lambda i: PRIORITY[i.kind])


def start(engine: Engine, settings: Settings, inc: Incident, send: Send, prev: int, now: datetime,
          dataset: str | None) -> dict:
    """Claim the start (``start|after:<prev>``), then send the job; {"status": started|lost_race|send_failed}."""
    job_id = f"realtime-{uuid.uuid4()}"
    inc.evidence.update(dataset=dataset, budget_minutes=settings.optimization_timeout_minutes)
    trigger_id = _insert_trigger(engine, inc, "started", f"start|after:{prev}", now, inc.reason, job_id)
    out = {"family": inc.family, "model": inc.model, "kind": inc.kind, "reason": inc.reason}
    if trigger_id is None:
        return {**out, "status": "lost_race"}
    try:
        send(inc.family, inc.model, job_id=job_id, dataset=dataset,
             budget_minutes=settings.optimization_timeout_minutes)
    except Exception as exc:  # broker down: free the key so the incident is decided again next tick
        with engine.begin() as conn:
            conn.execute(update(OptimizationTrigger).where(OptimizationTrigger.id == trigger_id).values(
                status="skipped", dedupe_key=f"failed|{trigger_id}", reason=f"{inc.reason}; not sent: {exc}"))
        return {**out, "status": "send_failed", "trigger_id": trigger_id, "error": str(exc)}
    log.warning("optimizing %s x %s (%s): %s", inc.family, inc.model, inc.kind, inc.reason)
    return {**out, "status": "started", "trigger_id": trigger_id, "job_id": job_id}


def tick(engine: Engine, settings: Settings, send: Send, now: datetime | None = None,
         min_samples: int = MIN_SAMPLES) -> list[dict]:
    """Decide on every incident that holds now; start what may start. One outcome dict per incident."""
    if not (settings.dspy_enabled and settings.dspy_phase2_enabled):
        return []
    now = now or now_utc()
    prev = last_started(engine)[0]  # read first: the start key is valid only for this snapshot
    return decide(engine, settings, send, incidents(engine, settings, now, min_samples), now, prev)


def decide(engine: Engine, settings: Settings, send: Send, found: list[Incident], now: datetime | None = None,
           prev: int | None = None) -> list[dict]:
    """Start each incident's optimization unless something blocks it (at most one per family x model)."""
    now = now or now_utc()
    link_runs(engine)
    newest, started = last_started(engine)
    prev = newest if prev is None else prev
    busy, rolling, count = open_work(engine, settings, now)
    outcomes, done = [], set()
    for inc in found:
        key = (inc.family, inc.model)
        if key in done:
            continue
        done.add(key)
        blocked = _blocker(inc, settings, now, busy, rolling, started, count)
        enough, dataset = (True, None) if blocked else examples_source(engine, settings, inc.family, inc.model)
        if not enough:
            blocked = ("no_examples", "not enough production or imported examples to optimize on")
        if blocked:
            code, why = blocked
            _insert_trigger(engine, inc, "skipped", f"skip|{inc.family}|{inc.model}|{inc.kind}|{code}|after:{prev}",
                            now, f"{inc.reason}; not started: {why}")
            outcomes.append({"family": inc.family, "model": inc.model, "kind": inc.kind, "status": "skipped",
                             "skip": code, "reason": why})
            continue
        out = start(engine, settings, inc, send, prev, now, dataset)
        outcomes.append(out)
        if out["status"] != "started":
            break  # another tick started something meanwhile (or the broker is down): decide again next tick
        prev, count = out["trigger_id"], count + 1
        busy.add(key)
        started[key] = now
    return outcomes


def link_runs(engine: Engine) -> int:
    """Fill ``run_id`` of started triggers whose job has created its run."""
    run = select(OptimizationRun.id).where(OptimizationRun.job_id == OptimizationTrigger.job_id).scalar_subquery()
    with engine.begin() as conn:
        return conn.execute(update(OptimizationTrigger).where(
            OptimizationTrigger.run_id.is_(None), OptimizationTrigger.job_id.is_not(None),
            exists().where(OptimizationRun.job_id == OptimizationTrigger.job_id)).values(run_id=run)).rowcount
