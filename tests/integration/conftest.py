"""A real stack for integration tests: redis-server, PostgreSQL, and worker/beat processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from shared.db import make_engine
from shared.local import RedisServer
from shared.migrate import upgrade
from shared.models import DeadLetter, FeedbackEvent, MetricEvent, ProductionExample

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Stack:
    redis: RedisServer
    db_url: str
    workdir: Path
    engine: Engine
    procs: list[subprocess.Popen] = field(default_factory=list)
    #: Added to every child's environment (a test's own settings).
    extra_env: dict = field(default_factory=dict)

    def env(self, **extra) -> dict:
        return {
            **os.environ,
            "REDIS_URL": self.redis.url,
            "DATABASE_URL": self.db_url,
            "PROMPTLOOP_DATA_DIR": str(self.workdir),
            # Short enough for a test to see a dead worker's entries reclaimed.
            "PROMPTLOOP_RECLAIM_IDLE_MS": "1500",
            "PROMPTLOOP_DRAIN_INTERVAL_S": "0.3",
            "PROMPTLOOP_DRAIN_BUDGET_S": "3",
            "PROMPTLOOP_INGEST_BATCH": "10",
            **self.extra_env,
            **extra,
        }

    def _spawn(self, args: list[str], log: str, **env) -> subprocess.Popen:
        out = open(self.workdir / f"{log}.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=self.env(**env),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def start_worker(self, name: str = "w1", concurrency: int = 1, queues: str = "ingest,control") -> subprocess.Popen:
        """``promptloop worker`` as a separate process group (so SIGKILL takes its children too)."""
        return self._spawn(["worker", "-Q", queues, "-c", str(concurrency), "-n", f"{name}@%h"], name)

    def start_beat(self, name: str = "beat") -> subprocess.Popen:
        """``promptloop beat``; a second beat gets its own data directory (its own schedule file)."""
        data_dir = self.workdir if name == "beat" else self.workdir / name
        data_dir.mkdir(exist_ok=True)
        return self._spawn(["beat"], name, PROMPTLOOP_DATA_DIR=str(data_dir))

    def kill(self, proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        os.killpg(proc.pid, sig)
        proc.wait(30)

    def counts(self) -> dict:
        with self.engine.connect() as conn:
            return {name: conn.execute(select(func.count()).select_from(model)).scalar_one()
                    for name, model in (("metric", MetricEvent), ("feedback", FeedbackEvent),
                                        ("example", ProductionExample), ("dead", DeadLetter))}

    def wait_for(self, predicate, timeout: float, what: str, interval: float = 0.1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; counts {self.counts()}\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.workdir.glob("*.log"))

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def pg_engine(pg_url):
    """An engine on a new PostgreSQL database, migrated to head."""
    engine = make_engine(pg_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def stack(redis_server, pg_url, tmp_path):
    engine = make_engine(pg_url)
    upgrade(engine)
    s = Stack(redis_server, pg_url, tmp_path, engine)
    yield s
    s.stop_all()
    engine.dispose()
