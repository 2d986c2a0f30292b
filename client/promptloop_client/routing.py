"""Route each call to a prompt variant: the rollout state promptloop publishes, cached in the process.

A ``Router`` polls ``wire.ROLLOUT_VERSION_KEY`` (one GET) in a background thread and reads
``wire.ROLLOUT_STATE_KEY`` only when the version changed; ``select_variant`` then answers from an
immutable dict, without I/O. Sticky: a routing key's bucket (``wire.bucket``) depends only on the key
and the rollout's salt, so the same key gets the same variant at a given percentage and keys on the
candidate stay on it as the percentage grows.

Nothing here raises into the caller: Redis down keeps the last state read; a state that is not
valid JSON, or a route with a bad candidate or percentage, serves the incumbent; a route without a
valid incumbent, or a family x model the state does not name, serves ``Selection(default, None, False)``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import zlib
from typing import NamedTuple, Optional

import redis

from . import wire
from .client import _name

log = logging.getLogger("promptloop_client")


class Selection(NamedTuple):
    """The variant serving one call: ``template`` is the published template object, or None for
    "use your own prompt"; ``candidate`` is True when the call is in the candidate's share."""

    name: str
    template: Optional[dict]
    candidate: bool


class _Route(NamedTuple):
    salt_crc: int  # crc32 of the salt: the running value wire.bucket starts the key's crc from
    threshold: int  # buckets below this serve the candidate
    incumbent: Selection
    candidate: Optional[Selection]


def _selection(obj, candidate: bool) -> Selection:
    if not isinstance(obj, dict):
        raise ValueError("a variant must be an object")
    _name(obj.get("name"), "variant")  # a name events can carry
    template = obj.get("template")
    if template is not None and not isinstance(template, dict):
        raise ValueError("a template must be an object or null")
    return Selection(obj["name"], template, candidate)


def _route(spec) -> Optional[_Route]:
    """One family x model entry of the state; None when it has no valid incumbent."""
    try:
        incumbent = _selection(spec["incumbent"], False)
    except Exception:
        return None
    try:
        candidate = None if spec.get("candidate") is None else _selection(spec["candidate"], True)
        pct, salt = spec["percentage"], spec["salt"]
        if type(pct) not in (int, float) or not 0 <= pct <= 1 or not isinstance(salt, str):
            raise ValueError("percentage must be a number in 0..1 and salt a string")
        threshold = round(pct * wire.BUCKETS) if candidate is not None else 0
        return _Route(zlib.crc32(salt.encode("utf-8")), threshold, incumbent, candidate)
    except Exception:  # a bad candidate or share: the incumbent serves every key
        return _Route(0, 0, incumbent, None)


def parse_state(raw) -> dict:
    """``{(family, model): _Route}`` from the state's JSON; ``ValueError`` when it is not a state."""
    state = json.loads(raw)
    routes = state.get("routes") if isinstance(state, dict) else None
    if not isinstance(routes, dict):
        raise ValueError("the rollout state has no 'routes' object")
    table = {}
    for family, models in routes.items():
        if not isinstance(models, dict):
            continue
        for model, spec in models.items():
            route = _route(spec) if isinstance(spec, dict) else None
            if route is not None:
                table[(family, model)] = route
    return table


class Router:
    """Rollout state from Redis, refreshed every ``refresh_interval`` seconds in a daemon thread.

    ``connection_or_url``: a ``redis.Redis`` (or fakeredis) or a URL; a producer's URL works (the
    router only GETs ``promptloop:rollout:*`` keys).
    """

    def __init__(self, connection_or_url="redis://localhost:6379/0", *, refresh_interval: float = 0.5,
                 socket_timeout: float = 1.0):
        if isinstance(connection_or_url, str):
            connection_or_url = redis.Redis.from_url(connection_or_url, socket_timeout=socket_timeout,
                                                     socket_connect_timeout=socket_timeout)
        self._redis = connection_or_url
        self.refresh_interval = refresh_interval
        self._routes: dict = {}
        self._version = None  # the version the cached routes were read at
        self._counts = {"refreshes": 0, "reads": 0, "errors": 0}
        self._last_error: Optional[str] = None
        self._closed = False
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.refresh()  # serve the published state from the first call when Redis answers
        self._start()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)

    # ----- the caller's path ---------------------------------------------------------------

    def select_variant(self, family: str, model: str, routing_key, default: str = "baseline") -> Selection:
        """The variant for one call of ``family`` on ``model``; ``routing_key`` (str or bytes) picks
        the share. Never raises."""
        try:
            route = self._routes.get((family, model))
            if route is None:
                return Selection(default, None, False)
            threshold = route.threshold
            if threshold <= 0:
                return route.incumbent
            if threshold >= wire.BUCKETS:
                return route.candidate
            # wire.bucket inlined, with the salt's crc precomputed
            data = routing_key.encode("utf-8", "surrogatepass") if isinstance(routing_key, str) else routing_key
            h = zlib.crc32(data, route.salt_crc)
            h ^= h >> 16
            h = (h * 0x85EBCA6B) & 0xFFFFFFFF
            h ^= h >> 13
            h = (h * 0xC2B2AE35) & 0xFFFFFFFF
            h ^= h >> 16
            return route.candidate if h % wire.BUCKETS < threshold else route.incumbent
        except Exception:
            return self.incumbent(family, model, default)

    def incumbent(self, family: str, model: str, default: str = "baseline") -> Selection:
        """The incumbent of ``family`` x ``model`` (what serves when a candidate cannot). Never raises."""
        try:
            route = self._routes.get((family, model))
            if route is not None:
                return route.incumbent
        except Exception:
            pass
        return Selection(default, None, False)

    # ----- the refresher --------------------------------------------------------------------

    def refresh(self) -> bool:
        """Poll the version and re-read the state if it changed; False when Redis or the state failed."""
        try:
            self._counts["refreshes"] += 1
            version = self._redis.get(wire.ROLLOUT_VERSION_KEY)
            if version is None or version == self._version:
                return True  # nothing published (an emptied Redis too): keep serving what was read
            raw = self._redis.get(wire.ROLLOUT_STATE_KEY)
            self._counts["reads"] += 1
            if raw is None:
                raise ValueError(f"{wire.ROLLOUT_VERSION_KEY} is set but {wire.ROLLOUT_STATE_KEY} is missing")
            try:
                self._routes = parse_state(raw)
            except Exception:
                # promptloop published something unreadable: no candidate serves until it is fixed
                self._routes = {k: r._replace(threshold=0, candidate=None) for k, r in self._routes.items()}
                self._version = version
                raise
            self._version = version
            return True
        except redis.RedisError as exc:
            self._error(exc)
        except Exception as exc:
            self._error(exc)
            log.warning("promptloop rollout state unusable: %s", self._last_error)
        return False

    def _error(self, exc: BaseException) -> None:
        self._counts["errors"] += 1
        self._last_error = f"{type(exc).__name__}: {exc}"

    def _run(self) -> None:
        while not self._stop.wait(self.refresh_interval):
            try:
                self.refresh()
            except Exception:  # never let the thread die
                log.exception("promptloop router error")

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="promptloop-router", daemon=True)
        self._thread.start()

    def _after_fork(self) -> None:
        # A forked child inherits the cached state but not the thread: start its own.
        self._stop = threading.Event()
        if not self._closed:
            self._start()

    def close(self, timeout: float = 2.0) -> None:
        """Stop refreshing; ``select_variant`` keeps answering from the last state."""
        self._closed = True
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def stats(self) -> dict:
        """refreshes, reads (of the state), errors, last_error, version, routes (family x model known)."""
        version = self._version.decode() if isinstance(self._version, bytes) else self._version
        return {**self._counts, "last_error": self._last_error, "version": version, "routes": len(self._routes)}
