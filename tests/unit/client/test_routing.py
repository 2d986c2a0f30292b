"""``Router.select_variant``: sticky shares from the published rollout state, and every failure served."""

import json
import math
import time

import fakeredis
import pytest
import redis

from promptloop_client import Router, Selection, wire

INCUMBENT = {"name": "baseline", "template": {"system": "old", "user": "{input_text}"}}
CANDIDATE = {"name": "DSPY_A", "template": {"system": "new", "user": "{input_text}"}}
KEYS = [f"chunk {i}: Marie Curie worked at the University of Paris." for i in range(4000)]


def state(percentage=0.25, candidate=CANDIDATE, salt="rollout-1", family="entity_extraction", model="3b"):
    return {"version": 1, "routes": {family: {model: {"incumbent": INCUMBENT, "candidate": candidate,
                                                      "percentage": percentage, "salt": salt}}}}


def publish(r, value):
    r.set(wire.ROLLOUT_STATE_KEY, value if isinstance(value, (str, bytes)) else json.dumps(value))
    r.incr(wire.ROLLOUT_VERSION_KEY)


@pytest.fixture
def r(server):
    return fakeredis.FakeRedis(server=server)


@pytest.fixture
def router(r):
    rt = Router(r, refresh_interval=3600)  # tests refresh by hand
    yield rt
    rt.close()


def on_candidate(router, keys=KEYS):
    return {k for k in keys if router.select_variant("entity_extraction", "3b", k).candidate}


def test_the_share_matches_the_contract_and_is_within_binomial_bounds(r, router):
    publish(r, state(0.25))
    router.refresh()
    chosen = on_candidate(router)
    assert chosen == {k for k in KEYS if wire.serves_candidate(k, "rollout-1", 0.25)}
    n, p = len(KEYS), 0.25
    assert abs(len(chosen) - n * p) < 4 * math.sqrt(n * p * (1 - p))
    sel = router.select_variant("entity_extraction", "3b", next(iter(chosen)))
    assert sel == Selection("DSPY_A", CANDIDATE["template"], True)
    other = next(k for k in KEYS if k not in chosen)
    assert router.select_variant("entity_extraction", "3b", other) == \
        Selection("baseline", INCUMBENT["template"], False)


def test_sticky_and_growing_keeps_the_first_share(r, router):
    publish(r, state(0.10))
    router.refresh()
    first = on_candidate(router)
    assert first == on_candidate(router)  # same key, same variant, every call
    assert on_candidate(router, [k.encode() for k in KEYS]) == {k.encode() for k in first}  # bytes keys too
    publish(r, state(0.25))
    router.refresh()
    grown = on_candidate(router)
    assert first < grown and len(grown) > len(first)


def test_zero_serves_none_and_one_serves_all(r, router):
    publish(r, state(0.0))
    router.refresh()
    assert on_candidate(router) == set()
    publish(r, state(1.0))
    router.refresh()
    assert on_candidate(router) == set(KEYS)


def test_unknown_family_or_model_gets_the_default(r, router):
    publish(r, state(1.0))
    router.refresh()
    assert router.select_variant("summarization", "3b", "k") == Selection("baseline", None, False)
    assert router.select_variant("entity_extraction", "7b", "k", default="mine") == Selection("mine", None, False)


def test_a_state_change_is_seen_after_a_refresh_and_the_thread_refreshes(r):
    publish(r, state(0.0))
    rt = Router(r, refresh_interval=0.02)
    try:
        assert not on_candidate(rt)
        publish(r, state(1.0))
        deadline = time.monotonic() + 5
        while not rt.select_variant("entity_extraction", "3b", "k").candidate and time.monotonic() < deadline:
            time.sleep(0.01)
        assert rt.select_variant("entity_extraction", "3b", "k").candidate
        reads = rt.stats()["reads"]
        time.sleep(0.1)  # polls that see the same version do not re-read the state
        assert rt.stats()["reads"] == reads
    finally:
        rt.close()


def test_a_rollback_takes_the_candidate_away(r, router):
    publish(r, state(1.0))
    router.refresh()
    publish(r, state(1.0, candidate=None))
    router.refresh()
    assert on_candidate(router) == set()
    assert router.select_variant("entity_extraction", "3b", "k").name == "baseline"


class FailingRedis:
    def get(self, key):
        raise redis.ConnectionError("Connection refused")


def test_redis_down_keeps_the_last_good_state(r, router):
    publish(r, state(1.0))
    router.refresh()
    router._redis = FailingRedis()
    assert router.refresh() is False
    assert router.select_variant("entity_extraction", "3b", "k").name == "DSPY_A"
    assert "ConnectionError" in router.stats()["last_error"]


def test_redis_down_from_the_start_serves_the_default():
    rt = Router(FailingRedis(), refresh_interval=3600)
    try:
        assert rt.select_variant("entity_extraction", "3b", "k") == Selection("baseline", None, False)
    finally:
        rt.close()


def test_unreachable_url_constructs_and_serves_the_default():
    rt = Router("redis://127.0.0.1:1/0", refresh_interval=3600, socket_timeout=0.2)
    try:
        assert rt.select_variant("entity_extraction", "3b", "k").name == "baseline"
        assert rt.stats()["errors"] >= 1
    finally:
        rt.close()


@pytest.mark.parametrize("raw", ["{not json", "[]", '{"routes": 3}', b"\xff\xfe", "null"])
def test_malformed_state_serves_the_default_or_the_incumbent(r, router, raw):
    publish(r, raw)
    assert router.refresh() is False
    assert router.select_variant("entity_extraction", "3b", "k") == Selection("baseline", None, False)
    publish(r, state(1.0))
    router.refresh()
    publish(r, raw)  # a broken write after a good one: no candidate serves, the incumbent does
    router.refresh()
    assert router.select_variant("entity_extraction", "3b", "k") == Selection("baseline", INCUMBENT["template"], False)


@pytest.mark.parametrize("spec, expected", [
    ({"incumbent": INCUMBENT, "candidate": CANDIDATE, "percentage": 2, "salt": "s"}, "baseline"),
    ({"incumbent": INCUMBENT, "candidate": CANDIDATE, "percentage": "1", "salt": "s"}, "baseline"),
    ({"incumbent": INCUMBENT, "candidate": CANDIDATE, "percentage": 1.0}, "baseline"),
    ({"incumbent": INCUMBENT, "candidate": {"template": {}}, "percentage": 1.0, "salt": "s"}, "baseline"),
    ({"incumbent": INCUMBENT, "candidate": {"name": "X", "template": "text"}, "percentage": 1.0, "salt": "s"},
     "baseline"),
    ({"candidate": CANDIDATE, "percentage": 1.0, "salt": "s"}, "default"),
    ({"incumbent": {"name": ""}, "candidate": CANDIDATE, "percentage": 1.0, "salt": "s"}, "default"),
    ("not an object", "default"),
])
def test_a_route_with_missing_or_bad_fields_serves_its_incumbent(r, router, spec, expected):
    good = state(1.0)["routes"]["entity_extraction"]["3b"]
    publish(r, {"version": 2, "routes": {"entity_extraction": {"3b": spec, "7b": good}, "summarization": []}})
    assert router.refresh() is True
    assert router.select_variant("entity_extraction", "3b", "k", default="default").name == expected
    assert router.select_variant("entity_extraction", "7b", "k").name == "DSPY_A"  # the other route is intact


@pytest.mark.parametrize("key", [None, 42, object(), ["list"]])
def test_no_exception_reaches_the_caller(r, router, key):
    publish(r, state(0.5))
    router.refresh()
    assert router.select_variant("entity_extraction", "3b", key).name == "baseline"
    assert router.select_variant(None, {}, key).name == "baseline"  # unhashable model: the default


def test_a_key_with_lone_surrogates_routes_like_wire_bucket(r, router):
    publish(r, state(0.5))
    router.refresh()
    key = "text \udcff from a bad decode"
    expected = wire.serves_candidate(key, "rollout-1", 0.5)
    assert router.select_variant("entity_extraction", "3b", key).candidate == expected


def test_the_module_level_select_variant_uses_the_shared_router(monkeypatch, r):
    import promptloop_client as pc

    publish(r, state(1.0))
    monkeypatch.setattr(pc, "_router", Router(r, refresh_interval=3600))
    try:
        assert pc.get_router() is pc._router
        assert pc.select_variant("entity_extraction", "3b", "k").name == "DSPY_A"
    finally:
        pc._router.close()


def test_a_forked_child_refreshes_in_its_own_thread(r):
    import os

    publish(r, state(0.0))
    rt = Router(r, refresh_interval=0.02)
    try:
        pid = os.fork()
        if pid == 0:  # the child: its copy of the fake server changes, its own thread must see it
            code = 1
            try:
                publish(r, state(1.0))
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and not rt.select_variant("entity_extraction", "3b", "k").candidate:
                    time.sleep(0.01)
                code = 0 if rt.select_variant("entity_extraction", "3b", "k").candidate else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        rt.close()
