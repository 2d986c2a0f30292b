"""Reading optimization runs and variants back: history per family x model, variant lookup."""

from __future__ import annotations

import json

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ..models import OptimizationRun, PromptVariant


def run_history(engine: Engine, family: str | None = None, model: str | None = None, limit: int = 20) -> list[dict]:
    """Latest runs first, with their validation objective for the parent and the candidate."""
    query = select(OptimizationRun).order_by(OptimizationRun.id.desc()).limit(limit)
    if family:
        query = query.where(OptimizationRun.family == family)
    if model:
        query = query.where(OptimizationRun.model == model)
    with Session(engine) as session:
        runs = list(session.scalars(query))
        names = dict(session.execute(select(PromptVariant.id, PromptVariant.name).where(
            PromptVariant.id.in_({r.best_variant_id for r in runs if r.best_variant_id}))).all())
        out = []
        for r in runs:
            result = json.loads(r.result or "{}")
            validation = result.get("validation", {})
            search = result.get("search", {})
            out.append({"id": r.id, "family": r.family, "model": r.model, "optimizer": r.optimizer, "status": r.status,
                        "stop_reason": r.stop_reason, "lm_calls": r.lm_calls, "seconds": r.seconds,
                        "created_at": r.created_at,
                        "parent_objective": validation.get("parent_objective", search.get("parent_score")),
                        "candidate_objective": validation.get("candidate_objective", search.get("best_score")),
                        "candidate": names.get(r.best_variant_id)})
        return out


def trends(engine: Engine) -> list[dict]:
    """Per family x model: runs so far, running now, candidates registered, and the latest gain
    (candidate minus parent objective on validation) against the first run's."""
    rows = run_history(engine, limit=10_000)
    out: dict[tuple, dict] = {}
    for r in reversed(rows):  # oldest first
        t = out.setdefault((r["family"], r["model"]), {"family": r["family"], "model": r["model"], "runs": 0,
                                                       "running": 0, "candidates": 0, "first_gain": None,
                                                       "latest_gain": None, "latest": None})
        t["runs"] += 1
        t["running"] += r["status"] in ("pending", "running")
        t["candidates"] += bool(r["candidate"])
        if r["candidate_objective"] is not None and r["parent_objective"] is not None:
            gain = r["candidate_objective"] - r["parent_objective"]
            t["first_gain"] = gain if t["first_gain"] is None else t["first_gain"]
            t["latest_gain"] = gain
        t["latest"] = r["candidate"] or r["status"]
    return sorted(out.values(), key=lambda t: (t["family"], t["model"]))


def find_variant(engine: Engine, ref: str) -> PromptVariant:
    """A variant by id or ``family/model/name``; ``LookupError`` saying what was not found."""
    with Session(engine, expire_on_commit=False) as session:
        if ref.isdecimal() and ref.isascii():
            if not 0 < int(ref) < 2 ** 63:
                raise LookupError(f"no variant {ref!r} (see `promptloop variants list`)")
            variant = session.get(PromptVariant, int(ref))
        else:
            parts = ref.split("/")
            if len(parts) != 3:
                raise LookupError(f"{ref!r}: give a variant id or FAMILY/MODEL/NAME (see `promptloop variants list`)")
            variant = session.scalars(select(PromptVariant).where(
                PromptVariant.family == parts[0], PromptVariant.model == parts[1], PromptVariant.name == parts[2])).first()
        if variant is None:
            raise LookupError(f"no variant {ref!r} (see `promptloop variants list`)")
        return variant


def list_variants(engine: Engine, family: str | None = None, model: str | None = None,
                  include_trials: bool = False) -> list[PromptVariant]:
    query = select(PromptVariant).order_by(PromptVariant.family, PromptVariant.model, PromptVariant.id)
    if family:
        query = query.where(PromptVariant.family == family)
    if model:
        query = query.where(PromptVariant.model == model)
    if not include_trials:
        query = query.where(PromptVariant.status != "trial")
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(query))
