"""``tasks.replacement.validate_and_deploy`` on real worker processes: a worker lost mid-validation
gives the job back, and the candidate is still validated, deployed once and recorded."""

import json

import pytest
from sqlalchemy import select

from shared.models import CandidateValidation, EvaluationBatch, PromptVariant, Recommendation, Rollout

from .test_optimize import cli, kill_pool, python, setup_stack

pytestmark = pytest.mark.integration

FOLLOW_UP = """
import sys
from shared.db import get_engine
from shared.realtime.followup import follow_up_candidate
from tasks.realtime import send_validation
print(follow_up_candidate(get_engine(), int(sys.argv[1]), True, send_validation, "a test"))
"""


def rows(stack, query):
    with stack.engine.connect() as conn:
        return conn.execute(query).all()


@pytest.mark.timeout(900)
def test_a_worker_lost_mid_validation_still_validates_and_deploys_the_candidate_once(stack, tmp_path):
    setup_stack(stack, tmp_path)
    cli(stack, "optimize", "--family", "entity_extraction", "--model", "m", "--dataset", "conll04", "--train", "8",
        "--val", "6", "--budget-calls", "400")
    [candidate] = rows(stack, select(PromptVariant.id).where(PromptVariant.status == "candidate"))
    # Validation now answers slowly (and from an empty LM cache: a new model string): time to kill it.
    stack.extra_env.update(PROMPTLOOP_MODELS=json.dumps({"m": "scripted/follow?latency_ms=300"}),
                           PROMPTLOOP_VALIDATION_EXAMPLES="20", PROMPTLOOP_ROLLOUT_HOLD_S="3600")
    validator = stack.start_worker("validator", queues="optimize")
    stack.start_worker("scorer", queues="evaluate", concurrency=2)
    stack.start_worker("ctl", queues="control")
    before = len(rows(stack, select(EvaluationBatch.id)))  # the optimization's
    run = python(stack, FOLLOW_UP.replace("sys.argv[1]", str(candidate.id)))
    assert "'action': 'validating'" in run
    # Validation's scoring has begun on the evaluate queue: the job is running in the validator's pool.
    stack.wait_for(lambda: len(rows(stack, select(EvaluationBatch.id))) > before, 120, "validation's first batch")
    assert "validate_and_deploy" in (stack.workdir / "validator.log").read_text().split("ready.", 1)[-1]
    kill_pool(validator)  # the process running validate_and_deploy dies

    def decided():
        found = rows(stack, select(Recommendation.status, Recommendation.reason, Recommendation.rollout_id))
        return found if found and found[0].status != "validating" else None

    [rec] = stack.wait_for(decided, 300, "the recommendation decided after the kill")
    assert rec.status == "deployed" and "deployed automatically" in rec.reason, rec.reason
    [rollout] = rows(stack, select(Rollout.id, Rollout.candidate_id, Rollout.status))
    assert (rollout.id, rollout.candidate_id, rollout.status) == (rec.rollout_id, candidate.id, "running")
    assert [v.passed for v in rows(stack, select(CandidateValidation.passed))] == [True]  # the first never finished
    assert "WorkerLostError" in (stack.workdir / "validator.log").read_text()
