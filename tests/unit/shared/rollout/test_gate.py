"""Beat's gate on live events in SQL: promote after the hold when better, roll back when worse, else hold."""

import random
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from shared.models import MetricEvent, PromptVariant
from shared.rollout.gate import check_rollout
from shared.rollout.state import get, start_rollout, transitions

from .conftest import FAMILY


def calls(engine, variant, n, quality, success=1.0, latency=800.0, seed=0):
    rng = random.Random(f"{variant}{seed}")
    now = datetime.now(timezone.utc)
    rows = [{"event_id": str(uuid.uuid4()), "ts": now, "family": FAMILY, "variant": variant, "model": "m",
             "latency_ms": rng.lognormvariate(0, 0.2) * latency, "success": rng.random() < success,
             "quality": float(rng.random() < quality)} for _ in range(n)]
    with engine.begin() as conn:
        conn.execute(MetricEvent.__table__.insert(), rows)


@pytest.fixture
def running(rollout_env):
    settings, engine, ids = rollout_env
    with engine.begin() as conn:
        conn.execute(update(PromptVariant).where(PromptVariant.id == ids["better"]).values(status="validated"))
    return settings, engine, start_rollout(engine, ids["better"], hold_s=600)


def later(seconds):
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)


def test_too_few_calls_hold(running):
    settings, engine, rollout_id = running
    calls(engine, "baseline", 20, 0.5)
    calls(engine, "DSPY_A", 20, 0.9)
    out = check_rollout(engine, settings, rollout_id, now=later(3600))
    assert out["action"] == "hold" and get(engine, rollout_id).percentage == 0.10
    assert "insufficient" in get(engine, rollout_id).last_check


def test_better_waits_for_the_hold_then_promotes_one_step(running):
    settings, engine, rollout_id = running
    calls(engine, "baseline", 400, 0.55)
    calls(engine, "DSPY_A", 400, 0.80)
    out = check_rollout(engine, settings, rollout_id, now=later(60))
    assert out["action"] == "hold" and "step holds" in out["reason"]
    out = check_rollout(engine, settings, rollout_id, now=later(601))
    assert out["action"] == "promote" and get(engine, rollout_id).percentage == 0.25
    # The step that just started holds again: a second check soon after changes nothing.
    assert check_rollout(engine, settings, rollout_id, now=later(30))["action"] == "hold"
    last = transitions(engine, rollout_id)[-1]
    assert last.actor == "beat" and "quality significantly better" in last.reason and last.evidence


def test_worse_rolls_back_at_once(running):
    settings, engine, rollout_id = running
    calls(engine, "baseline", 300, 0.70)
    calls(engine, "DSPY_A", 300, 0.70, success=0.80)
    out = check_rollout(engine, settings, rollout_id, now=later(1))
    assert out["action"] == "rollback" and get(engine, rollout_id).status == "rolled_back"
    assert "success" in transitions(engine, rollout_id)[-1].reason


def test_worse_pauses_when_rollback_on_failure_is_off(running):
    settings, engine, rollout_id = running
    calls(engine, "baseline", 300, 0.70)
    calls(engine, "DSPY_A", 300, 0.40)
    out = check_rollout(engine, settings.model_copy(update={"rollback_on_failure": False}), rollout_id)
    assert out["action"] == "pause" and get(engine, rollout_id).status == "paused"
    assert check_rollout(engine, settings, rollout_id)["action"] == "none"  # paused: beat leaves it alone
