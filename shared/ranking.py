"""Ranking variants by their latest evaluation: plain SQL, so ``promptloop status`` stays quick
(it never imports DSPy or LightRAG)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine, func, select

from .models import EvaluationResult, PromptVariant


def get_top_performing_variants(engine: Engine, days_back: float = 7, metric: str = "overall",
                                family: str | None = None, limit: int = 10) -> list[dict]:
    """Variants ranked by ``score``: ``metric`` in their latest evaluation of the last ``days_back`` days.

    ``score`` is the mean over every example of the batch with failures counted as 0 (``mean * n /
    (n + n_failed)``): what a user of the variant gets per call. The mean over successes alone (``mean``,
    still returned) let a variant that fails 90% of the time outrank one that is good on all. Ties go to
    the variant scored on more examples.
    """
    since = datetime.now(timezone.utc) - timedelta(days=days_back)
    latest = (select(EvaluationResult.variant_id, func.max(EvaluationResult.batch_id).label("batch_id"))
              .where(EvaluationResult.metric == metric, EvaluationResult.created_at >= since)
              .group_by(EvaluationResult.variant_id).subquery())
    attempted = EvaluationResult.n + EvaluationResult.n_failed
    score = func.coalesce(EvaluationResult.mean * EvaluationResult.n / func.nullif(attempted, 0), 0.0).label("score")
    query = (select(EvaluationResult.variant_id, PromptVariant.name, EvaluationResult.family, EvaluationResult.model,
                    score, EvaluationResult.mean, EvaluationResult.std, EvaluationResult.n, EvaluationResult.n_failed,
                    EvaluationResult.batch_id)
             .join(latest, (latest.c.variant_id == EvaluationResult.variant_id)
                   & (latest.c.batch_id == EvaluationResult.batch_id))
             .join(PromptVariant, PromptVariant.id == EvaluationResult.variant_id)
             .where(EvaluationResult.metric == metric)
             .order_by(score.desc(), attempted.desc(), EvaluationResult.variant_id).limit(limit))
    if family:
        query = query.where(EvaluationResult.family == family)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]
