"""The seed's replacement API, as its users call it (async), over the embedded database and fakeredis."""

import asyncio
import json

import fakeredis
from promptloop_client import wire

from shared.prompt_replacement import PromptReplacementPipeline
from shared.rollout.replacement import validate_candidate


def test_identify_validate_deploy_as_the_seed_shows(rollout_env):
    settings, engine, ids = rollout_env
    validate_candidate(engine, settings, ids["better"])  # scored on held-out examples, like an optimization's validation
    from sqlalchemy import update

    from shared.models import PromptVariant

    with engine.begin() as conn:
        conn.execute(update(PromptVariant).where(PromptVariant.id == ids["better"]).values(status="candidate"))
    redis = fakeredis.FakeRedis()
    pipeline = PromptReplacementPipeline(engine, settings, redis)

    async def seed_flow():
        candidates = await pipeline.identify_replacement_candidates(days_back=7)
        assert [c.variant_id for c in candidates] == [ids["better"]]
        assert await pipeline.validate_candidate(candidates[0])
        return await pipeline.deploy_candidate(candidates[0], rollout_percentage=0.1)

    rollout_id = asyncio.run(seed_flow())
    route = json.loads(redis.get(wire.ROLLOUT_STATE_KEY))["routes"]["entity_extraction"]["m"]
    assert route["candidate"]["name"] == "DSPY_A" and route["salt"] == f"rollout-{rollout_id}"
    assert pipeline.last_validation["confidence"] >= 0.8
