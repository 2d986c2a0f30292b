"""``shared.report``: SQL buckets, the PNGs and the self-contained page, on seeded and empty SQLite."""

import base64
import re
import uuid
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from shared.db import make_engine
from shared.models import MetricEvent
from shared.report import data, page, write_report

from .conftest import FAMILY, ROLLBACK_REASON, START

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_seeded_database_gives_three_plots_and_a_page_embedding_them(seeded, tmp_path):
    engine, rollout_id = seeded
    report = write_report(engine, tmp_path / "out")
    assert set(report.pngs) == {f"metrics-{FAMILY}", "rollouts", "optimizations"}
    for png in report.pngs.values():
        blob = png.read_bytes()
        assert blob.startswith(PNG_MAGIC) and len(blob) > 10_000
    html = report.html.read_text()
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert sorted(base64.b64decode(e) for e in embedded) == sorted(p.read_bytes() for p in report.pngs.values())
    assert "http://" not in html and "https://" not in html  # self-contained
    # The rollout's steps, its end and the reason for it.
    assert f"Rollout {rollout_id}: DSPY_A over baseline" in html
    for cells in ("<td>deploy</td><td>-</td><td>10%</td>", "<td>promote</td><td>10%</td><td>25%</td>",
                  "<td>promote</td><td>25%</td><td>50%</td>", "<td>rollback</td><td>50%</td><td>0%</td>"):
        assert cells in html.replace('<td>', '<td>')
    assert ROLLBACK_REASON in html and "rolled_back" in html
    assert "No metric events yet" not in html and "Nothing has happened yet" not in html
    assert report.counts == {"metric_events": 600, "rollouts": 1, "optimization_runs": 2, "alerts": 0}


def test_buckets_are_aggregated_in_sql(seeded):
    engine, _ = seeded
    series = data.metric_series(engine)
    rows = series["rows"]
    assert {r["variant"] for r in rows} == {"baseline", "DSPY_A"} and sum(r["n"] for r in rows) == 600
    assert series["width_s"] == 300 and len({r["t"] for r in rows}) <= data.MAX_BUCKETS
    assert all(r["t"].tzinfo is timezone.utc and START <= r["t"] <= START + timedelta(hours=1, minutes=1)
               for r in rows)
    assert sum(r["n_quality"] for r in rows) == 400  # every third event has no quality
    by_variant = {v: sum(r["latency_ms"] * r["n"] for r in rows if r["variant"] == v) /
                  sum(r["n"] for r in rows if r["variant"] == v) for v in ("baseline", "DSPY_A")}
    assert by_variant["DSPY_A"] < by_variant["baseline"]
    summary = {v["name"]: v for v in data.variant_summary(engine, series)}
    with engine.connect() as conn:
        direct = dict(conn.execute(select(MetricEvent.variant, func.avg(MetricEvent.quality))
                                   .group_by(MetricEvent.variant)).all())
    assert summary["baseline"]["calls"] == summary["DSPY_A"]["calls"] == 300
    assert all(abs(summary[v]["quality"] - direct[v]) < 1e-9 for v in direct)
    half = data.metric_series(engine, since=START + timedelta(minutes=30))
    assert 290 <= sum(r["n"] for r in half["rows"]) <= 310
    runs = data.optimizations(engine)
    assert [r["trial_scores"][:2] for r in runs] == [[0.4, 0.44]] * 2 and runs[0]["id"] < runs[1]["id"]


def test_empty_database_gives_a_page_that_says_so(empty_engine, tmp_path):
    report = write_report(empty_engine, tmp_path)
    html = report.html.read_text()
    assert report.pngs == {} and not list(tmp_path.glob("*.png"))
    assert "No metric events yet" in html and "Nothing has happened yet" in html and "No rollouts yet" in html
    assert "data:image/png" not in html


def test_an_empty_report_removes_the_pictures_of_an_earlier_one(seeded, empty_db, tmp_path):
    write_report(seeded[0], tmp_path / "out")
    assert len(list((tmp_path / "out").glob("*.png"))) == 3
    empty = make_engine(f"sqlite:///{empty_db}")
    write_report(empty, tmp_path / "out")
    empty.dispose()
    assert not list((tmp_path / "out").glob("*.png"))


def test_many_variants_and_a_short_window(empty_engine, tmp_path):
    now = datetime.now(timezone.utc)
    rows = [{"event_id": str(uuid.uuid4()), "ts": now - timedelta(seconds=i % 40), "family": f"f{v % 2}",
             "variant": f"V{v}", "model": "m", "latency_ms": 100.0 + v, "success": True, "quality": None}
            for v in range(25) for i in range(4 * (v + 1))]
    with empty_engine.begin() as conn:
        conn.execute(MetricEvent.__table__.insert(), rows)
    report = write_report(empty_engine, tmp_path, hours=1)
    assert sorted(report.pngs) == ["metrics-f0", "metrics-f1"]  # one picture per family, 12-13 variants each
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in report.pngs.values())
    assert data.metric_series(empty_engine)["width_s"] == 2  # 1,300 events in 40 s: ~32 buckets
    html = report.html.read_text()
    assert all(f"<td>V{v}</td>" in html for v in range(25)) and "(events only)" in html


def test_timestamps_naive_and_aware_are_utc():
    aware = datetime(2025, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert data.utc(datetime(2025, 1, 1, 10)) == aware and data.utc(aware).tzinfo is timezone.utc
    assert data.utc(None) is None
    assert data.bucket_width(3600) == 60 and data.bucket_width(0) == 1 and data.bucket_width(86400 * 3) == 3600
    assert data.bucket_width(3600, n_events=600) == 300 and data.bucket_width(3600, n_events=10) == 600


def test_the_page_escapes_what_it_shows():
    html = page.table(["a"], [["<script>alert(1)</script>"]])
    assert "<script>" not in html and "&lt;script&gt;" in html
