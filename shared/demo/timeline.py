"""What happened, in order, read back from SQL: alerts, triggers, optimizations, validations, rollouts."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from sqlalchemy import Engine, select

from ..models import (Alert, CandidateValidation, OptimizationRun, OptimizationTrigger, PromptVariant,
                      RolloutTransition)


def _utc(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def timeline(engine: Engine) -> list[tuple[datetime, str, str]]:
    """(when, what, detail) for everything the loop did, oldest first."""
    out: list[tuple[datetime, str, str]] = []
    with engine.connect() as conn:
        names = dict(conn.execute(select(PromptVariant.id, PromptVariant.name)).all())
        for a in conn.execute(select(Alert)):
            out.append((_utc(a.fired_at), "alert fired", a.message))
            if a.resolved_at:
                out.append((_utc(a.resolved_at), "alert resolved", a.message.split(":")[0]))
        for t in conn.execute(select(OptimizationTrigger).where(OptimizationTrigger.status == "started")):
            out.append((_utc(t.created_at), f"optimization triggered ({t.kind})", t.reason))
        for r in conn.execute(select(OptimizationRun)):
            out.append((_utc(r.created_at), "optimization started", f"run {r.id}: {r.family} x {r.model}, {r.optimizer}"))
            if r.finished_at:
                made = f"candidate {names.get(r.best_variant_id)}" if r.best_variant_id else "no candidate"
                out.append((_utc(r.finished_at), "optimization finished",
                            f"run {r.id}: {made}; {r.lm_calls} LM calls ({r.cached_calls} cached)"))
        for v in conn.execute(select(CandidateValidation)):
            stages = ", ".join(f"{s['stage']} {'pass' if s['passed'] else 'FAIL'}" for s in json.loads(v.stages))
            conf = f"confidence {v.confidence:.3f}; " if v.confidence is not None else ""
            out.append((_utc(v.created_at), "validated" if v.passed else "rejected",
                        f"{names.get(v.candidate_id)} vs {names.get(v.incumbent_id)}: {conf}{stages}"))
        for t in conn.execute(select(RolloutTransition).order_by(RolloutTransition.id)):
            share = f"{(t.from_percentage or 0):.0%} -> {t.to_percentage:.0%}"
            out.append((_utc(t.created_at), f"rollout {t.rollout_id} {t.action}", f"{share} by {t.actor}: {t.reason}"))
    return sorted(out, key=lambda row: row[0])
