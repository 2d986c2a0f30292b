"""Demonstration search: labelled demos in the family's output format, random search over subsets.

Gold CoNLL04 entities and relations become LightRAG tuple rows (``demos.extraction_demo``) and cost no
LM call; each trial appends a seeded random subset of them to LightRAG's examples and is scored on
the search set. Demos the kept parent already shows are not drawn again. Trial ``i`` depends only on
the seed, ``i`` and the parent, so a resumed run proposes the same candidates.
"""

from __future__ import annotations

import json
import random

from sqlalchemy import select

from ..models import EvalExample
from .base import Proposal, RunContext
from .demos import DESCRIPTION_STYLES, demo_fields, demo_record, extraction_demo
from .promptset import LIGHTRAG_PARTS, components, rebuild

NAME = "demos"
DEFAULTS = {"candidates": 12, "demo_counts": [2, 3, 4], "demo_dataset": "conll04", "demo_split": "train",
            "min_relations": 1, "max_words": 40, "parent_demos": "keep", "descriptions": "type"}
#: What ``prepare`` gives a new run: demos whose entity descriptions quote the text. ``DEFAULTS`` keeps
#: ``type`` for runs stored before the option existed, so they resume and replay as they were made.
NEW_RUN_DESCRIPTIONS = "grounded"
SUPPORTED = ("entity_extraction", "relationship_extraction")


def demo_pool(ctx: RunContext) -> list[tuple[int, str, dict]]:
    """(id, text, reference) of the labelled examples demos are drawn from, in a fixed order."""
    opts = {**DEFAULTS, **ctx.options}
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(EvalExample.id, EvalExample.input, EvalExample.reference)
                            .where(EvalExample.dataset == opts["demo_dataset"], EvalExample.split == opts["demo_split"],
                                   EvalExample.family == ctx.family).order_by(EvalExample.id)).all()
    pool = []
    for i, text, ref in rows:
        fields, reference = json.loads(text), json.loads(ref)
        words = len(fields["input_text"].split())
        if len(reference.get("relations", [])) >= opts["min_relations"] and words <= opts["max_words"]:
            pool.append((i, fields["input_text"], reference))
    return pool


def prepare(family: str, options: dict) -> dict:
    """A new run's options: its demos' description style written out (``grounded`` unless given)."""
    style = options.get("descriptions", NEW_RUN_DESCRIPTIONS)
    if style not in DESCRIPTION_STYLES:
        raise ValueError(f"demo descriptions are one of {', '.join(DESCRIPTION_STYLES)}, not {style!r}")
    return {**options, "descriptions": style}


def propose(ctx: RunContext, history: list[dict]) -> Proposal | None:
    """Trial ``len(history)``: a seeded subset of demos appended to the parent's examples; None once the
    candidates are used up."""
    if ctx.family not in SUPPORTED or ctx.family not in LIGHTRAG_PARTS:
        raise ValueError(f"the demos optimizer needs gold extraction labels; it supports {', '.join(SUPPORTED)}")
    opts = {**DEFAULTS, **ctx.options}
    if opts["parent_demos"] not in ("keep", "drop"):
        raise ValueError(f"parent_demos must be 'keep' or 'drop', not {opts['parent_demos']!r}")
    trial = len(history)
    if trial > opts["candidates"]:
        return None
    pool = demo_pool(ctx)
    if not pool:
        raise ValueError(f"no labelled {ctx.family} examples in dataset {opts['demo_dataset']!r} split "
                         f"{opts['demo_split']!r}: run `promptloop datasets import` first")
    base = (components(ctx.family, ctx.parent)["demos"] or []) if opts["parent_demos"] == "keep" else []
    shown = {fields["input_text"] for demo in base if (fields := demo_fields(demo))}
    pool = [entry for entry in pool if entry[1] not in shown]  # a sentence is never shown twice
    if not pool:
        raise ValueError(f"the parent already shows every labelled {ctx.family} example in dataset "
                         f"{opts['demo_dataset']!r} split {opts['demo_split']!r}: use parent_demos 'drop' or "
                         "another demo_split")
    rng = random.Random(f"{ctx.seed}:{trial}")
    k = min(rng.choice(opts["demo_counts"]), len(pool))
    picks = rng.sample(pool, k)
    style = opts["descriptions"]
    template = rebuild(ctx.family, ctx.parent,
                       demos=base + [extraction_demo(text, ref, style) for _, text, ref in picks])
    demos = [demo_record(text, ref, style) for _, text, ref in picks]
    return Proposal(template=template, config={"kind": "demos", "demo_ids": [i for i, _, _ in picks]}, demos=demos)
