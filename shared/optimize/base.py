"""What every optimizer is given and returns: a context, and one proposal at a time.

An optimizer proposes the next candidate from the run's history (the checkpointed trials), so a run
resumed after a kill continues where it stopped: proposals depend only on the seed and the history.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine

from ..evaluation import ExampleRef
from ..families.template import PromptTemplate
from ..settings import Settings


@dataclass
class RunContext:
    engine: Engine
    settings: Settings
    run_id: int
    family: str
    model: str
    seed: int
    parent: PromptTemplate
    options: dict
    train: list[ExampleRef]
    #: Scores a template on examples: (template, refs) -> TrialScores. Optimizers that need scores of
    #: their own (GEPA's reflective minibatches) use it; its LM calls count toward the budget.
    score: object = None


@dataclass
class Proposal:
    """A candidate template and what it is (JSON-able), with the demos it adds (for the DSPy program)."""

    template: PromptTemplate
    config: dict
    demos: list[dict] = field(default_factory=list)
