"""The deploy files' command lines, run here as written, against a real Redis (with the shipped users)
and PostgreSQL.

- The systemd units: each ExecStart rendered with systemd's rules (tests/deploy/deployfiles.py) from
  deploy/promptloop.env.example with this test's Redis and database put in, and run with only the
  unit's environment (as systemd would): the migrate unit migrates, the worker unit's instance comes up
  under its node name and answers a ping on its queue, beat's drains reach it, Flower serves only with
  credentials, and SIGTERM stops the worker warm.
- docker-compose.yml: the migrate and ingest services' commands with the service's environment, and the
  workers' healthcheck, which passes while the worker runs and fails once it is gone.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from shared.local import RedisServer, ServiceError, free_port
from tests.conftest import unavailable
from tests.deploy.deployfiles import (
    DEPLOY, ENV_FILE_EXAMPLES, ROOT, SystemdUnit, compose_services, dockerfile_entrypoint, local_argv, local_env,
    parse_env_file, service_argv, service_environment,
)

pytestmark = pytest.mark.integration

HOST = socket.gethostname()          # what systemd's %H and Celery's default node name both use


@pytest.fixture
def worker_redis(tmp_path):
    """redis-server with the users deploy/redis/render-acl.sh renders; yields (server, worker URL)."""
    passwords = {user: secrets.token_hex(16) for user in ("admin", "worker", "producer")}
    acl = tmp_path / "users.acl"
    done = subprocess.run(["sh", str(DEPLOY / "redis" / "render-acl.sh"), str(acl)],
                          env={"PATH": os.environ["PATH"], **{f"REDIS_{u.upper()}_PASSWORD": p for u, p in passwords.items()}},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    try:
        server = RedisServer(tmp_path / "redis", free_port(), acl_file=acl).start()
    except ServiceError as exc:
        unavailable(str(exc))
    yield server, server.user_url("worker", passwords["worker"])
    server.stop()


def systemd_env(unit_env: dict[str, str], home: Path) -> dict[str, str]:
    """What systemd hands a service: a fixed PATH and the unit's own environment, nothing from a shell."""
    return {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(home),
            "LANG": "C.UTF-8", **unit_env}


def env_file_for(tmp_path: Path, **values: str) -> dict[str, Path]:
    """/etc/promptloop/promptloop.env: the shipped example with this test's services in it."""
    lines = []
    for line in (DEPLOY / "promptloop.env.example").read_text().splitlines():
        key = line.partition("=")[0]
        lines.append(f"{key}={values.pop(key)}" if key in values and not line.startswith("#") else line)
    lines += [f"{k}={v}" for k, v in values.items()]
    path = tmp_path / "promptloop.env"
    path.write_text("\n".join(lines) + "\n")
    return {**ENV_FILE_EXAMPLES, "/etc/promptloop/promptloop.env": path}


class Proc:
    def __init__(self, argv: list[str], env: dict, log: Path):
        self.log = log
        self._out = open(log, "ab")
        self.proc = subprocess.Popen(local_argv(argv), cwd=ROOT, env=env, stdout=self._out, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text())
            if found:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"no {pattern!r} within {timeout}s (exit {self.proc.poll()}):\n{self.text()[-4000:]}")

    def stop(self, sig=signal.SIGTERM, timeout: float = 60) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)          # the main process only: KillMode=mixed
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
                return None
        self._out.close()
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._out.close()


@pytest.fixture
def procs():
    started: list[Proc] = []
    yield started
    for p in started:
        p.kill()


def ping(node: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / ".venv" / "bin" / "celery"), "-A", "workers.app", "inspect", "ping", "-d", node,
                           "--timeout", "10"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)


def test_the_units_migrate_once_then_run_a_worker_beat_feeds(worker_redis, pg_url, tmp_path, procs):
    server, redis_url = worker_redis
    files = env_file_for(tmp_path, REDIS_URL=redis_url, DATABASE_URL=pg_url, PROMPTLOOP_DATA_DIR=str(tmp_path / "data"))

    migrate = SystemdUnit.load(DEPLOY / "promptloop-migrate.service")
    (argv,) = migrate.exec_lines("ExecStart", env_files=files, hostname=HOST)
    done = subprocess.run(local_argv(argv), cwd=ROOT, env=systemd_env(migrate.environment(env_files=files), tmp_path),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"at\s+revision", done.stdout), done.stdout     # rich may wrap the line

    worker = SystemdUnit.load(DEPLOY / "promptloop-worker@.service")
    unit_env = worker.environment("ingest", files, HOST)
    (argv,) = worker.exec_lines("ExecStart", "ingest", env=unit_env, hostname=HOST)
    assert argv[argv.index("-n") + 1] == f"ingest@{HOST}"
    w = Proc(argv, systemd_env(unit_env, tmp_path), tmp_path / "worker.log")
    procs.append(w)
    w.wait_for(rf"ingest@{re.escape(HOST)} ready", 120)
    banner = w.text()
    assert re.search(r"\.> ingest\s", banner) and not re.search(r"\.> (evaluate|optimize|control)\s", banner), banner
    answered = ping(f"ingest@{HOST}", systemd_env(unit_env, tmp_path))
    assert answered.returncode == 0 and "pong" in answered.stdout, answered.stdout + answered.stderr

    beat_unit = SystemdUnit.load(DEPLOY / "promptloop-beat.service")
    (argv,) = beat_unit.exec_lines("ExecStart", env_files=files, hostname=HOST)
    beat = Proc(argv, systemd_env(beat_unit.environment(env_files=files), tmp_path), tmp_path / "beat.log")
    procs.append(beat)
    beat.wait_for(r"beat: Starting", 60)
    # beat's drain ticks reach the ingest worker and run there.
    w.wait_for(r"Task tasks\.ingest\.drain_events\[[^\]]+\] succeeded", 60)
    assert (tmp_path / "data" / "celerybeat-schedule").exists() or list((tmp_path / "data").glob("celerybeat-schedule*"))

    beat.stop()
    # SIGTERM to the main process (KillMode=mixed): warm shutdown, well within TimeoutStopSec.
    started = time.monotonic()
    code = w.stop(signal.SIGTERM, timeout=float(worker.value("Service", "TimeoutStopSec")))
    assert code is not None, f"the worker ignored SIGTERM for {worker.value('Service', 'TimeoutStopSec')}s"
    assert time.monotonic() - started < 30
    assert "Warm shutdown" in w.text() or "worker: Warm shutdown" in w.text(), w.text()[-2000:]


def get(url: str, auth: str | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_flower_unit_serves_only_with_credentials(worker_redis, tmp_path, procs):
    server, redis_url = worker_redis
    auth = "ops:" + secrets.token_hex(12)
    files = env_file_for(tmp_path, REDIS_URL=redis_url, FLOWER_BASIC_AUTH=auth)
    flower = SystemdUnit.load(DEPLOY / "promptloop-flower.service")
    unit_env = flower.environment(env_files=files)
    (argv,) = flower.exec_lines("ExecStart", env=unit_env, hostname=HOST)
    port = free_port()
    argv = [f"--port={port}" if a == "--port=5555" else a for a in argv]
    assert f"--port={port}" in argv and "--address=127.0.0.1" in argv
    f = Proc(argv, systemd_env(unit_env, tmp_path), tmp_path / "flower.log")
    procs.append(f)
    base = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while True:
        try:
            status = get(base)
            break
        except OSError:
            if time.monotonic() > deadline or f.proc.poll() is not None:
                raise AssertionError(f"Flower did not listen:\n{f.text()[-3000:]}")
            time.sleep(0.3)
    assert status == 401
    assert get(base, auth.split(":")[0] + ":wrong-password") == 401
    assert get(base, auth) == 200

    # The example env file as shipped (a placeholder password): the unit's command refuses to start.
    example_env = flower.environment()
    refused = subprocess.run(local_argv(argv), cwd=ROOT, env=systemd_env(example_env, tmp_path),
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "placeholder" in refused.stderr


def test_a_compose_worker_passes_its_healthcheck_only_while_it_runs(worker_redis, pg_url, tmp_path, procs):
    server, redis_url = worker_redis
    services = compose_services()
    entry = dockerfile_entrypoint()

    def env_of(name):
        env = {k: v for k, v in service_environment(services[name]).items() if v is not None}
        env.update(REDIS_URL=redis_url, DATABASE_URL=pg_url, PROMPTLOOP_DATA_DIR=str(tmp_path / "data"),
                   HOSTNAME=HOST)
        return local_env(env)

    done = subprocess.run(local_argv(service_argv(services["migrate"], entry)), cwd=ROOT, env=env_of("migrate"),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr

    w = Proc(service_argv(services["ingest"], entry), env_of("ingest"), tmp_path / "ingest.log")
    procs.append(w)
    w.wait_for(rf"celery@{re.escape(HOST)} ready", 120)
    check = services["ingest"]["healthcheck"]["test"]
    assert check[0] == "CMD-SHELL"

    def healthcheck() -> subprocess.CompletedProcess:
        return subprocess.run(["/bin/sh", "-c", check[1]], cwd=ROOT, env=env_of("ingest"), capture_output=True,
                              text=True, timeout=120)

    healthy = healthcheck()
    assert healthy.returncode == 0 and "pong" in healthy.stdout, healthy.stdout + healthy.stderr
    assert w.stop() is not None
    unhealthy = healthcheck()
    assert unhealthy.returncode != 0, unhealthy.stdout
