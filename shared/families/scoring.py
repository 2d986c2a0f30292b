"""Per-family scoring of one output: a dict of metrics in 0..1 (plus an ``overall``).

Without a reference only the reference-free metrics are computed: format compliance and
hallucination (or its family's equivalent: content not supported by the input).
"""

from __future__ import annotations

import json
import re

from lightrag.operate import _parse_keywords_payload

from ..metrics import (entity_prf, exact_match, flesch_reading_ease, hallucination_rate, parse_extraction, relation_prf, rouge, token_f1)
from ..metrics.qa import normalize_answer

#: CoNLL04's entity types in LightRAG's vocabulary (its default entity-type guidance).
CONLL_TO_LIGHTRAG = {"Peop": "person", "Org": "organization", "Loc": "location", "Other": "other"}
_STOPWORDS = set("a an the of in on at to for and or is are was were be been by with what which who whom "
                 "whose when where why how do does did from as that this these those it its".split())


def _unsupported(text: str, source: str) -> float:
    """Share of the output's content words that never occur in the source (0 for an empty output)."""
    words = [w for w in normalize_answer(text).split() if w not in _STOPWORDS]
    if not words:
        return 0.0
    source_words = set(normalize_answer(source).split())
    return sum(w not in source_words for w in words) / len(words)


def _extraction_core(output: str, inputs: dict) -> tuple[dict, object]:
    parsed = parse_extraction(output)
    metrics = {"format_compliance": float(parsed.compliant), "record_validity": parsed.record_validity,
               "hallucination_rate": hallucination_rate([n for n, _ in parsed.entities], inputs["input_text"])}
    return metrics, parsed


def _gold_entities(reference: dict) -> list[tuple[str, str]]:
    return [(name, CONLL_TO_LIGHTRAG.get(etype, etype).lower()) for name, etype in reference["entities"]]


def entity_extraction(output: str, inputs: dict, reference: dict | None) -> dict:
    m, parsed = _extraction_core(output, inputs)
    if reference:
        predicted = [(n, t) for n, t in parsed.entities]
        m["entity_f1"] = entity_prf(predicted, _gold_entities(reference))["f1"]
        m["entity_f1_typed"] = entity_prf(predicted, _gold_entities(reference), typed=True)["f1"]
        if "relations" in reference:  # the same LightRAG prompt extracts both: report both
            m["relation_f1"] = relation_prf(parsed.relations, [(h, t) for h, t, *_ in reference["relations"]])["f1"]
        m["overall"] = 0.6 * m["entity_f1"] + 0.25 * m["format_compliance"] + 0.15 * (1 - m["hallucination_rate"])
    else:
        m["overall"] = 0.6 * m["format_compliance"] + 0.4 * (1 - m["hallucination_rate"])
    return m


def relationship_extraction(output: str, inputs: dict, reference: dict | None) -> dict:
    m, parsed = _extraction_core(output, inputs)
    if reference:
        m["relation_f1"] = relation_prf(parsed.relations, [(h, t) for h, t, *_ in reference["relations"]])["f1"]
        m["entity_f1"] = entity_prf(parsed.entities, _gold_entities(reference))["f1"]
        m["overall"] = 0.6 * m["relation_f1"] + 0.25 * m["format_compliance"] + 0.15 * (1 - m["hallucination_rate"])
    else:
        m["overall"] = 0.6 * m["format_compliance"] + 0.4 * (1 - m["hallucination_rate"])
    return m


def summarization(output: str, inputs: dict, reference: dict | None) -> dict:
    text = output.strip()
    m = {"format_compliance": float(bool(text) and len(text.split()) <= 120),
         "hallucination_rate": _unsupported(text, inputs["description_list"] + " " + inputs["description_name"]),
         "readability": max(0.0, min(100.0, flesch_reading_ease(text))) / 100}
    if reference:
        m.update(rouge(text, reference["summaries"]))
        m["overall"] = 0.7 * m["rougeL"] + 0.15 * m["format_compliance"] + 0.15 * (1 - m["hallucination_rate"])
    else:
        m["overall"] = 0.5 * m["format_compliance"] + 0.5 * (1 - m["hallucination_rate"])
    return m


def query_processing(output: str, inputs: dict, reference: dict | None) -> dict:
    valid, high, low = _parse_keywords_payload(output)
    keywords = list(low or [])
    m = {"format_compliance": float(bool(valid) and bool(high or low)),
         "hallucination_rate": _unsupported(" ".join(keywords), inputs["query"]) if keywords else 0.0}
    m["overall"] = 0.7 * m["format_compliance"] + 0.3 * (1 - m["hallucination_rate"])
    return m


def _json_object(output: str) -> dict | None:
    match = re.search(r"\{.*\}", output, re.S)
    if not match:
        return None
    try:
        value = json.loads(match.group(0))
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def document_analysis(output: str, inputs: dict, reference: dict | None) -> dict:
    data = _json_object(output)
    ok = bool(data) and isinstance(data.get("topic"), str) and isinstance(data.get("key_points"), list) \
        and isinstance(data.get("entities"), list)
    entities = [e for e in (data or {}).get("entities", []) if isinstance(e, str)] if ok else []
    m = {"format_compliance": float(ok), "hallucination_rate": hallucination_rate(entities, inputs["document"])}
    if reference:
        m["entity_f1"] = entity_prf([(e, None) for e in entities], [(n, None) for n, _ in reference["entities"]])["f1"]
        m["overall"] = 0.5 * m["entity_f1"] + 0.3 * m["format_compliance"] + 0.2 * (1 - m["hallucination_rate"])
    else:
        m["overall"] = 0.6 * m["format_compliance"] + 0.4 * (1 - m["hallucination_rate"])
    return m


def _contains_answer(text: str, answers: list[str]) -> float:
    haystack = f" {normalize_answer(text)} "
    return float(any(f" {normalize_answer(a)} " in haystack for a in answers if normalize_answer(a)))


def answer_generation(output: str, inputs: dict, reference: dict | None) -> dict:
    m = {"format_compliance": float(bool(output.strip())),
         "hallucination_rate": _unsupported(output, inputs["context_data"] + " " + inputs["query"])}
    if reference:
        answers = reference["answers"]
        m.update(token_f1=token_f1(output, answers), exact_match=exact_match(output, answers),
                 answer_containment=_contains_answer(output, answers))
        m["overall"] = 0.5 * m["answer_containment"] + 0.3 * m["token_f1"] + 0.2 * (1 - m["hallucination_rate"])
    else:
        m["overall"] = 0.5 * m["format_compliance"] + 0.5 * (1 - m["hallucination_rate"])
    return m


def _sentences(text: str) -> list[str]:
    return [s for s in (normalize_answer(line) for line in re.split(r"(?<=[.!?])\s+|\n", text)) if s]


def context_compression(output: str, inputs: dict, reference: dict | None) -> dict:
    context = f" {normalize_answer(inputs['context_data'])} "
    kept = _sentences(output)
    m = {"format_compliance": float(bool(kept)),
         "hallucination_rate": (sum(f" {s} " not in context for s in kept) / len(kept)) if kept else 0.0,
         "compression": 1 - min(1.0, len(output) / max(1, len(inputs["context_data"])))}
    if reference:
        out = f" {normalize_answer(output)} "
        facts = [normalize_answer(s) for s in reference["supporting"]]
        m["supporting_recall"] = sum(f" {f} " in out for f in facts) / len(facts) if facts else 1.0
        m["answer_retained"] = _contains_answer(output, reference["answers"])
        m["overall"] = 0.5 * m["supporting_recall"] + 0.3 * m["answer_retained"] + 0.2 * m["compression"]
    else:
        m["overall"] = 0.4 * m["format_compliance"] + 0.4 * (1 - m["hallucination_rate"]) + 0.2 * m["compression"]
    return m


def question_reformulation(output: str, inputs: dict, reference: dict | None) -> dict:
    text = output.strip()
    original = [w for w in normalize_answer(inputs["query"]).split() if w not in _STOPWORDS]
    rewritten = set(normalize_answer(text).split())
    m = {"format_compliance": float(bool(text) and "\n" not in text and len(text) <= 4 * len(inputs["query"]) + 40),
         "term_recall": (sum(w in rewritten for w in original) / len(original)) if original else 1.0,
         "hallucination_rate": _unsupported(text, inputs["query"])}
    if reference:
        m["answer_leak"] = _contains_answer(text, reference["answers"])
        m["overall"] = 0.5 * m["term_recall"] + 0.2 * m["format_compliance"] + 0.3 * (1 - m["answer_leak"])
    else:
        m["overall"] = 0.6 * m["term_recall"] + 0.4 * m["format_compliance"]
    return m
