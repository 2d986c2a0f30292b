"""Least privilege on the shared Redis: the shipped ACL (``deploy/redis/``) on a real redis-server.

Producers (LightRAG hosts) share the broker's Redis. With full rights, one of them could hold every
drain lease (``SET promptloop:lease:drain:N``) and stop ingest, push forged Celery tasks, or trim the
stream. These tests start redis-server with the ACL that ``deploy/redis/render-acl.sh`` renders, and
check that a producer can append events and read rollout state but nothing else, while a real worker
running as ``worker`` still drains what producers send into PostgreSQL.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest
import redis

from promptloop_client import Client
from shared.constants import DRAIN_SLOT_PREFIX, ROLLOUT_PREFIX, STREAM
from shared.local import RedisServer, ServiceError, free_port

from ..conftest import unavailable
from .conftest import ROOT, Stack

pytestmark = pytest.mark.integration

RENDER = ROOT / "deploy" / "redis" / "render-acl.sh"
USERS = ("admin", "worker", "producer")


def fresh_passwords() -> dict[str, str]:
    return {user: secrets.token_hex(16) for user in USERS}


def password_env(passwords: dict[str, str]) -> dict[str, str]:
    return {f"REDIS_{user.upper()}_PASSWORD": pw for user, pw in passwords.items()}


def render(out, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run the shipped renderer, with only PATH and ``env`` in its environment."""
    return subprocess.run(["sh", str(RENDER), str(out)], env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, text=True, timeout=30)


@pytest.fixture
def acl_redis(tmp_path):
    """A redis-server started with the rendered ACL file, and the passwords it holds."""
    passwords = fresh_passwords()
    acl = tmp_path / "users.acl"
    done = render(acl, password_env(passwords))
    assert done.returncode == 0, done.stderr
    try:
        server = RedisServer(tmp_path / "redis", free_port(), acl_file=acl).start()
    except ServiceError as exc:
        unavailable(str(exc))
    yield server, passwords
    server.stop()


def connect(server: RedisServer, passwords: dict[str, str], user: str) -> redis.Redis:
    return redis.Redis.from_url(server.user_url(user, passwords[user]))


@pytest.mark.parametrize("change, why", [
    ({"REDIS_WORKER_PASSWORD": None}, "REDIS_WORKER_PASSWORD"),
    ({"REDIS_PRODUCER_PASSWORD": ""}, "REDIS_PRODUCER_PASSWORD"),
    ({"REDIS_ADMIN_PASSWORD": "CHANGE_ME"}, "placeholder"),
    ({"REDIS_WORKER_PASSWORD": "change-me-please-0123456789"}, "placeholder"),
    ({"REDIS_PRODUCER_PASSWORD": "short"}, "at least"),
    ({"REDIS_PRODUCER_PASSWORD": "p@ss:word/0123456789abcdef"}, "characters"),
    ({"REDIS_PRODUCER_PASSWORD": "same-as-the-worker-0123456789"},
     "differ"),
])
def test_missing_placeholder_or_weak_passwords_are_refused(tmp_path, change, why):
    env = password_env(fresh_passwords())
    if "same-as-the-worker" in str(change):
        env["REDIS_WORKER_PASSWORD"] = change["REDIS_PRODUCER_PASSWORD"]
    for name, value in change.items():
        if value is None:
            env.pop(name)
        else:
            env[name] = value
    out = tmp_path / "users.acl"
    done = render(out, env)
    assert done.returncode != 0
    assert why in done.stderr
    assert not out.exists()  # nothing half-written for a server to start with


def test_the_rendered_file_holds_no_password(tmp_path):
    passwords = fresh_passwords()
    out = tmp_path / "users.acl"
    assert render(out, password_env(passwords)).returncode == 0
    text = out.read_text()
    assert not any(pw in text for pw in passwords.values())  # SHA-256 hashes only
    assert oct(out.stat().st_mode & 0o777) == "0o600"


def test_a_client_naming_no_user_is_refused(acl_redis):
    server, passwords = acl_redis
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(server.url).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(server.user_url("producer", passwords["worker"])).ping()


def test_a_producer_appends_events_and_reads_rollout_state_only(acl_redis):
    server, passwords = acl_redis
    admin, producer = connect(server, passwords, "admin"), connect(server, passwords, "producer")
    admin.set(f"{ROLLOUT_PREFIX}entity_extraction:3b", "DSPY_A")
    admin.hset(f"{ROLLOUT_PREFIX}weights", mapping={"DSPY_A": "0.1"})

    assert producer.ping()
    assert producer.xadd(STREAM, {"e": b"{}"})
    assert producer.xlen(STREAM) == 1
    assert producer.get(f"{ROLLOUT_PREFIX}entity_extraction:3b") == b"DSPY_A"
    assert producer.mget([f"{ROLLOUT_PREFIX}entity_extraction:3b"]) == [b"DSPY_A"]
    assert producer.hgetall(f"{ROLLOUT_PREFIX}weights") == {b"DSPY_A": b"0.1"}

    refused = {
        "hold a drain lease": lambda: producer.set(f"{DRAIN_SLOT_PREFIX}0", "squat", nx=True, px=60_000),
        "free a drain lease": lambda: producer.delete(f"{DRAIN_SLOT_PREFIX}0"),
        "rewrite rollout state": lambda: producer.set(f"{ROLLOUT_PREFIX}entity_extraction:3b", "evil"),
        "append to a rollout key": lambda: producer.xadd(f"{ROLLOUT_PREFIX}x", {"e": b"{}"}),
        "trim the stream": lambda: producer.xtrim(STREAM, maxlen=0),
        "delete an entry": lambda: producer.xdel(STREAM, "0-1"),
        "drop the consumer group": lambda: producer.xgroup_destroy(STREAM, "promptloop-ingest"),
        "read the stream as a consumer": lambda: producer.xreadgroup("promptloop-ingest", "p", {STREAM: ">"}),
        "push a Celery task": lambda: producer.lpush("ingest", b"{}"),
        "publish on a worker channel": lambda: producer.publish("/0.celery.pidbox", b"{}"),
        "run a script": lambda: producer.eval("return 1", 0),
        "read other keys": lambda: producer.get("celery-task-meta-x"),
        "flush": lambda: producer.flushall(),
        "reconfigure": lambda: producer.config_get("dir"),
        "change the ACL": lambda: producer.acl_setuser("producer", enabled=True, commands=["+@all"]),
    }
    for what, attempt in refused.items():
        with pytest.raises(redis.exceptions.NoPermissionError):
            attempt()
            pytest.fail(f"a producer could {what}")
    assert admin.get(f"{DRAIN_SLOT_PREFIX}0") is None
    assert admin.get(f"{ROLLOUT_PREFIX}entity_extraction:3b") == b"DSPY_A"


def test_a_squatting_producer_cannot_stop_ingest(acl_redis, pg_url, tmp_path):
    """Client as ``producer`` -> stream -> a real worker and beat as ``worker`` -> PostgreSQL rows."""
    from shared.db import make_engine
    from shared.migrate import upgrade

    server, passwords = acl_redis
    admin, producer = connect(server, passwords, "admin"), connect(server, passwords, "producer")
    for slot in range(4):  # every drain slot the default settings use
        with pytest.raises(redis.exceptions.NoPermissionError):
            producer.set(f"{DRAIN_SLOT_PREFIX}{slot}", "squat", nx=True, px=600_000)

    engine = make_engine(pg_url)
    upgrade(engine)
    stack = Stack(server, pg_url, tmp_path, engine,
                  extra_env={"REDIS_URL": server.user_url("worker", passwords["worker"])})
    try:
        stack.start_worker(queues="ingest,control")
        stack.start_beat()
        client = Client(server.user_url("producer", passwords["producer"]))
        for i in range(300):
            client.metric("baseline", "3b", float(i), True, family="entity_extraction")
        client.feedback("DSPY_A", "7b", 0.5)
        assert client.close(30), client.stats()
        assert client.stats()["send_errors"] == 0

        stack.wait_for(lambda: stack.counts()["metric"] == 300 and stack.counts()["feedback"] == 1, 90,
                       "the producer's events in PostgreSQL")
        status = subprocess.run([sys.executable, "-m", "cli.main", "status"], cwd=ROOT, env=stack.env(),
                                capture_output=True, text=True, timeout=120)
        assert status.returncode == 0 and "1 live: w1@" in status.stdout, status.stdout + status.stderr
    finally:
        stack.stop_all()
        engine.dispose()

    # Celery, kombu, beat and ingest needed nothing the worker user lacks: Redis logged no refusal
    # for it (ACL LOG records every denied command, key and channel).
    denied = admin.acl_log(count=1000)
    assert [e for e in denied if e["username"] == "worker"] == []
    assert {e["object"] for e in denied if e["username"] == "producer"} == {"set"}


def compose_redis() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["redis"]


def stub_image_tools(bin_dir, port: int, data_dir) -> None:
    """Stand-ins for the redis image's entrypoint and redis-cli that use this test's port and directory."""
    bin_dir.mkdir()
    (bin_dir / "docker-entrypoint.sh").write_text(
        '#!/bin/sh\n[ "$1" = redis-server ] && shift\n'
        f'exec redis-server --port {port} --bind 127.0.0.1 --dir {data_dir} --save "" "$@"\n')
    (bin_dir / "redis-cli").write_text(f'#!/bin/sh\nexec /usr/bin/redis-cli -p {port} "$@"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)


def compose_healthcheck_passes(service: dict, env: dict) -> bool:
    kind, command = service["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    shell = command.replace("$$", "$")  # compose's escape for a `$` the container's shell expands
    return subprocess.run(["sh", "-c", shell], env=env, timeout=10).returncode == 0


def test_the_compose_redis_service_starts_with_the_acl_and_reports_healthy(tmp_path):
    """docker-compose.yml's redis entrypoint, command and healthcheck, minus Docker."""
    import time

    if not any(os.access(os.path.join(d, "redis-server"), os.X_OK) for d in os.environ["PATH"].split(":")):
        unavailable("redis-server is not installed")
    service = compose_redis()
    assert service["entrypoint"] == ["sh", "/etc/promptloop/redis/start.sh"]
    assert "./deploy/redis:/etc/promptloop/redis:ro" in service["volumes"]
    port, data = free_port(), tmp_path / "data"
    data.mkdir()
    stub_image_tools(tmp_path / "bin", port, data)
    passwords = fresh_passwords()
    env = {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "PROMPTLOOP_REDIS_ACL_FILE": str(tmp_path / "users.acl"),
           **password_env(passwords)}
    start = [service["entrypoint"][0], str(ROOT / "deploy" / "redis" / "start.sh"), *service["command"]]

    placeholder = subprocess.run(start, env={**env, "REDIS_PRODUCER_PASSWORD": "CHANGE_ME"}, capture_output=True,
                                 text=True, timeout=30)
    assert placeholder.returncode != 0 and "placeholder" in placeholder.stderr

    proc = subprocess.Popen(start, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not compose_healthcheck_passes(service, env):
            assert proc.poll() is None and time.monotonic() < deadline, "redis never became healthy"
            time.sleep(0.1)
        assert not compose_healthcheck_passes(service, {**env, "REDIS_PRODUCER_PASSWORD": "x" * 32})
        assert redis.Redis(port=port, username="worker", password=passwords["worker"]).acl_whoami() == "worker"
        admin = redis.Redis(port=port, username="admin", password=passwords["admin"])
        assert admin.config_get("appendonly") == {"appendonly": "yes"}  # compose's command reached Redis
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_cli_reports_refused_credentials_instead_of_starting_another_redis(acl_redis, tmp_path):
    import typer

    from cli.runtime import ensure_local_redis
    from shared.settings import Settings

    server, passwords = acl_redis

    def settings(url: str) -> Settings:
        return Settings(REDIS_URL=url, PROMPTLOOP_DATA_DIR=str(tmp_path / "data"))

    with pytest.raises(typer.BadParameter, match="refused") as refused:
        ensure_local_redis(settings(server.user_url("worker", "wrong-" * 4)))
    assert "wrong-" not in str(refused.value)  # the message never shows the password
    with pytest.raises(typer.BadParameter, match="refused"):
        ensure_local_redis(settings(server.url))  # no user: the default user is off
    assert ensure_local_redis(settings(server.user_url("worker", passwords["worker"]))) is None
