"""The seed design's replacement pipeline API over ``shared.rollout``.

    pipeline = PromptReplacementPipeline(engine, settings, redis)
    candidates = await pipeline.identify_replacement_candidates(days_back=7)
    for candidate in candidates:
        is_valid = await pipeline.validate_candidate(candidate)
    await pipeline.deploy_candidate(candidate, rollout_percentage=0.1)

A candidate is a ``Candidate`` from ``identify_replacement_candidates`` or a variant id. Validation
scores in this process unless a runner is given (``tasks.optimize.score_on_workers`` fans it out).
"""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine

from .optimize.scoring import Runner, in_process
from .rollout import replacement
from .rollout.publish import publish
from .rollout.replacement import Candidate
from .settings import Settings


def _id(candidate: Candidate | int) -> int:
    return candidate.variant_id if isinstance(candidate, Candidate) else int(candidate)


class PromptReplacementPipeline:
    def __init__(self, engine: Engine, settings: Settings, redis=None, runner: Runner = in_process):
        self.engine, self.settings, self.redis, self.runner = engine, settings, redis, runner
        self.last_validation: dict | None = None

    async def identify_replacement_candidates(self, days_back: float = 7) -> list[Candidate]:
        return await asyncio.to_thread(replacement.identify_replacement_candidates, self.engine, days_back)

    async def validate_candidate(self, candidate: Candidate | int) -> bool:
        """Run and record the validation stages; True when the candidate may be deployed
        (``last_validation`` holds the stages and the confidence)."""
        self.last_validation = await asyncio.to_thread(replacement.validate_candidate, self.engine, self.settings,
                                                       _id(candidate), self.runner)
        return self.last_validation["passed"]

    async def deploy_candidate(self, candidate: Candidate | int, rollout_percentage: float = 0.1) -> int:
        """Back up the incumbent and start the rollout; the rollout id. Producers see it once published."""
        rollout_id = await asyncio.to_thread(replacement.deploy_candidate, self.engine, self.settings, _id(candidate),
                                             rollout_percentage)
        if self.redis is not None:
            await asyncio.to_thread(publish, self.engine, self.redis)
        return rollout_id
