"""Where the extraction comparison's numbers come from beyond its table: prompt tokens per call and
what the format failures were, for the optimized prompt and LightRAG's default, read from the
SQLite file ``bench/optimize_extraction.py`` wrote (its held-out scores and outputs).

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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="1.5b")
    args = p.parse_args()
    from llama_cpp import Llama

    from shared.families import get_family
    from shared.families.template import PromptTemplate
    from shared.localmodels import model_path
    from shared.settings import get_settings

    db = sqlite3.connect(RESULTS / f"optimize_extraction.{args.model}.sqlite")
    family = get_family("entity_extraction")
    vocab = Llama(model_path=str(model_path(get_settings().models_dir, args.model)), vocab_only=True, verbose=False)
    report = {}
    for name in ("DSPY_A", "baseline"):
        variant_id, template = db.execute("select id, template from prompt_variants where family='entity_extraction' "
                                          "and name=?", (name,)).fetchone()
        batch = db.execute("select max(batch_id) from evaluation_scores where variant_id=?", (variant_id,)).fetchone()[0]
        rows = db.execute("select s.output, s.metrics, e.input from evaluation_scores s join eval_examples e "
                          "on e.id = s.example_id where s.variant_id=? and s.batch_id=?", (variant_id, batch)).fetchall()
        prompt = PromptTemplate.from_json(template)
        tokens = [len(vocab.tokenize("".join(m["content"] for m in prompt.render(**family.inputs(text))).encode()))
                  for _, _, text in rows]
        failures = collections.Counter(failure(out or "") for out, metrics, _ in rows
                                       if json.loads(metrics or "{}").get("format_compliance", 1) < 1)
        report[name] = {"held_out": len(rows), "prompt_tokens_per_call": sum(tokens) / len(tokens),
                        "format_failures": dict(failures)}
    out = RESULTS / f"optimize_extraction.{args.model}.analysis.json"
    out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
