"""Schema migrations (Alembic), run by ``promptloop init`` and before workers start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

MIGRATIONS = Path(__file__).parent / "migrations"
#: PostgreSQL advisory lock key held while migrating: concurrent ``init``s (replicas starting at
#: once) run one after another instead of racing on ``alembic_version``.
MIGRATION_LOCK = 0x70726F6D  # "prom"


def alembic_config(connection) -> Config:
    """An Alembic config bound to an open connection (no alembic.ini, no URL escaping pitfalls)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision``; running it again is a no-op."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Released when the transaction ends; the second migrator then finds the work done.
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        command.upgrade(alembic_config(conn), revision)


def current(engine: Engine) -> str | None:
    """The revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _scripts():
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(None))


def head() -> str:
    """The newest revision this code knows (what ``upgrade`` brings a database to)."""
    return _scripts().get_current_head()


def schema_problem(engine: Engine) -> str | None:
    """Why this code cannot work on the database's schema, in one sentence; None when it is current."""
    from alembic.util.exc import CommandError

    scripts = _scripts()
    rev, newest = current(engine), scripts.get_current_head()
    if rev == newest:
        return None
    if rev is None:
        return "the database has no schema yet: run `promptloop init` first"
    try:
        scripts.get_revision(rev)
    except CommandError:
        return (f"the database is at schema revision {rev}, which this promptloop does not know (it knows up to "
                f"{newest}): a newer promptloop migrated it; upgrade promptloop here")
    return f"the database is at schema revision {rev}, this promptloop needs {newest}: run `promptloop init` to migrate it"
