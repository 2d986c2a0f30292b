"""Beat's scheduler: Celery's persistent one, plus a heartbeat and one sender per slot.

Entries named in ``scheduler.schedule.SLOTTED`` are sent by the first beat to claim their slot in
Redis (``shared.monitoring.slots``); a second beat ticking in the same slot logs that and sends
nothing. The message carries the slot in its ``promptloop_slot`` header, so the task can log it.
Every tick also refreshes the heartbeat that ``promptloop status`` reads. Other entries are sent as
Celery always does (their tasks are safe to run twice).
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import time

import redis
from celery.beat import PersistentScheduler
from celery.schedules import schedule as interval_schedule

from shared.monitoring.slots import beat_tick, claim_slot
from shared.rediscon import get_redis

from .schedule import SLOTTED

log = logging.getLogger(__name__)

#: Seconds between two heartbeat writes at most (beat may tick many times a second).
HEARTBEAT_EVERY_S = 1.0


class SlotScheduler(PersistentScheduler):
    def __init__(self, *args, **kwargs):
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._last_beat = 0.0
        self._redis: redis.Redis | None = None
        super().__init__(*args, **kwargs)

    @property
    def redis(self) -> redis.Redis:
        if self._redis is None:
            self._redis = get_redis()
        return self._redis

    def tick(self, *args, **kwargs):
        now = time.monotonic()
        if now - self._last_beat >= HEARTBEAT_EVERY_S:
            try:
                beat_tick(self.redis, self.owner)
                self._last_beat = now
            except redis.RedisError as exc:
                log.warning("beat heartbeat not recorded: %s", exc)
        return super().tick(*args, **kwargs)

    def apply_entry(self, entry, producer=None):
        if entry.name not in SLOTTED or not isinstance(entry.schedule, interval_schedule):
            return super().apply_entry(entry, producer=producer)
        period = entry.schedule.run_every.total_seconds()
        try:
            slot = claim_slot(self.redis, entry.name, period, time.time(), self.owner)
        except redis.RedisError as exc:
            log.error("Scheduler: %s not sent, its slot could not be claimed: %s", entry.name, exc)
            return None
        if slot is None:
            log.info("Scheduler: %s: this slot was sent by another beat", entry.name)
            return None
        slotted = copy.copy(entry)
        headers = dict(entry.options.get("headers") or {}, promptloop_slot=slot)
        slotted.options = {**entry.options, "headers": headers}
        log.info("Scheduler: %s: slot %s", entry.name, slot)
        return super().apply_entry(slotted, producer=producer)
