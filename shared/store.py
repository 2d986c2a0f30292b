"""Idempotent writes of validated events and dead letters.

PostgreSQL: COPY into a temporary staging table, then ``INSERT ... SELECT ... ON CONFLICT (event_id)
DO NOTHING`` (several times faster than row-by-row inserts, and duplicates cost nothing).
Other databases (SQLite): a multi-row ``INSERT ... ON CONFLICT DO NOTHING``.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Connection, Table, text
from sqlalchemy.dialects import postgresql, sqlite

from .models import EVENT_TABLES, DeadLetter

#: Columns written from an event, in table order (``id`` and ``received_at`` come from the database).
COLUMNS = {
    kind: [c.name for c in model.__table__.columns if c.name not in ("id", "received_at")]
    for kind, model in EVENT_TABLES.items()
}


def event_row(event) -> tuple:
    """The values of ``COLUMNS[event.kind]`` for one validated event (``ts`` still epoch seconds)."""
    return tuple(getattr(event, name) for name in COLUMNS[event.kind])


def insert_events(conn: Connection, kind: str, rows: list[tuple]) -> int:
    """Insert rows for one event kind, skipping event_ids already stored; returns rows inserted."""
    if not rows:
        return 0
    table = EVENT_TABLES[kind].__table__
    if conn.dialect.name == "postgresql":
        return _copy_insert(conn, table, COLUMNS[kind], rows)
    ts_at = COLUMNS[kind].index("ts")
    dicts = []
    for row in rows:
        values = dict(zip(COLUMNS[kind], row))
        values["ts"] = datetime.fromtimestamp(row[ts_at], timezone.utc)
        dicts.append(values)
    stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=["event_id"])
    return conn.execute(stmt, dicts).rowcount


def _copy_insert(conn: Connection, table: Table, columns: list[str], rows: list[tuple]) -> int:
    stage = f"stage_{table.name}"
    dialect = conn.dialect
    ddl = ", ".join(
        f"{name} {'double precision' if name == 'ts' else table.c[name].type.compile(dialect)}" for name in columns
    )
    # Temporary tables live per connection: created once, emptied after each use.
    conn.execute(text(f"CREATE TEMP TABLE IF NOT EXISTS {stage} ({ddl})"))
    cols = ", ".join(columns)
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"COPY {stage} ({cols}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    select = ", ".join("to_timestamp(ts)" if name == "ts" else name for name in columns)
    result = conn.execute(text(
        f"INSERT INTO {table.name} ({cols}) SELECT {select} FROM {stage} ON CONFLICT (event_id) DO NOTHING"
    ))
    inserted = result.rowcount
    conn.execute(text(f"TRUNCATE {stage}"))
    return inserted


def insert_dead_letters(conn: Connection, letters: list[dict]) -> int:
    """Store dead letters (``stream_id``, ``raw``, ``reason``, ``delivery_count``), once per stream id."""
    if not letters:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(DeadLetter.__table__).on_conflict_do_nothing(index_elements=["stream_id"])
    return conn.execute(stmt, letters).rowcount

