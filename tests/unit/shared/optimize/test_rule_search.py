"""Rule search: written rules added to the task guidance one at a time, then the winners together."""

import shutil

import pytest
from sqlalchemy import select

from shared.db import make_engine
from shared.evaluation import register_baselines
from shared.families.template import PromptTemplate
from shared.models import PromptVariant
from shared.optimize import rule_search
from shared.optimize.base import RunContext
from shared.optimize.driver import run_optimization
from shared.optimize.promptset import check_invariants, components, guidance_of, with_guidance
from shared.optimize.runs import load_trials
from shared.optimize.start import start_optimization
from shared.optimize.variants import active_variant
from shared.settings import load_settings

FAMILY = "entity_extraction"
#: What the scripted ``follow`` model obeys: "never the extractor" (no invented entity) and the delimiter.
RULES = ["Be brief.", "Extract the entities of the text, never the extractor.",
         "End the answer with the completion delimiter."]


def _history(*scores):
    return [{"trial": t, "score": s, "config": {}} for t, s in enumerate(scores)]


def test_trials_add_one_rule_each_then_the_winners_then_all():
    rules = ["a", "b", "c", "d"]
    assert rule_search.chosen_sets(rules, _history(0.5, 0.4)) == [(0,), (1,), (2,), (3,)]  # singles first
    assert rule_search.chosen_sets(rules, _history(0.5, 0.6, 0.4, 0.7, 0.5)) == [(0,), (1,), (2,), (3,), (0, 2),
                                                                                 (0, 1, 2, 3)]
    one_winner = rule_search.chosen_sets(rules, _history(0.5, 0.6, 0.4, 0.4, 0.5))
    assert one_winner[4:] == [(0, 1, 2, 3)]  # a single winner was scored already: straight to all
    all_won = rule_search.chosen_sets(rules, _history(0.5, 0.6, 0.6, 0.6, 0.6))
    assert all_won[4:] == [(0, 1, 2, 3)]  # the winners are all of them: proposed once
    refused = _history(0.5, 0.6, 0.4, 0.7, 0.5)
    refused[3]["config"] = {"refused": ["placeholders dropped"]}
    assert rule_search.chosen_sets(rules, refused)[4] == (0, 1, 2, 3)  # a refused trial is no winner


@pytest.fixture
def env(conll_db, tmp_path):
    path = tmp_path / "t.db"
    shutil.copy(conll_db, path)
    engine = make_engine(f"sqlite:///{path}")
    register_baselines(engine, ["m"], [FAMILY])
    settings = load_settings(DATABASE_URL=f"sqlite:///{path}", PROMPTLOOP_MODELS={"m": "scripted/follow"})
    yield settings, engine
    engine.dispose()


def test_proposals_keep_placeholders_demos_and_the_parents_own_guidance(env):
    settings, engine = env
    baseline = PromptTemplate.from_json(active_variant(engine, FAMILY, "m").template)
    parent = with_guidance(FAMILY, baseline, "Keep {braces} literal.")
    ctx = RunContext(engine=engine, settings=settings, run_id=1, family=FAMILY, model="m", seed=0, parent=parent,
                     options={}, train=[])
    first = rule_search.propose(ctx, _history(0.5))
    assert first.config["rules"] == [0] and first.config["text"] == [rule_search.EXTRACTION_RULES[0]]
    assert guidance_of(FAMILY, first.template) == "Keep {braces} literal. " + rule_search.EXTRACTION_RULES[0]
    assert check_invariants(FAMILY, parent, first.template) == []
    assert components(FAMILY, first.template)["demos"] == components(FAMILY, parent)["demos"]
    n = len(rule_search.EXTRACTION_RULES)
    assert rule_search.propose(ctx, _history(*[0.5] * (n + 1))).config["rules"] == list(range(n))
    assert rule_search.propose(ctx, _history(*[0.5] * (n + 2))) is None


def test_the_search_keeps_the_rules_the_model_follows_to_a_better_score(env):
    settings, engine = env
    run_id = start_optimization(engine, settings, family=FAMILY, model="m", optimizer="rules", dataset="conll04",
                                n_train=4, n_val=4, budget_calls=100, seed=0,
                                objective={"format_compliance": 1.0, "hallucination_rate": -1.0},
                                optimizer_options={"rules": RULES})
    out = run_optimization(engine, settings, run_id)
    assert out["status"] == "done" and out["candidate"], out
    trials = load_trials(engine, run_id)
    assert [t["config"].get("rules") for t in trials] == [None, [0], [1], [2], [1, 2], [0, 1, 2]]
    # Trials 4 (the two rules it follows) and 5 (all three: "Be brief." changes nothing) tie; the earlier wins.
    assert out["search"]["best_trial"] == 4
    assert out["validation"]["candidate"]["format_compliance"] == 1.0
    assert out["validation"]["candidate"]["hallucination_rate"] == 0.0
    assert out["validation"]["parent"]["format_compliance"] == 0.0
    with engine.connect() as conn:
        template = PromptTemplate.from_json(conn.execute(select(PromptVariant.template)
                                                         .where(PromptVariant.id == out["candidate"])).scalar_one())
    assert guidance_of(FAMILY, template) == " ".join(RULES[1:])


def test_a_rule_the_parent_already_has_is_not_added_again(env):
    settings, engine = env
    baseline = PromptTemplate.from_json(active_variant(engine, FAMILY, "m").template)
    parent = with_guidance(FAMILY, baseline, RULES[1])
    ctx = RunContext(engine=engine, settings=settings, run_id=1, family=FAMILY, model="m", seed=0, parent=parent,
                     options={"rules": RULES}, train=[])
    assert guidance_of(FAMILY, rule_search.propose(ctx, _history(0.5, 0.5)).template) == RULES[1]
    assert guidance_of(FAMILY, rule_search.propose(ctx, _history(*[0.5] * 4)).template) == " ".join(
        [RULES[1], RULES[0], RULES[2]])


def test_every_rule_of_a_large_bank_is_tried_unless_candidates_caps_it(env):
    settings, engine = env
    baseline = PromptTemplate.from_json(active_variant(engine, FAMILY, "m").template)
    rules = [f"Rule {k}." for k in range(15)]
    ctx = RunContext(engine=engine, settings=settings, run_id=1, family=FAMILY, model="m", seed=0, parent=baseline,
                     options={"rules": rules}, train=[])
    assert rule_search.propose(ctx, _history(*[0.5] * 15)).config["rules"] == [14]
    assert rule_search.propose(ctx, _history(*[0.5] * 16)).config["rules"] == list(range(15))
    ctx.options = {"rules": rules, "candidates": 3}
    assert rule_search.propose(ctx, _history(*[0.5] * 4)) is None


def test_a_run_keeps_the_bank_it_started_with(env, monkeypatch):
    settings, engine = env
    run_id = start_optimization(engine, settings, family=FAMILY, model="m", optimizer="rules", dataset="conll04",
                                n_train=2, n_val=2, budget_calls=100, seed=0)
    monkeypatch.setitem(rule_search.BANKS, FAMILY, ["A rule written after the run started."])
    run_optimization(engine, settings, run_id)
    texts = [t["config"]["text"] for t in load_trials(engine, run_id)[1:]]
    assert texts[0] == [rule_search.EXTRACTION_RULES[0]] and len(texts) >= len(rule_search.EXTRACTION_RULES)


def test_no_run_starts_without_rules_to_search(env):
    settings, engine = env
    with pytest.raises(ValueError, match="no rules for summarization: give them with --rules-file FILE"):
        start_optimization(engine, settings, family="summarization", model="m", optimizer="rules", dataset="scitldr")
    for bad in ([], "Extract names.", ["ok", " "], 5):
        with pytest.raises(ValueError, match="must be a non-empty list of non-empty strings"):
            start_optimization(engine, settings, family=FAMILY, model="m", optimizer="rules", dataset="conll04",
                               optimizer_options={"rules": bad})
    from shared.optimize.runs import load_run

    with pytest.raises(LookupError):
        load_run(engine, 1)  # nothing was created
