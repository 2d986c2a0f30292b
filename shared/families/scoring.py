"""Per-family scoring of one output: a dict of metrics in 0..1 (plus an ``overall``).

Without a reference only the reference-free metrics are computed: format compliance and
hallucination (or its family's equivalent: content not supported by the input).
"""

from __future__ import annotations

import json
import re
from collections import Counter

from lightrag.operate import _parse_keywords_payload

from ..metrics import (description_grounding, entity_prf, exact_match, flesch_reading_ease, hallucination_rate, parse_extraction, relation_prf, rouge, token_f1)
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


# A light suffix stemmer: "worked"/"working" -> "work", "seasons" -> "season", "cities" -> "cit". Enough to
# match a question's words in a rewrite or a context; no dictionary, so it is the same on every worker.
_SUFFIXES = ("ations", "ation", "ments", "ment", "ings", "ing", "edly", "ed", "ers", "er", "ies", "es", "s", "ly",
             "y", "e")


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[:-len(suffix)]
    return word


def _terms(text: str) -> set[str]:
    """The stems of a text's content words (no stopwords, SQuAD normalization)."""
    return {_stem(w) for w in normalize_answer(text).split() if w not in _STOPWORDS}


def _related(stems: set[str], targets: set[str]) -> bool:
    """Whether any stem is one of ``targets`` or a compound of one ("workplace" holds "work")."""
    return any(s == t or (len(t) >= 4 and s.startswith(t)) for s in stems for t in targets)


def _coverage(targets: set[str], stems: set[str]) -> float:
    """Share of ``targets`` that ``stems`` mention (1.0 when there is nothing to mention)."""
    return sum(_related(stems, {t}) for t in targets) / len(targets) if targets else 1.0


def _extraction_core(output: str, inputs: dict) -> tuple[dict, object]:
    parsed = parse_extraction(output)
    metrics = {"format_compliance": float(parsed.compliant), "record_validity": parsed.record_validity,
               "hallucination_rate": hallucination_rate([n for n, _ in parsed.entities], inputs["input_text"]),
               "description_grounding": description_grounding(
                   [(n, t, parsed.descriptions.get(n, "")) for n, t in parsed.entities], inputs["input_text"])}
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


def _high_level_copies(keyword: str, low: list[str], query_terms: set[str]) -> bool:
    """A high-level keyword that adds no theme: empty, part of a low-level keyword, or the whole query again."""
    stems = _terms(keyword)
    return (not stems or any(stems <= _terms(k) for k in low)
            or (len(query_terms) > 1 and query_terms <= stems))


def query_processing(output: str, inputs: dict, reference: dict | None) -> dict:
    """LightRAG's keywords: both lists present, low-level ones from the query, high-level ones distinct themes.

    LightRAG retrieves entities with the low-level keywords and relations with the high-level ones, and
    its prompt derives both from the query only. So a high-level list that is empty, copies the
    low-level one or restates the query (the cheap answers) earns nothing; a high-level keyword counts
    as relevant when it is a distinct theme that shares a word with the query.
    """
    valid, high, low = _parse_keywords_payload(output)
    query_terms = _terms(inputs["query"])
    if not query_terms:  # "hello": LightRAG asks for two empty lists
        compliant = float(bool(valid) and not high and not low)
        return {"format_compliance": compliant, "hallucination_rate": 0.0, "overall": compliant}
    distinct = [k for k in high if not _high_level_copies(k, low, query_terms)]
    keyword_terms = set().union(*(_terms(k) for k in high + low))
    m = {"format_compliance": float(bool(valid) and bool(high) and bool(low)),
         "hallucination_rate": _unsupported(" ".join(low), inputs["query"]) if low else 0.0,
         "query_coverage": _coverage(query_terms, keyword_terms),
         "high_level_distinct": len(distinct) / len(high) if high else 0.0,
         "high_level_relevance": sum(_related(_terms(k), query_terms) for k in distinct) / len(high) if high else 0.0}
    m["overall"] = (0.25 * m["format_compliance"] + 0.2 * (1 - m["hallucination_rate"]) + 0.15 * m["query_coverage"]
                    + 0.15 * m["high_level_distinct"] + 0.25 * m["high_level_relevance"])
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
    """Context sentences kept verbatim: the ones that bear on the question, as few others as possible.

    Only whole context sentences count as kept (fragments and paraphrases do not), and compression is
    earned only with coverage: otherwise one short irrelevant sentence beats the right context. Without
    a reference, relevance is overlap with the question's words; with one, with the answer's too, and
    the supporting sentences must be kept.
    """
    context = set(_sentences(inputs["context_data"]))
    kept = _sentences(output)
    verbatim = [s for s in kept if s in context]
    targets = _terms(inputs["query"])
    if reference:
        targets |= set().union(*(_terms(a) for a in reference["answers"]))
    kept_terms = set().union(*(_terms(s) for s in verbatim))
    m = {"format_compliance": float(bool(kept)),
         "hallucination_rate": 1 - len(verbatim) / len(kept) if kept else 0.0,
         "compression": 1 - min(1.0, len(output) / max(1, len(inputs["context_data"]))),
         "question_coverage": _coverage(targets, kept_terms) if verbatim else 0.0,
         "relevance": sum(_related(_terms(s), targets) for s in verbatim) / len(kept) if kept else 0.0}
    if reference:
        out = f" {normalize_answer(output)} "
        facts = [normalize_answer(s) for s in reference["supporting"]]
        m["supporting_recall"] = sum(f" {f} " in out for f in facts) / len(facts) if facts else 1.0
        m["answer_retained"] = _contains_answer(output, reference["answers"])
        m["overall"] = (0.45 * m["supporting_recall"] + 0.2 * m["answer_retained"] + 0.15 * m["relevance"]
                        + 0.2 * m["compression"] * m["supporting_recall"])
    else:
        m["overall"] = (0.35 * m["question_coverage"] + 0.25 * m["relevance"]
                        + 0.2 * (1 - m["hallucination_rate"]) * m["format_compliance"]
                        + 0.2 * m["compression"] * m["question_coverage"])
    return m


_INTERROGATIVES = set("what which who whom whose when where why how is are was were do does did can could should "
                      "would will has have had in at on for from by".split())


def _question_form(text: str) -> float:
    """1 for a question, 0.5 for a keyword-style search query, 0 for a statement (an answer, not a query)."""
    words = normalize_answer(text).split()
    if text.endswith("?") or (words and words[0] in _INTERROGATIVES and not text.endswith(".")):
        return 1.0
    return 0.0 if text.endswith((".", "!")) else 0.5


def _rewrite(query: str, text: str) -> float:
    """How much the text changed the query's words: 0 for a copy, 1 from a 30% change on.

    The change is 1 - Dice overlap of the two bags of words, so reordering the same words is no change.
    A third of the words is what making a question explicit takes (naming what "it" is, adding the
    subject's type); below that the rewrite gets partial credit, so an echo with a filler word does not pay.
    """
    a, b = Counter(normalize_answer(query).split()), Counter(normalize_answer(text).split())
    if not a or not b:
        return float(a != b)
    overlap = 2 * sum((a & b).values()) / (sum(a.values()) + sum(b.values()))
    return min(1.0, (1 - overlap) / 0.3)


def question_reformulation(output: str, inputs: dict, reference: dict | None) -> dict:
    """A rewrite that stays a question on the same subject and is not the original copied.

    Keeping the question's words (term recall) alone made an echo the best answer; the change is
    credited only in proportion to the words kept, so changing the subject earns nothing either.
    """
    text = output.strip()
    query = inputs["query"]
    m = {"format_compliance": float(bool(text) and "\n" not in text and len(text) <= 4 * len(query) + 40),
         "term_recall": _coverage(_terms(query), _terms(text)),
         "hallucination_rate": _unsupported(text, query),
         "rewrite": _rewrite(query, text),
         "question_form": _question_form(text)}
    changed_on_subject = m["rewrite"] * m["term_recall"]
    if reference:
        m["answer_leak"] = _contains_answer(text, reference["answers"])
        m["overall"] = (0.3 * changed_on_subject + 0.25 * m["term_recall"] + 0.1 * m["format_compliance"]
                        + 0.1 * m["question_form"] + 0.25 * (1 - m["answer_leak"]))
    else:
        m["overall"] = (0.4 * changed_on_subject + 0.25 * m["term_recall"] + 0.15 * m["format_compliance"]
                        + 0.2 * m["question_form"])
    return m
