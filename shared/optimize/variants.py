"""Prompt-variant rows an optimization writes: trial variants (scored, never served) and candidates."""

from __future__ import annotations

import string

from sqlalchemy import Engine, func, select
from sqlalchemy.dialects import postgresql, sqlite

from ..families.template import PromptTemplate
from ..models import PromptVariant


def _insert(dialect_name: str):
    return postgresql.insert if dialect_name == "postgresql" else sqlite.insert


def trial_variant(engine: Engine, run_id: int, trial: int | str, family: str, model: str, template: PromptTemplate,
                  parent_id: int) -> int:
    """The row a trial is scored under (status ``trial``: never live); the same row when resumed."""
    name = f"run{run_id}-trial{trial}"
    stmt = _insert(engine.dialect.name)(PromptVariant.__table__).values(
        family=family, model=model, name=name, template=template.to_json(), status="trial", parent_id=parent_id
    ).on_conflict_do_nothing(index_elements=["family", "model", "name"])
    with engine.begin() as conn:
        conn.execute(stmt)
        return conn.execute(select(PromptVariant.id).where(PromptVariant.family == family, PromptVariant.model == model,
                                                           PromptVariant.name == name)).scalar_one()


def seed_name(n: int) -> str:
    """The seed's candidate names: DSPY_A, DSPY_B, ... DSPY_Z, DSPY_AA, ..."""
    letters = string.ascii_uppercase
    name = ""
    n += 1
    while n:
        n, rem = divmod(n - 1, 26)
        name = letters[rem] + name
    return f"DSPY_{name}"


def registered_as(conn, family: str, model: str, template: PromptTemplate) -> tuple[int, str] | None:
    """(id, name) of a variant of family x model (not a trial row) with exactly this template, if any."""
    row = conn.execute(select(PromptVariant.id, PromptVariant.name).where(
        PromptVariant.family == family, PromptVariant.model == model, PromptVariant.status != "trial",
        PromptVariant.template == template.to_json()).order_by(PromptVariant.id)).first()
    return (row.id, row.name) if row else None


def register_candidate(conn, family: str, model: str, template: PromptTemplate, parent_id: int) -> int:
    """Insert the next ``DSPY_<letter>`` candidate of family x model inside the caller's transaction."""
    taken = set(conn.execute(select(PromptVariant.name).where(
        PromptVariant.family == family, PromptVariant.model == model, PromptVariant.name.like("DSPY\\_%", escape="\\"))
    ).scalars())
    n = 0
    while seed_name(n) in taken:
        n += 1
    return conn.execute(PromptVariant.__table__.insert().values(
        family=family, model=model, name=seed_name(n), template=template.to_json(), status="candidate",
        parent_id=parent_id)).inserted_primary_key[0]


def active_variant(engine: Engine, family: str, model: str) -> PromptVariant | None:
    """The variant serving family x model now (``baseline`` until a candidate is promoted)."""
    from sqlalchemy.orm import Session

    with Session(engine, expire_on_commit=False) as session:
        return session.scalars(select(PromptVariant).where(
            PromptVariant.family == family, PromptVariant.model == model, PromptVariant.status == "active")
            .order_by(PromptVariant.id.desc())).first()


def count_candidates(engine: Engine, family: str, model: str) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(PromptVariant).where(
            PromptVariant.family == family, PromptVariant.model == model, PromptVariant.status == "candidate")).scalar_one()
