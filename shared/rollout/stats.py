"""Statistics of the gated canary: the offline paired comparison and the live sequential gate.

``paired_confidence``: the confidence that a candidate beats the incumbent on the same examples (a
paired, seeded bootstrap of the per-example differences); ``validate_candidate`` deploys at >= 0.8.

``compare_live``: the live gate, called every minute for hours on the cumulative metrics of both
arms since the rollout started. Per metric it runs a one-sided mixture sequential probability ratio
test (mSPRT: Robbins' normal mixture, a half-normal prior of scale ``tau`` standard deviations) on
the difference of means. Its likelihood ratio is a martingale under the null, so by Ville's
inequality the chance that it *ever* crosses ``1/alpha`` is <= alpha, however often one looks:
 * P("better" at any look) <= ``alpha_better`` when the primary metric is truly not better;
 * P("worse" at any look) <= ``alpha_worse`` when no metric truly regresses beyond its tolerance
   (each metric is tested at ``alpha_worse / k``, k = metrics compared: Bonferroni).
Assumptions: calls are independent; each arm's mean is close to normal (hence ``min_samples`` per
arm, default 50); variances are estimated (the larger of Welch's and the pooled estimate); both arms
cover the same window. When the split changes between looks (10 -> 25 %...) the difference of means
is no longer exactly a Brownian motion in information time, so there the guarantee is approximate:
``shared.rollout.simulate`` measures it (A/A "better" ever, split moving: ~2-3.5 % at alpha 5 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

#: +1 where higher is better, -1 where lower is better. Metrics outside it are ignored.
DIRECTIONS = {"quality": 1, "feedback": 1, "success": 1, "latency_ms": -1}
#: The primary metric is the first of these that both arms have with enough samples.
PRIMARY_ORDER = ("quality", "feedback", "success")
DECISIONS = ("insufficient", "inconclusive", "better", "worse")
INSUFFICIENT, INCONCLUSIVE, BETTER, WORSE = range(4)


def _float(x) -> float:
    return math.nan if x is None else float(x)


@dataclass(frozen=True)
class Arm:
    """Sufficient statistics of one arm for one metric: count, mean, sum of squared deviations."""

    n: int
    mean: float
    m2: float = 0.0

    @property
    def variance(self) -> float:
        """The sample variance (n - 1), 0 below two values."""
        return self.m2 / (self.n - 1) if self.n > 1 else 0.0

    @classmethod
    def from_values(cls, values: Sequence[float]) -> Arm:
        """Welford's single pass: no cancellation for large means (latencies in ms)."""
        n, mean, m2 = 0, 0.0, 0.0
        for v in values:
            n += 1
            d = float(v) - mean
            mean += d / n
            m2 += d * (float(v) - mean)
        return cls(n, mean, m2)

    @classmethod
    def from_aggregates(cls, count: int | None, avg: float | None, avg_sq: float | None) -> Arm:
        """From SQL ``count(x), avg(x), avg(x*x)``; NULL -> NaN. avg_sq - avg**2 cancels when the
        spread is small beside the mean (clamped at 0): prefer ``from_moments`` with var_samp."""
        n, avg, avg_sq = int(count or 0), _float(avg), _float(avg_sq)
        m2 = n * (avg_sq - avg * avg)
        return cls(n, avg, m2 if math.isnan(m2) else max(m2, 0.0)) if n else cls(0, 0.0, 0.0)

    @classmethod
    def from_sums(cls, count: int | None, total: float | None, sum_sq: float | None) -> Arm:
        """From SQL ``count(x), sum(x), sum(x*x)`` (same caveat as ``from_aggregates``)."""
        n = int(count or 0)
        return cls.from_aggregates(n, _float(total) / n, _float(sum_sq) / n) if n else cls(0, 0.0, 0.0)

    @classmethod
    def from_moments(cls, count: int | None, mean: float | None, variance: float | None) -> Arm:
        """From SQL ``count(x), avg(x), var_samp(x)`` (var_samp is NULL for one row: read as 0)."""
        n = int(count or 0)
        return cls(n, _float(mean), float(variance or 0.0) * (n - 1)) if n else cls(0, 0.0, 0.0)

    def merge(self, other: Arm) -> Arm:
        """Both arms' data together (Chan et al.'s parallel update)."""
        n = self.n + other.n
        if n == 0:
            return self
        d = other.mean - self.mean
        return Arm(n, self.mean + d * other.n / n, self.m2 + other.m2 + d * d * self.n * other.n / n)


@dataclass(frozen=True)
class GateRules:
    """The gate's settings. Tolerances are how much worse (in the metric's unit, plus a share of the
    incumbent's mean) a metric may be before it counts as a regression; ``tau`` is the mixture's
    scale in standard deviations (the effect size the test is most sensitive to)."""

    alpha_better: float = 0.05
    alpha_worse: float = 0.05
    min_samples: int = 50
    tau: float = 0.2
    tolerances: Mapping[str, float] = field(
        default_factory=lambda: {"quality": 0.01, "feedback": 0.01, "success": 0.02})
    relative_tolerances: Mapping[str, float] = field(default_factory=lambda: {"latency_ms": 0.10})
    directions: Mapping[str, int] = field(default_factory=lambda: dict(DIRECTIONS))
    primary_order: Sequence[str] = PRIMARY_ORDER


@dataclass(frozen=True)
class Verdict:
    """``decision``: "better" | "worse" | "inconclusive" | "insufficient". ``details`` is JSON-safe
    (plain floats, non-finite as None): the primary metric and, per metric, n, mean and sd of both
    arms, a status, and with enough samples the improvement (candidate - incumbent, sign flipped
    where lower is better), its always-valid ``lower`` bound (at alpha_better) and ``upper`` bound
    (at alpha_worse / k), and the tolerance."""

    decision: str
    reason: str
    details: dict

    def as_dict(self) -> dict:
        return {"decision": self.decision, "reason": self.reason, "details": self.details}


def _log_phi(z: float) -> float:
    """log of the standard normal CDF at a plain float."""
    return math.log(0.5 * math.erfc(-z / math.sqrt(2.0)) or 1e-300)


def _crosses(est, var, tau2, delta0, side, threshold):
    """Whether the one-sided mixture likelihood ratio for ``side * (delta - delta0) > 0`` reaches
    exp(threshold), for an estimate ``est`` of delta with variance ``var`` and a half-normal prior
    of variance ``tau2`` on delta. In logs it is log 2 + log Phi(z) + z^2/2 - log(1 + tau2/var)/2,
    z = side (est - delta0) / sqrt(var (1 + var/tau2)); Phi is evaluated only where the rest passes."""
    z = side * (est - delta0) / np.sqrt(var * (1.0 + var / tau2))
    rest = math.log(2.0) + 0.5 * z * z - 0.5 * np.log1p(tau2 / var)
    out = (rest >= threshold) & (z > 0)  # z <= 0: log Phi(z) + z^2/2 <= -log 2, so no evidence
    for j in np.flatnonzero(out):
        out.flat[j] = rest.flat[j] + _log_phi(float(z.flat[j])) >= threshold
    return out


def _moments(na, ma, va, nb, mb, vb, direction, tau):
    """Improvement estimate (positive: candidate better), its variance and the prior's variance."""
    na, nb = np.maximum(na, 1), np.maximum(nb, 1)
    pooled = (va * (na - 1) + vb * (nb - 1)) / np.maximum(na + nb - 2, 1)
    var = np.maximum(np.maximum(va / na + vb / nb, pooled * (1 / na + 1 / nb)), 1e-18 * (1 + mb * mb))
    tau2 = np.maximum(tau * tau * pooled, var * 1e-6)
    return direction * (ma - mb), var, tau2


def decide(stats: Mapping[str, tuple], rules: GateRules):
    """The gate on arrays (one element per comparison): ``stats[metric] = (n_c, mean_c, var_c, n_i,
    mean_i, var_i)``. Returns (decision codes, primary index per element or -1, per-metric dict of
    (enough, better, worse, tolerance, non-finite)). ``compare_live`` and the simulation both run this."""
    metrics = [m for m in stats if m in rules.directions]
    if not metrics:
        return np.array([INSUFFICIENT]), np.array([-1]), {}
    per = {}
    for m in metrics:
        na, ma, va, nb, mb, vb = (np.asarray(x, dtype=float) for x in stats[m])
        finite = np.isfinite(ma) & np.isfinite(va) & np.isfinite(mb) & np.isfinite(vb) & (va >= 0) & (vb >= 0)
        enough = finite & (na >= rules.min_samples) & (nb >= rules.min_samples)
        ma, va, mb, vb = (np.where(enough, x, 0.0) for x in (ma, va, mb, vb))
        est, var, tau2 = _moments(na, ma, va, nb, mb, vb, rules.directions[m], rules.tau)
        tol = rules.tolerances.get(m, 0.0) + rules.relative_tolerances.get(m, 0.0) * np.abs(mb)
        better = enough & _crosses(est, var, tau2, 0.0, 1, math.log(1 / rules.alpha_better))
        worse = enough & _crosses(est, var, tau2, -tol, -1, math.log(len(metrics) / rules.alpha_worse))
        per[m] = (enough, better, worse, tol, ~finite & (na + nb > 0))
    invalid, any_worse = (np.logical_or.reduce([p[j] for p in per.values()]) for j in (4, 2))
    primary, primary_better = np.full(invalid.shape, -1), np.zeros(invalid.shape, dtype=bool)
    for i, m in reversed(list(enumerate(rules.primary_order))):  # the first in the order wins
        if m in per:
            primary = np.where(per[m][0], i, primary)
            primary_better = np.where(per[m][0], per[m][1], primary_better)
    code = np.where(primary >= 0, np.where(primary_better, BETTER, INCONCLUSIVE), INSUFFICIENT)
    return np.where(any_worse, WORSE, np.where(invalid, INSUFFICIENT, code)), primary, per


def _bound(est, var, tau2, alpha, side) -> float:
    """The always-valid one-sided bound, lower (side 1) or upper (side -1), on the improvement: the
    delta0 at which ``_crosses``'s evidence equals log(1/alpha) (bisection; it is monotone)."""
    target, scale = math.log(1 / alpha), math.sqrt(var * (1.0 + var / tau2))
    penalty = math.log(2.0) - 0.5 * math.log1p(tau2 / var)
    # Beyond the two-sided radius the one-sided evidence is already >= target.
    inside, outside = est, est - side * scale * math.sqrt(2 * target + math.log1p(tau2 / var))
    for _ in range(50):
        mid = 0.5 * (inside + outside)
        z = side * (est - mid) / scale
        inside, outside = (inside, mid) if penalty + _log_phi(z) + 0.5 * z * z >= target else (mid, outside)
    return outside


def _num(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def compare_live(candidate: Mapping[str, Arm], incumbent: Mapping[str, Arm],
                 rules: GateRules = GateRules()) -> Verdict:
    """The live gate on both arms' cumulative metrics since the rollout started (see the module's
    docstring for what it guarantees). "worse": some metric is significantly worse than the
    incumbent beyond its tolerance; "better": the primary metric (quality, else feedback, else
    success) is significantly better and none is worse; "insufficient": fewer than
    ``rules.min_samples`` per arm for every primary metric, or non-finite data (unless another metric
    is already worse); else "inconclusive". Metrics either side lacks, or unknown, are left out."""
    names = [m for m in candidate if m in incumbent and m in rules.directions]
    stats = {m: tuple(np.array([x]) for x in (candidate[m].n, candidate[m].mean, candidate[m].variance,
                                              incumbent[m].n, incumbent[m].mean, incumbent[m].variance))
             for m in names}
    codes, primary, per = decide(stats, rules)
    k = max(len(names), 1)
    details: dict = {"primary": rules.primary_order[primary[0]] if primary[0] >= 0 else None,
                     "alpha_better": rules.alpha_better, "alpha_worse_per_metric": rules.alpha_worse / k,
                     "min_samples": rules.min_samples, "tau": rules.tau, "metrics": {}}
    for m in names:
        c, i = candidate[m], incumbent[m]
        enough, better, worse, tol, bad = (x[0] for x in per[m])
        row = {"n_candidate": int(c.n), "n_incumbent": int(i.n), "mean_candidate": _num(c.mean),
               "mean_incumbent": _num(i.mean), "sd_candidate": _num(math.sqrt(max(c.variance, 0.0))),
               "sd_incumbent": _num(math.sqrt(max(i.variance, 0.0))),
               "status": "worse" if worse else "better" if better else "ok" if enough
               else "non-finite" if bad else "insufficient"}
        if enough:
            est, var, tau2 = (float(x[0]) for x in _moments(
                *stats[m][:3], *stats[m][3:], rules.directions[m], rules.tau))
            row.update(improvement=est, tolerance=float(tol), lower=_bound(est, var, tau2, rules.alpha_better, 1),
                       upper=_bound(est, var, tau2, rules.alpha_worse / k, -1))
        details["metrics"][m] = {key: _num(v) if isinstance(v, float) else v for key, v in row.items()}
    decision = DECISIONS[int(codes[0])]
    rows = details["metrics"]
    if decision == "worse":
        reason = "significantly worse beyond tolerance: " + ", ".join(
            f"{m} (improvement <= {rows[m]['upper']:.4g}, tolerance {rows[m]['tolerance']:.4g})"
            for m in names if rows[m]["status"] == "worse")
    elif decision == "better":
        p = details["primary"]
        reason = f"{p} significantly better (improvement >= {rows[p]['lower']:.4g}) and no metric worse"
    elif decision == "inconclusive":
        reason = f"{details['primary']} not yet significantly better or worse"
    elif any(rows[m]["status"] == "non-finite" for m in names):
        reason = "non-finite data: " + ", ".join(m for m in names if rows[m]["status"] == "non-finite")
    else:
        reason = (f"fewer than {rules.min_samples} samples per arm for "
                  + "/".join(rules.primary_order) if names else "no metric in common")
    return Verdict(decision, reason, details)


def paired_confidence(candidate: Sequence[float], incumbent: Sequence[float], *,
                      n_boot: int = 2000, seed: int = 0) -> float:
    """Confidence (0..1) that the candidate's mean is higher on the same examples: the share of
    bootstrap resamples of the per-example differences whose mean is > 0 (ties count half).
    Deterministic for a seed. Empty or non-finite input: 0.0 (never deploy on it)."""
    c, i = np.asarray(candidate, dtype=float), np.asarray(incumbent, dtype=float)
    if c.shape != i.shape or c.ndim != 1:
        raise ValueError(f"paired scores must be two equal-length sequences, got {c.shape} and {i.shape}")
    d = c - i
    if d.size == 0 or not np.isfinite(d).all():
        return 0.0
    rng = np.random.default_rng(seed)
    wins = 0.0
    chunk = max(1, 2_000_000 // d.size)
    for start in range(0, n_boot, chunk):
        means = d[rng.integers(0, d.size, size=(min(chunk, n_boot - start), d.size))].mean(axis=1)
        wins += float((means > 1e-12).sum()) + 0.5 * float((np.abs(means) <= 1e-12).sum())
    return wins / n_boot

