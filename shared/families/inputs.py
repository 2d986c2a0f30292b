"""From a stored example's ``input`` to a family's template fields.

Imported datasets store a JSON object holding the fields. Production examples hold the prompt the
model saw (the LightRAG adapter records it); the family's input is cut out of LightRAG's sections.
"""

from __future__ import annotations

import json
import re

_INPUT_TEXT = re.compile(r"---Input Text---\s*```\n(.*?)\n```", re.S)
_USER_QUERY = re.compile(r"User Query:\s*(.*?)\n\s*---Output---", re.S)
_CONTEXT = re.compile(r"---Context---\s*(.*)", re.S)
_DESCRIPTION = re.compile(r"---Input---\s*(.*?) Name: (.*?)\n\s*Description List:\s*```\n(.*?)\n```", re.S)


def as_fields(text: str) -> dict | None:
    """The fields of a JSON-object input, or None for plain text."""
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None
    return None


def extraction(text: str) -> dict:
    fields = as_fields(text)
    if fields and "input_text" in fields:
        return {"input_text": fields["input_text"]}
    match = _INPUT_TEXT.search(text)
    return {"input_text": match.group(1) if match else text}


def summarization(text: str) -> dict:
    fields = as_fields(text)
    if fields and "description_list" in fields:
        return {"description_type": fields.get("description_type", "Document"),
                "description_name": fields.get("description_name", ""),
                "description_list": fields["description_list"]}
    match = _DESCRIPTION.search(text)
    if match:
        return {"description_type": match.group(1).strip(), "description_name": match.group(2).strip(),
                "description_list": match.group(3)}
    return {"description_type": "Document", "description_name": "", "description_list": text}


def query(text: str) -> dict:
    fields = as_fields(text)
    if fields and "query" in fields:
        return {"query": fields["query"]}
    match = _USER_QUERY.search(text)
    return {"query": match.group(1).strip() if match else text}


def question_and_context(text: str) -> dict:
    """``query`` and ``context_data``; a production answer prompt is rag_response + blank line + question."""
    fields = as_fields(text)
    if fields and "query" in fields:
        return {"query": fields["query"], "context_data": fields.get("context_data", "")}
    match = _CONTEXT.search(text)
    if match:
        context, _, question = match.group(1).rpartition("\n\n")
        return {"query": question.strip(), "context_data": context.strip()}
    return {"query": text, "context_data": ""}


def document(text: str) -> dict:
    fields = as_fields(text)
    return {"document": fields["document"] if fields and "document" in fields else text}
