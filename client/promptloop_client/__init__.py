"""promptloop's producer: emit feedback, metric and example events from LightRAG to Redis.

Use a ``Client`` directly, or the module-level functions, which share one client configured by
``configure()`` or, on first use, from ``PROMPTLOOP_REDIS_URL`` / ``REDIS_URL``. Routing calls to
prompt variants: a ``Router``, or ``select_variant`` with the shared router (``configure_router()``).
"""

from __future__ import annotations

import os
import threading

from .client import Client
from .monitor import monitored as _monitored
from .routing import Router, Selection
from .wire import STREAM

__all__ = ["Client", "STREAM", "configure", "get_client", "feedback", "metric", "example", "monitored",
           "flush", "close", "stats", "Router", "Selection", "configure_router", "get_router", "select_variant"]

_default: Client | None = None
_default_lock = threading.Lock()
_router: Router | None = None


def _url(redis_url: str | None) -> str:
    return redis_url or os.environ.get("PROMPTLOOP_REDIS_URL") or os.environ.get("REDIS_URL") \
        or "redis://localhost:6379/0"


def configure(redis_url: str | None = None, **options) -> Client:
    """Create (or replace) the shared client used by the module-level functions."""
    global _default
    with _default_lock:
        if _default is not None:
            _default.close()
        _default = Client(_url(redis_url), **options)
        return _default


def get_client() -> Client:
    """The shared client, created from the environment on first use."""
    return _default or configure()


def feedback(variant: str, model: str, score: float, feedback_type: str = "quality", *, ts=None) -> None:
    """See ``Client.feedback``."""
    get_client().feedback(variant, model, score, feedback_type, ts=ts)


def metric(variant: str, model: str, latency_ms: float, success: bool, quality: float | None = None,
           tokens_in: int | None = None, tokens_out: int | None = None, family: str | None = None, *,
           ts=None) -> None:
    """See ``Client.metric``."""
    get_client().metric(variant, model, latency_ms, success, quality, tokens_in, tokens_out, family, ts=ts)


def example(family: str, model: str, variant: str, input: str, output: str, reference: str | None = None, *,
            latency_ms: float | None = None, tokens_in: int | None = None, tokens_out: int | None = None,
            ts=None) -> None:
    """See ``Client.example``."""
    get_client().example(family, model, variant, input, output, reference, latency_ms, tokens_in, tokens_out, ts=ts)


def monitored(family: str, variant: str, model: str, **options):
    """See ``Client.monitored``; the shared client is resolved when the decorator is applied."""
    return _monitored(get_client(), family, variant, model, **options)


def flush(timeout: float | None = 10.0) -> bool:
    """See ``Client.flush``."""
    return get_client().flush(timeout)


def close(timeout: float = 5.0) -> bool:
    """Close the shared client and router, if they were created."""
    if _router is not None:
        _router.close()
    return _default.close(timeout) if _default is not None else True


def configure_router(redis_url: str | None = None, **options) -> Router:
    """Create (or replace) the shared router used by ``select_variant``; URL as in ``configure``."""
    global _router
    with _default_lock:
        if _router is not None:
            _router.close()
        _router = Router(_url(redis_url), **options)
        return _router


def get_router() -> Router:
    """The shared router, created from the environment on first use."""
    return _router or configure_router()


def select_variant(family: str, model: str, routing_key, default: str = "baseline") -> Selection:
    """See ``Router.select_variant``."""
    return get_router().select_variant(family, model, routing_key, default)


def stats() -> dict:
    """See ``Client.stats``."""
    return get_client().stats()
