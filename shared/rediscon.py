"""One Redis connection pool per process, rebuilt after fork."""

from __future__ import annotations

import redis

from .settings import Settings, get_settings

_client: redis.Redis | None = None


def get_redis(settings: Settings | None = None) -> redis.Redis:
    """The process's Redis client (bytes in, bytes out; stream payloads are not always UTF-8)."""
    global _client
    if _client is None:
        _client = redis.Redis.from_url((settings or get_settings()).redis_url, socket_timeout=10,
                                       socket_connect_timeout=5, health_check_interval=30)
    return _client


def reset_redis() -> None:
    """Forget the client after fork; the child opens its own connections."""
    global _client
    _client = None
