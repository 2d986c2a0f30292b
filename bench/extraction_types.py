"""How much of the extraction error is the entity-type guidance: the same prompts, a deployment's own types.

LightRAG fills ``{entity_types_guidance}`` from the deployment (``addon_params["entity_types_guidance"]``,
an ``ENTITY_TYPE_PROMPT_FILE``, else ``PROMPTS["default_entity_types_guidance"]``: Person, Creature,
Organization, Location, Event, Concept, Method, Content, Data, Artifact, NaturalObject). No optimizer
changes it. ``bench/optimize_extraction.py`` scores every prompt with LightRAG's default guidance; this
renders the named variants again with another guidance text (default: CoNLL04's own types, what a
deployment extracting news people, organizations and places would set), and scores them on the same
held-out dev sentences, through the same SQLite file and LM cache. The prompts are otherwise unchanged:
this measures a deployment setting, not an optimization.

    .venv/bin/python bench/extraction_types.py --threads 2 [--variants baseline,DSPY_A] [--guidance FILE]

Results: ``bench/results/extraction_types.<model>.{json,md}``; resumable (cached answers cost nothing).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import optimize_extraction as ox  # noqa: E402  (a sibling bench script: its setup, sets and summaries)

#: CoNLL04's four entity types (Peop, Org, Loc, Other), written as LightRAG's guidance is.
CONLL04_GUIDANCE = """Classify each entity using one of the following types. If no type fits, use `Other`.

- Person: Human individuals, real or fictional
- Organization: Companies, institutions, government bodies, groups
- Location: Geographic places (cities, countries, buildings, regions)
- Other: Any other named entity"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="1.5b")
    p.add_argument("--db", type=Path, help="SQLite file (default: optimize_extraction's)")
    p.add_argument("--test", type=int, default=50, help="the first dev sentences (optimize_extraction's test set)")
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--variants", default="baseline,DSPY_A", help="comma-separated variant names")
    p.add_argument("--guidance", type=Path, help="a text file with the guidance (default: CoNLL04's types)")
    args = p.parse_args()
    ox.configure(args)
    from lightrag.prompt import PROMPTS
    from sqlalchemy import select

    from shared.db import get_engine
    from shared.evaluation import ExampleRef
    from shared.families.template import PromptTemplate
    from shared.migrate import upgrade
    from shared.models import PromptVariant
    from shared.optimize.promptset import rebuild
    from shared.optimize.scoring import score_variant
    from shared.optimize.variants import trial_variant
    from shared.settings import get_settings

    guidance = args.guidance.read_text().rstrip() if args.guidance else CONLL04_GUIDANCE
    digest = hashlib.sha256(guidance.encode()).hexdigest()[:8]
    settings = get_settings()
    engine = get_engine(settings)
    upgrade(engine)
    test = [ExampleRef("dataset", i, ox.FAMILY) for i in ox.dev_ids(engine)[:args.test]]
    table = {}
    for name in args.variants.split(","):
        with engine.connect() as conn:
            row = conn.execute(select(PromptVariant).where(PromptVariant.family == ox.FAMILY,
                                                           PromptVariant.model == args.model,
                                                           PromptVariant.name == name)).first()
        if row is None:
            sys.exit(f"no variant {name!r} in the bench's database; run bench/optimize_extraction.py first")
        default_guidance = PROMPTS["default_entity_types_guidance"]
        PROMPTS["default_entity_types_guidance"] = guidance  # as a deployment's PROMPTS.update would
        try:
            template = rebuild(ox.FAMILY, PromptTemplate.from_json(row.template))
        finally:
            PROMPTS["default_entity_types_guidance"] = default_guidance
        assert guidance in template.system, "the guidance did not reach the rendered prompt"
        variant_id = trial_variant(engine, 0, f"types{digest}-{name}", ox.FAMILY, args.model, template, row.id)
        for label, vid in ((f"{name}, LightRAG's types", row.id), (f"{name}, deployment's types", variant_id)):
            print(f"scoring {label} on {len(test)} held-out dev sentences...", flush=True)
            scores = score_variant(engine, settings, vid, test, batch_size=2)
            table[label] = ox.summarize(scores, ox.measured_seconds(engine, vid, test),
                                        ox.output_tokens(settings, args.model, scores.outputs))
            print(json.dumps(table[label]), flush=True)
    report = {"model": settings.models[args.model], "max_tokens": args.max_tokens, "test_sentences": len(test),
              "guidance": guidance, "comparison": table}
    (ox.RESULTS / f"extraction_types.{args.model}.json").write_text(json.dumps(report, indent=1))
    lines = [f"# Extraction with LightRAG's entity types vs a deployment's — {report['model']}", "",
             f"{len(test)} held-out CoNLL04 dev sentences; temperature 0, max_tokens {args.max_tokens}. "
             "Deployment's guidance:", "", "```", guidance, "```", "",
             "| prompt | " + " | ".join(ox.REPORTED) + " | out tokens/call | failed |",
             "|---|" + "---|" * (len(ox.REPORTED) + 2)]
    for label, r in table.items():
        lines.append(f"| {label} | " + " | ".join(f"{r[m]:.3f}" for m in ox.REPORTED)
                     + f" | {r['output_tokens_per_call'] or 0:.0f} | {r['failed']} |")
    (ox.RESULTS / f"extraction_types.{args.model}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
