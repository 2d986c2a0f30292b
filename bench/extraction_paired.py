"""Are two extraction prompts' held-out scores really different? A paired bootstrap over the sentences.

``bench/optimize_extraction.py`` scores every prompt on the same 50 held-out CoNLL04 dev sentences; its
table gives means. This reads each variant's latest held-out answers from the bench's SQLite file and,
for each metric, gives the mean per-sentence difference against a reference prompt, a 95% interval
from 10,000 seeded paired bootstrap resamples of the sentences, and on how many sentences the variant
scored higher or lower with an exact sign test over those. An interval that holds 0 means the 50
sentences cannot tell the two apart; one that only just leaves 0 is weak evidence, more so across many
comparisons.
No LM call is made.

    .venv/bin/python bench/extraction_paired.py --against DSPY_A --variants DSPY_B,DSPY_D,DSPY_E,baseline

The report keeps the variants already in it that are not compared this time (a variant of an older
bench database); `--as` names a variant differently in the report.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sqlite3
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
METRICS = ("format_compliance", "entity_f1", "relation_f1", "hallucination_rate")


def test_ids(db: sqlite3.Connection, n: int) -> list[int]:
    """The held-out sentences as ``bench/optimize_extraction.py`` picks them: the first ``n`` dev ids."""
    return [i for (i,) in db.execute("select id from eval_examples where dataset='conll04' and split='dev' and "
                                     "family='entity_extraction' order by id limit ?", (n,))]


def held_out_batch(db: sqlite3.Connection, variant_id: int, ids: list[int]) -> int | None:
    """The variant's latest batch over exactly the held-out sentences (a variant is also scored on
    search and validation sets; those batches are skipped), or None."""
    batches: dict[int, set[int]] = {}
    for batch, example in db.execute("select batch_id, example_id from evaluation_scores where variant_id=? "
                                     "and example_source='dataset'", (variant_id,)):
        batches.setdefault(batch, set()).add(example)
    return next((b for b in sorted(batches, reverse=True) if batches[b] == set(ids)), None)


def variant(db: sqlite3.Connection, name: str) -> tuple[int, str]:
    """The extraction variant ``name``'s id and template JSON; exits with one line if there is none."""
    row = db.execute("select id, template from prompt_variants where family='entity_extraction' and name=?",
                     (name,)).fetchone()
    if row is None:
        sys.exit(f"no variant {name!r} in the bench's SQLite file: run bench/optimize_extraction.py first")
    return row


def labelled(p: argparse.ArgumentParser, variants: str, labels: str) -> list[tuple[str, str]]:
    """(variant name, name in the report) pairs from ``--variants`` and ``--as``."""
    names = variants.split(",")
    shown = labels.split(",") if labels else names
    if len(shown) != len(names):
        p.error(f"--as has {len(shown)} entries for {len(names)} variants: give one name per variant")
    return list(zip(names, shown))


def held_out(db: sqlite3.Connection, name: str, ids: list[int]) -> dict[int, dict]:
    """example id -> per-sentence metrics of ``name``'s held-out answers."""
    variant_id, _ = variant(db, name)
    batch = held_out_batch(db, variant_id, ids)
    if batch is None:
        sys.exit(f"{name!r} has not been scored on the {len(ids)} held-out sentences")
    rows = db.execute("select example_id, metrics from evaluation_scores where variant_id=? and batch_id=?",
                      (variant_id, batch))
    return {example: json.loads(metrics or "{}") for example, metrics in rows}


def sign_test(higher: int, lower: int) -> float:
    """Two-sided exact sign test p-value of ``higher`` against ``lower`` (ties left out)."""
    n = higher + lower
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(higher, lower) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def compare(ours: dict[int, dict], theirs: dict[int, dict], metric: str, resamples: int, seed: int) -> dict:
    """Mean difference (ours - theirs) over the sentences, its bootstrap 95% interval, wins/losses and
    their sign test."""
    if set(ours) != set(theirs):
        raise SystemExit("the two prompts were scored on different sentences: nothing to pair")
    shared = sorted(ours)
    diffs = [ours[i].get(metric, 0.0) - theirs[i].get(metric, 0.0) for i in shared]
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(diffs, k=len(diffs))) / len(diffs) for _ in range(resamples))
    return {"sentences": len(shared), "mean_difference": sum(diffs) / len(diffs),
            "interval_95": [means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]],
            "higher": (higher := sum(d > 0 for d in diffs)), "lower": (lower := sum(d < 0 for d in diffs)),
            "sign_test_p": sign_test(higher, lower)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="1.5b")
    p.add_argument("--against", default="DSPY_A", help="the reference variant")
    p.add_argument("--variants", default="DSPY_B,DSPY_D,DSPY_E,baseline", help="comma-separated variant names")
    p.add_argument("--resamples", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test", type=int, default=50, help="held-out sentences (bench/optimize_extraction.py --test)")
    p.add_argument("--as", dest="labels", default="",
                   help="comma-separated names to report the variants under, e.g. 'run 11 (DSPY_B)' for a variant "
                        "of a rebuilt bench database (default: their own names)")
    args = p.parse_args()
    if args.resamples < 1 or args.test < 1:
        p.error("--resamples and --test must be at least 1")
    pairs = labelled(p, args.variants, args.labels)
    path = RESULTS / f"optimize_extraction.{args.model}.sqlite"
    if not path.exists():
        sys.exit(f"{path} does not exist: run bench/optimize_extraction.py first")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)  # a run may be writing to it
    ids = test_ids(db, args.test)
    reference = held_out(db, args.against, ids)
    out_json = RESULTS / f"optimize_extraction.{args.model}.paired.json"
    report = {"against": args.against, "resamples": args.resamples, "seed": args.seed, "variants": {}}
    if out_json.exists():  # keep the variants not compared this time (an older bench database's)
        kept = json.loads(out_json.read_text())
        if all(kept.get(k) == report[k] for k in ("against", "resamples", "seed")):
            report["variants"] = {name: metrics for name, metrics in kept["variants"].items()
                                  if all(r["sentences"] == len(ids) for r in metrics.values())}
    for name, label in pairs:
        scores = held_out(db, name, ids)
        report["variants"][label] = {m: compare(scores, reference, m, args.resamples, args.seed) for m in METRICS}
    lines = [f"# Held-out differences against {args.against} (paired bootstrap, {args.resamples} resamples)", "",
             "(for hallucination_rate, higher is worse)", "",
             "| variant | metric | mean difference | 95% interval | sentences higher / lower | sign test p |",
             "|---|---|---|---|---|---|"]
    for name, metrics in report["variants"].items():
        for m, r in metrics.items():
            lo, hi = r["interval_95"]
            lines.append(f"| {name} | {m} | {r['mean_difference']:+.3f} | [{lo:+.3f}, {hi:+.3f}] | "
                         f"{r['higher']} / {r['lower']} (of {r['sentences']}) | {r['sign_test_p']:.3f} |")
    out_json.write_text(json.dumps(report, indent=1))
    (RESULTS / f"optimize_extraction.{args.model}.paired.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
