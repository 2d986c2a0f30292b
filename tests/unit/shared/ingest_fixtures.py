"""Ingest fixtures shared by the ingest test modules: a fake Redis and a migrated SQLite engine."""

import fakeredis
import pytest

from shared.db import make_engine
from shared.migrate import upgrade


@pytest.fixture
def r():
    return fakeredis.FakeRedis()


@pytest.fixture
def engine(tmp_path):
    e = make_engine(f"sqlite:///{tmp_path / 'ingest.db'}")
    upgrade(e)
    return e
