"""The events producers send, validated at ingest.

A stream entry either becomes one row for one table, or an ``InvalidEvent`` whose message is the
reason stored with the entry in the dead letters.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Literal, Union

from promptloop_client.wire import KIND_MAX, NAME_MAX, TOKENS_MAX, ts_problem
from pydantic import (
    BaseModel, ConfigDict, Field, PlainValidator, StringConstraints, TypeAdapter, ValidationError,
)

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


# PostgreSQL refuses NUL in text; refusing it here gives a clear reason instead of a failed batch.
_NO_NUL = r"^[^\x00]*$"
Name = Annotated[str, StringConstraints(min_length=1, max_length=NAME_MAX, pattern=_NO_NUL)]
Kind = Annotated[str, StringConstraints(min_length=1, max_length=KIND_MAX, pattern=_NO_NUL)]
Text = Annotated[str, StringConstraints(pattern=_NO_NUL)]
Unit = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Millis = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Tokens = Annotated[int, Field(ge=0, le=TOKENS_MAX, strict=True)]


class InvalidEvent(ValueError):
    """A stream entry that can never be stored; the message says why."""


class _Base(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    v: int
    event_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")]
    ts: Annotated[datetime, PlainValidator(event_time)]


class Metric(_Base):
    kind: Literal["metric"]
    variant: Name
    model: Name
    latency_ms: Millis
    success: Annotated[bool, Field(strict=True)]
    quality: Unit | None = None
    tokens_in: Tokens | None = None
    tokens_out: Tokens | None = None
    family: Kind | None = None


class Feedback(_Base):
    kind: Literal["feedback"]
    variant: Name
    model: Name
    score: Unit
    feedback_type: Kind = "quality"


class Example(_Base):
    kind: Literal["example"]
    family: Kind
    model: Name
    variant: Name
    input: Text
    output: Text
    reference: Text | None = None
    latency_ms: Millis | None = None
    tokens_in: Tokens | None = None
    tokens_out: Tokens | None = None


Event = Annotated[Union[Metric, Feedback, Example], Field(discriminator="kind")]
_adapter = TypeAdapter(Event)


def parse_event(raw: bytes, max_bytes: int) -> Metric | Feedback | Example:
    """Validate one stream entry's payload; raise ``InvalidEvent`` with a readable reason."""
    if len(raw) > max_bytes:
        raise InvalidEvent(f"oversized: {len(raw)} bytes > limit {max_bytes}")
    try:
        event = _adapter.validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise InvalidEvent(f"invalid event: {problems}") from None
    if event.v not in SCHEMA_VERSIONS:
        raise InvalidEvent(f"unknown schema version {event.v} (known: {SCHEMA_VERSIONS})")
    return event
