"""GEPA (reflective prompt evolution) over the task-guidance section of a family's LightRAG prompt.

GEPA's own engine (``gepa.optimize``) drives the search; promptloop supplies its adapter: a candidate's
text is rendered into the family's template (``with_guidance``) exactly as LightRAG will send it,
scored through evaluation batches (workers, LM cache), and each example's outcome is explained in
words (what LightRAG's parser refused, which gold entities were missed or invented) for the
reflection model, which is the run's proposal model (``PROMPTLOOP_PROPOSER_MODEL``, default the target).
"""

from __future__ import annotations

import logging

from ..evaluation import load_examples
from ..families import get_family
from ..metrics import normalize_name, parse_extraction
from .base import RunContext
from .promptset import InvalidCandidate, guidance_of, guidance_placement, with_guidance
from .runs import LeaseLost
from .scoring import example_objective
from .tools import Cancelled, SearchTools, StopSearch

NAME = "gepa"
#: It asks the run's proposer model (``tools.complete``), so a resume checks that model too.
USES_PROPOSER = True
DEFAULTS = {"reflection_minibatch_size": 3, "candidate_selection": "pareto"}
COMPONENT = "guidance"
log = logging.getLogger(__name__)


def prepare(family: str, options: dict) -> dict:
    """A new run's options: its guidance placed as a section of its own (``promptset.PLACEMENTS``)."""
    return {**options, "guidance_at": "header"}


def seed_text(ctx: RunContext) -> str:
    """Where GEPA starts: the parent's guidance, or the DSPy signature's instructions for the family."""
    return guidance_of(ctx.family, ctx.parent) or get_family(ctx.family).signature.instructions


def feedback(family: str, metrics: dict | None, output: str | None, reference: dict | None, error: str | None) -> str:
    """One example's outcome in words, for the reflection model."""
    if metrics is None:
        return f"The call failed: {error or 'no output'}."
    notes = []
    if metrics.get("format_compliance", 1.0) < 1.0:
        notes.append("LightRAG's parser rejected this answer: every row must follow the format exactly and the "
                     "answer must end with the completion delimiter line.")
    if reference and "entities" in reference and output is not None:
        predicted = {normalize_name(n): n for n, _ in parse_extraction(output).entities}
        gold = {normalize_name(n): n for n, _ in reference["entities"]}
        missed = [gold[k] for k in gold if k not in predicted]
        invented = [predicted[k] for k in predicted if k not in gold]
        if missed:
            notes.append("Missed entities: " + ", ".join(missed) + ".")
        if invented:
            notes.append("Entities that should not have been extracted: " + ", ".join(invented) + ".")
        if reference.get("relations") and metrics.get("relation_f1", 1.0) < 1.0:
            notes.append("Expected relations: " + "; ".join(f"{h} -> {t} ({r})" for h, t, r in reference["relations"]))
    scores = ", ".join(f"{k} {v:.2f}" for k, v in sorted(metrics.items()) if isinstance(v, float))
    return " ".join(notes) + (" " if notes else "") + f"Scores: {scores}."


class TemplateAdapter:
    """GEPA's adapter protocol over one text component rendered into the family's template."""

    propose_new_texts = None  # GEPA's own reflective proposal, with the reflection LM below

    def __init__(self, ctx: RunContext, tools: SearchTools, failures: dict | None = None):
        self.ctx, self.tools = ctx, tools
        self.family = get_family(ctx.family)
        self.failures = failures or {"in_a_row": 0, "last": None}

    def evaluate(self, batch, candidate: dict, capture_traces: bool = False):
        from gepa.core.adapter import EvaluationBatch

        if self.failures["in_a_row"] >= 3:
            last = self.failures["last"]
            if isinstance(last, (StopSearch, Cancelled, LeaseLost)):
                raise last
            raise StopSearch(f"the proposal model failed 3 times in a row ({type(last).__name__}: {last})")

        full = list(batch) == list(self.ctx.train)
        try:
            template = with_guidance(self.ctx.family, self.ctx.parent, candidate[COMPONENT],
                                     guidance_placement(self.ctx.options))
        except InvalidCandidate as exc:
            zero = [0.0] * len(batch)
            traces = [{"ref": r, "metrics": None, "output": None, "error": str(exc)} for r in batch]
            return EvaluationBatch(outputs=[None] * len(batch), scores=zero, trajectories=traces if capture_traces else None)
        scores = self.tools.score(template, None if full else list(batch),
                                  config={"kind": NAME, COMPONENT: candidate[COMPONENT]})
        weights = self.tools.weights
        per_example = [example_objective(weights, m, o) for m, o in zip(scores.metrics, scores.outputs)]
        errors = iter(scores.errors)
        traces = [{"ref": r, "metrics": m, "output": o, "error": None if m else next(errors, None)}
                  for r, m, o in zip(batch, scores.metrics, scores.outputs)]
        return EvaluationBatch(outputs=scores.outputs, scores=per_example,
                               trajectories=traces if capture_traces else None)

    def make_reflective_dataset(self, candidate: dict, eval_batch, components_to_update: list[str]) -> dict:
        refs = [t["ref"] for t in eval_batch.trajectories]
        loaded = load_examples(self.ctx.engine, refs)
        records = []
        for trace in eval_batch.trajectories:
            _, text, reference = loaded.get((trace["ref"].source, trace["ref"].id), (None, "", None))
            fields = self.family.inputs(text) if text else {}
            records.append({"Inputs": fields, "Generated Outputs": trace["output"] or "",
                            "Feedback": feedback(self.ctx.family, trace["metrics"], trace["output"], reference,
                                                 trace["error"])})
        return {name: records for name in components_to_update}


class _Log:
    def log(self, message: str) -> None:
        log.info("gepa: %s", message)


def search(ctx: RunContext, tools: SearchTools) -> str:
    """Run GEPA until its budget (the run's) is spent; every full evaluation is a checkpointed trial."""
    import gepa

    opts = {**DEFAULTS, **ctx.options}

    # GEPA catches every exception its proposal step raises and goes on; a dead proposal model would make
    # it loop on cached minibatches until the budget. Count failures and stop at the next evaluation.
    failures = {"in_a_row": 0, "last": None}

    def reflect(prompt) -> str:
        messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        try:
            text = tools.complete(messages)
        except Exception as exc:
            failures["in_a_row"] += 1
            failures["last"] = exc
            raise
        failures["in_a_row"] = 0
        return text

    adapter = TemplateAdapter(ctx, tools, failures)
    result = gepa.optimize(
        seed_candidate={COMPONENT: seed_text(ctx)}, trainset=list(ctx.train), valset=list(ctx.train),
        adapter=adapter, reflection_lm=reflect,
        reflection_minibatch_size=opts["reflection_minibatch_size"],
        candidate_selection_strategy=opts["candidate_selection"], max_metric_calls=tools.budget_calls,
        seed=ctx.seed, logger=_Log(), display_progress_bar=False, raise_on_exception=True, skip_perfect_score=False)
    return f"search finished: GEPA kept {len(result.candidates)} candidates"
