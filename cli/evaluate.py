"""``promptloop evaluate`` and ``promptloop datasets``: the production data pipeline from the shell."""

from __future__ import annotations

import time
from typing import Optional

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared.settings import Settings

from cli.datasets import datasets_app  # noqa: F401  (registered by cli.main from here)
from cli.models import models_app  # noqa: F401

#: Metrics shown next to ``overall`` in the results table, per family.
HEADLINE = {
    "entity_extraction": ("entity_f1", "format_compliance", "hallucination_rate"),
    "relationship_extraction": ("relation_f1", "format_compliance", "hallucination_rate"),
    "summarization": ("rougeL", "format_compliance", "hallucination_rate"),
    "query_processing": ("format_compliance", "hallucination_rate"),
    "document_analysis": ("entity_f1", "format_compliance", "hallucination_rate"),
    "answer_generation": ("answer_containment", "token_f1", "hallucination_rate"),
    "context_compression": ("supporting_recall", "answer_retained", "compression"),
    "question_reformulation": ("term_recall", "answer_leak", "format_compliance"),
}


SHORT = {"entity_f1": "F1", "relation_f1": "relF1", "format_compliance": "fmt", "hallucination_rate": "halluc",
         "rougeL": "RL", "answer_containment": "ans", "token_f1": "tokF1", "supporting_recall": "supp",
         "answer_retained": "kept", "compression": "compr", "term_recall": "terms", "answer_leak": "leak"}


def _split(value: Optional[str]) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def results_table(engine, batch_id: int) -> Table:
    """One row per variant: overall (mean ± std, n, failed) and its family's headline metrics."""
    from sqlalchemy import select

    from shared.models import EvaluationResult, PromptVariant

    with engine.connect() as conn:
        rows = conn.execute(select(EvaluationResult, PromptVariant.name)
                            .join(PromptVariant, PromptVariant.id == EvaluationResult.variant_id)
                            .where(EvaluationResult.batch_id == batch_id)).all()
    by_variant: dict[int, dict] = {}
    for r in rows:
        v = by_variant.setdefault(r.variant_id, {"name": r.name, "family": r.family, "model": r.model, "m": {}})
        v["m"][r.metric] = r
    table = Table("variant", "family", "model", "overall", "n", "fail", "metrics",
                  title=f"evaluation batch {batch_id}")
    for v in sorted(by_variant.values(), key=lambda v: (v["family"], v["model"], v["name"])):
        overall = v["m"].get("overall")
        headline = " ".join(f"{SHORT.get(k, k)} {v['m'][k].mean:.2f}" for k in HEADLINE.get(v["family"], ())
                            if k in v["m"])
        table.add_row(v["name"], v["family"], v["model"],
                      f"{overall.mean:.2f}±{overall.std:.2f}" if overall else "-",
                      str(overall.n if overall else 0), str(overall.n_failed if overall else 0), headline)
    return table


def run_evaluate(console: Console, s: Settings, hours: float, models: Optional[str], variants: Optional[str],
                 families: Optional[str], datasets: Optional[str], limit: Optional[int], batch_size: int,
                 min_text_length: int, teacher: Optional[str], timeout: float) -> int:
    """Build a batch, fan it out to the workers, show progress and the results. Returns an exit code.

    Exit 2: a filter names nothing that exists (the sentence lists what does); 1: nothing to evaluate
    (which filter emptied the set), the batch was not done in time (then it is cancelled), or every
    example failed (the most common error per variant x model is printed, with what to do).
    """
    import redis

    from shared.db import get_engine
    from shared.rediscon import get_redis
    from shared.evaluation import (batch_progress, cancel_evaluation_batch, collect_production_data,
                                   create_evaluation_batch, dataset_examples, find_variants, finish_evaluation_batch)
    from cli.evaluate_checks import check_filters, why_empty
    from cli.evaluate_failures import print_failures
    from cli.runtime import require_migrated
    from tasks.evaluate import dispatch_batch

    require_migrated(console, s)
    engine = get_engine(s)
    model_keys = _split(models) or list(s.models)
    unknown = set(model_keys) - set(s.models)
    if unknown:
        console.print(f"[red]unknown model keys {sorted(unknown)}; PROMPTLOOP_MODELS has {sorted(s.models)}[/red]")
        return 2
    family_names, dataset_names, variant_names = _split(families), _split(datasets), _split(variants)
    problem = check_filters(engine, s, family_names, dataset_names, variant_names, teacher, limit)
    if problem:
        console.print(f"[red]{problem}[/red]", highlight=False)
        return 2
    examples = collect_production_data(engine, hours, model_keys, min_text_length, family_names)
    console.print(f"{len(examples)} production examples from the last {hours:g} h")
    if dataset_names:
        imported = dataset_examples(engine, family_names, dataset_names, limit)
        console.print(f"{len(imported)} dataset examples ({datasets}, up to {limit or 'all'} per family)")
        examples += imported
    chosen = find_variants(engine, family_names or sorted({e.family for e in examples}), model_keys, variant_names)
    if not examples or not chosen:
        console.print(f"[yellow]{why_empty(engine, examples, chosen, hours, model_keys, family_names, dataset_names, variant_names, min_text_length)}[/yellow]",
                      highlight=False)
        return 1
    try:  # the workers are reached through Redis: know it answers before recording a batch nobody will run
        get_redis(s).ping()
    except redis.RedisError as exc:
        from cli.errors import explain

        console.print(f"[red]{explain(exc)}[/red]", highlight=False)
        return 1
    batch_id, chunks = create_evaluation_batch(engine, examples, chosen, batch_size, teacher)
    done, total, status = batch_progress(engine, batch_id)
    console.print(f"batch {batch_id}: {len(chosen)} variants, {total} items in {len(chunks)} chunks")
    dispatch_batch(batch_id, chunks)
    deadline = time.monotonic() + timeout
    columns = [TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("evaluate", total=total)
        while time.monotonic() < deadline:
            done, total, status = batch_progress(engine, batch_id)
            progress.update(task, completed=done)
            if status == "done":
                break
            time.sleep(0.5)
    if status != "done":
        if done < total and cancel_evaluation_batch(engine, batch_id):
            console.print(f"[red]batch {batch_id} cancelled after {timeout:g}s with {done}/{total} items done "
                          f"(its queued chunks will be skipped): {_who_evaluates()}[/red]", highlight=False)
            if done:
                print_failures(console, engine, batch_id)
            return 1
        finish_evaluation_batch(engine, batch_id)  # every item scored, the callback is late: aggregate here
    console.print(results_table(engine, batch_id))
    return 1 if print_failures(console, engine, batch_id) else 0


def _who_evaluates() -> str:
    """Whether any worker consumes the evaluate queue, as advice."""
    from workers.app import app

    try:
        queues = app.control.inspect(timeout=1.0).active_queues() or {}
    except Exception:  # kombu raises several connection types
        return "could not ask the workers (is the broker up?)"
    names = sorted(w for w, qs in queues.items() if any(q.get("name") == "evaluate" for q in qs))
    if not names:
        return "no worker consumes the 'evaluate' queue; start one with `promptloop worker -Q evaluate`"
    return f"{len(names)} worker(s) consume the 'evaluate' queue ({', '.join(names)}); give slow models a longer --timeout"
