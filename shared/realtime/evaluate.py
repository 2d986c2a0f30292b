"""``promptloop evaluate --optimize [--deploy]``: act on an evaluation batch's results.

For each family x model the batch scored: a candidate that beat the active variant on the batch's
examples is validated (then deployed with ``--deploy``, else kept as a recommendation); where none did,
an optimization is started as a ``manual`` trigger (no cooldown, but never beside an open optimization
or rollout of the same family x model, and within ``max_concurrent_optimizations``), and its candidate is
followed up the same way. ``deploy`` travels in the trigger's evidence, so the follow-up on the workers
deploys or recommends as the command asked, whatever ``DSPY_AUTO_OPTIMIZE`` says.
"""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from ..models import EvaluationBatch, EvaluationResult, OptimizationRun, PromptVariant, Recommendation
from ..rollout.replacement import identify_replacement_candidates
from ..settings import Settings
from .followup import follow_up_candidate
from .optimizer import decide
from .triggers import Incident

FINAL = ("pending", "deployed", "rejected", "dismissed")


def latest_batch(engine: Engine) -> int | None:
    with engine.connect() as conn:
        return conn.execute(select(func.max(EvaluationBatch.id)).where(EvaluationBatch.status == "done")).scalar()


def _active_scores(engine: Engine, batch_id: int) -> dict[tuple[str, str], float | None]:
    with engine.connect() as conn:
        rows = conn.execute(select(EvaluationResult.family, EvaluationResult.model, EvaluationResult.metric,
                                   EvaluationResult.mean, PromptVariant.status)
                            .join(PromptVariant, PromptVariant.id == EvaluationResult.variant_id)
                            .where(EvaluationResult.batch_id == batch_id)).all()
    out: dict[tuple[str, str], float | None] = {}
    for family, model, metric, mean, status in rows:
        out.setdefault((family, model), None)
        if status == "active" and metric == "overall":
            out[(family, model)] = mean
    return out


def act_on_batch(engine: Engine, settings: Settings, batch_id: int, deploy: bool, send_optimization,
                 send_validation) -> list[dict]:
    """Validate or optimize each family x model of the batch; one action dict per pair."""
    pairs = _active_scores(engine, batch_id)
    best = {}
    for c in identify_replacement_candidates(engine):
        best.setdefault((c.family, c.model), c)
    actions, wanted = [], []
    for (family, model), score in sorted(pairs.items()):
        cand = best.get((family, model))
        if cand is not None:
            out = follow_up_candidate(engine, cand.variant_id, deploy, send_validation, f"evaluation batch {batch_id}")
            what = (f"validating {cand.name} (+{cand.delta:.3f} over the active variant)" if out["action"] != "none"
                    else f"{cand.name}: {out['reason']}")
            actions.append({"family": family, "model": model, "kind": "validate", "candidate_id": cand.variant_id,
                            "what": what, "final": out["action"] == "none"})
            continue
        overall = "not scored" if score is None else f"overall {score:.3f}"
        wanted.append(Incident(family, model, "manual",
                               f"evaluate --optimize (batch {batch_id}): no candidate beats the active variant "
                               f"({overall})",
                               {"deploy": deploy, "batch_id": batch_id}))
    for o in decide(engine, settings, send_optimization, wanted):
        what = (f"optimizing (job {o['job_id']})" if o["status"] == "started"
                else f"not optimized: {o.get('reason') if o['status'] == 'skipped' else o['status']}")
        actions.append({"family": o["family"], "model": o["model"], "kind": "optimize", "job_id": o.get("job_id"),
                        "what": what, "final": o["status"] != "started"})
    return actions


def _recommendation(conn, candidate_id: int) -> tuple[bool, str]:
    rec = conn.execute(select(Recommendation.status, Recommendation.reason)
                       .where(Recommendation.candidate_id == candidate_id)).first()
    if rec is None or rec.status not in FINAL:
        return False, "validating"
    return True, f"{rec.status}: {rec.reason}"


def outcomes(engine: Engine, actions: list[dict]) -> list[dict]:
    """Where each action stands: ``final`` once nothing more will happen to it."""
    rows = []
    with engine.connect() as conn:
        for a in actions:
            row = {**a, "result": a["what"]}
            if a["final"]:
                rows.append(row)
                continue
            if a["kind"] == "validate":
                row["final"], row["result"] = _recommendation(conn, a["candidate_id"])
            else:
                run = conn.execute(select(OptimizationRun.id, OptimizationRun.status, OptimizationRun.stop_reason,
                                          OptimizationRun.best_variant_id)
                                   .where(OptimizationRun.job_id == a["job_id"])).first()
                if run is None:
                    row["result"] = "queued"
                elif run.status in ("pending", "running"):
                    row.update(run_id=run.id, result=run.status)
                elif not run.best_variant_id:
                    row.update(run_id=run.id, final=True, result=f"{run.status}: {run.stop_reason}")
                else:
                    row["run_id"] = run.id
                    row["final"], row["result"] = _recommendation(conn, run.best_variant_id)
            rows.append(row)
    return rows

