"""The seed design's ``ProductionPipeline`` API over ``shared.evaluation``.

    pipeline = ProductionPipeline(engine, settings)            # in-process scoring
    pipeline = tasks.evaluate.production_pipeline()            # scoring fanned out to the workers
    examples = await pipeline.collect_production_data(hours_back=24, models=["1.5b", "3b", "7b"])
    batches = await pipeline.create_evaluation_batch(examples, batch_size=50)
    results = await pipeline.run_evaluation_batch(batches[0])
    top_variants = await pipeline.get_top_performing_variants(days_back=7)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy import Engine

from . import evaluation
from .evaluation import ExampleRef
from .settings import Settings


@dataclass
class EvaluationBatchHandle:
    """A created batch: its id and the chunks a runner executes."""

    batch_id: int
    chunks: list[dict] = field(repr=False)


def run_in_process(engine: Engine, settings: Settings, handle: EvaluationBatchHandle) -> None:
    """Score every chunk here, one after the other."""
    for chunk in handle.chunks:
        evaluation.run_evaluation_chunk(engine, settings, chunk["batch_id"], chunk["variant_id"], chunk["examples"])


class ProductionPipeline:
    """Collect production examples, batch them with the live variants, score, rank.

    ``runner(engine, settings, handle)`` executes a batch's chunks and returns when they are scored;
    ``tasks.evaluate.production_pipeline()`` supplies one that fans them out across Celery workers.
    """

    def __init__(self, engine: Engine, settings: Settings,
                 runner: Callable[[Engine, Settings, EvaluationBatchHandle], None] = run_in_process):
        self.engine, self.settings, self.runner = engine, settings, runner

    async def collect_production_data(self, hours_back: float = 24, models: list[str] | None = None,
                                      min_text_length: int = 0) -> list[ExampleRef]:
        return await asyncio.to_thread(evaluation.collect_production_data, self.engine, hours_back, models,
                                       min_text_length)

    async def create_evaluation_batch(self, examples: list[ExampleRef], batch_size: int = 50,
                                      variants: list | None = None) -> list[EvaluationBatchHandle]:
        """One batch of ``examples`` x ``variants`` (default: every live variant of their families)."""
        def create():
            chosen = variants or evaluation.find_variants(self.engine, sorted({e.family for e in examples}))
            batch_id, chunks = evaluation.create_evaluation_batch(self.engine, examples, chosen, batch_size)
            return [EvaluationBatchHandle(batch_id, chunks)]

        return await asyncio.to_thread(create)

    async def run_evaluation_batch(self, batch: EvaluationBatchHandle) -> list[dict]:
        """Score the batch with the runner, aggregate, and return the per-variant, per-metric results."""
        await asyncio.to_thread(self.runner, self.engine, self.settings, batch)
        return await asyncio.to_thread(evaluation.finish_evaluation_batch, self.engine, batch.batch_id)

    async def get_top_performing_variants(self, days_back: float = 7, metric: str = "overall",
                                          family: str | None = None) -> list[dict]:
        return await asyncio.to_thread(evaluation.get_top_performing_variants, self.engine, days_back, metric, family)
