"""The report on PostgreSQL (aware timestamps, ``extract(epoch)`` and ``floor``) equals the one on SQLite."""

import pytest

from shared.db import make_engine
from shared.migrate import upgrade
from shared.report import data, write_report

from .conftest import ROLLBACK_REASON, seed_all

pytestmark = pytest.mark.integration


def _buckets(engine):
    series = data.metric_series(engine)
    return series["width_s"], sorted((r["variant"], r["t"], r["n"], r["n_quality"], round(r["latency_ms"], 6))
                                     for r in series["rows"])


def test_postgres_buckets_and_page_match_sqlite(pg_url, seeded, tmp_path):
    engine = make_engine(pg_url)
    try:
        upgrade(engine)
        seed_all(engine)
        assert _buckets(engine) == _buckets(seeded[0])
        report = write_report(engine, tmp_path)
        assert set(report.pngs) == {"metrics-entity_extraction", "rollouts", "optimizations"}
        html = report.html.read_text()
        assert ROLLBACK_REASON in html and html.count("data:image/png;base64,") == 3
        assert report.counts == write_report(seeded[0], tmp_path / "sqlite").counts
    finally:
        engine.dispose()
