"""Publish the routing state producers read (``promptloop_client.wire``'s rollout keys) from SQL.

SQL is the truth; Redis holds a copy. ``publish`` rebuilds the whole state from the database and
writes it only when it differs from what Redis holds, so beat can call it on every tick: a Redis
restarted empty gets its routes back within one tick, and producers keep their last copy meanwhile.
"""

from __future__ import annotations

import json

import redis
from promptloop_client import wire
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, aliased

from ..models import PromptVariant, Rollout
from .state import OPEN


def _variant(row: PromptVariant) -> dict:
    return {"name": row.name, "template": json.loads(row.template)}


def routes(engine: Engine) -> dict:
    """{family: {model: route}} for every family x model with an active variant."""
    out: dict = {}
    with Session(engine) as session:
        for v in session.scalars(select(PromptVariant).where(PromptVariant.status == "active")
                                 .order_by(PromptVariant.id)):
            out.setdefault(v.family, {})[v.model] = {"incumbent": _variant(v), "candidate": None,
                                                     "percentage": 0.0, "salt": ""}
        cand = aliased(PromptVariant)
        for r, c in session.execute(select(Rollout, cand).join(cand, cand.id == Rollout.candidate_id)
                                    .where(Rollout.status.in_(OPEN))):
            route = out.get(r.family, {}).get(r.model)
            if route is None:
                continue  # no incumbent to fall back on: never route to a candidate alone
            route.update(candidate=_variant(c), percentage=r.percentage, salt=f"rollout-{r.id}")
    return out


def publish(engine: Engine, conn: redis.Redis, attempts: int = 5) -> bool:
    """Write the routes to Redis if they changed; True when something was written."""
    for _ in range(attempts):
        wanted = routes(engine)
        with conn.pipeline() as pipe:
            try:
                pipe.watch(wire.ROLLOUT_VERSION_KEY, wire.ROLLOUT_STATE_KEY)
                current = pipe.get(wire.ROLLOUT_STATE_KEY)
                if current is not None:
                    try:
                        if json.loads(current).get("routes") == wanted:
                            return False
                    except (ValueError, AttributeError):
                        pass  # unreadable: overwrite it
                version = int(pipe.get(wire.ROLLOUT_VERSION_KEY) or 0) + 1
                pipe.multi()
                pipe.set(wire.ROLLOUT_STATE_KEY, json.dumps({"version": version, "routes": wanted}))
                pipe.set(wire.ROLLOUT_VERSION_KEY, version)
                pipe.execute()
                return True
            except redis.WatchError:
                continue  # another publisher wrote in between: read the database again
    raise RuntimeError(f"rollout state kept changing under {attempts} publish attempts")
