"""Idempotent writes of validated events and dead letters.

PostgreSQL: binary COPY straight into the table inside a savepoint, the fastest way in (binary
rows cost the worker about a third of text rows to format, and the server parses no timestamps
or numbers). A duplicate
``event_id`` (a batch replayed after a crash, a producer's retry) aborts that COPY; the batch then goes
through a temporary staging table and ``INSERT ... SELECT ... ON CONFLICT (event_id) DO NOTHING``.
Other databases (SQLite): a multi-row ``INSERT ... ON CONFLICT DO NOTHING``.

A write can fail for two unrelated reasons, told apart by ``refusal``: the rows themselves (a
constraint, a value out of range: dead-letter just those rows) or the database's state (down,
read-only, disk full: keep the rows and retry later).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from operator import attrgetter

import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format
from sqlalchemy import (BigInteger, Boolean, Connection, DateTime, Float, Integer, SmallInteger, String, Table, Uuid,
                        text)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from .models import EVENT_TABLES, DeadLetter

#: Columns written from an event, in table order (``id`` and ``received_at`` come from the database).
COLUMNS = {
    kind: [c.name for c in model.__table__.columns if c.name not in ("id", "received_at")]
    for kind, model in EVENT_TABLES.items()
}


_GETTERS = {kind: attrgetter(*names) for kind, names in COLUMNS.items()}


def _binary_type(column) -> str:
    """The PostgreSQL type a binary COPY sends for ``column`` (the server checks text lengths itself;
    integers are range-checked by the dumpers below)."""
    kind = column.type
    for sa_type, pg_type in ((Boolean, "bool"), (BigInteger, "int8"), (SmallInteger, "int2"), (Integer, "int4"),
                             (Float, "float8"), (Uuid, "uuid"), (String, "text")):
        if isinstance(kind, sa_type):
            return pg_type
    if isinstance(kind, DateTime) and kind.timezone:
        return "timestamptz"
    raise TypeError(f"no binary COPY type for {column.table.name}.{column.name} ({kind!r})")


#: Per event kind, the binary COPY types of ``COLUMNS[kind]``.
COPY_TYPES = {kind: [_binary_type(model.__table__.c[name]) for name in COLUMNS[kind]]
              for kind, model in EVENT_TABLES.items()}


class _UuidTextBinaryDumper(Dumper):
    """A UUID kept as its text form (as events carry it) in binary: 16 bytes, no ``uuid.UUID`` made."""

    format = Format.BINARY
    oid = psycopg.adapters.types["uuid"].oid

    def dump(self, obj) -> bytes:
        try:
            data = bytes.fromhex(obj.replace("-", "")) if isinstance(obj, str) else obj.bytes
        except (ValueError, AttributeError):
            data = b""
        if len(data) != 16:
            raise psycopg.DataError(f"not a UUID: {obj!r:.80}")
        return data


def _checked_int_dumper(name: str, fmt: str) -> type[Dumper]:
    """A binary dumper for PostgreSQL's ``name`` that refuses what does not fit (psycopg's compiled
    one wraps 2**31 round to a negative int4) as a ``DataError``, like the server refuses text."""
    pack = struct.Struct(fmt).pack

    class CheckedInt(Dumper):
        format = Format.BINARY
        oid = psycopg.adapters.types[name].oid

        def dump(self, obj) -> bytes:
            try:
                return pack(obj)
            except struct.error:
                raise psycopg.DataError(f"{obj!r:.40} does not fit a PostgreSQL {name}") from None

    return CheckedInt


#: Registered on a connection before each binary COPY; looked up by type (``set_types``) only.
_COPY_DUMPERS = (_UuidTextBinaryDumper, _checked_int_dumper("int2", ">h"), _checked_int_dumper("int4", ">i"),
                 _checked_int_dumper("int8", ">q"))
#: What a dumper itself may raise for a value its column cannot take (wrong type, out of range,
#: unencodable text); ``copy_rows`` raises them as ``DataError``, a row fault.
_VALUE_ERRORS = (struct.error, OverflowError, TypeError, ValueError)


def event_row(event) -> tuple:
    """The values of ``COLUMNS[event.kind]`` for one validated event."""
    return _GETTERS[event.kind](event)


#: What a write raises: SQLAlchemy wraps the statements it runs, but COPY goes through the driver's
#: own cursor, so its errors arrive as bare psycopg exceptions.
DB_ERRORS = (sa_exc.DBAPIError, psycopg.Error)

ROWS = "rows"
OUTAGE = "outage"

#: SQLSTATE prefixes that blame the rows: 22 data exception, 23 integrity violation, P0001 a
#: trigger's RAISE EXCEPTION (how a trigger refuses a row).
_ROW_STATES = ("22", "23", "P0001")
#: SQLSTATE prefixes that blame the database's state: 08 connection, 25006 read-only transaction
#: (a standby, or read-only after a failover), 40 serialization failure or deadlock, 53 insufficient
#: resources (disk full), 57 operator intervention (shutdown, cancel), 58 system error (I/O).
_OUTAGE_STATES = ("08", "25006", "40", "53", "57", "58")
#: Binary COPY rows that the server cannot read: every row is written for the columns this code's
#: models declare, so this means the table differs (a newer schema under an older worker), not a bad
#: row. Held as an outage, so that no event is dead-lettered for it.
_FORMAT_STATES = ("22P03", "22P04")
# Without a SQLSTATE (refused by the driver before the server saw it, sqlite3, a dropped connection)
# the exception's class is all there is to go by.
_ROW_TYPES = (sa_exc.DataError, sa_exc.IntegrityError, psycopg.DataError, psycopg.IntegrityError)
_OUTAGE_TYPES = (sa_exc.OperationalError, sa_exc.InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)


def refusal(exc: BaseException) -> str | None:
    """``ROWS`` when a write failed because of the rows, ``OUTAGE`` when because of the database's
    state, None when the error says neither (a bug, a missing table: let it count toward dead letters).
    """
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    state = getattr(orig, "sqlstate", None)
    if state:
        if state in _FORMAT_STATES:
            return OUTAGE
        if state.startswith(_ROW_STATES):
            return ROWS
        return OUTAGE if state.startswith(_OUTAGE_STATES) else None
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return OUTAGE
    if isinstance(exc, _ROW_TYPES) or isinstance(orig, _ROW_TYPES):
        return ROWS
    if isinstance(exc, _OUTAGE_TYPES) or isinstance(orig, _OUTAGE_TYPES):
        return OUTAGE
    return None


def describe(exc: BaseException) -> str:
    """The database's own message for a failed write, without SQLAlchemy's statement dump."""
    return str(exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc)


def error_code(exc: BaseException) -> str:
    """The error's class and SQLSTATE, and nothing of the values involved (for a message that must be storable)."""
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    return f"{type(orig).__name__}, SQLSTATE {getattr(orig, 'sqlstate', None) or 'none'}"


def storable_text(value: str, limit: int = 4000) -> str:
    """``value`` as text any database takes: NUL spelled out (PostgreSQL refuses it in text), lone
    surrogates escaped (they are not UTF-8), and at most ``limit`` characters.
    """
    value = value.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
    return value if len(value) <= limit else value[:limit] + " [truncated]"


def refuses_writes(conn: Connection) -> bool:
    """Whether the database will refuse every write: PostgreSQL read-only (a standby, or set so)."""
    if conn.dialect.name != "postgresql":
        return False
    return conn.execute(text("SHOW transaction_read_only")).scalar_one() == "on"


def insert_events(conn: Connection, kind: str, rows: Iterable[tuple]) -> int:
    """Insert rows for one event kind, skipping event_ids already stored; returns rows inserted.

    ``rows`` may be an iterator: on PostgreSQL they are copied as it yields them, so the rows of a
    batch still being parsed are already on their way in.
    """
    if isinstance(rows, list) and not rows:
        return 0
    table = EVENT_TABLES[kind].__table__
    if conn.dialect.name == "postgresql":
        rows = iter(rows)
        copied: list[tuple] = []  # kept for the staged insert, should a duplicate abort the COPY
        try:
            with conn.begin_nested():
                copy_rows(conn, table.name, kind, _kept(rows, copied))
            return len(copied)
        except psycopg.errors.UniqueViolation:
            copied.extend(rows)  # any the COPY had not read yet
            return _staged_insert(conn, table, kind, copied)
    rows = list(rows)
    if not rows:
        return 0
    stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=["event_id"])
    return conn.execute(stmt, [dict(zip(COLUMNS[kind], row)) for row in rows]).rowcount


def _kept(rows: Iterator[tuple], kept: list[tuple]) -> Iterator[tuple]:
    append = kept.append
    for row in rows:
        append(row)
        yield row


def copy_rows(conn: Connection, table: str, kind: str, rows: Iterable[tuple]) -> None:
    """Binary COPY of ``rows`` (``COLUMNS[kind]``'s values) into ``table`` (PostgreSQL only).

    A value that cannot be stored raises a ``psycopg.Error`` (PostgreSQL's, or a ``DataError`` for one
    refused before it is sent) and the COPY ends with nothing of it stored.
    """
    driver = conn.connection.driver_connection
    for dumper in _COPY_DUMPERS:  # before the cursor, which reads them when made
        driver.adapters.register_dumper(None, dumper)
    cursor = driver.cursor()
    with cursor.copy(f"COPY {table} ({', '.join(COLUMNS[kind])}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(COPY_TYPES[kind])
        write_row = copy.write_row
        for row in rows:
            try:
                write_row(row)
            except _VALUE_ERRORS as exc:
                raise psycopg.DataError(f"a value does not fit its column: {type(exc).__name__}: {exc}") from exc


def _staged_insert(conn: Connection, table: Table, kind: str, rows: list[tuple]) -> int:
    columns = COLUMNS[kind]
    stage = f"stage_{table.name}"
    ddl = ", ".join(f"{name} {table.c[name].type.compile(conn.dialect)}" for name in columns)
    # Temporary tables live per connection: created once, emptied after each use.
    conn.execute(text(f"CREATE TEMP TABLE IF NOT EXISTS {stage} ({ddl})"))
    copy_rows(conn, stage, kind, rows)
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

