"""The gated canary's error rates and power, simulated (no services): issue 8, item 5.

    .venv/bin/python bench/gates.py [--runs 2000] [--horizon-looks 600] [--seed 0]

1. whole rollouts (``shared.rollout.simulate.simulate_rollouts``): a look every 20 calls, 5 looks'
   hold per step, 10 -> 25 -> 50 -> 75 -> 100 %; per scenario the shares promoted / rolled back /
   held within the horizon, and the median calls per arm at the decision;
2. power and rollback rate against the horizon (calls per rollout);
3. the bare gate's A/A type-I errors while the split moves on a timer and it is looked at every
   20 calls (``error_rates_fixed_schedule``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.rollout.simulate import SCENARIOS, error_rates_fixed_schedule, simulate_rollouts  # noqa: E402
from shared.rollout.stats import GateRules  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description="gated canary: simulated error rates and power")
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--horizon-looks", type=int, default=600, help="looks of 20 calls per rollout")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rules = GateRules()
    print(f"gate: alpha_better={rules.alpha_better} alpha_worse={rules.alpha_worse} min_samples={rules.min_samples}"
          f" tau={rules.tau} tolerances={dict(rules.tolerances)} relative={dict(rules.relative_tolerances)}")
    print(f"\n1. whole rollouts, {args.runs} runs, up to {args.horizon_looks * 20} calls each")
    for key, scenario in SCENARIOS.items():
        t = time.perf_counter()
        result = simulate_rollouts(scenario, args.runs, horizon_looks=args.horizon_looks, seed=args.seed)
        print(f"  {result.line()}  ({time.perf_counter() - t:.1f}s)", flush=True)
    print("\n2. against the horizon (calls per rollout)")
    for looks in (100, 150, 200, 250, 300, 400, 500, 600):
        rates = {key: simulate_rollouts(SCENARIOS[key], args.runs, horizon_looks=looks, seed=args.seed)
                 for key in ("better", "worse_quality", "worse_success")}
        print(f"  {looks * 20:6d} calls: +0.05 quality promoted {rates['better'].promoted:6.1%}; rolled back: "
              f"-0.05 quality {rates['worse_quality'].rolled_back:6.1%}, "
              f"success 0.90 {rates['worse_success'].rolled_back:6.1%}", flush=True)
    print("\n3. A/A, the split moving 10 -> 25 -> 50 -> 75 % on a timer, a look every 20 calls")
    for per_step in (25, 100, 250):
        better, worse = error_rates_fixed_schedule(runs=args.runs, looks_per_step=per_step, seed=args.seed)
        print(f"  {per_step * 20:5d} calls per step: ever 'better' {better:6.2%}, ever 'worse' {worse:6.2%}",
              flush=True)


if __name__ == "__main__":
    main()
