"""``promptloop start``, ``promptloop recommendations`` and ``promptloop evaluate --optimize [--deploy]``."""

from __future__ import annotations

import signal
import time
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from shared.settings import Settings


def start(console: Console, s: Settings, worker: bool, beat: bool, queues: str, concurrency: int) -> int:
    """Run a worker and beat in the foreground until Ctrl-C (or SIGTERM), then stop both; an exit code."""
    from cli.runtime import require_migrated
    from shared.services import Services

    require_migrated(console, s)
    services = Services(s)
    stopping = []
    previous = signal.signal(signal.SIGTERM, lambda *_: stopping.append("SIGTERM"))
    try:
        pids = services.start(worker=worker, beat=beat, queues=queues, concurrency=concurrency)
        console.print(f"started {', '.join(f'{n} (pid {p})' for n, p in pids.items())}; logs in {s.data_dir / 'logs'}; "
                      "Ctrl-C stops them")
        while not stopping:
            ended = services.exited()
            if ended:
                console.print(f"[red]{', '.join(f'{n} exited with {c}' for n, c in ended.items())}: stopping[/red]")
                return 1
            time.sleep(0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        console.print("stopping (a worker finishes its current tasks first)")
        services.stop()
        signal.signal(signal.SIGTERM, previous)


def recommendations(console: Console, s: Settings, show_all: bool, deploy: Optional[int], dismiss: Optional[int],
                    reason: Optional[str], hold_s: Optional[float]) -> int:
    from shared.db import get_engine
    from shared.realtime.recommendations import deploy_recommendation, dismiss_recommendation, list_recommendations
    from shared.rollout.state import RolloutError

    engine = get_engine(s)
    try:
        if deploy is not None:
            rollout_id = deploy_recommendation(engine, s, deploy, hold_s=hold_s)
            console.print(f"recommendation {deploy}: rollout {rollout_id} started")
            _publish(console, s, engine)
            return 0
        if dismiss is not None:
            if not reason:
                console.print("[red]--dismiss needs --reason[/red]")
                return 2
            dismiss_recommendation(engine, dismiss, reason)
            console.print(f"recommendation {dismiss} dismissed")
            return 0
    except RolloutError as exc:
        console.print(f"[red]{exc}[/red]")
        return 1
    rows = list_recommendations(engine, None if show_all else "pending")
    table = Table("id", "candidate", "family", "model", "confidence", "status", "created", "reason",
                  title="recommendations" + ("" if show_all else " (pending)"))
    for r in rows:
        table.add_row(str(r["id"]), f"{r['name']} ({r['candidate_id']})", r["family"], r["model"],
                      "-" if r["confidence"] is None else f"{r['confidence']:.3f}", r["status"],
                      f"{r['created_at']:%Y-%m-%d %H:%M}", r["reason"])
    console.print(table if rows else "no recommendations" + ("" if show_all else " pending (--all shows every one)"))
    _print_candidates(console, engine)
    return 0


def _publish(console: Console, s: Settings, engine) -> None:
    """Producers see the rollout once its routes are in Redis; beat republishes them if Redis is down now."""
    import redis

    from cli.runtime import _without_password
    from shared.rollout.publish import publish

    try:
        publish(engine, redis.Redis.from_url(s.redis_url, socket_connect_timeout=2, socket_timeout=2))
    except redis.RedisError as exc:
        console.print(f"[yellow]stored, but Redis at {_without_password(s.redis_url)} is unreachable ({exc}); "
                      "beat publishes "
                      "the routes when it is back[/yellow]")


def _print_candidates(console: Console, engine) -> None:
    from shared.rollout.replacement import identify_replacement_candidates

    found = identify_replacement_candidates(engine)
    if found:
        console.print("candidates that beat their incumbent in evaluations, not validated yet "
                      "(`promptloop rollout start ID` validates and deploys one):")
        for c in found:
            console.print(f"  {c.variant_id} {c.name} {c.family} x {c.model}: +{c.delta:.3f} on {c.n_shared} examples")


def optimize_after_evaluate(console: Console, s: Settings, deploy: bool, timeout: float) -> int:
    """After ``evaluate``: for each family x model of the latest batch, validate a candidate that beat its
    incumbent, or else start an optimization; then wait for the outcomes. An exit code."""
    from shared.db import get_engine
    from shared.realtime.evaluate import act_on_batch, latest_batch, outcomes
    from tasks.realtime import send_optimization, send_validation

    engine = get_engine(s)
    batch_id = latest_batch(engine)
    if batch_id is None:
        console.print("[yellow]no evaluation batch to act on[/yellow]")
        return 1
    actions = act_on_batch(engine, s, batch_id, deploy, send_optimization, send_validation)
    for a in actions:
        console.print(f"{a['family']} x {a['model']}: {a['what']}")
    deadline = time.monotonic() + timeout
    with console.status("waiting for optimizations and validations (Ctrl-C stops waiting; they go on)"):
        while time.monotonic() < deadline:
            rows = outcomes(engine, actions)
            if all(r["final"] for r in rows):
                break
            time.sleep(2)
    table = Table("family", "model", "action", "run", "result", title="after the evaluation")
    for r in rows:
        table.add_row(r["family"], r["model"], r["kind"], str(r.get("run_id") or "-"), r["result"])
    console.print(table)
    return 0 if all(r["final"] for r in rows) else 1


def register(app: typer.Typer, console: Console, settings) -> None:
    """Add ``start`` and ``recommendations`` to ``app`` (``settings()`` reads the environment or exits)."""
    from shared.services import ALL_QUEUES

    @app.command("start")
    def start_cmd(worker: bool = typer.Option(True, "--worker/--no-worker", help="Run a worker."),
                  beat: bool = typer.Option(True, "--beat/--no-beat", help="Run beat (one per deployment)."),
                  queues: str = typer.Option(ALL_QUEUES, "--queues", "-Q", help="Queues the worker consumes."),
                  concurrency: int = typer.Option(2, "--concurrency", "-c", min=1)) -> None:
        """Production mode on this machine: a worker and beat in the foreground; Ctrl-C stops both."""
        raise typer.Exit(start(console, settings(), worker, beat, queues, concurrency))

    @app.command("recommendations")
    def recommendations_cmd(show_all: bool = typer.Option(False, "--all", help="Every state, not only pending."),
                            deploy: Optional[int] = typer.Option(None, "--deploy", metavar="ID",
                                                                 help="Start the rollout of recommendation ID."),
                            dismiss: Optional[int] = typer.Option(None, "--dismiss", metavar="ID",
                                                                  help="Dismiss recommendation ID (with --reason)."),
                            reason: Optional[str] = typer.Option(None, "--reason", help="Why it is dismissed."),
                            hold_s: Optional[float] = typer.Option(None, "--hold-s", min=0,
                                                                   help="Hold per rollout step (default: settings).")
                            ) -> None:
        """Validated candidates waiting for a person (DSPY_AUTO_OPTIMIZE off): list, deploy or dismiss."""
        raise typer.Exit(recommendations(console, settings(), show_all, deploy, dismiss, reason, hold_s))
