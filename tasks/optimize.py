"""Optimization jobs on the ``optimize`` queue: one run per family x model, candidates scored on ``evaluate``.

DSPy, LightRAG and the optimizers are imported inside the task bodies (ingest-only workers never load
them). A run holds a lease with a fencing token in SQL, so a copy of a job that Redis redelivered
(long tasks outlive the visibility timeout) finds the lease held and retries later instead of running
the same optimization twice; a worker killed mid-run leaves checkpoints the next delivery resumes from.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from sqlalchemy.exc import OperationalError

from shared.db import get_engine
from shared.settings import get_settings
from workers.app import app
from workers.queues import Queue


def score_on_workers(engine, settings, batch_id: int, chunks: list[dict], stop=None, poll_s: float = 0.5) -> None:
    """A scoring runner: the candidate's chunks go to the ``evaluate`` queue; wait until all are scored.

    ``stop()`` is checked while waiting, so a cancel, a lost lease or the run's time limit ends the wait
    (no evaluate worker, or chunks stuck behind optimize tasks, would otherwise hold the run forever).
    """
    from shared.evaluation import batch_progress
    from tasks.evaluate import dispatch_batch

    dispatch_batch(batch_id, chunks)
    checked = 0.0
    while True:
        done, total, _ = batch_progress(engine, batch_id)
        if done >= total:
            return
        if stop is not None and time.monotonic() - checked > 2:
            stop()
            checked = time.monotonic()
        time.sleep(poll_s)


def _run(task, run_id: int) -> dict:
    from shared.optimize.driver import run_optimization

    settings = get_settings()
    outcome = run_optimization(get_engine(settings), settings, run_id, runner=score_on_workers,
                               ttl_s=settings.optimize_lease_s)
    if outcome["status"] == "held":
        # Another delivery holds the run (a redelivered copy, or a killed holder's lease not yet run out):
        # come back when its lease would have expired; the run itself is never executed twice at once.
        expires = outcome.get("lease_expires_at")
        wait = settings.optimize_lease_s
        if isinstance(expires, datetime):
            expires = expires if expires.tzinfo else expires.replace(tzinfo=timezone.utc)
            wait = max(1.0, (expires - datetime.now(timezone.utc)).total_seconds() + 1)
        # Sent again rather than retried: a retry would count toward max_retries, which is meant for
        # database outages, and a long wait would exhaust it.
        optimize_run.apply_async((run_id,), countdown=wait)
        return {"run_id": run_id, "status": "held", "reason": outcome["reason"], "resent_in_s": wait}
    if outcome["status"] == "done" and outcome.get("candidate"):
        # The real-time optimizer follows up the runs it started (validate, then deploy or recommend);
        # it ignores the others and a second notice of the same run.
        from tasks.realtime import after_optimization

        after_optimization.delay(run_id)
    return {k: v for k, v in outcome.items() if k in ("run_id", "status", "reason", "candidate")}


@app.task(
    name="tasks.optimize.optimize_family",
    bind=True,
    queue=Queue.OPTIMIZE.value,
    # Redelivered after a kill: the same job id finds the same run and resumes it from its checkpoints.
    acks_late=True,
    reject_on_worker_lost=True,
    # A database outage is transient: the run's checkpoints keep what was scored.
    autoretry_for=(OperationalError,),
    retry_backoff=10,
    retry_backoff_max=300,
    max_retries=20,
)
def optimize_family(self, family: str, model: str, optimizer: str | None = None, budget: int | None = None,
                    dataset: str | None = None, n_train: int | None = None, n_val: int | None = None,
                    seed: int = 0, budget_minutes: float | None = None) -> dict:
    """Optimize ``family``'s prompt on ``model``: create the run once per job id, then run or resume it."""
    from shared.optimize.start import run_for_job

    settings = get_settings()
    run_id = run_for_job(get_engine(settings), settings, job_id=self.request.id, family=family, model=model,
                         optimizer=optimizer or settings.optimizer_for(family),
                         budget_calls=budget or settings.optimize_budget_calls, budget_minutes=budget_minutes,
                         dataset=dataset, n_train=n_train or settings.optimize_train,
                         n_val=n_val or settings.optimize_val, seed=seed)
    return _run(self, run_id)


@app.task(name="tasks.optimize.optimize_run", bind=True, queue=Queue.OPTIMIZE.value, acks_late=True,
          reject_on_worker_lost=True, autoretry_for=(OperationalError,), retry_backoff=10, max_retries=20)
def optimize_run(self, run_id: int) -> dict:
    """Run or resume an existing optimization run (``promptloop optimize --on-workers``)."""
    return _run(self, run_id)


@app.task(name="tasks.optimize.optimize_all_families", bind=True, queue=Queue.OPTIMIZE.value, acks_late=True)
def optimize_all_families(self, models: list[str] | None = None, dataset: str | None = None) -> list[str]:
    """One ``optimize_family`` job per family x model; child ids derive from this job's id, so a
    redelivered fan-out sends the same jobs (and their runs are created once)."""
    from shared.families import PromptFamily

    settings = get_settings()
    sent = []
    for family in PromptFamily:
        for model in models or list(settings.models):
            job_id = f"{self.request.id}:{family.value}:{model}"
            optimize_family.apply_async(args=[family.value, model], kwargs={"dataset": dataset}, task_id=job_id)
            sent.append(job_id)
    return sent
