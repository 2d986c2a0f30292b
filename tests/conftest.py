"""Fixtures shared by unit and integration tests.

Integration tests need a real ``redis-server`` and PostgreSQL 15. They skip on a machine without
them, but fail under CI (``CI=true``), where ``.ci/run`` installs and starts them.
"""

from __future__ import annotations

import os
import uuid

import pytest

from shared.local import PG_BIN, PostgresServer, RedisServer, ServiceError, free_port

CI = os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str):
    """Skip locally, fail in CI: a missing service in CI is a broken pipeline, not a skip."""
    if CI:
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def redis_server(tmp_path):
    """A fresh ``redis-server`` (append-only persistence) for one test."""
    try:
        server = RedisServer(tmp_path / "redis", free_port()).start()
    except ServiceError as exc:
        unavailable(str(exc))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    """The throwaway PostgreSQL server, or None when ``PROMPTLOOP_TEST_DATABASE_URL`` names one.

    Its log is kept beside its data (``PostgresServer.log_path``); when the server dies, the test that
    notices fails with the end of that log.
    """
    if os.environ.get("PROMPTLOOP_TEST_DATABASE_URL"):
        yield None
        return
    if not (PG_BIN / "initdb").exists():
        unavailable(f"PostgreSQL not found in {PG_BIN} and PROMPTLOOP_TEST_DATABASE_URL unset")
    server = PostgresServer(tmp_path_factory.mktemp("pg"), free_port()).start()
    yield server
    died = server.died()
    server.stop()
    if died is not None:
        pytest.fail(death_notice(server, died), pytrace=False)


def death_notice(server: PostgresServer, status: int) -> str:
    """The first notice of a dead server carries its log; later ones point at it."""
    if getattr(server, "death_reported", False):
        return f"the test PostgreSQL server is dead (exit status {status}; its log, shown earlier: {server.log_path})"
    server.death_reported = True
    return f"the test PostgreSQL server died (exit status {status}); its log ({server.log_path}):\n{server.log_tail()}"


@pytest.fixture(scope="session")
def pg_server_url(pg_server):
    """A PostgreSQL server: ``PROMPTLOOP_TEST_DATABASE_URL`` (CI starts one) or a throwaway cluster."""
    return os.environ.get("PROMPTLOOP_TEST_DATABASE_URL") or pg_server.url


@pytest.fixture
def pg_url(pg_server_url, pg_server):
    """A new, empty database on the test PostgreSQL server, dropped after the test."""
    import psycopg
    from sqlalchemy.engine import make_url

    def check_alive():
        if pg_server is not None and pg_server.died() is not None:
            pytest.fail(death_notice(pg_server, pg_server.died()), pytrace=False)

    base = make_url(pg_server_url)
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = f"host={base.host} port={base.port} user={base.username} dbname=postgres"
    if base.password:
        admin += f" password={base.password}"
    check_alive()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield base.set(database=name).render_as_string(hide_password=False)
    check_alive()  # died during this test: its teardown fails with the server's log
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
