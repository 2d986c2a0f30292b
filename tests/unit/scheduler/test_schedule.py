"""The beat schedule: what it triggers, and that ticks expire instead of piling up."""

import tasks.ingest  # noqa: F401
from scheduler.schedule import beat_schedule
from shared.settings import load_settings
from workers.app import app


def test_schedule_entries_name_registered_tasks_and_expire():
    schedule = beat_schedule(load_settings(PROMPTLOOP_DRAIN_INTERVAL_S=2.0))
    assert sorted(schedule) == ["drain-events"]
    for entry in schedule.values():
        assert entry["task"] in app.tasks
        assert entry["options"]["expires"] == 1.5 * entry["schedule"]
