"""The seed's replacement pipeline: identify candidates, validate them in recorded stages, deploy.

``validate_candidate`` runs three stages and stores each (``candidate_validations``):

1. invariants: the candidate keeps every placeholder LightRAG fills (``check_invariants``);
2. paired comparison: candidate and incumbent score the same held-out examples (never the ones the
   optimization searched or validated on); a paired bootstrap gives the confidence that the candidate
   is better, which must reach ``min_confidence_for_deployment``; LightRAG's parser must accept the
   candidate's outputs at least as often as the incumbent's;
3. regressions: no metric falls more than ``validation_tolerance`` below the incumbent's.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine, select, update

from ..evaluation import ExampleRef, collect_production_data, dataset_examples
from ..families.template import PromptTemplate
from ..models import CandidateValidation, EvaluationScore, OptimizationRun, PromptVariant
from ..optimize.promptset import check_invariants
from ..optimize.scoring import Runner, in_process, score_variant
from ..settings import Settings
from .state import RolloutError, active_row, start_rollout
from .stats import paired_confidence

#: Metrics where less is better; every other metric is better higher.
LOWER_IS_BETTER = {"hallucination_rate"}
PRIMARY = "overall"


@dataclass(frozen=True)
class Candidate:
    """A variant that beat the incumbent on the examples both were scored on."""

    variant_id: int
    family: str
    model: str
    name: str
    incumbent_id: int
    n_shared: int
    delta: float  # candidate mean - incumbent mean of PRIMARY over the shared examples


def _per_example(conn, variant_id: int) -> dict[tuple[str, int], float]:
    """PRIMARY per example for a variant's latest score on it (a failed call counts 0)."""
    out = {}
    for src, ex, ok, metrics in conn.execute(
            select(EvaluationScore.example_source, EvaluationScore.example_id, EvaluationScore.ok,
                   EvaluationScore.metrics).where(EvaluationScore.variant_id == variant_id)
            .order_by(EvaluationScore.id)):
        out[(src, ex)] = float(json.loads(metrics).get(PRIMARY, 0.0)) if ok and metrics else 0.0
    return out


def identify_replacement_candidates(engine: Engine, days_back: float = 7) -> list[Candidate]:
    """Candidates made in the last ``days_back`` days that beat their incumbent on shared examples."""
    since = datetime.now(timezone.utc) - timedelta(days=days_back)
    found = []
    with engine.connect() as conn:
        rows = conn.execute(select(PromptVariant).where(
            PromptVariant.status == "candidate", PromptVariant.created_at >= since)).all()
        for cand in rows:
            inc = active_row(conn, cand.family, cand.model)
            if inc is None:
                continue
            a, b = _per_example(conn, cand.id), _per_example(conn, inc.id)
            shared = sorted(set(a) & set(b))
            if not shared:
                continue
            delta = sum(a[k] - b[k] for k in shared) / len(shared)
            if delta > 0:
                found.append(Candidate(cand.id, cand.family, cand.model, cand.name, inc.id, len(shared), delta))
    return sorted(found, key=lambda c: -c.delta)


def held_out(engine: Engine, candidate_id: int, family: str, model: str, n: int) -> list[ExampleRef]:
    """Up to ``n`` examples of the family none of the candidate's optimization runs looked at."""
    with engine.connect() as conn:
        used = set()
        for train, val in conn.execute(select(OptimizationRun.train_ids, OptimizationRun.val_ids).where(
                OptimizationRun.best_variant_id == candidate_id)):
            used |= {tuple(x) for x in json.loads(train) + json.loads(val)}
    pool = dataset_examples(engine, families=[family]) + collect_production_data(
        engine, hours_back=24 * 30, models=[model], families=[family])
    pool = [r for r in pool if (r.source, r.id) not in used]
    random.Random(candidate_id).shuffle(pool)
    return pool[:n]


def _stage(name: str, passed: bool, reason: str, **details) -> dict:
    return {"stage": name, "passed": passed, "reason": reason, **details}


def validate_candidate(engine: Engine, settings: Settings, candidate_id: int, runner: Runner = in_process) -> dict:
    """Run the stages, store them, and mark the candidate ``validated`` or ``rejected``."""
    with engine.connect() as conn:
        cand = conn.execute(select(PromptVariant).where(PromptVariant.id == candidate_id)).first()
        if cand is None:
            raise RolloutError(f"no variant {candidate_id}")
        if cand.status not in ("candidate", "validated", "rejected"):
            raise RolloutError(f"variant {candidate_id} ({cand.name}) is {cand.status}, not a candidate")
        inc = active_row(conn, cand.family, cand.model)
    if inc is None:
        raise RolloutError(f"{cand.family} x {cand.model} has no active variant to compare with")
    stages = [_invariants(cand, inc)]
    confidence = None
    if stages[-1]["passed"]:
        compared, confidence = _compare(engine, settings, cand, inc, runner)
        stages += compared
    passed = all(s["passed"] for s in stages)
    with engine.begin() as conn:
        validation_id = conn.execute(CandidateValidation.__table__.insert().values(
            candidate_id=cand.id, incumbent_id=inc.id, passed=passed, confidence=confidence,
            stages=json.dumps(stages))).inserted_primary_key[0]
        # Only while it is still a candidate: a second copy of a long validation (a job redelivered while
        # the first still runs) must not turn a variant that meanwhile rolled out back into a candidate.
        marked = conn.execute(update(PromptVariant).where(PromptVariant.id == cand.id,
                                                          PromptVariant.status.in_(("candidate", "validated", "rejected")))
                              .values(status="validated" if passed else "rejected"))
        if marked.rowcount != 1:
            raise RolloutError(f"variant {candidate_id} ({cand.name}) left the candidate states while it was validated")
    return {"validation_id": validation_id, "candidate_id": cand.id, "incumbent_id": inc.id, "passed": passed,
            "confidence": confidence, "stages": stages}


def _invariants(cand, inc) -> dict:
    reasons = check_invariants(cand.family, PromptTemplate.from_json(inc.template),
                               PromptTemplate.from_json(cand.template))
    return _stage("invariants", not reasons, "; ".join(reasons) or "every placeholder LightRAG fills is kept")


def _compare(engine, settings, cand, inc, runner) -> tuple[list[dict], float | None]:
    refs = held_out(engine, cand.id, cand.family, cand.model, settings.validation_examples)
    if len(refs) < 2:
        return [_stage("paired", False, f"only {len(refs)} held-out {cand.family} examples: import a dataset "
                                        "or collect production examples first")], None
    c = score_variant(engine, settings, cand.id, refs, runner)
    i = score_variant(engine, settings, inc.id, refs, runner)
    cs = [(m or {}).get(PRIMARY, 0.0) for m in c.metrics]
    is_ = [(m or {}).get(PRIMARY, 0.0) for m in i.metrics]
    confidence = paired_confidence(cs, is_, seed=cand.id)
    need = settings.min_confidence_for_deployment
    stages = [_stage("paired", confidence >= need,
                     f"confidence {confidence:.3f} that it beats {inc.name} on {len(refs)} held-out examples "
                     f"(needs {need:.2f})", n=len(refs), candidate=c.means(), incumbent=i.means(),
                     lm_calls=c.lm_calls + i.lm_calls)]
    cm, im = c.means(), i.means()
    if "format_compliance" in im:
        ok = cm.get("format_compliance", 0.0) >= im["format_compliance"]
        stages.append(_stage("parser", ok, f"LightRAG's parser accepts {cm.get('format_compliance', 0):.2f} of its "
                                           f"outputs, the incumbent's {im['format_compliance']:.2f}"))
    tol = settings.validation_tolerance
    worse = []
    for metric, before in im.items():
        if metric in ("n", "n_failed") or metric not in cm:
            continue
        drop = (cm[metric] - before) if metric in LOWER_IS_BETTER else (before - cm[metric])
        if drop > tol:
            worse.append(f"{metric} {before:.3f} -> {cm[metric]:.3f}")
    stages.append(_stage("regressions", not worse, "; ".join(worse) + f" (tolerance {tol})" if worse
                         else f"no metric worse by more than {tol}"))
    return stages, confidence


def latest_validation(engine: Engine, candidate_id: int) -> CandidateValidation | None:
    from sqlalchemy.orm import Session

    with Session(engine, expire_on_commit=False) as session:
        return session.scalars(select(CandidateValidation).where(CandidateValidation.candidate_id == candidate_id)
                               .order_by(CandidateValidation.id.desc())).first()


def deployed_outcome(engine: Engine, candidate_id: int) -> dict | None:
    """What an earlier attempt of validate-and-deploy did, when it got as far as a rollout of the
    candidate (a redelivered job after a kill between deploying and acknowledging); None otherwise.

    The latest rollout is reported with its status: one rolled back since is not started again (its
    candidate is ``rolled_back``, which ``start_rollout`` refuses)."""
    from ..models import Rollout

    with engine.connect() as conn:
        rollout = conn.execute(select(Rollout.id, Rollout.status).where(Rollout.candidate_id == candidate_id)
                               .order_by(Rollout.id.desc())).first()
    validation = latest_validation(engine, candidate_id)
    if rollout is None or validation is None:
        return None
    return {"validation_id": validation.id, "candidate_id": candidate_id, "incumbent_id": validation.incumbent_id,
            "passed": validation.passed, "confidence": validation.confidence,
            "stages": json.loads(validation.stages), "rollout_id": rollout.id, "rollout_status": rollout.status}


def deploy_candidate(engine: Engine, settings: Settings, candidate_id: int, rollout_percentage: float = 0.1,
                     hold_s: float | None = None, actor: str = "deploy") -> int:
    """Start the rollout of a validated candidate (backing up the incumbent); the rollout id."""
    validation = latest_validation(engine, candidate_id)
    if validation is None or not validation.passed:
        raise RolloutError(f"variant {candidate_id} has not passed validation: run validate_candidate first")
    need = settings.min_confidence_for_deployment
    if validation.confidence is None or validation.confidence < need:
        raise RolloutError(f"validation confidence {validation.confidence} is below {need}")
    return start_rollout(engine, candidate_id, percentage=rollout_percentage,
                         hold_s=settings.rollout_hold_s if hold_s is None else hold_s,
                         validation_id=validation.id, actor=actor,
                         reason=f"validated with confidence {validation.confidence:.3f}")


def candidate_dict(c: Candidate) -> dict:
    return asdict(c)
