"""Client fixtures: a fake Redis server and a client flushing to it quickly."""

import fakeredis
import pytest

from promptloop_client import Client


@pytest.fixture
def server():
    return fakeredis.FakeServer()


@pytest.fixture
def client(server):
    c = Client(connection=fakeredis.FakeRedis(server=server), flush_interval=0.01)
    yield c
    c.close(1)
