"""The rollout's statistics: sufficient statistics, the paired bootstrap, the live gate, and
simulations of whole gated rollouts (issue 8, item 5)."""

import json
import math
import random

import numpy as np
import pytest

from shared.rollout.simulate import SCENARIOS, error_rates_fixed_schedule, simulate_rollouts
from shared.rollout.stats import Arm, GateRules, Verdict, compare_live, decide, paired_confidence

RUNS = 400
#: A look every 20 calls for at most 600 looks: up to 12,000 calls per rollout.
HORIZON_LOOKS = 600


# ----- Arm ------------------------------------------------------------------------------------------

def test_arm_from_values_matches_numpy_and_stays_exact_on_large_means():
    rng = random.Random(1)
    values = [1e9 + rng.gauss(0, 1) for _ in range(1000)]
    arm = Arm.from_values(values)
    assert arm.n == 1000
    assert arm.mean == pytest.approx(np.mean(values), rel=1e-15)
    assert arm.variance == pytest.approx(np.var(values, ddof=1), rel=1e-6)


def test_arm_constructors_from_sql_aggregates_agree():
    values = [0.2, 0.9, 0.4, 0.7, 0.55]
    ref = Arm.from_values(values)
    n, s, ss = len(values), sum(values), sum(v * v for v in values)
    for arm in (Arm.from_sums(n, s, ss), Arm.from_aggregates(n, s / n, ss / n),
                Arm.from_moments(n, s / n, float(np.var(values, ddof=1)))):
        assert (arm.n, arm.mean, arm.variance) == pytest.approx((ref.n, ref.mean, ref.variance))
    assert Arm.from_sums(0, None, None) == Arm(0, 0.0, 0.0)
    assert Arm.from_aggregates(None, None, None).n == 0
    assert Arm.from_moments(1, 3.0, None) == Arm(1, 3.0, 0.0)
    assert math.isnan(Arm.from_aggregates(3, None, None).mean)
    assert Arm.from_aggregates(3, 1.0, 1.0 - 1e-17).m2 == 0.0  # cancellation clamped, never negative


def test_arm_merge_equals_all_values_at_once():
    a, b = [1.0, 2.0, 4.0], [10.0, 11.0]
    merged = Arm.from_values(a).merge(Arm.from_values(b))
    whole = Arm.from_values(a + b)
    assert (merged.n, merged.mean, merged.m2) == pytest.approx((whole.n, whole.mean, whole.m2))
    assert Arm(0, 0.0).merge(Arm(0, 0.0)).n == 0


# ----- paired bootstrap -----------------------------------------------------------------------------

def test_paired_confidence():
    rng = np.random.default_rng(3)
    inc = rng.uniform(0.3, 0.8, 200)
    better = inc + rng.normal(0.05, 0.1, 200)
    assert paired_confidence(better, inc) > 0.99
    assert paired_confidence(inc, better) < 0.01
    assert paired_confidence(inc, inc) == 0.5  # no difference at all: a coin flip, never deployed
    assert paired_confidence(better, inc, seed=7) == paired_confidence(better, inc, seed=7)
    noise = inc + rng.normal(0, 0.1, 200)
    assert 0.02 < paired_confidence(noise, inc) < 0.98
    assert paired_confidence([], []) == 0.0
    assert paired_confidence([0.5, math.nan], [0.4, 0.4]) == 0.0
    with pytest.raises(ValueError):
        paired_confidence([1.0, 2.0], [1.0])


# ----- the live gate --------------------------------------------------------------------------------

def arms(n, quality=0.6, success=0.97, latency=800.0, *, q_sd=0.25, lat_sd=400.0, feedback=None):
    out = {"quality": Arm.from_moments(n, quality, q_sd ** 2),
           "success": Arm.from_moments(n, success, success * (1 - success) * n / max(n - 1, 1)),
           "latency_ms": Arm.from_moments(n, latency, lat_sd ** 2)}
    if feedback is not None:
        out["feedback"] = Arm.from_moments(n, feedback, 0.25)
    return out


def check_json(verdict: Verdict):
    text = json.dumps(verdict.as_dict(), allow_nan=False)  # storable as JSON, no NaN, no numpy types
    assert json.loads(text) == verdict.as_dict()


def test_gate_decides_clear_cases_and_says_why():
    better = compare_live(arms(2000, 0.66), arms(8000))
    assert better.decision == "better" and better.details["primary"] == "quality"
    q = better.details["metrics"]["quality"]
    assert q["n_candidate"] == 2000 and q["mean_candidate"] == pytest.approx(0.66)
    assert q["improvement"] == pytest.approx(0.06)
    assert 0 < q["lower"] < q["improvement"] < q["upper"]
    check_json(better)
    worse = compare_live(arms(2000, 0.52), arms(8000))
    assert worse.decision == "worse" and "quality" in worse.reason
    assert worse.details["metrics"]["quality"]["upper"] < -0.01
    check_json(worse)
    same = compare_live(arms(2000), arms(8000))
    assert same.decision == "inconclusive"
    check_json(same)


def test_guards_veto_a_better_primary():
    slower = compare_live(arms(2000, 0.66, latency=1000.0), arms(8000))  # +25 % latency
    assert slower.decision == "worse" and "latency_ms" in slower.reason
    failing = compare_live(arms(2000, 0.66, success=0.90), arms(8000))
    assert failing.decision == "worse" and "success" in failing.reason
    within = compare_live(arms(2000, 0.66, latency=840.0, success=0.96), arms(8000))  # +5 %, -0.01
    assert within.decision == "better"


def test_too_few_samples_or_bad_data_never_better():
    assert compare_live(arms(49, 0.9), arms(8000)).decision == "insufficient"
    assert compare_live(arms(2000, 0.9), arms(49)).decision == "insufficient"
    assert compare_live({}, arms(8000)).decision == "insufficient"
    for bad in (math.nan, math.inf):
        cand = arms(2000, 0.9)
        cand["latency_ms"] = Arm(2000, bad, 1.0)
        verdict = compare_live(cand, arms(8000))
        assert verdict.decision == "insufficient" and "non-finite" in verdict.reason
        check_json(verdict)
    cand = arms(2000, 0.5)
    cand["latency_ms"] = Arm(2000, math.nan, 1.0)
    assert compare_live(cand, arms(8000)).decision == "worse"  # other evidence of harm still counts


def test_primary_falls_back_to_feedback_then_success():
    cand, inc = arms(2000, feedback=0.8), arms(8000, feedback=0.7)
    cand["quality"] = Arm(10, 0.9, 0.0)  # too few scored calls: feedback decides
    verdict = compare_live(cand, inc)
    assert verdict.details["primary"] == "feedback" and verdict.decision == "better"
    cand, inc = arms(3000, success=0.995), arms(8000, success=0.97)
    del cand["quality"]
    verdict = compare_live(cand, inc)
    assert verdict.details["primary"] == "success" and verdict.decision == "better"


def test_zero_variance_arms_are_not_evidence():
    # 50/50 successes against 97 %: a perfect small arm is not a significant improvement.
    cand = {"success": Arm.from_values([1.0] * 50)}
    inc = {"success": Arm.from_values([1.0] * 970 + [0.0] * 30)}
    assert compare_live(cand, inc).decision == "inconclusive"
    same = {"success": Arm.from_values([1.0] * 100)}
    assert compare_live(same, same).decision == "inconclusive"


def test_compare_live_runs_the_vectorised_gate():
    rng = np.random.default_rng(5)
    rules = GateRules()
    names = ("quality", "success", "latency_ms")
    n = rng.integers(20, 3000, (2, 200)).astype(float)
    means = {"quality": 0.6 + rng.normal(0, 0.04, (2, 200)), "success": 0.97 - rng.uniform(0, 0.06, (2, 200)),
             "latency_ms": 800 * np.exp(rng.normal(0, 0.15, (2, 200)))}
    sd = {"quality": 0.25, "success": 0.17, "latency_ms": 400.0}
    stats = {m: (n[0], means[m][0], np.full(200, sd[m] ** 2), n[1], means[m][1], np.full(200, sd[m] ** 2))
             for m in names}
    codes, _, _ = decide(stats, rules)
    decisions = ("insufficient", "inconclusive", "better", "worse")
    for j in range(200):
        one = [{m: Arm.from_moments(int(n[a, j]), means[m][a, j], sd[m] ** 2) for m in names} for a in (0, 1)]
        assert compare_live(*one, rules).decision == decisions[codes[j]]
    assert {decisions[c] for c in codes} == set(decisions)


# ----- whole rollouts, simulated (issue 8, item 5) ----------------------------------------------------

def test_aa_is_rarely_promoted_or_rolled_back():
    result = simulate_rollouts(SCENARIOS["aa"], RUNS, horizon_looks=HORIZON_LOOKS, seed=11)
    assert result.promoted <= 0.05 and result.rolled_back <= 0.05, result.line()


def test_aa_gate_under_a_moving_split_and_continuous_looks():
    ever_better, ever_worse = error_rates_fixed_schedule(runs=RUNS, looks_per_step=75, seed=12)
    assert ever_better <= 0.05 and ever_worse <= 0.05


def test_five_points_better_is_promoted():
    result = simulate_rollouts(SCENARIOS["better"], RUNS, horizon_looks=250, seed=13)  # <= 5,000 calls
    assert result.promoted >= 0.80 and result.rolled_back <= 0.05, result.line()


@pytest.mark.parametrize("name", ["worse_quality", "worse_success"])
def test_worse_is_rolled_back(name):
    result = simulate_rollouts(SCENARIOS[name], RUNS, horizon_looks=HORIZON_LOOKS, seed=14)
    assert result.rolled_back >= 0.95 and result.promoted <= 0.05, result.line()
