"""Evaluation tasks: score chunks of a batch on any worker, then aggregate.

``shared.evaluation`` (DSPy, LightRAG) is imported inside the task bodies: every worker imports this
module to register the tasks, and an ingest-only worker must not pay for those imports
(``workers.app`` preloads them in workers that consume the evaluate queue).
"""

from __future__ import annotations

from celery import chord
from sqlalchemy.exc import OperationalError

from shared.db import get_engine
from shared.settings import get_settings
from workers.app import app
from workers.queues import Queue


@app.task(
    name="tasks.evaluate.evaluate_chunk",
    queue=Queue.EVALUATE.value,
    # Safe to run twice: each (variant, example) score is unique, a rerun skips what is stored.
    acks_late=True,
    reject_on_worker_lost=True,
    # A database outage is transient; per-example failures (the LM, the input) are recorded, not raised.
    autoretry_for=(OperationalError,),
    retry_backoff=5,
    retry_backoff_max=120,
    max_retries=10,
)
def evaluate_chunk(batch_id: int, variant_id: int, examples: list[list]) -> dict:
    """Score one variant on a chunk of examples (ids only in the message)."""
    from shared.evaluation import run_evaluation_chunk

    return run_evaluation_chunk(get_engine(), get_settings(), batch_id, variant_id, examples)


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
