"""What follows an optimization the real-time optimizer started: validate its candidate, then deploy it
(``DSPY_AUTO_OPTIMIZE`` on) or keep it in ``recommendations`` for a person (off).

Each candidate is followed up once: its ``recommendations`` row (unique per candidate) is inserted
as ``validating`` before anything is sent, so a redelivered optimization job, a retried task or a
second caller finds the row and does nothing. The row then becomes ``deployed`` (with its rollout),
``pending`` (validated, waiting for ``promptloop recommendations --deploy``) or ``rejected``.
Runs started by hand (``promptloop optimize``) are not followed up: their candidates wait for
``promptloop rollout start``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Callable

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from ..models import OptimizationRun, OptimizationTrigger, PromptVariant, Recommendation
from ..settings import Settings

#: validate(candidate_id, deploy): run tasks.replacement.validate_and_deploy, then ``record_validation``.
Validate = Callable[[int, bool], object]


def follow_up_candidate(engine: Engine, candidate_id: int, deploy: bool, validate: Validate, origin: str) -> dict:
    """Claim the candidate's follow-up (once) and ask for its validation."""
    with engine.connect() as conn:
        cand = conn.execute(select(PromptVariant.family, PromptVariant.model, PromptVariant.status)
                            .where(PromptVariant.id == candidate_id)).first()
    if cand is None or cand.status != "candidate":
        return {"action": "none", "candidate_id": candidate_id,
                "reason": f"variant {candidate_id} is {cand.status if cand else 'missing'}, not a new candidate"}
    try:
        with engine.begin() as conn:
            conn.execute(Recommendation.__table__.insert().values(
                candidate_id=candidate_id, family=cand.family, model=cand.model, status="validating",
                reason=f"validating ({origin}); then {'deploy' if deploy else 'recommend'}"))
    except IntegrityError:
        return {"action": "none", "candidate_id": candidate_id, "reason": "already followed up"}
    validate(candidate_id, deploy)
    return {"action": "validating", "candidate_id": candidate_id, "deploy": deploy, "origin": origin}


def after_optimization(engine: Engine, settings: Settings, run_id: int, validate: Validate) -> dict:
    """Follow up run ``run_id`` when it ended with a candidate and the real-time optimizer started it."""
    with engine.connect() as conn:
        run = conn.execute(select(OptimizationRun).where(OptimizationRun.id == run_id)).first()
        trigger = None if run is None or run.job_id is None else conn.execute(
            select(OptimizationTrigger).where(OptimizationTrigger.job_id == run.job_id,
                                              OptimizationTrigger.status == "started")).first()
    if run is None or run.status != "done" or not run.best_variant_id:
        return {"action": "none", "run_id": run_id, "reason": "no candidate"}
    if trigger is None:
        return {"action": "none", "run_id": run_id, "reason": "started by hand: promptloop rollout start deploys it"}
    if trigger.run_id is None:
        with engine.begin() as conn:
            conn.execute(update(OptimizationTrigger).where(OptimizationTrigger.id == trigger.id).values(run_id=run_id))
    deploy = json.loads(trigger.evidence or "{}").get("deploy", settings.auto_optimize)
    out = follow_up_candidate(engine, run.best_variant_id, bool(deploy), validate,
                              f"optimization run {run_id}, {trigger.kind} trigger {trigger.id}")
    return {**out, "run_id": run_id}


def _reason(outcome: dict) -> str:
    if outcome.get("error"):
        return f"not validated: {outcome['error']}"
    failed = [f"{s['stage']}: {s['reason']}" for s in outcome.get("stages", []) if not s["passed"]]
    if failed:
        return "rejected by validation: " + "; ".join(failed)
    conf = outcome.get("confidence")
    text = f"validated with confidence {conf:.3f}" if conf is not None else "validated"
    if outcome.get("rollout_id"):
        since = outcome.get("rollout_status")  # set when a redelivered job finds an earlier attempt's rollout
        later = f", {since.replace('_', ' ')} since" if since and since != "running" else ""
        return f"{text}; deployed automatically (rollout {outcome['rollout_id']}{later})"
    if outcome.get("deploy_error"):
        return f"{text}; deployment refused: {outcome['deploy_error']}"
    return f"{text}; automatic deployment is off (DSPY_AUTO_OPTIMIZE): deploy with promptloop recommendations --deploy"


def record_validation(engine: Engine, outcome: dict) -> dict:
    """Store what validation (and deployment) made of a followed-up candidate."""
    candidate_id = int(outcome["candidate_id"])
    status = ("deployed" if outcome.get("rollout_id") else "pending") if outcome.get("passed") else "rejected"
    values = dict(status=status, reason=_reason(outcome), validation_id=outcome.get("validation_id"),
                  confidence=outcome.get("confidence"), rollout_id=outcome.get("rollout_id"),
                  decided_at=datetime.now(timezone.utc) if status != "pending" else None)
    with engine.begin() as conn:
        done = conn.execute(update(Recommendation).where(Recommendation.candidate_id == candidate_id,
                                                         Recommendation.status == "validating").values(**values))
        if done.rowcount == 0:
            exists = conn.execute(select(Recommendation.id).where(Recommendation.candidate_id == candidate_id)).scalar()
            if exists is None:
                cand = conn.execute(select(PromptVariant.family, PromptVariant.model)
                                    .where(PromptVariant.id == candidate_id)).one()
                conn.execute(Recommendation.__table__.insert().values(candidate_id=candidate_id, family=cand.family,
                                                                      model=cand.model, **values))
    return {"candidate_id": candidate_id, "status": status, "reason": values["reason"]}
