"""The objective a search maximizes: weighted metric means, and a length cost every family has."""

import pytest

from shared.optimize.scoring import TrialScores, objective


def test_output_words_is_the_mean_answer_length_of_the_calls_that_came_back():
    scores = TrialScores(metrics=[{"entity_f1": 1.0}, {"entity_f1": 0.5}, None, None],
                         outputs=["a b c d", "a b", "x " * 9, None])
    assert scores.mean("output_words") == 5.0  # an answer that could not be scored still counts; no answer does not
    assert scores.mean("entity_f1") == 0.375  # the failed calls count as 0
    assert "output_words" not in scores.means()  # a cost, not a metric validation would call a regression


def test_a_negative_length_weight_prefers_the_shorter_of_two_equal_answers():
    long = TrialScores(metrics=[{"entity_f1": 0.8}], outputs=["word " * 200])
    short = TrialScores(metrics=[{"entity_f1": 0.8}], outputs=["word " * 50])
    weights = {"entity_f1": 1.0, "output_words": -0.0005}
    assert objective(short, weights) - objective(long, weights) == pytest.approx(0.075)
    assert objective(TrialScores(metrics=[None], outputs=[None]), weights) == 0.0
