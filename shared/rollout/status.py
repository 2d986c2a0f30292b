"""Rollouts as people read them: ``promptloop rollout status`` and ``promptloop status``."""

from __future__ import annotations

import json

from sqlalchemy import Engine, select

from ..models import PromptVariant, Rollout
from .state import get, transitions


def _names(engine: Engine, ids) -> dict[int, str]:
    with engine.connect() as conn:
        return dict(conn.execute(select(PromptVariant.id, PromptVariant.name).where(PromptVariant.id.in_(list(ids)))).all())


def _last_check(text: str | None) -> str:
    if not text:
        return "not checked yet"
    check = json.loads(text)
    return f"{check.get('decision')}: {check.get('reason')}"


def rollout_table(engine: Engine, limit: int = 20) -> list[dict]:
    """The newest rollouts, open ones first."""
    with engine.connect() as conn:
        rows = conn.execute(select(Rollout).order_by(Rollout.finished_at.is_not(None), Rollout.id.desc())
                            .limit(limit)).all()
    names = _names(engine, {r.candidate_id for r in rows} | {r.incumbent_id for r in rows})
    return [{"id": r.id, "family": r.family, "model": r.model, "candidate": names.get(r.candidate_id, "?"),
             "incumbent": names.get(r.incumbent_id, "?"), "status": r.status, "percentage": r.percentage,
             "last_check": _last_check(r.last_check)} for r in rows]


def describe(engine: Engine, rollout_id: int) -> dict:
    r = get(engine, rollout_id)
    names = _names(engine, {r.candidate_id, r.incumbent_id})
    return {"id": r.id, "family": r.family, "model": r.model, "candidate": names[r.candidate_id],
            "incumbent": names[r.incumbent_id], "status": r.status, "percentage": r.percentage,
            "last_check": _last_check(r.last_check),
            "transitions": [{"version": t.version, "at": t.created_at.isoformat(timespec="seconds"),
                             "action": t.action, "from": f"{(t.from_percentage or 0):.0%}",
                             "to": f"{t.to_percentage:.0%}", "actor": t.actor, "reason": t.reason}
                            for t in transitions(engine, rollout_id)]}
