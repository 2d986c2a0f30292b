"""The client and ingest share one wire format and one list of limits (``promptloop_client.wire``).

A mismatch in names strands every producer; a mismatch in limits either refuses good events in the
host or lets through events that can only end in the dead letters. So each limit is tested from both
sides: the client raises ``ValueError`` on the value, ingest refuses the same value with a reason, and
the value just inside the limit passes both.
"""

import json
import uuid
from datetime import datetime, timedelta, timezone

import fakeredis
import pytest
from sqlalchemy import Integer, String

from promptloop_client import Client, wire
from shared import constants, models
from shared.events import InvalidEvent, parse_event
from shared.settings import Settings


def test_client_and_ingest_agree_on_the_wire_format():
    assert wire.STREAM == constants.STREAM
    assert wire.FIELD.encode() == constants.FIELD
    assert wire.BATCH_FIELD.encode() == constants.BATCH_FIELD
    assert wire.SCHEMA_VERSION in constants.SCHEMA_VERSIONS


def test_the_limits_are_the_stored_column_sizes():
    assert (models.NAME_MAX, models.KIND_MAX) == (wire.NAME_MAX, wire.KIND_MAX)
    limits = {"variant": wire.NAME_MAX, "model": wire.NAME_MAX, "family": wire.KIND_MAX,
              "feedback_type": wire.KIND_MAX}
    for table in models.EVENT_TABLES.values():
        for column in table.__table__.columns:
            if column.name in limits:
                assert isinstance(column.type, String) and column.type.length == limits[column.name], column
            if column.name.startswith("tokens_"):
                assert isinstance(column.type, Integer), column  # 32-bit in PostgreSQL: wire.TOKENS_MAX
    assert Settings.model_fields["ingest_max_event_bytes"].default == wire.MAX_EVENT_BYTES


VALID = {
    "feedback": {"variant": "v", "model": "3b", "score": 0.5, "feedback_type": "quality"},
    "metric": {"variant": "v", "model": "3b", "latency_ms": 5.0, "success": True, "quality": 0.5, "tokens_in": 1,
               "tokens_out": 2, "family": "summarization"},
    "example": {"family": "entity_extraction", "model": "3b", "variant": "baseline", "input": "in", "output": "out",
                "reference": "ref", "latency_ms": 5.0, "tokens_in": 3, "tokens_out": 4},
}
TS = 1_700_000_000.25
AWARE = datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
NAIVE = datetime(2024, 5, 1, 12, 0)

# (kind, field, value): each is refused by both sides. "ts" values are passed to the client as they
# are and sent to ingest as JSON (a datetime as its ISO 8601 string).
REFUSED = [
    ("metric", "variant", "x" * (wire.NAME_MAX + 1)),
    ("feedback", "model", "m" * (wire.NAME_MAX + 1)),
    ("example", "variant", "x" * (wire.NAME_MAX + 1)),
    ("metric", "family", "f" * (wire.KIND_MAX + 1)),
    ("example", "family", "f" * (wire.KIND_MAX + 1)),
    ("feedback", "feedback_type", "t" * (wire.KIND_MAX + 1)),
    ("metric", "variant", "nul\x00inside"),
    ("feedback", "feedback_type", "\x00"),
    ("example", "input", "prompt with a NUL \x00 byte"),
    ("example", "output", "\x00"),
    ("example", "reference", "ref\x00"),
    ("metric", "model", "lone \ud800 surrogate"),
    ("example", "input", "lone \udfff surrogate"),
    ("example", "output", "\ud83d"),
    ("example", "reference", "x\udc00"),
    ("metric", "tokens_in", wire.TOKENS_MAX + 1),
    ("example", "tokens_out", wire.TOKENS_MAX + 1),
    ("metric", "tokens_out", -1),
    ("metric", "latency_ms", 10**400),
    ("metric", "ts", TS * 1000),  # milliseconds
    ("feedback", "ts", TS * 1_000_000),  # microseconds
    ("example", "ts", 0),
    ("metric", "ts", wire.TS_MIN - 1),
    ("metric", "ts", wire.TS_MAX + 1),
    ("feedback", "ts", NAIVE),  # no timezone
    ("metric", "ts", datetime(2150, 1, 1, tzinfo=timezone.utc)),
    ("metric", "ts", datetime(1999, 12, 31, tzinfo=timezone.utc)),
]

# Just inside each limit: accepted by both.
ACCEPTED = [
    ("metric", "variant", "x" * wire.NAME_MAX),
    ("feedback", "model", "m" * wire.NAME_MAX),
    ("example", "family", "f" * wire.KIND_MAX),
    ("feedback", "feedback_type", "t" * wire.KIND_MAX),
    ("metric", "variant", "ünïcødé 変種 \U0001F600"),
    ("example", "input", "control\n\t\x01 and \"quotes\" \\ and 😀 are fine"),
    ("metric", "tokens_in", wire.TOKENS_MAX),
    ("example", "tokens_out", 0),
    ("metric", "ts", wire.TS_MIN),
    ("metric", "ts", wire.TS_MAX),
    ("feedback", "ts", AWARE),
]


def ingest_payload(kind: str, field: str, value) -> bytes:
    event = {"v": wire.SCHEMA_VERSION, "kind": kind, "event_id": str(uuid.uuid4()), "ts": TS, **VALID[kind]}
    event[field] = value.isoformat() if isinstance(value, datetime) else value
    return json.dumps(event).encode()  # ASCII, \u escapes: how any JSON producer sends a lone surrogate


def emit(client: Client, kind: str, field: str, value, **options) -> None:
    getattr(client, kind)(**{**VALID[kind], field: value, **options})


@pytest.fixture
def sent():
    """A client on a fake Redis, and a function returning the event lines it has sent."""
    r = fakeredis.FakeRedis()
    client = Client(connection=r, flush_interval=0.01)

    def lines() -> list[bytes]:
        assert client.flush(5)
        return [line for _, fields in r.xrange(wire.STREAM) for line in fields[b"b"].split(b"\n")]

    yield client, lines
    client.close(1)


@pytest.mark.parametrize("kind, field, value", REFUSED, ids=[f"{k}.{f}={v!r:.30}" for k, f, v in REFUSED])
def test_what_ingest_refuses_the_client_refuses_in_the_caller(sent, kind, field, value):
    client, lines = sent
    with pytest.raises(InvalidEvent):
        parse_event(ingest_payload(kind, field, value), wire.MAX_EVENT_BYTES)
    with pytest.raises(ValueError, match=field):
        emit(client, kind, field, value)
    assert lines() == [] and client.stats()["emitted"] == 0


@pytest.mark.parametrize("kind, field, value", ACCEPTED, ids=[f"{k}.{f}={v!r:.30}" for k, f, v in ACCEPTED])
def test_values_just_inside_the_limits_pass_both_sides(sent, kind, field, value):
    client, lines = sent
    parse_event(ingest_payload(kind, field, value), wire.MAX_EVENT_BYTES)
    emit(client, kind, field, value)
    (line,) = lines()
    event = parse_event(line, wire.MAX_EVENT_BYTES)
    expected = value.timestamp() if isinstance(value, datetime) else value
    assert (event.ts.timestamp() if field == "ts" else getattr(event, field)) == expected


@pytest.mark.parametrize("char, width", [("x", 1), ("é", 2), ("語", 3), ("😀", 4), ("\x01", 6)])
def test_the_event_size_limit_is_the_same_on_both_sides(sent, char, width):
    """An example exactly at the limit passes both; one byte more is refused by both."""
    client, lines = sent
    emit(client, "example", "input", "", ts=TS)  # a fixed ts: the same length every time
    empty = len(lines()[0])
    fits = (wire.MAX_EVENT_BYTES - empty) // width
    emit(client, "example", "input", char * fits, ts=TS)
    at_limit = lines()[-1]
    assert wire.MAX_EVENT_BYTES - width < len(at_limit) <= wire.MAX_EVENT_BYTES
    parse_event(at_limit, wire.MAX_EVENT_BYTES)

    over = char * fits + "x" * (wire.MAX_EVENT_BYTES - len(at_limit) + 1)
    with pytest.raises(ValueError, match="bytes"):
        emit(client, "example", "input", over, ts=TS)
    with pytest.raises(InvalidEvent, match="oversized"):
        parse_event(at_limit.replace(b'"input":"', b'"input":"' + b"x" * (len(over) - fits), 1),
                    wire.MAX_EVENT_BYTES)
    assert len(lines()) == 2
