"""A migrated SQLite database per test (copied from one migrated per module) and row helpers."""

import shutil
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from shared.db import make_engine
from shared.migrate import upgrade
from shared.models import FeedbackEvent, MetricEvent, ProductionExample
from shared.settings import load_settings

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    path = tmp_path_factory.mktemp("db") / "seed.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture
def db(migrated, tmp_path):
    """(settings, engine) on a fresh copy of the migrated database."""
    path = tmp_path / "t.db"
    shutil.copy(migrated, path)
    settings = load_settings(DATABASE_URL=f"sqlite:///{path}", PROMPTLOOP_DATA_DIR=str(tmp_path))
    engine = make_engine(settings.sqlalchemy_url)
    yield settings, engine
    engine.dispose()


def ago(**delta) -> datetime:
    return NOW - timedelta(**delta)


def calls(engine, latencies, family="entity_extraction", variant="baseline", model="m", ts=None, success=True,
          quality=None, tokens=None):
    """One metric event per latency; ``success``/``quality`` a value or a list (one per call)."""
    n = len(latencies)
    as_list = (lambda v: v if isinstance(v, list) else [v] * n)
    rows = [{"event_id": str(uuid.uuid4()), "ts": ts or ago(seconds=30), "family": family, "variant": variant,
             "model": model, "latency_ms": float(lat), "success": ok, "quality": q,
             "tokens_in": None if tokens is None else tokens, "tokens_out": None if tokens is None else tokens}
            for lat, ok, q in zip(latencies, as_list(success), as_list(quality))]
    with engine.begin() as conn:
        conn.execute(MetricEvent.__table__.insert(), rows)


def feedback(engine, scores, variant="baseline", model="m", ts=None):
    with engine.begin() as conn:
        conn.execute(FeedbackEvent.__table__.insert(), [
            {"event_id": str(uuid.uuid4()), "ts": ts or ago(seconds=30), "variant": variant, "model": model,
             "score": s, "feedback_type": "quality"} for s in scores])


def examples(engine, n, ts, family="entity_extraction", variant="baseline", model="m") -> list[int]:
    with engine.begin() as conn:
        conn.execute(ProductionExample.__table__.insert(), [
            {"event_id": str(uuid.uuid4()), "ts": ts, "family": family, "model": model, "variant": variant,
             "input": f"in {i}", "output": "out", "reference": None} for i in range(n)])
        from sqlalchemy import select
        return list(conn.scalars(select(ProductionExample.id).order_by(ProductionExample.id.desc()).limit(n)))[::-1]
