"""``promptloop optimize`` and ``promptloop variants``: make candidate prompts, look at them, export them."""

from __future__ import annotations

import difflib
import json
import time
from typing import Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from cli.common import console
from cli.common import env as _env
from cli.common import fail as _fail

optimize_app = typer.Typer(help="DSPy optimization of a family's prompt on one model.", invoke_without_command=True)
variants_app = typer.Typer(help="Prompt variants: list, show, diff, export for LightRAG.", no_args_is_help=True)


@optimize_app.callback()
def optimize(ctx: typer.Context,
             family: Optional[str] = typer.Option(None, help="Prompt family, e.g. entity_extraction."),
             model: Optional[str] = typer.Option(None, help="Model key from PROMPTLOOP_MODELS."),
             optimizer: Optional[str] = typer.Option(None, help="demos, mipro, gepa, prune or rules (default: PROMPTLOOP_OPTIMIZERS)."),
             parent: Optional[str] = typer.Option(None, help="The variant to improve, as an id or FAMILY/MODEL/NAME "
                                                  "(default: the active one), e.g. a DSPY_A to prune."),
             budget_calls: Optional[int] = typer.Option(None, min=1, help="LM calls the run may spend."),
             budget_minutes: Optional[float] = typer.Option(None, min=0.01, help="Wall time the run may spend."),
             dataset: Optional[str] = typer.Option(None, help="Optimize on an imported dataset instead of production examples."),
             train: Optional[int] = typer.Option(None, min=1, help="Search examples."),
             val: Optional[int] = typer.Option(None, min=1, help="Validation examples."),
             seed: int = typer.Option(0),
             rules_file: Optional[str] = typer.Option(None, help="The rules optimizer's bank: a text file, one rule "
                                                      "a line (default: the family's own bank)."),
             on_workers: bool = typer.Option(False, "--on-workers", help="Run as a job on the optimize queue; "
                                             "candidates are scored on the evaluate queue.")) -> None:
    """Optimize a family's prompt on one model and register the best candidate (DSPY_A, DSPY_B, ...)."""
    if ctx.invoked_subcommand is not None:
        return
    if not family or not model:
        _fail("name the prompt family and the model: promptloop optimize --family entity_extraction --model 1.5b")
    from shared.migrate import upgrade
    from shared.optimize.start import start_optimization

    s, engine = _env()
    upgrade(engine)
    parent_id = _variant(engine, parent).id if parent else None
    optimizer = optimizer or s.optimizer_for(family)
    options = {"rules": _rules(rules_file, optimizer)} if rules_file is not None else None
    try:
        run_id = start_optimization(engine, s, family=family, model=model, optimizer=optimizer, optimizer_options=options,
                                    budget_calls=budget_calls or s.optimize_budget_calls, budget_minutes=budget_minutes,
                                    dataset=dataset, n_train=train or s.optimize_train, n_val=val or s.optimize_val,
                                    seed=seed, proposer=s.proposer_model or None, parent_id=parent_id)
    except ValueError as exc:
        _fail(str(exc))
    console.print(f"optimization run {run_id}: {family} on {model}")
    if on_workers:
        from kombu.exceptions import OperationalError as BrokerError

        from shared.optimize.runs import request_cancel
        from tasks.optimize import optimize_run

        try:
            optimize_run.delay(run_id)
        # kombu raises OperationalError; Celery's Redis result backend gives up with RuntimeError.
        except (BrokerError, RuntimeError) as exc:
            request_cancel(engine, run_id)  # nothing will run it: don't leave it pending
            _fail(f"could not reach the broker at {s.redis_url} ({exc}); start Redis, or run without --on-workers", 1)
        _follow(engine, run_id)
    else:
        _run_here(engine, s, run_id)
    _print_run(engine, run_id)


def _rules(path: str, optimizer: str) -> list[str]:
    """The non-blank lines of ``path``; one sentence when they cannot be the rules of this run."""
    if optimizer != "rules":
        _fail(f"--rules-file is for the rules optimizer, not {optimizer}: add --optimizer rules")
    try:
        with open(path, encoding="utf-8-sig") as f:
            rules = [line.strip() for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"could not read the rules file {path} ({exc.__class__.__name__}); give a UTF-8 text file, one rule a line")
    if not rules:
        _fail(f"the rules file {path} has no rules: write one rule a line")
    return rules


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} calls"),
                    TextColumn("{task.fields[info]}"), console=console, transient=True)


def _run_here(engine, s, run_id: int) -> None:
    from shared.optimize.driver import run_optimization
    from shared.optimize.runs import load_run

    budget = json.loads(load_run(engine, run_id).settings)["budget_calls"]
    with _progress() as bar:
        task = bar.add_task("optimizing", total=budget, info="")

        def step(record, history, calls_left):
            best = max((h["score"] for h in history), default=0.0)
            bar.update(task, completed=budget - calls_left,
                       info=f"candidates {len(history) - 1}, best {best:.3f}, LM calls left {calls_left}")

        run_optimization(engine, s, run_id, ttl_s=s.optimize_lease_s, progress=step)


def _follow(engine, run_id: int) -> None:
    from shared.optimize.runs import load_run, load_trials

    run = load_run(engine, run_id)
    budget = json.loads(run.settings)["budget_calls"]
    with _progress() as bar:
        task = bar.add_task("on workers", total=budget, info="waiting for a worker on the optimize queue")
        while run.status in ("pending", "running"):
            trials = load_trials(engine, run_id)
            best = max((t["score"] for t in trials), default=0.0)
            bar.update(task, completed=run.lm_calls, info=f"candidates {max(0, len(trials) - 1)}, best {best:.3f}, "
                       f"LM calls left {budget - run.lm_calls}")
            time.sleep(1)
            run = load_run(engine, run_id)


def _print_run(engine, run_id: int) -> None:
    from shared.optimize.runs import load_run

    run = load_run(engine, run_id)
    console.print(f"run {run.id}: {run.status} — {run.stop_reason}")
    console.print(f"cost: {run.lm_calls} LM calls ({run.cached_calls} answered from cache), {run.seconds:.0f} s scoring")
    result = json.loads(run.result or "{}")
    if "validation" in result:
        table = Table("metric", "parent", "candidate")
        for metric, value in result["validation"]["candidate"].items():
            if isinstance(value, float):
                table.add_row(metric, f"{result['validation']['parent'].get(metric, 0):.3f}", f"{value:.3f}")
        console.print(table)
    if run.best_variant_id:
        console.print(f"candidate registered: variant {run.best_variant_id} "
                      f"(promptloop variants export {run.best_variant_id} --lightrag)")


@optimize_app.command("cancel")
def cancel(run_id: int = typer.Argument(..., min=1, max=2 ** 63 - 1, help="The run to stop.")) -> None:
    """Ask a running optimization to stop after its current candidate."""
    from shared.optimize.runs import request_cancel

    _, engine = _env()
    try:
        status = request_cancel(engine, run_id)
    except LookupError as exc:
        _fail(str(exc))
    console.print(f"run {run_id}: {status}" + (" (stops after its current candidate)" if status == "running" else ""))


@optimize_app.command("history")
def history(family: Optional[str] = typer.Option(None), model: Optional[str] = typer.Option(None),
            limit: int = typer.Option(20, min=1)) -> None:
    """Past optimization runs per family x model: outcome, cost, validation score against the parent."""
    from shared.optimize.history import run_history

    _, engine = _env()
    rows = run_history(engine, family=family, model=model, limit=limit)
    if not rows:
        console.print("no optimization runs yet")
        return
    table = Table("run", "family", "model", "optimizer", "status", "LM calls", "minutes", "parent", "candidate",
                  "registered", "why it stopped")
    for r in rows:
        table.add_row(str(r["id"]), r["family"], r["model"], r["optimizer"], r["status"], str(r["lm_calls"]),
                      f"{r['seconds'] / 60:.1f}", _fmt(r["parent_objective"]), _fmt(r["candidate_objective"]),
                      r["candidate"] or "-", (r["stop_reason"] or "")[:60])
    console.print(table)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


# ----- variants -----------------------------------------------------------------------------------

def _variant(engine, ref: str):
    from shared.optimize.history import find_variant

    try:
        return find_variant(engine, ref)
    except LookupError as exc:
        _fail(str(exc))


@variants_app.command("list")
def variants_list(family: Optional[str] = typer.Option(None), model: Optional[str] = typer.Option(None),
                  all_: bool = typer.Option(False, "--all", help="Include optimization trials.")) -> None:
    """Variants per family x model with their status and parent."""
    from shared.optimize.history import list_variants

    _, engine = _env()
    table = Table("id", "family", "model", "name", "status", "parent", "created")
    for v in list_variants(engine, family=family, model=model, include_trials=all_):
        table.add_row(str(v.id), v.family, v.model, v.name, v.status, str(v.parent_id or "-"), str(v.created_at)[:19])
    console.print(table)


@variants_app.command("show")
def variants_show(variant: str = typer.Argument(..., help="Variant id, or FAMILY/MODEL/NAME.")) -> None:
    """A variant's prompt as the model receives it."""
    from shared.families.template import PromptTemplate

    _, engine = _env()
    v = _variant(engine, variant)
    t = PromptTemplate.from_json(v.template)
    console.print(f"[bold]{v.id} {v.family}/{v.model}/{v.name}[/bold] ({v.status}, parent {v.parent_id or '-'})")
    if t.system:
        console.print("[bold]--- system ---[/bold]")
        console.print(t.system, markup=False, highlight=False)
    console.print("[bold]--- user ---[/bold]")
    console.print(t.user, markup=False, highlight=False)


@variants_app.command("diff")
def variants_diff(a: str, b: str) -> None:
    """A unified diff of two variants' prompts."""
    from shared.families.template import PromptTemplate

    _, engine = _env()
    va, vb = _variant(engine, a), _variant(engine, b)
    ta, tb = PromptTemplate.from_json(va.template), PromptTemplate.from_json(vb.template)
    text_a = f"{ta.system}\n--- user ---\n{ta.user}".splitlines()
    text_b = f"{tb.system}\n--- user ---\n{tb.user}".splitlines()
    diff = list(difflib.unified_diff(text_a, text_b, f"{va.name}", f"{vb.name}", lineterm=""))
    console.print("\n".join(diff) if diff else "identical", markup=False, highlight=False)


@variants_app.command("export")
def variants_export(variant: str, lightrag: bool = typer.Option(False, "--lightrag", help=(
        "JSON of LightRAG PROMPTS keys: lightrag.prompt.PROMPTS.update(json.load(f)) makes LightRAG send it."))) -> None:
    """A variant as JSON (its template, or with --lightrag the PROMPTS values LightRAG needs)."""
    from shared.families.template import PromptTemplate
    from shared.optimize.promptset import export_lightrag

    _, engine = _env()
    v = _variant(engine, variant)
    t = PromptTemplate.from_json(v.template)
    if lightrag:
        try:
            data = export_lightrag(t)
        except ValueError as exc:
            _fail(str(exc))
    else:
        data = {"family": v.family, "model": v.model, "name": v.name, "system": t.system, "user": t.user}
    typer.echo(json.dumps(data, indent=1, ensure_ascii=False))
