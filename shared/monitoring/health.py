"""Health checks: Redis, the database, live workers, beat's last tick and the ingest lag.

``health()`` returns a JSON-safe dict, ``{"ok": bool, "checks": {name: {"ok": bool, ...}}}``; each check
catches its own failure, so one service down never hides the state of the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from sqlalchemy import Engine, text

from ..constants import GROUP, STREAM
from ..settings import Settings
from ..status import stream_status
from .slots import last_tick

#: Ingest is late when the oldest entry not yet stored is older than this.
INGEST_LAG_LIMIT_S = 60.0


def beat_limit_s(settings: Settings) -> float:
    """Beat ticks at least as often as its shortest entry; three of those missed means it is gone."""
    return max(15.0, 3 * min(settings.drain_interval_s, settings.rollout_check_s, settings.monitor_interval_s))


def _timed(fn) -> dict:
    started = time.perf_counter()
    try:
        fn()
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}


def _ping_workers(timeout: float = 1.0) -> list[str] | None:
    from workers.app import app

    try:
        return sorted(app.control.inspect(timeout=timeout).ping() or {})
    except Exception:
        return None


def _id_ms(entry_id) -> int:
    return int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-")[0])


def ingest_lag(r: redis.Redis, stream: str = STREAM, group: str = GROUP) -> dict:
    """The stream's backlog and the age (s, on Redis's clock) of its oldest entry not yet stored."""
    st = stream_status(r, stream, group)
    oldest = []
    if st["pending"]:
        oldest.append(_id_ms(r.xpending(stream, group)["min"]))
    first = r.xrange(stream, min=f"({st['last_delivered']}" if "last_delivered" in st else "-", count=1)
    if first:
        oldest.append(_id_ms(first[0][0]))
    seconds, micros = r.time()
    now_ms = seconds * 1000 + micros // 1000
    lag_s = max(0.0, (now_ms - min(oldest)) / 1000) if oldest else 0.0
    return {"length": st["length"], "pending": st["pending"], "undelivered": st["lag"], "lag_s": round(lag_s, 1)}


def _beat(r: redis.Redis, settings: Settings) -> dict:
    try:
        tick = last_tick(r)
    except redis.RedisError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    if tick is None:
        return {"ok": False, "error": "no beat has ticked"}
    limit = beat_limit_s(settings)
    return {"ok": tick[1] <= limit, "last_tick_s": round(tick[1], 1), "limit_s": limit, "beat": tick[0]}


def _ingest(r: redis.Redis) -> dict:
    try:
        lag = ingest_lag(r)
    except redis.RedisError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": lag["lag_s"] <= INGEST_LAG_LIMIT_S, **lag, "limit_s": INGEST_LAG_LIMIT_S}


def health(engine: Engine, r: redis.Redis, settings: Settings,
           workers: Callable[[], list[str] | None] = _ping_workers) -> dict:
    """Every check, and whether all passed. ``workers`` returns the live workers' names (None: the
    broker did not answer); by default a Celery ping with a one-second wait."""
    checks = {"redis": _timed(r.ping)}

    def db():
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    checks["database"] = _timed(db)
    if not checks["redis"]["ok"]:
        # The broker is this Redis: no worker can answer, and waiting on retries would only stall.
        checks["workers"] = checks["beat"] = checks["ingest"] = {"ok": False, "error": "redis unreachable"}
    else:
        names = workers()
        checks["workers"] = ({"ok": False, "error": "broker unreachable"} if names is None
                             else {"ok": bool(names), "count": len(names), "names": names})
        checks["beat"], checks["ingest"] = _beat(r, settings), _ingest(r)
    return {"ok": all(c["ok"] for c in checks.values()), "checks": checks}
