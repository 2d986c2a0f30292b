"""LightRAG's own prompts as promptloop templates, filled exactly as LightRAG fills them.

The fixed parts (delimiters, entity-type guidance, examples, language, record limits) are filled the
way ``lightrag.operate`` does; only each family's inputs stay open as fields.
"""

from __future__ import annotations

from lightrag.constants import (DEFAULT_MAX_EXTRACTION_ENTITIES, DEFAULT_MAX_EXTRACTION_RECORDS,
                                DEFAULT_SUMMARY_LANGUAGE, DEFAULT_SUMMARY_LENGTH_RECOMMENDED)
from lightrag.prompt import PROMPTS, resolve_entity_extraction_prompt_profile

from .template import PromptTemplate, fill

LANGUAGE = DEFAULT_SUMMARY_LANGUAGE


def extraction() -> PromptTemplate:
    """``entity_extraction_system_prompt`` + ``entity_extraction_user_prompt`` (text mode); field ``input_text``."""
    profile = resolve_entity_extraction_prompt_profile({}, False)
    base = dict(
        tuple_delimiter=PROMPTS["DEFAULT_TUPLE_DELIMITER"],
        completion_delimiter=PROMPTS["DEFAULT_COMPLETION_DELIMITER"],
        entity_types_guidance=profile["entity_types_guidance"],
        language=LANGUAGE,
    )
    examples = "\n".join(profile["entity_extraction_examples"]).format(**base)
    limits = dict(max_total_records=DEFAULT_MAX_EXTRACTION_RECORDS, max_entity_records=DEFAULT_MAX_EXTRACTION_ENTITIES)
    system = PROMPTS["entity_extraction_system_prompt"].format(**base, examples=examples, **limits)
    user = fill(PROMPTS["entity_extraction_user_prompt"], completion_delimiter=base["completion_delimiter"],
                language=LANGUAGE, heading_context_block="", **limits)
    # LightRAG strips extraction prompts before sending them (use_llm_func_with_cache).
    return PromptTemplate(system=system.strip().replace("{", "{{").replace("}", "}}"), user=user.strip())


def summarization() -> PromptTemplate:
    """``summarize_entity_descriptions``; fields ``description_type``, ``description_name``, ``description_list``."""
    user = fill(PROMPTS["summarize_entity_descriptions"], language=LANGUAGE,
                summary_length=DEFAULT_SUMMARY_LENGTH_RECOMMENDED)
    return PromptTemplate(system="", user=user)


def keywords() -> PromptTemplate:
    """``keywords_extraction``; field ``query``. LightRAG asks for a JSON object back."""
    user = fill(PROMPTS["keywords_extraction"], examples="\n".join(PROMPTS["keywords_extraction_examples"]),
                language=LANGUAGE)
    return PromptTemplate(system="", user=user)


def rag_response() -> PromptTemplate:
    """``rag_response`` as the system message (field ``context_data``), the question as the user message."""
    system = fill(PROMPTS["rag_response"], response_type="Multiple Paragraphs", user_prompt="n/a")
    return PromptTemplate(system=system, user="{query}")
