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


def _escape(text: str) -> str:
    """Text is ``str.format``-ed by LightRAG along with the placeholders: its braces must be doubled."""
    return text.replace("{", "{{").replace("}", "}}")


def extraction_rows(reference: dict) -> list[str]:
    """Gold entities and relations as LightRAG rows (with placeholders), entities first."""
    td = "{tuple_delimiter}"
    rows = []
    for name, etype in reference["entities"]:
        kind = ENTITY_TYPES.get(etype, etype)
        desc = f"{name} is a {kind.lower()} named in the text." if kind != "Other" else f"{name} is named in the text."
        rows.append(td.join(["entity", _escape(name), kind, _escape(desc)]))
    for head, tail, label in reference.get("relations", []):
        keyword, verb = RELATIONS.get(label, (label.lower().replace("_", " "), label.lower().replace("_", " ")))
        rows.append(td.join(["relation", _escape(head), _escape(tail), keyword, _escape(f"{head} {verb} {tail}.")]))
    return rows


def extraction_demo(text: str, reference: dict) -> str:
    """One worked example: the input text and the rows LightRAG should get back."""
    rows = "\n".join(extraction_rows(reference))
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
