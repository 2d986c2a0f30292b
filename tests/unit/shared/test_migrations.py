"""Migrations build exactly the schema ``shared.models`` declares (SQLite here; PostgreSQL in integration)."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from shared.db import make_engine
from shared.migrate import current, head, schema_problem, upgrade
from shared.models import Base


def assert_migrated_schema_matches_models(engine):
    upgrade(engine)
    upgrade(engine)  # idempotent
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []
    assert current(engine) is not None


def test_sqlite(tmp_path):
    assert_migrated_schema_matches_models(make_engine(f"sqlite:///{tmp_path / 'p.db'}"))


def test_a_schema_other_than_this_codes_is_named_with_what_to_do(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    assert "no schema yet: run `promptloop init` first" in schema_problem(engine)
    upgrade(engine, "0005")
    older = schema_problem(engine)
    assert older == f"the database is at schema revision 0005, this promptloop needs {head()}: run `promptloop init` to migrate it"
    upgrade(engine)
    assert schema_problem(engine) is None
    with engine.begin() as conn:  # as a newer promptloop would leave it
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    assert "revision 0099, which this promptloop does not know" in schema_problem(engine)
    assert "upgrade promptloop here" in schema_problem(engine)
