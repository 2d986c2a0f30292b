"""Beat's decision for one running rollout: promote a step, roll back, or hold.

Worse on live evidence -> roll back (or pause, with ``rollback_on_failure`` off); better and the
step's hold elapsed -> promote one step; anything else (inconclusive, too few calls, missing or NaN
data) -> hold. Acting is a compare-and-set on the version read here, so a second beat, a retried task
or an operator acting meanwhile makes this check a no-op instead of a second step.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from sqlalchemy import Engine, select, update

from ..models import PromptVariant, Rollout
from ..settings import Settings
from .evidence import arm_sums
from .state import RolloutConflict, RolloutError, get, transition
from .stats import Arm, GateRules, compare_live


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)  # SQLite returns naive UTC


def rules_for(settings: Settings) -> GateRules:
    return GateRules(min_samples=settings.rollout_min_samples)


def verdict_for(engine: Engine, settings: Settings, rollout: Rollout, until: datetime | None = None):
    """The live gate's verdict on ``rollout`` (candidate against incumbent since the rollout began;
    with ``until``, on the calls made up to then)."""
    with engine.connect() as conn:
        names = dict(conn.execute(select(PromptVariant.id, PromptVariant.name).where(
            PromptVariant.id.in_([rollout.candidate_id, rollout.incumbent_id]))).all())
    since = _aware(rollout.created_at)
    cand = arm_sums(engine, rollout.family, rollout.model, names[rollout.candidate_id], since, until)
    inc = arm_sums(engine, rollout.family, rollout.model, names[rollout.incumbent_id], since, until)
    return compare_live({k: Arm.from_sums(*v) for k, v in cand.items()},
                        {k: Arm.from_sums(*v) for k, v in inc.items()}, rules_for(settings))


def check_rollout(engine: Engine, settings: Settings, rollout_id: int, *, actor: str = "beat",
                  now: datetime | None = None) -> dict:
    """Judge one rollout and act on the verdict; what was done and why."""
    rollout = get(engine, rollout_id)
    if rollout.status != "running":
        return {"rollout": rollout_id, "action": "none", "reason": f"rollout is {rollout.status}"}
    verdict = verdict_for(engine, settings, rollout)
    evidence = verdict.as_dict()
    now = now or datetime.now(timezone.utc)
    held_s = (now - _aware(rollout.step_started_at)).total_seconds()
    with engine.begin() as conn:  # the latest verdict, for `rollout status`; not a transition
        conn.execute(update(Rollout).where(Rollout.id == rollout_id, Rollout.version == rollout.version)
                     .values(last_check=json.dumps({**evidence, "at": now.isoformat(), "held_s": held_s})))
    if verdict.decision == "worse":
        action = "rollback" if settings.rollback_on_failure else "pause"
    elif verdict.decision == "better" and held_s >= rollout.hold_s:
        action = "promote"
    else:
        wait = "" if verdict.decision != "better" else f"; step holds {rollout.hold_s - held_s:.0f}s more"
        return {"rollout": rollout_id, "action": "hold", "reason": verdict.reason + wait}
    try:
        after = transition(engine, rollout_id, rollout.version, action, actor=actor, reason=verdict.reason,
                           evidence=evidence)
    except RolloutConflict:
        return {"rollout": rollout_id, "action": "none", "reason": "changed by another process meanwhile"}
    except RolloutError as exc:
        return {"rollout": rollout_id, "action": "none", "reason": str(exc)}
    return {"rollout": rollout_id, "action": action, "reason": verdict.reason, "status": after.status,
            "percentage": after.percentage}
