"""Optimization runs in process on the embedded database, with a model whose answers follow the prompt."""

import json
import time

import pytest
from sqlalchemy import func, select, update

from shared.models import OptimizationRun, OptimizationTrial, PromptVariant
from shared.optimize import registry
from shared.optimize.base import Proposal
from shared.optimize.driver import run_optimization
from shared.optimize.promptset import components, rebuild
from shared.optimize.runs import claim, load_run, load_trials, request_cancel
from shared.optimize.start import start_optimization

OBJECTIVE = {"entity_f1": 0.4, "format_compliance": 0.4, "hallucination_rate": -0.2}


def start(settings, engine, **kw):
    args = dict(family="entity_extraction", model="m", optimizer="demos", dataset="conll04", n_train=6, n_val=6,
                budget_calls=200, objective=OBJECTIVE, optimizer_options={"candidates": 5}, seed=3)
    return start_optimization(engine, settings, **{**args, **kw})


def test_demo_search_registers_a_candidate_that_beats_the_parent(env):
    settings, engine = env
    run_id = start(settings, engine)
    out = run_optimization(engine, settings, run_id)
    assert out["status"] == "done" and out["candidate"], out
    validation = out["validation"]
    assert validation["candidate"]["format_compliance"] == 1.0 > validation["parent"]["format_compliance"]
    assert validation["candidate_objective"] > validation["parent_objective"]
    with engine.connect() as conn:
        name, status, parent = conn.execute(select(PromptVariant.name, PromptVariant.status, PromptVariant.parent_id)
                                            .where(PromptVariant.id == out["candidate"])).one()
    assert (name, status) == ("DSPY_A", "candidate") and parent == load_run(engine, run_id).parent_id
    program = out["program"]
    assert program["program"]["demos"] and program["metadata"]["dependency_versions"]["dspy"]
    assert json.loads(json.dumps(program)) == program  # JSON, never pickle
    run = load_run(engine, run_id)
    assert run.lm_calls == 6 * 6 + 2 * 6 and run.status == "done"
    # The scores hold for this LM: the run records its model string and answer length.
    assert json.loads(run.settings)["lm"] == {"model": settings.models["m"], "max_tokens": settings.lm_max_tokens}


def test_runs_are_seeded_and_reproducible(env):
    settings, engine = env
    a, b, c = start(settings, engine), start(settings, engine), start(settings, engine, seed=4)
    for run_id in (a, b, c):
        run_optimization(engine, settings, run_id)
    ids = {r: [t["config"].get("demo_ids") for t in load_trials(engine, r)] for r in (a, b, c)}
    assert ids[a] == ids[b] != ids[c]
    # The second run's answers all came from the shared LM cache.
    assert load_run(engine, b).cached_calls == load_run(engine, b).lm_calls + load_run(engine, b).cached_calls
    # The same best prompt is registered once: the repeat run points at the first run's candidate.
    assert load_run(engine, b).best_variant_id == load_run(engine, a).best_variant_id
    assert "registered before" in load_run(engine, b).stop_reason
    names = sorted(engine.connect().execute(select(PromptVariant.name).where(PromptVariant.status == "candidate")).scalars())
    assert names == ["DSPY_A", "DSPY_B"] and load_run(engine, c).best_variant_id != load_run(engine, a).best_variant_id


def test_an_interrupted_run_resumes_from_its_checkpoint(env):
    settings, engine = env
    run_id = start(settings, engine)

    class Stop(BaseException):
        pass

    def crash_after_three(record, history, calls_left):
        if len(history) == 3:
            raise Stop()

    with pytest.raises(Stop):
        run_optimization(engine, settings, run_id, ttl_s=0.5, progress=crash_after_three)
    assert [t["trial"] for t in load_trials(engine, run_id)] == [0, 1, 2]
    time.sleep(0.6)  # the dead holder's lease runs out
    out = run_optimization(engine, settings, run_id, ttl_s=5)
    assert out["status"] == "done" and out["candidate"]
    with engine.connect() as conn:
        trials = conn.execute(select(OptimizationTrial.trial).where(OptimizationTrial.run_id == run_id)
                              .order_by(OptimizationTrial.trial)).scalars().all()
    assert trials == list(range(6))  # nothing scored twice, nothing skipped
    reference = start(settings, engine)
    assert run_optimization(engine, settings, reference)["search"] == out["search"] | {"trials": 6}


def test_a_worker_with_another_lm_does_not_score_the_run(env):
    settings, engine = env
    run_id = start(settings, engine)
    other = settings.model_copy(update={"lm_max_tokens": settings.lm_max_tokens + 1})
    out = run_optimization(engine, other, run_id)
    assert out["status"] == "failed" and "PROMPTLOOP_LM_MAX_TOKENS" in out["reason"], out
    assert load_run(engine, run_id).lm_calls == 0 and load_trials(engine, run_id) == []


def test_a_worker_with_another_proposer_lm_does_not_go_on_with_a_run_that_asks_it(env):
    settings, engine = env
    other = settings.model_copy(update={"models": {**settings.models, "reflector": "scripted/follow"}})
    gepa = start(settings, engine, optimizer="gepa", optimizer_options={}, proposer="reflector")
    out = run_optimization(engine, other, gepa)
    assert out["status"] == "failed" and "proposes with scripted/reflect" in out["reason"], out
    assert load_run(engine, gepa).lm_calls == 0 and load_trials(engine, gepa) == []
    demos = start(settings, engine, proposer="reflector")  # demo search never asks the proposer
    assert run_optimization(engine, other, demos)["status"] == "done"


def test_a_run_recorded_before_runs_recorded_their_lms_still_runs(env):
    settings, engine = env
    run_id = start(settings, engine, optimizer="gepa", optimizer_options={}, proposer="reflector")
    with engine.begin() as conn:
        made = json.loads(conn.execute(select(OptimizationRun.settings).where(OptimizationRun.id == run_id)).scalar_one())
        del made["lm"], made["proposer_lm"]
        conn.execute(update(OptimizationRun).where(OptimizationRun.id == run_id).values(settings=json.dumps(made)))
    assert run_optimization(engine, settings, run_id)["status"] == "done"


def test_a_held_lease_keeps_a_second_copy_out(env):
    settings, engine = env
    run_id = start(settings, engine)
    assert claim(engine, run_id, "first", ttl_s=60) == 1
    out = run_optimization(engine, settings, run_id)
    assert out["status"] == "held" and "first" in out["reason"]
    assert load_trials(engine, run_id) == []


def test_budget_stops_the_run_with_its_reason(env):
    settings, engine = env
    run_id = start(settings, engine, budget_calls=6 * 3 + 2 * 6)
    out = run_optimization(engine, settings, run_id)
    assert out["reason"].startswith("budget: 18 of 30 LM calls used")
    assert len(load_trials(engine, run_id)) == 3
    assert load_run(engine, run_id).lm_calls <= 30


def test_time_budget_stops_the_run(env):
    settings, engine = env
    run_id = start(settings, engine, budget_minutes=1e-6)
    out = run_optimization(engine, settings, run_id)
    # Past twice the budget even the first candidate is cut short (a hard stop while scoring), and the
    # run concludes with what it has: nothing.
    assert out["reason"].startswith("time: stopped while scoring") and out["candidate"] is None
    assert load_trials(engine, run_id) == [] and load_run(engine, run_id).status == "done"



def test_cancel_stops_a_running_run_and_a_pending_one(env):
    settings, engine = env
    pending = start(settings, engine)
    assert request_cancel(engine, pending) == "stopped"
    assert run_optimization(engine, settings, pending)["status"] == "stopped"

    running = start(settings, engine)

    def cancel_after_two(record, history, calls_left):
        if len(history) == 2:
            request_cancel(engine, running)

    out = run_optimization(engine, settings, running, progress=cancel_after_two)
    run = load_run(engine, running)
    assert out["status"] == run.status == "stopped" and run.stop_reason == "cancelled by an operator"
    assert len(load_trials(engine, running)) == 2 and run.best_variant_id is None


def test_a_candidate_that_drops_a_placeholder_is_recorded_as_refused(env, monkeypatch):
    settings, engine = env

    class DropsDelimiter:
        @staticmethod
        def propose(ctx, history):
            if len(history) > 1:
                return None
            instruction = components(ctx.family, ctx.parent)["instruction"].replace("{completion_delimiter}", "DONE")
            return Proposal(rebuild(ctx.family, ctx.parent, instruction=instruction), {"kind": "test"})

    monkeypatch.setitem(registry.OPTIMIZERS, "drops", DropsDelimiter)
    run_id = start(settings, engine, optimizer="drops")
    out = run_optimization(engine, settings, run_id)
    trial = load_trials(engine, run_id)[1]
    assert trial["score"] == -1.0 and "completion_delimiter" in trial["config"]["refused"][0]
    assert out["candidate"] is None
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(PromptVariant)
                            .where(PromptVariant.status == "candidate")).scalar_one() == 0


def test_unknown_names_get_one_clear_sentence(env):
    settings, engine = env
    with pytest.raises(ValueError, match="unknown optimizer 'nope'; known: demos"):
        start(settings, engine, optimizer="nope")
    with pytest.raises(ValueError, match="no model configured for 'x'"):
        start(settings, engine, model="x")
    with pytest.raises(ValueError, match="unknown prompt family"):
        start(settings, engine, family="poems")


def test_cancel_stops_a_run_whose_holder_is_gone(env):
    settings, engine = env
    run_id = start(settings, engine)
    assert claim(engine, run_id, "gone", ttl_s=0.01) == 1
    time.sleep(0.05)
    assert request_cancel(engine, run_id) == "stopped"
    run = load_run(engine, run_id)
    assert run.stop_reason == "cancelled by an operator (its holder was gone)" and run.lease_token == 2
