"""Monitoring tasks on the control queue: check alert rules, post alerts to the webhook, retention.

Beat sends each once per slot however many beats run (``scheduler.slots``); the slot rides in the
message's ``promptloop_slot`` header and is logged. Each is also safe when run twice: alerts fire once
per incident (``open_key``), a posting is leased per alert, a cleanup deletes what is already gone.
"""

from __future__ import annotations

import logging
import time

from shared.db import get_engine
from shared.rediscon import get_redis
from shared.settings import get_settings
from workers.app import app
from workers.queues import Queue

log = logging.getLogger(__name__)


def _slot(task) -> object:
    return getattr(task.request, "promptloop_slot", None) or (task.request.headers or {}).get("promptloop_slot")


@app.task(name="tasks.monitor.check_alerts", queue=Queue.CONTROL.value, ignore_result=False, bind=True)
def check_alerts(self) -> dict:
    """Evaluate the alert rules; hand what fired or resolved to ``post_alerts`` (never posts itself)."""
    from shared.monitoring.alerts import check

    started = time.perf_counter()
    settings = get_settings()
    out = check(get_engine(), settings)
    if (out["fired"] or out["resolved"]) and settings.alert_webhook_url:
        post_alerts.delay()
    out["seconds"] = round(time.perf_counter() - started, 4)
    log.info("check_alerts slot %s: %s", _slot(self), out)
    return out


@app.task(name="tasks.monitor.post_alerts", queue=Queue.CONTROL.value, ignore_result=False, bind=True)
def post_alerts(self) -> list[int]:
    """Start posting the alerts the webhook has not acknowledged, each in its own thread; returns at once."""
    from shared.monitoring.webhook import post_pending

    started = post_pending(get_engine(), get_redis(), get_settings())
    if started:
        log.info("post_alerts slot %s: posting alerts %s", _slot(self), started)
    return started


@app.task(name="tasks.monitor.cleanup", queue=Queue.CONTROL.value, ignore_result=False, bind=True)
def cleanup(self) -> dict:
    """Delete events and production examples past retention, keeping what running work uses."""
    from shared.monitoring.retention import cleanup as run_cleanup

    out = run_cleanup(get_engine(), get_settings())
    log.info("cleanup slot %s: %s", _slot(self), out)
    return out
