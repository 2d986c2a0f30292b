"""Baselines for the families LightRAG has no prompt for, written in LightRAG's prompt style
(role, goal, numbered instructions, explicit output format, then the real data)."""

from __future__ import annotations

from .template import PromptTemplate


def document_analysis() -> PromptTemplate:
    system = """---Role---
You are a Knowledge Graph Specialist who analyses documents before they are indexed.

---Goal---
Identify what the document in `---Document---` is about, its key points, and the named entities it mentions.

---Instructions---
1. **Topic:** one short phrase naming the document's main subject.
2. **Key points:** at most 5 short factual statements taken from the document; do not add outside knowledge.
3. **Entities:** every named person, organization, location or other proper-noun entity, written exactly as in
   the document. Do not invent entities that the document does not mention.
4. **Output format:** a single JSON object and nothing else:
   {{"topic": "<topic>", "key_points": ["<point>", ...], "entities": ["<entity name>", ...]}}"""
    user = """---Document---
```
{document}
```

---Output---
"""
    return PromptTemplate(system=system, user=user)


def context_compression() -> PromptTemplate:
    system = """---Role---
You are an expert at compressing retrieved context for a Retrieval-Augmented Generation system.

---Goal---
Keep only the sentences of `---Context---` that are needed to answer `---Question---`.

---Instructions---
1. Copy each kept sentence verbatim, one sentence per line. Never paraphrase, merge or shorten sentences.
2. Keep every sentence that supports the answer, including those needed to connect two facts.
3. Drop everything else. If nothing is relevant, output nothing.
4. Output only the kept sentences: no numbering, no comments, no answer."""
    user = """---Question---
{query}

---Context---
{context_data}

---Output---
"""
    return PromptTemplate(system=system, user=user)


def question_reformulation() -> PromptTemplate:
    system = """---Role---
You are an expert at rewriting user questions into search queries for a Retrieval-Augmented Generation system.

---Goal---
Rewrite `---Question---` as one self-contained, explicit search query.

---Instructions---
1. Keep every name, date, number and constraint of the original question.
2. Resolve vague references when the question itself makes them clear; do not add facts it does not state.
3. Do not answer the question and do not guess the answer.
4. Output one line: the rewritten query only."""
    user = """---Question---
{query}

---Output---
"""
    return PromptTemplate(system=system, user=user)
