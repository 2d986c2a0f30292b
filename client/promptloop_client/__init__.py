"""promptloop's producer: emit feedback, metric and example events from LightRAG to Redis.

Use a ``Client`` directly, or the module-level functions, which share one client configured by
``configure()`` or, on first use, from ``PROMPTLOOP_REDIS_URL`` / ``REDIS_URL``.
"""

from __future__ import annotations

import os
import threading

from .client import Client
from .monitor import monitored as _monitored
from .wire import STREAM

__all__ = ["Client", "STREAM", "configure", "get_client", "feedback", "metric", "example", "monitored",
           "flush", "close", "stats"]

_default: Client | None = None
_default_lock = threading.Lock()


def configure(redis_url: str | None = None, **options) -> Client:
    """Create (or replace) the shared client used by the module-level functions."""
    global _default
    with _default_lock:
        if _default is not None:
            _default.close()
        url = redis_url or os.environ.get("PROMPTLOOP_REDIS_URL") or os.environ.get("REDIS_URL")
        _default = Client(url or "redis://localhost:6379/0", **options)
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
    """Close the shared client, if one was created."""
    return _default.close(timeout) if _default is not None else True


def stats() -> dict:
    """See ``Client.stats``."""
    return get_client().stats()
