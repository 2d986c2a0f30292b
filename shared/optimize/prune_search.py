"""Instruction pruning: candidates are the parent's instruction with some of its rules left out.

LightRAG's extraction instruction is ~1,400 tokens of rules written for large models. A small model
pays for each of them on every call (prompt evaluation) and follows few; pruning searches for a subset
worth keeping. A unit is one bullet (``- ...``) with the lines indented under it; a unit holding a
placeholder LightRAG fills (``{tuple_delimiter}``, ``{language}``...) is never dropped, and a numbered
rule left without bullets goes with them. Trial ``i`` drops a seeded random share (``drop_shares``) of
the droppable units and keeps the parent's demonstrations, so pruning a demos-optimized variant
(``--parent``) searches its instruction alone. No LM proposes anything: a resumed run proposes the
same candidates, and every LM call is a scoring call.
"""

from __future__ import annotations

import random
import re

from .base import Proposal, RunContext
from .promptset import components, rebuild

NAME = "prune"
DEFAULTS = {"candidates": 12, "drop_shares": [0.2, 0.35, 0.5]}

_BULLET = re.compile(r"^(\s*)- ")
_RULE = re.compile(r"^\d+\. \*\*[^*]+\*\*\s*$")  # a numbered rule heading with nothing after it


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def units(instruction: str) -> list[tuple[int, int]]:
    """(first line, end line) of each droppable bullet, nested ones included, in order."""
    lines = instruction.split("\n")
    found = []
    for i, line in enumerate(lines):
        match = _BULLET.match(line)
        if not match:
            continue
        end = i + 1
        while end < len(lines) and lines[end].strip() and _indent(lines[end]) > len(match.group(1)):
            end += 1
        if "{" not in "\n".join(lines[i:end]).replace("{{", "").replace("}}", ""):
            found.append((i, end))
    return found


def drop(instruction: str, chosen: list[tuple[int, int]]) -> str:
    """The instruction without the ``chosen`` units, and without rule headings they left empty."""
    lines = instruction.split("\n")
    gone = {n for start, end in chosen for n in range(start, end)}
    for i, line in enumerate(lines):
        if _RULE.match(line) and i + 1 < len(lines) and _BULLET.match(lines[i + 1]):
            body = range(i + 1, next((j for j in range(i + 1, len(lines)) if not lines[j].strip()), len(lines)))
            if all(j in gone for j in body):
                gone.add(i)
                if i + len(body) + 1 < len(lines) and not lines[i + len(body) + 1].strip():
                    gone.add(i + len(body) + 1)  # and the blank line after the rule
    return "\n".join(line for n, line in enumerate(lines) if n not in gone)


def propose(ctx: RunContext, history: list[dict]) -> Proposal | None:
    """Trial ``len(history)``: the parent's instruction less a seeded share of its droppable rules."""
    opts = {**DEFAULTS, **ctx.options}
    trial = len(history)
    if trial > opts["candidates"]:
        return None
    instruction = components(ctx.family, ctx.parent)["instruction"]
    droppable = units(instruction)
    if not droppable:
        raise ValueError(f"the {ctx.family} instruction has no bullet rules without placeholders to prune")
    rng = random.Random(f"{ctx.seed}:{trial}")
    share = rng.choice(opts["drop_shares"])
    chosen = sorted(rng.sample(droppable, max(1, round(share * len(droppable)))))
    pruned = drop(instruction, chosen)
    return Proposal(template=rebuild(ctx.family, ctx.parent, instruction=pruned),
                    config={"kind": "prune", "share": share, "dropped_lines": [list(c) for c in chosen],
                            "instruction_chars": [len(instruction), len(pruned)]})
