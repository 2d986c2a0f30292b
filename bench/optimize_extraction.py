"""The real result: optimize LightRAG's extraction prompt for a local small model, compare on unseen sentences.

    .venv/bin/promptloop models fetch 1.5b
    CMAKE_ARGS="-DGGML_NATIVE=OFF" .venv/bin/pip install 'promptloop[local]'
    nohup .venv/bin/python bench/optimize_extraction.py > bench/results/optimize_extraction.log 2>&1 &

Optimizes ``entity_extraction`` (LightRAG's ``entity_extraction_*`` prompts, which extract entities and
relations in one call) on the local Qwen2.5-Coder-1.5B with promptloop's own run machinery: the
``demos`` optimizer draws gold CoNLL04 *train* sentences as demonstrations, candidates are scored on a
search set of CoNLL04 dev sentences, the best is validated on another dev set, and the exported prompt
is compared with LightRAG's default on ``--test`` dev sentences that neither set touched (the first
ones of dev, so the first 30 are the sentences ``bench/lightrag_baseline.py`` used).

Everything lives in one SQLite file (``--db``): the LM cache, the run's checkpoints, the scores. Run
it again after an interruption and it resumes (cached calls cost nothing). ``--export-cache F.jsonl``
writes the LM answers as text (committed under ``bench/results/``), and ``--import-cache F.jsonl`` on
another machine or after a schema change replays them for free. Seconds per call are the
ones measured when each call was really made. Results: ``bench/results/optimize_extraction.<model>.json``
and ``.md``, and the exported ``entity_extraction.<model>.lightrag.json``; ``--tag`` names another set.
When validation refuses the search's best, nothing is exported and the table compares the parent (and
the default); ``--compare NAME`` adds any variant, a refused trial among them, as a labelled diagnostic.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
FAMILY = "entity_extraction"
#: What the search maximizes: the headline metrics at once (hallucination as a penalty).
OBJECTIVE = {"entity_f1": 0.35, "relation_f1": 0.25, "format_compliance": 0.25, "hallucination_rate": -0.15}
REPORTED = ("format_compliance", "record_validity", "entity_f1", "entity_f1_typed", "relation_f1", "hallucination_rate",
            "description_grounding")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="1.5b", help="model key (a local GGUF from `promptloop models fetch`)")
    p.add_argument("--db", type=Path, help="SQLite file (default bench/results/optimize_extraction.<model>.sqlite)")
    p.add_argument("--search", type=int, default=8, help="dev sentences candidates are scored on")
    p.add_argument("--val", type=int, default=8, help="dev sentences the best candidate is validated on")
    p.add_argument("--test", type=int, default=50, help="unseen dev sentences of the final comparison")
    p.add_argument("--candidates", type=int, default=10)
    p.add_argument("--budget-calls", type=int, default=300)
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0: one per core; 1 on a busy machine)")
    p.add_argument("--optimizer", default="demos", choices=("demos", "prune", "rules"),
                   help="demos: search gold demonstrations; prune: search which instruction rules to keep; "
                        "rules: search which written rules to add")
    p.add_argument("--parent", help="name of the variant to improve (e.g. DSPY_A); default: LightRAG's")
    p.add_argument("--parent-demos", choices=("keep", "drop"),
                   help="keep LightRAG's worked examples and append the demos, or put the demos in their place")
    p.add_argument("--demo-descriptions", choices=("type", "grounded", "relations"),
                   help="demos: how the demos describe entities (a new run's default: grounded, quoting the text; "
                        "runs 1-8 used type: 'X is a person named in the text.'; relations: a sentence from the "
                        "entity's gold relation, 'X is a person who works for Y.'). Without it, a run stored "
                        "with the same other arguments before the option existed is resumed as it was (type)")
    p.add_argument("--demo-counts", help="how many demos a candidate may have, e.g. 3,4,5 (default: the optimizer's)")
    p.add_argument("--drop-shares", help="prune: shares of the instruction's rules a candidate drops, e.g. "
                                         "0.5,0.65,0.8 (default: the optimizer's)")
    p.add_argument("--rules-file", type=Path, help="rules: the bank to search, a text file with one rule a line "
                   "(default: the optimizer's EXTRACTION_RULES)")
    p.add_argument("--length-weight", type=float, default=0.0,
                   help="objective weight of output words (negative prefers shorter answers, e.g. -0.0005)")
    p.add_argument("--description-weight", type=float, default=0.0,
                   help="objective weight of description_grounding (the share of entity descriptions that say "
                        "something the text says), e.g. 0.15")
    p.add_argument("--tag", default="", help="suffix of the result files (e.g. run3), so a new run keeps the old ones")
    p.add_argument("--compare", action="append", default=[], metavar="NAME",
                   help="also score this variant on the test set, e.g. a trial the validation refused "
                        "(a diagnostic: a prompt picked with the test scores in view is not a result); repeatable")
    p.add_argument("--skip-default", action="store_true", help="do not (re)score LightRAG's default on the test set")
    p.add_argument("--export-cache", type=Path, help="write this bench's LM answers as JSONL and exit")
    p.add_argument("--import-cache", type=Path, help="copy the LM answers of an older run's SQLite file first "
                   "(e.g. one made before a schema change): its calls are then replayed for free")
    return p.parse_args()


def configure(args) -> None:
    from shared.localmodels import resolve

    db = args.db or RESULTS / f"optimize_extraction.{args.model}.sqlite"
    os.environ["DATABASE_URL"] = f"sqlite:///{db}"
    os.environ["PROMPTLOOP_MODELS"] = json.dumps({args.model: f"local/{resolve(args.model).name}"})
    os.environ["PROMPTLOOP_LM_MAX_TOKENS"] = str(args.max_tokens)
    os.environ.setdefault("PROMPTLOOP_LOCAL_THREADS", str(args.threads))


def import_cache(engine, path: Path) -> int:
    """LM answers from another SQLite file (only the stable columns), keeping answers already here."""
    import sqlite3

    from shared.lm import cache_insert

    if path.suffix == ".jsonl":  # what --export-cache writes: one answer a line, small enough to commit
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    else:
        with sqlite3.connect(path) as old:
            rows = [{"key": k, "model": m, "response": r}
                    for k, m, r in old.execute("SELECT key, model, response FROM lm_cache")]
    if rows:
        with engine.begin() as conn:
            conn.execute(cache_insert(engine), rows)
    return len(rows)


def export_cache(engine, path: Path) -> int:
    """Every LM answer of this bench as JSONL (key, model, response), for a later --import-cache."""
    from sqlalchemy import select

    from shared.models import LMCacheEntry

    with engine.connect() as conn:
        rows = conn.execute(select(LMCacheEntry.key, LMCacheEntry.model, LMCacheEntry.response)
                            .order_by(LMCacheEntry.created_at, LMCacheEntry.key)).all()
    path.write_text("".join(json.dumps({"key": k, "model": m, "response": r}) + "\n" for k, m, r in rows))
    return len(rows)


def dev_ids(engine) -> list[int]:
    from sqlalchemy import select

    from shared.models import EvalExample

    with engine.connect() as conn:
        return list(conn.execute(select(EvalExample.id).where(
            EvalExample.dataset == "conll04", EvalExample.split == "dev", EvalExample.family == FAMILY)
            .order_by(EvalExample.id)).scalars())


#: Below this a scored row's latency is a cache hit, not a call of the local model (which takes seconds).
CACHED_MS = 100


def measured_seconds(engine, variant_id: int, refs) -> list[float | None]:
    """Per example, the latency of the call that really ran (cached re-scorings take ~0 s): None where
    no real call is on record."""
    from sqlalchemy import func, select

    from shared.models import EvaluationScore

    with engine.connect() as conn:
        rows = dict(((s, i), ms) for s, i, ms in conn.execute(
            select(EvaluationScore.example_source, EvaluationScore.example_id, func.max(EvaluationScore.latency_ms))
            .where(EvaluationScore.variant_id == variant_id, EvaluationScore.ok.is_(True))
            .group_by(EvaluationScore.example_source, EvaluationScore.example_id)))
    # A row under CACHED_MS was answered from the LM cache (a database rebuilt with --import-cache holds
    # only such rows for the answers it replayed): no seconds were measured for it.
    return [rows[(r.source, r.id)] / 1000 if (rows.get((r.source, r.id)) or 0) >= CACHED_MS else None for r in refs]


def output_tokens(settings, model: str, outputs: list[str | None]) -> list[int]:
    from shared.lm import get_lm

    llama = get_lm(model, settings)._llama()
    return [len(llama.tokenize(o.encode(), add_bos=False)) for o in outputs if o is not None]


def seconds_cell(value: float | None) -> str:
    """A table cell: "—" where no call was measured (every answer came from the cache)."""
    return "—" if value is None else f"{value:.1f}"


def summarize(scores, seconds, tokens) -> dict:
    row = {m: scores.mean(m) for m in REPORTED}
    secs = [s for s in seconds if s is not None]
    row |= {"seconds_per_call": statistics.fmean(secs) if secs else None,
            "output_tokens_per_call": statistics.fmean(tokens) if tokens else None,
            "n": len(scores.metrics), "failed": sum(m is None for m in scores.metrics)}
    return row


def main() -> None:
    args = parse_args()
    configure(args)
    from shared.datasets import import_datasets
    from shared.db import get_engine
    from shared.evaluation import ExampleRef
    from shared.migrate import upgrade
    from shared.models import OptimizationRun
    from shared.optimize.driver import run_optimization
    from shared.optimize.history import find_variant
    from shared.optimize.promptset import export_lightrag
    from shared.optimize.registry import prepare_options
    from shared.optimize.runs import lm_settings, load_run
    from shared.optimize.scoring import score_variant
    from shared.optimize.start import start_optimization
    from shared.optimize.variants import active_variant
    from shared.families.template import PromptTemplate
    from shared.settings import get_settings
    from sqlalchemy import select

    settings = get_settings()
    engine = get_engine(settings)
    upgrade(engine)
    import_datasets(engine, settings.datasets_dir, names=["conll04"])
    if args.export_cache:
        print(f"exported {export_cache(engine, args.export_cache)} LM answers to {args.export_cache}")
        return
    if args.import_cache:
        print(f"imported {import_cache(engine, args.import_cache)} cached LM answers from {args.import_cache}", flush=True)
    dev = dev_ids(engine)
    test = [ExampleRef("dataset", i, FAMILY) for i in dev[:args.test]]
    search = [ExampleRef("dataset", i, FAMILY) for i in dev[-(args.search + args.val):-args.val]]
    val = [ExampleRef("dataset", i, FAMILY) for i in dev[-args.val:]]

    demo_options = {k: v for k, v in (("parent_demos", args.parent_demos), ("demo_counts", args.demo_counts and [
        int(n) for n in args.demo_counts.split(",")]), ("descriptions", args.demo_descriptions)) if v is not None}
    if demo_options and args.optimizer != "demos":
        sys.exit("--parent-demos, --demo-counts and --demo-descriptions are options of the demos optimizer")
    if args.drop_shares and args.optimizer != "prune":
        sys.exit("--drop-shares is an option of the prune optimizer")
    try:
        prune_options = {"drop_shares": [float(x) for x in args.drop_shares.split(",")]} if args.drop_shares else {}
        if not all(0 < x <= 1 for x in prune_options.get("drop_shares", [])):
            raise ValueError
    except ValueError:
        sys.exit(f"--drop-shares takes numbers above 0 and at most 1 separated by commas, not {args.drop_shares!r}")
    rule_options = {}
    if args.rules_file:
        if args.optimizer != "rules":
            sys.exit("--rules-file is an option of the rules optimizer")
        try:
            rule_options = {"rules": [line.strip() for line in args.rules_file.read_text(encoding="utf-8").splitlines()
                                      if line.strip()]}
        except (OSError, UnicodeDecodeError) as exc:
            sys.exit(f"could not read {args.rules_file} ({exc.__class__.__name__}): give a UTF-8 file, one rule a line")
    options = {"candidates": args.candidates} | demo_options | prune_options | rule_options
    try:
        parent_id = find_variant(engine, f"{FAMILY}/{args.model}/{args.parent}").id if args.parent else None
        extras = [find_variant(engine, f"{FAMILY}/{args.model}/{name}") for name in args.compare]
    except LookupError as exc:
        sys.exit(str(exc))
    objective = (OBJECTIVE | ({"output_words": args.length_weight} if args.length_weight else {})
                 | ({"description_grounding": args.description_weight} if args.description_weight else {}))
    baseline = active_variant(engine, FAMILY, args.model)
    want_parent = parent_id or (baseline.id if baseline else None)
    with engine.connect() as conn:
        earlier = conn.execute(select(OptimizationRun.id, OptimizationRun.settings, OptimizationRun.status,
                                      OptimizationRun.train_ids, OptimizationRun.val_ids).where(
            OptimizationRun.family == FAMILY, OptimizationRun.model == args.model, OptimizationRun.seed == args.seed,
            OptimizationRun.optimizer == args.optimizer,
            OptimizationRun.parent_id == want_parent)
            .order_by(OptimizationRun.id.desc())).all()
    sets = ([[r.source, r.id] for r in search], [[r.source, r.id] for r in val])
    lm = lm_settings(settings, args.model)
    try:
        stored = prepare_options(args.optimizer, FAMILY, options)  # what a new run stores (the rules' bank)
    except ValueError as exc:
        sys.exit(str(exc))

    def plain(opts: dict) -> dict:  # demos runs stored before the descriptions option used "type"
        return {"descriptions": "type"} | opts if args.optimizer == "demos" else opts

    def same(text, train, val_) -> bool:
        made = json.loads(text)
        return (plain(made["optimizer_options"]) in (plain(options), plain(stored)) and made["budget_calls"] == args.budget_calls
                and made["objective"] == objective and (json.loads(train), json.loads(val_)) == sets
                and made.get("lm", lm) == lm)  # runs made before runs recorded their LM: taken as matching

    # Resume (or reuse) the run made with these arguments; a failed one, or other arguments, start anew.
    run_id = next((e.id for e in earlier if e.status != "failed" and same(e.settings, e.train_ids, e.val_ids)), None)
    if run_id is None:
        run_id = start_optimization(engine, settings, family=FAMILY, model=args.model, optimizer=args.optimizer,
                                    budget_calls=args.budget_calls, budget_minutes=24 * 60, seed=args.seed,
                                    objective=objective, optimizer_options=options,
                                    train=search, val=val, chunk_size=2, parent_id=parent_id)
    started = time.monotonic()
    tag = f".{args.tag}" if args.tag else ""

    def progress(record, history, calls_left):
        m = record["metrics"]
        print(f"[run {run_id}] trial {record['trial']}: objective {record['score']:.3f} "
              f"format {m.get('format_compliance', 0):.2f} entity_f1 {m.get('entity_f1', 0):.2f} "
              f"relation_f1 {m.get('relation_f1', 0):.2f} halluc {m.get('hallucination_rate', 0):.2f} "
              f"({record['seconds']:.0f}s, {calls_left} calls left)", flush=True)

    outcome = run_optimization(engine, settings, run_id, ttl_s=600, progress=progress)
    print(f"optimization: {outcome['status']}: {outcome['reason']}", flush=True)
    run = load_run(engine, run_id)
    baseline = baseline or active_variant(engine, FAMILY, args.model)  # a new database gets it from the run
    if run.status != "done":  # held by another copy, stopped, failed: nothing to compare yet
        sys.exit(f"run {run_id} is {run.status}, not done: the test set is scored once it is")
    compared = []
    export = RESULTS / f"{FAMILY}.{args.model}{tag}.lightrag.json"
    if run.best_variant_id is None:
        # An export already there (the committed best, without --tag) is an earlier run's and stays.
        print("no candidate registered: nothing exported" + (f" ({export.name} is an earlier run's)" if export.exists()
              else "") + "; the test set compares the parent and the default", flush=True)
    else:
        best = find_variant(engine, str(run.best_variant_id))
        export.write_text(json.dumps(export_lightrag(PromptTemplate.from_json(best.template)), indent=1,
                                     ensure_ascii=False))
        compared.append((f"optimized ({best.name})", best.id))
    if parent_id and parent_id != baseline.id:
        compared.append((f"its parent ({args.parent})", parent_id))
    for extra in extras:
        if extra.id not in {variant_id for _, variant_id in compared}:
            compared.append((f"{extra.name} ({extra.status}; diagnostic)", extra.id))
    table = {}
    for label, variant_id in compared + [("LightRAG default", baseline.id)]:
        if label == "LightRAG default" and args.skip_default:
            continue
        print(f"scoring {label} on {len(test)} unseen dev sentences...", flush=True)
        scores = score_variant(engine, settings, variant_id, test, batch_size=2)
        table[label] = summarize(scores, measured_seconds(engine, variant_id, test),
                                 output_tokens(settings, args.model, scores.outputs))
        print(json.dumps(table[label]), flush=True)
    run = load_run(engine, run_id)
    report = {"model": settings.models[args.model], "max_tokens": args.max_tokens, "test_sentences": len(test),
              "search_sentences": len(search), "val_sentences": len(val), "objective": objective,
              "optimizer_options": options,
              "run": {"id": run.id, "optimizer": run.optimizer, "seed": run.seed, "status": run.status,
                      "stop_reason": run.stop_reason, "lm_calls": run.lm_calls, "cached_calls": run.cached_calls,
                      "seconds": run.seconds, "result": json.loads(run.result or "{}")},
              "comparison": table, "wall_seconds_this_invocation": time.monotonic() - started}
    report["run"]["result"].pop("program", None)
    (RESULTS / f"optimize_extraction.{args.model}{tag}.json").write_text(json.dumps(report, indent=1))
    title = "optimized vs default" if run.best_variant_id else "no candidate registered; parent vs default"
    lines = [f"# LightRAG extraction prompt, {title} — {report['model']}",
             "", f"{len(test)} CoNLL04 dev sentences never used in optimization; temperature 0, max_tokens "
             f"{args.max_tokens}. Optimization: run {run.id} ({run.optimizer}, seed {run.seed}), "
             f"{run.lm_calls} LM calls ({run.cached_calls} answered from cache), {run.seconds / 60:.1f} min of scoring; "
             f"{run.status}: {run.stop_reason}.",
             "", "| prompt | " + " | ".join(REPORTED) + " | s/call | out tokens/call | failed |",
             "|---|" + "---|" * (len(REPORTED) + 3)]
    for label, row in table.items():
        lines.append(f"| {label} | " + " | ".join(f"{row[m]:.3f}" for m in REPORTED)
                     + f" | {seconds_cell(row['seconds_per_call'])} | {row['output_tokens_per_call'] or 0:.0f} | {row['failed']} |")
    (RESULTS / f"optimize_extraction.{args.model}{tag}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
