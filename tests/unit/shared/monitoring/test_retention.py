"""Retention: old events and examples go, in batches; what a rollout, optimization or evaluation reads stays."""

import json

from sqlalchemy import func, select

from shared.models import (EvaluationBatch, FeedbackEvent, MetricEvent, OptimizationRun, ProductionExample,
                           PromptBackup, PromptVariant, Rollout)
from shared.monitoring.retention import cleanup
from shared.settings import load_settings

from .conftest import NOW, ago, calls, examples, feedback


def count(engine, table, **where):
    query = select(func.count()).select_from(table)
    for k, v in where.items():
        query = query.where(getattr(table, k) == v)
    with engine.connect() as conn:
        return conn.execute(query).scalar_one()


def old_and_new(engine, variant="baseline"):
    calls(engine, [100] * 7, variant=variant, ts=ago(days=40))
    calls(engine, [100] * 2, variant=variant, ts=ago(days=1))
    feedback(engine, [0.5] * 5, variant=variant, ts=ago(days=31))
    feedback(engine, [0.5] * 2, variant=variant, ts=ago(days=29))
    return examples(engine, 4, ago(days=45), variant=variant) + examples(engine, 1, ago(hours=1), variant=variant)


def test_deletes_what_is_older_than_retention_in_batches(db):
    settings, engine = db
    old_and_new(engine)
    out = cleanup(engine, settings, now=NOW, batch_size=3)
    assert out["deleted"] == {"metric_events": 7, "feedback_events": 5, "production_examples": 4}
    assert out["complete"] is True and out["cutoff"].startswith("2026-10-31T12:00")
    assert (count(engine, MetricEvent), count(engine, FeedbackEvent), count(engine, ProductionExample)) == (2, 2, 1)
    assert cleanup(engine, settings, now=NOW)["deleted"] == {"metric_events": 0, "feedback_events": 0,
                                                             "production_examples": 0}


def test_zero_days_keeps_everything(db):
    settings, engine = db
    old_and_new(engine)
    keep = load_settings(DATABASE_URL=settings.database_url, PROMPTLOOP_RETENTION_DAYS="0")
    assert cleanup(engine, keep, now=NOW)["deleted"] == {}
    assert count(engine, MetricEvent) == 9


def test_a_time_budget_stops_between_batches(db):
    settings, engine = db
    old_and_new(engine)
    out = cleanup(engine, settings, now=NOW, batch_size=2, budget_s=0)
    assert out["complete"] is False and out["deleted"] == {"metric_events": 2}


def variants_and_rollout(engine, status, created_days_ago):
    with engine.begin() as conn:
        ids = [conn.execute(PromptVariant.__table__.insert().values(
            family="entity_extraction", model="m", name=name, template="{}", status=st)).inserted_primary_key[0]
            for name, st in (("baseline", "active"), ("DSPY_A", "rolling_out"))]
        backup = conn.execute(PromptBackup.__table__.insert().values(
            variant_id=ids[0], family="entity_extraction", model="m", name="baseline", template="{}",
            status="active")).inserted_primary_key[0]
        conn.execute(Rollout.__table__.insert().values(
            family="entity_extraction", model="m", open_key="entity_extraction|m", candidate_id=ids[1],
            incumbent_id=ids[0], backup_id=backup, status=status, step=0, percentage=0.1, hold_s=60, version=0,
            step_started_at=ago(days=created_days_ago), created_at=ago(days=created_days_ago)))
    return ids


def test_an_open_rollouts_arms_are_kept_since_it_started(db):
    settings, engine = db
    variants_and_rollout(engine, "paused", created_days_ago=50)
    old_and_new(engine, "baseline")
    old_and_new(engine, "DSPY_A")
    old_and_new(engine, "DSPY_B")  # not an arm: goes
    calls(engine, [100] * 3, family="summarization", ts=ago(days=40))  # other family: goes
    out = cleanup(engine, settings, now=NOW)
    assert out["deleted"] == {"metric_events": 10, "feedback_events": 5, "production_examples": 4}
    assert out["held"]["rollouts"] == [1]
    assert count(engine, MetricEvent, variant="DSPY_A") == 9 and count(engine, MetricEvent, variant="DSPY_B") == 2
    assert count(engine, MetricEvent, family="summarization") == 0


def test_a_finished_rollout_holds_nothing(db):
    settings, engine = db
    variants_and_rollout(engine, "promoted", created_days_ago=50)
    old_and_new(engine, "DSPY_A")
    assert cleanup(engine, settings, now=NOW)["deleted"]["metric_events"] == 7


def test_a_running_optimizations_examples_are_kept(db):
    settings, engine = db
    ids = old_and_new(engine)
    parent = variants_and_rollout(engine, "promoted", 1)[0]
    with engine.begin() as conn:
        conn.execute(OptimizationRun.__table__.insert().values(
            family="entity_extraction", model="m", optimizer="demos", seed=0, status="running", settings="{}",
            train_ids=json.dumps([["production", ids[0]], ["dataset", ids[1]]]),
            val_ids=json.dumps([["production", ids[2]]]), parent_id=parent))
    out = cleanup(engine, settings, now=NOW)
    assert out["deleted"]["production_examples"] == 2 and out["held"]["optimization_runs"] == [1]
    with engine.connect() as conn:
        assert set(conn.scalars(select(ProductionExample.id))) == {ids[0], ids[2], ids[4]}


def test_an_unfinished_evaluation_holds_every_example_but_not_events(db):
    settings, engine = db
    old_and_new(engine)
    with engine.begin() as conn:
        conn.execute(EvaluationBatch.__table__.insert().values(status="running", n_items=4, n_chunks=1, spec="{}"))
    out = cleanup(engine, settings, now=NOW)
    assert out["deleted"] == {"metric_events": 7, "feedback_events": 5, "production_examples": 0}
    assert out["held"]["evaluation_batches"] == [1]
    with engine.begin() as conn:
        conn.execute(EvaluationBatch.__table__.update().values(status="done", finished_at=NOW))
    assert cleanup(engine, settings, now=NOW)["deleted"]["production_examples"] == 4
