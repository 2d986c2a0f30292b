"""The drain task: continues itself while a backlog remains, steps aside when enough drainers run."""

import tasks.ingest as task_module
from shared.ingest import DrainStats


def run(monkeypatch, stats):
    sent = []
    monkeypatch.setattr(task_module, "_process_ingestor", lambda: object())
    monkeypatch.setattr(task_module, "drain_in_slot", lambda ingestor, slots, budget: stats)
    monkeypatch.setattr(task_module.drain_events, "apply_async", lambda *a, **k: sent.append((a, k)))
    return task_module.drain_events.run(), sent


def test_a_backlog_re_enqueues_the_drain(monkeypatch):
    result, sent = run(monkeypatch, DrainStats(batches=3, entries=30, read=3000, stored=3000, backlog=True))
    assert result["stored"] == 3000 and len(sent) == 1


def test_a_drained_stream_stops_the_chain(monkeypatch):
    result, sent = run(monkeypatch, DrainStats(batches=1, entries=2, read=20, stored=20))
    assert result["backlog"] is False and sent == []


def test_busy_slots_skip_without_draining(monkeypatch):
    result, sent = run(monkeypatch, None)
    assert result == {"skipped": "all drain slots busy"} and sent == []
