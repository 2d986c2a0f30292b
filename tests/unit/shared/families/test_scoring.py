"""Each family scores a good output above a bad one, and stays reference-free without a reference."""

import json

import pytest

from shared.families import FAMILIES, PromptFamily, get_family

D = "<|#|>"
TEXT = "Marie Curie worked at the University of Paris ."
EXTRACTION = "\n".join([f"entity{D}Marie Curie{D}person{D}A physicist.",
                        f"entity{D}University of Paris{D}organization{D}A university.",
                        f"relation{D}Marie Curie{D}University of Paris{D}employment{D}She worked there.",
                        "<|COMPLETE|>"])
CONLL_REF = {"entities": [["Marie Curie", "Peop"], ["University of Paris", "Org"]],
             "relations": [["Marie Curie", "University of Paris", "Work_For"]]}
CONTEXT = "Marie Curie was a physicist. She worked at the University of Paris. Paris is in France."
QA_REF = {"answers": ["University of Paris"], "supporting": ["She worked at the University of Paris."]}

CASES = {
    PromptFamily.ENTITY_EXTRACTION: (TEXT, CONLL_REF, EXTRACTION, f"entity{D}Warsaw{D}location"),
    PromptFamily.RELATIONSHIP_EXTRACTION: (TEXT, CONLL_REF, EXTRACTION, f"entity{D}Marie Curie{D}person{D}x."),
    PromptFamily.SUMMARIZATION: (
        json.dumps({"description_type": "Paper", "description_name": "Curie", "description_list": CONTEXT}),
        {"summaries": ["Marie Curie worked at the University of Paris."]},
        "Marie Curie, a physicist, worked at the University of Paris.", "Bananas are yellow fruit."),
    PromptFamily.QUERY_PROCESSING: (
        "Where did Marie Curie work?", None,
        '{"high_level_keywords": ["employment"], "low_level_keywords": ["Marie Curie"]}', "Marie Curie, work"),
    PromptFamily.DOCUMENT_ANALYSIS: (
        TEXT, CONLL_REF,
        '{"topic": "Curie", "key_points": ["She worked in Paris"], "entities": ["Marie Curie", "University of Paris"]}',
        '{"topic": "x", "entities": ["Albert Einstein"]}'),
    PromptFamily.ANSWER_GENERATION: (
        json.dumps({"query": "Where did Marie Curie work?", "context_data": CONTEXT}), QA_REF,
        "She worked at the University of Paris.", "She worked at NASA headquarters."),
    PromptFamily.CONTEXT_COMPRESSION: (
        json.dumps({"query": "Where did Marie Curie work?", "context_data": CONTEXT}), QA_REF,
        "She worked at the University of Paris.", "Curie liked long walks in Warsaw."),
    PromptFamily.QUESTION_REFORMULATION: (
        "Where did Marie Curie work?", {"answers": ["University of Paris"]},
        "Marie Curie workplace employer", "The University of Paris\nis the answer"),
}


def test_every_family_has_a_case():
    assert set(CASES) == set(FAMILIES)


@pytest.mark.parametrize("family", list(CASES), ids=lambda f: f.value)
def test_good_beats_bad_and_scores_stay_in_range(family):
    text, reference, good, bad = CASES[family]
    f = get_family(family)
    fields = f.inputs(text)
    assert f.baseline().fields() <= set(fields)
    good_scores, bad_scores = f.score(good, fields, reference), f.score(bad, fields, reference)
    assert good_scores["overall"] > bad_scores["overall"]
    for scores in (good_scores, bad_scores, f.score(good, fields, None)):
        assert all(0.0 <= v <= 1.0 for v in scores.values()), scores
    assert "format_compliance" in f.score(good, fields, None)


def test_extraction_scores_by_hand():
    f = get_family(PromptFamily.ENTITY_EXTRACTION)
    scores = f.score(EXTRACTION, f.inputs(TEXT), CONLL_REF)
    assert scores["entity_f1"] == 1.0 and scores["entity_f1_typed"] == 1.0
    assert scores["format_compliance"] == 1.0 and scores["hallucination_rate"] == 0.0
    assert scores["overall"] == pytest.approx(1.0)
    assert scores["description_grounding"] == 0.0  # "A physicist." / "A university.": nothing from the text
    rel = get_family(PromptFamily.RELATIONSHIP_EXTRACTION).score(EXTRACTION, f.inputs(TEXT), CONLL_REF)
    assert rel["relation_f1"] == 1.0


def test_extraction_reads_the_descriptions_lightrag_stores():
    f = get_family(PromptFamily.ENTITY_EXTRACTION)
    grounded = EXTRACTION.replace("A physicist.", "Marie Curie worked at the University.")
    assert f.score(grounded, f.inputs(TEXT), None)["description_grounding"] == pytest.approx(0.5)
