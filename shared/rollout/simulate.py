"""A simulation of whole gated rollouts, vectorised over runs, through the live gate's own code.

Each run: the candidate serves 10, 25, 50, 75 then 100 % of the calls; after every ``batch`` calls
the gate (``stats.decide``, what ``compare_live`` runs) judges the cumulative data of both arms since
the rollout started. Policy, as the rollout's state machine: "worse" at any look -> rolled back;
"better" once the step has held ``hold_looks`` looks -> next step, and reaching 100 % is "promoted";
otherwise hold. A run still undecided after ``horizon_looks`` looks is "held".

Per call: quality ~ Binomial(4, p) / 4 (a judge's share of 4 criteria met; sd 0.245 at p = 0.6;
every call scored), success ~ Bernoulli, latency ~ lognormal (median, sigma 0.5); calls independent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .stats import BETTER, WORSE, GateRules, decide

STEPS = (0.10, 0.25, 0.50, 0.75, 1.0)


@dataclass(frozen=True)
class Scenario:
    """True per-call distributions, (incumbent, candidate) per metric."""

    name: str
    quality: tuple[float, float] = (0.60, 0.60)
    success: tuple[float, float] = (0.97, 0.97)
    latency_median_ms: tuple[float, float] = (800.0, 800.0)
    quality_criteria: int = 4  # quality = share of criteria a judge finds met: sd ~0.245 at 0.6
    latency_sigma: float = 0.5


SCENARIOS = {
    "aa": Scenario("A/A: identical candidate"),
    "better": Scenario("quality +0.05", quality=(0.60, 0.65)),
    "worse_quality": Scenario("quality -0.05", quality=(0.60, 0.55)),
    "worse_success": Scenario("success 0.90 vs 0.97", success=(0.97, 0.90)),
    "slower": Scenario("latency +30%", latency_median_ms=(800.0, 1040.0)),
}


@dataclass(frozen=True)
class SimResult:
    scenario: str
    runs: int
    promoted: float  # shares of runs
    rolled_back: float
    held: float
    events_per_run: float  # mean calls until the run ended (promoted, rolled back or the horizon)
    candidate_events_at_decision: float  # median candidate calls when promoted or rolled back
    incumbent_events_at_decision: float

    def line(self) -> str:
        return (f"{self.scenario:<26} runs={self.runs:5d} promoted={self.promoted:6.1%} "
                f"rolled_back={self.rolled_back:6.1%} held={self.held:6.1%} "
                f"calls/run={self.events_per_run:7.0f} median n at decision: candidate "
                f"{self.candidate_events_at_decision:.0f}, incumbent {self.incumbent_events_at_decision:.0f}")


def _merge(acc, n2, total, sum_sq):
    """Add a batch given as (count, sum, sum of squares) into (n, mean, m2) (Chan et al.)."""
    n1, mean1, m21 = acc
    mean2 = total / np.maximum(n2, 1)
    m22 = np.maximum(sum_sq - mean2 * total, 0.0)  # a batch is small: no cancellation to fear
    n = n1 + n2
    d = mean2 - mean1
    w = n2 / np.maximum(n, 1)
    return n, mean1 + d * w, m21 + m22 + d * d * n1 * w


class _Traffic:
    """Cumulative (n, mean, m2) of both arms, per metric, for every run."""

    METRICS = ("quality", "success", "latency_ms")

    def __init__(self, scenario: Scenario, runs: int, rng):
        self.sc, self.rng = scenario, rng
        shape = (len(self.METRICS), runs)
        self.acc = [(np.zeros(shape), np.zeros(shape), np.zeros(shape)) for _ in (0, 1)]  # incumbent, candidate
        c = scenario.quality_criteria
        self.levels = np.arange(c + 1) / c
        self.pmf = [np.array([math.comb(c, j) * p ** j * (1 - p) ** (c - j) for j in range(c + 1)])
                    for p in scenario.quality]

    def add(self, live, share, batch: int):
        """One batch of calls for the runs ``live``; each call goes to the candidate with probability
        ``share`` (per run). Draws each arm's batch sums directly where they have a closed form."""
        sc, rng = self.sc, self.rng
        n_cand = rng.binomial(batch, share)
        first = np.arange(batch) < n_cand[:, None]  # the candidate's calls: the first n_cand of the batch
        median = np.where(first, sc.latency_median_ms[1], sc.latency_median_ms[0])
        latency = median * np.exp(sc.latency_sigma * rng.standard_normal(first.shape))
        for arm, n, mask in ((0, batch - n_cand, ~first), (1, n_cand, first)):
            levels = rng.multinomial(n, self.pmf[arm])
            ok = rng.binomial(n, sc.success[arm]).astype(float)
            lat = np.where(mask, latency, 0.0)
            sums = np.stack([levels @ self.levels, ok, lat.sum(axis=1)])
            squares = np.stack([levels @ self.levels ** 2, ok, (lat * lat).sum(axis=1)])
            merged = _merge(tuple(x[:, live] for x in self.acc[arm]), n.astype(float), sums, squares)
            for x, new in zip(self.acc[arm], merged):
                x[:, live] = new

    def stats(self, live) -> dict:
        """``decide``'s input for the runs ``live``."""
        (ni, mi, m2i), (nc, mc, m2c) = (tuple(x[:, live] for x in acc) for acc in self.acc)
        vc, vi = m2c / np.maximum(nc - 1, 1), m2i / np.maximum(ni - 1, 1)
        return {m: (nc[j], mc[j], vc[j], ni[j], mi[j], vi[j]) for j, m in enumerate(self.METRICS)}


def simulate_rollouts(scenario: Scenario, runs: int = 400, *, rules: GateRules = GateRules(), batch: int = 20,
                      hold_looks: int = 5, horizon_looks: int = 600, seed: int = 0) -> SimResult:
    """Simulate ``runs`` independent rollouts of ``scenario`` (see the module's docstring)."""
    traffic = _Traffic(scenario, runs, np.random.default_rng(seed))
    step = np.zeros(runs, dtype=int)
    looks_in_step = np.zeros(runs, dtype=int)
    outcome = np.zeros(runs, dtype=int)  # 0 running, 1 promoted, 2 rolled back
    ended_at = np.full(runs, horizon_looks)
    at_decision = np.full((runs, 2), np.nan)
    share = np.array(STEPS)
    for look in range(horizon_looks):
        live = np.flatnonzero(outcome == 0)
        if live.size == 0:
            break
        traffic.add(live, share[step[live]], batch)
        codes, _, _ = decide(traffic.stats(live), rules)
        looks_in_step[live] += 1
        worse = live[codes == WORSE]
        advance = live[(codes == BETTER) & (looks_in_step[live] >= hold_looks)]
        outcome[worse] = 2
        step[advance] += 1
        looks_in_step[advance] = 0
        done = advance[step[advance] == len(STEPS) - 1]
        outcome[done] = 1
        decided = np.concatenate([worse, done])
        ended_at[decided] = look + 1
        at_decision[decided] = np.stack([traffic.acc[1][0][0, decided], traffic.acc[0][0][0, decided]], axis=1)
    finished = at_decision[outcome > 0]
    med = np.median(finished, axis=0) if len(finished) else (math.nan, math.nan)
    return SimResult(scenario.name, runs, float(np.mean(outcome == 1)), float(np.mean(outcome == 2)),
                     float(np.mean(outcome == 0)), float(ended_at.mean() * batch), float(med[0]), float(med[1]))


def error_rates_fixed_schedule(scenario: Scenario = SCENARIOS["aa"], runs: int = 1000, *,
                               rules: GateRules = GateRules(), batch: int = 20, looks_per_step: int = 50,
                               seed: int = 0) -> tuple[float, float]:
    """The bare gate under continuous monitoring while the split moves 10 -> 25 -> 50 -> 75 % on a
    timer (``looks_per_step`` looks each, whatever the verdicts): the shares of runs the gate ever
    called "better" and ever called "worse". For A/A these are its type-I errors."""
    traffic = _Traffic(scenario, runs, np.random.default_rng(seed))
    ever_better = np.zeros(runs, dtype=bool)
    ever_worse = np.zeros(runs, dtype=bool)
    live = np.arange(runs)
    for look in range(looks_per_step * (len(STEPS) - 1)):
        traffic.add(live, np.full(runs, STEPS[look // looks_per_step]), batch)
        codes, _, _ = decide(traffic.stats(live), rules)
        ever_better |= codes == BETTER
        ever_worse |= codes == WORSE
    return float(ever_better.mean()), float(ever_worse.mean())
