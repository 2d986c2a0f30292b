"""Demonstration search: gold demos appended to LightRAG's examples, or put in their place."""

import pytest

from shared.evaluation import ExampleRef, register_baselines
from shared.optimize import demo_search
from shared.optimize.base import RunContext
from shared.optimize.driver import run_optimization
from shared.optimize.promptset import components
from shared.optimize.start import start_optimization
from shared.optimize.variants import active_variant
from shared.families.template import PromptTemplate


def context(settings, engine, **options):
    register_baselines(engine, ["m"], ["entity_extraction"])
    parent = PromptTemplate.from_json(active_variant(engine, "entity_extraction", "m").template)
    return RunContext(engine=engine, settings=settings, run_id=1, family="entity_extraction", model="m", seed=0,
                      parent=parent, options=options, train=[ExampleRef("dataset", 1, "entity_extraction")])


def test_kept_parent_demos_come_first_and_dropped_ones_are_gone(env):
    settings, engine = env
    keep = context(settings, engine, demo_counts=[3])
    parent_demos = components("entity_extraction", keep.parent)["demos"]
    kept = demo_search.propose(keep, history=[{}])
    dropped = demo_search.propose(context(settings, engine, demo_counts=[3], parent_demos="drop"), history=[{}])
    kept_demos = components("entity_extraction", kept.template)["demos"]
    dropped_demos = components("entity_extraction", dropped.template)["demos"]
    assert kept_demos[:len(parent_demos)] == parent_demos and len(kept_demos) == len(parent_demos) + 3
    assert dropped_demos == kept_demos[len(parent_demos):]  # the same seeded picks, without LightRAG's
    assert dropped.config == kept.config
    assert len(dropped.template.system) < len(kept.template.system)


def test_an_unknown_parent_demos_mode_is_one_clear_error(env):
    settings, engine = env
    with pytest.raises(ValueError, match="parent_demos must be 'keep' or 'drop', not 'replace'"):
        demo_search.propose(context(settings, engine, parent_demos="replace"), history=[{}])


def test_a_run_with_dropped_parent_demos_registers_a_candidate_without_them(env):
    settings, engine = env
    run_id = start_optimization(engine, settings, family="entity_extraction", model="m", optimizer="demos",
                                dataset="conll04", n_train=4, n_val=4, budget_calls=100, seed=1,
                                objective={"entity_f1": 0.5, "format_compliance": 0.5},
                                optimizer_options={"candidates": 3, "parent_demos": "drop"})
    out = run_optimization(engine, settings, run_id)
    assert out["status"] == "done" and out["candidate"], out
    from sqlalchemy import select

    from shared.models import PromptVariant
    with engine.connect() as conn:
        template = PromptTemplate.from_json(conn.execute(
            select(PromptVariant.template).where(PromptVariant.id == out["candidate"])).scalar_one())
    demos = components("entity_extraction", template)["demos"]
    assert demos and all("<Input Text>" in d for d in demos)
    assert not set(demos) & set(components("entity_extraction", context(settings, engine).parent)["demos"])


def test_demos_the_parent_already_shows_are_not_drawn_again(env):
    settings, engine = env
    first = demo_search.propose(context(settings, engine, demo_counts=[2]), history=[{}])
    shown = context(settings, engine, demo_counts=[2])
    shown = RunContext(**{**shown.__dict__, "parent": first.template})
    again = demo_search.propose(shown, history=[{}])  # same seed and trial, drawn from the pool less the shown ones
    assert again is not None
    assert not set(again.config["demo_ids"]) & set(first.config["demo_ids"])
    demos = components("entity_extraction", again.template)["demos"]
    assert len(demos) == len(set(demos))


def test_a_parent_that_shows_every_labelled_example_is_one_clear_error(env):
    settings, engine = env
    everything = demo_search.propose(context(settings, engine, demo_counts=[10_000]), history=[{}])
    shown = context(settings, engine)
    shown = RunContext(**{**shown.__dict__, "parent": everything.template})
    with pytest.raises(ValueError, match="the parent already shows every labelled entity_extraction example"):
        demo_search.propose(shown, history=[{}])


def test_a_new_run_stores_grounded_descriptions_and_an_old_one_keeps_type(env):
    settings, engine = env
    assert demo_search.prepare("entity_extraction", {"candidates": 2})["descriptions"] == "grounded"
    assert demo_search.prepare("entity_extraction", {"descriptions": "type"})["descriptions"] == "type"
    with pytest.raises(ValueError, match="descriptions are one of type, grounded, relations, not 'long'"):
        demo_search.prepare("entity_extraction", {"descriptions": "long"})
    old = demo_search.propose(context(settings, engine, demo_counts=[2]), history=[{}])  # stored before the option
    new = demo_search.propose(context(settings, engine, demo_counts=[2], descriptions="grounded"), history=[{}])
    assert old.config == new.config  # the same seeded picks, described differently
    for proposal in (old, new):
        for demo in proposal.demos:
            assert demo["extraction"].count("{tuple_delimiter}") and demo["input_text"] in proposal.template.system
    old_rows = [r for d in old.demos for r in d["extraction"].splitlines() if r.startswith("entity")]
    new_rows = [r for d in new.demos for r in d["extraction"].splitlines() if r.startswith("entity")]
    assert old_rows and all(r.endswith("named in the text.") for r in old_rows)
    quoted = [r.split("{tuple_delimiter}")[3].rstrip(".") for r in new_rows if not r.endswith("named in the text.")]
    texts = " ".join(d["input_text"] for d in new.demos)
    assert quoted and all(q.split()[0] in texts.split() for q in quoted)


def test_grounded_descriptions_quote_the_words_around_the_mention():
    from shared.optimize.demos import extraction_rows

    text = "The rig was towed to Morgan City , La. , said Chevron spokesman Jonathan Lifa ."
    reference = {"entities": [["Jonathan Lifa", "Peop"], ["Morgan City", "Loc"], ["Texaco", "Org"]], "relations": []}
    rows = [r.split("{tuple_delimiter}")[3] for r in extraction_rows(reference, text, "grounded")]
    assert rows == ["said Chevron spokesman Jonathan Lifa.", "was towed to Morgan City , La.",
                    "Texaco is an organization named in the text."]  # not in the text: the type sentence


def test_relations_descriptions_say_the_entitys_first_gold_relation():
    from shared.metrics import description_grounding, parse_extraction
    from shared.optimize.demos import extraction_rows

    text = "In 1879 , humorist Will Rogers was born in Oologah , Okla . , Chevron said ."
    reference = {"entities": [["Will Rogers", "Peop"], ["Oologah , Okla", "Loc"], ["Chevron", "Org"],
                              ["1879", "Other"]],
                 "relations": [["Will Rogers", "Oologah , Okla", "Live_In"]]}
    rows = extraction_rows(reference, text, "relations")
    assert [r.split("{tuple_delimiter}")[3] for r in rows[:4]] == [
        "Will Rogers is a person who lives in Oologah , Okla.",  # the head of the relation
        "Oologah , Okla is a location where Will Rogers lives.",  # its tail
        "Chevron is an organization named in the text.",  # in no relation: the type sentence
        "1879 is named in the text."]
    assert rows[4].endswith("Will Rogers lives in Oologah , Okla.")  # relation rows are as before
    parsed = parse_extraction("\n".join(rows).replace("{tuple_delimiter}", "<|#|>") + "\n<|COMPLETE|>")
    described = [(n, t, parsed.descriptions.get(n, "")) for n, t in parsed.entities]
    assert len(described) == 4 and description_grounding(described, text) == 0.5  # two of the four say something


def test_relations_descriptions_end_once_after_a_name_ending_in_a_period():
    from shared.optimize.demos import extraction_rows

    reference = {"entities": [["Gen. Grant", "Peop"], ["Richmond , Va.", "Loc"]],
                 "relations": [["Gen. Grant", "Richmond , Va.", "Live_In"]]}
    rows = extraction_rows(reference, "Gen. Grant lived in Richmond , Va. then .", "relations")
    assert [r.split("{tuple_delimiter}")[3] for r in rows[:2]] == [
        "Gen. Grant is a person who lives in Richmond , Va.", "Richmond , Va. is a location where Gen. Grant lives."]
