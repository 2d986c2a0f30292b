"""Instruction pruning: candidates are the parent's instruction with some of its rules left out.

LightRAG's extraction instruction is ~1,400 tokens of rules written for large models. A small model
pays for each of them on every call (prompt evaluation) and follows few; pruning searches for a subset
worth keeping. A unit is either one bullet under a bare rule heading (``1. **Entity Extraction:**``),
with the lines nested under it, or a whole numbered rule that has text of its own (``3. Comprehensiveness:
The summary must...``) with its nested lines. Never a unit: a unit holding a placeholder LightRAG fills
(``{tuple_delimiter}``, ``{language}``...), anything inside a ``` block, a nested bullet on its own (the
items of a list go with the line that introduces them). A bare heading left without bullets goes too,
and the numbers of the rules left are closed up (1, 2, 3, not 1, 3, 4).

Trial ``i`` drops a seeded random share (``drop_shares``) of the units, a subset no earlier trial
dropped, and keeps the parent's demonstrations, so pruning a demos-optimized variant (``--parent``)
searches its instruction alone. No LM proposes anything: a resumed run proposes the same candidates,
and every LM call is a scoring call.
"""

from __future__ import annotations

import random
import re

from .base import Proposal, RunContext
from .demos import demo_fields
from .promptset import components, rebuild

NAME = "prune"
DEFAULTS = {"candidates": 12, "drop_shares": [0.2, 0.35, 0.5]}
_REDRAWS = 50

_BULLET = re.compile(r"^(\s*)- ")
_NUMBERED = re.compile(r"^\d+\.\s")
_NUMBER = re.compile(r"^(\s*)(\d+)\.(?=\s)")
#: A rule heading with nothing after its title: ``2. Content & Grounding:``, ``1. **Entity Extraction:**``.
_BARE = re.compile(r"^\d+\.\s+(\*\*)?[^*:.]{1,60}(:\*\*|\*\*:|:)?\s*$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _nested_end(lines: list[str], start: int) -> int:
    """The line after ``start`` and the non-blank lines indented under it."""
    end = start + 1
    while (end < len(lines) and lines[end].strip() and _indent(lines[end]) > _indent(lines[start])
           and not lines[end].strip().startswith("```")):
        end += 1
    return end


def _fenced(lines: list[str]) -> set[int]:
    inside, fenced = False, set()
    for i, line in enumerate(lines):
        if line.strip().startswith("```"):
            inside = not inside
            fenced.add(i)
        elif inside:
            fenced.add(i)
    return fenced


def _holds_placeholder(lines: list[str]) -> bool:
    return "{" in "\n".join(lines).replace("{{", "").replace("}}", "")


def units(instruction: str) -> list[tuple[int, int]]:
    """(first line, end line) of each droppable unit, in order; units never overlap."""
    lines = instruction.split("\n")
    fenced = _fenced(lines)
    found, heading_bare = [], False
    i = 0
    while i < len(lines):
        line = lines[i]
        if i in fenced or not line.strip():
            i += 1
            continue
        if _NUMBERED.match(line):
            heading_bare = bool(_BARE.match(line))
            end = _nested_end(lines, i)
            if not heading_bare and not _holds_placeholder(lines[i:end]) and not fenced & set(range(i, end)):
                found.append((i, end))
            i = end if not heading_bare else i + 1
            continue
        if line.startswith("---"):
            heading_bare = False
        elif _BULLET.match(line) and heading_bare:
            end = _nested_end(lines, i)
            if not _holds_placeholder(lines[i:end]):
                found.append((i, end))
            i = end
            continue
        i += 1
    return found


def drop(instruction: str, chosen: list[tuple[int, int]]) -> str:
    """The instruction without the ``chosen`` units, and without bare headings they left empty."""
    lines = instruction.split("\n")
    gone = {n for start, end in chosen for n in range(start, end)}
    for i, line in enumerate(lines):
        if not _BARE.match(line):
            continue
        end = i + 1
        while end < len(lines) and lines[end].strip() and not _NUMBERED.match(lines[end]) \
                and not lines[end].startswith("---"):
            end += 1
        if end > i + 1 and all(j in gone for j in range(i + 1, end)):
            gone.add(i)
            if end < len(lines) and not lines[end].strip() and (i == 0 or not lines[i - 1].strip()):
                gone.add(end)  # the blank line after the rule, so no double blank is left
    _renumber(lines, gone)
    return "\n".join(line for n, line in enumerate(lines) if n not in gone)


def _renumber(lines: list[str], gone: set[int]) -> None:
    """Close the gaps dropped rules leave in their list's numbering (``1. 3. 4.`` becomes ``1. 2. 3.``).

    Lists are read on the parent's lines, one per indent: a list ends at a section line (``---Role---``,
    ``# ...``), at a shallower line, or where the numbers start again (``... 3.`` then ``1.``); bullets
    and prose between its items do not end it. A ``` block (a rule's example) is left as it is."""
    fenced = _fenced(lines)
    lists: dict[int, list[int]] = {}  # indent -> [last number read, items dropped so far]
    for i, line in enumerate(lines):
        if i in fenced or not line.strip():
            continue
        depth = _indent(line)
        lists = {d: state for d, state in lists.items() if d <= depth}
        item = _NUMBER.match(line)
        if not item:
            if line.lstrip().startswith(("---", "#")):
                lists.pop(depth, None)
            continue
        number = int(item.group(2))
        state = lists.get(depth)
        if state is None or number <= state[0]:
            state = lists[depth] = [number, 0]
        state[0] = number
        if i in gone:
            state[1] += 1
        elif state[1]:
            lines[i] = f"{item.group(1)}{number - state[1]}.{line[item.end():]}"


def _subsets(seed: int, n_units: int, shares: list[float], trials: int) -> list[tuple[float, tuple[int, ...]]]:
    """The (share, unit indexes) of trials 1..trials, each a subset no earlier trial drew."""
    drawn, out = set(), []
    for trial in range(1, trials + 1):
        rng = random.Random(f"{seed}:{trial}")
        for _ in range(_REDRAWS):
            share = rng.choice(shares)
            pick = tuple(sorted(rng.sample(range(n_units), max(1, min(n_units, round(share * n_units))))))
            if pick not in drawn:
                drawn.add(pick)
                out.append((share, pick))
                break
        else:
            return out  # no new subset left to draw: the search is over
    return out


def propose(ctx: RunContext, history: list[dict]) -> Proposal | None:
    """Trial ``len(history)``: the parent's instruction less a seeded subset of its droppable rules."""
    opts = {**DEFAULTS, **ctx.options}
    trial = len(history)
    if trial > opts["candidates"]:
        return None
    parts = components(ctx.family, ctx.parent)
    instruction = parts["instruction"]
    droppable = units(instruction)
    if not droppable:
        raise ValueError(f"the {ctx.family} instruction has no rules without placeholders to prune")
    drawn = _subsets(ctx.seed, len(droppable), opts["drop_shares"], trial)
    if len(drawn) < trial:
        return None
    share, pick = drawn[trial - 1]
    chosen = [droppable[k] for k in pick]
    pruned = drop(instruction, chosen)
    demos = [d for d in (demo_fields(text) for text in parts["demos"] or []) if d]
    return Proposal(template=rebuild(ctx.family, ctx.parent, instruction=pruned), demos=demos,
                    config={"kind": "prune", "share": share, "dropped_lines": [list(c) for c in chosen],
                            "instruction_chars": [len(instruction), len(pruned)]})
