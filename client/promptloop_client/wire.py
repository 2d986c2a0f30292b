"""The wire format shared with promptloop's ingest workers.

promptloop's ``shared.constants`` repeats the names; ``tests/unit/shared/test_wire_contract.py`` fails
if the two ever disagree, because a renamed stream or field would strand every producer.

The limits below are the one list both sides enforce: the client refuses (``ValueError``, in the
caller) exactly what ingest would refuse (a dead letter), and ``shared.events`` imports them from here.
"""

from __future__ import annotations

import json
import math
import os
import threading
import zlib

#: The Redis Stream every producer appends to.
STREAM = "promptloop:events"
#: A stream entry holding one event as UTF-8 JSON (tools and hand-written entries use this).
FIELD = "e"
#: A stream entry holding a batch: events as UTF-8 JSON, one per line. Producers send these: one
#: entry per batch costs Redis and the workers one entry's overhead instead of hundreds.
BATCH_FIELD = "b"
#: Bumped when an event's meaning changes; ingest refuses versions it does not know.
SCHEMA_VERSION = 1
#: Producers stop appending while the stream holds this many entries (see ``Client`` docs):
#: Redis memory is the limit, and nothing in promptloop trims unacknowledged entries. An entry holds
#: at most one batch (500 events, ``MAX_BATCH_BYTES``), so the stream holds at most 2.5M events and
#: 2.5 GB, usually far less: under light load batches leave every 50 ms with a few events each.
DEFAULT_STREAM_CAP = 5_000
#: A batch entry is closed once it holds this many bytes, whatever its event count.
MAX_BATCH_BYTES = 512 * 1024

# ----- limits: what ingest can store (shared.models' column sizes repeat NAME_MAX and KIND_MAX) -----

#: ``variant`` and ``model``: VARCHAR(200) columns.
NAME_MAX = 200
#: ``family`` and ``feedback_type``: VARCHAR(64) columns.
KIND_MAX = 64
#: Token counts: INTEGER columns.
TOKENS_MAX = 2**31 - 1
#: One event's JSON, in bytes: ingest's default ``PROMPTLOOP_MAX_EVENT_BYTES``.
MAX_EVENT_BYTES = 256 * 1024
#: Event times, in seconds since the epoch: 2000-01-01 and 2100-01-01 UTC. Anything outside is a
#: broken clock or a wrong unit, never a real event.
TS_MIN = 946_684_800
TS_MAX = 4_102_444_800
#: A "timestamp" this large is milliseconds (or finer): in seconds it would be past the year 5000.
TS_LOOKS_LIKE_MS = 1e11


def ts_problem(seconds: float) -> str | None:
    """Why ``seconds`` is not an event time ingest accepts, or None when it is fine."""
    if not math.isfinite(seconds):
        return f"ts must be a finite number of seconds since the epoch, got {seconds!r}"
    if seconds >= TS_LOOKS_LIKE_MS:
        return f"ts {seconds!r} looks like milliseconds; send seconds since the epoch"
    if seconds < TS_MIN:
        return f"ts {seconds!r} is before 2000-01-01 (seconds since the epoch expected)"
    if seconds > TS_MAX:
        return f"ts {seconds!r} is after 2100-01-01 (seconds since the epoch expected)"
    return None


_local = threading.local()


def new_event_id() -> str:
    """A random (version 4) UUID string, several times cheaper than ``str(uuid.uuid4())``.

    Randomness comes from ``os.urandom`` in 4 KiB draws, one pool per thread (threads never share
    bytes, so never share ids); a forked child starts with an empty pool.
    """
    pool = getattr(_local, "pool", None)
    if not pool:
        pool = _local.pool = bytearray(os.urandom(4096))
    b = pool[-16:]
    del pool[-16:]
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _forget_pool() -> None:
    _local.pool = None


if hasattr(os, "register_at_fork"):
    # The child would otherwise hand out the same ids as its parent.
    os.register_at_fork(after_in_child=_forget_pool)


_quote = json.encoder.encode_basestring  # C implementation: a JSON string literal, quotes included


def encode_fields(kind: str, ts: float, keys: tuple, values: tuple) -> bytes:
    """The JSON of one event, built directly (several times faster than ``json.dumps`` of a dict).

    ``values`` are what the client validated: strings (valid Unicode, so UTF-8 encodes them), finite
    numbers, bools and None.
    """
    parts = ['{"v":', str(SCHEMA_VERSION), ',"kind":"', kind, '","event_id":"', new_event_id(), '","ts":', repr(ts)]
    for key, value in zip(keys, values):
        parts.append(f',"{key}":')
        if type(value) is str:
            parts.append(_quote(value))
        elif value is None:
            parts.append("null")
        elif value is True:
            parts.append("true")
        elif value is False:
            parts.append("false")
        else:
            parts.append(repr(value))
    parts.append("}")
    return "".join(parts).encode()


# ----- rollout state: what promptloop publishes and producers read to route calls -----------------
#
# ``ROLLOUT_VERSION_KEY`` holds an integer that promptloop increments on every change of the state;
# ``ROLLOUT_STATE_KEY`` holds the whole state as UTF-8 JSON, written before the version is bumped:
#
#   {"version": 7,
#    "routes": {"<family>": {"<model>": {
#        "incumbent": {"name": "baseline", "template": {"system": "...", "user": "...", "lightrag": {...}}},
#        "candidate": {"name": "DSPY_A", "template": {...}} or null,
#        "percentage": 0.25,          # share of routing keys served by the candidate, 0..1
#        "salt": "rollout-12"}}}}     # per rollout: which keys are in the share
#
# A template is ``PromptTemplate.to_json()``'s object (``lightrag`` maps LightRAG ``PROMPTS`` keys to
# the values that make a stock LightRAG send it; null for promptloop's own families).
# Producers poll the version (GET, one small key) and read the state only when it changed.

#: The rollout state's JSON (see above).
ROLLOUT_STATE_KEY = "promptloop:rollout:state"
#: An integer bumped after every write of ``ROLLOUT_STATE_KEY``.
ROLLOUT_VERSION_KEY = "promptloop:rollout:version"
#: Buckets a routing key falls into; a candidate at percentage p serves buckets ``< p * BUCKETS``,
#: so keys already on the candidate stay on it as p grows.
BUCKETS = 10_000


def bucket(routing_key: str | bytes, salt: str) -> int:
    """The bucket (0..BUCKETS-1) of ``routing_key`` in a rollout salted ``salt``: the same on every
    host and process (crc32, not Python's randomised ``hash``)."""
    data = routing_key.encode("utf-8", "surrogatepass") if isinstance(routing_key, str) else routing_key
    h = zlib.crc32(data, zlib.crc32(salt.encode("utf-8")))
    # crc32 is linear: mix it (murmur3's finaliser) so nearby keys spread over the buckets.
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h % BUCKETS


def serves_candidate(routing_key: str | bytes, salt: str, percentage: float) -> bool:
    """Whether ``routing_key`` goes to the candidate of a rollout at ``percentage`` (0..1)."""
    return bucket(routing_key, salt) < round(percentage * BUCKETS)
