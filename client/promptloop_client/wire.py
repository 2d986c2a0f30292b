"""The wire format shared with promptloop's ingest workers.

promptloop's ``shared.constants`` repeats these values; ``tests/unit/test_wire_contract.py`` fails
if the two ever disagree, because a renamed stream or field would strand every producer.
"""

import json
import os
import threading

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


_quote = json.encoder.encode_basestring  # C implementations: a JSON string literal, quotes included
_quote_ascii = json.encoder.encode_basestring_ascii


def encode_fields(kind: str, ts: float, keys: tuple, values: tuple) -> bytes:
    """The JSON of one event, built directly (several times faster than ``json.dumps`` of a dict).

    ``values`` are what the client validated: strings, finite numbers, bools and None.
    """
    event_id = new_event_id()
    try:
        return _build(kind, ts, event_id, keys, values, _quote).encode()
    except UnicodeEncodeError:  # a lone surrogate: escape all non-ASCII rather than lose the event
        return _build(kind, ts, event_id, keys, values, _quote_ascii).encode()


def _build(kind: str, ts: float, event_id: str, keys: tuple, values: tuple, quote) -> str:
    parts = ['{"v":', str(SCHEMA_VERSION), ',"kind":"', kind, '","event_id":"', event_id, '","ts":', repr(ts)]
    for key, value in zip(keys, values):
        parts.append(f',"{key}":')
        if type(value) is str:
            parts.append(quote(value))
        elif value is None:
            parts.append("null")
        elif value is True:
            parts.append("true")
        elif value is False:
            parts.append("false")
        else:
            parts.append(repr(value))
    parts.append("}")
    return "".join(parts)
