"""A producer that never blocks or breaks its host.

Emitting validates the arguments (a wrong one raises ``ValueError`` at once, in the caller: the limits
are ``wire``'s, the same ingest enforces) and appends a tuple to an in-memory deque under a lock held
for a few hundred nanoseconds: no I/O and no UUID on the caller's path. A daemon thread turns buffered
tuples into JSON events (assigning each its ``event_id`` exactly once, so a retried send carries the
same id and ingest stores it once) and appends them to the Redis Stream in batches: one stream entry
of up to ``batch_size`` newline-separated events per round trip.

While Redis is unreachable, or the stream holds ``stream_cap`` entries (workers far behind), the
buffer keeps growing up to ``max_buffer`` events or ``max_buffer_bytes`` bytes, whichever comes
first; past that the *oldest* events are dropped and counted in ``stats()["dropped"]``. Nothing is
dropped silently and nothing raises into the host.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from collections import deque
from datetime import datetime

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

#: What a buffered metric or feedback event costs, in bytes: about its JSON (~230 bytes) and about the
#: tuple and floats holding it (names are usually shared strings). Examples add their texts' sizes.
SMALL_EVENT_COST = 256
#: A buffered event already encoded (a batch given back after a failed send): its JSON plus the
#: ``bytes`` object's header.
ENCODED_OVERHEAD = 40
#: An example's JSON without its six strings is under this many bytes (keys, event_id, ts, numbers);
#: each string adds at most 6 bytes a character (``\u0001`` for a control character).
_EXAMPLE_FIXED_BYTES = 512
#: The smallest event limit a client accepts: a metric or feedback event always fits (names are
#: capped, so one is at most ~3.3 KB even when every character needs escaping).
MIN_EVENT_BYTES = 4096


NAME_MAX, KIND_MAX = wire.NAME_MAX, wire.KIND_MAX


def _name(value, what, limit=NAME_MAX):
    # One test for the usual case, a short ASCII name: this runs on every emit.
    if type(value) is str and 0 < len(value) <= limit and value.isascii() and "\x00" not in value:
        return value
    if type(value) is not str or not value or len(value) > limit:
        raise ValueError(f"{what} must be a non-empty string of at most {limit} characters, got {value!r:.80}")
    if "\x00" in value:
        raise ValueError(f"{what} must not contain NUL characters (PostgreSQL cannot store them), got {value!r:.80}")
    _utf8(value, what)
    return value


def _utf8(value: str, what: str) -> bytes:
    """The UTF-8 of a string; ValueError for a surrogate, which UTF-8 (and so ingest) cannot carry."""
    try:
        return value.encode()
    except UnicodeEncodeError:
        raise ValueError(f"{what} holds a lone surrogate (not valid Unicode), which cannot be sent as UTF-8") from None


def _unit(value, what):
    # `not (0 <= x <= 1)` is also true for NaN.
    if type(value) not in (float, int) or not (0.0 <= value <= 1.0):
        raise ValueError(f"{what} must be a number in 0..1, got {value!r}")
    return float(value)


def _non_negative(value, what):
    # Comparing with float_info.max also refuses NaN, inf and ints too big to be a float.
    if type(value) not in (float, int) or not (0 <= value <= sys.float_info.max):
        raise ValueError(f"{what} must be a finite number >= 0, got {value!r:.80}")
    return value


def _tokens(value, what):
    if type(value) is not int or not (0 <= value <= wire.TOKENS_MAX):
        raise ValueError(f"{what} must be an int in 0..{wire.TOKENS_MAX}, got {value!r:.80}")
    return value


def _text(value, what):
    if type(value) is not str:
        raise ValueError(f"{what} must be a string, got {type(value).__name__}")
    if value.isascii():
        has_nul = "\x00" in value
    else:
        # Encoding finds surrogates, and searching UTF-8 is far faster than searching a wide string.
        has_nul = b"\x00" in _utf8(value, what)
    if has_nul:
        raise ValueError(f"{what} must not contain NUL characters (PostgreSQL cannot store them)")
    return value


def _ts(value) -> float:
    """An event time from the caller: seconds since the epoch, or a datetime that carries a timezone."""
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise ValueError(f"ts must carry a timezone, got the naive datetime {value.isoformat()}")
        seconds = value.timestamp()
    elif type(value) in (float, int):
        seconds = value
    else:
        raise ValueError(f"ts must be seconds since the epoch or an aware datetime, got {value!r:.80}")
    problem = wire.ts_problem(seconds)
    if problem:
        raise ValueError(problem)
    return float(seconds)


def _let_go_of_frames(exc: BaseException) -> None:
    """Detach a failed send's exceptions from their tracebacks.

    redis-py's connection errors sit in reference cycles (exception, traceback, frame, exception)
    that only the cyclic garbage collector frees, and those frames hold the batch being sent: with
    Redis down, batch after batch (512 KiB each) would stay in memory beyond ``max_buffer_bytes``
    until a collection that may not come for a long time.
    """
    pending, seen = [exc], set()
    while pending:
        e = pending.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        e.__traceback__ = None
        pending += (e.__cause__, e.__context__)


def _cost(item) -> int:
    """About how many bytes a buffered event holds (see ``SMALL_EVENT_COST``)."""
    if type(item) is bytes:
        return len(item) + ENCODED_OVERHEAD
    if item[0] != "example":
        return SMALL_EVENT_COST
    return SMALL_EVENT_COST + _text_cost(item[5]) + _text_cost(item[6]) + _text_cost(item[7])


def _text_cost(text: str | None) -> int:
    # O(1): a str knows whether it is ASCII. Wider strings take up to 4 bytes a character, in memory
    # and in UTF-8, so that bound never undercounts.
    if text is None:
        return 0
    return len(text) if text.isascii() else 4 * len(text)


class Client:
    """Buffered, non-blocking producer of promptloop events.

    Args:
        redis_url: where the stream lives; ignored when ``connection`` is given.
        max_buffer: events held in memory while Redis is unreachable; then the oldest are dropped.
        max_buffer_bytes: bytes those events may hold (about their JSON size; 64 MiB by default);
            then the oldest are dropped. A batch being sent is counted too, so memory stays under it.
        max_event_bytes: the largest event's JSON, in bytes: ingest's ``PROMPTLOOP_MAX_EVENT_BYTES``
            (``wire.MAX_EVENT_BYTES`` by default). A larger example raises ``ValueError``.
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
        max_buffer_bytes: int = 64 * 1024 * 1024,
        max_event_bytes: int = wire.MAX_EVENT_BYTES,
        batch_size: int = 500,
        flush_interval: float = 0.05,
        stream_cap: int = wire.DEFAULT_STREAM_CAP,
        example_sample_rate: float = 1.0,
        connection: redis.Redis | None = None,
        socket_timeout: float = 2.0,
    ):
        if max_buffer < 1 or batch_size < 1:
            raise ValueError("max_buffer and batch_size must be >= 1")
        if type(max_event_bytes) is not int or max_event_bytes < MIN_EVENT_BYTES:
            raise ValueError(f"max_event_bytes must be an int >= {MIN_EVENT_BYTES}, got {max_event_bytes!r}")
        # The largest example may cost up to 4 bytes a character (see _text_cost): it must always fit.
        if type(max_buffer_bytes) is not int or max_buffer_bytes < 4 * max_event_bytes:
            raise ValueError(f"max_buffer_bytes must be an int >= 4 * max_event_bytes ({4 * max_event_bytes}), "
                             f"got {max_buffer_bytes!r}")
        self.stream = stream
        self.max_buffer = max_buffer
        self.max_buffer_bytes = max_buffer_bytes
        self.max_event_bytes = max_event_bytes
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.stream_cap = stream_cap
        self.example_sample_rate = _unit(float(example_sample_rate), "example_sample_rate")
        self._redis = connection or redis.Redis.from_url(
            redis_url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
        )
        # The lock guards the buffer, its byte count and the counters: callers on any number of
        # threads and the flusher all change them, and `x += n` is not atomic.
        self._lock = threading.Lock()
        self._buf: deque = deque()
        self._bytes = 0  # _cost of everything buffered or in flight, less what is doomed
        # The events in flight (taken by the flusher, oldest first): each one's _cost as it was
        # buffered. They are the oldest events, so a cap hit while they are in flight dooms them
        # first (``_doomed`` of them, from the front): a failed send then drops them, not newer ones.
        self._inflight_costs: list[int] = []
        self._doomed = 0
        self._counts = {"emitted": 0, "sent": 0, "dropped": 0, "send_errors": 0, "internal_errors": 0}
        self._last_error: str | None = None
        self._stream_len = 0
        self._sending = False
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._start()
        atexit.register(self.close, 1.0)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)

    # ----- the caller's path -------------------------------------------------------------

    def feedback(self, variant: str, model: str, score: float, feedback_type: str = "quality", *,
                 ts: float | datetime | None = None) -> None:
        """Record a user's rating (0..1) of what ``variant`` produced on ``model``.

        ``ts`` (every kind takes it): when it happened, in seconds since the epoch or as a datetime
        with a timezone; now by default.
        """
        self._push(("feedback", time.time() if ts is None else _ts(ts), _name(variant, "variant"),
                    _name(model, "model"), _unit(score, "score"), _name(feedback_type, "feedback_type", KIND_MAX)),
                   SMALL_EVENT_COST)

    def metric(self, variant: str, model: str, latency_ms: float, success: bool, quality: float | None = None,
               tokens_in: int | None = None, tokens_out: int | None = None, family: str | None = None, *,
               ts: float | datetime | None = None) -> None:
        """Record one call's latency and outcome (and optionally quality and token counts)."""
        if type(success) is not bool:
            raise ValueError(f"success must be a bool, got {success!r}")
        self._push(("metric", time.time() if ts is None else _ts(ts), _name(variant, "variant"),
                    _name(model, "model"), _non_negative(latency_ms, "latency_ms"), success,
                    None if quality is None else _unit(quality, "quality"),
                    None if tokens_in is None else _tokens(tokens_in, "tokens_in"),
                    None if tokens_out is None else _tokens(tokens_out, "tokens_out"),
                    None if family is None else _name(family, "family", KIND_MAX)),
                   SMALL_EVENT_COST)

    def example(self, family: str, model: str, variant: str, input: str, output: str,
                reference: str | None = None, latency_ms: float | None = None,
                tokens_in: int | None = None, tokens_out: int | None = None, *,
                ts: float | datetime | None = None) -> None:
        """Record one production input/output pair (and a reference answer when known).

        An example whose JSON would exceed ``max_event_bytes`` raises ``ValueError``.
        """
        item = ("example", time.time() if ts is None else _ts(ts), _name(family, "family", KIND_MAX),
                _name(model, "model"), _name(variant, "variant"), _text(input, "input"), _text(output, "output"),
                None if reference is None else _text(reference, "reference"),
                None if latency_ms is None else _non_negative(latency_ms, "latency_ms"),
                None if tokens_in is None else _tokens(tokens_in, "tokens_in"),
                None if tokens_out is None else _tokens(tokens_out, "tokens_out"))
        chars = len(family) + len(model) + len(variant) + len(input) + len(output) + len(reference or "")
        if _EXAMPLE_FIXED_BYTES + 6 * chars > self.max_event_bytes:
            # It might not fit: encode it here to know (the flusher then sends these bytes as they are).
            item = self._encode(item)
            if len(item) > self.max_event_bytes:
                raise ValueError(f"example is {len(item)} bytes as JSON, over the event limit of "
                                 f"{self.max_event_bytes} bytes (max_event_bytes)")
        self._push(item, _cost(item))

    def monitored(self, family: str, variant: str, model: str, **options):
        """Decorator that reports each call's latency, success and (sampled) input/output."""
        from .monitor import monitored

        return monitored(self, family, variant, model, **options)

    def _push(self, item, cost: int) -> None:
        """Append an event (its ``_cost`` precomputed) and drop the oldest while over a cap."""
        with self._lock:
            if self._closed:  # nobody will send it: count it rather than let it sit in memory
                self._counts["dropped"] += 1
                return
            buf = self._buf
            buf.append(item)
            self._bytes += cost
            self._counts["emitted"] += 1
            if len(buf) > self.max_buffer or self._bytes > self.max_buffer_bytes:
                self._drop_oldest()
            full = len(buf) == self.batch_size
        if full:
            self._wake.set()

    def _drop_oldest(self) -> None:
        """Drop the oldest events until both caps hold, those in flight first; the lock is held."""
        buf, counts, costs = self._buf, self._counts, self._inflight_costs
        while len(buf) + len(costs) - self._doomed > self.max_buffer or self._bytes > self.max_buffer_bytes:
            if self._doomed < len(costs):  # older than anything buffered: dropped if their send fails
                self._bytes -= costs[self._doomed]
                self._doomed += 1
            elif buf:
                self._bytes -= _cost(buf.popleft())
            else:
                break
            counts["dropped"] += 1

    # ----- the flusher ---------------------------------------------------------------------

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="promptloop-flusher", daemon=True)
        self._thread.start()

    def _after_fork(self) -> None:
        # A forked child inherits the buffer but not the thread (and maybe a lock held by a thread it
        # does not have): start afresh, sending only its own events.
        self._lock = threading.Lock()
        self._buf = deque()
        self._bytes, self._inflight_costs, self._doomed = 0, [], 0
        self._wake = threading.Event()
        self._sending = False
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
                self._internal_error()
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
            batch = []
            try:
                batch = self._take_batch()
                if not batch:  # every event taken failed to encode (counted): nothing to send
                    continue
                pipe = self._redis.pipeline(transaction=False)
                pipe.xadd(self.stream, {wire.BATCH_FIELD: b"\n".join(batch)})
                pipe.xlen(self.stream)
                self._stream_len = pipe.execute()[-1]
            except redis.RedisError as exc:
                self._give_back(batch)
                with self._lock:
                    self._counts["send_errors"] += 1
                self._last_error = f"{type(exc).__name__}: {exc}"
                _let_go_of_frames(exc)
                return False
            finally:
                self._sending = False
            self._sent(batch)
        return True

    def _take_batch(self) -> list[bytes]:
        """Move up to a batch of the oldest events out of the buffer (they stay counted, in flight)."""
        batch, size = [], 0
        while len(batch) < self.batch_size and size < wire.MAX_BATCH_BYTES:
            with self._lock:
                if not self._buf:
                    break
                item = self._buf.popleft()
                self._inflight_costs.append(_cost(item))
            payload = item if type(item) is bytes else self._encode_or_count(item)
            if payload is None:
                continue
            batch.append(payload)
            size += len(payload) + 1
        return batch

    def _encode_or_count(self, item: tuple) -> bytes | None:
        try:
            return self._encode(item)
        except Exception:  # validated on the way in, so this is a bug: lose one event, not the batch
            log.exception("promptloop could not encode an event")
            self._internal_error()
            with self._lock:  # the newest in flight; already out of _bytes (and counted) if doomed
                cost = self._inflight_costs.pop()
                if self._doomed > len(self._inflight_costs):
                    self._doomed -= 1
                    self._counts["dropped"] -= 1
                else:
                    self._bytes -= cost
            return None

    @staticmethod
    def _encode(item: tuple) -> bytes:
        return wire.encode_fields(item[0], item[1], _KEYS[item[0]], item[2:])

    def _sent(self, batch: list[bytes]) -> None:
        with self._lock:
            self._counts["sent"] += len(batch)
            self._counts["dropped"] -= self._doomed  # doomed while in flight, but they made it
            self._bytes -= sum(self._inflight_costs[self._doomed:])
            self._inflight_costs, self._doomed = [], 0

    def _give_back(self, batch: list[bytes]) -> None:
        # Encoded events keep their event_id, so a batch Redis partly applied is stored once downstream.
        # They are the oldest events, so when the buffer is over a cap they are the first dropped.
        with self._lock:
            keep = batch[self._doomed:]  # the doomed (oldest) ones are dropped: counted when doomed
            self._buf.extendleft(reversed(keep))
            self._bytes += sum(map(_cost, keep)) - sum(self._inflight_costs[self._doomed:])
            self._inflight_costs, self._doomed = [], 0
            self._drop_oldest()

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
        with self._lock:  # no event is appended after this, so none is left behind unreported
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
        """Counters: emitted, sent, dropped (oldest, buffer full), buffered (events, and their
        ``buffered_bytes``), send_errors, internal_errors, last_error."""
        with self._lock:
            return {**self._counts, "buffered": len(self._buf) + len(self._inflight_costs) - self._doomed, "buffered_bytes": self._bytes,
                    "last_error": self._last_error}

    def _internal_error(self) -> None:
        """Count a problem of promptloop's own (a bug, or a monitored function's ``input_of``)."""
        with self._lock:
            self._counts["internal_errors"] += 1

    _close_deadline = 0.0
