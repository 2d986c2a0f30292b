"""The production data pipeline in one process (SQLite, scripted LM); workers split it in integration."""

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from shared.datasets import import_datasets
from shared.db import make_engine
from shared.evaluation import (collect_production_data, create_evaluation_batch, dataset_examples, find_variants,
                               finish_evaluation_batch, get_top_performing_variants, register_baselines,
                               run_evaluation_chunk)
from shared.migrate import upgrade
from shared.models import EvaluationScore, LMCacheEntry, ProductionExample
from shared.settings import load_settings

SENTENCES = [
    ("John Smith works for Acme Corp in Boston .", [["John Smith", "Peop"], ["Acme Corp", "Org"], ["Boston", "Loc"]]),
    ("Mary Jones lives in Havana .", [["Mary Jones", "Peop"], ["Havana", "Loc"]]),
    ("the weather was fine .", []),
]


@pytest.fixture
def engine(tmp_path):
    e = make_engine(f"sqlite:///{tmp_path / 'eval.db'}")
    upgrade(e)
    return e


@pytest.fixture
def settings():
    return load_settings(PROMPTLOOP_MODELS={"3b": "scripted/extract?fail_on=Havana"})


@pytest.fixture
def conll(tmp_path):
    folder = tmp_path / "datasets"
    (folder / "conll04").mkdir(parents=True)
    docs = [{"tokens": s.split(), "orig_id": i, "relations": [],
             "entities": [{"type": t, "start": s.split().index(n.split()[0]),
                           "end": s.split().index(n.split()[0]) + len(n.split())} for n, t in ents]}
            for i, (s, ents) in enumerate(SENTENCES)]
    (folder / "conll04" / "conll04_dev.json").write_text(json.dumps(docs))
    return folder


def run_all(engine, settings, chunks):
    return [run_evaluation_chunk(engine, settings, c["batch_id"], c["variant_id"], c["examples"]) for c in chunks]


def test_imported_examples_are_scored_failures_recorded_and_results_aggregated(engine, settings, conll):
    assert import_datasets(engine, conll, ["conll04"]) == {"conll04": 9}
    assert import_datasets(engine, conll, ["conll04"]) == {"conll04": 0}  # idempotent
    assert register_baselines(engine, ["3b"]) == 8
    examples = dataset_examples(engine, ["entity_extraction"])
    variants = find_variants(engine, ["entity_extraction"], ["3b"])
    batch_id, chunks = create_evaluation_batch(engine, examples, variants, batch_size=2)
    assert [len(c["examples"]) for c in chunks] == [2, 1]

    counts = run_all(engine, settings, chunks)
    assert sum(c["scored"] for c in counts) == 2 and sum(c["failed"] for c in counts) == 1
    with engine.connect() as conn:
        failed = conn.execute(select(EvaluationScore.error).where(EvaluationScore.ok.is_(False))).scalar_one()
    assert "scripted failure" in failed

    results = {r["metric"]: r for r in finish_evaluation_batch(engine, batch_id)}
    # John Smith / Acme Corp / Boston: all three found -> F1 1.0; "the weather" -> no entities, none gold -> 1.0
    assert results["entity_f1"]["mean"] == 1.0 and results["entity_f1"]["n"] == 2
    assert results["overall"]["n_failed"] == 1 and results["format_compliance"]["mean"] == 0.5
    assert results["entity_f1_typed"]["mean"] == 0.5  # the scripted LM types everything "other"


def test_rerunning_a_chunk_scores_nothing_twice_and_lm_calls_are_cached(engine, settings, conll):
    import_datasets(engine, conll, ["conll04"])
    register_baselines(engine, ["3b"], ["entity_extraction"])
    examples = dataset_examples(engine, ["entity_extraction"])
    variants = find_variants(engine, ["entity_extraction"], ["3b"])
    batch_id, chunks = create_evaluation_batch(engine, examples, variants, batch_size=10)
    run_all(engine, settings, chunks)
    again = run_all(engine, settings, chunks)[0]
    assert again == {"scored": 0, "failed": 0, "skipped": 3, "cached": 0}

    second_id, second_chunks = create_evaluation_batch(engine, examples, variants, batch_size=10)
    counts = run_all(engine, settings, second_chunks)[0]
    assert counts["cached"] == counts["scored"] == 2
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(LMCacheEntry)).scalar_one() == 2
    assert finish_evaluation_batch(engine, batch_id) == [
        {**r, "batch_id": batch_id} for r in finish_evaluation_batch(engine, second_id)]


def test_production_examples_are_collected_by_age_model_and_length(engine):
    now = datetime.now(timezone.utc)
    rows = [("3b", now, "x" * 50), ("7b", now, "y" * 50), ("3b", now - timedelta(hours=30), "z" * 50),
            ("3b", now, "short")]
    with engine.begin() as conn:
        for i, (model, ts, text) in enumerate(rows):
            conn.execute(insert(ProductionExample).values(
                event_id=f"00000000-0000-4000-8000-{i:012d}", ts=ts, family="entity_extraction", model=model,
                variant="baseline", input=text, output="o"))
    refs = collect_production_data(engine, hours_back=24, models=["3b"], min_text_length=10)
    assert [r.id for r in refs] == [1]


def test_production_references_in_lightrag_format_are_parsed(engine, settings):
    register_baselines(engine, ["3b"], ["entity_extraction"])
    reference = "entity<|#|>John Smith<|#|>person<|#|>A man.\n<|COMPLETE|>"
    with engine.begin() as conn:
        conn.execute(insert(ProductionExample).values(
            event_id="00000000-0000-4000-8000-000000000001", ts=datetime.now(timezone.utc), family="entity_extraction",
            model="3b", variant="baseline", input="John Smith met Acme Corp .", output="o", reference=reference))
    batch_id, chunks = create_evaluation_batch(engine, collect_production_data(engine),
                                               find_variants(engine), batch_size=5)
    run_all(engine, settings, chunks)
    results = {r["metric"]: r["mean"] for r in finish_evaluation_batch(engine, batch_id)}
    assert results["entity_f1"] == pytest.approx(2 / 3)  # predicted John Smith + Acme Corp, gold John Smith


def test_top_variants_rank_by_their_latest_batch(engine, settings, conll):
    from shared.families import get_family
    from shared.models import PromptVariant

    import_datasets(engine, conll, ["conll04"])
    register_baselines(engine, ["3b"], ["entity_extraction"])
    broken = get_family("entity_extraction").baseline()
    with engine.begin() as conn:  # a variant whose prompt hides the input: the scripted LM finds nothing
        conn.execute(insert(PromptVariant).values(family="entity_extraction", model="3b", name="DSPY_A",
                                                  template=json.dumps({"system": broken.system, "user": "Extract."}),
                                                  status="candidate"))
    batch_id, chunks = create_evaluation_batch(engine, dataset_examples(engine, ["entity_extraction"]),
                                               find_variants(engine, ["entity_extraction"]), batch_size=10)
    run_all(engine, settings, chunks)
    finish_evaluation_batch(engine, batch_id)
    top = get_top_performing_variants(engine, days_back=7, family="entity_extraction")
    assert [t["name"] for t in top] == ["baseline", "DSPY_A"]
    assert top[0]["mean"] > top[1]["mean"] and top[0]["n"] == 2 and top[0]["n_failed"] == 1


def test_the_seeds_pipeline_api(engine, settings, conll):
    import asyncio

    from shared.production_pipeline import ProductionPipeline

    import_datasets(engine, conll, ["conll04"])
    register_baselines(engine, ["3b"], ["entity_extraction"])
    with engine.begin() as conn:
        conn.execute(insert(ProductionExample).values(
            event_id="00000000-0000-4000-8000-000000000009", ts=datetime.now(timezone.utc), family="entity_extraction",
            model="3b", variant="baseline", input="Ada Lovelace met Charles Babbage in London .", output="o"))
    pipeline = ProductionPipeline(engine, settings)

    async def flow():
        examples = await pipeline.collect_production_data(hours_back=24, models=["1.5b", "3b", "7b"])
        batches = await pipeline.create_evaluation_batch(examples, batch_size=50)
        results = await pipeline.run_evaluation_batch(batches[0])
        return examples, results, await pipeline.get_top_performing_variants(days_back=7)

    examples, results, top = asyncio.run(flow())
    assert len(examples) == 1
    assert {r["metric"]: r["n"] for r in results}["format_compliance"] == 1  # reference-free: no reference given
    assert "entity_f1" not in {r["metric"] for r in results}
    assert top[0]["name"] == "baseline"


def test_a_worker_without_the_model_records_failures_instead_of_crashing(engine, conll):
    import_datasets(engine, conll, ["conll04"])
    register_baselines(engine, ["9b"], ["entity_extraction"])
    batch_id, chunks = create_evaluation_batch(engine, dataset_examples(engine, ["entity_extraction"]),
                                               find_variants(engine), batch_size=10)
    counts = run_all(engine, load_settings(PROMPTLOOP_MODELS={"3b": "scripted/echo"}), chunks)[0]
    assert counts["failed"] == 3
    with engine.connect() as conn:
        assert "no model configured for '9b'" in conn.execute(select(EvaluationScore.error)).scalars().first()


def test_rankings_count_failures_as_zero(engine):
    """A variant failing 9 of 10 examples (its one success perfect) must not outrank a steady 0.8."""
    from shared.evaluation import ExampleRef
    from shared.models import PromptVariant

    template = json.dumps({"system": "", "user": "{input_text}"})
    with engine.begin() as conn:
        for name in ("flaky", "steady"):
            conn.execute(insert(PromptVariant).values(family="entity_extraction", model="3b", name=name,
                                                      template=template, status="candidate"))
    variants = find_variants(engine, ["entity_extraction"])
    refs = [ExampleRef("dataset", i, "entity_extraction") for i in range(1, 11)]
    batch_id, _ = create_evaluation_batch(engine, refs, variants, batch_size=10)
    flaky, steady = (v.id for v in variants)
    rows = [{"variant_id": steady, "example_id": i, "ok": True, "metrics": json.dumps({"overall": 0.8})}
            for i in range(1, 11)]
    rows += [{"variant_id": flaky, "example_id": 1, "ok": True, "metrics": json.dumps({"overall": 1.0})}]
    rows += [{"variant_id": flaky, "example_id": i, "ok": False, "error": "LMError: timed out"} for i in range(2, 11)]
    with engine.begin() as conn:
        conn.execute(insert(EvaluationScore), [{"batch_id": batch_id, "example_source": "dataset", "metrics": None,
                                                "error": None, **r} for r in rows])
    finish_evaluation_batch(engine, batch_id)

    top = get_top_performing_variants(engine, family="entity_extraction")
    assert [(t["name"], t["n"], t["n_failed"]) for t in top] == [("steady", 10, 0), ("flaky", 1, 9)]
    assert [t["score"] for t in top] == [pytest.approx(0.8), pytest.approx(0.1)]


def test_a_reasoning_models_dict_answers_are_scored_and_their_reasoning_kept(engine, conll, monkeypatch):
    from .openai_stub import REASONING, reasoning_server

    monkeypatch.setenv("OPENAI_API_KEY", "stub")
    import_datasets(engine, conll, ["conll04"])
    register_baselines(engine, ["r1"], ["entity_extraction"])
    batch_id, chunks = create_evaluation_batch(engine, dataset_examples(engine, ["entity_extraction"]),
                                               find_variants(engine), batch_size=10)
    with reasoning_server() as url:
        settings = load_settings(PROMPTLOOP_MODELS={"r1": "openai/stub-reasoner"}, PROMPTLOOP_LM_API_BASE=url)
        counts = run_all(engine, settings, chunks)[0]
    assert (counts["scored"], counts["failed"]) == (2, 1)  # Havana: reasoning only, no answer
    with Session(engine) as session:
        rows = session.scalars(select(EvaluationScore).order_by(EvaluationScore.example_id)).all()
    assert [r.ok for r in rows] == [True, False, True]
    assert rows[0].output.startswith("entity<|#|>John Smith") and rows[0].reasoning == REASONING
    assert "no text" in rows[1].error
    assert json.loads(rows[0].metrics)["entity_f1"] == 1.0


def _score_in_child(url: str, models: dict, chunk: dict) -> None:
    """A worker process: its own engine, one chunk."""
    from shared.evaluation import run_evaluation_chunk as run

    run(make_engine(url), load_settings(PROMPTLOOP_MODELS=models), chunk["batch_id"], chunk["variant_id"],
        chunk["examples"])


def test_a_chunk_that_kills_its_worker_is_given_up_after_three_kills(engine, conll):
    """Each run is a real process that the LM SIGKILLs on the Havana example; reruns are redeliveries."""
    import multiprocessing

    from shared.evaluation import batch_progress

    import_datasets(engine, conll, ["conll04"])
    register_baselines(engine, ["3b"], ["entity_extraction"])
    batch_id, chunks = create_evaluation_batch(engine, dataset_examples(engine, ["entity_extraction"]),
                                               find_variants(engine), batch_size=10)
    models = {"3b": "scripted/extract?crash_on=Havana"}
    exits = []
    for _ in range(6):  # a broker would redeliver forever
        child = multiprocessing.get_context("fork").Process(
            target=_score_in_child, args=(str(engine.url), models, chunks[0]))
        child.start()
        child.join(60)
        exits.append(child.exitcode)
        if child.exitcode == 0:
            break
    assert exits == [-9, -9, -9, 0]
    with Session(engine) as session:
        rows = session.scalars(select(EvaluationScore).order_by(EvaluationScore.example_id)).all()
    # Only the example that was being scored at each death fails; the others are kept or scored.
    assert [r.ok for r in rows] == [True, False, True]
    assert rows[1].error == "chunk killed its worker 3 times while scoring this example"
    done, total, _ = batch_progress(engine, batch_id)
    assert done == total == 3


def test_a_chunk_past_its_time_budget_records_the_rest_as_failed(engine, conll):
    """Slow answers (0.4 s each) against a 0.6 s budget: two examples scored, the third recorded as failed."""
    import_datasets(engine, conll, ["conll04"])
    register_baselines(engine, ["3b"], ["entity_extraction"])
    batch_id, chunks = create_evaluation_batch(engine, dataset_examples(engine, ["entity_extraction"]),
                                               find_variants(engine), batch_size=10)
    slow = load_settings(PROMPTLOOP_MODELS={"3b": "scripted/extract?latency_ms=400"})
    c = chunks[0]
    counts = run_evaluation_chunk(engine, slow, c["batch_id"], c["variant_id"], c["examples"], time_budget_s=0.6)
    assert (counts["scored"], counts["failed"]) == (2, 1)
    with engine.connect() as conn:
        error = conn.execute(select(EvaluationScore.error).where(EvaluationScore.ok.is_(False))).scalar_one()
    assert error.startswith("chunk time limit (0.6 s) reached")
