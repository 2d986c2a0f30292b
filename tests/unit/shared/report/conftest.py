"""Seeded SQLite databases for the report: an hour of metric events for baseline and DSPY_A, a rollout
10 -> 25 -> 50 % then rolled back, two optimization runs with trials; and an empty migrated one."""

import json
import random
import shutil
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from shared.db import make_engine
from shared.evaluation import register_baselines
from shared.families import get_family
from shared.migrate import upgrade
from shared.models import (
    MetricEvent, OptimizationRun, OptimizationTrial, PromptVariant, Rollout, RolloutTransition,
)
from shared.optimize.promptset import with_guidance
from shared.optimize.variants import register_candidate
from shared.rollout.state import start_rollout, transition

FAMILY = "entity_extraction"
ROLLBACK_REASON = "success rate significantly worse (0.81 vs 0.97)"
START = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)


def seed_events(engine, n_per_variant=300):
    rng = random.Random(7)
    rows = []
    for variant, quality, latency in (("baseline", 0.6, 900.0), ("DSPY_A", 0.75, 700.0)):
        for i in range(n_per_variant):
            rows.append({"event_id": str(uuid.uuid4()), "ts": START + timedelta(seconds=3600 * i / n_per_variant),
                         "family": FAMILY, "variant": variant, "model": "m", "success": rng.random() < 0.95,
                         "latency_ms": rng.lognormvariate(0, 0.2) * latency,
                         "quality": float(rng.random() < quality) if i % 3 else None})
    with engine.begin() as conn:
        conn.execute(MetricEvent.__table__.insert(), rows)


def seed_rollout(engine, candidate_id) -> int:
    with engine.begin() as conn:
        conn.execute(update(PromptVariant).where(PromptVariant.id == candidate_id).values(status="validated"))
    rollout_id = start_rollout(engine, candidate_id, hold_s=600)
    transition(engine, rollout_id, 1, "promote", actor="beat", reason="quality significantly better, step 1")
    transition(engine, rollout_id, 2, "promote", actor="beat", reason="quality significantly better, step 2")
    transition(engine, rollout_id, 3, "rollback", actor="beat", reason=ROLLBACK_REASON)
    with engine.begin() as conn:  # spread the transitions over the hour the events cover
        for version, minutes in ((1, 5), (2, 20), (3, 35), (4, 50)):
            conn.execute(update(RolloutTransition).where(RolloutTransition.version == version)
                         .values(created_at=START + timedelta(minutes=minutes)))
        conn.execute(update(Rollout).values(finished_at=START + timedelta(minutes=50)))
    return rollout_id


def seed_optimizations(engine, parent_id, candidate_id):
    with engine.begin() as conn:
        for k, (parent, cand) in enumerate(((0.52, 0.61), (0.61, 0.66))):
            run_id = conn.execute(OptimizationRun.__table__.insert().values(
                job_id=f"job-{k}", family=FAMILY, model="m", optimizer="demos", seed=k, status="done",
                settings="{}", train_ids="[]", val_ids="[]", parent_id=parent_id, best_variant_id=candidate_id,
                lm_calls=40, seconds=12.5, created_at=START + timedelta(minutes=10 * k),
                result=json.dumps({"validation": {"parent_objective": parent, "candidate_objective": cand}}),
            )).inserted_primary_key[0]
            conn.execute(OptimizationTrial.__table__.insert(), [
                {"run_id": run_id, "trial": t, "variant_id": candidate_id, "config": "{}", "score": 0.4 + 0.04 * t,
                 "metrics": "{}", "lm_calls": 4} for t in range(6)])


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("db") / "empty.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture
def empty_engine(empty_db, tmp_path):
    path = tmp_path / "e.db"
    shutil.copy(empty_db, path)
    engine = make_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()


def seed_all(engine) -> int:
    """Everything above in a migrated database; the rollout's id."""
    register_baselines(engine, ["m"], [FAMILY])
    with engine.begin() as conn:
        baseline = conn.execute(PromptVariant.__table__.select().where(PromptVariant.family == FAMILY)).first().id
        candidate = register_candidate(conn, FAMILY, "m", with_guidance(FAMILY, get_family(FAMILY).baseline(),
                                                                        "Be careful."), baseline)
    seed_events(engine)
    rollout_id = seed_rollout(engine, candidate)
    seed_optimizations(engine, baseline, candidate)
    return rollout_id


@pytest.fixture
def seeded(empty_engine):
    """(engine, rollout_id) with everything above, on SQLite."""
    return empty_engine, seed_all(empty_engine)
