"""Same demos, other descriptions: how the entity-description style of a demos trial changes the answers.

    .venv/bin/python bench/demo_descriptions.py --run 12 --trial 5 --styles type,grounded,relations

Takes the demo sentences a ``demos`` trial drew (its ``demo_ids``), renders them again in each
description style of ``shared/optimize/demos.py``, and scores each rendering on the run's search set
(``--on val``: its validation set) with the model and LM cache of ``bench/optimize_extraction.py``'s
SQLite file. The trial is proposed again by the demos optimizer itself with only the style changed
(same seed and trial number, so the same demo sentences), so the table isolates what the style does:
format compliance, entity and relation F1, hallucination, description grounding and words per answer.
A rendering scored before costs no LM call. Nothing is registered as a candidate: the rows are trial
variants (``run<R>-trial<T>-<style>``), never served.
Results: ``bench/results/demo_descriptions.<model>.run<R>-trial<T>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from optimize_extraction import FAMILY, RESULTS, configure  # noqa: E402

COLUMNS = ("format_compliance", "entity_f1", "relation_f1", "hallucination_rate", "description_grounding",
           "output_words")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="1.5b")
    p.add_argument("--db", type=Path, help="SQLite file (default bench/results/optimize_extraction.<model>.sqlite)")
    p.add_argument("--run", type=int, required=True, help="a demos run of that file")
    p.add_argument("--trial", type=int, required=True, help="the trial whose demo sentences are rendered again")
    p.add_argument("--styles", default="type,grounded,relations", help="comma-separated description styles")
    p.add_argument("--on", choices=("search", "val"), default="search", help="the run's set to score on")
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--threads", type=int, default=0)
    return p.parse_args()


def main() -> None:
    args = parse_args()
    configure(args)
    from sqlalchemy import select

    from shared.db import get_engine
    from shared.evaluation import ExampleRef
    from shared.families.template import PromptTemplate
    from shared.models import OptimizationTrial, PromptVariant
    from shared.optimize import demo_search
    from shared.optimize.base import RunContext
    from shared.optimize.demos import DESCRIPTION_STYLES
    from shared.optimize.runs import load_run
    from shared.optimize.scoring import score_variant
    from shared.optimize.variants import trial_variant
    from shared.settings import get_settings

    settings = get_settings()
    engine = get_engine(settings)
    styles = [s.strip() for s in args.styles.split(",") if s.strip()]
    if unknown := [s for s in styles if s not in DESCRIPTION_STYLES]:
        sys.exit(f"unknown description style {unknown[0]!r}: use {', '.join(DESCRIPTION_STYLES)}")
    try:
        run = load_run(engine, args.run)
    except LookupError as exc:
        sys.exit(str(exc))
    with engine.connect() as conn:
        config = conn.execute(select(OptimizationTrial.config).where(
            OptimizationTrial.run_id == run.id, OptimizationTrial.trial == args.trial)).scalar_one_or_none()
        config = json.loads(config) if config else {}
        if config.get("kind") != "demos":
            sys.exit(f"run {run.id} has no demos trial {args.trial}: give a trial of a demos run")
        parent = PromptTemplate.from_json(conn.execute(select(PromptVariant.template).where(
            PromptVariant.id == run.parent_id)).scalar_one())
    sets = json.loads(run.train_ids if args.on == "search" else run.val_ids)
    refs = [ExampleRef(source, i, FAMILY) for source, i in sets]
    options = json.loads(run.settings)["optimizer_options"]
    table = {}
    for style in styles:
        # The trial proposed again with another style: the same seeded picks, rendered as the run did.
        ctx = RunContext(engine=engine, settings=settings, run_id=run.id, family=run.family, model=run.model,
                         seed=run.seed, parent=parent, options=options | {"descriptions": style}, train=refs)
        proposal = demo_search.propose(ctx, history=[{}] * args.trial)
        if proposal is None or proposal.config["demo_ids"] != config["demo_ids"]:
            sys.exit(f"run {run.id}'s trial {args.trial} cannot be proposed again here (its demo pool changed)")
        variant_id = trial_variant(engine, run.id, f"{args.trial}-{style}", FAMILY, run.model, proposal.template,
                                   run.parent_id)
        print(f"scoring trial {args.trial}'s demos with {style} descriptions on {len(refs)} sentences...", flush=True)
        scores = score_variant(engine, settings, variant_id, refs, batch_size=2)
        table[style] = {m: scores.mean(m) for m in COLUMNS} | {"lm_calls": scores.lm_calls,
                                                               "failed": sum(m is None for m in scores.metrics)}
        print(json.dumps({style: table[style]}), flush=True)
    name = f"demo_descriptions.{args.model}.run{run.id}-trial{args.trial}"
    report = {"run": run.id, "trial": args.trial, "demo_ids": config["demo_ids"], "set": args.on,
              "sentences": len(refs), "styles": table}
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=1))
    lines = [f"# Run {run.id} trial {args.trial}'s demos, description styles compared",
             "", f"{len(refs)} sentences of the run's {args.on} set; the same demo sentences "
             f"({', '.join(map(str, config['demo_ids']))}) after the parent's examples; only their entity "
             "descriptions differ.", "",
             "| style | " + " | ".join(COLUMNS) + " | LM calls |", "|---|" + "---|" * (len(COLUMNS) + 1)]
    for style, row in table.items():
        lines.append(f"| {style} | " + " | ".join(f"{row[m]:.3f}" if m != "output_words" else f"{row[m]:.1f}"
                                                 for m in COLUMNS) + f" | {row['lm_calls']} |")
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
