"""Idempotent writes of validated events and dead letters.

PostgreSQL: COPY straight into the table inside a savepoint, the fastest way in. A duplicate
``event_id`` (a batch replayed after a crash, a producer's retry) aborts that COPY; the batch then goes
through a temporary staging table and ``INSERT ... SELECT ... ON CONFLICT (event_id) DO NOTHING``.
Other databases (SQLite): a multi-row ``INSERT ... ON CONFLICT DO NOTHING``.
"""

from __future__ import annotations

from operator import attrgetter

import psycopg
from sqlalchemy import Connection, Table, text
from sqlalchemy.dialects import postgresql, sqlite

from .models import EVENT_TABLES, DeadLetter

#: Columns written from an event, in table order (``id`` and ``received_at`` come from the database).
COLUMNS = {
    kind: [c.name for c in model.__table__.columns if c.name not in ("id", "received_at")]
    for kind, model in EVENT_TABLES.items()
}


_GETTERS = {kind: attrgetter(*names) for kind, names in COLUMNS.items()}


def event_row(event) -> tuple:
    """The values of ``COLUMNS[event.kind]`` for one validated event."""
    return _GETTERS[event.kind](event)


def insert_events(conn: Connection, kind: str, rows: list[tuple]) -> int:
    """Insert rows for one event kind, skipping event_ids already stored; returns rows inserted."""
    if not rows:
        return 0
    table = EVENT_TABLES[kind].__table__
    if conn.dialect.name == "postgresql":
        try:
            with conn.begin_nested():
                _copy(conn, table.name, COLUMNS[kind], rows)
            return len(rows)
        except psycopg.errors.UniqueViolation:
            return _staged_insert(conn, table, COLUMNS[kind], rows)
    stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=["event_id"])
    return conn.execute(stmt, [dict(zip(COLUMNS[kind], row)) for row in rows]).rowcount


def _copy(conn: Connection, table: str, columns: list[str], rows: list[tuple]) -> None:
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _staged_insert(conn: Connection, table: Table, columns: list[str], rows: list[tuple]) -> int:
    stage = f"stage_{table.name}"
    ddl = ", ".join(f"{name} {table.c[name].type.compile(conn.dialect)}" for name in columns)
    # Temporary tables live per connection: created once, emptied after each use.
    conn.execute(text(f"CREATE TEMP TABLE IF NOT EXISTS {stage} ({ddl})"))
    _copy(conn, stage, columns, rows)
    cols = ", ".join(columns)
    inserted = conn.execute(text(
        f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {stage} ON CONFLICT (event_id) DO NOTHING"
    )).rowcount
    conn.execute(text(f"TRUNCATE {stage}"))
    return inserted


def insert_dead_letters(conn: Connection, letters: list[dict]) -> int:
    """Store dead letters (``stream_id``, ``raw``, ``reason``, ``delivery_count``), once per stream id."""
    if not letters:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(DeadLetter.__table__).on_conflict_do_nothing(index_elements=["stream_id"])
    return conn.execute(stmt, letters).rowcount

