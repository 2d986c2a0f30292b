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
