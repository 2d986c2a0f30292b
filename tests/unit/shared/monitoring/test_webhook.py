"""The webhook: each firing and resolution posted once, in threads, retried until acknowledged."""

import threading
from datetime import timedelta
import time

import fakeredis
import pytest

from shared.monitoring.alerts import check
from shared.monitoring.webhook import post_pending, unposted
from shared.settings import load_settings

from .conftest import NOW, ago, calls
from .hook import HookServer


@pytest.fixture
def r():
    return fakeredis.FakeRedis()


def with_hook(settings, url, timeout=5.0):
    return load_settings(DATABASE_URL=settings.database_url, PROMPTLOOP_ALERT_WEBHOOK_URL=url,
                         PROMPTLOOP_ALERT_WEBHOOK_TIMEOUT_S=str(timeout))


def fire(engine, settings, variant="baseline"):
    calls(engine, [9000] * 10, variant=variant, ts=ago(minutes=4))
    return check(engine, settings, now=NOW)["fired"]


def test_fired_and_resolved_are_each_posted_once(db, r):
    settings, engine = db
    with HookServer() as hook:
        s = with_hook(settings, hook.url)
        (alert_id,) = fire(engine, s)
        assert post_pending(engine, r, s, wait=True) == [alert_id]
        assert post_pending(engine, r, s, wait=True) == []
        (body,) = hook.events()
        assert body["event"] == "fired" and body["alert_id"] == alert_id and body["rule"] == "default latency_mean"
        assert (body["family"], body["variant"], body["model"]) == ("entity_extraction", "baseline", "m")
        assert body["value"] == 9000 and body["threshold"] == 5000 and body["resolved_at"] is None
        # Silence resolves it; the resolution is posted once too.
        assert check(engine, s, now=NOW + timedelta(minutes=10))["resolved"] == [alert_id]
        post_pending(engine, r, s, wait=True)
        post_pending(engine, r, s, wait=True)
        assert [b["event"] for b in hook.events()] == ["fired", "resolved"]
        assert hook.events("resolved")[0]["status"] == "resolved" and unposted(engine) == []


def test_a_failing_webhook_is_retried_until_it_answers_2xx(db, r):
    settings, engine = db
    answers = iter([(0, 500), (0, 503)])
    with HookServer(lambda body: next(answers, (0, 200))) as hook:
        s = with_hook(settings, hook.url)
        (alert_id,) = fire(engine, s)
        for _ in range(2):
            post_pending(engine, r, s, wait=True)
            assert unposted(engine) == [alert_id]
        post_pending(engine, r, s, wait=True)
        assert unposted(engine) == [] and len(hook.events()) == 3  # two refused, one acknowledged
        post_pending(engine, r, s, wait=True)
        assert len(hook.events()) == 3


def test_a_hanging_webhook_delays_neither_the_caller_nor_other_alerts(db, r):
    settings, engine = db
    with HookServer(lambda body: (4.0 if body["variant"] == "slow" else 0.0, 200)) as hook:
        s = with_hook(settings, hook.url, timeout=10)
        fire(engine, s, variant="slow")  # the older alert: its thread starts first
        fire(engine, s, variant="fast")
        started = time.time()
        assert len(post_pending(engine, r, s)) == 2
        assert time.time() - started < 1.0  # returns at once: posting runs in threads
        # While the slow one is in flight, another call does not post it a second time (its lease).
        assert post_pending(engine, r, s) == []
        deadline = time.monotonic() + 10
        while len(hook.events()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        (fast_at, fast), (slow_at, slow) = hook.received
        assert (fast["variant"], slow["variant"]) == ("fast", "slow")
        assert fast_at - started < 2.5 and slow_at - started >= 4.0
        time.sleep(0.2)
        assert unposted(engine) == []


def test_a_timeout_leaves_the_alert_unposted_for_the_next_call(db, r):
    settings, engine = db
    with HookServer(lambda body: (1.5, 200)) as hook:
        s = with_hook(settings, hook.url, timeout=0.3)
        (alert_id,) = fire(engine, s)
        post_pending(engine, r, s, wait=True)
        assert unposted(engine) == [alert_id]


def test_two_callers_at_once_post_once(db, r):
    settings, engine = db
    with HookServer(lambda body: (0.3, 200)) as hook:
        s = with_hook(settings, hook.url)
        fire(engine, s)
        barrier = threading.Barrier(4)

        def run():
            barrier.wait()
            post_pending(engine, r, s, wait=True)

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(hook.events()) == 1


def test_nothing_is_posted_or_marked_without_a_url(db, r):
    settings, engine = db
    (alert_id,) = fire(engine, settings)
    assert post_pending(engine, r, settings, wait=True) == [] and unposted(engine) == [alert_id]


def test_an_alert_posted_between_the_query_and_the_lease_is_not_started_again(db, r, monkeypatch):
    # Another caller's thread marks the alert posted and lets its lease go after this caller read the
    # unposted ids and before it took the lease: the lease is free, but there is nothing to post.
    settings, engine = db
    with HookServer() as hook:
        s = with_hook(settings, hook.url)
        (alert_id,) = fire(engine, s)
        assert post_pending(engine, r, s, wait=True) == [alert_id]
        monkeypatch.setattr("shared.monitoring.webhook.unposted", lambda engine, limit=20: [alert_id])
        assert post_pending(engine, r, s, wait=True) == []
        assert not r.keys("*")  # and its lease was let go
        assert len(hook.events()) == 1
