"""Rollout rows and their transitions. Every change is a compare-and-set on ``rollouts.version``.

Two beat processes, a retried task and an operator may all try to move the same rollout at once: each
states the version it read, and only the first to write that version wins; the others get
``RolloutConflict`` and change nothing. Each version has exactly one ``rollout_transitions`` row
(unique on rollout and version), so a step is never skipped or applied twice.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..models import PromptBackup, PromptVariant, Rollout, RolloutTransition

#: The share of calls the candidate serves at each step; the last step makes it the active variant.
STEPS = (0.10, 0.25, 0.50, 0.75, 1.00)
OPEN = ("running", "paused")
ACTIONS = ("promote", "rollback", "pause", "resume")


class RolloutError(ValueError):
    """The rollout cannot do what was asked (says why in one sentence)."""


class RolloutConflict(RolloutError):
    """Another process changed the rollout since it was read; nothing was written."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def open_key(family: str, model: str) -> str:
    return f"{family}|{model}"


def active_row(conn, family: str, model: str):
    return conn.execute(select(PromptVariant).where(
        PromptVariant.family == family, PromptVariant.model == model, PromptVariant.status == "active")
        .order_by(PromptVariant.id.desc())).first()


def start_rollout(engine: Engine, candidate_id: int, *, percentage: float = STEPS[0], hold_s: float,
                  validation_id: int | None = None, actor: str = "deploy", reason: str = "deployed") -> int:
    """Back up the incumbent and send ``percentage`` of calls to the candidate; the new rollout's id."""
    step = _step_of(percentage)
    with engine.begin() as conn:
        cand = conn.execute(select(PromptVariant).where(PromptVariant.id == candidate_id)).first()
        if cand is None:
            raise RolloutError(f"no variant {candidate_id}")
        if cand.status != "validated":
            raise RolloutError(f"variant {candidate_id} ({cand.name}) is {cand.status}; only a validated "
                               "candidate is deployed (promptloop rollout start validates it first)")
        inc = active_row(conn, cand.family, cand.model)
        if inc is None:
            raise RolloutError(f"{cand.family} x {cand.model} has no active variant to compare with")
        backup_id = conn.execute(PromptBackup.__table__.insert().values(
            variant_id=inc.id, family=inc.family, model=inc.model, name=inc.name, template=inc.template,
            status=inc.status)).inserted_primary_key[0]
        now = _now()
        try:
            with conn.begin_nested():
                rollout_id = conn.execute(Rollout.__table__.insert().values(
                    family=cand.family, model=cand.model, open_key=open_key(cand.family, cand.model),
                    candidate_id=cand.id, incumbent_id=inc.id, backup_id=backup_id, validation_id=validation_id,
                    status="running", step=step, percentage=STEPS[step], hold_s=hold_s, version=1,
                    step_started_at=now)).inserted_primary_key[0]
        except IntegrityError:
            other = conn.execute(select(Rollout.id).where(
                Rollout.open_key == open_key(cand.family, cand.model))).scalar()
            raise RolloutError(f"rollout {other} of {cand.family} x {cand.model} is still open: "
                               "promote or roll it back first") from None
        conn.execute(update(PromptVariant).where(PromptVariant.id == cand.id).values(status="rolling_out"))
        _record(conn, rollout_id, 1, "deploy", None, "running", None, STEPS[step], actor, reason, None)
    return rollout_id


def _step_of(percentage: float) -> int:
    for i, share in enumerate(STEPS[:-1]):
        if abs(share - percentage) < 1e-9:
            return i
    raise RolloutError(f"a rollout starts at one of {', '.join(f'{s:.2f}' for s in STEPS[:-1])}, "
                       f"not {percentage}")


def _record(conn, rollout_id, version, action, from_status, to_status, from_pct, to_pct, actor, reason, evidence):
    conn.execute(RolloutTransition.__table__.insert().values(
        rollout_id=rollout_id, version=version, action=action, from_status=from_status, to_status=to_status,
        from_percentage=from_pct, to_percentage=to_pct, actor=actor, reason=reason,
        evidence=json.dumps(evidence) if evidence is not None else None))


def transition(engine: Engine, rollout_id: int, version: int, action: str, *, actor: str, reason: str,
               evidence: dict | None = None) -> Rollout:
    """Apply ``action`` to the rollout if it is still at ``version``; the rollout as it is afterwards."""
    if action not in ACTIONS:
        raise RolloutError(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
    if not reason or not reason.strip():
        raise RolloutError("say why (a reason is stored with every transition)")
    with engine.begin() as conn:
        r = conn.execute(select(Rollout).where(Rollout.id == rollout_id)).first()
        if r is None:
            raise RolloutError(f"no rollout {rollout_id}")
        if r.version != version:
            raise RolloutConflict(f"rollout {rollout_id} changed (version {r.version}, expected {version})")
        values, to_status = _next(conn, r, action)
        changed = conn.execute(update(Rollout).where(Rollout.id == rollout_id, Rollout.version == version)
                               .values(version=version + 1, **values)).rowcount
        if changed != 1:
            raise RolloutConflict(f"rollout {rollout_id} changed while {action} was applied")
        _record(conn, rollout_id, version + 1, action, r.status, to_status, r.percentage,
                values.get("percentage", r.percentage), actor, reason.strip(), evidence)
    return get(engine, rollout_id)


def _next(conn, r, action: str) -> tuple[dict, str]:
    """The rollout's new column values for ``action`` (and the variants' status changes, in ``conn``)."""
    if r.status not in OPEN:
        raise RolloutError(f"rollout {r.id} is {r.status}; nothing more can happen to it")
    now = _now()
    if action == "pause":
        if r.status == "paused":
            raise RolloutError(f"rollout {r.id} is already paused")
        return {"status": "paused"}, "paused"
    if action == "resume":
        if r.status != "paused":
            raise RolloutError(f"rollout {r.id} is not paused")
        return {"status": "running", "step_started_at": now}, "running"
    if action == "rollback":
        backup = conn.execute(select(PromptBackup).where(PromptBackup.id == r.backup_id)).first()
        conn.execute(update(PromptVariant).where(PromptVariant.id == r.candidate_id).values(status="rolled_back"))
        # Restore the incumbent exactly as it was backed up (its template and its status).
        conn.execute(update(PromptVariant).where(PromptVariant.id == backup.variant_id)
                     .values(template=backup.template, status=backup.status))
        return {"status": "rolled_back", "percentage": 0.0, "open_key": None, "finished_at": now}, "rolled_back"
    step = r.step + 1  # promote
    if step < len(STEPS) - 1:
        return {"step": step, "percentage": STEPS[step], "step_started_at": now}, r.status
    conn.execute(update(PromptVariant).where(PromptVariant.id == r.incumbent_id).values(status="retired"))
    conn.execute(update(PromptVariant).where(PromptVariant.id == r.candidate_id).values(status="active"))
    return {"step": step, "percentage": 1.0, "status": "promoted", "open_key": None, "finished_at": now}, "promoted"


def get(engine: Engine, rollout_id: int) -> Rollout:
    with Session(engine, expire_on_commit=False) as session:
        rollout = session.get(Rollout, rollout_id)
    if rollout is None:
        raise RolloutError(f"no rollout {rollout_id}")
    return rollout


def open_rollouts(engine: Engine) -> list[Rollout]:
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(select(Rollout).where(Rollout.status.in_(OPEN)).order_by(Rollout.id)))


def transitions(engine: Engine, rollout_id: int) -> list[RolloutTransition]:
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(select(RolloutTransition).where(RolloutTransition.rollout_id == rollout_id)
                                    .order_by(RolloutTransition.version)))
