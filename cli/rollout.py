"""``promptloop rollout``: validate and deploy a candidate, watch its rollout, act on it with a reason."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from cli.common import console
from cli.common import env as _env
from cli.common import fail as _fail

rollout_app = typer.Typer(help="Gradual rollouts of candidate prompts (10 -> 25 -> 50 -> 75 -> 100 %).",
                          no_args_is_help=True)


def _publish(s, engine) -> None:
    """Push the new routing state to Redis now; beat would do it within PROMPTLOOP_ROLLOUT_CHECK_S."""
    import redis

    from shared.rollout.publish import publish

    try:
        publish(engine, redis.Redis.from_url(s.redis_url, socket_connect_timeout=2, socket_timeout=2))
    except redis.RedisError as exc:
        console.print(f"[yellow]stored, but Redis at {s.redis_url} is unreachable ({exc}); beat publishes "
                      "the change when it is back[/yellow]")


@rollout_app.command("start")
def start(variant: int = typer.Argument(..., help="The candidate's variant id (promptloop variants list)."),
          percentage: float = typer.Option(0.10, help="First step: 0.10, 0.25, 0.50 or 0.75."),
          hold: Optional[float] = typer.Option(None, help="Seconds each step holds (default PROMPTLOOP_ROLLOUT_HOLD_S)."),
          skip_validation: bool = typer.Option(False, "--validated", help="Deploy the latest passed validation "
                                               "instead of validating again.")) -> None:
    """Validate a candidate against the active variant (held-out examples, paired test) and deploy it."""
    from shared.rollout.replacement import deploy_candidate, validate_candidate
    from shared.rollout.state import RolloutError

    s, engine = _env()
    try:
        if not skip_validation:
            outcome = validate_candidate(engine, s, variant)
            for stage in outcome["stages"]:
                mark = "[green]pass[/green]" if stage["passed"] else "[red]fail[/red]"
                console.print(f"{mark} {stage['stage']}: {stage['reason']}")
            if not outcome["passed"]:
                _fail(f"variant {variant} rejected; the incumbent keeps serving", 1)
        rollout_id = deploy_candidate(engine, s, variant, percentage, hold, actor="operator")
    except RolloutError as exc:
        _fail(str(exc))
    _publish(s, engine)
    console.print(f"rollout {rollout_id} started at {percentage:.0%}")


@rollout_app.command("status")
def status(rollout: Optional[int] = typer.Argument(None, help="One rollout's transitions.")) -> None:
    """Open rollouts (or one rollout's history): step, share, last verdict, transitions."""
    from shared.rollout.status import describe, rollout_table

    s, engine = _env()
    if rollout is None:
        rows = rollout_table(engine)
        if not rows:
            console.print("no rollouts yet")
            return
        table = Table("id", "family", "model", "candidate", "incumbent", "status", "share", "last check")
        for r in rows:
            table.add_row(str(r["id"]), r["family"], r["model"], r["candidate"], r["incumbent"], r["status"],
                          f"{r['percentage']:.0%}", r["last_check"])
        console.print(table)
        return
    from shared.rollout.state import RolloutError

    try:
        info = describe(engine, rollout)
    except RolloutError as exc:
        _fail(str(exc))
    console.print(f"rollout {rollout}: {info['family']} x {info['model']}, {info['candidate']} over "
                  f"{info['incumbent']}: {info['status']} at {info['percentage']:.0%}")
    table = Table("version", "at", "action", "share", "by", "reason")
    for t in info["transitions"]:
        table.add_row(str(t["version"]), t["at"], t["action"], f"{t['from']} -> {t['to']}", t["actor"], t["reason"])
    console.print(table)


def _act(action: str, rollout: int, reason: str) -> None:
    from shared.rollout.state import RolloutError, get, transition

    s, engine = _env()
    try:
        current = get(engine, rollout)
        after = transition(engine, rollout, current.version, action, actor="operator", reason=reason)
    except RolloutError as exc:
        _fail(str(exc))
    _publish(s, engine)
    console.print(f"rollout {rollout}: {after.status} at {after.percentage:.0%}")


_REASON = typer.Option(..., "--reason", "-r", help="Why (stored with the transition).")


@rollout_app.command("pause")
def pause(rollout: int, reason: str = _REASON) -> None:
    """Hold the rollout at its current share; beat will not promote or roll it back."""
    _act("pause", rollout, reason)


@rollout_app.command("resume")
def resume(rollout: int, reason: str = _REASON) -> None:
    """Let beat judge the rollout again (the current step's hold starts over)."""
    _act("resume", rollout, reason)


@rollout_app.command("promote")
def promote(rollout: int, reason: str = _REASON) -> None:
    """Move the rollout one step up now (at 100 % the candidate becomes the active variant)."""
    _act("promote", rollout, reason)


@rollout_app.command("rollback")
def rollback(rollout: int, reason: str = _REASON) -> None:
    """Stop the rollout and restore the backed-up incumbent for every call."""
    _act("rollback", rollout, reason)


