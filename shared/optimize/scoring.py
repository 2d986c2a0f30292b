"""Scoring a candidate: an evaluation batch of one variant over the run's examples.

Candidates are scored through the evaluation pipeline (``shared.evaluation``): the same rendering,
the same family metrics, the same shared LM cache, and — with a worker runner — the same chunks on
the ``evaluate`` queue, so several workers score a candidate in parallel and nothing is scored twice.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ..evaluation import (ExampleRef, create_evaluation_batch, finish_evaluation_batch, load_examples,
                          run_evaluation_chunk)
from ..families import get_family
from ..families.template import PromptTemplate
from ..lm import cache_key, cache_lookup, get_lm
from ..models import EvaluationScore, PromptVariant
from ..settings import Settings

#: (engine, settings, batch id, chunks, stop=callable) -> None once every chunk has been scored; ``stop()``
#: raises when the run must end (cancelled, lease lost, past its time) and is called while waiting.
Runner = Callable[[Engine, Settings, int, list[dict]], None]
#: A cost term every family has: words in the answer (an objective weight of e.g. -0.0005 prefers
#: shorter answers, which local models produce in fewer seconds).
OUTPUT_WORDS = "output_words"


@dataclass
class TrialScores:
    """One variant on a list of examples: metrics per example (None where it failed), and the cost."""

    metrics: list[dict | None]
    outputs: list[str | None] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lm_calls: int = 0
    cached: int = 0
    seconds: float = 0.0

    def mean(self, metric: str) -> float:
        """Mean over all examples; a failed example counts as 0 (a broken prompt must not look good).

        ``output_words`` is the mean length of the answers that came back, scored or not (a long answer
        the metrics could not score still cost its seconds); calls that failed outright are left out.
        """
        if metric == OUTPUT_WORDS:
            words = [len(o.split()) for o in self.outputs if o is not None]
            return math.fsum(words) / len(words) if words else 0.0
        if not self.metrics:
            return 0.0
        return math.fsum((m or {}).get(metric, 0.0) for m in self.metrics) / len(self.metrics)

    def means(self) -> dict:
        names = sorted({k for m in self.metrics if m for k in m})
        return {name: self.mean(name) for name in names} | {"n": len(self.metrics),
                                                              "n_failed": sum(m is None for m in self.metrics)}


def objective(scores: TrialScores, weights: dict[str, float]) -> float:
    """Weighted sum of metric means; a negative weight penalizes (e.g. ``hallucination_rate: -0.15``)."""
    return math.fsum(w * scores.mean(metric) for metric, w in weights.items())


def example_objective(weights: dict[str, float], metrics: dict | None, output: str | None) -> float:
    """One example's objective, weighed as ``objective`` weighs the means (a failed example scores 0)."""
    if not metrics:
        return 0.0
    values = {**metrics, OUTPUT_WORDS: len(output.split()) if output else 0}
    return math.fsum(w * values.get(k, 0.0) for k, w in weights.items())


def in_process(engine: Engine, settings: Settings, batch_id: int, chunks: list[dict], stop=None) -> None:
    """Score every chunk here, one after another (CLI without workers, benchmarks, tests)."""
    for chunk in chunks:
        if stop is not None:
            stop()
        run_evaluation_chunk(engine, settings, chunk["batch_id"], chunk["variant_id"], chunk["examples"])
    finish_evaluation_batch(engine, batch_id)  # as the workers' chord callback does: the batch reads "done"


def _cached_count(engine: Engine, settings: Settings, variant: PromptVariant, refs: list[ExampleRef]) -> int:
    """How many of these calls the shared LM cache already answers (they cost no LM call)."""
    family = get_family(variant.family)
    template = PromptTemplate.from_json(variant.template)
    try:
        lm = get_lm(variant.model, settings)
    except ValueError:
        return 0
    keys = []
    for _, text, _ in load_examples(engine, refs).values():
        try:
            keys.append(cache_key(lm, template.render(**family.inputs(text))))
        except (KeyError, IndexError, ValueError):
            continue
    return len(cache_lookup(engine, keys))


def score_variant(engine: Engine, settings: Settings, variant_id: int, refs: list[ExampleRef],
                  runner: Runner = in_process, batch_size: int = 10, stop=None) -> TrialScores:
    """Score one variant on ``refs`` through an evaluation batch; results in the order of ``refs``."""
    with Session(engine, expire_on_commit=False) as session:
        variant = session.get(PromptVariant, variant_id)
    refs = [ExampleRef(r.source, r.id, variant.family) for r in refs]
    cached = _cached_count(engine, settings, variant, refs)
    started = time.perf_counter()
    batch_id, chunks = create_evaluation_batch(engine, refs, [variant], batch_size=batch_size)
    runner(engine, settings, batch_id, chunks, stop=stop)
    with engine.connect() as conn:
        rows = {(r.example_source, r.example_id): r for r in conn.execute(
            select(EvaluationScore).where(EvaluationScore.batch_id == batch_id))}
    scores = TrialScores(metrics=[], seconds=time.perf_counter() - started, cached=cached)
    for ref in refs:
        row = rows.get((ref.source, ref.id))
        ok = row is not None and row.ok
        scores.metrics.append(json.loads(row.metrics) if ok else None)
        scores.outputs.append(row.output if row is not None else None)
        if not ok:
            scores.errors.append(row.error if row is not None else "not scored")
    scores.lm_calls = max(0, len(refs) - cached)
    return scores
