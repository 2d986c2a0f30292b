"""Beat's SlotScheduler: one sender per slot among several beats, a heartbeat on every tick."""

from datetime import timedelta

import fakeredis
import pytest
from celery import beat
from celery.schedules import crontab, schedule

from scheduler.schedule import SLOTTED, beat_schedule
from scheduler.slots import SlotScheduler
from shared.monitoring.slots import claim_slot, last_tick
from shared.settings import load_settings
from workers.app import app


@pytest.fixture
def sent(monkeypatch):
    """Every entry a scheduler hands to Celery, instead of sending it."""
    out = []
    monkeypatch.setattr(beat.Scheduler, "apply_async", lambda self, entry, producer=None, advance=True, **kw:
                        out.append((self.owner, entry)))
    return out


def scheduler(tmp_path, r, name):
    s = SlotScheduler(app=app, schedule_filename=str(tmp_path / name), lazy=True)
    s._redis = r
    s.owner = name
    return s


def entry(name, every=30.0):
    return beat.ScheduleEntry(name=name, task=f"tasks.x.{name}", app=app, options={"expires": (every or 60) * 1.5},
                              schedule=schedule(timedelta(seconds=every)) if every else crontab())


def test_claim_slot_is_first_come_per_slot():
    r = fakeredis.FakeRedis()
    assert claim_slot(r, "e", 30, 3000.0, "a") == 100
    assert claim_slot(r, "e", 30, 3029.9, "b") is None
    assert claim_slot(r, "e", 30, 3030.0, "b") == 101
    assert claim_slot(r, "other", 30, 3000.0, "b") == 100
    assert 59_000 < r.pttl("promptloop:beat:slot:e:100") <= 60_000


def test_two_beats_send_a_slotted_entry_once_per_slot_with_its_slot(tmp_path, sent):
    r = fakeredis.FakeRedis()
    a, b = scheduler(tmp_path, r, "a"), scheduler(tmp_path, r, "b")
    e = entry("check-alerts", 30)
    a.apply_entry(e)
    b.apply_entry(e)
    assert len(sent) == 1
    owner, copy = sent[0]
    assert owner == "a" and copy.options["headers"]["promptloop_slot"] > 0 and copy.options["expires"] == 45
    assert "headers" not in e.options  # the schedule's own entry is left as it was


def test_other_entries_are_sent_by_every_beat(tmp_path, sent):
    r = fakeredis.FakeRedis()
    a, b = scheduler(tmp_path, r, "a"), scheduler(tmp_path, r, "b")
    for e in (entry("drain-events", 1), entry("cleanup", None)):  # not slotted / not an interval
        a.apply_entry(e)
        b.apply_entry(e)
    assert [o for o, _ in sent] == ["a", "b", "a", "b"]


def test_every_tick_refreshes_the_heartbeat(tmp_path, monkeypatch):
    monkeypatch.setattr(beat.Scheduler, "tick", lambda self, *a, **kw: 1.0)
    r = fakeredis.FakeRedis()
    assert last_tick(r) is None
    assert scheduler(tmp_path, r, "host:42").tick() == 1.0
    owner, age = last_tick(r)
    assert owner == "host:42" and age < 1


def test_the_monitoring_entries_are_slotted_and_the_app_uses_the_scheduler():
    schedule_ = beat_schedule(load_settings(PROMPTLOOP_MONITOR_INTERVAL_S=2))
    assert SLOTTED <= set(schedule_)
    assert schedule_["check-alerts"]["schedule"] == schedule_["post-alerts"]["schedule"] == 2
    assert schedule_["cleanup"]["schedule"] == 20
    assert app.conf.beat_scheduler == "scheduler.slots:SlotScheduler"
