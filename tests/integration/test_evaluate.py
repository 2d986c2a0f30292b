"""`promptloop evaluate` on real worker processes: two workers give the numbers one gives."""

import json
import subprocess
import sys

import pytest
from sqlalchemy import select

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
