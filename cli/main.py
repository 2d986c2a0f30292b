"""``promptloop``: set up, feed, run and watch the system."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.checks import NumbersAreValues, unknown_family
from cli.errors import App
from shared.settings import Settings, SettingsError, load_settings

app = App(add_completion=False, no_args_is_help=True, help=__doc__, pretty_exceptions_enable=False)
#: Wrapped at the terminal's width; not wrapped at all when piped (a copied line stays one line).
console = Console(soft_wrap=not sys.stdout.isatty())


def _register_subcommands() -> None:
    from cli.evaluate import datasets_app, models_app
    from cli.manager import register as register_manager
    from cli.optimize import optimize_app, variants_app
    from cli.rollout import rollout_app

    app.add_typer(optimize_app, name="optimize")
    app.add_typer(variants_app, name="variants")
    app.add_typer(datasets_app, name="datasets")
    app.add_typer(models_app, name="models")
    app.add_typer(rollout_app, name="rollout")
    register_manager(app, console, settings)  # start, recommendations
    app.command("report")(__import__("cli.report_html", fromlist=["report"]).report)
ALL_QUEUES = "ingest,evaluate,optimize,control"


def settings() -> Settings:
    """The environment's settings, or a clean exit naming the bad variable."""
    try:
        return load_settings()
    except SettingsError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None


def _client(s: Settings):
    from promptloop_client import Client

    return Client(s.redis_url)


def _send(emit) -> None:
    """Emit one event through the client and wait until Redis has it."""
    s = settings()
    client = _client(s)
    try:
        emit(client)
    except ValueError as exc:
        client.close(0)
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    if not client.close(timeout=5):
        console.print(f"[red]not delivered: Redis at {s.redis_url} unreachable ({client.stats()['last_error']})[/red]")
        raise typer.Exit(1)
    console.print("sent")


@app.command()
def init() -> None:
    """Create or upgrade the database schema and register the baseline prompts (safe to run again)."""
    from shared.db import get_engine
    from shared.evaluation import register_baselines
    from shared.migrate import current, upgrade

    s = settings()
    engine = get_engine(s)
    upgrade(engine)
    added = register_baselines(engine, list(s.models))
    console.print(f"database {engine.url.render_as_string(hide_password=True)} at revision {current(engine)}; "
                  f"{added} baseline variants registered for models {', '.join(s.models)}")


@app.command()
def evaluate(hours: float = typer.Option(24.0, help="Production examples from the last HOURS."),
             models: Optional[str] = typer.Option(None, help="Comma-separated model keys (default: all)."),
             variants: Optional[str] = typer.Option(None, help="Comma-separated variant names (default: all live)."),
             family: Optional[str] = typer.Option(None, help="Comma-separated prompt families."),
             dataset: Optional[str] = typer.Option(None, help="Also imported datasets: conll04,scitldr,xquad,hotpotqa."),
             limit: Optional[int] = typer.Option(None, help="At most this many dataset examples per family."),
             batch_size: int = typer.Option(20, "--batch-size", min=1, help="Examples per chunk (one task)."),
             min_text_length: int = typer.Option(0, help="Skip production examples with shorter inputs."),
             teacher: Optional[str] = typer.Option(None, help="Model key whose baseline output is the reference "
                                                            "for examples without one (opt-in)."),
             optimize: bool = typer.Option(False, "--optimize", help="Then validate candidates that beat the active "
                                           "variant, or optimize where none did, and wait for the outcomes."),
             deploy: bool = typer.Option(False, "--deploy", help="With --optimize: deploy what passes validation."),
             timeout: float = typer.Option(3600.0, help="Give up waiting after this many seconds.")) -> None:
    """Score prompt variants on production examples (and datasets) across the workers; print the results."""
    from cli.evaluate import run_evaluate

    code = run_evaluate(console, settings(), hours, models, variants, family, dataset, limit, batch_size,
                        min_text_length, teacher, timeout)
    if optimize and code == 0:
        from cli.manager import optimize_after_evaluate

        code = optimize_after_evaluate(console, settings(), deploy, timeout)
    sys.exit(code)


@app.command(cls=NumbersAreValues)
def feedback(variant: str, model: str, score: float, feedback_type: str = typer.Argument("quality")) -> None:
    """Record a user's 0..1 rating of VARIANT on MODEL."""
    _send(lambda c: c.feedback(variant, model, score, feedback_type))


@app.command(cls=NumbersAreValues)
def metrics(variant: str, model: str, latency_ms: float,
            failed: bool = typer.Option(False, "--failed", help="The call failed."),
            quality: Optional[float] = typer.Option(None, help="Quality score 0..1."),
            family: Optional[str] = typer.Option(None, help="Prompt family of the call.")) -> None:
    """Record one call of VARIANT on MODEL that took LATENCY_MS."""
    if family is not None and unknown_family([family]):
        console.print(f"[red]{unknown_family([family])}[/red]")
        raise typer.Exit(2)
    _send(lambda c: c.metric(variant, model, latency_ms, not failed, quality=quality, family=family))


@app.command()
def status(hours: float = typer.Option(1.0, help="Window for the per-variant counts.")) -> None:
    """Stream, dead letters, recent events per variant x model, and live workers."""
    from cli.report import print_status

    print_status(console, settings(), hours)


@app.command()
def worker(queues: str = typer.Option(ALL_QUEUES, "--queues", "-Q", help="Comma-separated queues to consume."),
           concurrency: int = typer.Option(2, "--concurrency", "-c"),
           loglevel: str = typer.Option("INFO"),
           hostname: Optional[str] = typer.Option(None, "--hostname", "-n")) -> None:
    """Run a Celery worker (prefork) on QUEUES. Start as many as you like, on any number of hosts."""
    from cli.runtime import require_migrated

    s = settings()
    require_migrated(console, s)
    from workers.app import app as celery_app

    argv = ["worker", "-Q", queues, "-c", str(concurrency), "--loglevel", loglevel, "-E"]
    if hostname:
        argv += ["-n", hostname]
    celery_app.worker_main(argv)


@app.command()
def beat(loglevel: str = typer.Option("INFO")) -> None:
    """Run the scheduler. Run exactly one per deployment."""
    s = settings()
    s.data_dir.mkdir(parents=True, exist_ok=True)
    from workers.app import app as celery_app

    celery_app.start(["beat", "-s", str(s.data_dir / "celerybeat-schedule"), "--loglevel", loglevel])


@app.command()
def demo(baseline: float = typer.Option(30.0, min=5, help="Seconds of healthy traffic before the model drifts (not with --model)."),
         timeout: Optional[float] = typer.Option(None, min=30, help="Give up after this many seconds of the loop "
                                                 "(default 600; 4 hours with --model)."),
         model: Optional[str] = typer.Option(None, "--model", help="A real model instead of the scripted one: "
                                             "a local model (1.5b, 0.5b; `promptloop models fetch`) or a "
                                             "model string (ollama_chat/qwen2.5:3b)."),
         data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Where the demo keeps its database, "
                                                 "logs and report (default: a new temporary folder)."),
         redis_url: Optional[str] = typer.Option(None, "--redis-url", help="Use this Redis instead of a private "
                                                 "one (refused if a beat already runs there)."),
         flower: bool = typer.Option(False, "--flower", help="Also start Flower on :5555 (FLOWER_BASIC_AUTH)."),
         ingest_only: bool = typer.Option(False, "--ingest-only", help="Only the ingest burst (the first demo)."),
         events: int = typer.Option(5000, help="With --ingest-only: metric events in the burst.")) -> None:
    """The main job: the closed loop on this machine (traffic, drift, alert, optimization, rollout, rollback)."""
    if ingest_only:
        from cli.demo import run_demo

        sys.exit(run_demo(console, settings(), events, None))
    if flower:
        from cli.flower import auth_problem

        problem = auth_problem(os.environ.get("FLOWER_BASIC_AUTH"))
        if problem:
            console.print(f"[red]{problem}; Flower not started[/red]")
            raise typer.Exit(2)
    from cli.demo_loop import run_loop_demo

    settings()
    sys.exit(run_loop_demo(console, data_dir=data_dir, redis_url=redis_url, baseline_s=baseline, timeout_s=timeout,
                           flower=flower, model=model))


@app.command()
def flower(port: int = typer.Option(5555), address: str = typer.Option("127.0.0.1")) -> None:
    """Flower (jobs, workers, queues), only behind basic auth from FLOWER_BASIC_AUTH=user:password."""
    import os

    from cli.flower import auth_problem, run_flower

    problem = auth_problem(os.environ.get("FLOWER_BASIC_AUTH"))
    if problem:
        console.print(f"[red]{problem}; Flower not started[/red]")
        raise typer.Exit(2)
    settings()
    run_flower(port, address)


@app.command("dead-letters")
def dead_letters(limit: int = typer.Option(20),
                 replay: bool = typer.Option(False, "--replay", help="Send every dead letter through ingest again."),
                 ids: Optional[list[int]] = typer.Option(None, "--id", help="Replay only these ids.")) -> None:
    """The newest dead letters and why each was refused; --replay sends them through ingest again."""
    from shared.db import get_engine
    from shared.rediscon import get_redis
    from shared.status import recent_dead_letters

    from cli.runtime import require_migrated

    s = settings()
    require_migrated(console, s)
    if replay or ids:
        from shared.deadletters import missing_ids, replay as replay_letters

        missing = missing_ids(get_engine(s), ids or [])
        if missing:
            console.print(f"[red]no dead letter with id {', '.join(map(str, missing))}; "
                          "`promptloop dead-letters` lists them[/red]")
            raise typer.Exit(2)
        count = replay_letters(get_engine(s), get_redis(s), ids or None)
        console.print(f"replayed {count} dead letters")
        return
    table = Table("id", "stream id", "deliveries", "reason")
    for row in recent_dead_letters(get_engine(s), limit):
        table.add_row(str(row["id"]), row["stream_id"], str(row["delivery_count"]), row["reason"])
    console.print(table)


_register_subcommands()

if __name__ == "__main__":
    app()
