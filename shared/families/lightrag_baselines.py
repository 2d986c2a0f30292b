"""LightRAG's own prompts as promptloop templates, filled exactly as LightRAG fills them.

The fixed parts (delimiters, entity-type guidance, examples, language, record limits) are filled the
way ``lightrag.operate`` does; only each family's inputs stay open as fields. Each function takes a
``prompts`` mapping shaped like ``lightrag.prompt.PROMPTS`` (default: LightRAG's own), so an
optimized set of PROMPTS values renders exactly as a stock LightRAG would render it after
``PROMPTS.update(...)`` made before the ``LightRAG`` is built (it reads the extraction guidance and
examples when it is constructed).
"""

from __future__ import annotations

from typing import Mapping

from lightrag.constants import (DEFAULT_MAX_EXTRACTION_ENTITIES, DEFAULT_MAX_EXTRACTION_RECORDS,
                                DEFAULT_SUMMARY_LANGUAGE, DEFAULT_SUMMARY_LENGTH_RECOMMENDED)
from lightrag.prompt import PROMPTS

from .template import PromptTemplate, fill

LANGUAGE = DEFAULT_SUMMARY_LANGUAGE

#: The PROMPTS keys each LightRAG-backed baseline is built from (what ``variants export --lightrag`` writes).
EXTRACTION_KEYS = ("entity_extraction_system_prompt", "entity_extraction_user_prompt", "entity_extraction_examples")
SUMMARIZATION_KEYS = ("summarize_entity_descriptions",)
KEYWORDS_KEYS = ("keywords_extraction", "keywords_extraction_examples")
RAG_RESPONSE_KEYS = ("rag_response",)


def extraction_values(prompts: Mapping = PROMPTS) -> dict:
    """The values ``lightrag.operate`` fills into the extraction prompts besides the input text."""
    return dict(
        tuple_delimiter=prompts["DEFAULT_TUPLE_DELIMITER"],
        completion_delimiter=prompts["DEFAULT_COMPLETION_DELIMITER"],
        entity_types_guidance=prompts["default_entity_types_guidance"].rstrip(),
        language=LANGUAGE,
    )


def extraction(prompts: Mapping = PROMPTS) -> PromptTemplate:
    """``entity_extraction_system_prompt`` + ``entity_extraction_user_prompt`` (text mode); field ``input_text``."""
    base = extraction_values(prompts)
    # As LightRAG's default prompt profile does: each example right-stripped, joined by newlines.
    examples = "\n".join(e.rstrip() for e in prompts["entity_extraction_examples"]).format(**base)
    limits = dict(max_total_records=DEFAULT_MAX_EXTRACTION_RECORDS, max_entity_records=DEFAULT_MAX_EXTRACTION_ENTITIES)
    system = prompts["entity_extraction_system_prompt"].format(**base, examples=examples, **limits)
    user = fill(prompts["entity_extraction_user_prompt"], completion_delimiter=base["completion_delimiter"],
                language=LANGUAGE, heading_context_block="", **limits)
    # LightRAG strips extraction prompts before sending them (use_llm_func_with_cache).
    return PromptTemplate(system=system.strip().replace("{", "{{").replace("}", "}}"), user=user.strip(),
                          lightrag={k: _copy(prompts[k]) for k in EXTRACTION_KEYS})


def summarization(prompts: Mapping = PROMPTS) -> PromptTemplate:
    """``summarize_entity_descriptions``; fields ``description_type``, ``description_name``, ``description_list``."""
    user = fill(prompts["summarize_entity_descriptions"], language=LANGUAGE,
                summary_length=DEFAULT_SUMMARY_LENGTH_RECOMMENDED)
    return PromptTemplate(system="", user=user, lightrag={k: _copy(prompts[k]) for k in SUMMARIZATION_KEYS})


def keywords(prompts: Mapping = PROMPTS) -> PromptTemplate:
    """``keywords_extraction``; field ``query``. LightRAG asks for a JSON object back."""
    user = fill(prompts["keywords_extraction"], examples="\n".join(prompts["keywords_extraction_examples"]),
                language=LANGUAGE)
    return PromptTemplate(system="", user=user, lightrag={k: _copy(prompts[k]) for k in KEYWORDS_KEYS})


def rag_response(prompts: Mapping = PROMPTS) -> PromptTemplate:
    """``rag_response`` as the system message (field ``context_data``), the question as the user message."""
    system = fill(prompts["rag_response"], response_type="Multiple Paragraphs", user_prompt="n/a")
    return PromptTemplate(system=system, user="{query}", lightrag={k: _copy(prompts[k]) for k in RAG_RESPONSE_KEYS})


def _copy(value):
    return list(value) if isinstance(value, (list, tuple)) else value
