"""Running one optimization: claim the run, propose and score candidates, validate the best, register it.

``run_optimization`` is what the ``optimize`` task calls. It holds the run's lease (fencing token) for
its whole life, checkpoints after each scored candidate (a resumed run skips them), stops at its
budget (LM calls, minutes) or on ``promptloop optimize cancel``, and records why it stopped.
"""

from __future__ import annotations

import json
import logging
import time

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from ..evaluation import ExampleRef
from ..families.template import PromptTemplate
from ..models import PromptVariant
from ..settings import Settings
from . import runs
from .base import Proposal, RunContext
from .program import program_state
from .promptset import components
from .registry import get_optimizer
from .scoring import OUTPUT_WORDS, Runner, in_process, objective, score_variant
from .tools import Cancelled, SearchTools, StopSearch
from .variants import register_candidate, registered_as

log = logging.getLogger(__name__)
DEFAULT_WEIGHTS = {"overall": 1.0}


def _refs(ids: str, family: str) -> list[ExampleRef]:
    return [ExampleRef(s, i, family) for s, i in json.loads(ids)]


def _parent(engine: Engine, parent_id: int) -> PromptTemplate:
    """A variant's template (the run's parent, or a trial's)."""
    from sqlalchemy import select

    with engine.connect() as conn:
        return PromptTemplate.from_json(conn.execute(select(PromptVariant.template)
                                                     .where(PromptVariant.id == parent_id)).scalar_one())


def run_optimization(engine: Engine, settings: Settings, run_id: int, runner: Runner = in_process,
                     owner: str | None = None, ttl_s: float = 120.0, progress=None) -> dict:
    """Run (or resume) optimization ``run_id``; returns ``{"run_id", "status", "reason", ...}``.

    ``status`` is ``held`` when another holder has the lease (a duplicate delivery): nothing was done.
    """
    owner = owner or runs.new_owner()
    token = runs.claim(engine, run_id, owner, ttl_s)
    run = runs.load_run(engine, run_id)
    if token is None:
        return {"run_id": run_id, "status": run.status if run.status not in runs.OPEN else "held",
                "reason": run.stop_reason or f"lease held by {run.lease_owner}",
                "lease_expires_at": run.lease_expires_at, "candidate": run.best_variant_id}
    with runs.Heartbeat(engine, run_id, token, ttl_s) as beat:
        try:
            return _optimize(engine, settings, run, token, ttl_s, runner, beat, progress)
        except runs.LeaseLost as exc:
            return {"run_id": run_id, "status": "lease_lost", "reason": str(exc)}
        except (Cancelled, StopSearch) as exc:  # raised while a candidate was being scored
            runs.finish(engine, run_id, token, status="stopped", reason=str(exc))
            return {"run_id": run_id, "status": "stopped", "reason": str(exc)}
        except DBAPIError:
            raise  # the database is out: the task retries; checkpoints keep what was scored
        except Exception as exc:  # an optimizer or data error: record it, a retry would fail the same way
            log.exception("optimization run %s failed", run_id)
            runs.finish(engine, run_id, token, status="failed", reason=f"{type(exc).__name__}: {exc}")
            return {"run_id": run_id, "status": "failed", "reason": f"{type(exc).__name__}: {exc}"}


def _optimize(engine, settings, run, token, ttl_s, runner, beat, progress) -> dict:
    if why := runs.lm_mismatch(settings, run):  # its scores so far would not compare with this LM's
        raise ValueError(why)
    opts = json.loads(run.settings)
    weights = opts.get("objective") or DEFAULT_WEIGHTS
    budget_calls = int(opts.get("budget_calls") or 300)
    budget_s = float(opts.get("budget_minutes") or settings_timeout(settings)) * 60
    parent = _parent(engine, run.parent_id)
    train, val = _refs(run.train_ids, run.family), _refs(run.val_ids, run.family)
    ctx = RunContext(engine=engine, settings=settings, run_id=run.id, family=run.family, model=run.model,
                     seed=run.seed, parent=parent, options=opts.get("optimizer_options", {}), train=train)
    optimizer = get_optimizer(run.optimizer)
    runner = _with_stop(runner, engine, run, beat, budget_s)
    history = runs.load_trials(engine, run.id)
    tools = SearchTools(engine=engine, settings=settings, run=run, token=token, ttl_s=ttl_s, runner=runner,
                        parent=parent, train=train, weights=weights, beat=beat, history=history,
                        budget_calls=budget_calls, budget_s=budget_s, reserve_calls=2 * len(val), progress=progress)
    ctx.score = tools
    try:
        if hasattr(optimizer, "search"):
            # A search replays its steps after a resume (the LM cache answers them); checkpointed trials
            # are not recorded again.
            tools.score(parent, config={"kind": "parent"})
            reason = optimizer.search(ctx, tools) or "search finished"
        else:
            reason = _propose_loop(optimizer, ctx, tools, parent, history)
    except StopSearch as exc:
        reason = str(exc)
    except Cancelled as exc:
        runs.finish(engine, run.id, token, status="stopped", reason=str(exc))
        return {"run_id": run.id, "status": "stopped", "reason": str(exc)}
    return _conclude(engine, settings, run, token, ttl_s, runner, parent, history, train, val, weights, reason, ctx)


def _propose_loop(optimizer, ctx: RunContext, tools: SearchTools, parent: PromptTemplate, history: list) -> str:
    """Propose-style optimizers (demo search): trial ``i`` depends only on the seed, the parent and the
    history, so a resumed run goes on at the first trial that was not checkpointed."""
    tools.full_evaluations = len(history)
    while True:
        trial = len(history)
        proposal = Proposal(parent, {"kind": "parent"}) if trial == 0 else optimizer.propose(ctx, history)
        if proposal is None:
            return f"search finished: {trial - 1} candidates scored"
        tools.score(proposal.template, config={**proposal.config, "demos": proposal.demos})


def _with_stop(runner, engine, run, beat, budget_s):
    """The runner, given a ``stop`` check: lost lease, cancel, or twice the time budget (a hard stop
    while a candidate is scored; the soft limit between candidates reserves time for validation)."""
    deadline = time.monotonic() + 2 * budget_s - run.seconds

    def stop() -> None:
        if beat.lost:
            raise runs.LeaseLost(f"optimization run {run.id}: lease renewal failed")
        if runs.cancelled(engine, run.id):
            raise Cancelled("cancelled by an operator")
        if time.monotonic() > deadline:
            raise StopSearch(f"time: stopped while scoring, past twice the {budget_s / 60:.1f}-minute budget")

    def run_chunks(engine_, settings_, batch_id, chunks, stop=None) -> None:
        runner(engine_, settings_, batch_id, chunks, stop=check)

    check = stop
    return run_chunks


def _chunk_size(run) -> int:
    """Examples per evaluation chunk: smaller chunks spread over more workers and save progress sooner."""
    return int(json.loads(run.settings).get("chunk_size") or 10)


def settings_timeout(settings: Settings) -> float:
    """The default time budget: ``optimization_timeout_minutes`` (PROMPTLOOP_OPTIMIZATION_TIMEOUT_MINUTES)."""
    return settings.optimization_timeout_minutes


def _conclude(engine, settings, run, token, ttl_s, runner, parent, history, train, val, weights, reason, ctx) -> dict:
    base = history[0]["score"] if history else None
    scored = [h for h in history[1:] if "refused" not in h["config"]]
    best = max(scored, key=lambda h: (h["score"], -h["trial"])) if scored else None
    search = {"trials": len(history), "parent_score": base, "best_trial": best and best["trial"],
              "best_score": best and best["score"], "stop": reason}
    if best is None or base is None or best["score"] <= base:
        why = f"{reason}; no candidate beat the parent on the search set"
        runs.finish(engine, run.id, token, status="done", reason=why, result={"search": search})
        return {"run_id": run.id, "status": "done", "reason": why, "candidate": None, "search": search}
    parent_val = score_variant(engine, settings, run.parent_id, val, runner, batch_size=_chunk_size(run))
    best_val = score_variant(engine, settings, best["variant_id"], val, runner, batch_size=_chunk_size(run))
    runs.add_cost(engine, run.id, token, ttl_s, lm_calls=parent_val.lm_calls + best_val.lm_calls,
                  cached=parent_val.cached + best_val.cached, seconds=parent_val.seconds + best_val.seconds)
    validation = {"parent": parent_val.means(), "candidate": best_val.means(),
                  OUTPUT_WORDS: {"parent": parent_val.mean(OUTPUT_WORDS), "candidate": best_val.mean(OUTPUT_WORDS)},
                  "parent_objective": objective(parent_val, weights), "candidate_objective": objective(best_val, weights)}
    result = {"search": search, "validation": validation}
    accepted_parent, accepted_best = (parent_val.mean("format_compliance"), best_val.mean("format_compliance"))
    if "format_compliance" in validation["parent"] and accepted_best < accepted_parent:
        why = (f"{reason}; best candidate refused: LightRAG's parser accepted {accepted_best:.2f} of its validation "
               f"outputs against the parent's {accepted_parent:.2f}")
        runs.finish(engine, run.id, token, status="done", reason=why, result=result)
        return {"run_id": run.id, "status": "done", "reason": why, "candidate": None, **result}
    if validation["candidate_objective"] <= validation["parent_objective"]:
        why = (f"{reason}; best candidate not registered: on the validation set it scored "
               f"{validation['candidate_objective']:.3f} against the parent's {validation['parent_objective']:.3f}")
        runs.finish(engine, run.id, token, status="done", reason=why, result=result)
        return {"run_id": run.id, "status": "done", "reason": why, "candidate": None, **result}
    template = _parent(engine, best["variant_id"])
    parts = components(run.family, template)
    result["program"] = program_state(run.family, template, parts["instruction"], best["config"].get("demos", []))
    with engine.connect() as conn:
        earlier = registered_as(conn, run.family, run.model, template)
    if earlier is not None:  # an earlier run found the same prompt: point at it, register no twin
        why = f"{reason}; the best candidate is {earlier[1]} (variant {earlier[0]}), registered before"
        runs.finish(engine, run.id, token, status="done", reason=why, result=result, best_variant_id=earlier[0])
        return {"run_id": run.id, "status": "done", "reason": why, "candidate": earlier[0], **result}
    for attempt in range(3):  # another run of the same family x model may take the same DSPY_ name first
        try:
            runs.finish(engine, run.id, token, status="done", reason=f"{reason}; candidate registered", result=result,
                        register=lambda conn: register_candidate(conn, run.family, run.model, template, run.parent_id))
            break
        except IntegrityError:
            if attempt == 2:
                raise
    final = runs.load_run(engine, run.id)
    return {"run_id": run.id, "status": "done", "reason": final.stop_reason, "candidate": final.best_variant_id,
            **result}
