"""SQL tables (SQLAlchemy 2). The same schema runs on SQLite (embedded default) and PostgreSQL.

Alembic migrations in ``shared/migrations`` create these tables; ``tests/unit/test_migrations.py``
checks the migrated schema still equals this module.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Text,
    UniqueConstraint, Uuid, func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Lengths shared with event validation (``shared.events``): PostgreSQL enforces them, SQLite does not.
NAME_MAX = 200
KIND_MAX = 64

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })


class _Event:
    """Columns every ingested event has. ``event_id`` is the producer's UUID: the idempotency key."""

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(Uuid(as_uuid=False), unique=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class MetricEvent(_Event, Base):
    """One prompt call's outcome as the producer measured it."""

    __tablename__ = "metric_events"

    family: Mapped[str | None] = mapped_column(String(KIND_MAX))
    variant: Mapped[str] = mapped_column(String(NAME_MAX))
    model: Mapped[str] = mapped_column(String(NAME_MAX))
    latency_ms: Mapped[float] = mapped_column(Float)
    success: Mapped[bool] = mapped_column(Boolean)
    quality: Mapped[float | None] = mapped_column(Float)
    tokens_in: Mapped[int | None] = mapped_column(Integer)
    tokens_out: Mapped[int | None] = mapped_column(Integer)


class FeedbackEvent(_Event, Base):
    """A user's 0..1 rating of a variant's output."""

    __tablename__ = "feedback_events"

    variant: Mapped[str] = mapped_column(String(NAME_MAX))
    model: Mapped[str] = mapped_column(String(NAME_MAX))
    score: Mapped[float] = mapped_column(Float)
    feedback_type: Mapped[str] = mapped_column(String(KIND_MAX))


class ProductionExample(_Event, Base):
    """A sampled production input/output pair, the raw material of evaluation and optimization."""

    __tablename__ = "production_examples"
    __table_args__ = (Index(None, "family", "model", "ts"),)

    family: Mapped[str] = mapped_column(String(KIND_MAX))
    model: Mapped[str] = mapped_column(String(NAME_MAX))
    variant: Mapped[str] = mapped_column(String(NAME_MAX))
    input: Mapped[str] = mapped_column(Text)
    output: Mapped[str] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    tokens_in: Mapped[int | None] = mapped_column(Integer)
    tokens_out: Mapped[int | None] = mapped_column(Integer)


class PromptVariant(Base):
    """A prompt template for one family on one model; ``parent_id`` is the variant it was derived from."""

    __tablename__ = "prompt_variants"
    __table_args__ = (UniqueConstraint("family", "model", "name"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    family: Mapped[str] = mapped_column(String(KIND_MAX))
    model: Mapped[str] = mapped_column(String(NAME_MAX))
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    template: Mapped[str] = mapped_column(Text)
    #: candidate -> validated -> rolling_out -> active; or rejected / rolled_back / retired.
    status: Mapped[str] = mapped_column(String(32), default="candidate")
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("prompt_variants.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                 onupdate=func.now())


class DeadLetter(Base):
    """A stream entry ingest could not store, kept byte for byte with the reason."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    #: The Redis Stream entry id: dead-lettering the same entry twice stores it once.
    stream_id: Mapped[str] = mapped_column(String(64), unique=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    reason: Mapped[str] = mapped_column(Text)
    delivery_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), index=True)


EVENT_TABLES = {"metric": MetricEvent, "feedback": FeedbackEvent, "example": ProductionExample}


class EvalExample(Base):
    """A labeled example imported from a dataset (CoNLL04, SciTLDR, XQuAD, HotpotQA...).

    ``input`` is a JSON object of the family's template fields; ``reference`` a JSON object of what
    the family's metrics compare against.
    """

    __tablename__ = "eval_examples"
    __table_args__ = (UniqueConstraint("dataset", "family", "external_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    dataset: Mapped[str] = mapped_column(String(KIND_MAX))
    split: Mapped[str] = mapped_column(String(KIND_MAX))
    family: Mapped[str] = mapped_column(String(KIND_MAX), index=True)
    external_id: Mapped[str] = mapped_column(String(NAME_MAX))
    input: Mapped[str] = mapped_column(Text)
    reference: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class EvaluationBatch(Base):
    """One evaluation run: variants x examples, fanned out in chunks across workers."""

    __tablename__ = "evaluation_batches"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    #: pending -> running -> done (or failed)
    status: Mapped[str] = mapped_column(String(32), default="pending")
    #: Work items (variant x example) the batch holds, to tell progress and completion.
    n_items: Mapped[int] = mapped_column(Integer)
    n_chunks: Mapped[int] = mapped_column(Integer)
    #: JSON: the variant ids, example references and options it was created with.
    spec: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EvaluationScore(Base):
    """One variant's output on one example, and its metrics (JSON) or the error that stopped it."""

    __tablename__ = "evaluation_scores"
    # Re-running a chunk (a retried or duplicated task) scores nothing twice.
    __table_args__ = (UniqueConstraint("batch_id", "variant_id", "example_source", "example_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("evaluation_batches.id"), index=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("prompt_variants.id"))
    #: "production" (production_examples.id) or "dataset" (eval_examples.id)
    example_source: Mapped[str] = mapped_column(String(16))
    example_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    ok: Mapped[bool] = mapped_column(Boolean)
    metrics: Mapped[str | None] = mapped_column(Text)
    output: Mapped[str | None] = mapped_column(Text)
    #: What a reasoning model sent beside its answer (DSPy's ``reasoning_content``); never scored.
    reasoning: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class EvaluationChunkRun(Base):
    """Starts of one chunk that have not ended: a chunk whose runs keep killing their worker is given up.

    ``chunk_key`` hashes the chunk's message (variant and example ids), so a redelivered message finds
    its row. ``running_example`` ("source:id") is set while a run after a death scores each example,
    so the next start knows which example the worker died on.
    """

    __tablename__ = "evaluation_chunk_runs"

    batch_id: Mapped[int] = mapped_column(ForeignKey("evaluation_batches.id"), primary_key=True)
    chunk_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    unfinished: Mapped[int] = mapped_column(Integer)
    running_example: Mapped[str | None] = mapped_column(String(NAME_MAX))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                 onupdate=func.now())


class EvaluationResult(Base):
    """A batch's aggregate for one variant and metric: mean, spread and sample size."""

    __tablename__ = "evaluation_results"
    __table_args__ = (UniqueConstraint("batch_id", "variant_id", "metric"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("evaluation_batches.id"), index=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("prompt_variants.id"))
    family: Mapped[str] = mapped_column(String(KIND_MAX))
    model: Mapped[str] = mapped_column(String(NAME_MAX))
    metric: Mapped[str] = mapped_column(String(KIND_MAX))
    mean: Mapped[float] = mapped_column(Float)
    std: Mapped[float] = mapped_column(Float)
    n: Mapped[int] = mapped_column(Integer)
    n_failed: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), index=True)


class LMCacheEntry(Base):
    """A finished LM call, keyed by a hash of model, messages and parameters: re-scoring is free."""

    __tablename__ = "lm_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(NAME_MAX))
    response: Mapped[str] = mapped_column(Text)
    reasoning: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OptimizationRun(Base):
    """One optimization of a family's prompt on one model: its settings, lease, progress and outcome.

    The run is held by one worker at a time through a lease with a fencing token: every write a holder
    makes is conditioned on its token, so a redelivered copy of the job (Redis redelivers long tasks)
    cannot run the same optimization, and a holder that lost its lease cannot overwrite the new one's.
    """

    __tablename__ = "optimization_runs"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    #: The Celery job that created the run: a redelivered job finds its run instead of making another.
    job_id: Mapped[str | None] = mapped_column(String(NAME_MAX), unique=True)
    family: Mapped[str] = mapped_column(String(KIND_MAX), index=True)
    model: Mapped[str] = mapped_column(String(NAME_MAX))
    optimizer: Mapped[str] = mapped_column(String(KIND_MAX))
    seed: Mapped[int] = mapped_column(Integer)
    #: pending -> running -> done | stopped (budget, time, cancelled) | failed
    status: Mapped[str] = mapped_column(String(32), default="pending")
    stop_reason: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    #: JSON: the optimizer's settings and budget (LM calls, minutes), objective, proposal model.
    settings: Mapped[str] = mapped_column(Text)
    #: JSON lists of [source, id]: the examples candidates are searched on and validated on.
    train_ids: Mapped[str] = mapped_column(Text)
    val_ids: Mapped[str] = mapped_column(Text)
    parent_id: Mapped[int] = mapped_column(ForeignKey("prompt_variants.id"))
    best_variant_id: Mapped[int | None] = mapped_column(ForeignKey("prompt_variants.id"))
    lease_owner: Mapped[str | None] = mapped_column(String(NAME_MAX))
    lease_token: Mapped[int] = mapped_column(Integer, default=0)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Cost so far: LM calls made for scoring (cached answers counted apart), proposals, seconds.
    lm_calls: Mapped[int] = mapped_column(Integer, default=0)
    cached_calls: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    #: JSON: validation scores per metric of the parent and of the best candidate.
    result: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OptimizationTrial(Base):
    """One scored candidate of a run: the checkpoint a resumed run skips (unique per run and index)."""

    __tablename__ = "optimization_trials"
    __table_args__ = (UniqueConstraint("run_id", "trial"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("optimization_runs.id"), index=True)
    trial: Mapped[int] = mapped_column(Integer)
    variant_id: Mapped[int] = mapped_column(ForeignKey("prompt_variants.id"))
    #: JSON: what this candidate is (demo ids, instruction source...).
    config: Mapped[str] = mapped_column(Text)
    score: Mapped[float] = mapped_column(Float)
    #: JSON: mean of each metric over the trial's examples (failures count as 0).
    metrics: Mapped[str] = mapped_column(Text)
    lm_calls: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PromptBackup(Base):
    """A copy of the variant serving family x model, taken before a candidate is deployed over it."""

    __tablename__ = "prompt_backups"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("prompt_variants.id"))
    family: Mapped[str] = mapped_column(String(KIND_MAX))
    model: Mapped[str] = mapped_column(String(NAME_MAX))
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    template: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CandidateValidation(Base):
    """The recorded stages of one ``validate_candidate``: invariants, paired comparison, regressions."""

    __tablename__ = "candidate_validations"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("prompt_variants.id"), index=True)
    incumbent_id: Mapped[int] = mapped_column(ForeignKey("prompt_variants.id"))
    passed: Mapped[bool] = mapped_column(Boolean)
    confidence: Mapped[float | None] = mapped_column(Float)
    #: JSON list of {"stage", "passed", "reason", ...} in the order they ran.
    stages: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Rollout(Base):
    """A candidate reaching family x model's traffic step by step, or being rolled back.

    Every change is a compare-and-set on ``version`` (``shared.rollout.state``): two beats, a retried
    task or an operator acting at the same moment cannot skip or repeat a step. ``open_key`` is
    "family|model" while the rollout is open and NULL after, so at most one is open per family x model.
    """

    __tablename__ = "rollouts"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    family: Mapped[str] = mapped_column(String(KIND_MAX))
    model: Mapped[str] = mapped_column(String(NAME_MAX))
    open_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("prompt_variants.id"))
    incumbent_id: Mapped[int] = mapped_column(ForeignKey("prompt_variants.id"))
    backup_id: Mapped[int] = mapped_column(ForeignKey("prompt_backups.id"))
    validation_id: Mapped[int | None] = mapped_column(ForeignKey("candidate_validations.id"))
    #: running | paused -> promoted | rolled_back
    status: Mapped[str] = mapped_column(String(32), default="running")
    step: Mapped[int] = mapped_column(Integer, default=0)
    percentage: Mapped[float] = mapped_column(Float)
    hold_s: Mapped[float] = mapped_column(Float)
    version: Mapped[int] = mapped_column(Integer, default=0)
    step_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: JSON: the last gate verdict (decision, reason, per-metric evidence), refreshed on every check.
    last_check: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RolloutTransition(Base):
    """One change of a rollout (deployed, promoted a step, paused, rolled back...), with its reason."""

    __tablename__ = "rollout_transitions"
    __table_args__ = (UniqueConstraint("rollout_id", "version"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id"), index=True)
    #: The rollout's version this transition produced: one row per version, never two.
    version: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str] = mapped_column(String(32))
    from_percentage: Mapped[float | None] = mapped_column(Float)
    to_percentage: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(NAME_MAX))
    reason: Mapped[str] = mapped_column(Text)
    #: JSON: the evidence (gate verdict) behind an automatic transition.
    evidence: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AlertRule(Base):
    """The seed's ``AlertConfig`` as data: a metric over a window, compared to a threshold."""

    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX), unique=True)
    metric_name: Mapped[str] = mapped_column(String(KIND_MAX))
    threshold: Mapped[float] = mapped_column(Float)
    comparison: Mapped[str] = mapped_column(String(32))
    window_minutes: Mapped[float] = mapped_column(Float)
    min_samples: Mapped[int] = mapped_column(Integer)
    #: NULL: every family (model).
    family: Mapped[str | None] = mapped_column(String(KIND_MAX))
    model: Mapped[str | None] = mapped_column(String(NAME_MAX))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Alert(Base):
    """One incident of a rule on one family x variant x model: fired once, resolved once.

    ``open_key`` ("rule|scope") is set while the alert fires and NULL once resolved: at most one
    firing alert per rule and scope, however many checks run at once.
    """

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("alert_rules.id"), index=True)
    scope: Mapped[str] = mapped_column(String(600))
    open_key: Mapped[str | None] = mapped_column(String(700), unique=True)
    status: Mapped[str] = mapped_column(String(32))
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    fired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Whether the webhook got the firing / the resolution (posted at most once each).
    fire_posted: Mapped[bool] = mapped_column(Boolean, default=False)
    resolve_posted: Mapped[bool] = mapped_column(Boolean, default=False)


class OptimizationTrigger(Base):
    """Why the real-time optimizer started (or declined to start) an optimization of family x model."""

    __tablename__ = "optimization_triggers"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    family: Mapped[str] = mapped_column(String(KIND_MAX))
    model: Mapped[str] = mapped_column(String(NAME_MAX))
    #: degradation | feedback | schedule | manual
    kind: Mapped[str] = mapped_column(String(32))
    #: started | skipped
    status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    #: JSON: the numbers behind the decision.
    evidence: Mapped[str | None] = mapped_column(Text)
    #: Unique per incident window, so two beats deciding at once start one optimization.
    dedupe_key: Mapped[str | None] = mapped_column(String(400), unique=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("optimization_runs.id"))
    job_id: Mapped[str | None] = mapped_column(String(NAME_MAX))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), index=True)


class Recommendation(Base):
    """A validated candidate waiting for a person (automatic optimization off), or what became of it."""

    __tablename__ = "recommendations"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("prompt_variants.id"), unique=True)
    family: Mapped[str] = mapped_column(String(KIND_MAX))
    model: Mapped[str] = mapped_column(String(NAME_MAX))
    validation_id: Mapped[int | None] = mapped_column(ForeignKey("candidate_validations.id"))
    confidence: Mapped[float | None] = mapped_column(Float)
    #: validating -> pending (waits for a person) | deployed | rejected | dismissed
    status: Mapped[str] = mapped_column(String(32), default="pending")
    reason: Mapped[str] = mapped_column(Text)
    rollout_id: Mapped[int | None] = mapped_column(ForeignKey("rollouts.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
