"""``promptloop status``'s alerts table and its beat / ingest-lag line."""

import fakeredis
from rich.console import Console

import cli.report as report
from shared import rediscon
from shared.monitoring.alerts import check
from shared.monitoring.slots import beat_tick

from .conftest import NOW, ago, calls


def test_alerts_table_and_beat_line(db, monkeypatch):
    settings, engine = db
    calls(engine, [9000] * 10, ts=ago(minutes=1))
    check(engine, settings, now=NOW)
    r = fakeredis.FakeRedis()
    monkeypatch.setattr(rediscon, "_client", r)
    console = Console(record=True, width=200)
    report.print_alerts(console, engine)
    report.print_beat_and_lag(console, settings)
    beat_tick(r, "host:1")
    report.print_beat_and_lag(console, settings)
    out = console.export_text()
    assert "default latency_mean" in out and "entity_extraction | baseline | m" in out and "firing" in out
    assert "9000" in out and "5000" in out
    assert "beat: no tick recorded; ingest lag 0.0 s" in out
    assert "beat: last tick 0.0 s ago; ingest lag 0.0 s" in out
