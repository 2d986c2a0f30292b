"""The real-time optimizer on redis-server, PostgreSQL, worker and beat processes: two beats and a
restart of everything start one optimization per incident, and its candidate is validated and deployed
by itself; the seed's manager and ``promptloop start`` run the same services."""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import redis
from sqlalchemy import func, select

from shared.models import MetricEvent, OptimizationRun, OptimizationTrigger, Recommendation, Rollout

from .conftest import ROOT
from .test_optimize import setup_stack

pytestmark = pytest.mark.integration
FAMILY = "entity_extraction"


def insert_metrics(engine, n: int, quality: float, newest_min: float, oldest_min: float) -> None:
    now = datetime.now(timezone.utc)
    step = (oldest_min - newest_min) / max(n - 1, 1)
    rows = [dict(event_id=str(uuid.uuid4()), ts=now - timedelta(minutes=oldest_min - i * step), family=FAMILY,
                 variant="baseline", model="m", latency_ms=300.0, success=True, quality=quality) for i in range(n)]
    with engine.begin() as conn:
        conn.execute(MetricEvent.__table__.insert(), rows)


def one(stack, query):
    with stack.engine.connect() as conn:
        return conn.execute(query).all()


def ticks(stack, log: str) -> int:
    path = stack.workdir / f"{log}.log"
    text = path.read_text(errors="replace") if path.exists() else ""
    return len(re.findall(r"Task tasks\.realtime\.tick\[[^\]]+\] succeeded", text))


def started(stack):
    return one(stack, select(OptimizationTrigger).where(OptimizationTrigger.status == "started"))


def test_two_beats_and_restarts_start_one_optimization_per_incident_which_deploys_itself(stack, tmp_path):
    setup_stack(stack, tmp_path)
    stack.extra_env.update(PROMPTLOOP_MONITOR_INTERVAL_S="1", PROMPTLOOP_OPTIMIZE_TRAIN="8",
                           PROMPTLOOP_OPTIMIZE_VAL="6", PROMPTLOOP_VALIDATION_EXAMPLES="20",
                           PROMPTLOOP_ROLLOUT_HOLD_S="3600", PROMPTLOOP_OPTIMIZATION_TIMEOUT_MINUTES="20")
    insert_metrics(stack.engine, 40, 0.8, newest_min=120, oldest_min=20 * 60)  # a day at 0.8
    insert_metrics(stack.engine, 25, 0.45, newest_min=0.5, oldest_min=8)  # the last minutes at 0.45
    broker = redis.Redis.from_url(stack.redis.url)
    # Two beats tick every second; no optimize worker yet, so the job stays queued and the incident open.
    beats = [stack.start_beat("beat"), stack.start_beat("beat2")]
    ctl = stack.start_worker("ctl", queues="control")
    stack.wait_for(lambda: started(stack), 120, "a started trigger")
    stack.wait_for(lambda: ticks(stack, "ctl") >= 8, 120, "eight ticks after the start")
    [trigger] = started(stack)
    assert (trigger.family, trigger.model, trigger.kind) == (FAMILY, "m", "degradation")
    assert json.loads(trigger.evidence)["drop"] > 0.15 and trigger.dedupe_key == "start|after:0"
    assert broker.llen("optimize") == 1
    # Everything dies at once and comes back: the decision is in SQL, the job in Redis.
    for proc in beats + [ctl]:
        stack.kill(proc)
    stack.start_beat("beat")
    stack.start_worker("ctl2", queues="control")
    stack.wait_for(lambda: ticks(stack, "ctl2") >= 5, 120, "five ticks after the restart")
    assert [t.id for t in started(stack)] == [trigger.id] and broker.llen("optimize") == 1
    began = time.monotonic()
    stack.start_worker("opt", queues="optimize")
    stack.start_worker("scorer", queues="evaluate", concurrency=2)

    def decided():
        rows = one(stack, select(Recommendation.status, Recommendation.reason, Recommendation.rollout_id,
                                 Recommendation.candidate_id))
        return rows if rows and rows[0].status != "validating" else None

    [rec] = stack.wait_for(decided, 900, "the candidate's validation")
    print(f"optimization + validation + deployment: {time.monotonic() - began:.1f}s")
    assert rec.status == "deployed" and "deployed automatically" in rec.reason, rec.reason
    [run] = one(stack, select(OptimizationRun))
    assert (run.job_id, run.status, run.best_variant_id) == (trigger.job_id, "done", rec.candidate_id)
    assert json.loads(run.settings)["budget_minutes"] == 20.0 and json.loads(run.settings)["dataset"] == "conll04"
    [rollout] = one(stack, select(Rollout))
    assert (rollout.id, rollout.status, rollout.candidate_id) == (rec.rollout_id, "running", rec.candidate_id)
    stack.wait_for(lambda: started(stack)[0].run_id == run.id, 30, "the trigger linked to its run")
    assert len(started(stack)) == 1  # an open rollout holds further starts of entity_extraction x m


def test_the_seed_manager_starts_the_services_and_its_events_reach_them(stack, tmp_path):
    from shared.manager import get_dspy_phase2_manager

    manager = get_dspy_phase2_manager({
        "REDIS_URL": stack.redis.url, "DATABASE_URL": stack.db_url, "PROMPTLOOP_DATA_DIR": str(tmp_path / "mgr"),
        "PROMPTLOOP_DRAIN_INTERVAL_S": "0.3", "enable_automatic_optimization": False})
    counts = select(func.count()).select_from(MetricEvent)

    async def flow():
        assert (await manager.initialize())["baselines_added"] == 24
        pids = await manager.start_production_mode(concurrency=1)
        for i in range(30):
            await manager.add_production_metrics("DSPY_A", "3b", 100.0 + i, i % 10 != 0, quality=0.7, family=FAMILY)
        await manager.add_production_feedback("DSPY_A", "3b", 0.85, "quality")
        assert await manager.flush()
        await asyncio.to_thread(stack.wait_for, lambda: one(stack, counts)[0][0] == 30, 120, "30 metric events")
        for _ in range(120):
            status = await manager.get_system_status()
            if isinstance(status["workers"], list) and status["workers"]:
                break
            await asyncio.sleep(1)
        recs = await manager.get_deployment_recommendations()
        # The children's environment carries the manager's configuration.
        assert b"DSPY_AUTO_OPTIMIZE=false" in open(f"/proc/{pids['worker']}/environ", "rb").read().split(b"\0")
        await manager.stop_production_mode()
        return pids, status, recs

    pids, status, recs = asyncio.run(flow())
    assert status["database"]["metrics"] == 30 and status["database"]["feedback"] == 1
    assert status["workers"] and all(p["running"] for p in status["processes"].values())
    assert status["config"]["enable_automatic_optimization"] is False and recs["recommendations"] == []
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    asyncio.run(manager.close())


def test_promptloop_start_runs_worker_and_beat_until_ctrl_c(stack, tmp_path):
    from promptloop_client import Client

    out = open(tmp_path / "start.out", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "start", "-c", "1"], cwd=ROOT, env=stack.env(),
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    stack.wait_for(lambda: "beat (pid" in (tmp_path / "start.out").read_text(), 60, "start's banner")
    client = Client(stack.redis.url)
    client.metric("baseline", "3b", 120.0, True, family=FAMILY)
    assert client.close(10)
    stack.wait_for(lambda: stack.counts()["metric"] == 1, 120, "the event drained by start's worker and beat")
    pids = [int(p) for p in re.findall(r"pid (\d+)", (tmp_path / "start.out").read_text())]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0, (tmp_path / "start.out").read_text()
    assert len(pids) == 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_evaluate_optimize_deploy_closes_the_loop_from_the_command_line(stack, tmp_path):
    from .test_optimize import cli

    setup_stack(stack, tmp_path)
    stack.extra_env.update(PROMPTLOOP_OPTIMIZE_TRAIN="8", PROMPTLOOP_OPTIMIZE_VAL="6",
                           PROMPTLOOP_VALIDATION_EXAMPLES="20", PROMPTLOOP_ROLLOUT_HOLD_S="3600", COLUMNS="250")
    stack.start_worker("ctl", queues="control")
    stack.start_worker("opt", queues="optimize")
    stack.start_worker("scorer", queues="evaluate", concurrency=2)
    args = ["evaluate", "--hours", "1", "--dataset", "conll04", "--family", FAMILY, "--limit", "10", "--models", "m",
            "--optimize", "--timeout", "600"]
    began = time.monotonic()
    out = " ".join(cli(stack, *args, "--deploy", timeout=900).split())
    print(f"evaluate --optimize --deploy: {time.monotonic() - began:.1f}s")
    assert "optimizing (job" in out and "deployed automatically" in out, out
    [trigger] = one(stack, select(OptimizationTrigger))
    assert (trigger.kind, trigger.status, json.loads(trigger.evidence)["deploy"]) == ("manual", "started", True)
    [rollout] = one(stack, select(Rollout))
    assert rollout.status == "running"
    # Again, without --deploy: the open rollout holds a second optimization of the same family x model.
    out = " ".join(cli(stack, *args, timeout=900).split())
    assert "not optimized: a rollout of it is open" in out, out
    assert len(one(stack, select(OptimizationRun))) == 1
