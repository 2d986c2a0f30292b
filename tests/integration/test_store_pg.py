"""Binary COPY on a real PostgreSQL: every kind's values come back as sent, and PostgreSQL's own
checks (lengths, NUL) still refuse rows as rows."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import psycopg
import pytest
from sqlalchemy import select

from shared.models import EVENT_TABLES
from shared.store import COLUMNS, OUTAGE, ROWS, insert_events, refusal

pytestmark = pytest.mark.integration

TS = datetime(2026, 11, 30, 6, 1, 2, 345678, tzinfo=timezone.utc)


@pytest.fixture
def engine(pg_engine):
    return pg_engine


def stored(engine, kind: str) -> list[tuple]:
    table = EVENT_TABLES[kind].__table__
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(select(*(table.c[c] for c in COLUMNS[kind])).order_by(table.c.id))]


ROWS_BY_KIND = {
    "metric": [("entity_extraction", "baseline", "3b", 12.5, True, 0.8, 1800, 250, str(uuid.uuid4()), TS),
               (None, "DSPY_A", "1.5b", 0.0, False, None, None, None, str(uuid.uuid4()), TS)],
    "feedback": [("baseline", "7b", 1.0, "quality", str(uuid.uuid4()), TS)],
    "example": [("summarization", "3b", "baseline", "naïve input — ünïcode \\ tab\there", "out\nput", None, 41.0, 7, 9,
                 str(uuid.uuid4()), TS)],
}


@pytest.mark.parametrize("kind", list(ROWS_BY_KIND))
def test_values_come_back_as_sent(engine, kind):
    rows = ROWS_BY_KIND[kind]
    with engine.begin() as conn:
        assert insert_events(conn, kind, iter(rows)) == len(rows)
    assert stored(engine, kind) == rows


def test_ids_without_hyphens_or_in_capitals_are_the_same_uuid(engine):
    event_id = uuid.uuid4()
    row = ROWS_BY_KIND["feedback"][0]
    with engine.begin() as conn:
        assert insert_events(conn, "feedback", [row[:4] + (event_id.hex.upper(),) + row[5:]]) == 1
        # the same event again, canonical form: a duplicate, skipped through the staging table
        assert insert_events(conn, "feedback", [row[:4] + (str(event_id),) + row[5:]]) == 0
    assert [r[4] for r in stored(engine, "feedback")] == [str(event_id)]


@pytest.mark.parametrize("bad", ["x" * 201, "nul\x00inside"])
def test_postgresql_still_refuses_what_it_cannot_store_as_a_row_fault(engine, bad):
    row = ("baseline", "7b", 1.0, "quality", str(uuid.uuid4()), TS)
    with pytest.raises(psycopg.Error) as caught:
        with engine.begin() as conn:
            insert_events(conn, "feedback", [(bad,) + row[1:]])
    assert refusal(caught.value) == ROWS
    assert stored(engine, "feedback") == []


def test_a_value_that_is_no_uuid_is_refused_as_a_row_fault(engine):
    row = ("baseline", "7b", 1.0, "quality", "not-a-uuid", TS)
    with pytest.raises(psycopg.DataError) as caught:
        with engine.begin() as conn:
            insert_events(conn, "feedback", [row])
    assert refusal(caught.value) == ROWS


@pytest.mark.parametrize("tokens", [2**31, -2**31 - 1, 2**63, 1.5])
def test_an_int_its_column_cannot_hold_is_refused_not_wrapped(engine, tokens):
    # psycopg's compiled int4 dumper would send 2**31 as -2**31; the text COPY's server refused it.
    row = ("entity_extraction", "baseline", "3b", 12.5, True, 0.8, tokens, 250, str(uuid.uuid4()), TS)
    with pytest.raises(psycopg.DataError) as caught:
        with engine.begin() as conn:
            insert_events(conn, "metric", [row])
    assert refusal(caught.value) == ROWS
    assert stored(engine, "metric") == []


def test_a_table_that_differs_from_the_models_is_an_outage_not_bad_rows(engine):
    # A newer schema under an older worker: every row would be refused, and dead-lettering them
    # would lose good events; held as an outage, they wait for a worker of the right version.
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE feedback_events ALTER COLUMN score TYPE integer USING score::integer")
    with pytest.raises(psycopg.Error) as caught:
        with engine.begin() as conn:
            insert_events(conn, "feedback", ROWS_BY_KIND["feedback"])
    assert refusal(caught.value) == OUTAGE, caught.value
