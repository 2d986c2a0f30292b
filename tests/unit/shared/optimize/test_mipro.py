"""MIPROv2 with DSPy's GroundedProposer and Optuna's TPE, on the embedded database with scripted models:
"follow" (the target, which obeys task guidance about the completion delimiter and the extractor) and
"propose" (the proposal model, answering DSPy's proposal prompts in its chat-adapter format)."""

import json
import time

import pytest
from sqlalchemy import select

from shared.families import get_family
from shared.families.template import PromptTemplate
from shared.models import OptimizationTrial, PromptVariant
from shared.optimize import demo_search
from shared.optimize.base import RunContext
from shared.optimize.driver import run_optimization
from shared.optimize.mipro_search import DEFAULTS, demo_sets
from shared.optimize.promptset import GUIDANCE
from shared.optimize.runs import load_run, load_trials, request_cancel
from shared.optimize.start import start_optimization
from shared.settings import load_settings

OBJECTIVE = {"entity_f1": 0.4, "format_compliance": 0.4, "hallucination_rate": -0.2}


@pytest.fixture
def menv(env):
    """``env`` plus proposal models: DSPy-format answers, a small model's unparseable ones, one that errors."""
    settings, engine = env
    models = {**settings.models, "proposer": "scripted/propose", "babbler": "scripted/hash",
              "down": "scripted/propose?fail_on=basic_instruction"}
    return load_settings(DATABASE_URL=settings.database_url, PROMPTLOOP_MODELS=models), engine


def start(settings, engine, **kw):
    args = dict(family="entity_extraction", model="m", optimizer="mipro", dataset="conll04", n_train=6, n_val=6,
                budget_calls=200, objective=OBJECTIVE, proposer="proposer", seed=3)
    return start_optimization(engine, settings, **{**args, **kw})


def pairs(engine, run_id):
    return [(t["config"]["instruction"], t["config"]["demo_set"]) for t in load_trials(engine, run_id)[1:]]


def test_mipro_registers_a_candidate_that_beats_the_parent(menv):
    settings, engine = menv
    run_id = start(settings, engine)
    out = run_optimization(engine, settings, run_id)
    assert out["status"] == "done" and out["candidate"], out
    assert out["validation"]["candidate_objective"] > out["validation"]["parent_objective"]
    assert out["validation"]["candidate"]["format_compliance"] == 1.0
    trials = load_trials(engine, run_id)
    assert trials[0]["config"]["kind"] == "parent" and {t["config"]["kind"] for t in trials[1:]} == {"mipro"}
    # Candidate 0 is the seed (the signature's instructions); the others are the proposer's.
    seed = get_family("entity_extraction").signature.instructions
    assert trials[1]["config"]["instruction"] == 0 and trials[1]["config"]["guidance"] == seed
    proposed = {t["config"]["guidance"] for t in trials if t["config"].get("instruction")}
    assert any("completion delimiter" in g for g in proposed)
    best = trials[out["search"]["best_trial"]]
    with engine.connect() as conn:
        template = PromptTemplate.from_json(conn.execute(select(PromptVariant.template)
                                                         .where(PromptVariant.id == out["candidate"])).scalar_one())
    assert f"{GUIDANCE}\n{best['config']['guidance']}" in template.system
    assert len(out["program"]["program"]["demos"]) == len(best["config"]["demo_ids"])
    assert load_run(engine, run_id).lm_calls <= 200
    # A new run's demos describe entities by the words around them, as a new demos run's do.
    assert json.loads(load_run(engine, run_id).settings)["optimizer_options"]["descriptions"] == "grounded"
    rows = [r for t in trials[1:] for d in t["config"]["demos"] for r in d["extraction"].splitlines()
            if r.startswith("entity")]
    assert rows and not all(r.endswith("named in the text.") for r in rows)


def test_trials_explore_pairs_and_a_seed_reproduces_them(menv):
    settings, engine = menv
    a, b, c = start(settings, engine), start(settings, engine), start(settings, engine, seed=4)
    for run_id in (a, b, c):
        run_optimization(engine, settings, run_id)
    explored = pairs(engine, a)
    assert len(set(explored)) == len(explored) >= 4  # a pair suggested again is not scored again
    assert len({i for i, _ in explored}) > 1 and len({d for _, d in explored}) > 1
    assert pairs(engine, b) == explored != pairs(engine, c)
    assert [t["config"]["guidance"] for t in load_trials(engine, b)[1:]] == \
           [t["config"]["guidance"] for t in load_trials(engine, a)[1:]]
    # The second run's proposals and scores all came from the shared LM cache.
    assert load_run(engine, b).lm_calls == 0 and load_run(engine, b).cached_calls > 0


def test_an_interrupted_mipro_run_resumes_where_it_stopped(menv):
    settings, engine = menv
    run_id = start(settings, engine)

    class Crash(BaseException):
        pass

    def crash_after_three(record, history, calls_left):
        if len(history) == 3:
            raise Crash()

    with pytest.raises(Crash):
        run_optimization(engine, settings, run_id, ttl_s=0.5, progress=crash_after_three)
    time.sleep(0.6)  # the dead holder's lease runs out
    out = run_optimization(engine, settings, run_id, ttl_s=5)
    reference = start(settings, engine)
    expected = run_optimization(engine, settings, reference)
    assert out["search"] == expected["search"] and pairs(engine, run_id) == pairs(engine, reference)
    with engine.connect() as conn:
        numbers = conn.execute(select(OptimizationTrial.trial).where(OptimizationTrial.run_id == run_id)
                               .order_by(OptimizationTrial.trial)).scalars().all()
    assert numbers == list(range(out["search"]["trials"]))  # nothing scored twice, nothing skipped


def test_budget_stops_the_search_with_its_reason(menv):
    settings, engine = menv
    run_id = start(settings, engine, budget_calls=50)
    out = run_optimization(engine, settings, run_id)
    assert out["reason"].startswith("budget: ") and "of 50 LM calls used" in out["reason"]
    assert 2 <= len(load_trials(engine, run_id)) < 1 + 1 + DEFAULTS["num_trials"]
    assert load_run(engine, run_id).lm_calls <= 50


def test_a_budget_spent_while_proposing_stops_the_run_through_dspy(menv, caplog):
    settings, engine = menv
    # The parent's 6 calls and 12 reserved for validation leave 2: DSPy's data summary catches every
    # error it meets, but the stop must still end the search rather than count as a failed proposal.
    run_id = start(settings, engine, budget_calls=6 + 12 + 2)
    out = run_optimization(engine, settings, run_id)
    assert out["reason"].startswith("budget: ") and len(load_trials(engine, run_id)) == 1
    assert load_run(engine, run_id).lm_calls <= 20
    assert not [r for r in caplog.records if "proposal" in r.getMessage()]  # a stop is not a failed proposal


def test_a_cancel_while_proposing_stops_the_run(menv, caplog):
    settings, engine = menv
    run_id = start(settings, engine)

    def cancel_after_parent(record, history, calls_left):
        request_cancel(engine, run_id)

    out = run_optimization(engine, settings, run_id, progress=cancel_after_parent)
    assert out["status"] == "stopped" and out["reason"] == "cancelled by an operator"
    assert len(load_trials(engine, run_id)) == 1
    assert not [r for r in caplog.records if "proposal" in r.getMessage()]


@pytest.mark.parametrize("proposer", ["babbler", "down"])
def test_failed_proposals_leave_the_seed_and_the_demo_sets(menv, proposer):
    settings, engine = menv
    run_id = start(settings, engine, proposer=proposer)
    out = run_optimization(engine, settings, run_id)
    assert "1 instructions (3 proposals failed)" in out["reason"]
    explored = pairs(engine, run_id)
    assert {i for i, _ in explored} == {0} and len({d for _, d in explored}) > 1
    assert out["candidate"]  # labelled demos alone fix the format


def test_demo_sets_are_demo_search_candidates_and_only_extraction_has_them(menv):
    settings, engine = menv
    family = "entity_extraction"
    ctx = RunContext(engine=engine, settings=settings, run_id=0, family=family, model="m", seed=3,
                     parent=get_family(family).baseline(), options={}, train=[])
    sets = demo_sets(ctx, DEFAULTS)
    assert len(sets) == DEFAULTS["num_demo_sets"] and sets[0] == []
    for k in range(1, len(sets)):
        proposal = demo_search.propose(ctx, [{}] * k)
        assert [i for i, _, _ in sets[k]] == proposal.config["demo_ids"]
    other = RunContext(engine=engine, settings=settings, run_id=0, family="summarization", model="m", seed=3,
                       parent=get_family("summarization").baseline(), options={}, train=[])
    assert demo_sets(other, DEFAULTS) == [[]]


def test_an_old_mipro_run_keeps_the_demo_descriptions_it_started_with(menv):
    from shared.optimize import mipro_search

    settings, engine = menv
    ctx = RunContext(engine=engine, settings=settings, run_id=0, family="entity_extraction", model="m", seed=3,
                     parent=get_family("entity_extraction").baseline(), options={}, train=[])
    assert mipro_search._style(ctx) == "type"  # stored before the option: no "descriptions" key
    assert mipro_search.prepare("entity_extraction", {})["descriptions"] == "grounded"
    with pytest.raises(ValueError, match="descriptions are one of type, grounded, relations, not 'long'"):
        mipro_search.prepare("entity_extraction", {"descriptions": "long"})
