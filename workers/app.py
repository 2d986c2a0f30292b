"""The Celery app every worker, beat and producer of tasks imports.

Security: JSON is the only accepted content type, so a message cannot make a worker unpickle
anything. Broker and result backend URLs come from the environment (``REDIS_URL``).
"""

from __future__ import annotations

import gc
import importlib
from collections.abc import Iterable

from celery import Celery, signals
from kombu import Queue as KombuQueue

from scheduler.schedule import beat_schedule
from shared.db import reset_engine
from shared.rediscon import reset_redis
from shared.settings import Settings, get_settings

from .queues import ROUTES, Queue


#: Modules a worker imports before it forks its pool, by queue consumed. Task modules import DSPy and
#: LightRAG lazily (inside task bodies), so an ingest-only worker never loads them (~4 s and ~190 MB per
#: process); a worker that will run such tasks loads them once in the parent, and its prefork children
#: share them instead of each importing them again on its first task. Optimization code adds its own
#: module under OPTIMIZE.
PRELOAD = {
    Queue.EVALUATE.value: ("shared.evaluation",),
    Queue.OPTIMIZE.value: ("shared.evaluation", "shared.optimize.driver"),
}


def modules_to_preload(queues: Iterable[str]) -> list[str]:
    """The modules a worker consuming ``queues`` imports before forking, in a stable order."""
    return sorted({module for q in queues for module in PRELOAD.get(q, ())})


def make_app(settings: Settings) -> Celery:
    """A Celery app configured from ``settings``."""
    app = Celery("promptloop", include=["tasks.ingest", "tasks.evaluate", "tasks.optimize", "tasks.control", "tasks.replacement",
                                          "tasks.realtime", "tasks.monitor"])
    app.conf.update(
        broker_url=settings.redis_url,
        result_backend=settings.redis_url,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_queues=[KombuQueue(q.value) for q in Queue],
        task_default_queue=Queue.CONTROL.value,
        task_routes=ROUTES,
        # One message at a time per process: tasks are long relative to fetching, and a prefetched
        # message would sit behind a 10-second drain.
        worker_prefetch_multiplier=1,
        # acks_late is set per task, only where running twice is harmless.
        task_acks_late=False,
        task_track_started=True,
        # Flower needs task events.
        worker_send_task_events=True,
        task_send_sent_event=True,
        result_expires=24 * 3600,
        broker_connection_retry_on_startup=True,
        # acks_late tasks run long (optimizations, validations): Redis must not hand a running one to a
        # second worker; kombu's default is 1 h whatever the optimization timeout.
        broker_transport_options={"visibility_timeout": settings.visibility_timeout},
        timezone="UTC",
        beat_schedule=beat_schedule(settings),
        # One sender per slot for the entries in scheduler.schedule.SLOTTED, and beat's heartbeat.
        beat_scheduler="scheduler.slots:SlotScheduler",
    )
    return app


app = make_app(get_settings())


@signals.worker_init.connect
def _preload_for_queues(sender, **_):
    # Sent in the worker's main process after `-Q` is applied and before the pool forks.
    for module in modules_to_preload(sender.app.amqp.queues.consume_from):
        importlib.import_module(module)


@signals.worker_process_init.connect
def _fresh_connections_after_fork(**_):
    # Connections opened in the parent must not be shared with forked children.
    reset_engine()
    reset_redis()
    # Everything loaded so far lives as long as the process: out of the collector's sight, full
    # collections walk only what tasks allocate (ingest's batches, chiefly), not the whole worker.
    gc.freeze()
