"""The binary COPY's column types, derived from the models (PostgreSQL itself: tests/integration/test_store_pg.py)."""

import uuid

import psycopg
import pytest
from sqlalchemy import JSON, BigInteger, Column, Integer, MetaData, SmallInteger, Table

from shared.store import COLUMNS, COPY_TYPES, _binary_type, _UuidTextBinaryDumper


def test_every_column_of_every_event_kind_has_a_copy_type():
    assert {kind: len(types) for kind, types in COPY_TYPES.items()} == {k: len(c) for k, c in COLUMNS.items()}
    metric = dict(zip(COLUMNS["metric"], COPY_TYPES["metric"]))
    assert (metric["event_id"], metric["ts"], metric["success"], metric["tokens_in"], metric["quality"]) == (
        "uuid", "timestamptz", "bool", "int4", "float8")


def test_integer_widths_are_kept_and_an_unknown_type_is_an_error():
    table = Table("t", MetaData(), Column("a", BigInteger), Column("b", SmallInteger), Column("c", Integer),
                  Column("d", JSON))
    assert [_binary_type(table.c[n]) for n in "abc"] == ["int8", "int2", "int4"]
    with pytest.raises(TypeError, match="t.d"):
        _binary_type(table.c.d)


def test_uuids_in_text_become_their_16_bytes_and_anything_else_is_a_data_error():
    dump = _UuidTextBinaryDumper(str).dump
    u = uuid.uuid4()
    assert dump(str(u)) == dump(u.hex.upper()) == dump(u) == u.bytes
    for bad in ("not-a-uuid", u.hex + "00", 12):
        with pytest.raises(psycopg.DataError):
            dump(bad)
