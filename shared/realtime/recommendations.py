"""Validated candidates waiting for a person: list, deploy, dismiss (``promptloop recommendations``)."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from ..models import CandidateValidation, PromptVariant, Recommendation
from ..rollout.state import RolloutError, active_row
from ..settings import Settings


def list_recommendations(engine: Engine, status: str | None = "pending", limit: int = 50) -> list[dict]:
    """Newest first; ``status=None`` lists every state (validating, pending, deployed, dismissed, rejected)."""
    query = (select(Recommendation, PromptVariant.name)
             .join(PromptVariant, PromptVariant.id == Recommendation.candidate_id)
             .order_by(Recommendation.id.desc()).limit(limit))
    if status:
        query = query.where(Recommendation.status == status)
    with Session(engine) as session:
        rows = session.execute(query).all()
    keys = ("id", "candidate_id", "family", "model", "status", "confidence", "reason", "rollout_id", "validation_id",
            "created_at", "decided_at")
    return [{**{k: getattr(r.Recommendation, k) for k in keys}, "name": r.name} for r in rows]


def _pending(engine: Engine, rec_id: int) -> Recommendation:
    with Session(engine, expire_on_commit=False) as session:
        rec = session.get(Recommendation, rec_id)
    if rec is None:
        raise RolloutError(f"no recommendation {rec_id}")
    if rec.status != "pending":
        raise RolloutError(f"recommendation {rec_id} is {rec.status}, not pending")
    return rec


def deploy_recommendation(engine: Engine, settings: Settings, rec_id: int, hold_s: float | None = None,
                          actor: str = "recommendations") -> int:
    """Start the rollout of a pending recommendation's candidate; the rollout id.

    Refused when the variant serving its family x model changed since the validation (the comparison
    no longer holds: ``promptloop rollout start`` validates it again).
    """
    from ..rollout.replacement import deploy_candidate

    rec = _pending(engine, rec_id)
    with engine.connect() as conn:
        compared = conn.execute(select(CandidateValidation.incumbent_id).where(
            CandidateValidation.id == rec.validation_id)).scalar()
        active = active_row(conn, rec.family, rec.model)
    if compared is not None and active is not None and active.id != compared:
        raise RolloutError(f"{rec.family} x {rec.model} is served by {active.name} now, not the variant the candidate "
                           f"was validated against: run `promptloop rollout start {rec.candidate_id}` to validate "
                           "again")
    rollout_id = deploy_candidate(engine, settings, rec.candidate_id, hold_s=hold_s, actor=actor)
    with engine.begin() as conn:
        conn.execute(update(Recommendation).where(Recommendation.id == rec_id).values(
            status="deployed", rollout_id=rollout_id, decided_at=datetime.now(timezone.utc),
            reason=f"{rec.reason}; deployed by {actor}"))
    return rollout_id


def dismiss_recommendation(engine: Engine, rec_id: int, reason: str) -> None:
    rec = _pending(engine, rec_id)
    with engine.begin() as conn:
        done = conn.execute(update(Recommendation)
                            .where(Recommendation.id == rec_id, Recommendation.status == "pending")
                            .values(status="dismissed", decided_at=datetime.now(timezone.utc),
                                    reason=f"{rec.reason}; dismissed: {reason}"))
        if done.rowcount != 1:
            raise RolloutError(f"recommendation {rec_id} changed meanwhile")
