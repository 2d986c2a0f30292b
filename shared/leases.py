"""Redis leases: at most N holders of a named resource, each hold expiring on its own.

A holder that dies without releasing blocks its slot only until the lease's TTL runs out.
"""

from __future__ import annotations

import secrets

import redis

# Delete the key only if it still holds our token: a lease that expired and was taken by another
# worker must not be released by the old holder.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""


class Lease:
    """One held slot; use as a context manager or call ``release``."""

    def __init__(self, r: redis.Redis, key: str, token: str, ttl_ms: int):
        self.redis, self.key, self.token, self.ttl_ms = r, key, token, ttl_ms

    def extend(self) -> bool:
        """Push the expiry ``ttl_ms`` out again; False if the lease was lost meanwhile."""
        return bool(self.redis.eval(_EXTEND, 1, self.key, self.token, self.ttl_ms))

    def release(self) -> None:
        """Give the slot back (no effect if it already expired)."""
        self.redis.eval(_RELEASE, 1, self.key, self.token)

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def acquire(r: redis.Redis, prefix: str, slots: int, ttl_ms: int) -> Lease | None:
    """Take a free slot among ``prefix0 .. prefix{slots-1}``, or return None when all are held."""
    token = secrets.token_hex(8)
    for slot in range(slots):
        key = f"{prefix}{slot}"
        if r.set(key, token, nx=True, px=ttl_ms):
            return Lease(r, key, token, ttl_ms)
    return None
