"""Entity/relation P/R/F1, hallucination and description grounding on hand-checked cases."""

import pytest

from shared.metrics import description_grounding, entity_prf, hallucination_rate, normalize_name, relation_prf


def test_names_normalize_case_punctuation_spacing_and_articles():
    assert normalize_name("The  U.N.") == normalize_name("u n") == "u n"
    assert normalize_name("Marie Curie") == normalize_name("marie   curie")
    assert normalize_name("A Tale") == "tale"


def test_untyped_and_typed_entity_scores():
    gold = [("Marie Curie", "person"), ("Paris", "location"), ("Sorbonne", "organization")]
    predicted = [("marie curie", "Person"), ("Paris", "organization"), ("Warsaw", "location")]
    untyped = entity_prf(predicted, gold)
    assert (untyped["tp"], untyped["precision"], untyped["recall"]) == (2, 2 / 3, 2 / 3)
    assert untyped["f1"] == pytest.approx(2 / 3)
    typed = entity_prf(predicted, gold, typed=True)
    assert typed["tp"] == 1 and typed["f1"] == pytest.approx(1 / 3)


def test_edge_cases_of_empty_sets():
    assert entity_prf([], [])["f1"] == 1.0
    assert entity_prf([("X", None)], [])["f1"] == 0.0
    assert entity_prf([], [("X", None)])["recall"] == 0.0


def test_relations_are_undirected_unless_stated():
    gold = [("Marie Curie", "Paris"), ("Pierre Curie", "Marie Curie")]
    predicted = [("Paris", "marie curie"), ("Pierre Curie", "Sorbonne")]
    assert relation_prf(predicted, gold)["f1"] == pytest.approx(0.5)
    assert relation_prf(predicted, gold, directed=True)["tp"] == 0


def test_hallucination_counts_names_absent_from_the_text():
    text = "Marie Curie worked at the University of Paris ."
    assert hallucination_rate(["Marie Curie", "University of Paris"], text) == 0.0
    assert hallucination_rate(["Marie Curie", "Warsaw", "Par"], text) == pytest.approx(2 / 3)
    assert hallucination_rate([], text) == 0.0


def test_a_description_counts_only_when_it_says_something_the_text_says():
    text = "The rig was towed to Morgan City , said Chevron spokesman Jonathan Lifa ."
    assert description_grounding([("Morgan City", "location", "Morgan City is a location named in the text."),
                                  ("Jonathan Lifa", "person", "Chevron spokesman Jonathan Lifa."),
                                  ("Chevron", "organization", "An oil company."),  # true, but not from the text
                                  ("rig", "artifact", "The rig was towed.")], text) == pytest.approx(2 / 4)
    assert description_grounding([], text) == 1.0  # nothing extracted, nothing left undescribed
    assert description_grounding([("Chevron", "organization", "")], text) == 0.0
    # Pronouns, helper verbs, "'s" and numbers are in many texts and say nothing about the entity.
    said = "He said Chevron 's 2 rigs were towed ."
    assert description_grounding([("Chevron", "organization", "He is Chevron's 2."),
                                  ("Chevron", "organization", "It has 2 rigs.")], said) == 0.5  # "rigs" only
    assert description_grounding([("Chevron", "organization", "He is Chevron's 2.")], said) == 0.0
