"""SQuAD EM/F1 and Flesch reading ease on hand-checked cases."""

import pytest

from shared.metrics import exact_match, flesch_reading_ease, token_f1
from shared.metrics.readability import syllables


def test_exact_match_normalizes_like_squad():
    assert exact_match("The Eiffel Tower!", ["eiffel tower"]) == 1.0
    assert exact_match("Eiffel", ["eiffel tower"]) == 0.0


def test_token_f1_takes_the_best_gold_answer():
    # "in paris france" vs "paris": p=1/3, r=1 -> 0.5; vs "paris france": p=2/3, r=1 -> 0.8
    assert token_f1("in Paris, France", ["Paris", "Paris France"]) == pytest.approx(0.8)
    assert token_f1("London", ["Paris"]) == 0.0


def test_syllables():
    words = ["cat", "table", "make", "reading", "ease", "university", "takes", "boxes", "jumped", "wanted"]
    assert [syllables(w) for w in words] == [1, 2, 1, 2, 1, 5, 1, 2, 1, 2]


def test_flesch_by_hand():
    # 6 words, 1 sentence, 6 syllables: 206.835 - 1.015*6 - 84.6*1 = 116.145
    assert flesch_reading_ease("The cat sat on the mat.") == pytest.approx(116.145)
    # 2 sentences, 7 words; syllables 2+1+2 + 5+4+1+1 = 16
    text = "Reading is easy. University education takes time."
    assert flesch_reading_ease(text) == pytest.approx(206.835 - 1.015 * 7 / 2 - 84.6 * 16 / 7)
    assert flesch_reading_ease("") == 0.0
