"""The routing state in Redis mirrors SQL, is rewritten only when it changes, and survives a flush."""

import json

import fakeredis
from promptloop_client import wire
from sqlalchemy import update

from shared.models import PromptVariant
from shared.rollout.publish import publish, routes
from shared.rollout.state import get, start_rollout, transition

from .conftest import FAMILY


def test_routes_carry_incumbent_candidate_and_share(rollout_env):
    settings, engine, ids = rollout_env
    assert routes(engine)[FAMILY]["m"]["candidate"] is None
    with engine.begin() as conn:
        conn.execute(update(PromptVariant).where(PromptVariant.id == ids["better"]).values(status="validated"))
    rollout_id = start_rollout(engine, ids["better"], hold_s=0)
    route = routes(engine)[FAMILY]["m"]
    assert route["incumbent"]["name"] == "baseline" and route["candidate"]["name"] == "DSPY_A"
    assert route["percentage"] == 0.10 and route["salt"] == f"rollout-{rollout_id}"
    assert route["candidate"]["template"]["lightrag"]  # what the client renders for LightRAG

    r = redis = fakeredis.FakeRedis()
    assert publish(engine, redis) is True
    assert publish(engine, redis) is False  # unchanged: nothing written, producers re-read nothing
    assert int(r.get(wire.ROLLOUT_VERSION_KEY)) == 1
    state = json.loads(r.get(wire.ROLLOUT_STATE_KEY))
    assert state["version"] == 1 and state["routes"] == routes(engine)

    transition(engine, rollout_id, get(engine, rollout_id).version, "rollback", actor="t", reason="worse")
    assert publish(engine, redis) is True
    assert json.loads(r.get(wire.ROLLOUT_STATE_KEY))["routes"][FAMILY]["m"]["candidate"] is None

    r.flushall()  # Redis restarted empty: the next publish puts everything back
    assert publish(engine, redis) is True
    assert json.loads(r.get(wire.ROLLOUT_STATE_KEY))["routes"] == routes(engine)
