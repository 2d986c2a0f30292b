"""What an optimizer may change in a variant, and the checks a changed variant must pass.

A variant is a ``PromptTemplate``. For a family whose baseline is LightRAG's, the template carries the
LightRAG ``PROMPTS`` values it was rendered from; optimizers change two components of those values —
the instruction text and the demonstrations — and the template is rendered again exactly as the
baseline is (``lightrag_baselines``), so what is scored is what a stock LightRAG would send after
``PROMPTS.update(export_lightrag(template))``. promptloop's own families change the template text.
"""

from __future__ import annotations

import re
import string
from typing import Callable

from lightrag.prompt import PROMPTS

from ..families import PromptFamily
from ..families import lightrag_baselines as lb
from ..families.template import PromptTemplate

#: family -> (renderer from a PROMPTS-like mapping, instruction key, demonstrations key or None)
LIGHTRAG_PARTS: dict[str, tuple[Callable, str, str | None]] = {
    PromptFamily.ENTITY_EXTRACTION.value: (lb.extraction, "entity_extraction_system_prompt", "entity_extraction_examples"),
    PromptFamily.RELATIONSHIP_EXTRACTION.value: (lb.extraction, "entity_extraction_system_prompt",
                                                 "entity_extraction_examples"),
    PromptFamily.SUMMARIZATION.value: (lb.summarization, "summarize_entity_descriptions", None),
    PromptFamily.QUERY_PROCESSING.value: (lb.keywords, "keywords_extraction", "keywords_extraction_examples"),
    PromptFamily.ANSWER_GENERATION.value: (lb.rag_response, "rag_response", None),
}


class InvalidCandidate(ValueError):
    """A candidate prompt that LightRAG could not use as it is; the message says why."""


def components(family: str, template: PromptTemplate) -> dict:
    """``{"instruction": str, "demos": list[str] | None}`` of a variant."""
    if family in LIGHTRAG_PARTS and template.lightrag:
        _, instruction_key, demos_key = LIGHTRAG_PARTS[family]
        return {"instruction": template.lightrag[instruction_key],
                "demos": list(template.lightrag[demos_key]) if demos_key else None}
    return {"instruction": template.system or template.user, "demos": None}


def rebuild(family: str, parent: PromptTemplate, instruction: str | None = None,
            demos: list[str] | None = None) -> PromptTemplate:
    """The parent with a new instruction and/or demonstrations, rendered as LightRAG renders it.

    Raises ``InvalidCandidate`` when the result does not render with LightRAG's own values.
    """
    if family in LIGHTRAG_PARTS and parent.lightrag:
        render, instruction_key, demos_key = LIGHTRAG_PARTS[family]
        values = dict(parent.lightrag)
        if instruction is not None:
            values[instruction_key] = instruction
        if demos is not None:
            if demos_key is None:
                raise InvalidCandidate(f"{family} has no demonstrations slot in LightRAG's prompt")
            values[demos_key] = list(demos)
        try:
            return render({**PROMPTS, **values})
        except (KeyError, IndexError, ValueError) as exc:
            raise InvalidCandidate(f"does not render with LightRAG's values: {type(exc).__name__}: {exc}") from None
    if demos is not None:
        raise InvalidCandidate(f"{family} has no demonstrations slot")
    if instruction is None:
        return parent
    if parent.system:
        return PromptTemplate(system=instruction, user=parent.user)
    return PromptTemplate(system="", user=instruction)


def export_lightrag(template: PromptTemplate) -> dict:
    """The ``PROMPTS`` keys and values that make a stock LightRAG send this variant."""
    if not template.lightrag:
        raise ValueError("this variant is not one of LightRAG's prompts (its family is promptloop's own)")
    return {k: (list(v) if isinstance(v, list) else v) for k, v in template.lightrag.items()}


def _placeholders(text: str) -> set[str]:
    """The ``{name}`` fields of a str.format text; ``InvalidCandidate`` when a brace is not doubled."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise InvalidCandidate(f"literal braces must be doubled ({exc})") from None


def check_invariants(family: str, parent: PromptTemplate, candidate: PromptTemplate) -> list[str]:
    """Why LightRAG could not use ``candidate`` in place of ``parent``; an empty list when it can."""
    reasons = []
    if parent.lightrag:
        if not candidate.lightrag or set(candidate.lightrag) != set(parent.lightrag):
            return ["the candidate must define the same LightRAG PROMPTS keys as its parent"]
        for key, value in parent.lightrag.items():
            new = candidate.lightrag[key]
            try:
                want = _placeholders("\n".join(value) if isinstance(value, list) else value)
                have = _placeholders("\n".join(new) if isinstance(new, list) else new)
            except InvalidCandidate as exc:
                reasons.append(f"{key}: {exc}")
                continue
            if want - have:
                reasons.append(f"{key}: placeholders dropped: {', '.join(sorted(want - have))}")
            if have - want:
                reasons.append(f"{key}: unknown placeholders: {', '.join(sorted(have - want))}")
        if not reasons:
            try:
                rendered = rebuild(family, parent, *_parts(family, candidate))
            except InvalidCandidate as exc:
                reasons.append(str(exc))
            else:
                if (rendered.system, rendered.user) != (candidate.system, candidate.user):
                    reasons.append("the stored text is not what LightRAG would render from its PROMPTS values")
    try:
        if candidate.fields() != parent.fields():
            reasons.append(f"template fields {sorted(candidate.fields())} differ from the parent's "
                           f"{sorted(parent.fields())}")
    except ValueError as exc:
        reasons.append(f"literal braces must be doubled ({exc})")
    return reasons


def _parts(family: str, template: PromptTemplate) -> tuple[str, list[str] | None]:
    parts = components(family, template)
    return parts["instruction"], parts["demos"]


#: Where an optimizer's task guidance goes in a prompt: before the first of these sections, else at the end.
#: A section is its header on a line of its own: LightRAG's extraction instruction also names
#: "`---Entity Types---` section below" inside a sentence, which is not a place to put a paragraph.
GUIDANCE = "---Task Guidance---"
_ANCHORS = ("---Entity Types---", "---Input---", "---Context---", "---Output---")


#: ``header``: before a section's header line (new runs); ``mention``: before its first mention (runs
#: stored before 2026-12-01, whose options have no ``guidance_at``).
PLACEMENTS = ("header", "mention")


def guidance_placement(options: dict) -> str:
    """Where a run's candidates put their guidance: its stored ``guidance_at``, else the old place."""
    return options.get("guidance_at", "mention")


def _header(anchor: str, text: str) -> int | None:
    """Where the line that is exactly ``anchor`` starts in ``text`` (None if no line is)."""
    match = re.search(rf"(?m)^{re.escape(anchor)}[ \t]*$", text)
    return match.start() if match else None


def guidance_of(family: str, template: PromptTemplate) -> str:
    """The task guidance a previous optimization added to this variant ("" if none)."""
    instruction = components(family, template)["instruction"]
    if GUIDANCE not in instruction:
        return ""
    block = instruction.split(GUIDANCE + "\n", 1)[1].split("\n\n", 1)[0].strip()
    return block.replace("{{", "{").replace("}}", "}")


def with_guidance(family: str, parent: PromptTemplate, text: str, at: str = "header") -> PromptTemplate:
    """The parent with ``text`` as its task-guidance section (replacing any earlier one).

    This is how an optimizer's instruction (a DSPy signature's instructions, a GEPA or MIPROv2
    proposal) enters LightRAG's prompt: as one section of it, so every placeholder and format rule
    LightRAG relies on stays where it was. ``at="mention"`` is where runs stored before 2026-12-01
    put it — before the first *mention* of a section, which can be inside a sentence — so that such a
    run resumes with the prompts it started with (``guidance_placement``).
    """
    instruction = components(family, parent)["instruction"]
    old = guidance_of(family, parent)
    if old:  # the section sits before an anchor ("...\n\n") or ends the text ("...\n")
        escaped_old = old.replace("{", "{{").replace("}", "}}")
        section = f"{GUIDANCE}\n{escaped_old}\n"
        start = instruction.index(section)
        end = start + len(section) + (1 if instruction[start + len(section):start + len(section) + 1] == "\n" else 0)
        instruction = instruction[:start] + instruction[end:]
    # One paragraph: the section ends at the first blank line (``guidance_of`` reads it back that way).
    body = " ".join(text.split())
    block = f"{GUIDANCE}\n{body.replace('{', '{{').replace('}', '}}')}\n\n"
    if at not in PLACEMENTS:
        raise ValueError(f"task guidance goes at one of {', '.join(PLACEMENTS)}, not {at!r}")
    for anchor in _ANCHORS:
        where = _header(anchor, instruction) if at == "header" else (
            instruction.index(anchor) if anchor in instruction else None)
        if where is not None:
            return rebuild(family, parent, instruction=instruction[:where] + block + instruction[where:])
    return rebuild(family, parent, instruction=instruction.rstrip() + "\n\n" + block.rstrip() + "\n")
