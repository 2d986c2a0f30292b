"""Flesch reading ease: 206.835 - 1.015 * words/sentence - 84.6 * syllables/word."""

from __future__ import annotations

import re

_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_SENTENCE_END = re.compile(r"[.!?]+")
_VOWEL_GROUPS = re.compile(r"[aeiouy]+")


def syllables(word: str) -> int:
    """Vowel groups, minus a silent final 'e' ("make", not "table") and a silent 'e' in '-es'/'-ed'
    ("takes", "jumped"; not "boxes", "wanted"); at least one."""
    w = word.lower()
    count = len(_VOWEL_GROUPS.findall(w))
    silent = (
        (w.endswith("e") and not w.endswith(("le", "ee", "ye")))
        or (w.endswith("es") and len(w) > 3 and w[-3] not in "sxzcgaeiouy")
        or (w.endswith("ed") and len(w) > 3 and w[-3] not in "tdaeiouy")
    )
    return max(1, count - 1) if silent and count > 1 else max(1, count)


def flesch_reading_ease(text: str) -> float:
    """Higher is easier (90+ very easy, below 30 very hard). Text without words scores 0.0."""
    words = _WORD.findall(text)
    if not words:
        return 0.0
    sentences = max(1, len([s for s in _SENTENCE_END.split(text) if _WORD.search(s)]))
    syl = sum(syllables(w) for w in words)
    return 206.835 - 1.015 * (len(words) / sentences) - 84.6 * (syl / len(words))
