"""GEPA through promptloop's adapter: feedback in words, a reflection model, guidance LightRAG will send."""

from shared.families.template import PromptTemplate
from shared.models import PromptVariant
from shared.optimize.driver import run_optimization
from shared.optimize.gepa_search import feedback
from shared.optimize.promptset import GUIDANCE
from shared.optimize.runs import load_run, load_trials
from shared.optimize.start import start_optimization


def test_gepa_turns_feedback_into_guidance_that_beats_the_parent(env):
    settings, engine = env
    run_id = start_optimization(engine, settings, family="entity_extraction", model="m", optimizer="gepa",
                                dataset="conll04", n_train=6, n_val=6, budget_calls=60, proposer="reflector",
                                objective={"entity_f1": 0.4, "format_compliance": 0.4, "hallucination_rate": -0.2})
    out = run_optimization(engine, settings, run_id)
    assert out["candidate"], out
    assert out["validation"]["candidate_objective"] > out["validation"]["parent_objective"]
    with engine.connect() as conn:
        row = conn.execute(PromptVariant.__table__.select().where(PromptVariant.id == out["candidate"])).one()
    template = PromptTemplate.from_json(row.template)
    assert f"{GUIDANCE}\nAlways end the answer with the completion delimiter line." in template.system
    run = load_run(engine, run_id)
    assert 0 < run.lm_calls <= 60
    trials = load_trials(engine, run_id)
    assert trials[0]["config"]["kind"] == "parent"
    assert any(t["config"].get("guidance", "").startswith("Always end") for t in trials[1:])


def test_feedback_names_what_was_missed_and_invented():
    text = feedback("entity_extraction", {"format_compliance": 0.0, "entity_f1": 0.5},
                    "entity<|#|>Alice<|#|>person<|#|>x\nentity<|#|>Bob Inc<|#|>organization<|#|>y",
                    {"entities": [["Alice", "Peop"], ["Carol", "Peop"]], "relations": []}, None)
    assert "parser rejected" in text and "Missed entities: Carol." in text
    assert "should not have been extracted: Bob Inc." in text
    assert feedback("entity_extraction", None, None, None, "LMError: timeout") == "The call failed: LMError: timeout."


def test_a_failing_proposal_model_stops_gepa_with_the_reason(env):
    settings, engine = env
    settings.models["broken"] = "scripted/extract?fail_on=a"  # fails on every prompt
    run_id = start_optimization(engine, settings, family="entity_extraction", model="m", optimizer="gepa",
                                dataset="conll04", n_train=6, n_val=6, budget_calls=200, proposer="broken")
    out = run_optimization(engine, settings, run_id)
    assert "the proposal model failed 3 times in a row (LMError" in out["reason"]
    assert load_run(engine, run_id).lm_calls < 100  # it stopped, it did not loop until the budget


def test_an_unknown_proposer_is_refused_at_start(env):
    settings, engine = env
    import pytest

    with pytest.raises(ValueError, match="no model configured for the proposer 'nope'"):
        start_optimization(engine, settings, family="entity_extraction", model="m", optimizer="gepa",
                           dataset="conll04", n_train=6, n_val=6, proposer="nope")
