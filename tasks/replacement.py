"""Replacement jobs: validate a candidate (its scoring fanned out on the evaluate queue) and deploy it.

They run on the optimize queue: validation costs LM calls and may take minutes, unlike control tasks.
"""

from __future__ import annotations

from shared.db import get_engine
from shared.rediscon import get_redis
from shared.settings import get_settings
from workers.app import app
from workers.queues import Queue


@app.task(name="tasks.replacement.validate_and_deploy", queue=Queue.OPTIMIZE.value, ignore_result=False,
          # A worker lost mid-validation gives the job back (else its recommendation stays ``validating``
          # for good); running it again is safe, see below.
          acks_late=True, reject_on_worker_lost=True)
def validate_and_deploy(candidate_id: int, rollout_percentage: float = 0.1, deploy: bool = True,
                        hold_s: float | None = None) -> dict:
    """Validate ``candidate_id`` against the active variant; when it passes and ``deploy``, start its rollout.

    A redelivered copy (the worker died before acknowledging) validates again from the LM cache, or,
    when the first copy already deployed, reports that rollout instead of starting another
    (``start_rollout`` also allows one open rollout per family x model).
    """
    from shared.rollout.publish import publish
    from shared.rollout.replacement import deploy_candidate, deployed_outcome, validate_candidate
    from shared.rollout.state import RolloutError
    from tasks.optimize import score_on_workers

    engine, settings = get_engine(), get_settings()
    earlier = deployed_outcome(engine, candidate_id) if deploy else None
    if earlier is not None:
        return earlier
    try:
        outcome = validate_candidate(engine, settings, candidate_id, runner=score_on_workers)
    except RolloutError as exc:
        return {"candidate_id": candidate_id, "passed": False, "error": str(exc)}
    if outcome["passed"] and deploy:
        try:
            outcome["rollout_id"] = deploy_candidate(engine, settings, candidate_id, rollout_percentage, hold_s)
        except RolloutError as exc:
            outcome["deploy_error"] = str(exc)
        publish(engine, get_redis())
    return outcome
