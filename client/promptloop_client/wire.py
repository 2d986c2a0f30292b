"""The wire format shared with promptloop's ingest workers.

promptloop's ``shared.constants`` repeats these values; ``tests/unit/test_wire_contract.py`` fails
if the two ever disagree, because a renamed stream or field would strand every producer.
"""

import json
import os

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


def new_event_id() -> str:
    """A random (version 4) UUID as a string, about 3x cheaper than ``str(uuid.uuid4())``."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_encoder = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def encode(event: dict) -> bytes:
    """Serialize one event for the stream (compact JSON; NaN refused, as ingest would refuse it)."""
    return _encoder.encode(event).encode()
