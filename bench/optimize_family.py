"""The smaller real runs: optimize LightRAG's summarization (SciTLDR, ROUGE-L) or answer generation
(XQuAD, token F1) prompt for the local small model, compare on held-out examples.

    nohup .venv/bin/python bench/optimize_family.py --family summarization > bench/results/optimize_summarization.log 2>&1 &
    nohup .venv/bin/python bench/optimize_family.py --family answer_generation > bench/results/optimize_answer_generation.log 2>&1 &

Same machinery and resumability as ``bench/optimize_extraction.py`` (one SQLite file per family and
model, LM answers exportable with ``--export-cache``). The optimizer is GEPA by default (the target
model reflects on its own failures: the README says what a 1.5B proposer can do); ``--optimizer
mipro`` uses DSPy's GroundedProposer instead. Examples are drawn seeded from the family's dataset:
``--search`` + ``--val`` for the run, ``--test`` others for the final comparison.
Results: ``bench/results/optimize_<family>.<model>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from optimize_extraction import RESULTS, export_cache, import_cache, measured_seconds, output_tokens  # noqa: E402

SETUPS = {
    "summarization": {"dataset": "scitldr", "objective": {"rougeL": 0.7, "format_compliance": 0.15,
                                                          "hallucination_rate": -0.15},
                      "reported": ("rougeL", "format_compliance", "hallucination_rate", "readability")},
    "answer_generation": {"dataset": "xquad", "objective": {"token_f1": 0.6, "answer_containment": 0.3,
                                                            "hallucination_rate": -0.1},
                          "reported": ("token_f1", "exact_match", "answer_containment", "hallucination_rate")},
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--family", choices=sorted(SETUPS), required=True)
    p.add_argument("--model", default="1.5b")
    p.add_argument("--optimizer", default="gepa", choices=("gepa", "mipro"))
    p.add_argument("--search", type=int, default=6)
    p.add_argument("--val", type=int, default=6)
    p.add_argument("--test", type=int, default=20)
    p.add_argument("--budget-calls", type=int, default=120)
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--export-cache", type=Path)
    p.add_argument("--import-cache", type=Path)
    return p.parse_args()


def main() -> None:
    import os

    args = parse_args()
    from shared.localmodels import resolve

    setup = SETUPS[args.family]
    os.environ["DATABASE_URL"] = f"sqlite:///{RESULTS / f'optimize_{args.family}.{args.model}.sqlite'}"
    os.environ["PROMPTLOOP_MODELS"] = json.dumps({args.model: f"local/{resolve(args.model).name}"})
    os.environ["PROMPTLOOP_LM_MAX_TOKENS"] = str(args.max_tokens)
    os.environ.setdefault("PROMPTLOOP_LOCAL_THREADS", str(args.threads))
    from sqlalchemy import select

    from shared.datasets import import_datasets
    from shared.db import get_engine
    from shared.evaluation import ExampleRef, register_baselines
    from shared.migrate import upgrade
    from shared.models import EvalExample, OptimizationRun
    from shared.optimize.driver import run_optimization
    from shared.optimize.runs import load_run
    from shared.optimize.scoring import score_variant
    from shared.optimize.start import start_optimization
    from shared.optimize.variants import active_variant
    from shared.settings import get_settings

    settings, engine = get_settings(), get_engine()
    upgrade(engine)
    import_datasets(engine, settings.datasets_dir, names=[setup["dataset"]])
    register_baselines(engine, [args.model], [args.family])
    if args.export_cache:
        print(f"exported {export_cache(engine, args.export_cache)} LM answers to {args.export_cache}")
        return
    if args.import_cache:
        print(f"imported {import_cache(engine, args.import_cache)} LM answers", flush=True)
    with engine.connect() as conn:
        ids = list(conn.execute(select(EvalExample.id).where(EvalExample.family == args.family,
                                                             EvalExample.dataset == setup["dataset"])
                                .order_by(EvalExample.id)).scalars())
    random.Random(args.seed).shuffle(ids)
    refs = [ExampleRef("dataset", i, args.family) for i in ids]
    search, val = refs[:args.search], refs[args.search:args.search + args.val]
    test = refs[args.search + args.val:args.search + args.val + args.test]
    with engine.connect() as conn:
        run_id = conn.execute(select(OptimizationRun.id).where(OptimizationRun.family == args.family,
                                                               OptimizationRun.optimizer == args.optimizer,
                                                               OptimizationRun.status != "failed")
                              .order_by(OptimizationRun.id.desc())).scalar()
    if run_id is None:
        run_id = start_optimization(engine, settings, family=args.family, model=args.model, optimizer=args.optimizer,
                                    budget_calls=args.budget_calls, budget_minutes=24 * 60, seed=args.seed,
                                    objective=setup["objective"], train=search, val=val, chunk_size=2)
    started = time.monotonic()

    def progress(record, history, calls_left):
        print(f"[run {run_id}] trial {record['trial']}: objective {record['score']:.3f} "
              f"{json.dumps({k: round(v, 3) for k, v in record['metrics'].items() if isinstance(v, float)})} "
              f"({record['seconds']:.0f}s, {calls_left} calls left)", flush=True)

    outcome = run_optimization(engine, settings, run_id, ttl_s=600, progress=progress)
    print(f"optimization: {outcome['status']}: {outcome['reason']}", flush=True)
    run = load_run(engine, run_id)
    contenders = [("LightRAG default", active_variant(engine, args.family, args.model).id)]
    if run.best_variant_id:
        contenders.insert(0, ("optimized", run.best_variant_id))
    table = {}
    for label, variant_id in contenders:
        scores = score_variant(engine, settings, variant_id, test, batch_size=2)
        secs = [s for s in measured_seconds(engine, variant_id, test) if s is not None]
        toks = output_tokens(settings, args.model, scores.outputs)
        table[label] = {m: scores.mean(m) for m in setup["reported"]} | {
            "seconds_per_call": sum(secs) / len(secs) if secs else None,
            "output_tokens_per_call": sum(toks) / len(toks) if toks else None, "failed": len(scores.errors)}
        print(label, json.dumps(table[label]), flush=True)
    report = {"family": args.family, "model": settings.models[args.model], "optimizer": args.optimizer,
              "search": len(search), "val": len(val), "test": len(test), "stop_reason": run.stop_reason,
              "lm_calls": run.lm_calls, "cached_calls": run.cached_calls, "seconds": run.seconds,
              "result": json.loads(run.result or "{}"), "comparison": table,
              "wall_seconds_this_invocation": time.monotonic() - started}
    report["result"].pop("program", None)
    (RESULTS / f"optimize_{args.family}.{args.model}.json").write_text(json.dumps(report, indent=1))
    lines = [f"# {args.family}: optimized ({args.optimizer}) vs LightRAG's default — {report['model']}", "",
             f"{len(test)} held-out {setup['dataset']} examples; run {run.id}: {run.stop_reason}; "
             f"{run.lm_calls} LM calls, {run.seconds / 60:.1f} min.", "",
             "| prompt | " + " | ".join(setup["reported"]) + " | s/call | out tokens | failed |",
             "|---|" + "---|" * (len(setup["reported"]) + 3)]
    for label, row in table.items():
        lines.append(f"| {label} | " + " | ".join(f"{row[m]:.3f}" for m in setup["reported"])
                     + f" | {row['seconds_per_call'] or 0:.1f} | {row['output_tokens_per_call'] or 0:.0f} | {row['failed']} |")
    (RESULTS / f"optimize_{args.family}.{args.model}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
