"""The production data pipeline: collect examples, batch them, score prompt variants, rank them.

A batch is variants x examples, cut into chunks that any worker can score (``run_evaluation_chunk``);
each (variant, example) result is one ``evaluation_scores`` row, unique, so a chunk that runs twice
scores nothing twice. ``finish_evaluation_batch`` aggregates the rows into ``evaluation_results``
(mean, spread, sample size and failures per variant and metric), sorted by example so the numbers
do not depend on how the work was split.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from .families import FAMILIES, Family, get_family
from .families.template import PromptTemplate
from .lm import Reply, cache_insert, cache_key, cache_row, cached_complete, cached_replies, get_lm, storable
from .metrics import parse_extraction
from .models import (EvalExample, EvaluationBatch, EvaluationChunkRun, EvaluationResult, EvaluationScore,
                     ProductionExample, PromptVariant)
from .ranking import get_top_performing_variants  # noqa: F401  (the seed's pipeline API lives here too)
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
    count = select(func.count()).select_from(PromptVariant).where(PromptVariant.name == "baseline")
    with engine.begin() as conn:
        if not rows:
            return 0
        before = conn.execute(count).scalar_one()
        conn.execute(stmt, rows)  # rowcount of an executemany is -1 on psycopg: count instead
        return conn.execute(count).scalar_one() - before


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


#: A chunk whose runs died this many times (the worker's process killed: out of memory, a native crash
#: in the LM) is not run as before again: see ``run_evaluation_chunk``.
MAX_WORKER_KILLS = 3
#: Seconds between a running chunk's looks at whether its batch was cancelled.
CANCEL_CHECK_S = 10.0


@dataclass
class _Chunk:
    """What scoring a chunk needs, loaded once per run."""

    batch_id: int
    variant_id: int
    key: str
    family: Family
    template: PromptTemplate
    teacher: str | None
    lm: object
    lm_error: Exception | None
    #: Examples of the chunk without a score yet.
    todo: list[ExampleRef]
    counts: dict


@dataclass
class _Item:
    """One example on its way to a score row."""

    ref: ExampleRef
    row: dict
    fields: dict | None = None
    reference: dict | None = None
    messages: list[dict] | None = None
    key: str | None = None


def chunk_key(variant_id: int, examples: list[list]) -> str:
    """A chunk's identity within its batch: a redelivered message has the same key."""
    return hashlib.sha256(json.dumps([variant_id, [list(e) for e in examples]]).encode()).hexdigest()


def run_evaluation_chunk(engine: Engine, settings: Settings, batch_id: int, variant_id: int, examples: list[list],
                         lm=None, time_budget_s: float | None = None, max_kills: int = MAX_WORKER_KILLS) -> dict:
    """Score one variant on some examples; an example that fails is recorded as failed, never fatal.

    Returns counts: scored, failed, skipped (already scored by an earlier run of this chunk), cached.

    A run that starts after earlier runs of the chunk died writes each example as soon as it is scored
    and notes which example it is on. From the ``max_kills``-th death on, a start records the example
    the last death happened on as failed ("chunk killed its worker N times"), or every example left
    when that is unknown, instead of running it again forever. After ``time_budget_s`` seconds the
    examples left are recorded as failed with the reason.
    """
    started = time.monotonic()
    if batch_cancelled(engine, batch_id):  # abandoned (``evaluate --timeout``): nobody waits for its scores
        return {"scored": 0, "failed": 0, "skipped": len(examples), "cached": 0, "cancelled": True}
    kills, suspect = _start_run(engine, batch_id, chunk_key(variant_id, examples))
    chunk = _open_chunk(engine, settings, batch_id, variant_id, examples, lm)
    if kills >= max_kills:
        _give_up(engine, chunk, kills, suspect)
    items = _prepare(engine, chunk)
    hits = cached_replies(engine, [i.key for i in items if i.key])
    pending: list[tuple[dict, dict | None]] = []  # (score row, new cache entry) not written yet
    looked = time.monotonic()
    for n, item in enumerate(items):
        if time.monotonic() - looked > CANCEL_CHECK_S:  # a long chunk stops soon after its batch is cancelled
            looked = time.monotonic()
            if batch_cancelled(engine, batch_id):
                chunk.counts["cancelled"] = True
                break
        if time_budget_s is not None and time.monotonic() - started > time_budget_s:
            reason = f"chunk time limit ({time_budget_s:g} s) reached before this example was scored"
            pending += [(_failed_row(batch_id, variant_id, i.ref, reason), None) for i in items[n:]]
            break
        if kills:  # a run after a death: one example at a time, so the next death points at its example
            _mark_running(engine, chunk, item.ref)
        pending.append((item.row, _score(engine, settings, chunk, item, hits)))
        if kills:
            _write(engine, pending, chunk.counts)
            pending = []
    _write(engine, pending, chunk.counts)
    _end_run(engine, chunk.batch_id, chunk.key)
    return chunk.counts


def fail_unscored(engine: Engine, batch_id: int, variant_id: int, examples: list[list], reason: str) -> dict:
    """Record every example of the chunk without a score as failed with ``reason``; counts as above.

    For a chunk that cannot go on (its task's time is up): the batch still completes, with the reason.
    """
    with engine.connect() as conn:
        family = conn.execute(select(PromptVariant.family).where(PromptVariant.id == variant_id)).scalar_one()
    todo = _unscored(engine, batch_id, variant_id, family, examples)
    _write(engine, [(_failed_row(batch_id, variant_id, ref, reason), None) for ref in todo])
    _end_run(engine, batch_id, chunk_key(variant_id, examples))
    return {"scored": 0, "failed": len(todo), "skipped": len(examples) - len(todo), "cached": 0}


def _start_run(engine: Engine, batch_id: int, key: str) -> tuple[int, str | None]:
    """Count a start of the chunk: (earlier starts that never ended, the example the last one was on)."""
    table = EvaluationChunkRun.__table__
    stmt = (_insert(engine)(table).values(batch_id=batch_id, chunk_key=key, unfinished=1)
            .on_conflict_do_update(index_elements=["batch_id", "chunk_key"],
                                   set_={"unfinished": table.c.unfinished + 1, "updated_at": func.now()})
            .returning(table.c.unfinished, table.c.running_example))
    with engine.begin() as conn:
        unfinished, running = conn.execute(stmt).one()
    return unfinished - 1, running


def _mark_running(engine: Engine, chunk: _Chunk, ref: ExampleRef) -> None:
    with engine.begin() as conn:
        conn.execute(update(EvaluationChunkRun)
                     .where(EvaluationChunkRun.batch_id == chunk.batch_id, EvaluationChunkRun.chunk_key == chunk.key)
                     .values(running_example=f"{ref.source}:{ref.id}"))


def _end_run(engine: Engine, batch_id: int, key: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(EvaluationChunkRun)
                     .where(EvaluationChunkRun.batch_id == batch_id, EvaluationChunkRun.chunk_key == key)
                     .values(unfinished=0, running_example=None))


def _unscored(engine: Engine, batch_id: int, variant_id: int, family: str, examples: list[list]) -> list[ExampleRef]:
    with engine.connect() as conn:
        done = set(conn.execute(select(EvaluationScore.example_source, EvaluationScore.example_id).where(
            EvaluationScore.batch_id == batch_id, EvaluationScore.variant_id == variant_id)).all())
    return [ExampleRef(s, i, family) for s, i in examples if (s, i) not in done]


def _open_chunk(engine: Engine, settings: Settings, batch_id: int, variant_id: int, examples: list[list],
                lm) -> _Chunk:
    with engine.connect() as conn:
        variant = conn.execute(select(PromptVariant).where(PromptVariant.id == variant_id)).one()
        spec = json.loads(conn.execute(select(EvaluationBatch.spec).where(EvaluationBatch.id == batch_id)).scalar_one())
        conn.execute(update(EvaluationBatch).where(EvaluationBatch.id == batch_id, EvaluationBatch.status == "pending")
                     .values(status="running"))
        conn.commit()
    lm_error = None
    if lm is None:
        try:
            lm = get_lm(variant.model, settings)
        except ValueError as exc:  # this worker has no model for the key: every example fails, visibly
            lm_error = exc
    todo = _unscored(engine, batch_id, variant_id, variant.family, examples)
    counts = {"scored": 0, "failed": 0, "skipped": len(examples) - len(todo), "cached": 0}
    return _Chunk(batch_id, variant_id, chunk_key(variant_id, examples), get_family(variant.family),
                  PromptTemplate.from_json(variant.template), spec.get("teacher"), lm, lm_error, todo, counts)


def _give_up(engine: Engine, chunk: _Chunk, kills: int, suspect: str | None) -> None:
    """Record the example the last death happened on as failed, or every example left when that is unknown."""
    reason = f"chunk killed its worker {kills} times"
    culprits = [r for r in chunk.todo if f"{r.source}:{r.id}" == suspect]
    if culprits:
        reason += " while scoring this example"
    doomed = culprits or chunk.todo
    _write(engine, [(_failed_row(chunk.batch_id, chunk.variant_id, ref, reason), None) for ref in doomed], chunk.counts)
    chunk.todo = [r for r in chunk.todo if r not in doomed]


def _new_row(batch_id: int, variant_id: int, ref: ExampleRef) -> dict:
    return {"batch_id": batch_id, "variant_id": variant_id, "example_source": ref.source, "example_id": ref.id,
            "ok": False, "metrics": None, "output": None, "reasoning": None, "error": None, "latency_ms": None}


def _failed_row(batch_id: int, variant_id: int, ref: ExampleRef, reason: str) -> dict:
    return {**_new_row(batch_id, variant_id, ref), "error": reason}


def _error(exc: BaseException) -> str:
    return storable(f"{type(exc).__name__}: {exc}"[:2000])


def _prepare(engine: Engine, chunk: _Chunk) -> list[_Item]:
    """Each example's fields and rendered messages (no LM call yet); what fails here is recorded on its row."""
    loaded = load_examples(engine, chunk.todo)
    items = []
    for ref in chunk.todo:
        item = _Item(ref, _new_row(chunk.batch_id, chunk.variant_id, ref))
        items.append(item)
        try:
            if chunk.lm_error:
                raise chunk.lm_error
            if (ref.source, ref.id) not in loaded:
                raise LookupError(f"{ref.source} example {ref.id} no longer exists")
            _, text, item.reference = loaded[(ref.source, ref.id)]
            item.fields = chunk.family.inputs(text)
            item.messages = chunk.template.render(**item.fields)
            item.key = cache_key(chunk.lm, item.messages)
        except Exception as exc:  # a template field the input lacks, a missing example...
            item.row["error"] = _error(exc)
    return items


def _teacher_reference(engine: Engine, settings: Settings, teacher: str, family: str, fields: dict) -> dict | None:
    lm = get_lm(teacher, settings)
    text, _ = cached_complete(engine, lm, get_family(family).baseline().render(**fields))
    return reference_from_text(family, text)


def _score(engine: Engine, settings: Settings, chunk: _Chunk, item: _Item, hits: dict[str, Reply]) -> dict | None:
    """Answer and score one prepared example into its row; returns the new cache entry when the LM was called."""
    row, fresh = item.row, None
    if row["error"]:
        return None
    started = time.perf_counter()
    try:
        reference = item.reference
        if reference is None and chunk.teacher:
            reference = _teacher_reference(engine, settings, chunk.teacher, chunk.family.name.value, item.fields)
        reply = hits.get(item.key)
        if reply is None:
            reply = hits[item.key] = chunk.lm.reply(item.messages)
            fresh = cache_row(item.key, chunk.lm, reply)
        else:
            chunk.counts["cached"] += 1
        row["output"], row["reasoning"] = storable(reply.text), storable(reply.reasoning)
        row["metrics"] = json.dumps(chunk.family.score(reply.text, item.fields, reference), sort_keys=True)
        row["ok"] = True
    except DBAPIError:
        raise
    except Exception as exc:  # LMError, a scoring error, the task's soft time limit interrupting the call...
        row["error"] = _error(exc)
    row["latency_ms"] = (time.perf_counter() - started) * 1000
    return fresh


def _write(engine: Engine, pending: list[tuple[dict, dict | None]], counts: dict | None = None) -> None:
    """Store score rows and their new cache entries in one transaction (a rerun skips what is stored)."""
    if not pending:
        return
    rows = [row for row, _ in pending]
    fresh = [entry for _, entry in pending if entry]
    stmt = _insert(engine)(EvaluationScore.__table__).on_conflict_do_nothing(
        index_elements=["batch_id", "variant_id", "example_source", "example_id"])
    with engine.begin() as conn:
        if fresh:
            conn.execute(cache_insert(engine), fresh)
        conn.execute(stmt, rows)
    if counts is not None:
        counts["scored"] += sum(r["ok"] for r in rows)
        counts["failed"] += sum(not r["ok"] for r in rows)


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


def cancel_evaluation_batch(engine: Engine, batch_id: int) -> bool:
    """Mark an unfinished batch ``cancelled``: its chunks still queued are skipped when a worker takes them.

    False when the batch was finished meanwhile (then its results stand).
    """
    with engine.begin() as conn:
        return bool(conn.execute(update(EvaluationBatch)
                                 .where(EvaluationBatch.id == batch_id, EvaluationBatch.status.in_(FINISHABLE))
                                 .values(status="cancelled", finished_at=func.now())).rowcount)


def batch_cancelled(engine: Engine, batch_id: int) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(EvaluationBatch.status).where(EvaluationBatch.id == batch_id)).scalar() == "cancelled"


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
