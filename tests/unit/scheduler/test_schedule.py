"""The beat schedule: what it triggers, and that ticks expire instead of piling up."""

import tasks.control  # noqa: F401
import tasks.ingest  # noqa: F401
import tasks.realtime  # noqa: F401
from scheduler.schedule import beat_schedule
from shared.settings import load_settings
from workers.app import app


def test_schedule_entries_name_registered_tasks_and_expire():
    schedule = beat_schedule(load_settings(PROMPTLOOP_DRAIN_INTERVAL_S=2.0, PROMPTLOOP_MONITOR_INTERVAL_S=7))
    assert {"drain-events", "check-rollouts", "optimizer-tick"} <= set(schedule)
    assert schedule["optimizer-tick"]["schedule"] == 7
    for entry in schedule.values():
        assert entry["task"] in app.tasks
        assert entry["options"]["expires"] == 1.5 * entry["schedule"]
