"""Alert rules as data: defaults from the environment, fire once, resolve once, never twice at once."""

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from shared.config import AlertConfig
from shared.models import Alert
from shared.monitoring.alerts import add_rule, check, recent_alerts, rules, set_enabled
from shared.settings import load_settings

from .conftest import NOW, ago, calls, feedback

SLOW = AlertConfig(metric_name="latency_p95", threshold=1000, comparison="greater_than", window_minutes=5,
                   min_samples=10)


def alerts(engine):
    with engine.connect() as conn:
        return list(conn.execute(select(Alert).order_by(Alert.id)))


def test_default_rules_come_from_the_environment_and_follow_it(db):
    settings, engine = db
    check(engine, settings, now=NOW)
    assert {(r.name, r.metric_name, r.threshold, r.comparison) for r in rules(engine)} == {
        ("default latency_mean", "latency_mean", 5000.0, "greater_than"),
        ("default success_rate", "success_rate", 0.9, "less_than")}
    changed = load_settings(DATABASE_URL=settings.database_url, DSPY_ALERT_LATENCY="800", DSPY_ALERT_SUCCESS_RATE="0.5")
    check(engine, changed, now=NOW)
    assert {r.name: r.threshold for r in rules(engine)} == {"default latency_mean": 800.0,
                                                            "default success_rate": 0.5}


def test_default_latency_alert_fires_once_and_resolves_once(db):
    settings, engine = db
    calls(engine, [6000] * 10, ts=ago(minutes=3))
    out = check(engine, settings, now=NOW)
    assert len(out["fired"]) == 1 and out["firing"] == 1
    (a,) = alerts(engine)
    assert a.status == "firing" and a.value == 6000 and a.threshold == 5000
    assert "latency_mean 6000 > 5000" in a.message and "entity_extraction / baseline / m" in a.message
    # Still holding: nothing new, however often it is checked.
    for _ in range(3):
        assert check(engine, settings, now=NOW)["fired"] == []
    # Faster calls bring the 5-minute mean under the threshold: resolved once.
    calls(engine, [100] * 40, ts=ago(minutes=1))
    assert check(engine, settings, now=NOW)["resolved"] == [a.id]
    assert check(engine, settings, now=NOW)["resolved"] == []
    (a,) = alerts(engine)
    assert a.status == "resolved" and a.open_key is None and a.resolved_at is not None
    # Slow again: a new incident, a new alert.
    calls(engine, [60000] * 40, ts=ago(seconds=10))
    assert len(check(engine, settings, now=NOW)["fired"]) == 1 and len(alerts(engine)) == 2


def test_success_rate_alert_per_scope(db):
    settings, engine = db
    calls(engine, [100] * 20, success=[i >= 5 for i in range(20)])  # 75%
    calls(engine, [100] * 20, variant="DSPY_A")  # 100%
    out = check(engine, settings, now=NOW)
    (a,) = alerts(engine)
    assert out["fired"] == [a.id] and a.scope == "entity_extraction|baseline|m" and a.value == 0.75


def test_too_few_samples_neither_fire_nor_resolve_but_silence_resolves(db):
    settings, engine = db
    calls(engine, [9000] * 9, ts=ago(minutes=4))  # min_samples is 10
    assert check(engine, settings, now=NOW)["fired"] == []
    calls(engine, [9000], ts=ago(minutes=4))
    assert len(check(engine, settings, now=NOW)["fired"]) == 1
    # Two minutes on, the slow calls have left the window and 3 fast ones are in it: too few to say.
    calls(engine, [100] * 3, ts=NOW)
    assert check(engine, settings, now=NOW + timedelta(minutes=2))["resolved"] == []
    # Ten minutes on, no calls at all: resolved.
    assert len(check(engine, settings, now=NOW + timedelta(minutes=10))["resolved"]) == 1


def test_rules_are_data_scoped_to_a_family_and_disabling_resolves(db):
    settings, engine = db
    add_rule(engine, "slow extraction", SLOW, family="entity_extraction")
    calls(engine, [2000] * 10)
    calls(engine, [2000] * 10, family="summarization")
    out = check(engine, settings, now=NOW)
    (a,) = alerts(engine)
    assert out["fired"] == [a.id] and a.scope.startswith("entity_extraction|")
    assert recent_alerts(engine)[0]["rule"] == "slow extraction"
    set_enabled(engine, "slow extraction", False)
    assert check(engine, settings, now=NOW)["resolved"] == [a.id]


def test_feedback_rule_counts_feedback_samples(db):
    settings, engine = db
    add_rule(engine, "unhappy users", AlertConfig(metric_name="feedback_mean", threshold=0.5, comparison="less_than",
                                                  min_samples=5))
    feedback(engine, [0.1] * 4, variant="DSPY_A")
    assert check(engine, settings, now=NOW)["fired"] == []
    feedback(engine, [0.1], variant="DSPY_A")
    out = check(engine, settings, now=NOW)
    assert len(out["fired"]) == 1 and alerts(engine)[0].scope == "-|DSPY_A|m"


def test_an_unknown_metric_is_refused(db):
    _, engine = db
    with pytest.raises(ValueError, match="metric_name must be one of"):
        add_rule(engine, "x", AlertConfig(metric_name="latency_p99", threshold=1))


def test_concurrent_checks_fire_one_alert(db):
    settings, engine = db
    check(engine, settings, now=NOW)  # create the default rules first
    calls(engine, [9000] * 20)
    results, barrier = [], threading.Barrier(4)

    def run():
        barrier.wait()
        results.append(check(engine, settings, now=NOW))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(len(r["fired"]) for r in results) == 1 and len(alerts(engine)) == 1
