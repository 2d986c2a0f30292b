"""Creating an optimization run: its parent (the active variant), its examples, its settings."""

from __future__ import annotations

import random

from sqlalchemy import Engine, select

from ..evaluation import ExampleRef, collect_production_data, register_baselines
from ..families import get_family
from ..models import EvalExample
from ..settings import Settings
from . import runs
from .registry import prepare_options
from .variants import active_variant


def pick_examples(engine: Engine, family: str, model: str, dataset: str | None, n_train: int, n_val: int,
                  seed: int, exclude_split: str = "train") -> tuple[list[ExampleRef], list[ExampleRef]]:
    """A seeded, disjoint search set and validation set: a dataset's held-out split, or production examples."""
    if dataset:
        with engine.connect() as conn:
            rows = conn.execute(select(EvalExample.id, EvalExample.split).where(
                EvalExample.family == family, EvalExample.dataset == dataset).order_by(EvalExample.id)).all()
        if not rows:
            raise ValueError(f"no {family} examples from dataset {dataset!r}: run `promptloop datasets import`")
        held_out = [i for i, split in rows if split != exclude_split] or [i for i, _ in rows]
        refs = [ExampleRef("dataset", i, family) for i in held_out]
    else:
        refs = collect_production_data(engine, hours_back=24 * 30, models=[model], families=[family])
        if not refs:
            raise ValueError(f"no production examples of {family} on {model} yet; pass --dataset to optimize on one")
    refs = list(refs)
    random.Random(seed).shuffle(refs)
    if len(refs) < n_train + n_val:
        raise ValueError(f"{len(refs)} examples available, {n_train} + {n_val} asked for")
    return refs[:n_train], refs[n_train:n_train + n_val]


def start_optimization(engine: Engine, settings: Settings, *, family: str, model: str, optimizer: str,
                       budget_calls: int = 300, budget_minutes: float | None = None, dataset: str | None = None,
                       n_train: int = 10, n_val: int = 10, seed: int = 0, objective: dict | None = None,
                       optimizer_options: dict | None = None, train: list[ExampleRef] | None = None,
                       val: list[ExampleRef] | None = None, proposer: str | None = None,
                       job_id: str | None = None, chunk_size: int = 10, parent_id: int | None = None) -> int:
    """Record a pending optimization of family x model and return its id (run it with ``run_optimization``).

    The run improves ``parent_id`` (a variant of the same family x model, e.g. a candidate another
    optimizer made), by default the active variant.
    """
    get_family(family)
    optimizer_options = prepare_options(optimizer, family, optimizer_options)
    if model not in settings.models:
        raise ValueError(f"no model configured for {model!r}; PROMPTLOOP_MODELS has {', '.join(settings.models)}")
    if proposer and proposer not in settings.models:
        raise ValueError(f"no model configured for the proposer {proposer!r}; PROMPTLOOP_MODELS has "
                         f"{', '.join(settings.models)}")
    if budget_calls < 1:
        raise ValueError("the LM-call budget must be at least 1")
    parent = active_variant(engine, family, model)
    if parent is None:
        register_baselines(engine, [model], [family])
        parent = active_variant(engine, family, model)
    if parent_id is not None:
        parent = _variant_of(engine, parent_id, family, model)
    if train is None or val is None:
        train, val = pick_examples(engine, family, model, dataset, n_train, n_val, seed)
    options = {"budget_calls": budget_calls, "budget_minutes": budget_minutes, "dataset": dataset,
               "objective": objective, "optimizer_options": optimizer_options, "proposer": proposer or model,
               "chunk_size": chunk_size, "lm": runs.lm_settings(settings, model),
               "proposer_lm": runs.lm_settings(settings, proposer or model)}
    return runs.create_run(engine, job_id=job_id, family=family, model=model, optimizer=optimizer, seed=seed, parent_id=parent.id,
                           settings=options, train=[[r.source, r.id] for r in train], val=[[r.source, r.id] for r in val])


def _variant_of(engine: Engine, variant_id: int, family: str, model: str):
    from ..models import PromptVariant

    with engine.connect() as conn:
        row = conn.execute(select(PromptVariant).where(PromptVariant.id == variant_id)).first()
    if row is None:
        raise ValueError(f"no variant {variant_id}; `promptloop variants list` shows them")
    if (row.family, row.model) != (family, model):
        raise ValueError(f"variant {variant_id} is {row.family} on {row.model}, not {family} on {model}")
    return row


def run_for_job(engine: Engine, settings: Settings, *, job_id: str, **kwargs) -> int:
    """The run created for job ``job_id``, created on its first delivery only."""
    from ..models import OptimizationRun

    with engine.connect() as conn:
        existing = conn.execute(select(OptimizationRun.id).where(OptimizationRun.job_id == job_id)).scalar()
    if existing is not None:
        return existing
    return start_optimization(engine, settings, job_id=job_id, **kwargs)
