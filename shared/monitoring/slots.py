"""Beat's Redis keys: one sender per schedule slot, and the heartbeat health checks read.

A slot of an entry that runs every ``period`` seconds is ``floor(unix time / period)``. The beat that
sets ``promptloop:beat:slot:<entry>:<slot>`` first (SET NX, expiring after two periods) sends the
task; any other beat ticking in the same slot sends nothing. So no slot is ever sent twice, however
many beats run; since each beat ticks about once per period, a slot goes unsent only when the beats'
ticks straddle its edges (then the next slot comes at most one period later).

The heartbeat is one key set on every tick with a fixed time to live: its age is the TTL it has lost
(``HEARTBEAT_TTL_MS - PTTL``), read on Redis's own clock, so no host's clock enters the health check.
"""

from __future__ import annotations

import math

import redis

SLOT_PREFIX = "promptloop:beat:slot:"
HEARTBEAT = "promptloop:beat:heartbeat"
HEARTBEAT_TTL_MS = 24 * 3600 * 1000


def slot_of(period: float, now: float) -> int:
    return math.floor(now / period)


def claim_slot(r: redis.Redis, entry: str, period: float, now: float, owner: str) -> int | None:
    """The slot of ``now`` if this caller is the first to claim it, else None."""
    slot = slot_of(period, now)
    ttl_ms = max(1000, int(math.ceil(period * 2000)))
    return slot if r.set(f"{SLOT_PREFIX}{entry}:{slot}", owner, nx=True, px=ttl_ms) else None


def beat_tick(r: redis.Redis, owner: str) -> None:
    """Record that a beat (``owner``) is alive and ticking now."""
    r.set(HEARTBEAT, owner, px=HEARTBEAT_TTL_MS)


def last_tick(r: redis.Redis) -> tuple[str, float] | None:
    """(owner, seconds since the last tick of any beat), or None if none ever ticked here."""
    with r.pipeline() as pipe:
        owner, pttl = pipe.get(HEARTBEAT).pttl(HEARTBEAT).execute()
    if owner is None or pttl is None or pttl < 0:
        return None
    return owner.decode() if isinstance(owner, bytes) else owner, max(0.0, (HEARTBEAT_TTL_MS - pttl) / 1000)
