"""The production data pipeline: collect examples, batch them, score prompt variants, rank them.

A batch is variants x examples, cut into chunks that any worker can score (``run_evaluation_chunk``);
each (variant, example) result is one ``evaluation_scores`` row, unique, so a chunk that runs twice
scores nothing twice. ``finish_evaluation_batch`` aggregates the rows into ``evaluation_results``
(mean, spread, sample size and failures per variant and metric), sorted by example so the numbers
do not depend on how the work was split.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from .families import FAMILIES, get_family
from .families.template import PromptTemplate
from .lm import cache_insert, cache_key, cache_lookup, cached_complete, get_lm
from .metrics import parse_extraction
from .models import (EvalExample, EvaluationBatch, EvaluationResult, EvaluationScore, ProductionExample,
                     PromptVariant)
from .settings import Settings

#: Variants worth evaluating: the incumbent and everything on its way in.
LIVE_STATUSES = ("active", "candidate", "validated", "rolling_out")


@dataclass(frozen=True)
class ExampleRef:
    """An example to evaluate on: a production example or an imported dataset example."""

    source: str  # "production" | "dataset"
    id: int
    family: str


def _insert(engine: Engine):
    return postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert


# ----- examples ---------------------------------------------------------------------------------

def collect_production_data(engine: Engine, hours_back: float = 24, models: list[str] | None = None,
                            min_text_length: int = 0, families: list[str] | None = None) -> list[ExampleRef]:
    """Production examples received in the last ``hours_back`` hours (real rows only), oldest first."""
    since = datetime.now(timezone.utc) - timedelta(hours=hours_back)
    query = select(ProductionExample.id, ProductionExample.family).where(ProductionExample.ts >= since)
    if models:
        query = query.where(ProductionExample.model.in_(models))
    if families:
        query = query.where(ProductionExample.family.in_(families))
    if min_text_length:
        query = query.where(func.length(ProductionExample.input) >= min_text_length)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(ProductionExample.id)).all()
    return [ExampleRef("production", i, fam) for i, fam in rows if fam in {f.value for f in FAMILIES}]


def dataset_examples(engine: Engine, families: list[str] | None = None, datasets: list[str] | None = None,
                     limit_per_family: int | None = None) -> list[ExampleRef]:
    """Imported examples, the first ``limit_per_family`` of each family (a fixed, repeatable sample)."""
    query = select(EvalExample.id, EvalExample.family).order_by(EvalExample.id)
    if families:
        query = query.where(EvalExample.family.in_(families))
    if datasets:
        query = query.where(EvalExample.dataset.in_(datasets))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    taken: dict[str, int] = {}
    refs = []
    for i, fam in rows:
        if limit_per_family is None or taken.get(fam, 0) < limit_per_family:
            taken[fam] = taken.get(fam, 0) + 1
            refs.append(ExampleRef("dataset", i, fam))
    return refs


def reference_from_text(family: str, text: str | None) -> dict | None:
    """A production example's free-text reference in the shape its family's metrics expect."""
    if not text:
        return None
    try:
        value = json.loads(text)
        if isinstance(value, dict):
            return value
    except json.JSONDecodeError:
        pass
    if family in ("entity_extraction", "relationship_extraction", "document_analysis"):
        parsed = parse_extraction(text)
        return {"entities": [list(e) for e in parsed.entities], "relations": [[h, t, ""] for h, t in parsed.relations]}
    if family == "summarization":
        return {"summaries": [text]}
    if family in ("answer_generation", "question_reformulation"):
        return {"answers": [text]}
    if family == "context_compression":
        return {"answers": [], "supporting": [text]}
    return None


def load_examples(engine: Engine, refs: list[ExampleRef]) -> dict[tuple[str, int], tuple[str, str, dict | None]]:
    """(source, id) -> (family, input, reference) for the given examples."""
    out: dict[tuple[str, int], tuple[str, str, dict | None]] = {}
    prod = [r.id for r in refs if r.source == "production"]
    data = [r.id for r in refs if r.source == "dataset"]
    with engine.connect() as conn:
        if prod:
            for i, fam, text, ref in conn.execute(select(ProductionExample.id, ProductionExample.family,
                                                         ProductionExample.input, ProductionExample.reference)
                                                  .where(ProductionExample.id.in_(prod))):
                out[("production", i)] = (fam, text, reference_from_text(fam, ref))
        if data:
            for i, fam, text, ref in conn.execute(select(EvalExample.id, EvalExample.family, EvalExample.input,
                                                         EvalExample.reference).where(EvalExample.id.in_(data))):
                out[("dataset", i)] = (fam, text, json.loads(ref))
    return out


# ----- variants ---------------------------------------------------------------------------------

def register_baselines(engine: Engine, model_keys: list[str], families: list[str] | None = None) -> int:
    """Register each family's baseline as the active variant ``baseline`` for each model; returns rows added.

    Existing rows are left alone, so a baseline that was replaced (retired) stays retired.
    """
    templates = {f.name.value: f.baseline().to_json() for f in FAMILIES.values()
                 if not families or f.name.value in families}
    rows = [{"family": family, "model": m, "name": "baseline", "template": template, "status": "active"}
            for family, template in templates.items() for m in model_keys]
    stmt = _insert(engine)(PromptVariant.__table__).on_conflict_do_nothing(index_elements=["family", "model", "name"])
    with engine.begin() as conn:
        return conn.execute(stmt, rows).rowcount if rows else 0


def find_variants(engine: Engine, families: list[str] | None = None, models: list[str] | None = None,
                  names: list[str] | None = None) -> list[PromptVariant]:
    """Live variants (``LIVE_STATUSES``), filtered by family, model and name."""
    query = select(PromptVariant).where(PromptVariant.status.in_(LIVE_STATUSES)).order_by(PromptVariant.id)
    if families:
        query = query.where(PromptVariant.family.in_(families))
    if models:
        query = query.where(PromptVariant.model.in_(models))
    if names:
        query = query.where(PromptVariant.name.in_(names))
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(query))


# ----- batches ----------------------------------------------------------------------------------

def create_evaluation_batch(engine: Engine, examples: list[ExampleRef], variants: list[PromptVariant],
                            batch_size: int = 20, teacher: str | None = None) -> tuple[int, list[dict]]:
    """Record a batch of every variant on every example of its family; returns (batch id, chunks).

    Each chunk is ``{"batch_id", "variant_id", "examples": [[source, id], ...]}`` with at most
    ``batch_size`` examples: small JSON, ids only, ready to send to a worker. ``teacher`` (a model
    key) writes references for examples that have none, from the baseline prompt on that model.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    chunks = []
    for variant in variants:
        mine = [[e.source, e.id] for e in examples if e.family == variant.family]
        for i in range(0, len(mine), batch_size):
            chunks.append({"variant_id": variant.id, "examples": mine[i:i + batch_size]})
    n_items = sum(len(c["examples"]) for c in chunks)
    spec = {"variant_ids": [v.id for v in variants], "n_examples": len(examples), "batch_size": batch_size,
            "teacher": teacher}
    with engine.begin() as conn:
        batch_id = conn.execute(EvaluationBatch.__table__.insert().values(
            status="pending", n_items=n_items, n_chunks=len(chunks), spec=json.dumps(spec))).inserted_primary_key[0]
    for chunk in chunks:
        chunk["batch_id"] = batch_id
    return batch_id, chunks


def _teacher_reference(engine: Engine, settings: Settings, teacher: str, family: str, fields: dict) -> dict | None:
    lm = get_lm(teacher, settings)
    text, _ = cached_complete(engine, lm, get_family(family).baseline().render(**fields))
    return reference_from_text(family, text)


def run_evaluation_chunk(engine: Engine, settings: Settings, batch_id: int, variant_id: int,
                         examples: list[list], lm=None) -> dict:
    """Score one variant on some examples; an example that fails is recorded as failed, never fatal.

    Returns counts: scored, failed, skipped (already scored by an earlier run of this chunk), cached.
    """
    with engine.connect() as conn:
        variant = conn.execute(select(PromptVariant).where(PromptVariant.id == variant_id)).one()
        spec = json.loads(conn.execute(select(EvaluationBatch.spec).where(EvaluationBatch.id == batch_id)).scalar_one())
        done = set(conn.execute(select(EvaluationScore.example_source, EvaluationScore.example_id).where(
            EvaluationScore.batch_id == batch_id, EvaluationScore.variant_id == variant_id)).all())
        conn.execute(update(EvaluationBatch).where(EvaluationBatch.id == batch_id, EvaluationBatch.status == "pending")
                     .values(status="running"))
        conn.commit()
    family = get_family(variant.family)
    template = PromptTemplate.from_json(variant.template)
    lm_error = None
    if lm is None:
        try:
            lm = get_lm(variant.model, settings)
        except ValueError as exc:  # this worker has no model for the key: every example fails, visibly
            lm_error = exc
    refs = [ExampleRef(s, i, variant.family) for s, i in examples if (s, i) not in done]
    loaded = load_examples(engine, refs)
    counts = {"scored": 0, "failed": 0, "skipped": len(examples) - len(refs), "cached": 0}
    rows, prepared = [], []
    for ref in refs:
        row = {"batch_id": batch_id, "variant_id": variant_id, "example_source": ref.source, "example_id": ref.id,
               "ok": False, "metrics": None, "output": None, "error": None, "latency_ms": None}
        rows.append(row)
        try:
            if lm_error:
                raise lm_error
            if (ref.source, ref.id) not in loaded:
                raise LookupError(f"{ref.source} example {ref.id} no longer exists")
            _, text, reference = loaded[(ref.source, ref.id)]
            fields = family.inputs(text)
            if reference is None and spec.get("teacher"):
                reference = _teacher_reference(engine, settings, spec["teacher"], variant.family, fields)
            messages = template.render(**fields)
            prepared.append((row, fields, reference, messages, cache_key(lm, messages)))
        except DBAPIError:
            raise
        except Exception as exc:  # a template field the input lacks, a missing example...
            row["error"] = f"{type(exc).__name__}: {exc}"[:2000]
    # One cache query and one write for the whole chunk: per-example round trips would cost more than scoring.
    hits = cache_lookup(engine, [key for *_, key in prepared])
    fresh = []
    for row, fields, reference, messages, key in prepared:
        started = time.perf_counter()
        try:
            if key in hits:
                output = hits[key]
                counts["cached"] += 1
            else:
                output = hits[key] = lm.complete(messages)
                fresh.append({"key": key, "model": lm.name[:200], "response": output})
            row["output"] = output
            row["metrics"] = json.dumps(family.score(output, fields, reference), sort_keys=True)
            row["ok"] = True
        except DBAPIError:
            raise
        except Exception as exc:  # LMError, a scoring error...
            row["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        row["latency_ms"] = (time.perf_counter() - started) * 1000
    counts["scored"] = sum(r["ok"] for r in rows)
    counts["failed"] = len(rows) - counts["scored"]
    if rows:
        stmt = _insert(engine)(EvaluationScore.__table__).on_conflict_do_nothing(
            index_elements=["batch_id", "variant_id", "example_source", "example_id"])
        with engine.begin() as conn:
            if fresh:
                conn.execute(cache_insert(engine), fresh)
            conn.execute(stmt, rows)
    return counts


def batch_progress(engine: Engine, batch_id: int) -> tuple[int, int, str]:
    """(items scored or failed, items in the batch, status)."""
    with engine.connect() as conn:
        total, status = conn.execute(select(EvaluationBatch.n_items, EvaluationBatch.status)
                                     .where(EvaluationBatch.id == batch_id)).one()
        done = conn.execute(select(func.count()).select_from(EvaluationScore)
                            .where(EvaluationScore.batch_id == batch_id)).scalar_one()
    return done, total, status


#: A batch in one of these states may still be finished; ``done`` is final.
FINISHABLE = ("pending", "running")
_RESULT_COLUMNS = ("batch_id", "variant_id", "family", "model", "metric", "mean", "std", "n", "n_failed")


def finish_evaluation_batch(engine: Engine, batch_id: int) -> list[dict]:
    """Aggregate the batch's scores into ``evaluation_results`` exactly once, mark it done; its results.

    The chord's callback and the pipeline (or the CLI) both finish a batch, often at the same moment.
    Finishing is a compare-and-set on the status in the same transaction as the results: the first
    caller turns pending/running into done and writes the aggregate; a concurrent caller waits on the
    row lock, then finds the batch done and returns what the first one stored.
    """
    with engine.begin() as conn:
        claimed = conn.execute(update(EvaluationBatch)
                               .where(EvaluationBatch.id == batch_id, EvaluationBatch.status.in_(FINISHABLE))
                               .values(status="done", finished_at=func.now())).rowcount
        if not claimed:
            return _stored_results(conn, batch_id)
        results = _aggregate(conn, batch_id)
        if results:
            # Upserted: results written by anything else (an operator's re-run) are replaced, never a conflict.
            stmt = _insert(engine)(EvaluationResult.__table__)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["batch_id", "variant_id", "metric"],
                set_={c: stmt.excluded[c] for c in ("family", "model", "mean", "std", "n", "n_failed")}), results)
        return results


def _stored_results(conn, batch_id: int) -> list[dict]:
    rows = conn.execute(select(*(getattr(EvaluationResult, c) for c in _RESULT_COLUMNS))
                        .where(EvaluationResult.batch_id == batch_id)
                        .order_by(EvaluationResult.variant_id, EvaluationResult.metric))
    return [dict(r._mapping) for r in rows]


def _aggregate(conn, batch_id: int) -> list[dict]:
    """Mean, spread, sample size and failures per variant and metric, in (variant, metric) order."""
    scores = conn.execute(
        select(EvaluationScore.variant_id, EvaluationScore.ok, EvaluationScore.metrics)
        .where(EvaluationScore.batch_id == batch_id)
        .order_by(EvaluationScore.variant_id, EvaluationScore.example_source, EvaluationScore.example_id)).all()
    variants = {v.id: v for v in conn.execute(select(PromptVariant.id, PromptVariant.family, PromptVariant.model)
                                              .where(PromptVariant.id.in_({s.variant_id for s in scores})))}
    per_variant: dict[int, dict] = {}
    for s in scores:
        agg = per_variant.setdefault(s.variant_id, {"failed": 0, "values": {}})
        if not s.ok:
            agg["failed"] += 1
            continue
        for metric, value in json.loads(s.metrics).items():
            agg["values"].setdefault(metric, []).append(float(value))
    results = []
    for variant_id, agg in sorted(per_variant.items()):
        v = variants[variant_id]
        row = {"batch_id": batch_id, "variant_id": variant_id, "family": v.family, "model": v.model}
        for metric, values in sorted(agg["values"].items()):
            mean = math.fsum(values) / len(values)
            std = math.sqrt(math.fsum((x - mean) ** 2 for x in values) / len(values))
            results.append({**row, "metric": metric, "mean": mean, "std": std, "n": len(values),
                            "n_failed": agg["failed"]})
        if not agg["values"]:
            results.append({**row, "metric": "overall", "mean": 0.0, "std": 0.0, "n": 0, "n_failed": agg["failed"]})
    return results


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
