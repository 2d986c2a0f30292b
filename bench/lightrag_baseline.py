"""The baseline optimization must beat: LightRAG's default extraction prompt on a real small model.

    .venv/bin/promptloop models fetch 1.5b
    .venv/bin/python bench/lightrag_baseline.py [--sentences 30] [--model 1.5b] [--max-tokens 512]

Runs LightRAG's own entity-extraction prompt (promptloop's ``entity_extraction`` baseline, checked
byte for byte against what LightRAG sends) on the first N CoNLL04 dev sentences with a local GGUF
model at temperature 0, and scores each output with LightRAG's parser against the gold labels:
format compliance, entity F1 (names; and names+types), relationship F1 (undirected), hallucination
rate, seconds per call. Needs llama-cpp-python (``pip install 'promptloop[local]'``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.families import PromptFamily, get_family  # noqa: E402
from shared.families.scoring import CONLL_TO_LIGHTRAG  # noqa: E402
from shared.lm import LocalGGUF  # noqa: E402
from shared.localmodels import model_path, resolve  # noqa: E402
from shared.metrics import entity_prf, hallucination_rate, parse_extraction, relation_prf  # noqa: E402
from shared.settings import get_settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description="LightRAG extraction baseline on a local model")
    parser.add_argument("--sentences", type=int, default=30)
    parser.add_argument("--model", default="1.5b")
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--out", type=Path, help="also write per-sentence results as JSON here")
    args = parser.parse_args()
    settings = get_settings()
    path = model_path(settings.models_dir, args.model)
    if not path.exists():
        raise SystemExit(f"{path} missing: run `promptloop models fetch {args.model}` first")
    docs = json.loads((settings.datasets_dir / "conll04" / "conll04_dev.json").read_text())[:args.sentences]
    template = get_family(PromptFamily.ENTITY_EXTRACTION).baseline()
    lm = LocalGGUF(f"local/{resolve(args.model).name}", path, n_ctx=settings.local_n_ctx, max_tokens=args.max_tokens)

    rows = []
    for i, doc in enumerate(docs, 1):
        tokens = doc["tokens"]
        text = " ".join(tokens)
        gold_entities = [(" ".join(tokens[e["start"]:e["end"]]), CONLL_TO_LIGHTRAG[e["type"]]) for e in doc["entities"]]
        gold_relations = [(gold_entities[r["head"]][0], gold_entities[r["tail"]][0]) for r in doc["relations"]]
        started = time.perf_counter()
        output = lm.complete(template.render(input_text=text))
        seconds = time.perf_counter() - started
        parsed = parse_extraction(output)
        row = {"sentence": i, "seconds": seconds, "format_compliance": float(parsed.compliant),
               "record_validity": parsed.record_validity,
               "entity_f1": entity_prf(parsed.entities, gold_entities)["f1"],
               "entity_f1_typed": entity_prf(parsed.entities, gold_entities, typed=True)["f1"],
               "relation_f1": relation_prf(parsed.relations, gold_relations)["f1"],
               "hallucination_rate": hallucination_rate([n for n, _ in parsed.entities], text),
               "entities": len(parsed.entities), "gold_entities": len(gold_entities), "output": output}
        rows.append(row)
        print(f"[{i}/{len(docs)}] {seconds:5.1f}s compliant={parsed.compliant} entity_f1={row['entity_f1']:.2f} "
              f"relation_f1={row['relation_f1']:.2f} hallucination={row['hallucination_rate']:.2f}", flush=True)

    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    print(f"\nLightRAG default extraction prompt, {lm.spec}, temperature 0, max_tokens {args.max_tokens}, "
          f"{len(rows)} CoNLL04 dev sentences\n")
    print(f"{'metric':<28}{'mean':>8}{'stdev':>8}")
    for key in ("format_compliance", "record_validity", "entity_f1", "entity_f1_typed", "relation_f1",
                "hallucination_rate", "seconds"):
        values = [r[key] for r in rows]
        print(f"{key:<28}{statistics.fmean(values):>8.3f}{statistics.pstdev(values):>8.3f}")


if __name__ == "__main__":
    main()
