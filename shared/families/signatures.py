"""One DSPy signature per family: the task an optimizer improves, independent of any prompt text."""

from __future__ import annotations

import dspy


class EntityExtraction(dspy.Signature):
    """Extract the named entities in the text, one per line as `entity<|#|>name<|#|>type<|#|>description`,
    then the line `<|COMPLETE|>`."""

    input_text: str = dspy.InputField()
    extraction: str = dspy.OutputField(desc="entity lines in LightRAG's tuple format, then <|COMPLETE|>")


class RelationshipExtraction(dspy.Signature):
    """Extract the entities and the relationships between them from the text, in LightRAG's tuple format:
    `entity<|#|>name<|#|>type<|#|>description` and
    `relation<|#|>source<|#|>target<|#|>keywords<|#|>description`, then `<|COMPLETE|>`."""

    input_text: str = dspy.InputField()
    extraction: str = dspy.OutputField(desc="entity and relation lines, then <|COMPLETE|>")


class Summarization(dspy.Signature):
    """Write a one- or two-sentence summary (a TLDR) of the text."""

    description_name: str = dspy.InputField(desc="what the text is about (a title or entity name)")
    description_list: str = dspy.InputField(desc="the text to summarize")
    summary: str = dspy.OutputField()


class QueryProcessing(dspy.Signature):
    """Extract high-level (themes) and low-level (specific entities, details) keywords from a user query,
    as a JSON object with keys high_level_keywords and low_level_keywords."""

    query: str = dspy.InputField()
    keywords_json: str = dspy.OutputField(desc='{"high_level_keywords": [...], "low_level_keywords": [...]}')


class DocumentAnalysis(dspy.Signature):
    """Analyse a document: its topic, its key points and the named entities it mentions, as a JSON object
    with keys topic, key_points and entities."""

    document: str = dspy.InputField()
    analysis_json: str = dspy.OutputField(desc='{"topic": "...", "key_points": [...], "entities": [...]}')


class AnswerGeneration(dspy.Signature):
    """Answer the question from the context only."""

    context_data: str = dspy.InputField()
    query: str = dspy.InputField()
    answer: str = dspy.OutputField()


class ContextCompression(dspy.Signature):
    """Copy only the sentences of the context needed to answer the question, verbatim, one per line."""

    query: str = dspy.InputField()
    context_data: str = dspy.InputField()
    compressed_context: str = dspy.OutputField()


class QuestionReformulation(dspy.Signature):
    """Rewrite the question as one self-contained search query that keeps every name and constraint
    and does not answer it."""

    query: str = dspy.InputField()
    reformulated_query: str = dspy.OutputField()
