"""Recovering the values LightRAG filled into its prompts, and rendering a variant with them."""

import pytest

from promptloop_client.inversion import fields, invert
from promptloop_client.lightrag_routing import SHAPES, recover, render

lightrag = pytest.importorskip("lightrag")
from lightrag.constants import DEFAULT_MAX_EXTRACTION_ENTITIES, DEFAULT_MAX_EXTRACTION_RECORDS  # noqa: E402
from lightrag.prompt import PROMPTS  # noqa: E402
from lightrag.utils import sanitize_text_for_encoding as sanitize  # noqa: E402

from shared.families import lightrag_baselines as lb  # noqa: E402

TEXT = ("Marie Curie worked at the University of Paris, where she met Pierre Curie. {Braces} stay, "
        "<|#|> too, and a language: English. ") * 20
TEXT = TEXT.strip()
MARKER = "CANDIDATE-MARKER-7"


def context(prompts=PROMPTS, language="English"):
    """What ``lightrag.operate.extract_entities`` fills in (text mode)."""
    base = dict(tuple_delimiter=PROMPTS["DEFAULT_TUPLE_DELIMITER"],
                completion_delimiter=PROMPTS["DEFAULT_COMPLETION_DELIMITER"],
                entity_types_guidance=PROMPTS["default_entity_types_guidance"].rstrip(), language=language)
    examples = "\n".join(e.rstrip() for e in prompts["entity_extraction_examples"]).format(**base)
    return dict(base, examples=examples, max_total_records=DEFAULT_MAX_EXTRACTION_RECORDS,
                max_entity_records=DEFAULT_MAX_EXTRACTION_ENTITIES)


def extraction_call(prompts=PROMPTS, text=TEXT, heading=""):
    """(system, user) as ``extract_entities`` and ``use_llm_func_with_cache`` send them."""
    ctx = context(prompts)
    system = prompts["entity_extraction_system_prompt"].format(**ctx)
    user = prompts["entity_extraction_user_prompt"].format(**ctx, input_text=text, heading_context_block=heading)
    return sanitize(system), sanitize(user)


def candidate():
    return {"entity_extraction_system_prompt": PROMPTS["entity_extraction_system_prompt"].replace(
                "---Role---\n", f"---Role---\n{MARKER}\n", 1),
            "entity_extraction_user_prompt": PROMPTS["entity_extraction_user_prompt"].replace(
                "---Input Text---", "---Input Text (candidate)---"),
            "entity_extraction_examples": [e + "\n" for e in PROMPTS["entity_extraction_examples"]]
            + ["(no more examples)"]}


@pytest.mark.parametrize("key, values", [
    ("entity_extraction_user_prompt", dict(context(), input_text=TEXT, heading_context_block="")),
    ("entity_extraction_user_prompt", dict(context(), input_text=TEXT,
                                           heading_context_block="---Section Context---\nChapter 1\n\n")),
    ("entity_continue_extraction_user_prompt", context()),
    ("entity_extraction_system_prompt", context()),
    ("summarize_entity_descriptions", dict(description_type="entity", description_name="Marie Curie",
                                           description_list='{"Description": "A physicist."}\n{"Description": "x"}',
                                           summary_length=200, language="English")),
    ("keywords_extraction", dict(query="Where did Marie Curie work?", language="English",
                                 examples="\n".join(PROMPTS["keywords_extraction_examples"]))),
    ("rag_response", dict(response_type="Multiple Paragraphs", user_prompt="n/a", context_data=TEXT)),
])
def test_stock_prompts_round_trip(key, values):
    text = sanitize(PROMPTS[key].format(**values))
    recovered = invert(PROMPTS[key], text)
    assert recovered == {k: str(v) for k, v in values.items() if k in fields(PROMPTS[key])}


def test_a_text_not_rendered_from_the_template_is_refused():
    assert invert(PROMPTS["entity_extraction_user_prompt"], "Extract entities from: " + TEXT) is None
    assert invert("{a} and {a}", "x and y") is None
    assert invert("{0} positional", "x positional") is None


def test_the_candidate_renders_as_lightrag_would_send_it_after_prompts_update():
    system, user = extraction_call()
    shape, values = recover(SHAPES["entity_extraction"], PROMPTS, user, system, None, {})
    assert values["input_text"] == TEXT and shape.history is None
    sent = render(shape, values, PROMPTS, candidate(), user, system, None)
    want_system, want_user = extraction_call({**PROMPTS, **candidate()})
    assert sent == (want_user, want_system, None)
    assert MARKER in sent[1] and "(no more examples)" in sent[1]
    # promptloop's own rendering of the same PROMPTS (what evaluation scores) agrees
    messages = lb.extraction({**PROMPTS, **candidate()}).render(input_text=TEXT)
    assert [m["content"] for m in messages] == [want_system, want_user]


def test_a_gleaning_call_is_recognised_and_its_history_re_rendered():
    system, user = extraction_call()
    cont = sanitize(PROMPTS["entity_continue_extraction_user_prompt"].format(**context()))
    history = [{"role": "user", "content": user}, {"role": "assistant", "content": "entity<|#|>Marie Curie"}]
    shape, values = recover(SHAPES["entity_extraction"], PROMPTS, cont, system, history, {})
    assert shape.history == "entity_extraction_user_prompt" and values["input_text"] == TEXT
    new_prompt, new_system, new_history = render(shape, values, PROMPTS, candidate(), cont, system, history)
    assert new_prompt == cont and MARKER in new_system
    assert new_history[0]["content"] == extraction_call({**PROMPTS, **candidate()})[1] and new_history[1] == history[1]
    assert history[0]["content"] == user  # LightRAG's own list is left as it was


def test_a_variant_with_an_unknown_placeholder_or_no_keys_for_the_call_does_not_render():
    system, user = extraction_call()
    shape, values = recover(SHAPES["entity_extraction"], PROMPTS, user, system, None, {})
    bad = dict(candidate(), entity_extraction_system_prompt="{unknown} " + PROMPTS["entity_extraction_system_prompt"])
    with pytest.raises(KeyError):
        render(shape, values, PROMPTS, bad, user, system, None)
    with pytest.raises(ValueError):
        render(shape, values, PROMPTS, {"rag_response": "x"}, user, system, None)


def test_other_families_are_recovered():
    summary = sanitize(PROMPTS["summarize_entity_descriptions"].format(
        description_type="entity", description_name="Marie Curie", description_list='{"Description": "A"}',
        summary_length=200, language="English"))
    shape, values = recover(SHAPES["summarization"], PROMPTS, summary, None, None, {})
    assert values["description_name"] == "Marie Curie"
    kw = PROMPTS["keywords_extraction"].format(query="Where?", language="English",
                                               examples="\n".join(PROMPTS["keywords_extraction_examples"]))
    assert recover(SHAPES["query_processing"], PROMPTS, kw, None, None, {})[1]["query"] == "Where?"
    system = PROMPTS["naive_rag_response"].format(response_type="Bullets", user_prompt="n/a", content_data="ctx")
    shape, values = recover(SHAPES["answer_generation"], PROMPTS, "Where?", system, None, {})
    assert shape.system == "naive_rag_response" and values["query"] == "Where?"
    assert recover(SHAPES["answer_generation"], PROMPTS, "Where?", "You are a custom system prompt.", None, {}) is None


def test_other_families_render_as_lightrag_would_after_prompts_update():
    keys = ("keywords_extraction", "keywords_extraction_examples", "summarize_entity_descriptions", "rag_response")
    variant = {k: [e + " (variant)" for e in PROMPTS[k]] if isinstance(PROMPTS[k], list)
               else "---Variant---\n" + PROMPTS[k] for k in keys}
    new = {**PROMPTS, **variant}

    def keywords(p):  # lightrag.operate.extract_keywords_only: not stripped
        return p["keywords_extraction"].format(query="Where?", language="English",
                                               examples="\n".join(p["keywords_extraction_examples"]))

    def summary(p):  # _summarize_descriptions: stripped by use_llm_func_with_cache
        return sanitize(p["summarize_entity_descriptions"].format(
            description_type="entity", description_name="Curie", description_list='{"Description": "A"}\n',
            summary_length=200, language="English"))

    def answer(p):  # kg_query: the system prompt, not stripped; a context ending in a newline
        return p["rag_response"].format(response_type="Bullets", user_prompt="n/a", context_data="ctx\n\n")

    for family, prompt, system, want in (
            ("query_processing", keywords(PROMPTS), None, (keywords(new), None)),
            ("summarization", summary(PROMPTS), None, (summary(new), None)),
            ("answer_generation", "Where?", answer(PROMPTS), ("Where?", answer(new)))):
        shape, values = recover(SHAPES[family], PROMPTS, prompt, system, None, {})
        assert render(shape, values, PROMPTS, variant, prompt, system, None) == (*want, None), family
