"""Shared by the optimization and rollout tests: an embedded database with CoNLL04 imported and a
prompt-sensitive scripted model ("scripted/follow")."""

import pytest

from shared.datasets import import_datasets
from shared.db import make_engine
from shared.migrate import upgrade
from shared.settings import load_settings


@pytest.fixture(scope="module")
def conll_db(tmp_path_factory):
    """A migrated SQLite file with CoNLL04 imported once per module (copied per test by ``env``)."""
    path = tmp_path_factory.mktemp("db") / "seed.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    s = load_settings()
    import_datasets(engine, s.datasets_dir, names=["conll04"])
    engine.dispose()
    return path


@pytest.fixture
def env(conll_db, tmp_path):
    import shutil

    path = tmp_path / "t.db"
    shutil.copy(conll_db, path)
    settings = load_settings(DATABASE_URL=f"sqlite:///{path}",
                             PROMPTLOOP_MODELS={"m": "scripted/follow", "reflector": "scripted/reflect"})
    engine = make_engine(settings.sqlalchemy_url)
    yield settings, engine
    engine.dispose()
