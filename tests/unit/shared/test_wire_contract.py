"""The client's wire constants must equal ingest's: a mismatch strands every producer."""

from promptloop_client import wire
from shared import constants


def test_client_and_ingest_agree_on_the_wire_format():
    assert wire.STREAM == constants.STREAM
    assert wire.FIELD.encode() == constants.FIELD
    assert wire.SCHEMA_VERSION in constants.SCHEMA_VERSIONS
