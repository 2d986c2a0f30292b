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
def pg_server_url(tmp_path_factory):
    """A PostgreSQL server: ``PROMPTLOOP_TEST_DATABASE_URL`` (CI starts one) or a throwaway cluster."""
    url = os.environ.get("PROMPTLOOP_TEST_DATABASE_URL")
    if url:
        yield url
        return
    if not (PG_BIN / "initdb").exists():
        unavailable(f"PostgreSQL not found in {PG_BIN} and PROMPTLOOP_TEST_DATABASE_URL unset")
    server = PostgresServer(tmp_path_factory.mktemp("pg"), free_port()).start()
    yield server.url
    server.stop()


@pytest.fixture
def pg_url(pg_server_url):
    """A new, empty database on the test PostgreSQL server, dropped after the test."""
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(pg_server_url)
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = f"host={base.host} port={base.port} user={base.username} dbname=postgres"
    if base.password:
        admin += f" password={base.password}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield base.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
