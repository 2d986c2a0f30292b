"""The replacement pipeline on the embedded database: validation stages, recorded; deployment gated."""

import json

import pytest
from sqlalchemy import select

from shared.families import get_family
from shared.models import CandidateValidation, PromptBackup, PromptVariant
from shared.optimize.promptset import components, rebuild
from shared.rollout.replacement import (deploy_candidate, deployed_outcome, held_out,
                                        identify_replacement_candidates, validate_candidate)
from shared.rollout.state import RolloutError, get, transition

from .conftest import FAMILY, add_candidate


def status_of(engine, variant_id):
    with engine.connect() as conn:
        return conn.execute(select(PromptVariant.status).where(PromptVariant.id == variant_id)).scalar_one()


def test_a_better_candidate_passes_every_stage_and_is_deployed_at_10_percent(rollout_env):
    settings, engine, ids = rollout_env
    out = validate_candidate(engine, settings, ids["better"])
    assert out["passed"], out["stages"]
    assert [s["stage"] for s in out["stages"]] == ["invariants", "paired", "parser", "regressions"]
    assert out["confidence"] >= settings.min_confidence_for_deployment
    paired = out["stages"][1]
    assert paired["n"] == settings.validation_examples
    assert paired["candidate"]["format_compliance"] > paired["incumbent"]["format_compliance"]
    assert status_of(engine, ids["better"]) == "validated"

    rollout_id = deploy_candidate(engine, settings, ids["better"])
    r = get(engine, rollout_id)
    assert (r.status, r.percentage, r.incumbent_id) == ("running", 0.10, ids["baseline"])
    assert status_of(engine, ids["better"]) == "rolling_out"
    with engine.connect() as conn:
        backup = conn.execute(select(PromptBackup).where(PromptBackup.id == r.backup_id)).one()
        original = conn.execute(select(PromptVariant.template).where(PromptVariant.id == ids["baseline"])).scalar_one()
    assert (backup.variant_id, backup.template, backup.status) == (ids["baseline"], original, "active")


def test_a_redelivered_validation_finds_the_rollout_an_earlier_attempt_started(rollout_env):
    settings, engine, ids = rollout_env
    assert deployed_outcome(engine, ids["better"]) is None  # not yet validated
    out = validate_candidate(engine, settings, ids["better"])
    assert deployed_outcome(engine, ids["better"]) is None  # validated, not deployed: validate again
    rollout_id = deploy_candidate(engine, settings, ids["better"])
    again = deployed_outcome(engine, ids["better"])
    assert again == {**{k: out[k] for k in ("validation_id", "candidate_id", "incumbent_id", "passed", "confidence",
                                            "stages")}, "rollout_id": rollout_id, "rollout_status": "running"}
    r = get(engine, rollout_id)
    transition(engine, rollout_id, r.version, "rollback", actor="test", reason="worse live")
    assert deployed_outcome(engine, ids["better"])["rollout_status"] == "rolled_back"  # reported, not restarted


def test_a_second_copy_of_a_validation_never_turns_a_rolled_out_variant_back_into_a_candidate(rollout_env):
    """A long validation redelivered while the first copy runs: the first copy deploys the candidate
    while the second is still scoring; the second then stores nothing and changes nothing."""
    from shared.optimize.scoring import in_process

    settings, engine, ids = rollout_env
    validate_candidate(engine, settings, ids["better"])
    first = []

    def scoring_while_the_first_copy_deploys(*args, **kwargs):
        if not first:
            first.append(deploy_candidate(engine, settings, ids["better"]))
        return in_process(*args, **kwargs)

    with pytest.raises(RolloutError, match="left the candidate states while it was validated"):
        validate_candidate(engine, settings, ids["better"], runner=scoring_while_the_first_copy_deploys)
    assert first and status_of(engine, ids["better"]) == "rolling_out"
    with engine.connect() as conn:
        assert len(conn.execute(select(CandidateValidation.id).where(
            CandidateValidation.candidate_id == ids["better"])).all()) == 1  # the second verdict rolled back


def test_a_candidate_no_better_than_the_incumbent_is_rejected_and_cannot_be_deployed(rollout_env):
    settings, engine, ids = rollout_env
    out = validate_candidate(engine, settings, ids["same"])
    assert not out["passed"]
    failed = {s["stage"]: s["reason"] for s in out["stages"] if not s["passed"]}
    assert list(failed) == ["paired"] and "needs 0.80" in failed["paired"]
    assert out["confidence"] < settings.min_confidence_for_deployment
    assert status_of(engine, ids["same"]) == "rejected"
    with pytest.raises(RolloutError, match="has not passed validation"):
        deploy_candidate(engine, settings, ids["same"])


def test_a_candidate_that_drops_a_placeholder_stops_at_the_invariants(rollout_env):
    settings, engine, ids = rollout_env
    base = get_family(FAMILY).baseline()
    instruction = components(FAMILY, base)["instruction"].replace("{completion_delimiter}", "")
    broken = add_candidate(engine, rebuild(FAMILY, base, instruction=instruction), ids["baseline"])
    out = validate_candidate(engine, settings, broken)
    assert [s["stage"] for s in out["stages"]] == ["invariants"] and not out["passed"]
    assert "completion_delimiter" in out["stages"][0]["reason"]
    with engine.connect() as conn:
        stored = conn.execute(select(CandidateValidation.stages).where(
            CandidateValidation.candidate_id == broken)).scalar_one()
    assert json.loads(stored) == out["stages"]


def test_held_out_examples_exclude_what_the_optimization_saw(rollout_env):
    settings, engine, ids = rollout_env
    from shared.models import OptimizationRun

    seen = [["dataset", i] for i in range(1, 200)]
    with engine.begin() as conn:
        conn.execute(OptimizationRun.__table__.insert().values(
            family=FAMILY, model="m", optimizer="demos", seed=0, status="done", cancel_requested=False,
            settings="{}", train_ids=json.dumps(seen[:150]), val_ids=json.dumps(seen[150:]), parent_id=ids["baseline"],
            best_variant_id=ids["better"], lease_token=0, lm_calls=0, cached_calls=0, seconds=0.0))
    refs = held_out(engine, ids["better"], FAMILY, "m", 30)
    assert len(refs) == 30 and not {r.id for r in refs} & set(range(1, 200))


def test_identify_finds_candidates_that_beat_the_incumbent_on_shared_examples(rollout_env):
    settings, engine, ids = rollout_env
    assert identify_replacement_candidates(engine) == []  # nothing scored yet
    validate_candidate(engine, settings, ids["better"])  # scores both on the same held-out examples
    validate_candidate(engine, settings, ids["same"])
    with engine.begin() as conn:  # identify looks at candidates still waiting for a decision
        conn.execute(PromptVariant.__table__.update().where(PromptVariant.id.in_([ids["better"], ids["same"]]))
                     .values(status="candidate"))
    found = identify_replacement_candidates(engine, days_back=7)
    assert [c.variant_id for c in found] == [ids["better"]]
    assert found[0].delta > 0 and found[0].n_shared == settings.validation_examples


def test_a_candidate_whose_descriptions_say_nothing_is_refused_at_the_regression_stage(rollout_env):
    """The same demos written the old way ("X is a person named in the text."): the scripted model copies
    that into its descriptions, as the real 1.5B model did; it wins on the primary score and is refused."""
    from shared.families import get_family as family_of

    from .conftest import FILLER_DEMOS

    settings, engine, ids = rollout_env
    filler = add_candidate(engine, rebuild(FAMILY, family_of(FAMILY).baseline(), demos=FILLER_DEMOS), ids["baseline"])
    out = validate_candidate(engine, settings, filler)
    stages = {s["stage"]: s for s in out["stages"]}
    assert stages["paired"]["passed"] and stages["parser"]["passed"]
    assert stages["paired"]["candidate"]["description_grounding"] == 0.0
    assert stages["paired"]["incumbent"]["description_grounding"] > 0.5
    assert not stages["regressions"]["passed"] and "description_grounding" in stages["regressions"]["reason"]
    assert not out["passed"] and status_of(engine, filler) != "validated"
