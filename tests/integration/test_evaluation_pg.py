"""Evaluation on a real PostgreSQL: concurrent finishers aggregate a batch exactly once."""

import json
import threading

import pytest
from sqlalchemy import func, select

from shared.datasets import import_datasets
from shared.evaluation import (create_evaluation_batch, dataset_examples, find_variants, finish_evaluation_batch,
                               register_baselines, run_evaluation_chunk)
from shared.models import EvaluationBatch, EvaluationResult
from shared.settings import load_settings

pytestmark = pytest.mark.integration

SENTENCES = ["John Smith works for Acme Corp in Boston .", "Mary Jones lives in Havana .", "the weather was fine ."]


@pytest.fixture
def engine(pg_engine):
    return pg_engine


def import_conll(engine, folder):
    (folder / "conll04").mkdir(parents=True)
    docs = [{"tokens": s.split(), "orig_id": i, "relations": [], "entities": []} for i, s in enumerate(SENTENCES)]
    (folder / "conll04" / "conll04_dev.json").write_text(json.dumps(docs))
    import_datasets(engine, folder, ["conll04"])


def scored_batches(engine, n: int) -> list[int]:
    """``n`` batches whose every chunk has run (the Havana example fails), none aggregated yet."""
    settings = load_settings(PROMPTLOOP_MODELS={"3b": "scripted/extract?fail_on=Havana"})
    examples = dataset_examples(engine, ["entity_extraction"])
    variants = find_variants(engine, ["entity_extraction"], ["3b"])
    ids = []
    for _ in range(n):
        batch_id, chunks = create_evaluation_batch(engine, examples, variants, batch_size=2)
        for c in chunks:
            run_evaluation_chunk(engine, settings, c["batch_id"], c["variant_id"], c["examples"])
        ids.append(batch_id)
    return ids


def finish_at_once(engine, batch_id: int, callers: int = 2) -> tuple[list, list]:
    """``callers`` threads call finish on the same batch at the same moment; (their results, their errors)."""
    start = threading.Barrier(callers)
    results, errors = [], []

    def call():
        start.wait()
        try:
            results.append(finish_evaluation_batch(engine, batch_id))
        except Exception as exc:  # noqa: BLE001 - the test reports whatever a finisher raised
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results, errors


def test_concurrent_finishers_aggregate_each_batch_once(engine, tmp_path):
    """The chord callback and the pipeline both finish a batch: on PostgreSQL, pairs used to collide."""
    import_conll(engine, tmp_path / "datasets")
    register_baselines(engine, ["3b"], ["entity_extraction"])
    batch_ids = scored_batches(engine, 50)

    failures = {}
    for batch_id in batch_ids:
        results, errors = finish_at_once(engine, batch_id)
        if errors:
            failures[batch_id] = [f"{type(e).__name__}: {str(e).splitlines()[0]}" for e in errors]
            continue
        assert len(results) == 2 and results[0] == results[1] and results[0], batch_id
    assert not failures, f"{len(failures)} of {len(batch_ids)} pairs raised: {next(iter(failures.values()))}"

    with engine.connect() as conn:
        statuses = conn.execute(select(EvaluationBatch.status).where(EvaluationBatch.id.in_(batch_ids))).scalars()
        assert set(statuses) == {"done"}
        per_batch = conn.execute(select(EvaluationResult.batch_id, func.count()).group_by(EvaluationResult.batch_id)
                                 .where(EvaluationResult.batch_id.in_(batch_ids))).all()
    metrics = len(results[0])
    assert metrics > 1 and {n for _, n in per_batch} == {metrics} and len(per_batch) == len(batch_ids)


def test_a_reasoning_models_answers_are_stored_on_postgresql(engine, tmp_path, monkeypatch):
    """Dict answers with reasoning, one with a NUL byte (PostgreSQL refuses those): no score is lost."""
    from sqlalchemy.orm import Session

    from shared.models import EvaluationScore
    from tests.unit.shared.openai_stub import REASONING, reasoning_server

    monkeypatch.setenv("OPENAI_API_KEY", "stub")
    folder = tmp_path / "datasets"
    (folder / "conll04").mkdir(parents=True)
    docs = [{"tokens": s.split(), "orig_id": i, "relations": [], "entities": []}
            for i, s in enumerate(["Ada Lovelace met Charles Babbage .", "Kari Nordmann lives in Oslo .",
                                   "Mary Jones lives in Havana ."])]
    (folder / "conll04" / "conll04_dev.json").write_text(json.dumps(docs))
    import_datasets(engine, folder, ["conll04"])
    register_baselines(engine, ["r1"], ["entity_extraction"])
    batch_id, chunks = create_evaluation_batch(engine, dataset_examples(engine, ["entity_extraction"]),
                                               find_variants(engine, ["entity_extraction"], ["r1"]), batch_size=10)
    with reasoning_server() as url:
        settings = load_settings(PROMPTLOOP_MODELS={"r1": "openai/stub-reasoner"}, PROMPTLOOP_LM_API_BASE=url)
        counts = run_evaluation_chunk(engine, settings, batch_id, chunks[0]["variant_id"], chunks[0]["examples"])
    assert (counts["scored"], counts["failed"]) == (2, 1)
    with Session(engine) as session:
        rows = session.scalars(select(EvaluationScore).order_by(EvaluationScore.example_id)).all()
    assert [r.ok for r in rows] == [True, True, False]
    assert "Kari Nordmann" in rows[1].output and "\x00" not in rows[1].output
    assert rows[0].reasoning == rows[1].reasoning == REASONING
    assert "no text in the answer" in rows[2].error
