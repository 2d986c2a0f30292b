"""Candidates LightRAG can use as they are: invariants, rendering, export."""

import pytest
from lightrag.prompt import PROMPTS

from shared.families import get_family
from shared.families import lightrag_baselines as lb
from shared.optimize.demos import extraction_demo
from shared.optimize.promptset import InvalidCandidate, check_invariants, components, export_lightrag, rebuild

FAMILY = "entity_extraction"
REF = {"entities": [["John Wilkes Booth", "Peop"], ["President Lincoln", "Peop"]],
       "relations": [["John Wilkes Booth", "President Lincoln", "Kill"]]}
TEXT = "John Wilkes Booth , who assassinated President Lincoln , was an actor ."


@pytest.fixture
def parent():
    return get_family(FAMILY).baseline()


def test_demos_render_as_lightrag_rows_and_pass_the_invariants(parent):
    demos = components(FAMILY, parent)["demos"] + [extraction_demo(TEXT, REF)]
    candidate = rebuild(FAMILY, parent, demos=demos)
    assert check_invariants(FAMILY, parent, candidate) == []
    assert "relation<|#|>John Wilkes Booth<|#|>President Lincoln<|#|>killing<|#|>" in candidate.system
    assert candidate.system.count("<|COMPLETE|>") == parent.system.count("<|COMPLETE|>") + 1


def test_a_demo_with_braces_stays_a_valid_template(parent):
    ref = {"entities": [["{weird}", "Other"]], "relations": []}
    candidate = rebuild(FAMILY, parent, demos=[extraction_demo("a {weird} name", ref)])
    assert check_invariants(FAMILY, parent, candidate) == []
    assert "{weird}" in candidate.render(input_text="x")[0]["content"]


@pytest.mark.parametrize("placeholder", ["{completion_delimiter}", "{tuple_delimiter}", "{language}",
                                         "{entity_types_guidance}", "{examples}"])
def test_a_candidate_that_drops_a_placeholder_is_refused(parent, placeholder):
    instruction = components(FAMILY, parent)["instruction"].replace(placeholder, "")
    candidate = rebuild(FAMILY, parent, instruction=instruction)
    reasons = check_invariants(FAMILY, parent, candidate)
    assert any("placeholders dropped" in r and placeholder.strip("{}") in r for r in reasons)


def test_an_undoubled_brace_or_unknown_placeholder_is_refused(parent):
    instruction = components(FAMILY, parent)["instruction"]
    with pytest.raises(InvalidCandidate, match="render"):
        rebuild(FAMILY, parent, instruction=instruction + "\nOutput JSON like {\"a\": 1}")
    with pytest.raises(InvalidCandidate):
        rebuild(FAMILY, parent, instruction=instruction + "\nUse {unknown_field}.")


def test_a_tampered_stored_text_is_refused(parent):
    candidate = rebuild(FAMILY, parent, demos=[extraction_demo(TEXT, REF)])
    tampered = type(candidate)(system=candidate.system + "\nextra", user=candidate.user, lightrag=candidate.lightrag)
    assert any("not what LightRAG would render" in r for r in check_invariants(FAMILY, parent, tampered))


def test_input_field_removed_from_the_user_prompt_is_refused(parent):
    user = parent.lightrag["entity_extraction_user_prompt"].replace("{input_text}", "")
    values = {**parent.lightrag, "entity_extraction_user_prompt": user}
    candidate = lb.extraction({**PROMPTS, **values})
    assert any("input_text" in r for r in check_invariants(FAMILY, parent, candidate))


def test_export_is_what_lightrag_renders_after_prompts_update(parent, monkeypatch):
    candidate = rebuild(FAMILY, parent, demos=[extraction_demo(TEXT, REF)])
    exported = export_lightrag(candidate)
    assert set(exported) == {"entity_extraction_system_prompt", "entity_extraction_user_prompt",
                             "entity_extraction_examples"}
    patched = dict(PROMPTS)
    patched.update(exported)
    assert lb.extraction(patched).render(input_text=TEXT) == candidate.render(input_text=TEXT)


def test_promptloop_families_have_no_lightrag_export():
    with pytest.raises(ValueError, match="not one of LightRAG's prompts"):
        export_lightrag(get_family("context_compression").baseline())


def test_task_guidance_is_a_section_of_its_own_before_the_entity_types(parent):
    from shared.optimize.promptset import GUIDANCE, guidance_of, with_guidance

    instruction = components(FAMILY, parent)["instruction"]
    assert "`---Entity Types---` section below" in instruction  # LightRAG names the section in a sentence too
    candidate = with_guidance(FAMILY, parent, "Extract proper names only.")
    text = components(FAMILY, candidate)["instruction"]
    assert f"\n\n{GUIDANCE}\nExtract proper names only.\n\n---Entity Types---\n" in text
    assert "`---Entity Types---` section below" in text  # the sentence is left whole
    assert guidance_of(FAMILY, candidate) == "Extract proper names only."
    check_invariants(FAMILY, parent, candidate)


def test_guidance_spliced_into_the_sentence_by_an_older_run_is_moved_out(parent):
    from shared.optimize.promptset import GUIDANCE, guidance_of, with_guidance

    instruction = components(FAMILY, parent)["instruction"]
    at = instruction.index("---Entity Types---")  # where runs before 2026-12-01 put it: inside the sentence
    old = rebuild(FAMILY, parent, instruction=instruction[:at] + f"{GUIDANCE}\nOld rule.\n\n" + instruction[at:])
    assert guidance_of(FAMILY, old) == "Old rule."
    moved = components(FAMILY, with_guidance(FAMILY, old, "New rule."))["instruction"]
    assert moved.count(GUIDANCE) == 1 and "Old rule." not in moved
    assert moved.replace(f"{GUIDANCE}\nNew rule.\n\n", "") == instruction


def test_a_run_stored_before_the_fix_resumes_with_its_old_placement(parent):
    """Runs keep the prompts they started with: no ``guidance_at`` in their options is the old place."""
    from shared.optimize import gepa_search, mipro_search, rule_search
    from shared.optimize.promptset import GUIDANCE, guidance_placement, with_guidance

    instruction = components(FAMILY, parent)["instruction"]
    at = instruction.index("---Entity Types---")
    old = components(FAMILY, with_guidance(FAMILY, parent, "A rule.", guidance_placement({})))["instruction"]
    assert old == instruction[:at] + f"{GUIDANCE}\nA rule.\n\n" + instruction[at:]
    for module in (rule_search, gepa_search, mipro_search):
        assert guidance_placement(module.prepare(FAMILY, {})) == "header", module.NAME
    with pytest.raises(ValueError, match="task guidance goes at one of header, mention, not 'top'"):
        with_guidance(FAMILY, parent, "A rule.", "top")
