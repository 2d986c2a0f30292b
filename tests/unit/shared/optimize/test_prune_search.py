"""Instruction pruning: rules left out, placeholders and demonstrations kept, a shorter prompt found."""

import shutil

import pytest
from lightrag.prompt import PROMPTS
from sqlalchemy import select

from shared.db import make_engine
from shared.evaluation import register_baselines
from shared.families.template import PromptTemplate
from shared.models import PromptVariant
from shared.optimize import prune_search
from shared.optimize.base import RunContext
from shared.optimize.demos import extraction_demo
from shared.optimize.driver import run_optimization
from shared.optimize.promptset import _placeholders, check_invariants, components, rebuild
from shared.optimize.start import start_optimization
from shared.optimize.variants import active_variant, register_candidate
from shared.settings import load_settings

FAMILY = "entity_extraction"
INSTRUCTION = PROMPTS["entity_extraction_system_prompt"]
GOLD = [("Lee Harvey Oswald shot John F. Kennedy in Dallas .",
         {"entities": [["Lee Harvey Oswald", "Peop"], ["John F. Kennedy", "Peop"], ["Dallas", "Loc"]],
          "relations": [["Lee Harvey Oswald", "John F. Kennedy", "Kill"]]}),
        ("Tim Cook works for Apple in Cupertino .",
         {"entities": [["Tim Cook", "Peop"], ["Apple", "Org"], ["Cupertino", "Loc"]],
          "relations": [["Tim Cook", "Apple", "Work_For"]]})]


def test_no_droppable_unit_holds_a_placeholder_and_dropping_them_all_keeps_every_one():
    found = prune_search.units(INSTRUCTION)
    lines = INSTRUCTION.split("\n")
    assert len(found) > 10 and all(lines[a].lstrip().startswith("- ") for a, _ in found)
    pruned = prune_search.drop(INSTRUCTION, found)
    assert _placeholders(pruned) == _placeholders(INSTRUCTION)
    assert len(pruned) < 0.5 * len(INSTRUCTION)
    assert "3. **Record Types:**" not in pruned  # a rule whose bullets all went goes with them
    assert "2. **Output Format:**" in pruned and "Output at most {max_total_records} total rows" in pruned


def test_a_nested_list_goes_with_the_line_that_introduces_it():
    text = "1. **Rule:**\n  - keep me {x}\n  - parent:\n    - child\n  - sibling\n\n2. **Other:** {y}\n"
    assert prune_search.units(text) == [(2, 4), (4, 5)]  # never the child alone
    assert prune_search.drop(text, [(2, 4)]) == "1. **Rule:**\n  - keep me {x}\n  - sibling\n\n2. **Other:** {y}\n"


def test_a_bare_heading_left_empty_goes_in_either_style():
    compact = "---Instructions---\n1. Keep: the {x}.\n2. Context & Objectivity:\n  - a\n  - b\n3. Last: {y}\n"
    assert prune_search.units(compact) == [(3, 4), (4, 5)]
    assert prune_search.drop(compact, [(3, 4), (4, 5)]) == "---Instructions---\n1. Keep: the {x}.\n2. Last: {y}\n"
    spaced = "x {a}\n\n2. Content & Grounding:\n  - a\n\n3. **Last:** {y}\n"
    assert prune_search.drop(spaced, prune_search.units(spaced)) == "x {a}\n\n2. **Last:** {y}\n"


def test_numbering_closes_the_gaps_of_dropped_rules_in_each_list_and_nowhere_else():
    text = ("1. One: a.\n  1. sub a\n  2. sub b\n2. Two: b.\n\n3. Three: {c}\n---Next---\n"
            "1. Again: d.\n2. More: e.\n```\n1. fenced\n3. fenced\n```\n3. Last: {f}\n")
    assert prune_search.units(text) == [(0, 3), (3, 4), (7, 8), (8, 9)]
    assert prune_search.drop(text, [(3, 4), (7, 8)]) == (
        "1. One: a.\n  1. sub a\n  2. sub b\n\n2. Three: {c}\n---Next---\n"
        "1. More: e.\n```\n1. fenced\n3. fenced\n```\n2. Last: {f}\n")  # a fenced example is a rule's
    restarted = "---I---\n1. A: a.\n2. B: b.\n\n1. C: c.\n2. D: d.\n"  # two lists, one indent
    assert prune_search.drop(restarted, [(1, 2)]) == "---I---\n1. B: b.\n\n1. C: c.\n2. D: d.\n"
    bulleted = "---I---\n1. Head:\n- a\n- b\n2. Rule: x.\n3. Rule: y.\n"  # bullets at the rules' indent
    assert prune_search.drop(bulleted, [(2, 3), (3, 4), (4, 5)]) == "---I---\n1. Rule: y.\n"
    pruned = prune_search.drop(INSTRUCTION, prune_search.units(INSTRUCTION)[::2])
    numbers = [int(line.split(".")[0]) for line in pruned.split("\n") if line[:1].isdigit()]
    assert numbers == list(range(1, len(numbers) + 1))


def test_a_fenced_example_and_the_items_of_a_rule_are_never_pruned_apart():
    answer = PROMPTS["rag_response"]
    lines = answer.split("\n")
    for a, b in prune_search.units(answer):
        assert not any("Document Title One" in line or "```" in line for line in lines[a:b])
    pruned = prune_search.drop(answer, prune_search.units(answer))
    assert "- [1] Document Title One\n- [2] Document Title Two" in pruned
    keywords = PROMPTS["keywords_extraction"]
    rule = next((a, b) for a, b in prune_search.units(keywords) if "Exact JSON Shape" in keywords.split("\n")[a])
    assert rule[1] - rule[0] == 3  # the rule and both keys it lists, as one unit


def test_trials_draw_distinct_subsets_and_stop_when_none_is_left():
    drawn = prune_search._subsets(seed=0, n_units=3, shares=[0.35], trials=10)
    assert len(drawn) == 3 and len({pick for _, pick in drawn}) == 3  # C(3, 1): three subsets of one unit
    assert prune_search._subsets(seed=0, n_units=3, shares=[0.35], trials=2) == drawn[:2]  # seeded, resumable


@pytest.fixture
def demos_parent(conll_db, tmp_path):
    """A demos-optimized variant (two worked examples) and a model that a prompt this long overwhelms."""
    path = tmp_path / "t.db"
    shutil.copy(conll_db, path)
    engine = make_engine(f"sqlite:///{path}")
    register_baselines(engine, ["m"], [FAMILY])
    baseline = active_variant(engine, FAMILY, "m")
    base = PromptTemplate.from_json(baseline.template)
    template = rebuild(FAMILY, base, demos=components(FAMILY, base)["demos"] + [extraction_demo(t, r) for t, r in GOLD])
    with engine.begin() as conn:
        parent_id = register_candidate(conn, FAMILY, "m", template, baseline.id)
    # Overwhelmed by this parent's prompt, not by one ~1,000 characters shorter.
    limit = len(template.system) + len(template.user) - 1000
    settings = load_settings(DATABASE_URL=f"sqlite:///{path}",
                             PROMPTLOOP_MODELS={"m": f"scripted/follow?max_prompt_chars={limit}"})
    yield settings, engine, parent_id, template
    engine.dispose()


def test_proposals_are_seeded_and_keep_the_parents_demos(demos_parent):
    settings, engine, parent_id, template = demos_parent
    ctx = RunContext(engine=engine, settings=settings, run_id=1, family=FAMILY, model="m", seed=4, parent=template,
                     options={}, train=[])
    first, again = prune_search.propose(ctx, [{}] * 3), prune_search.propose(ctx, [{}] * 3)
    assert first.config == again.config and first.template == again.template
    assert components(FAMILY, first.template)["demos"] == components(FAMILY, template)["demos"]
    assert check_invariants(FAMILY, template, first.template) == []
    assert len(first.template.system) < len(template.system)
    assert [d["input_text"] for d in first.demos] == [text for text, _ in GOLD]  # the program keeps the demos
    others = [prune_search.propose(ctx, [{}] * t).config["dropped_lines"] for t in range(1, 13)]
    assert len({str(o) for o in others}) == 12
    assert prune_search.propose(ctx, [{}] * 13) is None  # 12 candidates by default


def test_pruning_a_demos_variant_finds_a_shorter_prompt_the_model_follows(demos_parent):
    settings, engine, parent_id, template = demos_parent
    run_id = start_optimization(engine, settings, family=FAMILY, model="m", optimizer="prune", dataset="conll04",
                                n_train=4, n_val=4, budget_calls=100, seed=2, parent_id=parent_id,
                                objective={"format_compliance": 1.0}, optimizer_options={"candidates": 4})
    out = run_optimization(engine, settings, run_id)
    assert out["status"] == "done" and out["candidate"], out
    assert out["validation"]["parent"]["format_compliance"] == 0.0
    assert out["validation"]["candidate"]["format_compliance"] == 1.0
    with engine.connect() as conn:
        row = conn.execute(select(PromptVariant.template, PromptVariant.parent_id)
                           .where(PromptVariant.id == out["candidate"])).one()
    pruned = PromptTemplate.from_json(row.template)
    assert row.parent_id == parent_id
    assert components(FAMILY, pruned)["demos"] == components(FAMILY, template)["demos"]
    assert len(pruned.system) < len(template.system) - 1000


def test_a_parent_of_another_family_or_model_is_refused_in_one_sentence(demos_parent):
    settings, engine, parent_id, _ = demos_parent
    with pytest.raises(ValueError, match=f"variant {parent_id} is entity_extraction on m, not summarization on m"):
        start_optimization(engine, settings, family="summarization", model="m", optimizer="prune",
                           dataset="scitldr", parent_id=parent_id)
    with pytest.raises(ValueError, match="no variant 999999"):
        start_optimization(engine, settings, family=FAMILY, model="m", optimizer="prune", parent_id=999999)
