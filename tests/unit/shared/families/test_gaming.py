"""Reference-free metrics an optimizer will climb: honest answers must score clearly above gaming ones.

Each case is a realistic input with honest outputs (what the family's prompt asks for) and the cheap
outputs an optimizer finds when a metric has a hole: an irrelevant sentence, an echo of the question,
keywords copied from one list to the other. Every honest output must beat every gaming output of its
case by ``MARGIN``.
"""

import json

import pytest

from shared.families import PromptFamily, get_family

MARGIN = 0.15


def qc(query: str, context: str) -> str:
    return json.dumps({"query": query, "context_data": context})


CURIE = "Marie Curie was a physicist. She worked at the University of Paris. Paris is in France."
MAGAZINES = ("Arthur's Magazine (1844-1846) was an American literary periodical published in Philadelphia. "
             "It featured work by Edgar Allan Poe and Sarah Josepha Hale. First for Women is a woman's magazine "
             "published by Bauer Media Group in the USA. The magazine was started in 1989. It is based in "
             "Englewood Cliffs, New Jersey. In 2011 the circulation of the magazine was 1,310,696 copies.")
SEASONS = ("Earth's axis is tilted by about 23.4 degrees relative to its orbital plane.\n"
           "This tilt causes the seasons, because each hemisphere receives more direct sunlight for part of the "
           "year.\nThe Moon orbits Earth every 27.3 days.\nJupiter is the largest planet in the Solar System.\n"
           "Saturn has a prominent ring system.")

COMPRESSION = [  # (query, context, reference, honest outputs, gaming outputs)
    ("Where did Marie Curie work?", CURIE, None,
     ["Marie Curie was a physicist.\nShe worked at the University of Paris."],
     {"one irrelevant sentence": "Paris is in France.", "the question": "Where did Marie Curie work?",
      "fragments of the context": "Marie Curie\nworked", "nothing": "",
      "a paraphrase": "Curie was employed by a Paris university."}),
    ("Which magazine was started first, Arthur's Magazine or First for Women?", MAGAZINES, None,
     ["Arthur's Magazine (1844-1846) was an American literary periodical published in Philadelphia.\n"
      "First for Women is a woman's magazine published by Bauer Media Group in the USA.\n"
      "The magazine was started in 1989."],
     {"one irrelevant sentence": "It is based in Englewood Cliffs, New Jersey.",
      "the question": "Which magazine was started first, Arthur's Magazine or First for Women?",
      "fragments of the context": "Arthur's Magazine\nFirst for Women\nstarted",
      "the whole context": MAGAZINES}),
    ("What causes the seasons on Earth?", SEASONS, None,
     ["Earth's axis is tilted by about 23.4 degrees relative to its orbital plane.\nThis tilt causes the seasons, "
      "because each hemisphere receives more direct sunlight for part of the year."],
     {"one irrelevant sentence": "Jupiter is the largest planet in the Solar System.",
      "two irrelevant sentences": "Jupiter is the largest planet in the Solar System.\nSaturn has a prominent ring system.",
      "the question": "What causes the seasons on Earth?", "the whole context": SEASONS}),
    ("Which magazine was started first, Arthur's Magazine or First for Women?", MAGAZINES,
     {"answers": ["Arthur's Magazine"], "supporting": [
         "Arthur's Magazine (1844-1846) was an American literary periodical published in Philadelphia.",
         "The magazine was started in 1989."]},
     ["Arthur's Magazine (1844-1846) was an American literary periodical published in Philadelphia.\n"
      "The magazine was started in 1989."],
     {"one irrelevant sentence": "It is based in Englewood Cliffs, New Jersey.", "nothing": "",
      "the whole context": MAGAZINES, "the answer alone": "Arthur's Magazine"}),
]

REFORMULATION = [  # (query, reference, honest outputs, gaming outputs)
    ("Where did Marie Curie work?", None,
     ["At which university or institution did the physicist Marie Curie work?",
      "Which institutions employed Marie Curie, and where did she work during her career?"],
     {"echo": "Where did Marie Curie work?", "echo in capitals": "WHERE DID MARIE CURIE WORK",
      "echo plus a filler word": "Where exactly did Marie Curie work?",
      "an unrelated question": "What is the capital of France?",
      "a statement": "Marie Curie worked at the University of Paris."}),
    ("what year did the eiffel tower open", None,
     ["In what year was the Eiffel Tower in Paris opened to the public?"],
     {"echo": "what year did the eiffel tower open", "echo with a question mark": "What year did the Eiffel Tower open?",
      "an unrelated question": "Who painted the Mona Lisa?"}),
    ("who wrote it, the novel 1984?", None,
     ["Who is the author of the novel 1984, and who wrote it?", "Which author wrote the dystopian novel 1984?"],
     {"echo": "who wrote it, the novel 1984?", "echo reordered slightly": "the novel 1984, who wrote it?",
      "keywords of another subject": "Brave New World author"}),
    ("Where did Marie Curie work?", {"answers": ["University of Paris"]},
     ["At which university or institution did the physicist Marie Curie work?"],
     {"echo": "Where did Marie Curie work?", "the answer": "Marie Curie worked at the University of Paris."}),
]


def kw(high: list[str], low: list[str]) -> str:
    return json.dumps({"high_level_keywords": high, "low_level_keywords": low})


KEYWORDS = [  # (query, honest outputs, gaming outputs)
    ("Where did Marie Curie work?",
     [kw(["Work history", "Workplace"], ["Marie Curie"]), kw(["Scientific work", "Work location"], ["Marie Curie"])],
     {"no high-level keywords": kw([], ["Marie Curie", "work"]),
      "high-level copies low-level": kw(["Marie Curie", "work"], ["Marie Curie", "work"]),
      "high-level is the query": kw(["Where did Marie Curie work?"], ["Marie Curie"]),
      "generic high-level filler": kw(["Information", "General knowledge"], ["Marie Curie"]),
      "high-level splits the entity": kw(["Marie", "Curie"], ["Marie Curie"])}),
    ("How does international trade influence global economic stability?",
     [kw(["Trade influence", "Economic stability"], ["International trade", "Global economy"])],
     {"no high-level keywords": kw([], ["International trade", "Global economic stability"]),
      "high-level copies low-level": kw(["International trade", "Global economic stability"],
                                        ["International trade", "Global economic stability"]),
      "high-level is the query": kw(["How does international trade influence global economic stability?"],
                                    ["International trade"]),
      "generic high-level filler": kw(["Overview", "Analysis"], ["International trade", "Global economy"])}),
    ("What are the side effects of ibuprofen for children?",
     [kw(["Side effects", "Pediatric medication safety", "Children's health"], ["Ibuprofen", "Children"])],
     {"no high-level keywords": kw([], ["ibuprofen", "children", "side effects"]),
      "high-level copies low-level": kw(["Ibuprofen", "Children"], ["Ibuprofen", "Children"]),
      "generic high-level filler": kw(["Question", "Topic"], ["Ibuprofen", "Children"]),
      "high-level is the query": kw(["side effects of ibuprofen for children"], ["Ibuprofen"])}),
]


def overall(family: PromptFamily, text: str, reference, output: str) -> float:
    f = get_family(family)
    return f.score(output, f.inputs(text), reference)["overall"]


def assert_honest_beats_gaming(family, text, reference, honest, gaming):
    honest_scores = [overall(family, text, reference, h) for h in honest]
    gaming_scores = {name: overall(family, text, reference, g) for name, g in gaming.items()}
    best_gaming = max(gaming_scores, key=gaming_scores.get)
    assert min(honest_scores) >= gaming_scores[best_gaming] + MARGIN, (
        f"honest {[round(s, 3) for s in honest_scores]} vs {best_gaming!r} {gaming_scores[best_gaming]:.3f}; "
        f"all gaming {({k: round(v, 3) for k, v in gaming_scores.items()})}")


@pytest.mark.parametrize("case", COMPRESSION, ids=lambda c: f"{c[0][:30]}{' +ref' if c[2] else ''}")
def test_context_compression_rewards_relevant_sentences_not_any_short_output(case):
    query, context, reference, honest, gaming = case
    assert_honest_beats_gaming(PromptFamily.CONTEXT_COMPRESSION, qc(query, context), reference, honest, gaming)


@pytest.mark.parametrize("case", REFORMULATION, ids=lambda c: f"{c[0][:30]}{' +ref' if c[1] else ''}")
def test_question_reformulation_penalizes_copying_and_changing_the_subject(case):
    query, reference, honest, gaming = case
    assert_honest_beats_gaming(PromptFamily.QUESTION_REFORMULATION, query, reference, honest, gaming)


@pytest.mark.parametrize("case", KEYWORDS, ids=lambda c: c[0][:30])
def test_query_keywords_check_the_high_level_list_too(case):
    query, honest, gaming = case
    assert_honest_beats_gaming(PromptFamily.QUERY_PROCESSING, query, None, honest, gaming)


def test_the_issues_numbers():
    """The holes as reported: an irrelevant sentence 0.986 over the right context's 0.8; an echo 1.0."""
    text = qc("Where did Marie Curie work?", CURIE)
    right = overall(PromptFamily.CONTEXT_COMPRESSION, text, None, "She worked at the University of Paris.")
    irrelevant = overall(PromptFamily.CONTEXT_COMPRESSION, text, None, "Paris is in France.")
    assert right > irrelevant + MARGIN
    echo = overall(PromptFamily.QUESTION_REFORMULATION, "Where did Marie Curie work?", None,
                   "Where did Marie Curie work?")
    assert echo <= 0.7
