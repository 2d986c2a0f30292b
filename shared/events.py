"""The events producers send, validated at ingest.

A stream entry either becomes one row for one table, or an ``InvalidEvent`` whose message is the
reason stored with the entry in the dead letters.

Validation is msgspec's: it decodes and checks one event in about a microsecond, several times
faster than pydantic, and per-event validation was the largest cost of ingest. The limits are the
client's (``promptloop_client.wire``), so what the client accepts is what ingest stores.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, ClassVar, Optional, Union

import re

import msgspec
from msgspec import Meta, Struct
from promptloop_client.wire import KIND_MAX, NAME_MAX, TOKENS_MAX, TS_MAX, TS_MIN, ts_problem

from .constants import SCHEMA_VERSIONS

def event_time(value) -> datetime:
    """An event's ``ts`` as an aware UTC datetime.

    Sent as seconds since the epoch (a JSON number), or as an ISO 8601 string with a timezone: a
    naive time means nothing once stored, and a number in milliseconds would be read as a date
    thousands of years ahead. The bounds are the client's (``promptloop_client.wire.ts_problem``).
    """
    if type(value) is str:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"ts must be seconds since the epoch or ISO 8601, got {value!r:.60}") from None
        if parsed.utcoffset() is None:
            raise ValueError(f"ts must carry a timezone, got {value!r:.60}")
        seconds = parsed.timestamp()
    elif type(value) in (int, float):
        seconds, parsed = value, None
    else:
        raise ValueError(f"ts must be seconds since the epoch or ISO 8601, got {value!r:.60}")
    problem = ts_problem(seconds)
    if problem:
        raise ValueError(problem)
    return parsed.astimezone(timezone.utc) if parsed else datetime.fromtimestamp(seconds, timezone.utc)


Name = Annotated[str, Meta(min_length=1, max_length=NAME_MAX)]
Kind = Annotated[str, Meta(min_length=1, max_length=KIND_MAX)]
# Finite: a JSON number too large for a float ("1e400") is refused as out of range.
Unit = Annotated[float, Meta(ge=0, le=1)]
Millis = Annotated[float, Meta(ge=0)]
Tokens = Annotated[int, Meta(ge=0, le=TOKENS_MAX)]
# A UUID, hyphens optional: what PostgreSQL's uuid column takes. Checked in Python (``_event_id_ok``):
# msgspec's pattern check costs as much as decoding the rest of the event.
_EVENT_ID = re.compile(r"[0-9a-fA-F]{8}-?(?:[0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}")


class InvalidEvent(ValueError):
    """A stream entry that can never be stored; the message says why."""


class _Base(Struct, tag_field="kind", gc=False):
    """Fields every event has. Unknown fields are ignored; numbers, strings and bools are strict
    (``"12.5"`` is not a number, ``1`` is not ``true``)."""

    #: The event's kind, which is also its JSON tag ("metric", "feedback" or "example").
    kind: ClassVar[str]
    #: String fields, checked for NUL characters (PostgreSQL refuses them in text).
    strings: ClassVar[tuple[str, ...]]

    v: int
    event_id: str
    #: Seconds since the epoch or ISO 8601 as sent; an aware UTC datetime once ``parse_event`` returns.
    ts: Union[float, str]


class Metric(_Base, tag="metric"):
    kind = "metric"
    strings = ("variant", "model", "family")

    variant: Name
    model: Name
    latency_ms: Millis
    success: bool
    quality: Optional[Unit] = None
    tokens_in: Optional[Tokens] = None
    tokens_out: Optional[Tokens] = None
    family: Optional[Kind] = None


class Feedback(_Base, tag="feedback"):
    kind = "feedback"
    strings = ("variant", "model", "feedback_type")

    variant: Name
    model: Name
    score: Unit
    feedback_type: Kind = "quality"


class Example(_Base, tag="example"):
    kind = "example"
    strings = ("family", "model", "variant", "input", "output", "reference")

    family: Kind
    model: Name
    variant: Name
    input: str
    output: str
    reference: Optional[str] = None
    latency_ms: Optional[Millis] = None
    tokens_in: Optional[Tokens] = None
    tokens_out: Optional[Tokens] = None


_decoder = msgspec.json.Decoder(Union[Metric, Feedback, Example])


def parse_event(raw: bytes, max_bytes: int) -> Metric | Feedback | Example:
    """Validate one stream entry's payload; raise ``InvalidEvent`` with a readable reason."""
    if len(raw) > max_bytes:
        raise InvalidEvent(f"oversized: {len(raw)} bytes > limit {max_bytes}")
    try:
        event = _decoder.decode(raw)
    except msgspec.ValidationError as exc:  # a subclass of DecodeError: first
        raise InvalidEvent(f"invalid event: {_reason(str(exc))}") from None
    except msgspec.DecodeError as exc:
        raise InvalidEvent(f"invalid event: payload: Invalid JSON: {exc}") from None
    if not _event_id_ok(event.event_id):
        raise InvalidEvent(f"invalid event: event_id: not a UUID: {event.event_id!r:.60}")
    if event.v not in SCHEMA_VERSIONS:
        raise InvalidEvent(f"unknown schema version {event.v} (known: {SCHEMA_VERSIONS})")
    # JSON carries a NUL only as the escape \u0000: most events hold no backslash at all.
    if b"\\" in raw:
        _refuse_nul(event)
    ts = event.ts
    if type(ts) is float and TS_MIN <= ts <= TS_MAX:  # what producers send: seconds, in range
        event.ts = datetime.fromtimestamp(ts, timezone.utc)
    else:
        try:
            event.ts = event_time(ts)
        except ValueError as exc:
            raise InvalidEvent(f"invalid event: {exc}") from None
    return event


_CANONICAL_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}").fullmatch
_ANY_ID = _EVENT_ID.fullmatch


def _event_id_ok(event_id: str) -> bool:
    # The canonical form (what producers send) by its own regex, a single C call; anything else by
    # the general one (its optional hyphens make it slower).
    return _CANONICAL_ID(event_id) is not None or _ANY_ID(event_id) is not None


def _reason(message: str) -> str:
    """msgspec's "<what> - at `$.field`" as "field: <what>", and a missing field as pydantic said it."""
    what, _, where = message.rpartition(" - at `$.")
    if what:
        return f"{where.rstrip('`')}: {what}"
    if message.startswith("Object missing required field `"):
        return f"{message[31:].rstrip('`')}: Field required"
    return f"payload: {message}"


def _refuse_nul(event) -> None:
    for name in event.strings:
        value = getattr(event, name)
        if value is not None and "\x00" in value:
            raise InvalidEvent(f"invalid event: {name}: NUL characters cannot be stored (PostgreSQL refuses them)")
