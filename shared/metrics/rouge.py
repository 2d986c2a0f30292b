"""ROUGE-1, ROUGE-2 and ROUGE-L F-measures, tokenized exactly like Google's ``rouge-score`` (no stemming)."""

from __future__ import annotations

import re
from collections import Counter

_NON_ALPHANUM = re.compile(r"[^a-z0-9]+")


def tokens(text: str) -> list[str]:
    """rouge-score's tokenizer: lowercase, non-alphanumerics to spaces, split."""
    return [t for t in _NON_ALPHANUM.sub(" ", text.lower()).split() if t]


def _f(overlap: int, pred_total: int, ref_total: int) -> float:
    if not overlap or not pred_total or not ref_total:
        return 0.0
    p, r = overlap / pred_total, overlap / ref_total
    return 2 * p * r / (p + r)


def _ngrams(toks: list[str], n: int) -> Counter:
    return Counter(tuple(toks[i:i + n]) for i in range(len(toks) - n + 1))


def _lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def _single(prediction: str, reference: str) -> dict:
    p, r = tokens(prediction), tokens(reference)
    scores = {}
    for n in (1, 2):
        pn, rn = _ngrams(p, n), _ngrams(r, n)
        scores[f"rouge{n}"] = _f(sum((pn & rn).values()), sum(pn.values()), sum(rn.values()))
    scores["rougeL"] = _f(_lcs(p, r), len(p), len(r))
    return scores


def rouge(prediction: str, references: str | list[str]) -> dict:
    """F-measures against one reference, or the best per measure over several (SciTLDR has 2-4)."""
    refs = [references] if isinstance(references, str) else list(references)
    per_ref = [_single(prediction, ref) for ref in refs] or [{"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}]
    return {k: max(s[k] for s in per_ref) for k in per_ref[0]}
