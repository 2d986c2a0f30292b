"""Labelled demonstrations rendered in a family's own output format, at no LM cost.

CoNLL04's gold entities and relations become LightRAG tuple rows, written with LightRAG's
placeholders (``{tuple_delimiter}``, ``{completion_delimiter}``) so the demonstration is filled like
the rest of ``entity_extraction_examples``.
"""

from __future__ import annotations

import re

#: CoNLL04's types in the names LightRAG's default entity-type guidance uses.
ENTITY_TYPES = {"Peop": "Person", "Org": "Organization", "Loc": "Location", "Other": "Other"}
#: CoNLL04's relation labels as LightRAG relationship keywords and a verb phrase for the description.
RELATIONS = {"Kill": ("killing", "killed"), "Work_For": ("employment", "works for"),
             "Live_In": ("residence", "lives in"), "Located_In": ("location", "is located in"),
             "OrgBased_In": ("headquarters", "is based in")}
#: How a ``relations`` description names an entity by the other end of a relation it is the tail of.
TAIL_PHRASES = {"Kill": "killed by {head}", "Work_For": "that {head} works for", "Live_In": "where {head} lives",
                "Located_In": "where {head} is", "OrgBased_In": "where {head} is based"}


def _escape(text: str) -> str:
    """Text is ``str.format``-ed by LightRAG along with the placeholders: its braces must be doubled."""
    return text.replace("{", "{{").replace("}", "}}")


#: How a demo describes its entities: ``type`` ("X is a person named in the text.", what runs made
#: before 2026-12-01 used: it teaches the model descriptions that say nothing, which no score but
#: ``description_grounding`` sees), ``grounded`` (the words around its mention in the text: what
#: the text says about it, at no LM cost) or ``relations`` (one short sentence from the entity's first
#: gold relation, "Will Rogers is a person who lives in Oologah , Okla.", the shape of LightRAG's own
#: descriptions; an entity in no relation gets ``type``'s sentence).
DESCRIPTION_STYLES = ("type", "grounded", "relations")


def mention_context(name: str, text: str, width: int = 3) -> str | None:
    """Up to ``width`` words either side of ``name``'s first mention in ``text`` (None if not found)."""
    words, target = text.split(), name.split()
    for i in range(len(words) - len(target) + 1):
        if words[i:i + len(target)] == target:
            window = words[max(0, i - width):i + len(target) + width]
            while window and not any(c.isalnum() for c in window[0]):
                window.pop(0)
            while window and not any(c.isalnum() for c in window[-1]):
                window.pop()
            return " ".join(window)
    return None


def _related(name: str, kind: str, relations: list) -> str | None:
    """``relations``' sentence: the entity's first gold relation, as its head if it is one."""
    ordered = [r for r in relations if r[0] == name] + [r for r in relations if r[1] == name]
    if not ordered:
        return None
    head, tail, label = ordered[0]
    noun = f"{'an' if kind[0] in 'AEIOU' else 'a'} {kind.lower()}" if kind != "Other" else "an entity"
    if head == name:
        verb = RELATIONS.get(label, (None, label.lower().replace("_", " ")))[1]
        sentence = f"{name} is {noun} {'who' if kind == 'Person' else 'that'} {verb} {tail}"
    else:
        sentence = f"{name} is {noun} {TAIL_PHRASES.get(label, 'related to {head}').format(head=head)}"
    return sentence.rstrip(".") + "."  # a name ending in "." ("Okla.") ends the sentence once


def _description(name: str, kind: str, text: str | None, style: str, relations: list = ()) -> str:
    if style not in DESCRIPTION_STYLES:
        raise ValueError(f"demo descriptions are one of {', '.join(DESCRIPTION_STYLES)}, not {style!r}")
    if style == "grounded":
        context = mention_context(name, text or "")
        if context and context != name:
            return context.rstrip(".") + "."
    if style == "relations" and (sentence := _related(name, kind, list(relations))):
        return sentence
    article = "an" if style != "type" and kind[0] in "AEIOU" else "a"  # "type" keeps its old wording
    return f"{name} is {article} {kind.lower()} named in the text." if kind != "Other" else f"{name} is named in the text."


def extraction_rows(reference: dict, text: str | None = None, descriptions: str = "type") -> list[str]:
    """Gold entities and relations as LightRAG rows (with placeholders), entities first; ``text`` is
    the sentence (``grounded`` descriptions quote it)."""
    td = "{tuple_delimiter}"
    rows = []
    for name, etype in reference["entities"]:
        kind = ENTITY_TYPES.get(etype, etype)
        desc = _description(name, kind, text, descriptions, reference.get("relations", []))
        rows.append(td.join(["entity", _escape(name), kind, _escape(desc)]))
    for head, tail, label in reference.get("relations", []):
        keyword, verb = RELATIONS.get(label, (label.lower().replace("_", " "), label.lower().replace("_", " ")))
        rows.append(td.join(["relation", _escape(head), _escape(tail), keyword, _escape(f"{head} {verb} {tail}.")]))
    return rows


def demo_record(text: str, reference: dict, descriptions: str = "type") -> dict:
    """A labelled demo as the family's DSPy fields (what a saved program and a proposer see)."""
    return {"input_text": text, "extraction": "\n".join(extraction_rows(reference, text, descriptions))}


def extraction_demo(text: str, reference: dict, descriptions: str = "type") -> str:
    """One worked example: the input text and the rows LightRAG should get back."""
    rows = "\n".join(extraction_rows(reference, text, descriptions))
    # A leading blank line: LightRAG joins examples with one newline after right-stripping each.
    return (f"\n<Input Text>\n```\n{_escape(text)}\n```\n\n<Output>\n{rows}\n{{completion_delimiter}}\n")


_DEMO = re.compile(r"<Input Text>\n```\n(.*?)\n```\n\n<Output>\n(.*?)\n\{completion_delimiter\}", re.S)


def demo_fields(demo: str) -> dict | None:
    """``{"input_text", "extraction"}`` of a worked example ``extraction_demo`` wrote (as demo search
    records them for the DSPy program); None for another kind of example (LightRAG's row skeleton)."""
    match = _DEMO.search(demo)
    if not match:
        return None
    return {"input_text": match.group(1).replace("{{", "{").replace("}}", "}"), "extraction": match.group(2)}
