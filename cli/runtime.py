"""Starting the local pieces the CLI needs: checks, Redis, worker and beat processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import redis
import typer
from rich.console import Console

from shared.local import RedisServer
from shared.settings import Settings


def require_migrated(console: Console, s: Settings) -> None:
    """Refuse to start on a database whose schema is not the one this code was written for: none yet
    (``promptloop init`` has not run), an older one (it migrates it), or a newer one."""
    from shared.db import get_engine
    from shared.migrate import schema_problem

    problem = schema_problem(get_engine(s))
    if problem:
        console.print(f"[red]{problem}[/red]")
        raise typer.Exit(2)


def _without_password(url: str) -> str:
    parsed = urlparse(url)
    if parsed.password is None:
        return url
    return parsed._replace(netloc=parsed.netloc.replace(f":{parsed.password}@", ":***@")).geturl()


def redis_reachable(url: str) -> bool:
    """Whether a Redis server answers at ``url``; BadParameter when one answers but refuses its user.

    A Redis with users (deploy/redis) answers a wrong or missing login with an error, not silence:
    starting another server on its port would only seem to work (the port answers), so say so instead.
    """
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.AuthenticationError as exc:
        raise typer.BadParameter(
            f"Redis at {_without_password(url)} refused the login ({exc}); workers log in as "
            "redis://worker:PASSWORD@host:6379/0 (README, Redis users)") from None
    except redis.RedisError:
        return False


def ensure_local_redis(s: Settings) -> RedisServer | None:
    """Start ``redis-server`` for a loopback ``REDIS_URL`` nobody serves; None if one already answers."""
    if redis_reachable(s.redis_url):
        return None
    url = urlparse(s.redis_url)
    if url.hostname not in ("localhost", "127.0.0.1"):
        raise typer.BadParameter(f"REDIS_URL {s.redis_url} is unreachable and not local, so it can't be started")
    return RedisServer(s.data_dir / "redis", url.port or 6379).start()


def spawn(args: list[str], s: Settings, log_name: str) -> subprocess.Popen:
    """Run ``promptloop ARGS`` in a child process with this process's settings, logging to the data dir."""
    logs = s.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "REDIS_URL": s.redis_url, "DATABASE_URL": s.sqlalchemy_url,
           "PROMPTLOOP_DATA_DIR": str(s.data_dir)}
    log = open(logs / f"{log_name}.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "cli.main", *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                            cwd=Path(__file__).resolve().parent.parent, start_new_session=True)


def stop(proc: subprocess.Popen | None, timeout: float = 15.0) -> None:
    """Ask a child to stop (warm shutdown), then kill it if it doesn't."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
