"""``evaluate --optimize``'s decisions on the embedded database: a family x model where a candidate beat
the active variant has that candidate validated; one where none did gets an optimization (manual trigger
carrying --deploy); both end in the outcome table once their follow-ups are recorded."""

from sqlalchemy import select

from shared.evaluation import (create_evaluation_batch, dataset_examples, find_variants, finish_evaluation_batch,
                               register_baselines, run_evaluation_chunk)
from shared.models import OptimizationTrigger, PromptVariant
from shared.realtime.evaluate import act_on_batch, latest_batch, outcomes
from shared.realtime.followup import after_optimization

from .helpers import RE, Sent, finish_run
from .test_followup import in_process

FAMILY = "entity_extraction"


def evaluate(engine, settings, families):
    refs = dataset_examples(engine, families, ["conll04"], 6)
    batch_id, chunks = create_evaluation_batch(engine, refs, find_variants(engine, families, ["m"]), 20)
    for c in chunks:
        run_evaluation_chunk(engine, settings, c["batch_id"], c["variant_id"], c["examples"])
    finish_evaluation_batch(engine, batch_id)
    return batch_id


def test_a_better_candidate_is_validated_and_a_family_without_one_is_optimized(rollout_env):
    settings, engine, ids = rollout_env
    with engine.begin() as conn:  # only the better candidate competes with the baseline
        conn.execute(PromptVariant.__table__.update().where(PromptVariant.id == ids["same"]).values(status="retired"))
    register_baselines(engine, ["m"], [RE])
    batch_id = evaluate(engine, settings, [FAMILY, RE])
    assert latest_batch(engine) == batch_id
    sent, calls = Sent(), []
    actions = act_on_batch(engine, settings, batch_id, True, sent, in_process(engine, settings, calls))
    by_family = {a["family"]: a for a in actions}
    assert by_family[FAMILY]["kind"] == "validate" and calls == [(ids["better"], True)]
    assert by_family[RE]["kind"] == "optimize" and [s[0] for s in sent] == [RE]
    with engine.connect() as conn:
        trigger = conn.execute(select(OptimizationTrigger)).one()
    assert (trigger.kind, trigger.family) == ("manual", RE) and '"deploy": true' in trigger.evidence
    rows = {r["family"]: r for r in outcomes(engine, actions)}
    assert rows[FAMILY]["final"] and rows[FAMILY]["result"].startswith("deployed")
    assert not rows[RE]["final"] and rows[RE]["result"] == "queued"
    run_id = finish_run(engine, sent[0][2]["job_id"], family=RE)  # ended without a candidate
    assert after_optimization(engine, settings, run_id, calls.append)["reason"] == "no candidate"
    rows = {r["family"]: r for r in outcomes(engine, actions)}
    assert rows[RE]["final"] and rows[RE]["run_id"] == run_id
