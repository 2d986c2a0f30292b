"""Starting the production processes on this machine: a Celery worker on every queue and beat.

``promptloop start`` runs them in the foreground; ``get_dspy_phase2_manager().start_production_mode()``
in the background. Each is ``python -m cli.main worker|beat`` in its own process group, logging to
``<data dir>/logs``, with the settings (and the overrides a manager was given) in its environment.
A deployment that runs them under compose, systemd or Kubernetes (``deploy/``) needs neither.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import redis

from .local import RedisServer
from .settings import Settings
from workers.queues import Queue

ROOT = Path(__file__).resolve().parent.parent
ALL_QUEUES = ",".join(q.value for q in Queue)


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.AuthenticationError:
        return True  # a server with users answers: never start a second one on its port
    except redis.RedisError:
        return False


@dataclass
class Services:
    settings: Settings
    #: Extra environment for the children (a manager's configuration, as environment variables).
    env: dict = field(default_factory=dict)
    redis_server: RedisServer | None = None
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def _env(self) -> dict:
        s = self.settings
        return {**os.environ, "REDIS_URL": s.redis_url, "DATABASE_URL": s.sqlalchemy_url,
                "PROMPTLOOP_DATA_DIR": str(s.data_dir), **{k: str(v) for k, v in self.env.items()}}

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        logs = self.settings.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "cli.main", *args], env=self._env(), stdout=log,
                                    stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def ensure_redis(self) -> None:
        """Start ``redis-server`` for a loopback ``REDIS_URL`` that nothing answers (development)."""
        url = urlparse(self.settings.redis_url)
        if redis_answers(self.settings.redis_url) or url.hostname not in ("localhost", "127.0.0.1"):
            return
        self.redis_server = RedisServer(self.settings.data_dir / "redis", url.port or 6379).start()

    def start(self, worker: bool = True, beat: bool = True, queues: str = ALL_QUEUES, concurrency: int = 2,
              hostname: str = "promptloop@%h") -> dict:
        """Start what was asked for; {name: pid}."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.ensure_redis()
        if worker:
            self._spawn("worker", ["worker", "-Q", queues, "-c", str(concurrency), "-n", hostname])
        if beat:
            self._spawn("beat", ["beat"])
        return {name: p.pid for name, p in self.procs.items()}

    def exited(self) -> dict[str, int]:
        """{name: exit code} of the children that have stopped."""
        return {name: p.returncode for name, p in self.procs.items() if p.poll() is not None}

    def stop(self, timeout: float = 20.0) -> None:
        """Warm shutdown (SIGTERM: a worker finishes its current tasks), then SIGKILL what is left."""
        for proc in self.procs.values():
            if proc.poll() is None:
                # The main process only: Celery's parent then lets its pool finish the current tasks
                # (a SIGTERM to the whole group would kill the pool processes mid-task).
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
        if self.redis_server is not None:
            self.redis_server.stop()
            self.redis_server = None
