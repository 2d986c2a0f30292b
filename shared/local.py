"""Start local Redis and PostgreSQL servers for the demo, the tests and the benchmarks.

Production points ``REDIS_URL`` and ``DATABASE_URL`` at managed services instead.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PG_BIN = Path(os.environ.get("PROMPTLOOP_PG_BIN", "/usr/lib/postgresql/15/bin"))


class ServiceError(RuntimeError):
    """A local service could not be started."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"{what} exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise ServiceError(f"{what} did not listen on port {port} within {timeout}s")


@dataclass
class RedisServer:
    """A ``redis-server`` child process with append-only persistence in ``directory``.

    With ``acl_file`` (as ``deploy/redis/render-acl.sh`` writes it) clients must log in as one of its
    users: see ``user_url``.
    """

    directory: Path
    port: int
    proc: subprocess.Popen | None = None
    acl_file: Path | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def user_url(self, user: str, password: str) -> str:
        """The URL that logs in as ``user`` (passwords from ``render-acl.sh`` are URL-safe as they are)."""
        return f"redis://{user}:{password}@127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceError("redis-server is not installed (Debian: apt-get install redis-server)")
        self.directory.mkdir(parents=True, exist_ok=True)
        # appendfsync everysec: an accepted event survives a Redis crash except for the last second.
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--protected-mode", "yes"]
        if self.acl_file is not None:
            args += ["--aclfile", str(Path(self.acl_file).resolve())]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port, self.proc, "redis-server")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def _as_user() -> list[str]:
    """PostgreSQL refuses to run as root: run it as ``nobody`` then."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "nobody", "--"]


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster in ``directory`` (trust auth, loopback only); as root, in /tmp
    (see ``_cluster_dir``)."""

    directory: Path
    port: int
    user: str = "promptloop"
    proc: subprocess.Popen | None = None
    _nobody_dir: Path | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/promptloop"

    @property
    def log_path(self) -> Path:
        """The server's own log (stdout and stderr), kept in ``directory`` across restarts."""
        return Path(self.directory) / "postgres.log"

    def log_tail(self, lines: int = 200) -> str:
        """The last ``lines`` of the server's log, for a person wondering why it died."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    def died(self) -> int | None:
        """The exit status of a server that stopped without ``stop()`` having been asked; None while it runs."""
        return None if self.proc is None else self.proc.poll()

    def start(self) -> "PostgresServer":
        if not (PG_BIN / "initdb").exists():
            raise ServiceError(f"PostgreSQL binaries not found in {PG_BIN} (Debian: postgresql-15)")
        wrap = _as_user()
        cluster = self._cluster_dir(bool(wrap))
        data = cluster / "data"
        if not data.exists():
            init = subprocess.run(wrap + [str(PG_BIN / "initdb"), "-D", str(data), "-U", self.user, "--auth=trust",
                                          "-E", "UTF8", "--no-sync"], capture_output=True, text=True)
            if init.returncode != 0:
                raise ServiceError(f"initdb failed (status {init.returncode}): {(init.stderr or init.stdout)[-2000:]}")
        with open(self.log_path, "ab") as log:  # opened here, so ``nobody`` need not be able to write to it
            self.proc = subprocess.Popen(
                wrap + [str(PG_BIN / "postgres"), "-D", str(data), "-p", str(self.port), "-c",
                        "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={cluster}", "-c", "fsync=off",
                        "-c", "max_connections=200"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        try:
            _wait_port(self.port, self.proc, "postgres")
        except ServiceError as exc:
            raise ServiceError(f"{exc}; its log ({self.log_path}):\n{self.log_tail(50)}") from None
        self._create_database()
        return self

    def _cluster_dir(self, as_nobody: bool) -> Path:
        """Where the cluster lives: ``directory``, or when run as ``nobody`` a directory of its own in /tmp.

        ``nobody`` must be able to walk down to the cluster for as long as it runs. Temporary trees such
        as pytest's are 0700 and get reset to 0700 at any time (every new pytest session does it), which
        made a cluster inside one unreachable mid-run (PANIC on pg_control at the next checkpoint); /tmp
        itself stays world-traversable. The same object reuses its directory when restarted.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        if not as_nobody:
            return self.directory
        if self._nobody_dir is None:
            self._nobody_dir = Path(tempfile.mkdtemp(prefix="promptloop-pg-", dir="/tmp"))
            nobody = pwd.getpwnam("nobody")
            os.chown(self._nobody_dir, nobody.pw_uid, nobody.pw_gid)
            # A throwaway cluster: gone when this process exits (it may be restarted until then).
            atexit.register(shutil.rmtree, self._nobody_dir, ignore_errors=True)
        return self._nobody_dir

    def _create_database(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres",
                                     autocommit=True) as conn:
                    if not conn.execute("SELECT 1 FROM pg_database WHERE datname='promptloop'").fetchone():
                        conn.execute("CREATE DATABASE promptloop")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
