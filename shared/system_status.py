"""One dict describing the whole system, for ``DSPyPhase2Manager.get_system_status``: each part is read
on its own, so Redis or the database being down shows as that part's ``error``, not an exception."""

from __future__ import annotations

from sqlalchemy import Engine

from .settings import Settings


def _part(fn):
    try:
        return fn()
    except Exception as exc:  # an unreachable service is a status, not a failure of the report
        return {"error": f"{type(exc).__name__}: {exc}"}


def _workers(settings: Settings, timeout: float = 1.0) -> list[str]:
    """Workers answering a ping on this settings' broker (the manager's REDIS_URL may not be the env's)."""
    from workers.app import make_app

    return sorted(make_app(settings).control.inspect(timeout=timeout).ping() or {})


def system_status(engine: Engine, settings: Settings, services=None) -> dict:
    import redis

    from .realtime.status import recent_triggers, recommendation_counts, running_optimizations
    from .rollout.status import rollout_table
    from .status import stream_status, totals

    r = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2)
    # Celery's ping would retry a dead broker for a long time: ask Redis first.
    workers = _part(lambda: _workers(settings)) if _part(r.ping) is True else {"error": "broker unreachable"}
    out = {
        "stream": _part(lambda: stream_status(r)),
        "database": _part(lambda: totals(engine)),
        "workers": workers,
        "rollouts": _part(lambda: [x for x in rollout_table(engine, limit=10) if x["status"] in ("running", "paused")]),
        "optimizations": _part(lambda: running_optimizations(engine)),
        "triggers": _part(lambda: recent_triggers(engine, limit=10)),
        "recommendations": _part(lambda: recommendation_counts(engine)),
        "config": settings.optimization.model_dump(),
    }
    if services is not None:
        out["processes"] = {name: {"pid": p.pid, "running": p.poll() is None} for name, p in services.procs.items()}
    try:
        from .monitoring.alerts import recent_alerts
    except ImportError:  # monitoring not installed in this checkout
        return out
    out["alerts"] = _part(lambda: recent_alerts(engine, limit=10))
    try:
        from .monitoring.health import health
    except ImportError:
        return out
    names = workers if isinstance(workers, list) else None
    out["health"] = _part(lambda: health(engine, r, settings, workers=lambda: names))
    return out
