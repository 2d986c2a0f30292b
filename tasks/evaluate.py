"""Evaluation tasks: score chunks of a batch on any worker, then aggregate.

``shared.evaluation`` (DSPy, LightRAG) is imported inside the task bodies: every worker imports this
module to register the tasks, and an ingest-only worker must not pay for those imports
(``workers.app`` preloads them in workers that consume the evaluate queue).
"""

from __future__ import annotations

import os

from celery import chord
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import OperationalError

from shared.db import get_engine
from shared.settings import get_settings
from workers.app import app
from workers.queues import Queue

#: Seconds a chunk scores for; the examples left then are recorded as failed (PROMPTLOOP_CHUNK_TIME_LIMIT_S;
#: read here because the limits are fixed when the task is registered). Celery's soft limit comes a
#: grace later and interrupts an LM call that never returns; its hard limit, a grace after that, kills
#: the process, and the redelivered chunk counts a death (``shared.evaluation.MAX_WORKER_KILLS``).
CHUNK_TIME_LIMIT_S = float(os.environ.get("PROMPTLOOP_CHUNK_TIME_LIMIT_S", "1500"))
_GRACE_S = min(60.0, max(1.0, CHUNK_TIME_LIMIT_S / 2))


@app.task(
    name="tasks.evaluate.evaluate_chunk",
    queue=Queue.EVALUATE.value,
    # Safe to run twice: each (variant, example) score is unique, a rerun skips what is stored.
    acks_late=True,
    # A lost worker or a hard time limit requeues the chunk; its next start counts the death, so a
    # chunk that keeps killing its worker is given up after MAX_WORKER_KILLS, never redelivered forever.
    reject_on_worker_lost=True,
    acks_on_timeout=False,
    soft_time_limit=CHUNK_TIME_LIMIT_S + _GRACE_S,
    time_limit=CHUNK_TIME_LIMIT_S + 2 * _GRACE_S,
    # A database outage is transient; per-example failures (the LM, the input) are recorded, not raised.
    autoretry_for=(OperationalError,),
    retry_backoff=5,
    retry_backoff_max=120,
    max_retries=10,
)
def evaluate_chunk(batch_id: int, variant_id: int, examples: list[list]) -> dict:
    """Score one variant on a chunk of examples (ids only in the message)."""
    from shared.evaluation import fail_unscored, run_evaluation_chunk

    engine = get_engine()
    try:
        return run_evaluation_chunk(engine, get_settings(), batch_id, variant_id, examples,
                                    time_budget_s=CHUNK_TIME_LIMIT_S)
    except SoftTimeLimitExceeded as exc:
        # Interrupted outside an example (loading, writing): the examples left must still be recorded.
        return fail_unscored(engine, batch_id, variant_id, examples, f"chunk soft time limit reached: {exc!r}")


@app.task(name="tasks.evaluate.finish_batch", queue=Queue.EVALUATE.value, acks_late=True,
          autoretry_for=(OperationalError,), retry_backoff=5, max_retries=10)
def finish_batch(_chunk_counts: list, batch_id: int) -> dict:
    """Aggregate a batch once all its chunks have run (the chord's callback)."""
    from shared.evaluation import finish_evaluation_batch

    results = finish_evaluation_batch(get_engine(), batch_id)
    return {"batch_id": batch_id, "results": len(results)}


def dispatch_batch(batch_id: int, chunks: list[dict]):
    """Fan the chunks out across workers; the batch is aggregated when the last one finishes."""
    return chord(evaluate_chunk.s(c["batch_id"], c["variant_id"], c["examples"]) for c in chunks)(
        finish_batch.s(batch_id))


def run_on_workers(engine, settings, handle, poll_s: float = 0.5, timeout_s: float = 6 * 3600) -> None:
    """A ``ProductionPipeline`` runner: fan the chunks out and wait until every item is scored."""
    import time

    from shared.evaluation import batch_progress

    dispatch_batch(handle.batch_id, handle.chunks)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done, total, _ = batch_progress(engine, handle.batch_id)
        if done >= total:
            return
        time.sleep(poll_s)
    raise TimeoutError(f"evaluation batch {handle.batch_id} not finished after {timeout_s}s")


def production_pipeline():
    """The seed's ``ProductionPipeline``, scoring on the Celery workers."""
    from shared.production_pipeline import ProductionPipeline

    settings = get_settings()
    return ProductionPipeline(get_engine(settings), settings, runner=run_on_workers)
