"""Event validation: what ingest accepts and the reasons it gives for what it refuses."""

import json

import pytest

from promptloop_client.client import Client
from shared.events import InvalidEvent, parse_event


def raw(kind_tuple) -> bytes:
    return Client._encode(kind_tuple)


def test_client_events_validate():
    assert parse_event(raw(("feedback", 1.7e9, "v", "3b", 0.5, "quality")), 10_000).score == 0.5
    m = parse_event(raw(("metric", 1.7e9, "v", "3b", 12.5, False, None, 3, None, "summarization")), 10_000)
    assert (m.success, m.tokens_in, m.family) == (False, 3, "summarization")
    e = parse_event(raw(("example", 1.7e9, "f", "3b", "v", "in", "out", None, None, None, None)), 10_000)
    assert e.reference is None


def mutate(**changes) -> bytes:
    event = json.loads(raw(("metric", 1.7e9, "v", "3b", 12.5, True, None, None, None, None)))
    event.update(changes)
    return json.dumps({k: v for k, v in event.items() if v != "DELETE"}).encode()


@pytest.mark.parametrize("payload, reason", [
    (b"\xff\xfe not json", "Invalid JSON"),
    (b"[1, 2]", "object"),
    (mutate(kind="bogus"), "kind"),
    (mutate(latency_ms="slow"), "latency_ms"),
    (mutate(latency_ms=-3), "latency_ms"),
    (mutate(success="true"), "success"),
    (mutate(variant="DELETE"), "variant"),
    (mutate(variant="x" * 201), "variant"),
    (mutate(model="3\u0000b"), "model"),
    (mutate(event_id="not-a-uuid"), "event_id"),
    (mutate(tokens_in=2**40), "tokens_in"),
    (mutate(v=2), "schema version"),
    # Numbers are JSON numbers: pydantic's lax mode took "12.5" and "1"; the client never sends them.
    (mutate(latency_ms="12.5"), "latency_ms"),
    (mutate(v="1"), "v"),
    (mutate().replace(b"\"latency_ms\": 12.5", b"\"latency_ms\": 1e400"), "latency_ms"),  # no float holds it
    (mutate(event_id="6f1c4b1e-0f6e-4b8e-9d3e-1d6a3f1e2b7"), "event_id"),
    (mutate(event_id="6f1c4b1e-0f6e-4b8e-9d3e-1d6a3f1e2b7g"), "event_id"),
    (mutate(event_id=" 6f1c4b1e-0f6e-4b8e-9d3e-1d6a3f1e2b7c"), "event_id"),
    (mutate(event_id="6f1c4b1e-0f6e-4b8e-9d3e-1d6a 3f1e2b7c"), "event_id"),
])
def test_malformed_events_get_a_reason(payload, reason):
    with pytest.raises(InvalidEvent, match=reason):
        parse_event(payload, 10_000)


@pytest.mark.parametrize("event_id", [
    "6f1c4b1e-0f6e-4b8e-9d3e-1d6a3f1e2b7c", "6F1C4B1E-0F6E-4B8E-9D3E-1D6A3F1E2B7C",
    "6f1c4b1e0f6e4b8e9d3e1d6a3f1e2b7c", "6f1c4b1e-0f6e4b8e-9d3e1d6a3f1e2b7c",
])
def test_event_ids_are_uuids_with_or_without_hyphens(event_id):
    assert parse_event(mutate(event_id=event_id), 10_000).event_id == event_id


def test_a_nul_anywhere_is_refused_even_among_other_escapes():
    payload = mutate(model="a\\b\n\u00e9").replace(b'"model":', b'"x":"\\u0000","model":')  # an escaped backslash
    assert parse_event(payload, 10_000).model == "a\\b\n\u00e9"
    with pytest.raises(InvalidEvent, match="family"):
        parse_event(mutate(family="\u00e9\n\x00"), 10_000)


@pytest.mark.parametrize("payload, reason", [
    (mutate(event_id="DELETE"), "invalid event: event_id: Field required"),
    (mutate(tokens_in=1.5), "invalid event: tokens_in: Expected `int | null`, got `float`"),
    (mutate(variant="x" * 201), "invalid event: variant: Expected `str` of length <= 200"),
    (b'{"v": 1, "kind": "metric"', "invalid event: payload: Invalid JSON: "),
])
def test_reasons_name_the_field_and_say_what_was_expected(payload, reason):
    with pytest.raises(InvalidEvent) as refused:
        parse_event(payload, 10_000)
    assert str(refused.value).startswith(reason)
    assert ("Invalid JSON" in str(refused.value)) == ("Invalid JSON" in reason)


def test_oversized_payloads_are_refused_before_parsing():
    with pytest.raises(InvalidEvent, match="oversized: 20001 bytes > limit 20000"):
        parse_event(b" " * 20_001, 20_000)


@pytest.mark.parametrize("ts, reason", [
    (1.7e12, "looks like milliseconds"),
    (1.7e15, "looks like milliseconds"),
    (0, "before 2000-01-01"),
    (5e9, "after 2100-01-01"),
    ("2024-05-01T12:00:00", "timezone"),
    ("2224-05-01T12:00:00+00:00", "after 2100-01-01"),
    ("1970-01-01T00:00:00Z", "before 2000-01-01"),
    ("yesterday", "ts"),
    (True, "ts"),
    (None, "ts"),
])
def test_timestamps_are_seconds_with_a_timezone_in_a_sane_range(ts, reason):
    with pytest.raises(InvalidEvent, match=reason):
        parse_event(mutate(ts=ts), 10_000)


@pytest.mark.parametrize("ts, seconds", [
    (1.7e9, 1.7e9),
    (1_700_000_000, 1.7e9),
    ("2023-11-14T22:13:20Z", 1.7e9),
    ("2023-11-15T00:13:20+02:00", 1.7e9),
])
def test_timestamps_in_seconds_or_iso_8601_with_a_timezone_are_stored_in_utc(ts, seconds):
    event = parse_event(mutate(ts=ts), 10_000)
    assert event.ts.timestamp() == seconds and event.ts.utcoffset().total_seconds() == 0
