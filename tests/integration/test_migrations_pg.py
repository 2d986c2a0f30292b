"""The migrations build the models' schema on PostgreSQL too."""

import pytest

from shared.db import make_engine
from tests.unit.shared.test_migrations import assert_migrated_schema_matches_models

pytestmark = pytest.mark.integration


def test_postgresql(pg_url):
    engine = make_engine(pg_url)
    assert_migrated_schema_matches_models(engine)
    engine.dispose()
