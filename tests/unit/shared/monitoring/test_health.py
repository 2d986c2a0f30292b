"""Health checks: each part reports on its own, beat's age on Redis's clock, ingest lag from the stream."""

import fakeredis
import pytest
from sqlalchemy import create_engine

from shared.constants import GROUP, STREAM
from shared.monitoring.health import health, ingest_lag
from shared.monitoring.slots import HEARTBEAT, HEARTBEAT_TTL_MS, beat_tick, last_tick


@pytest.fixture
def r():
    return fakeredis.FakeRedis()


def now_ms(r):
    s, us = r.time()
    return s * 1000 + us // 1000


def test_all_healthy(db, r):
    settings, engine = db
    beat_tick(r, "host:1")
    out = health(engine, r, settings, workers=lambda: ["w1@host"])
    assert out["ok"] is True, out
    c = out["checks"]
    assert c["redis"]["ok"] and c["database"]["ok"] and c["workers"] == {"ok": True, "count": 1, "names": ["w1@host"]}
    assert c["beat"]["beat"] == "host:1" and c["beat"]["last_tick_s"] < 1
    assert c["ingest"] == {"ok": True, "length": 0, "pending": 0, "undelivered": None, "lag_s": 0.0, "limit_s": 60.0}


def test_no_beat_no_workers_no_database(db, r):
    settings, _ = db
    broken = create_engine("sqlite:////nonexistent/dir/x.db")
    out = health(broken, r, settings, workers=lambda: [])
    assert out["ok"] is False
    c = out["checks"]
    assert not c["database"]["ok"] and "OperationalError" in c["database"]["error"]
    assert c["workers"] == {"ok": False, "count": 0, "names": []}
    assert c["beat"] == {"ok": False, "error": "no beat has ticked"}
    assert c["redis"]["ok"]  # the rest still reported
    assert not health(broken, r, settings, workers=lambda: None)["checks"]["workers"]["ok"]


def test_a_stale_heartbeat_fails(db, r):
    settings, engine = db
    r.set(HEARTBEAT, "host:1", px=HEARTBEAT_TTL_MS - 40_000)  # written 40 s ago
    owner, age = last_tick(r)
    assert owner == "host:1" and 39 < age < 41
    beat = health(engine, r, settings, workers=lambda: ["w"])["checks"]["beat"]
    assert beat["ok"] is False and beat["limit_s"] == 15.0


def test_ingest_lag_is_the_age_of_the_oldest_entry_not_yet_stored(r):
    t = now_ms(r)
    r.xadd(STREAM, {"e": "{}"}, id=f"{t - 90_000}-0")  # undelivered, no group yet
    r.xadd(STREAM, {"e": "{}"}, id=f"{t - 5_000}-0")
    lag = ingest_lag(r)
    assert 89 < lag["lag_s"] < 92 and lag["length"] == 2
    # The group read the first (pending, not acknowledged): still the oldest.
    r.xgroup_create(STREAM, GROUP, id="0")
    r.xreadgroup(GROUP, "c1", {STREAM: ">"}, count=1)
    assert 89 < ingest_lag(r)["lag_s"] < 92
    # Acknowledged: the oldest left is the undelivered second entry.
    first = r.xrange(STREAM, count=1)[0][0]
    r.xack(STREAM, GROUP, first)
    r.xdel(STREAM, first)
    assert 4 < ingest_lag(r)["lag_s"] < 7
    r.xreadgroup(GROUP, "c1", {STREAM: ">"}, count=1)
    r.xack(STREAM, GROUP, r.xrange(STREAM, count=1)[0][0])
    assert ingest_lag(r)["lag_s"] == 0.0


def test_redis_down_is_reported_not_raised(db):
    settings, engine = db
    import redis

    down = redis.Redis(port=1, socket_connect_timeout=0.2)
    out = health(engine, down, settings, workers=lambda: None)
    assert out["ok"] is False and out["checks"]["database"]["ok"]
    assert {k: c["ok"] for k, c in out["checks"].items()} == {"redis": False, "database": True, "workers": False,
                                                           "beat": False, "ingest": False}
