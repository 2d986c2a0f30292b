"""What a search-style optimizer (GEPA, MIPROv2) is handed: scoring, a proposal LM, and the run's limits.

``evaluate`` scores a template through evaluation batches (the same chunks, workers and LM cache as
every evaluation). A full evaluation on the search set is a *trial*: checkpointed, and skipped when a
resumed run replays it (a resumed search replays its steps from the LM cache, which answers the calls
it made before the kill at no cost). ``complete`` calls the proposal model through the same cache.
Every call first checks the budget, the lease and a cancel request, and raises ``StopSearch`` (or
``Cancelled``) so the optimizer ends where it is.
"""

from __future__ import annotations

import hashlib
import time

from ..families.template import PromptTemplate
from ..lm import cached_complete, get_lm
from . import runs
from .promptset import check_invariants
from .scoring import OUTPUT_WORDS, TrialScores, objective, score_variant
from .variants import trial_variant


class StopSearch(Exception):
    """The run's budget (LM calls or time) is spent; the message says which."""


class Cancelled(Exception):
    """An operator asked the run to stop."""


class SearchTools:
    def __init__(self, *, engine, settings, run, token, ttl_s, runner, parent, train, weights, beat, history,
                 budget_calls, budget_s, reserve_calls, progress=None):
        self.engine, self.settings, self.run, self.token, self.ttl_s = engine, settings, run, token, ttl_s
        self.runner, self.parent, self.train, self.weights, self.beat = runner, parent, train, weights, beat
        self.history, self.budget_calls, self.budget_s, self.reserve = history, budget_calls, budget_s, reserve_calls
        self.progress = progress
        self.calls, self.seconds = run.lm_calls, run.seconds
        self.full_evaluations = 0
        self._proposer = None

    # ----- limits -----------------------------------------------------------------------------

    def check(self, upcoming: int) -> None:
        """Raise if the next ``upcoming`` LM calls would break a limit, the lease was lost or a cancel came."""
        if self.beat.lost:
            raise runs.LeaseLost(f"optimization run {self.run.id}: lease renewal failed")
        if runs.cancelled(self.engine, self.run.id):
            raise Cancelled("cancelled by an operator")
        if self.calls + upcoming + self.reserve > self.budget_calls:
            raise StopSearch(f"budget: {self.calls} of {self.budget_calls} LM calls used (validation reserved)")
        per_call = self.seconds / self.calls if self.calls else 0.0
        if self.seconds + per_call * (upcoming + self.reserve) > self.budget_s:
            raise StopSearch(f"time: {self.seconds / 60:.1f} of {self.budget_s / 60:.1f} minutes used "
                             "(validation reserved)")

    # ----- scoring ----------------------------------------------------------------------------

    def score(self, template: PromptTemplate, refs=None, config: dict | None = None) -> TrialScores:
        """Score ``template`` on ``refs`` (default: the search set, recorded as a trial)."""
        full = refs is None
        refs = self.train if full else refs
        reasons = check_invariants(self.run.family, self.parent, template) if template != self.parent else []
        if full:
            index = self.full_evaluations
            self.full_evaluations += 1
        if reasons:  # LightRAG could not use it: every example fails, and the optimizer is told why
            scores = TrialScores(metrics=[None] * len(refs), outputs=[None] * len(refs),
                                 errors=["refused: " + "; ".join(reasons)] * len(refs))
            if full and index >= len(self.history):
                self._record(index, self.run.parent_id, {**(config or {}), "refused": reasons}, -1.0, {}, 0, 0, 0.0)
            return scores
        self.check(len(refs))
        variant_id = self.run.parent_id if template == self.parent else trial_variant(
            self.engine, self.run.id, _name_of(template), self.run.family, self.run.model, template, self.run.parent_id)
        import json

        chunk = int(json.loads(self.run.settings).get("chunk_size") or 10)
        scores = score_variant(self.engine, self.settings, variant_id, refs, self.runner, batch_size=chunk)
        if full and index < len(self.history):
            return scores  # replayed from the LM cache after a resume: already checkpointed
        self.calls += scores.lm_calls
        self.seconds += scores.seconds
        if full:
            metrics = scores.means() | {OUTPUT_WORDS: scores.mean(OUTPUT_WORDS)}  # the length the objective may weigh
            if scores.errors:
                metrics["first_error"] = scores.errors[0][:300]
            self._record(index, variant_id, config or {}, objective(scores, self.weights), metrics,
                         scores.lm_calls, scores.cached, scores.seconds)
        else:
            runs.add_cost(self.engine, self.run.id, self.token, self.ttl_s, lm_calls=scores.lm_calls,
                          cached=scores.cached, seconds=scores.seconds)
        return scores

    def _record(self, index, variant_id, config, score, metrics, calls, cached, seconds) -> None:
        runs.record_trial(self.engine, self.run.id, self.token, self.ttl_s, trial=index, variant_id=variant_id,
                          config=config, score=score, metrics=metrics, lm_calls=calls, cached=cached, seconds=seconds)
        record = {"trial": index, "variant_id": variant_id, "config": config, "score": score, "metrics": metrics,
                  "lm_calls": calls, "seconds": seconds}
        self.history.append(record)
        if self.progress:
            self.progress(record, self.history, self.budget_calls - self.calls)

    # ----- the proposal model -----------------------------------------------------------------

    def complete(self, messages: list[dict]) -> str:
        """The proposal model's answer (``proposer`` model key, default the target), through the LM cache."""
        if self._proposer is None:
            import json

            key = json.loads(self.run.settings).get("proposer") or self.run.model
            self._proposer = get_lm(key, self.settings)
        self.check(1)
        started = time.perf_counter()
        text, cached = cached_complete(self.engine, self._proposer, messages)
        elapsed = time.perf_counter() - started
        if not cached:
            self.calls += 1
            self.seconds += elapsed
        runs.add_cost(self.engine, self.run.id, self.token, self.ttl_s, lm_calls=0 if cached else 1,
                      cached=1 if cached else 0, seconds=0.0 if cached else elapsed)
        return text


def _name_of(template: PromptTemplate) -> str:
    """Trial variants are named by content: the same candidate proposed twice is one row."""
    return hashlib.sha256(template.to_json().encode()).hexdigest()[:12]
