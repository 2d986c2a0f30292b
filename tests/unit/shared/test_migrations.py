"""Migrations build exactly the schema ``shared.models`` declares (SQLite here; PostgreSQL in integration)."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from shared.db import make_engine
from shared.migrate import current, upgrade
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
