"""Rollout transitions: the steps in order, compare-and-set, backups restored, one open per family x model."""

import pytest
from sqlalchemy import select, update

from shared.models import PromptVariant
from shared.rollout.state import (STEPS, RolloutConflict, RolloutError, get, start_rollout, transition,
                                  transitions)

from .conftest import FAMILY


def validated(engine, *ids):
    with engine.begin() as conn:
        conn.execute(update(PromptVariant).where(PromptVariant.id.in_(ids)).values(status="validated"))


def statuses(engine):
    with engine.connect() as conn:
        return dict(conn.execute(select(PromptVariant.id, PromptVariant.status)).all())


@pytest.fixture
def rollout(rollout_env):
    settings, engine, ids = rollout_env
    validated(engine, ids["better"], ids["same"])
    return engine, ids, start_rollout(engine, ids["better"], hold_s=0)


def step(engine, rollout_id, action="promote", reason="test"):
    return transition(engine, rollout_id, get(engine, rollout_id).version, action, actor="test", reason=reason)


def test_promotion_walks_every_step_then_makes_the_candidate_active(rollout):
    engine, ids, rollout_id = rollout
    seen = [get(engine, rollout_id).percentage]
    while get(engine, rollout_id).status == "running":
        seen.append(step(engine, rollout_id).percentage)
    assert seen == list(STEPS)
    assert get(engine, rollout_id).status == "promoted"
    assert statuses(engine)[ids["better"]] == "active" and statuses(engine)[ids["baseline"]] == "retired"
    assert [t.version for t in transitions(engine, rollout_id)] == [1, 2, 3, 4, 5]
    with pytest.raises(RolloutError, match="nothing more can happen"):
        step(engine, rollout_id)


def test_a_stale_version_changes_nothing(rollout):
    engine, ids, rollout_id = rollout
    version = get(engine, rollout_id).version
    transition(engine, rollout_id, version, "promote", actor="beat-1", reason="better")
    with pytest.raises(RolloutConflict):
        transition(engine, rollout_id, version, "promote", actor="beat-2", reason="better")
    assert get(engine, rollout_id).percentage == STEPS[1]
    assert len(transitions(engine, rollout_id)) == 2


def test_rollback_restores_the_backed_up_incumbent(rollout):
    engine, ids, rollout_id = rollout
    with engine.begin() as conn:  # whatever happened to the incumbent's row meanwhile
        original = conn.execute(select(PromptVariant.template).where(PromptVariant.id == ids["baseline"])).scalar_one()
        conn.execute(update(PromptVariant).where(PromptVariant.id == ids["baseline"])
                     .values(template='{"system": "", "user": "tampered"}', status="retired"))
    r = step(engine, rollout_id, "rollback", reason="quality fell")
    assert (r.status, r.percentage, r.open_key) == ("rolled_back", 0.0, None)
    with engine.connect() as conn:
        row = conn.execute(select(PromptVariant.template, PromptVariant.status)
                           .where(PromptVariant.id == ids["baseline"])).one()
    assert tuple(row) == (original, "active")
    assert statuses(engine)[ids["better"]] == "rolled_back"
    assert transitions(engine, rollout_id)[-1].reason == "quality fell"


def test_one_open_rollout_per_family_and_model(rollout):
    engine, ids, rollout_id = rollout
    with pytest.raises(RolloutError, match=f"rollout {rollout_id} of {FAMILY} x m is still open"):
        start_rollout(engine, ids["same"], hold_s=0)
    step(engine, rollout_id, "rollback", reason="make room")
    assert start_rollout(engine, ids["same"], hold_s=0) != rollout_id


def test_pause_resume_and_refusals_say_why(rollout):
    engine, ids, rollout_id = rollout
    assert step(engine, rollout_id, "pause").status == "paused"
    with pytest.raises(RolloutError, match="already paused"):
        step(engine, rollout_id, "pause")
    assert step(engine, rollout_id, "resume").status == "running"
    with pytest.raises(RolloutError, match="say why"):
        step(engine, rollout_id, "promote", reason=" ")
    with pytest.raises(RolloutError, match="unknown action"):
        step(engine, rollout_id, "skip")
    with pytest.raises(RolloutError, match="starts at one of"):
        start_rollout(engine, ids["same"], percentage=0.3, hold_s=0)


def test_only_a_validated_candidate_is_deployed(rollout_env):
    settings, engine, ids = rollout_env
    with pytest.raises(RolloutError, match="only a validated candidate"):
        start_rollout(engine, ids["same"], hold_s=0)
