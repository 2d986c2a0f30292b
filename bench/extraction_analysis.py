"""Where the extraction comparison's numbers come from beyond its table: prompt tokens per call,
what the format failures were, and what the entity and relation errors are (missed gold, and what
the extra ones are: ungrounded, a pronoun, a lowercase phrase, a boundary error on a gold name) and
how many words the rows' descriptions have, for the optimized prompt and LightRAG's default, read
from the SQLite file ``bench/optimize_extraction.py`` wrote (its held-out scores and outputs).

    .venv/bin/python bench/extraction_analysis.py    # -> bench/results/optimize_extraction.1.5b.analysis.json
"""

from __future__ import annotations

import argparse
import collections
import json
import sqlite3
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"


def failure(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    if "<|COMPLETE|>" not in output:
        repeated = len(lines) - len(set(lines)) > 3
        return "no completion delimiter, rows repeated" if repeated else "no completion delimiter"
    return "other format fault"


PRONOUNS = {"he", "she", "it", "they", "him", "her", "them", "his", "its", "their", "we", "i", "you", "who"}


def spurious_kind(name: str, text: str, gold: set[str]) -> str:
    """Why an extracted entity that is not a gold one is there (the first that applies)."""
    from shared.metrics import hallucination_rate, normalize_name

    norm = normalize_name(name)
    if hallucination_rate([name], text):
        return "not in the text"
    if norm in PRONOUNS:
        return "a pronoun"
    if any(f" {norm} " in f" {g} " or f" {g} " in f" {norm} " for g in gold):
        return "part of or more than a gold name"
    if name[:1].islower():
        return "a lowercase phrase"
    return "another capitalized name"


def _pair(head: str, tail: str) -> tuple[str, str]:
    """A relation as ``relation_prf`` compares it: the two normalized names, in either direction."""
    from shared.metrics import normalize_name

    return tuple(sorted((normalize_name(head), normalize_name(tail))))


def description_words(outputs) -> dict:
    """Mean words in the description field of entity and relation rows: what LightRAG stores in its
    graph about each (only ``description_grounding`` reads them, and not their length)."""
    from shared.metrics.lightrag_format import TUPLE_DELIMITER

    words = {"entity": [], "relation": []}
    for output in outputs:
        for line in (output or "").splitlines():
            fields = [f.strip() for f in line.split(TUPLE_DELIMITER)]
            if fields[0] == "entity" and len(fields) == 4:
                words["entity"].append(len(fields[3].split()))
            elif fields[0] == "relation" and len(fields) == 5:
                words["relation"].append(len(fields[4].split()))
    return {kind: round(sum(w) / len(w), 2) if w else None for kind, w in words.items()}


def grounding(rows) -> dict:
    """``description_grounding`` two ways: pooled over every entity LightRAG stores from (output, input
    text) rows, and the metric's own mean over sentences (what the tables, objectives and validation
    use: a sentence with no entity counts 1.0); with a few descriptions that say nothing the text says."""
    from shared.metrics import description_grounding, normalize_name
    from shared.metrics.lightrag_format import parse_extraction

    said = total = 0
    empty, per_sentence = [], []
    for output, text in rows:
        parsed = parse_extraction(output or "")
        described = [(n, t, parsed.descriptions.get(n, "")) for n, t in parsed.entities if normalize_name(n)]
        per_sentence.append(description_grounding(described, text))
        for row in described:
            total += 1
            if description_grounding([row], text):
                said += 1
            elif len(empty) < 6:
                empty.append(row[2])
    return {"entities": total, "pooled_share_saying_something_from_the_text": round(said / total, 3) if total else None,
            "metric_mean_over_sentences": round(sum(per_sentence) / len(per_sentence), 3) if per_sentence else None,
            "examples_saying_nothing": empty}


def errors(rows) -> dict:
    """Entity and relation errors over (output, reference, input text) rows: counts and a few examples."""
    from shared.metrics import normalize_name
    from shared.metrics.lightrag_format import parse_extraction

    counts, examples = collections.Counter(), collections.defaultdict(list)
    for output, reference, text in rows:
        parsed = parse_extraction(output or "")
        gold = {normalize_name(n) for n, _ in reference["entities"]}
        found = {normalize_name(n): n for n, _ in parsed.entities if normalize_name(n)}
        counts["gold entities"] += len(gold)
        counts["extracted entities"] += len(found)
        for norm, name in found.items():
            if norm not in gold:
                kind = spurious_kind(name, text, gold)
                counts[f"extra entity: {kind}"] += 1
                examples[kind].append(name)
        counts["missed gold entities"] += len(gold - set(found))
        gold_rel = {_pair(h, t) for h, t, _ in reference["relations"]}
        found_rel = {_pair(h, t) for h, t in parsed.relations}
        counts["gold relations"] += len(gold_rel)
        counts["extracted relations"] += len(found_rel)
        counts["missed gold relations"] += len(gold_rel - found_rel)
        for rel in found_rel - gold_rel:
            both = rel[0] in gold and rel[1] in gold
            counts["extra relation: " + ("both ends gold entities" if both else "an end not a gold entity")] += 1
    return {"counts": dict(sorted(counts.items())), "examples": {k: v[:8] for k, v in sorted(examples.items())}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="1.5b")
    p.add_argument("--variants", default="DSPY_A,baseline",
                   help="comma-separated variant names; each one's latest held-out answers are read")
    p.add_argument("--test", type=int, default=50, help="held-out sentences (bench/optimize_extraction.py --test)")
    p.add_argument("--as", dest="labels", default="",
                   help="comma-separated names to report the variants under (default: their own names)")
    args = p.parse_args()
    from extraction_paired import held_out_batch, labelled, test_ids, variant

    pairs = labelled(p, args.variants, args.labels)
    from llama_cpp import Llama

    from shared.families import get_family
    from shared.families.template import PromptTemplate
    from shared.localmodels import model_path
    from shared.settings import get_settings

    path = RESULTS / f"optimize_extraction.{args.model}.sqlite"
    if not path.exists():
        sys.exit(f"{path} does not exist: run bench/optimize_extraction.py first")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    family = get_family("entity_extraction")
    vocab = Llama(model_path=str(model_path(get_settings().models_dir, args.model)), vocab_only=True, verbose=False)
    ids = test_ids(db, args.test)
    report_path = RESULTS / f"optimize_extraction.{args.model}.analysis.json"
    # the variants not read this time (an older bench database's) are kept
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    for name, label in pairs:
        variant_id, template = variant(db, name)
        batch = held_out_batch(db, variant_id, ids)
        if batch is None:
            sys.exit(f"{name!r} has not been scored on the {args.test} held-out sentences")
        rows = db.execute("select s.output, s.metrics, e.input, e.reference from evaluation_scores s join eval_examples e "
                          "on e.id = s.example_id where s.variant_id=? and s.batch_id=?", (variant_id, batch)).fetchall()
        prompt = PromptTemplate.from_json(template)
        tokens = [len(vocab.tokenize("".join(m["content"] for m in prompt.render(**family.inputs(text))).encode()))
                  for _, _, text, _ in rows]
        failures = collections.Counter(failure(out or "") for out, metrics, _, _ in rows
                                       if json.loads(metrics or "{}").get("format_compliance", 1) < 1)
        report[label] = {"held_out": len(rows), "prompt_tokens_per_call": sum(tokens) / len(tokens),
                        "format_failures": dict(failures),
                        "description_words_per_row": description_words(out for out, _, _, _ in rows),
                        "description_grounding": grounding([(out, json.loads(text)["input_text"])
                                                            for out, _, text, _ in rows]),
                        "errors": errors([(out, json.loads(ref), json.loads(text)["input_text"])
                                          for out, _, text, ref in rows])}
    report_path.write_text(json.dumps(report, indent=1))
    print(json.dumps({label: report[label] for _, label in pairs}, indent=1))


if __name__ == "__main__":
    main()
