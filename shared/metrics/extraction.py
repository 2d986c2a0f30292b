"""Entity and relationship precision/recall/F1, hallucination (ungrounded entities) and whether the
entities' descriptions say anything the text says."""

from __future__ import annotations

import re
import string
import unicodedata
from typing import Iterable

_ARTICLES = re.compile(r"^(the|a|an)\s+")
_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def normalize_name(name: str) -> str:
    """Compare names the way a reader would: case, accents' composition, punctuation, spacing and a
    leading article do not matter ("The U.N." == "u n")."""
    text = unicodedata.normalize("NFKC", name).lower().translate(_PUNCT)
    text = " ".join(text.split())
    return _ARTICLES.sub("", text)


def _prf(predicted: set, gold: set) -> dict:
    tp = len(predicted & gold)
    precision = tp / len(predicted) if predicted else (1.0 if not gold else 0.0)
    recall = tp / len(gold) if gold else (1.0 if not predicted else 0.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "predicted": len(predicted),
            "gold": len(gold)}


def entity_prf(predicted: Iterable[tuple[str, str | None]], gold: Iterable[tuple[str, str | None]],
               typed: bool = False) -> dict:
    """P/R/F1 over entity names (and types when ``typed``); both sides are ``(name, type)`` pairs.

    Names are normalized and de-duplicated; types are compared case-insensitively, so map dataset
    types to the model's vocabulary before calling (``shared.datasets`` does for CoNLL04).
    Empty prediction against empty gold scores 1.0.
    """
    def key(name, etype):
        return (normalize_name(name), (etype or "").lower()) if typed else normalize_name(name)

    return _prf({key(n, t) for n, t in predicted if normalize_name(n)},
                {key(n, t) for n, t in gold if normalize_name(n)})


def relation_prf(predicted: Iterable[tuple[str, str]], gold: Iterable[tuple[str, str]],
                 directed: bool = False) -> dict:
    """P/R/F1 over (head, tail) entity pairs; undirected unless ``directed`` (LightRAG's edges are)."""
    def key(head, tail):
        pair = (normalize_name(head), normalize_name(tail))
        return pair if directed else tuple(sorted(pair))

    return _prf({key(h, t) for h, t in predicted}, {key(h, t) for h, t in gold})


def hallucination_rate(entity_names: Iterable[str], source_text: str) -> float:
    """Share of extracted entities whose normalized name does not occur in the normalized source text.

    Containment is on whole tokens ("Paris" is grounded in "... in Paris ." but "Par" is not).
    No extracted entities: 0.0.
    """
    names = {normalize_name(n) for n in entity_names if normalize_name(n)}
    if not names:
        return 0.0
    source = f" {normalize_name(source_text)} "
    ungrounded = [n for n in names if f" {n} " not in source]
    return len(ungrounded) / len(names)


#: Words a description may use without saying anything about its entity: function words, pronouns,
#: helper verbs, the entity-type names of LightRAG's and CoNLL04's guidance, and the "... named in the
#: text" filler. One-letter tokens ("'s" normalizes to "s") and numbers never count either.
_FILLER = set("a an the is are was were be been being am has have had do does did will would can could may "
              "might shall should must of in on at to for by with and or but not no nor as from that this these "
              "those it its he she they him her them his hers their theirs we us our i me my you your who whom "
              "whose which what also there here than then so such very one named mentioned text input entity "
              "type person people organization organisation location place geographic other event concept "
              "method content data artifact naturalobject creature".split())


def description_grounding(described: Iterable[tuple[str, str, str]], source_text: str) -> float:
    """Share of ``(name, type, description)`` entities whose description holds a word of the source text
    other than the entity's own name, its type and filler ("Morgan City is a location named in the
    text." says nothing; "towed to Morgan City" does). LightRAG stores these descriptions in its graph
    and retrieves by them, and no other score reads them. No entities: 1.0 (nothing left undescribed,
    as ``hallucination_rate`` is 0.0 then), so an answer that rightly extracts nothing is not marked down."""
    rows = [(n, t, d) for n, t, d in described if normalize_name(n)]
    if not rows:
        return 1.0
    source = set(normalize_name(source_text).split())

    def says(name: str, etype: str, description: str) -> bool:
        words = set(normalize_name(description).split()) - set(normalize_name(f"{name} {etype}").split()) - _FILLER
        return any(len(w) > 1 and not w.isdigit() and w in source for w in words)

    said = sum(says(n, t, d) for n, t, d in rows)
    return said / len(rows)
