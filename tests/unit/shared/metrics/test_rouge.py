"""ROUGE must agree with Google's rouge-score package."""

import pytest

from shared.metrics import rouge

rouge_score = pytest.importorskip("rouge_score.rouge_scorer")

TEXTS = [
    ("the cat sat on the mat", "a cat sat on a mat"),
    ("We propose a new method for graph neural networks.", "A novel GNN method is proposed."),
    ("Transformers learn long-range dependencies; RNNs struggle!", "RNNs struggle with long-range dependencies"),
    ("", "nothing predicted"),
    ("identical text here", "identical text here"),
    ("numbers 3.14 and 42 count, as do ALL-CAPS words", "42 numbers ALL caps 3 14"),
    ("no overlap at all", "completely different words"),
    ("repeated repeated repeated words words", "repeated words"),
    ("Über café naïve – unicode punctuation…", "cafe naive unicode"),
]


@pytest.mark.parametrize("prediction, reference", TEXTS)
def test_matches_rouge_score(prediction, reference):
    scorer = rouge_score.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    expected = {k: v.fmeasure for k, v in scorer.score(reference, prediction).items()}
    assert rouge(prediction, reference) == pytest.approx(expected, abs=1e-12)


def test_several_references_take_the_best_per_measure():
    scorer = rouge_score.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    refs = ["a cat sat on a mat", "the cat sat on the mat today"]
    expected = {k: v.fmeasure for k, v in scorer.score_multi(refs, "the cat sat on the mat").items()}
    assert rouge("the cat sat on the mat", refs) == pytest.approx(expected)
