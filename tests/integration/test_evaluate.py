"""`promptloop evaluate` on real worker processes: two workers give the numbers one gives."""

import json
import subprocess
import sys

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.models import EvaluationResult

from .conftest import ROOT

pytestmark = pytest.mark.integration

MODELS = json.dumps({"3b": "scripted/extract?fail_on=Havana&latency_ms=20"})


def write_conll(folder, n=24):
    """A small CoNLL04-format file: real sentences when the shared datasets are here, else built ones."""
    real = ROOT.parent / "shared" / "datasets" / "conll04" / "conll04_dev.json"
    if real.exists():
        docs = json.loads(real.read_text())[:n]
    else:
        docs = [{"tokens": f"Person{i} Smith visited Havana with Acme{i} Corp .".split(), "orig_id": i,
                 "entities": [{"type": "Peop", "start": 0, "end": 2}, {"type": "Loc", "start": 3, "end": 4}],
                 "relations": []} for i in range(n)]
    (folder / "conll04").mkdir(parents=True)
    (folder / "conll04" / "conll04_dev.json").write_text(json.dumps(docs))


def cli(stack, *args):
    run = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=stack.env(),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout


def results(stack, batch_id):
    with stack.engine.connect() as conn:
        return sorted((r.metric, r.mean, r.std, r.n, r.n_failed) for r in conn.execute(
            select(EvaluationResult).where(EvaluationResult.batch_id == batch_id)))


def test_two_workers_give_the_numbers_one_gives(stack, tmp_path):
    stack.extra_env["PROMPTLOOP_MODELS"] = MODELS
    write_conll(tmp_path / "datasets")
    cli(stack, "init")
    cli(stack, "datasets", "import", "--path", str(tmp_path / "datasets"), "--name", "conll04")

    one = stack.start_worker("solo", queues="evaluate")
    out = cli(stack, "evaluate", "--dataset", "conll04", "--family", "entity_extraction,relationship_extraction",
              "--batch-size", "4", "--hours", "1")
    assert "evaluation batch 1" in " ".join(out.split())
    stack.kill(one, 15)

    stack.start_worker("left", queues="evaluate")
    stack.start_worker("right", queues="evaluate")
    cli(stack, "evaluate", "--dataset", "conll04", "--family", "entity_extraction,relationship_extraction",
        "--batch-size", "4", "--hours", "1")

    first, second = results(stack, 1), results(stack, 2)
    assert first and first == second
    overall = [r for r in first if r[0] == "overall"]
    assert len(overall) == 2 and all(n + failed == 24 for _, _, _, n, failed in overall)
    for name in ("left", "right"):  # the second batch really was split
        assert "evaluate_chunk" in (stack.workdir / f"{name}.log").read_text()


SEED_FLOW = """
import asyncio, json
from tasks.evaluate import production_pipeline

async def main():
    pipeline = production_pipeline()
    examples = await pipeline.collect_production_data(hours_back=24, models=["3b"])
    batches = await pipeline.create_evaluation_batch(examples, batch_size=2)
    results = await pipeline.run_evaluation_batch(batches[0])
    top = await pipeline.get_top_performing_variants(days_back=7)
    print(json.dumps({"examples": len(examples), "metrics": sorted({r["metric"] for r in results}),
                      "top": [t["name"] for t in top]}))

asyncio.run(main())
"""


def test_the_seeds_pipeline_api_on_workers_over_ingested_examples(stack):
    from promptloop_client import Client

    stack.extra_env["PROMPTLOOP_MODELS"] = MODELS
    cli(stack, "init")
    stack.start_worker("ingester")
    stack.start_beat()
    stack.start_worker("evaluator", queues="evaluate")
    client = Client(stack.redis.url)
    for i in range(5):  # production examples, as the LightRAG adapter sends them
        client.example("entity_extraction", "3b", "baseline", f"Person{i} Smith joined Acme Corp in Boston .", "out")
    assert client.close(10)
    stack.wait_for(lambda: stack.counts()["example"] == 5, 60, "5 examples ingested")

    run = subprocess.run([sys.executable, "-c", SEED_FLOW], cwd=ROOT, env=stack.env(), capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["examples"] == 5 and "format_compliance" in out["metrics"] and out["top"] == ["baseline"]
    assert "evaluate_chunk" in (stack.workdir / "evaluator.log").read_text()


def write_docs(folder, sentences):
    (folder / "conll04").mkdir(parents=True)
    docs = [{"tokens": s.split(), "orig_id": i, "entities": [], "relations": []} for i, s in enumerate(sentences)]
    (folder / "conll04" / "conll04_dev.json").write_text(json.dumps(docs))


def test_a_chunk_that_kills_its_worker_or_hangs_ends_with_its_examples_failed(stack, tmp_path):
    """Havana SIGKILLs the worker's process each time; Boston never answers. The batch still completes."""
    from shared.models import EvaluationScore

    stack.extra_env["PROMPTLOOP_MODELS"] = json.dumps({"3b": "scripted/extract?crash_on=Havana&hang_on=Boston"})
    stack.extra_env["PROMPTLOOP_CHUNK_TIME_LIMIT_S"] = "4"
    write_docs(tmp_path / "datasets", ["Ann Lee flew to Havana .", "Tom Fox sang .",
                                       "Ed Ray left Boston .", "Sue Kim ran ."])
    cli(stack, "init")
    cli(stack, "datasets", "import", "--path", str(tmp_path / "datasets"), "--name", "conll04")
    stack.start_worker("evaluator", queues="evaluate")
    cli(stack, "evaluate", "--dataset", "conll04", "--family", "entity_extraction", "--batch-size", "2",
        "--hours", "1", "--timeout", "150")

    with Session(stack.engine) as session:
        rows = session.scalars(select(EvaluationScore).order_by(EvaluationScore.example_id)).all()
    assert [r.ok for r in rows] == [False, True, False, False]
    assert rows[0].error == "chunk killed its worker 3 times while scoring this example"
    assert "SoftTimeLimitExceeded" in rows[2].error  # the hung call, interrupted
    assert rows[3].error.startswith("chunk time limit (4 s) reached")
    log = (stack.workdir / "evaluator.log").read_text()
    assert log.count("WorkerLostError") >= 3  # the worker's process really died, three times
