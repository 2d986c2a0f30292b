"""What beat triggers, and why each entry exists."""

from __future__ import annotations

from shared.settings import Settings

#: Entries beat sends once per slot of their period, however many beats run (``scheduler.slots``).
SLOTTED = frozenset({"check-alerts", "post-alerts", "cleanup"})
#: Retention runs once every this many monitor intervals (every 5 minutes at the default 30 s).
CLEANUP_EVERY = 10


def beat_schedule(settings: Settings) -> dict:
    """The schedule for ``settings``; each entry expires after 1.5 periods so ticks never pile up
    behind busy or absent workers."""
    interval = settings.drain_interval_s
    return {
        # Keep the event stream drained. A tick is a no-op when enough drainers already run; a
        # drainer that hits its time budget with a backlog left re-enqueues itself.
        "drain-events": {
            "task": "tasks.ingest.drain_events",
            "schedule": interval,
            "options": {"expires": interval * 1.5},
        },
        # Judge running rollouts on live evidence (promote a step, roll back, hold) and republish
        # the routing state producers read, repairing a Redis that lost it. Safe when two beats run.
        "check-rollouts": {
            "task": "tasks.control.check_rollouts",
            "schedule": settings.rollout_check_s,
            "options": {"expires": settings.rollout_check_s * 1.5},
        },
        # The real-time optimizer: start optimizations that degradation, feedback volume or the
        # schedule call for. Safe when two beats run: one optimization per incident (shared.realtime).
        "optimizer-tick": {
            "task": "tasks.realtime.tick",
            "schedule": settings.monitor_interval_s,
            "options": {"expires": settings.monitor_interval_s * 1.5},
        },
        # Monitoring (shared.monitoring): alert rules, then the webhook (retries what it has not
        # acknowledged; a slow webhook delays nothing, each alert posts in its own thread), retention.
        "check-alerts": {
            "task": "tasks.monitor.check_alerts",
            "schedule": settings.monitor_interval_s,
            "options": {"expires": settings.monitor_interval_s * 1.5},
        },
        "post-alerts": {
            "task": "tasks.monitor.post_alerts",
            "schedule": settings.monitor_interval_s,
            "options": {"expires": settings.monitor_interval_s * 1.5},
        },
        "cleanup": {
            "task": "tasks.monitor.cleanup",
            "schedule": settings.monitor_interval_s * CLEANUP_EVERY,
            "options": {"expires": settings.monitor_interval_s * CLEANUP_EVERY * 1.5},
        },
    }
