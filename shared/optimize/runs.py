"""Optimization runs in SQL: creation, a lease with a fencing token, checkpointed trials, the outcome.

Every write a holder makes after claiming is conditioned on its token (``lease_token``): a copy of the
job that Redis redelivered while the first still runs finds the lease held and does nothing, and a
holder whose lease expired (it hung, or was killed and came back) cannot write over its successor.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine, insert, select, update

from ..models import OptimizationRun, OptimizationTrial

#: Statuses a run can still make progress in.
OPEN = ("pending", "running")


class LeaseLost(RuntimeError):
    """Another holder took this run over (our lease expired); stop without writing anything more."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def new_owner() -> str:
    """A name unique to this attempt: host, process and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:200]


def lm_settings(settings, model: str) -> dict:
    """What a run's scores depend on besides its prompts: the model string and the answer length."""
    return {"model": settings.models.get(model), "max_tokens": settings.lm_max_tokens}


def lm_mismatch(settings, run: OptimizationRun) -> str | None:
    """Why this process may not go on with ``run`` (its target LM, or the proposer LM of an optimizer
    that asks one, is not the one the run recorded), or None."""
    from .registry import OPTIMIZERS  # the optimizers import this module

    made = json.loads(run.settings or "{}")
    checks = [("lm", run.model, "scores")]
    if getattr(OPTIMIZERS.get(run.optimizer), "USES_PROPOSER", False):  # demos, prune, rules never ask it
        checks.append(("proposer_lm", made.get("proposer") or run.model, "proposes"))
    for key, model, role in checks:
        recorded, here = made.get(key), lm_settings(settings, model)
        if recorded is None or recorded == here:  # runs made before runs recorded their LMs are not checked
            continue
        has = here["model"] or f"no model {model!r}"
        return (f"run {run.id} {role} with {recorded['model']} ({recorded['max_tokens']} max tokens) but this "
                f"worker has {has} ({here['max_tokens']}): give the workers the same PROMPTLOOP_MODELS and "
                f"PROMPTLOOP_LM_MAX_TOKENS, or start a new run")
    return None


def create_run(engine: Engine, *, job_id: str | None = None, family: str, model: str, optimizer: str, seed: int, parent_id: int,
               settings: dict, train: list[list], val: list[list]) -> int:
    """Record a pending run and return its id."""
    with engine.begin() as conn:
        return conn.execute(insert(OptimizationRun).values(
            job_id=job_id, family=family, model=model, optimizer=optimizer, seed=seed, parent_id=parent_id,
            status="pending", created_at=_now(),  # not the server's clock: SQLite's keeps whole seconds
            cancel_requested=False, settings=json.dumps(settings, sort_keys=True), train_ids=json.dumps(train),
            val_ids=json.dumps(val), lease_token=0, lm_calls=0, cached_calls=0, seconds=0.0)).inserted_primary_key[0]


def claim(engine: Engine, run_id: int, owner: str, ttl_s: float) -> int | None:
    """Take the run's lease; the new fencing token, or None if another holder has it or the run ended."""
    now = _now()
    stmt = (update(OptimizationRun)
            .where(OptimizationRun.id == run_id, OptimizationRun.status.in_(OPEN),
                   (OptimizationRun.lease_expires_at.is_(None)) | (OptimizationRun.lease_expires_at < now))
            .values(lease_token=OptimizationRun.lease_token + 1, lease_owner=owner, status="running",
                    lease_expires_at=now + timedelta(seconds=ttl_s))
            .returning(OptimizationRun.lease_token))
    with engine.begin() as conn:
        return conn.execute(stmt).scalar_one_or_none()


def renew(engine: Engine, run_id: int, token: int, ttl_s: float) -> bool:
    """Extend the lease; False when it was lost (and ``cancel_requested`` is read by ``cancelled``)."""
    stmt = (update(OptimizationRun)
            .where(OptimizationRun.id == run_id, OptimizationRun.lease_token == token,
                   OptimizationRun.status == "running")
            .values(lease_expires_at=_now() + timedelta(seconds=ttl_s)))
    with engine.begin() as conn:
        return conn.execute(stmt).rowcount == 1


def cancelled(engine: Engine, run_id: int) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(select(OptimizationRun.cancel_requested)
                                 .where(OptimizationRun.id == run_id)).scalar_one())


def request_cancel(engine: Engine, run_id: int) -> str:
    """Ask a run to stop; a pending run stops at once. Returns the run's status afterwards."""
    with engine.begin() as conn:
        status = conn.execute(select(OptimizationRun.status).where(OptimizationRun.id == run_id)).scalar_one_or_none()
        if status is None:
            raise LookupError(f"no optimization run {run_id}")
        if status not in OPEN:
            return status
        conn.execute(update(OptimizationRun).where(OptimizationRun.id == run_id).values(cancel_requested=True))
        conn.execute(update(OptimizationRun).where(OptimizationRun.id == run_id, OptimizationRun.status == "pending")
                     .values(status="stopped", stop_reason="cancelled before it started", finished_at=_now()))
        # A running run whose holder is gone (its lease ran out) has nobody to see the request: stop it
        # here, and take the token so a holder that comes back cannot write.
        conn.execute(update(OptimizationRun).where(
            OptimizationRun.id == run_id, OptimizationRun.status == "running",
            OptimizationRun.lease_expires_at < _now()).values(
            status="stopped", stop_reason="cancelled by an operator (its holder was gone)", finished_at=_now(),
            lease_token=OptimizationRun.lease_token + 1, lease_expires_at=None))
        return conn.execute(select(OptimizationRun.status).where(OptimizationRun.id == run_id)).scalar_one()


def _fence(conn, run_id: int, token: int, ttl_s: float, **values) -> None:
    """Check the token (and extend the lease) inside the caller's transaction, or raise ``LeaseLost``."""
    result = conn.execute(update(OptimizationRun)
                          .where(OptimizationRun.id == run_id, OptimizationRun.lease_token == token,
                                 OptimizationRun.status == "running")
                          .values(**{"lease_expires_at": _now() + timedelta(seconds=ttl_s), **values}))
    if result.rowcount != 1:
        raise LeaseLost(f"optimization run {run_id}: lease {token} was taken over")


def record_trial(engine: Engine, run_id: int, token: int, ttl_s: float, *, trial: int, variant_id: int,
                 config: dict, score: float, metrics: dict, lm_calls: int, cached: int, seconds: float) -> None:
    """Checkpoint one scored candidate and the run's cost, atomically and only while holding the lease."""
    with engine.begin() as conn:
        _fence(conn, run_id, token, ttl_s, lm_calls=OptimizationRun.lm_calls + lm_calls,
               cached_calls=OptimizationRun.cached_calls + cached, seconds=OptimizationRun.seconds + seconds)
        conn.execute(insert(OptimizationTrial).values(
            run_id=run_id, trial=trial, variant_id=variant_id, config=json.dumps(config, sort_keys=True),
            score=score, metrics=json.dumps(metrics, sort_keys=True), lm_calls=lm_calls))


def add_cost(engine: Engine, run_id: int, token: int, ttl_s: float, *, lm_calls: int, cached: int,
             seconds: float) -> None:
    """Count LM calls made outside trials (validation, proposals)."""
    with engine.begin() as conn:
        _fence(conn, run_id, token, ttl_s, lm_calls=OptimizationRun.lm_calls + lm_calls,
               cached_calls=OptimizationRun.cached_calls + cached, seconds=OptimizationRun.seconds + seconds)


def finish(engine: Engine, run_id: int, token: int, *, status: str, reason: str, result: dict | None = None,
           best_variant_id: int | None = None, register=None) -> None:
    """End the run (``register(conn)`` may add the candidate in the same transaction)."""
    with engine.begin() as conn:
        if register is not None:
            best_variant_id = register(conn)
        _fence(conn, run_id, token, 0, status=status, stop_reason=reason[:4000], finished_at=_now(),
               best_variant_id=best_variant_id, lease_expires_at=None,
               result=json.dumps(result, sort_keys=True) if result is not None else None)


def load_run(engine: Engine, run_id: int) -> OptimizationRun:
    from sqlalchemy.orm import Session

    with Session(engine, expire_on_commit=False) as session:
        run = session.get(OptimizationRun, run_id)
        if run is None:
            raise LookupError(f"no optimization run {run_id}")
        return run


def load_trials(engine: Engine, run_id: int) -> list[dict]:
    """The run's checkpointed trials, in order."""
    with engine.connect() as conn:
        rows = conn.execute(select(OptimizationTrial).where(OptimizationTrial.run_id == run_id)
                            .order_by(OptimizationTrial.trial)).all()
    return [{"trial": r.trial, "variant_id": r.variant_id, "config": json.loads(r.config), "score": r.score,
             "metrics": json.loads(r.metrics), "lm_calls": r.lm_calls} for r in rows]


class Heartbeat:
    """Renews a lease in the background while a long trial scores; ``lost`` turns True if it fails."""

    def __init__(self, engine: Engine, run_id: int, token: int, ttl_s: float):
        self.engine, self.run_id, self.token, self.ttl_s = engine, run_id, token, ttl_s
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"lease-{run_id}")

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                if not renew(self.engine, self.run_id, self.token, self.ttl_s):
                    self.lost = True
                    return
            except Exception:  # a database blip: try again next beat; the lease outlives a few misses
                continue

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
