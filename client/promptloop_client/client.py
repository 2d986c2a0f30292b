"""A producer that never blocks or breaks its host.

Emitting validates the arguments (a wrong one raises ``ValueError`` at once, in the caller) and
appends a tuple to an in-memory deque: no I/O, no lock, no UUID on the caller's path. A daemon
thread turns buffered tuples into JSON events (assigning each its ``event_id`` exactly once, so a
retried send carries the same id and ingest stores it once) and appends them to the Redis Stream in
batches: one stream entry of up to ``batch_size`` newline-separated events per round trip.

While Redis is unreachable, or the stream holds ``stream_cap`` entries (workers far behind), the
buffer keeps growing up to ``max_buffer`` events; past that the *oldest* events are dropped and
counted in ``stats()["dropped"]``. Nothing is dropped silently and nothing raises into the host.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque

import redis

from . import wire

log = logging.getLogger("promptloop_client")

_KEYS = {
    "feedback": ("variant", "model", "score", "feedback_type"),
    "metric": ("variant", "model", "latency_ms", "success", "quality", "tokens_in", "tokens_out", "family"),
    "example": (
        "family", "model", "variant", "input", "output", "reference", "latency_ms", "tokens_in", "tokens_out",
    ),
}


def _name(value, what):
    if type(value) is not str or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    return value


def _unit(value, what):
    # `not (0 <= x <= 1)` is also true for NaN.
    if type(value) not in (float, int) or not (0.0 <= value <= 1.0):
        raise ValueError(f"{what} must be a number in 0..1, got {value!r}")
    return float(value)


def _non_negative(value, what, kind=(float, int)):
    if type(value) not in kind or not (value >= 0) or value == float("inf"):
        raise ValueError(f"{what} must be a finite number >= 0, got {value!r}")
    return value


def _text(value, what):
    if type(value) is not str:
        raise ValueError(f"{what} must be a string, got {type(value).__name__}")
    return value


class Client:
    """Buffered, non-blocking producer of promptloop events.

    Args:
        redis_url: where the stream lives; ignored when ``connection`` is given.
        max_buffer: events held in memory while Redis is unreachable; then the oldest are dropped.
        batch_size: events per stream entry (one round trip).
        flush_interval: seconds the flusher waits for a batch to fill before sending what it has.
        stream_cap: producers hold events locally while the stream is at least this long.
        example_sample_rate: share of ``monitored`` calls that also send an input/output example.
        connection: a ready ``redis.Redis`` (tests pass a fakeredis instance).
    """

    def __init__(
        self,
        redis_url: str = "redis://localhost:6379/0",
        *,
        stream: str = wire.STREAM,
        max_buffer: int = 100_000,
        batch_size: int = 500,
        flush_interval: float = 0.05,
        stream_cap: int = wire.DEFAULT_STREAM_CAP,
        example_sample_rate: float = 1.0,
        connection: redis.Redis | None = None,
        socket_timeout: float = 2.0,
    ):
        if max_buffer < 1 or batch_size < 1:
            raise ValueError("max_buffer and batch_size must be >= 1")
        self.stream = stream
        self.max_buffer = max_buffer
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.stream_cap = stream_cap
        self.example_sample_rate = _unit(float(example_sample_rate), "example_sample_rate")
        self._redis = connection or redis.Redis.from_url(
            redis_url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
        )
        self._buf: deque = deque()
        self._counts = {"emitted": 0, "sent": 0, "dropped": 0, "send_errors": 0, "internal_errors": 0}
        self._last_error: str | None = None
        self._stream_len = 0
        self._inflight = 0
        self._sending = False
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._start()
        atexit.register(self.close, 1.0)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)

    # ----- the caller's path -------------------------------------------------------------

    def feedback(self, variant: str, model: str, score: float, feedback_type: str = "quality") -> None:
        """Record a user's rating (0..1) of what ``variant`` produced on ``model``."""
        self._push(("feedback", time.time(), _name(variant, "variant"), _name(model, "model"),
                    _unit(score, "score"), _name(feedback_type, "feedback_type")))

    def metric(self, variant: str, model: str, latency_ms: float, success: bool, quality: float | None = None,
               tokens_in: int | None = None, tokens_out: int | None = None, family: str | None = None) -> None:
        """Record one call's latency and outcome (and optionally quality and token counts)."""
        if type(success) is not bool:
            raise ValueError(f"success must be a bool, got {success!r}")
        self._push(("metric", time.time(), _name(variant, "variant"), _name(model, "model"),
                    _non_negative(latency_ms, "latency_ms"), success,
                    None if quality is None else _unit(quality, "quality"),
                    None if tokens_in is None else _non_negative(tokens_in, "tokens_in", (int,)),
                    None if tokens_out is None else _non_negative(tokens_out, "tokens_out", (int,)),
                    None if family is None else _name(family, "family")))

    def example(self, family: str, model: str, variant: str, input: str, output: str,
                reference: str | None = None, latency_ms: float | None = None,
                tokens_in: int | None = None, tokens_out: int | None = None) -> None:
        """Record one production input/output pair (and a reference answer when known)."""
        self._push(("example", time.time(), _name(family, "family"), _name(model, "model"),
                    _name(variant, "variant"), _text(input, "input"), _text(output, "output"),
                    None if reference is None else _text(reference, "reference"),
                    None if latency_ms is None else _non_negative(latency_ms, "latency_ms"),
                    None if tokens_in is None else _non_negative(tokens_in, "tokens_in", (int,)),
                    None if tokens_out is None else _non_negative(tokens_out, "tokens_out", (int,))))

    def monitored(self, family: str, variant: str, model: str, **options):
        """Decorator that reports each call's latency, success and (sampled) input/output."""
        from .monitor import monitored

        return monitored(self, family, variant, model, **options)

    def _push(self, item: tuple) -> None:
        buf = self._buf
        if self._closed:  # nobody will send it: count it rather than let it sit in memory
            self._counts["dropped"] += 1
            return
        if len(buf) >= self.max_buffer:
            try:
                buf.popleft()
                self._counts["dropped"] += 1
            except IndexError:  # the flusher emptied it meanwhile
                pass
        buf.append(item)
        self._counts["emitted"] += 1
        if len(buf) == self.batch_size:
            self._wake.set()

    # ----- the flusher ---------------------------------------------------------------------

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="promptloop-flusher", daemon=True)
        self._thread.start()

    def _after_fork(self) -> None:
        # A forked child inherits the buffer but not the thread: start afresh, sending only its own events.
        self._buf = deque()
        self._wake = threading.Event()
        self._sending, self._inflight = False, 0
        self._counts = dict.fromkeys(self._counts, 0)
        if not self._closed:
            self._start()

    def _run(self) -> None:
        backoff = 0.0
        while True:
            self._wake.wait(backoff or self.flush_interval)
            self._wake.clear()
            try:
                sent_all = self._send_available()
            except Exception as exc:  # never let the thread die: the host would silently stop reporting
                self._counts["internal_errors"] += 1
                self._last_error = f"{type(exc).__name__}: {exc}"
                log.exception("promptloop flusher error")
                sent_all = False
            if sent_all:
                backoff = 0.0
                if self._closed:
                    return
            else:
                if self._closed and self._close_deadline < time.monotonic():
                    return
                backoff = min(max(backoff * 2, 0.05), 2.0)

    def _send_available(self) -> bool:
        """Send batches until the buffer is empty; False when Redis refused or the stream is full."""
        while self._buf:
            if self._stream_len >= self.stream_cap:
                self._stream_len = self._redis.xlen(self.stream)
                if self._stream_len >= self.stream_cap:
                    self._last_error = f"stream {self.stream} holds {self._stream_len} >= cap {self.stream_cap}"
                    return False
            self._sending = True
            batch = self._take_batch()
            try:
                pipe = self._redis.pipeline(transaction=False)
                pipe.xadd(self.stream, {wire.BATCH_FIELD: b"\n".join(batch)})
                pipe.xlen(self.stream)
                self._stream_len = pipe.execute()[-1]
            except redis.RedisError as exc:
                self._give_back(batch)
                self._counts["send_errors"] += 1
                self._last_error = f"{type(exc).__name__}: {exc}"
                return False
            finally:
                self._inflight = 0
                self._sending = False
            self._counts["sent"] += len(batch)
        return True

    def _take_batch(self) -> list[bytes]:
        buf, batch, size = self._buf, [], 0
        while len(batch) < self.batch_size and size < wire.MAX_BATCH_BYTES:
            try:
                item = buf.popleft()
            except IndexError:
                break
            try:
                payload = item if type(item) is bytes else self._encode(item)
            except Exception:  # validated on the way in, so this is a bug: lose one event, not the batch
                self._counts["internal_errors"] += 1
                log.exception("promptloop could not encode an event")
                continue
            batch.append(payload)
            size += len(payload) + 1
        self._inflight = len(batch)
        return batch

    @staticmethod
    def _encode(item: tuple) -> bytes:
        return wire.encode_fields(item[0], item[1], _KEYS[item[0]], item[2:])

    def _give_back(self, batch: list[bytes]) -> None:
        # Encoded events keep their event_id, so a batch Redis partly applied is stored once downstream.
        self._buf.extendleft(reversed(batch))
        while len(self._buf) > self.max_buffer:
            self._buf.popleft()
            self._counts["dropped"] += 1

    # ----- control ---------------------------------------------------------------------------

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Block until everything emitted so far is in Redis; False if ``timeout`` ran out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._buf or self._sending:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            self._wake.set()
            time.sleep(0.002)
        return True

    def close(self, timeout: float = 5.0) -> bool:
        """Flush for up to ``timeout`` seconds and stop the flusher; True when nothing was left behind."""
        if self._closed:
            return not self._buf
        self._close_deadline = time.monotonic() + timeout
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout + 1.0)
        left = len(self._buf)
        if left:
            log.warning("promptloop client closed with %d events unsent (%s)", left, self._last_error)
        return left == 0

    async def aflush(self, timeout: float | None = 10.0) -> bool:
        """``flush`` for asyncio code: waits in a thread, so the event loop keeps running."""
        import asyncio

        return await asyncio.to_thread(self.flush, timeout)

    async def aclose(self, timeout: float = 5.0) -> bool:
        """``close`` for asyncio code."""
        import asyncio

        return await asyncio.to_thread(self.close, timeout)

    def stats(self) -> dict:
        """Counters: emitted, sent, dropped (oldest, buffer full), buffered, send_errors, last_error."""
        return {**self._counts, "buffered": len(self._buf) + self._inflight, "last_error": self._last_error}

    _close_deadline = 0.0
