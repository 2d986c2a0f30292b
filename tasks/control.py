"""Control tasks: short scheduling decisions on their own queue, never behind evaluation work."""

from __future__ import annotations

import logging

from shared.db import get_engine
from shared.rediscon import get_redis
from shared.settings import get_settings
from workers.app import app
from workers.queues import Queue

log = logging.getLogger(__name__)


@app.task(name="tasks.control.check_rollouts", queue=Queue.CONTROL.value, ignore_result=False)
def check_rollouts() -> list[dict]:
    """Judge every running rollout (promote, roll back or hold), then republish the routing state.

    Safe to run twice at once (two beats, a retry): each action is a compare-and-set on the rollout's
    version. Publishing rebuilds Redis's copy from SQL, so a Redis restarted empty is repaired here.
    """
    from shared.rollout.gate import check_rollout
    from shared.rollout.publish import publish
    from shared.rollout.state import open_rollouts

    engine, settings = get_engine(), get_settings()
    done = []
    for rollout in open_rollouts(engine):
        outcome = check_rollout(engine, settings, rollout.id)
        if outcome["action"] not in ("hold", "none"):
            log.warning("rollout %s: %s (%s)", rollout.id, outcome["action"], outcome["reason"])
        done.append(outcome)
    publish(engine, get_redis())
    return done


@app.task(name="tasks.control.publish_rollouts", queue=Queue.CONTROL.value, ignore_result=False)
def publish_rollouts() -> bool:
    """Republish the routing state now (after an operator's change)."""
    from shared.rollout.publish import publish

    return publish(get_engine(), get_redis())
