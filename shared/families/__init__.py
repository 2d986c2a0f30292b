"""The eight prompt families, each defined once: DSPy signature, inputs, metrics, baseline prompt.

Where LightRAG has the prompt, the baseline *is* LightRAG's (``lightrag_baselines``); the other
families' baselines are written in ``baselines.py`` in the same style.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Callable

import dspy

from . import baselines, inputs, lightrag_baselines, scoring, signatures
from .template import PromptTemplate


class PromptFamily(str, Enum):
    ENTITY_EXTRACTION = "entity_extraction"
    RELATIONSHIP_EXTRACTION = "relationship_extraction"
    SUMMARIZATION = "summarization"
    QUERY_PROCESSING = "query_processing"
    DOCUMENT_ANALYSIS = "document_analysis"
    ANSWER_GENERATION = "answer_generation"
    CONTEXT_COMPRESSION = "context_compression"
    QUESTION_REFORMULATION = "question_reformulation"


@dataclass(frozen=True)
class Family:
    name: PromptFamily
    signature: type[dspy.Signature]
    #: The incumbent prompt, registered as variant ``baseline`` for every model.
    baseline: Callable[[], PromptTemplate]
    #: A stored example's ``input`` -> the template's fields.
    inputs: Callable[[str], dict]
    #: (output, fields, reference or None) -> metrics, including ``overall``.
    score: Callable[[str, dict, dict | None], dict]
    #: Where the baseline comes from, for humans.
    baseline_source: str

    def module(self) -> dspy.Module:
        """The DSPy program optimizers start from."""
        return dspy.Predict(self.signature)


FAMILIES: dict[PromptFamily, Family] = {f.name: f for f in [
    Family(PromptFamily.ENTITY_EXTRACTION, signatures.EntityExtraction, lightrag_baselines.extraction,
           inputs.extraction, scoring.entity_extraction, "lightrag PROMPTS entity_extraction_*_prompt"),
    Family(PromptFamily.RELATIONSHIP_EXTRACTION, signatures.RelationshipExtraction, lightrag_baselines.extraction,
           inputs.extraction, scoring.relationship_extraction, "lightrag PROMPTS entity_extraction_*_prompt"),
    Family(PromptFamily.SUMMARIZATION, signatures.Summarization, lightrag_baselines.summarization,
           inputs.summarization, scoring.summarization, "lightrag PROMPTS summarize_entity_descriptions"),
    Family(PromptFamily.QUERY_PROCESSING, signatures.QueryProcessing, lightrag_baselines.keywords,
           inputs.query, scoring.query_processing, "lightrag PROMPTS keywords_extraction"),
    Family(PromptFamily.DOCUMENT_ANALYSIS, signatures.DocumentAnalysis, baselines.document_analysis,
           inputs.document, scoring.document_analysis, "promptloop"),
    Family(PromptFamily.ANSWER_GENERATION, signatures.AnswerGeneration, lightrag_baselines.rag_response,
           inputs.question_and_context, scoring.answer_generation, "lightrag PROMPTS rag_response"),
    Family(PromptFamily.CONTEXT_COMPRESSION, signatures.ContextCompression, baselines.context_compression,
           inputs.question_and_context, scoring.context_compression, "promptloop"),
    Family(PromptFamily.QUESTION_REFORMULATION, signatures.QuestionReformulation, baselines.question_reformulation,
           inputs.query, scoring.question_reformulation, "promptloop"),
]}


def get_family(name: str | PromptFamily) -> Family:
    """The family called ``name``; ``ValueError`` listing the known ones otherwise."""
    try:
        return FAMILIES[PromptFamily(name)]
    except ValueError:
        raise ValueError(f"unknown prompt family {name!r}; known: {', '.join(f.value for f in PromptFamily)}") from None


__all__ = ["PromptFamily", "Family", "FAMILIES", "get_family", "PromptTemplate"]
