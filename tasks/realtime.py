"""The real-time optimizer on beat: decide on triggers (control queue), follow up finished optimizations.

The bodies are in ``shared.realtime``; these tasks only supply the engine, the settings, and the way
jobs are sent (``optimize_family`` on the optimize queue, validation through
``tasks.replacement.validate_and_deploy`` and then ``record_validation``).
"""

from __future__ import annotations

from shared.db import get_engine
from shared.settings import get_settings
from workers.app import app
from workers.queues import Queue


def send_optimization(family: str, model: str, *, job_id: str, dataset: str | None, budget_minutes: float) -> None:
    """Enqueue the optimization under ``job_id``: the run it creates carries that id back to its trigger."""
    from tasks.optimize import optimize_family

    optimize_family.apply_async(args=[family, model], kwargs={"dataset": dataset, "budget_minutes": budget_minutes},
                                task_id=job_id)


def send_validation(candidate_id: int, deploy: bool) -> None:
    """Validate (and with ``deploy``, roll out) on the optimize queue, then record the outcome here."""
    from tasks.replacement import validate_and_deploy

    (validate_and_deploy.si(candidate_id, deploy=deploy) | record_validation.s()).apply_async()


@app.task(name="tasks.realtime.tick", queue=Queue.CONTROL.value, ignore_result=False)
def tick() -> list[dict]:
    """Start the optimizations that degradation, feedback volume or the schedule call for (safe with two beats)."""
    from shared.realtime.optimizer import tick as decide

    return decide(get_engine(), get_settings(), send=send_optimization)


@app.task(name="tasks.realtime.after_optimization", queue=Queue.CONTROL.value, ignore_result=False)
def after_optimization(run_id: int) -> dict:
    """Sent by ``tasks.optimize`` when a run ends with a candidate: validate it, then deploy or recommend."""
    from shared.realtime.followup import after_optimization as follow_up

    return follow_up(get_engine(), get_settings(), run_id, validate=send_validation)


@app.task(name="tasks.realtime.record_validation", queue=Queue.CONTROL.value, ignore_result=False)
def record_validation(outcome: dict) -> dict:
    """Store a followed-up candidate's validation: deployed, pending recommendation, or rejected."""
    from shared.realtime.followup import record_validation as record

    return record(get_engine(), outcome)
