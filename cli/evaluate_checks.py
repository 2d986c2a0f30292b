"""``promptloop evaluate`` explains itself: filters checked against what exists, an empty set explained.

``check_filters`` names the known values of a filter that matches nothing; ``why_empty`` says which
filter emptied the set of examples or variants.
"""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from cli.checks import unknown_family
from shared.settings import Settings


def _names(values) -> str:
    values = sorted(values)
    return ", ".join(values) if values else "none"


def check_filters(engine: Engine, s: Settings, families: list[str] | None, datasets: list[str] | None,
                  variants: list[str] | None, teacher: str | None, limit: int | None) -> str | None:
    """One sentence about the first filter value that names nothing, or None when all are valid."""
    from shared.datasets import LOADERS
    from shared.evaluation import LIVE_STATUSES
    from shared.models import EvalExample, PromptVariant

    if limit is not None and limit < 1:
        return f"--limit must be at least 1 (dataset examples per family), got {limit}"
    if limit is not None and not datasets:
        return "--limit counts dataset examples per family: add --dataset NAME"
    problem = unknown_family(families)
    if problem:
        return f"--family: {problem}"
    if teacher is not None and teacher not in s.models:
        return f"--teacher {teacher!r} is not a model key; PROMPTLOOP_MODELS has {_names(s.models)}"
    if datasets:
        with engine.connect() as conn:
            imported = set(conn.execute(select(EvalExample.dataset).distinct()).scalars())
        for name in datasets:
            if name in imported:
                continue
            if name in LOADERS:
                return f"dataset {name!r} is not imported yet: run `promptloop datasets import --name {name}`"
            return (f"unknown dataset {name!r}; imported: {_names(imported)} (import your own with "
                    "`promptloop datasets import-jsonl FILE --family F --name NAME`)")
    if variants:
        with engine.connect() as conn:
            live = set(conn.execute(select(PromptVariant.name).distinct()
                                    .where(PromptVariant.status.in_(LIVE_STATUSES))).scalars())
        unknown = [v for v in variants if v not in live]
        if unknown:
            return f"--variants: no live variant named {', '.join(map(repr, unknown))}; live: {_names(live)}"
    return None


def _production_reason(engine: Engine, hours: float, models: list[str], families: list[str] | None,
                       min_text_length: int) -> str:
    from shared.models import ProductionExample

    steps = [(f"in the last {hours:g} h (--hours)", ProductionExample.ts >= _since(hours)),
             (f"from models {', '.join(models)} (--models)", ProductionExample.model.in_(models))]
    if families:
        steps.append((f"of family {', '.join(families)} (--family)", ProductionExample.family.in_(families)))
    if min_text_length:
        steps.append((f"with inputs of {min_text_length}+ characters (--min-text-length)",
                      func.length(ProductionExample.input) >= min_text_length))
    query = select(func.count()).select_from(ProductionExample)
    with engine.connect() as conn:
        if not conn.execute(query).scalar_one():
            return "no production examples stored yet (LightRAG sends them through the client)"
        said = []
        for what, condition in steps:
            query = query.where(condition)
            if not conn.execute(query).scalar_one():
                return "no production examples " + " ".join(said + [what])
            said.append(what)
    return "no production examples"


def _dataset_reason(engine: Engine, datasets: list[str] | None, families: list[str] | None) -> str:
    from shared.models import EvalExample

    if not datasets:
        return "no --dataset given"
    with engine.connect() as conn:
        present = set(conn.execute(select(EvalExample.family).distinct()
                                   .where(EvalExample.dataset.in_(datasets))).scalars())
    return (f"dataset {', '.join(datasets)} has no examples of family {', '.join(families or [])} "
            f"(it has {_names(present)})")


def _since(hours: float):
    from datetime import datetime, timedelta, timezone

    return datetime.now(timezone.utc) - timedelta(hours=hours)


def why_empty(engine: Engine, examples: list, chosen: list, hours: float, models: list[str],
              families: list[str] | None, datasets: list[str] | None, variants: list[str] | None,
              min_text_length: int) -> str:
    """Which filter left nothing to evaluate, as one sentence."""
    from shared.evaluation import find_variants

    if not examples:
        return (f"nothing to evaluate: {_production_reason(engine, hours, models, families, min_text_length)}; "
                f"{_dataset_reason(engine, datasets, families)}")
    wanted = sorted({e.family for e in examples})
    if not find_variants(engine, wanted):
        return (f"nothing to evaluate: no live variants of {', '.join(wanted)}: run `promptloop init` "
                "to register the baselines")
    if not find_variants(engine, wanted, models):
        return (f"nothing to evaluate: no live variants for models {', '.join(models)} (--models) of "
                f"{', '.join(wanted)}: run `promptloop init` with these models in PROMPTLOOP_MODELS")
    return (f"nothing to evaluate: no live variant named {', '.join(variants or [])} (--variants) of "
            f"{', '.join(wanted)} for models {', '.join(models)}")
