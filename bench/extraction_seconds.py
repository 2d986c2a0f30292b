"""Seconds per extraction call, the optimized prompt against LightRAG's default, measured interleaved.

``bench/optimize_extraction.py`` times each variant while scoring it, hours apart and under whatever
else the machine was doing then, so its two s/call columns are not comparable. This one loads the
model once and alternates the two prompts on the same CoNLL04 dev sentences (A B, then B A, ...),
without the LM cache, so both see the same machine. Prints seconds, prompt and output tokens per call
and the ratios (optimized / default).

By default each call starts cold (``reset``: the whole prompt is evaluated). ``--warm`` gives each
prompt a model instance of its own that keeps the KV cache of its previous call, as a server does
that serves one prompt (llama.cpp's prefix reuse, Ollama's per-slot cache): the system prompt and
the examples are then evaluated once, and a call pays for the input text and the answer.

With several ``--variant`` the prompts take turns in a rotating order (A B C, B C A, ...), so each
is first as often as the others, and each gets its ratio against the default.

    .venv/bin/python bench/extraction_seconds.py --sentences 4 --threads 1 [--warm] [--variant DSPY_B ...]
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
RESULTS = ROOT / "bench" / "results"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="1.5b")
    p.add_argument("--sentences", type=int, default=4, help="dev sentences, each answered once per prompt")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--variant", action="append", help="an optimized variant's name in the bench's SQLite file "
                   "(repeatable; default DSPY_A)")
    p.add_argument("--warm", action="store_true", help="one model per prompt, each keeping its previous call's "
                   "KV cache (a warm server) instead of a cold prompt each call")
    args = p.parse_args()
    variants = list(dict.fromkeys(args.variant or ["DSPY_A"]))
    if "default" in variants or "baseline" in variants:
        sys.exit("--variant names an optimized variant; the default is always measured")

    from llama_cpp import Llama
    from sqlalchemy import create_engine, select

    from shared.families import get_family
    from shared.families.template import PromptTemplate
    from shared.localmodels import model_path
    from shared.models import EvalExample, PromptVariant
    from shared.settings import get_settings

    engine = create_engine(f"sqlite:///{RESULTS / f'optimize_extraction.{args.model}.sqlite'}")
    family = get_family("entity_extraction")
    with engine.connect() as conn:
        rows = dict(conn.execute(select(PromptVariant.name, PromptVariant.template).where(
            PromptVariant.family == "entity_extraction", PromptVariant.name.in_(["baseline", *variants]))).all())
        texts = conn.execute(select(EvalExample.input).where(EvalExample.family == "entity_extraction",
                                                             EvalExample.split == "dev")
                             .order_by(EvalExample.id.desc()).limit(args.sentences + 1)).scalars().all()
    texts, spare = texts[:args.sentences], texts[-1]  # the spare one (one more, when there is) warms the caches
    missing = [name for name in variants if name not in rows]
    if missing:
        sys.exit(f"no entity_extraction variant named {', '.join(missing)} in the bench's SQLite file: "
                 f"run bench/optimize_extraction.py first")
    prompts = [(name, PromptTemplate.from_json(rows[name])) for name in variants]
    prompts.append(("default", PromptTemplate.from_json(rows["baseline"])))

    def load():
        return Llama(model_path=str(model_path(get_settings().models_dir, args.model)), n_ctx=4096,
                     n_threads=args.threads, verbose=False)

    shared_llama = None if args.warm else load()
    llamas = {name: load() if args.warm else shared_llama for name, _ in prompts}
    if args.warm:  # one untimed call each fills the cache with its prompt's fixed part
        for name, template in prompts:
            llamas[name].create_chat_completion(messages=template.render(**family.inputs(spare)),
                                                temperature=0.0, max_tokens=1)
    measured: dict[str, list[tuple[float, int, int]]] = {name: [] for name, _ in prompts}
    for i, text in enumerate(texts):
        fields = family.inputs(text)
        turn = i % len(prompts)
        for name, template in prompts[turn:] + prompts[:turn]:
            llama = llamas[name]
            if not args.warm:
                llama.reset()  # no prefix reuse from the other prompt's call
            started = time.perf_counter()
            out = llama.create_chat_completion(messages=template.render(**fields), temperature=0.0,
                                               max_tokens=args.max_tokens)
            seconds = time.perf_counter() - started
            usage = out["usage"]
            measured[name].append((seconds, usage["prompt_tokens"], usage["completion_tokens"]))
            print(f"sentence {i}: {name:8s} {seconds:6.1f} s, {usage['prompt_tokens']} prompt + "
                  f"{usage['completion_tokens']} output tokens", flush=True)
    summary = {name: {"seconds_per_call": statistics.mean(s for s, _, _ in rows_),
                      "prompt_tokens": statistics.mean(p for _, p, _ in rows_),
                      "output_tokens": statistics.mean(o for _, _, o in rows_)} for name, rows_ in measured.items()}
    ratios = {name: {k: summary[name][k] / summary["default"][k] for k in summary["default"]}
              for name in variants}
    report = {"variants": variants, "warm": args.warm, "sentences": len(texts), "threads": args.threads,
              "max_tokens": args.max_tokens, "summary": summary, "ratio_optimized_over_default": ratios,
              "calls": measured}
    suffix = ".warm" if args.warm else ""
    (RESULTS / f"extraction_seconds.{args.model}.{'+'.join(variants)}{suffix}.json").write_text(
        json.dumps(report, indent=1))
    print(json.dumps({"summary": summary, "ratio_optimized_over_default": ratios}, indent=1))


if __name__ == "__main__":
    main()
