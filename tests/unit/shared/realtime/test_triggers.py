"""The real-time optimizer's triggers and starts on the embedded database: each trigger fires once per
incident, the cooldown, max_concurrent_optimizations, a start lost to a racing tick, a broker outage."""

from datetime import timedelta

from shared.realtime.optimizer import start, tick
from shared.realtime.triggers import Incident, degradation_incidents, feedback_incidents, schedule_incidents

from .helpers import EE, NOW, RE, Sent, age_triggers, degrade, feedback, finish_run, metrics, setup, triggers


def test_degradation_fires_once_per_incident_with_the_timeout_as_budget(env):
    settings, engine = env
    setup(settings, engine)
    degrade(engine)
    metrics(engine, RE, 60, 0.8, minutes_ago=20 * 60, spread=20 * 60)  # steady: no incident
    [inc] = degradation_incidents(engine, settings, NOW)
    assert (inc.family, inc.kind, inc.evidence["metric"]) == (EE, "degradation", "quality")
    assert abs(inc.evidence["drop"] - 0.375) < 1e-9 and inc.evidence["n_recent"] == 25
    sent = Sent()
    out = tick(engine, settings, sent, now=NOW)
    assert [(o["family"], o["kind"], o["status"]) for o in out] == [(EE, "degradation", "started")]
    assert sent == [(EE, "m", {"job_id": out[0]["job_id"], "dataset": "conll04",
                               "budget_minutes": settings.optimization_timeout_minutes})]
    for _ in range(3):  # later ticks: the same incident, its optimization queued -> skipped, recorded once
        out = tick(engine, settings, sent, now=NOW + timedelta(seconds=30))
        assert [o["skip"] for o in out] == ["open_optimization"]
    assert len(sent) == 1
    assert [(t.kind, t.status) for t in triggers(engine)] == [("degradation", "started"), ("degradation", "skipped")]


def test_small_drops_and_thin_windows_do_not_fire_and_success_rate_stands_in_for_quality(env):
    settings, engine = env
    metrics(engine, EE, 40, 0.8, minutes_ago=20 * 60, spread=18 * 60)
    metrics(engine, EE, 25, 0.72, minutes_ago=10, spread=9)  # 10% < 15%
    metrics(engine, RE, 40, None, minutes_ago=20 * 60, spread=18 * 60)
    metrics(engine, RE, 10, None, minutes_ago=10, spread=9, success=False)  # 10 < 20 samples
    assert degradation_incidents(engine, settings, NOW) == []
    metrics(engine, RE, 15, None, minutes_ago=10, spread=9, success=lambda i: i % 3 == 0)
    [inc] = degradation_incidents(engine, settings, NOW)
    assert (inc.family, inc.evidence["metric"], inc.evidence["recent"]) == (RE, "success_rate", 5 / 25)


def test_feedback_volume_counts_items_since_the_last_optimization_and_splits_shared_names(env):
    settings, engine = env
    setup(settings, engine)
    # "baseline" exists in both families: its feedback is split 3:1 by their calls of it.
    metrics(engine, EE, 30, 0.8, minutes_ago=60)
    metrics(engine, RE, 10, 0.8, minutes_ago=60)
    feedback(engine, "baseline", 60)  # 45 for EE, 15 for RE: below 50
    assert feedback_incidents(engine, settings, NOW) == []
    feedback(engine, "baseline", 20)
    [inc] = feedback_incidents(engine, settings, NOW)
    assert (inc.family, inc.evidence["feedback"], inc.evidence["shared_names"]) == (EE, 60.0, {"baseline": 0.75})
    sent = Sent()
    assert [o["status"] for o in tick(engine, settings, sent, now=NOW)] == ["started"]
    finish_run(engine, sent[0][2]["job_id"])
    age_triggers(engine, 48)  # past the cooldown: only feedback after the start counts, none has come
    assert feedback_incidents(engine, settings, NOW) == []


def test_schedule_fires_after_the_interval_with_traffic_and_not_before(env):
    settings, engine = env
    setup(settings, engine)
    metrics(engine, EE, 30, 0.8, minutes_ago=25 * 60, spread=25 * 60)  # first call 25 h ago
    metrics(engine, RE, 30, 0.8, minutes_ago=23 * 60, spread=23 * 60)  # first call 23 h ago
    assert [(i.family, i.kind) for i in schedule_incidents(engine, settings, NOW)] == [(EE, "schedule")]
    sent = Sent()
    assert [o["status"] for o in tick(engine, settings, sent, now=NOW)] == ["started"]
    assert schedule_incidents(engine, settings, NOW) == []  # the start resets its clock
    assert [i.family for i in schedule_incidents(engine, settings, NOW + timedelta(hours=2))] == [RE]


def test_cooldown_holds_between_two_incidents_then_lets_the_next_one_start(env):
    settings, engine = env
    setup(settings, engine)
    degrade(engine)
    sent = Sent()
    tick(engine, settings, sent, now=NOW)
    finish_run(engine, sent[0][2]["job_id"])  # done, no candidate: the degradation goes on
    later = NOW + timedelta(minutes=30)
    metrics(engine, EE, 25, 0.5, minutes_ago=-20, spread=9)  # a fresh degraded window after the start
    assert [o.get("skip") for o in tick(engine, settings, sent, now=later)] == ["cooldown"]
    age_triggers(engine, settings.optimization_interval_hours)
    out = tick(engine, settings, sent, now=later)
    assert [o["status"] for o in out] == ["started"] and len(sent) == 2
    assert [t.run_id is not None for t in triggers(engine, status="started")] == [True, False]


def test_max_concurrent_optimizations_bounds_the_starts(env):
    settings, engine = env
    settings = settings.model_copy(update={"max_concurrent_optimizations": 1})
    setup(settings, engine)
    degrade(engine, EE)
    degrade(engine, RE)
    sent = Sent()
    out = tick(engine, settings, sent, now=NOW)
    assert sorted(o["status"] for o in out) == ["skipped", "started"]
    assert [o["skip"] for o in out if o["status"] == "skipped"] == ["max_concurrent"]
    finish_run(engine, sent[0][2]["job_id"], family=sent[0][0])  # the slot frees up
    out = tick(engine, settings, sent, now=NOW + timedelta(seconds=30))
    assert [o["family"] for o in out if o["status"] == "started"] == list({EE, RE} - {sent[0][0]})
    assert len(sent) == 2


def test_two_ticks_deciding_on_the_same_snapshot_start_one_optimization(env):
    settings, engine = env
    setup(settings, engine)
    sent = Sent()
    inc = Incident(EE, "m", "degradation", "test")
    first = start(engine, settings, inc, sent, prev=0, now=NOW, dataset="conll04")
    second = start(engine, settings, Incident(RE, "m", "feedback", "test"), sent, prev=0, now=NOW, dataset="conll04")
    assert (first["status"], second["status"], len(sent)) == ("started", "lost_race", 1)


def test_a_start_the_broker_refused_is_decided_again_next_tick(env):
    settings, engine = env
    setup(settings, engine)
    degrade(engine)
    sent = Sent()
    sent.fail = ConnectionError("redis down")
    assert [o["status"] for o in tick(engine, settings, sent, now=NOW)] == ["send_failed"]
    sent.fail = None
    assert [o["status"] for o in tick(engine, settings, sent, now=NOW)] == ["started"] and len(sent) == 1
    assert [t.status for t in triggers(engine)] == ["skipped", "started"]


def test_without_examples_nothing_is_sent(env):
    settings, engine = env
    setup(settings, engine, families=("summarization",))
    degrade(engine, "summarization")
    sent = Sent()
    assert [o.get("skip") for o in tick(engine, settings, sent, now=NOW)] == ["no_examples"] and sent == []
