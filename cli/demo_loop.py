"""``promptloop demo``: the closed loop on this machine, unattended, in a few minutes.

1. a private redis-server (a free port) and SQLite in a fresh data directory; two workers and beat;
2. a real LightRAG instance inserting CoNLL04 sentences, instrumented with the client and a Router;
   its model is scripted (``scripted/drift``) and extracts cleanly;
3. the model drifts (the demo flips its flag): quality falls, an alert fires, the real-time optimizer
   starts an optimization, its candidate is validated, deployed and promoted 10 -> 100% by beat;
4. a second, worse candidate is forced past validation (the demo says so) and beat rolls it back;
5. the timeline, the time from the drift to the promoted fix, and the report (PNGs + HTML).
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console

FAMILY = "entity_extraction"


def _wait(engine, console, done, deadline, shown, t0) -> bool:
    """Poll SQL each second, printing new timeline rows, until ``done()`` or the deadline."""
    from shared.demo.timeline import timeline

    while time.monotonic() < deadline:
        for when, what, detail in timeline(engine)[len(shown):]:
            shown.append((when, what, detail))
            console.print(f"  {(when - t0).total_seconds():+7.1f}s  [bold]{what}[/bold]  {detail}")
        if done():
            return True
        time.sleep(1.0)
    return False


def _status(engine, rollout_status):
    from sqlalchemy import select

    from shared.models import Rollout

    with engine.connect() as conn:
        return conn.execute(select(Rollout.id).where(Rollout.family == FAMILY, Rollout.status == rollout_status)
                            .order_by(Rollout.id.desc())).scalar()


def _force_worse_candidate(engine, settings) -> int:
    """LightRAG's default prompt again, as a candidate over the promoted one, pushed past validation."""
    from sqlalchemy import update

    from shared.families import get_family
    from shared.models import PromptVariant
    from shared.optimize.variants import register_candidate
    from shared.rollout.state import active_row, start_rollout

    with engine.begin() as conn:
        active = active_row(conn, FAMILY, "1.5b")
        cand = register_candidate(conn, FAMILY, "1.5b", get_family(FAMILY).baseline(), active.id)
        conn.execute(update(PromptVariant).where(PromptVariant.id == cand).values(status="validated"))
    return start_rollout(engine, cand, hold_s=settings.rollout_hold_s, actor="demo",
                         reason="forced past validation by the demo, to show an automatic rollback")


def run_loop_demo(console: Console, *, data_dir: Path | None, redis_url: str | None, baseline_s: float,
                  timeout_s: float, flower: bool) -> int:
    from cli.runtime import spawn, stop
    from shared.demo.setup import conll_sentences, demo_env, drift_flag
    from shared.local import RedisServer, free_port
    from shared.settings import load_settings

    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="promptloop-demo-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    redis_server = None
    if redis_url is None:
        redis_server = RedisServer(data_dir / "redis", free_port()).start()
        redis_url = redis_server.url
    elif _beat_running(redis_url):
        console.print(f"[red]a beat already runs on {redis_url}: run the demo on its own Redis (leave out "
                      "--redis-url) or stop that deployment's beat[/red]")
        return 2
    os.environ.update(demo_env(data_dir, redis_url))
    s = load_settings()
    console.print(f"data in {data_dir}; redis {redis_url}; model {s.models['1.5b']}")
    procs = []
    try:
        engine = _prepare(s)
        procs = [spawn(["worker", "-c", "1", "-Q", "ingest,control", "-n", "demo-control@%h"], s, "worker-control"),
                 spawn(["worker", "-c", "2", "-Q", "evaluate,optimize", "-n", "demo-lm@%h"], s, "worker-lm"),
                 spawn(["beat", "--loglevel", "WARNING"], s, "beat")]
        if flower:
            procs.append(spawn(["flower", "--port", "5555"], s, "flower"))
            console.print("Flower: http://127.0.0.1:5555 (FLOWER_BASIC_AUTH)")
        console.print(f"two workers and beat started; logs in {data_dir / 'logs'}")
        return _loop(console, s, engine, data_dir, conll_sentences(s.datasets_dir), drift_flag(data_dir), baseline_s,
                     timeout_s)
    finally:
        for proc in procs:
            stop(proc)
        if redis_server:
            redis_server.stop()


def _beat_running(url: str) -> bool:
    import redis

    from shared.monitoring.slots import last_tick

    try:
        tick = last_tick(redis.Redis.from_url(url, socket_connect_timeout=2))
    except redis.RedisError:
        return False
    return tick is not None and tick[1] < 30  # a beat ticks every second while it runs


def _prepare(s):
    from shared.config import AlertConfig
    from shared.datasets import import_datasets
    from shared.db import make_engine
    from shared.evaluation import register_baselines
    from shared.migrate import upgrade
    from shared.monitoring.alerts import add_rule

    engine = make_engine(s.sqlalchemy_url)
    upgrade(engine)
    register_baselines(engine, list(s.models), [FAMILY])
    import_datasets(engine, s.datasets_dir, names=["conll04"])
    add_rule(engine, "extraction quality", AlertConfig(metric_name="quality_mean", threshold=0.6,
                                                       comparison="less_than", window_minutes=0.5, min_samples=10),
             family=FAMILY)
    return engine


def _loop(console, s, engine, data_dir, sentences, flag, baseline_s, timeout_s) -> int:
    from shared.demo.timeline import timeline
    from shared.demo.traffic import Traffic
    from shared.report import write_report

    traffic = Traffic(data_dir / "lightrag", s.redis_url, "1.5b", s.models["1.5b"], sentences).start()
    try:
        console.print(f"LightRAG traffic for {baseline_s:.0f} s with a healthy model...")
        time.sleep(baseline_s)
        flag.touch()
        t0 = datetime.now(timezone.utc)
        console.print(f"[yellow]the model drifts now[/yellow] ({traffic.calls} LLM calls so far); what follows "
                      "happens by itself:")
        shown: list = []
        deadline = time.monotonic() + timeout_s
        if not _wait(engine, console, lambda: _status(engine, "promoted"), deadline, shown, t0):
            console.print(f"[red]no promoted fix within {timeout_s:.0f} s; see the logs in {data_dir / 'logs'}[/red]")
            return 1
        fixed = next(w for w, what, d in shown if what.endswith("promote") and "-> 100%" in d)
        worse = _force_worse_candidate(engine, s)
        console.print(f"a worse candidate goes out as rollout {worse}; beat should roll it back:")
        if not _wait(engine, console, lambda: _status(engine, "rolled_back"), deadline, shown, t0):
            console.print("[red]the worse candidate was not rolled back in time[/red]")
            return 1
        _wait(engine, console, lambda: True, time.monotonic() + 1, shown, t0)
    finally:
        traffic.stop()
    report = write_report(engine, data_dir / "report").html
    console.print(f"\n{len(timeline(engine))} steps; {traffic.calls} LightRAG LLM calls. "
                  f"[bold]From the drift to the promoted fix: {(fixed - t0).total_seconds():.0f} s[/bold]")
    console.print(f"report: {report}")
    return 0
