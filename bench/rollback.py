"""Time from degradation to rollback, on real processes with the default check interval.

    .venv/bin/python bench/rollback.py [--rate 100] [--warmup 30]

Starts redis-server, PostgreSQL, one worker (ingest, control) and beat. A validated candidate is
rolled out at 10% (hold 1 h: it is never promoted here). Calls are routed by the client's Router and
reported through the Client, like a LightRAG instrumented with promptloop. After ``--warmup`` seconds
with both variants equally good, the candidate's quality drops (0.60 -> 0.20). Printed:

- sufficient: when the evidence first became enough for the gate to say "worse" (the gate replayed
  on the calls made up to each half second after the drop, from the events in SQL);
- rolled back: when beat's check stored the rollback;
- stopped: the last call the Router still sent to the candidate;
and the target figure, stopped - sufficient (<= 60 s), beside beat's check interval.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.local import PostgresServer, RedisServer, free_port  # noqa: E402

FAMILY = "entity_extraction"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="calls per second")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds of equal quality first")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="promptloop-bench-rollback-"))
    redis_server = RedisServer(workdir / "redis", free_port()).start()
    pg = PostgresServer(workdir / "pg", free_port()).start()
    os.environ.update(REDIS_URL=redis_server.url, DATABASE_URL=pg.url, PROMPTLOOP_DATA_DIR=str(workdir),
                      PROMPTLOOP_MODELS=json.dumps({"m": "scripted/follow"}))
    from promptloop_client import Client, Router
    from sqlalchemy import select, update

    from shared.db import get_engine
    from shared.evaluation import register_baselines
    from shared.families import get_family
    from shared.migrate import upgrade
    from shared.models import PromptVariant
    from shared.optimize.promptset import with_guidance
    from shared.optimize.variants import register_candidate
    from shared.rediscon import get_redis
    from shared.rollout.gate import verdict_for
    from shared.rollout.publish import publish
    from shared.rollout.state import get, start_rollout, transitions
    from shared.settings import get_settings

    settings, engine = get_settings(), get_engine()
    upgrade(engine)
    register_baselines(engine, ["m"], [FAMILY])
    with engine.begin() as conn:
        base = conn.execute(select(PromptVariant.id).where(PromptVariant.family == FAMILY)).scalar_one()
        cand = register_candidate(conn, FAMILY, "m", with_guidance(FAMILY, get_family(FAMILY).baseline(), "Be exact."),
                                  base)
        conn.execute(update(PromptVariant).where(PromptVariant.id == cand).values(status="validated"))
    rollout_id = start_rollout(engine, cand, hold_s=3600)
    publish(engine, get_redis())
    logs = workdir / "logs"
    logs.mkdir()
    procs = [subprocess.Popen([sys.executable, "-m", "cli.main", *cmd], cwd=ROOT, env=dict(os.environ),
                              stdout=open(logs / f"{cmd[0]}.log", "ab"), stderr=subprocess.STDOUT)
             for cmd in (["worker", "-Q", "ingest,control", "-c", "1"], ["beat", "--loglevel", "WARNING"])]
    quality = {"baseline": 0.60, "DSPY_A": 0.60}
    candidate_calls: list[float] = []
    stop = threading.Event()

    def traffic() -> None:
        router, client, rng = Router(redis_server.url, refresh_interval=0.5), Client(redis_server.url), random.Random(0)
        batch = max(1, int(args.rate / 20))
        while not stop.is_set():
            for _ in range(batch):
                chosen = router.select_variant(FAMILY, "m", str(uuid.uuid4()))
                now = time.time()
                if chosen.name == "DSPY_A":
                    candidate_calls.append(now)
                client.metric(chosen.name, "m", rng.lognormvariate(6.5, 0.2), True,
                              float(rng.random() < quality[chosen.name]), family=FAMILY, ts=now)
            time.sleep(batch / args.rate)
        client.close(5)
        router.close()

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    try:
        time.sleep(args.warmup)
        if get(engine, rollout_id).status != "running":
            sys.exit(f"the rollout ended during the warm-up (equal quality): {transitions(engine, rollout_id)[-1].reason}")
        degraded = time.time()
        quality["DSPY_A"] = 0.20
        deadline = time.monotonic() + 600
        while get(engine, rollout_id).status == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)  # calls keep coming; the Router's cache refreshes
    finally:
        stop.set()
        thread.join(10)
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
    rollout = get(engine, rollout_id)
    if rollout.status != "rolled_back":
        sys.exit(f"no rollback within 600 s: rollout is {rollout.status}")
    rolled = transitions(engine, rollout_id)[-1].created_at.timestamp()
    stopped = max(candidate_calls)
    sufficient = None
    t = degraded
    while t <= rolled:
        if verdict_for(engine, settings, rollout, until=datetime.fromtimestamp(t, timezone.utc)).decision == "worse":
            sufficient = t
            break
        t += 0.5
    print(f"traffic {args.rate:.0f} calls/s, candidate at 10%, beat checks every {settings.rollout_check_s:.0f} s, "
          f"drain every {settings.drain_interval_s:.0f} s, min {settings.rollout_min_samples} calls per arm")
    print(f"candidate degraded at            t = 0.0 s (quality 0.60 -> 0.20)")
    if sufficient is not None:
        print(f"evidence sufficient for 'worse'  t = {sufficient - degraded:.1f} s")
    print(f"rollback stored by beat          t = {rolled - degraded:.1f} s  ({transitions(engine, rollout_id)[-1].reason})")
    print(f"last call routed to candidate    t = {stopped - degraded:.1f} s")
    if sufficient is not None:
        print(f"evidence sufficient -> routing stopped: {stopped - sufficient:.1f} s (target <= 60 s)")
    redis_server.stop()
    pg.stop()


if __name__ == "__main__":
    main()
