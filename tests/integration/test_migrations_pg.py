"""The migrations build the models' schema on PostgreSQL too."""

import pytest

from shared.db import make_engine
from tests.unit.shared.test_migrations import assert_migrated_schema_matches_models

pytestmark = pytest.mark.integration


def test_postgresql(pg_url):
    engine = make_engine(pg_url)
    assert_migrated_schema_matches_models(engine)
    engine.dispose()


def test_concurrent_inits_on_a_fresh_database_all_succeed(pg_url, tmp_path):
    """Replicas starting at once each run ``promptloop init``: migrations take turns (an advisory lock)
    instead of racing on ``alembic_version`` (UniqueViolation before)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from shared.migrate import current

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DATABASE_URL": pg_url, "PROMPTLOOP_DATA_DIR": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-m", "cli.main", "init"], cwd=root, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(4)]
    outs = [p.communicate(timeout=180)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outs
    engine = make_engine(pg_url)
    heads = sorted(p.name for p in (root / "shared" / "migrations" / "versions").glob("0*.py"))[-1][:4]
    assert current(engine) == heads
    engine.dispose()
