"""After an optimization the real-time optimizer started: DSPY_AUTO_OPTIMIZE on -> validated and deployed,
off -> a pending recommendation a person deploys or dismisses; hand-started runs and repeats do nothing."""

import pytest
from sqlalchemy import select

from shared.models import PromptVariant
from shared.realtime.followup import after_optimization, record_validation
from shared.realtime.optimizer import last_started, start
from shared.realtime.recommendations import deploy_recommendation, dismiss_recommendation, list_recommendations
from shared.realtime.triggers import Incident
from shared.rollout.replacement import deploy_candidate, validate_candidate
from shared.rollout.state import RolloutError, get

from .helpers import EE, NOW, Sent, finish_run


def in_process(engine, settings, calls):
    """What send_validation does on the workers (tasks.replacement.validate_and_deploy, then
    record_validation), run here."""
    def validate(candidate_id, deploy):
        calls.append((candidate_id, deploy))
        outcome = validate_candidate(engine, settings, candidate_id)
        if outcome["passed"] and deploy:
            outcome["rollout_id"] = deploy_candidate(engine, settings, candidate_id)
        record_validation(engine, outcome)
    return validate


def triggered_run(engine, settings, candidate, evidence=None):
    sent = Sent()
    inc = Incident(EE, "m", "degradation", "quality fell", dict(evidence or {}))
    out = start(engine, settings, inc, sent, prev=last_started(engine)[0], now=NOW, dataset="conll04")
    return finish_run(engine, out["job_id"], best=candidate)


def status(engine, variant_id):
    with engine.connect() as conn:
        return conn.execute(select(PromptVariant.status).where(PromptVariant.id == variant_id)).scalar_one()


def test_auto_on_a_passed_candidate_is_deployed_once(rollout_env):
    settings, engine, ids = rollout_env
    assert settings.auto_optimize
    run_id = triggered_run(engine, settings, ids["better"])
    calls = []
    out = after_optimization(engine, settings, run_id, in_process(engine, settings, calls))
    assert (out["action"], out["deploy"], calls) == ("validating", True, [(ids["better"], True)])
    [rec] = list_recommendations(engine, status=None)
    assert rec["status"] == "deployed" and "deployed automatically" in rec["reason"]
    assert get(engine, rec["rollout_id"]).status == "running" and status(engine, ids["better"]) == "rolling_out"
    again = after_optimization(engine, settings, run_id, in_process(engine, settings, calls))
    assert again["action"] == "none" and len(calls) == 1  # a redelivered job's notice does nothing


def test_auto_off_a_passed_candidate_waits_in_recommendations_until_deployed(rollout_env):
    settings, engine, ids = rollout_env
    settings = settings.model_copy(update={"auto_optimize": False})
    run_id = triggered_run(engine, settings, ids["better"])
    calls = []
    after_optimization(engine, settings, run_id, in_process(engine, settings, calls))
    assert calls == [(ids["better"], False)]
    [rec] = list_recommendations(engine)
    assert (rec["status"], rec["name"], rec["rollout_id"]) == ("pending", "DSPY_A", None)
    assert rec["confidence"] >= settings.min_confidence_for_deployment and "DSPY_AUTO_OPTIMIZE" in rec["reason"]
    assert status(engine, ids["better"]) == "validated"
    rollout_id = deploy_recommendation(engine, settings, rec["id"])
    assert get(engine, rollout_id).candidate_id == ids["better"]
    assert list_recommendations(engine) == []
    assert list_recommendations(engine, "deployed")[0]["rollout_id"] == rollout_id
    with pytest.raises(RolloutError, match="not pending"):
        dismiss_recommendation(engine, rec["id"], "too late")


def test_a_rejected_candidate_is_recorded_and_a_dismissed_one_stays_undeployed(rollout_env):
    settings, engine, ids = rollout_env
    settings = settings.model_copy(update={"auto_optimize": False})
    after_optimization(engine, settings, triggered_run(engine, settings, ids["same"]), in_process(engine, settings, []))
    [rec] = list_recommendations(engine, status=None)
    assert rec["status"] == "rejected" and "paired" in rec["reason"]
    run_id = triggered_run(engine, settings, ids["better"], {"deploy": False})
    after_optimization(engine, settings, run_id, in_process(engine, settings, []))
    pending = list_recommendations(engine)[0]
    dismiss_recommendation(engine, pending["id"], "not now")
    assert list_recommendations(engine, "dismissed")[0]["reason"].endswith("dismissed: not now")
    with pytest.raises(RolloutError, match="not pending"):
        deploy_recommendation(engine, settings, pending["id"])


def test_runs_started_by_hand_or_without_a_candidate_are_not_followed_up(rollout_env):
    settings, engine, ids = rollout_env
    calls = []
    by_hand = finish_run(engine, "cli-job", best=ids["better"])
    assert after_optimization(engine, settings, by_hand, calls.append)["reason"].startswith("started by hand")
    empty = triggered_run(engine, settings, None)
    assert after_optimization(engine, settings, empty, calls.append)["reason"] == "no candidate"
    assert calls == [] and list_recommendations(engine, status=None) == []


def test_a_manual_trigger_can_ask_for_deployment_whatever_the_setting(rollout_env):
    settings, engine, ids = rollout_env
    settings = settings.model_copy(update={"auto_optimize": False})
    calls = []
    run_id = triggered_run(engine, settings, ids["better"], {"deploy": True})
    after_optimization(engine, settings, run_id, in_process(engine, settings, calls))
    assert calls == [(ids["better"], True)] and list_recommendations(engine, "deployed")


def test_a_redelivered_validation_of_a_rolled_back_candidate_says_so(rollout_env):
    """The job deployed, the rollout was rolled back, then Redis handed the job out again: the
    recommendation records the deployment and that it was rolled back since, and nothing restarts."""
    from shared.rollout.replacement import deployed_outcome
    from shared.rollout.state import transition

    settings, engine, ids = rollout_env
    validate_candidate(engine, settings, ids["better"])
    rollout_id = deploy_candidate(engine, settings, ids["better"])
    transition(engine, rollout_id, get(engine, rollout_id).version, "rollback", actor="gate", reason="worse live")
    rec = record_validation(engine, deployed_outcome(engine, ids["better"]))
    assert rec["status"] == "deployed" and f"(rollout {rollout_id}, rolled back since)" in rec["reason"], rec
    assert get(engine, rollout_id).status == "rolled_back"
