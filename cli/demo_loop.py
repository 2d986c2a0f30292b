"""``promptloop demo``: the closed loop on this machine, unattended, in a few minutes.

1. a private redis-server (a free port) and SQLite in a fresh data directory; two workers and beat;
2. a real LightRAG instance inserting CoNLL04 sentences, instrumented with the client and a Router;
   its model is scripted (``scripted/drift``) and extracts cleanly;
3. the model drifts (the demo flips its flag): quality falls, an alert fires, the real-time optimizer
   starts an optimization, its candidate is validated, deployed and promoted 10 -> 100% by beat;
4. a second, worse candidate is forced past validation (the demo says so) and beat rolls it back;
5. the timeline, the time from the drift to the promoted fix, and the report (PNGs + HTML).

With ``--model`` a real model (a local GGUF or any LiteLLM string) serves LightRAG and the workers.
A real model cannot be made to drift on cue, and nothing is faked in its place: the degradation is the
real one, LightRAG's default extraction prompt failing on a small model (on the 1.5B coder model,
format compliance 0.133 and entity F1 0.496 on 30 CoNLL04 sentences, ``bench/lightrag_baseline.py``). The demo's "users"
rate each answer (the same gold score, sent as feedback), the alert fires on the low quality, and the
optimization starts when the ratings reach ``DSPY_FEEDBACK_THRESHOLD`` (10 in the demo). The rest is
the same loop; how long it takes is the model's speed times a few hundred calls (the gate needs
significant evidence at each rollout step).
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
    """Poll SQL each second, printing new timeline rows, until ``done()`` or the deadline. A row can be
    committed after a later-stamped one was printed (an alert fired while a run finished, on a busy
    machine): rows are told apart by content, not by position, so such a row is printed late, not lost."""
    from shared.demo.timeline import timeline

    while time.monotonic() < deadline:
        for when, what, detail in [row for row in timeline(engine) if row not in shown]:
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


def _force_worse_candidate(engine, settings, model) -> int:
    """LightRAG's default prompt again, as a candidate over the promoted one, pushed past validation."""
    from sqlalchemy import update

    from shared.families import get_family
    from shared.models import PromptVariant
    from shared.optimize.variants import register_candidate
    from shared.rollout.state import active_row, start_rollout

    with engine.begin() as conn:
        active = active_row(conn, FAMILY, model)
        cand = register_candidate(conn, FAMILY, model, get_family(FAMILY).baseline(), active.id)
        conn.execute(update(PromptVariant).where(PromptVariant.id == cand).values(status="validated"))
    return start_rollout(engine, cand, hold_s=settings.rollout_hold_s, actor="demo",
                         reason="forced past validation by the demo, to show an automatic rollback")


def run_loop_demo(console: Console, *, data_dir: Path | None, redis_url: str | None, baseline_s: float,
                  timeout_s: float | None, flower: bool, model: str | None = None) -> int:
    from cli.runtime import spawn, stop
    from shared.demo.setup import conll_sentences, demo_env, demo_model, drift_flag
    from shared.local import RedisServer, free_port
    from shared.settings import load_settings

    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="promptloop-demo-"))
    try:
        key, spec = demo_model(model, data_dir)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    problem = _unusable(key, spec)
    if problem:
        console.print(f"[red]{problem}[/red]")
        return 2
    real = model is not None
    timeout_s = timeout_s or (4 * 3600.0 if real else 600.0)
    data_dir.mkdir(parents=True, exist_ok=True)
    redis_server = None
    if redis_url is None:
        redis_server = RedisServer(data_dir / "redis", free_port()).start()
        redis_url = redis_server.url
    elif _beat_running(redis_url):
        console.print(f"[red]a beat already runs on {redis_url}: run the demo on its own Redis (leave out "
                      "--redis-url) or stop that deployment's beat[/red]")
        return 2
    os.environ.update(demo_env(data_dir, redis_url, (key, spec)))
    s = load_settings()
    console.print(f"data in {data_dir}; redis {redis_url}; model {key}: {spec}")
    procs = []
    try:
        engine = _prepare(s, key, real)
        procs = [spawn(["worker", "-c", "1", "-Q", "ingest,control", "-n", "demo-control@%h"], s, "worker-control"),
                 spawn(["worker", "-c", "2", "-Q", "evaluate,optimize", "-n", "demo-lm@%h"], s, "worker-lm"),
                 spawn(["beat", "--loglevel", "WARNING"], s, "beat")]
        if flower:
            procs.append(spawn(["flower", "--port", "5555"], s, "flower"))
            console.print("Flower: http://127.0.0.1:5555 (FLOWER_BASIC_AUTH)")
        console.print(f"two workers and beat started; logs in {data_dir / 'logs'}")
        sentences = conll_sentences(s.datasets_dir)
        if real:
            return _real_model_loop(console, s, engine, data_dir, key, sentences, timeout_s)
        return _loop(console, s, engine, data_dir, sentences, drift_flag(data_dir), baseline_s, timeout_s)
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


def _unusable(key: str, spec: str) -> str | None:
    """One sentence when the demo's model cannot run here (a local model not fetched, no llama-cpp)."""
    if not spec.startswith("local/"):
        return None
    from shared.lm import local_model_path
    from shared.settings import load_settings

    target = spec.split("/", 1)[1]
    try:
        path = local_model_path(spec, load_settings())
    except ValueError as exc:
        return str(exc)
    if not path.exists():
        fix = "give the path of a GGUF file" if target.endswith(".gguf") else f"run `promptloop models fetch {key}` first"
        return f"the local model {target} is not here ({path}): {fix}"
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return ("local models need llama-cpp-python: CMAKE_ARGS=-DGGML_NATIVE=OFF pip install "
                "'promptloop[local]'")
    return None


def _prepare(s, model: str, real: bool):
    from shared.config import AlertConfig
    from shared.datasets import import_datasets
    from shared.db import make_engine
    from shared.evaluation import register_baselines
    from shared.migrate import upgrade
    from shared.monitoring.alerts import add_rule

    engine = make_engine(s.sqlalchemy_url)
    upgrade(engine)
    register_baselines(engine, [model], [FAMILY])
    import_datasets(engine, s.datasets_dir, names=["conll04"])
    window, samples = (10.0, 5) if real else (0.5, 10)  # a real model makes a few calls a minute
    add_rule(engine, "extraction quality", AlertConfig(metric_name="quality_mean", threshold=0.6,
                                                       comparison="less_than", window_minutes=window,
                                                       min_samples=samples), family=FAMILY)
    return engine


def _loop(console, s, engine, data_dir, sentences, flag, baseline_s, timeout_s) -> int:
    from shared.demo.setup import MODEL
    from shared.demo.traffic import Traffic
    from shared.lm import get_lm

    traffic = Traffic(data_dir / "lightrag", s.redis_url, MODEL, get_lm(MODEL, s), sentences).start()
    try:
        console.print(f"LightRAG traffic for {baseline_s:.0f} s with a healthy model...")
        time.sleep(baseline_s)
        flag.touch()
        t0 = datetime.now(timezone.utc)
        console.print(f"[yellow]the model drifts now[/yellow] ({traffic.calls} LLM calls so far); what follows "
                      "happens by itself:")
        return _close(console, s, engine, data_dir, MODEL, traffic, t0, timeout_s, "the drift")
    finally:
        traffic.stop()


def _real_model_loop(console, s, engine, data_dir, model, sentences, timeout_s) -> int:
    from shared.demo.traffic import Traffic
    from shared.lm import get_lm

    console.print(f"[yellow]a real model does not drift on cue[/yellow]: the degradation is LightRAG's default "
                  f"extraction prompt failing on {model}; users rate each answer and {s.feedback_threshold} "
                  f"ratings start an optimization. Up to {timeout_s / 60:.0f} min at this model's speed:")
    traffic = Traffic(data_dir / "lightrag", s.redis_url, model, get_lm(model, s), sentences, batch=2,
                      rate=True).start()
    try:
        return _close(console, s, engine, data_dir, model, traffic, datetime.now(timezone.utc), timeout_s,
                      "the first call")
    finally:
        traffic.stop(timeout=600)  # a local model's call in flight finishes first


def _close(console, s, engine, data_dir, model, traffic, t0, timeout_s, start) -> int:
    """From the degradation on, all by itself: wait for a promoted fix, force a worse candidate out,
    wait for its rollback, then the timeline's total and the report."""
    from shared.demo.timeline import timeline
    from shared.report import write_report

    shown: list = []
    deadline = time.monotonic() + timeout_s
    if not _wait(engine, console, lambda: _status(engine, "promoted"), deadline, shown, t0):
        console.print(f"[red]no promoted fix within {timeout_s:.0f} s; see the logs in {data_dir / 'logs'}[/red]")
        return 1
    fixed = next(w for w, what, d in shown if what.endswith("promote") and "-> 100%" in d)
    worse = _force_worse_candidate(engine, s, model)
    console.print(f"a worse candidate goes out as rollout {worse}; beat should roll it back:")
    if not _wait(engine, console, lambda: _status(engine, "rolled_back"), deadline, shown, t0):
        console.print("[red]the worse candidate was not rolled back in time[/red]")
        return 1
    _wait(engine, console, lambda: True, time.monotonic() + 1, shown, t0)
    report = write_report(engine, data_dir / "report").html
    console.print(f"\n{len(timeline(engine))} steps; {traffic.calls} LightRAG LLM calls. "
                  f"[bold]From {start} to the promoted fix: {(fixed - t0).total_seconds():.0f} s[/bold]")
    console.print(f"report: {report}")
    return 0
