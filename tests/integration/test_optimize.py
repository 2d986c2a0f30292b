"""Optimization jobs on real worker processes: parallel runs, a killed worker, a redelivered job."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from shared.models import OptimizationRun, OptimizationTrial, PromptVariant

from .conftest import ROOT

pytestmark = pytest.mark.integration

MODELS = json.dumps({"m": "scripted/follow?latency_ms=40"})
DATASETS = ROOT.parent / "shared" / "datasets" / "conll04"


def setup_stack(stack, tmp_path):
    stack.extra_env.update(PROMPTLOOP_MODELS=MODELS, PROMPTLOOP_OPTIMIZE_LEASE_S="6")
    folder = tmp_path / "datasets" / "conll04"
    folder.mkdir(parents=True)
    for split, n in (("train", 60), ("dev", 40)):
        docs = json.loads((DATASETS / f"conll04_{split}.json").read_text())[:n]
        (folder / f"conll04_{split}.json").write_text(json.dumps(docs))
    cli(stack, "init")
    cli(stack, "datasets", "import", "--path", str(tmp_path / "datasets"), "--name", "conll04")


def cli(stack, *args, timeout=300):
    run = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=stack.env(),
                         capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout


def optimize_cmd(family, seed=0, candidates_budget=400):
    return [sys.executable, "-m", "cli.main", "optimize", "--family", family, "--model", "m", "--dataset", "conll04",
            "--train", "8", "--val", "6", "--budget-calls", str(candidates_budget), "--seed", str(seed), "--on-workers"]


def python(stack, code: str) -> str:
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=stack.env(), capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def scalar(stack, query):
    with stack.engine.connect() as conn:
        return conn.execute(query).scalar_one()


def test_two_optimizations_run_at_once_on_two_workers(stack, tmp_path):
    setup_stack(stack, tmp_path)
    stack.start_worker("opt1", queues="optimize")
    stack.start_worker("opt2", queues="optimize")
    stack.start_worker("scorer", queues="evaluate", concurrency=2)
    procs = [subprocess.Popen(optimize_cmd(f), cwd=ROOT, env=stack.env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
             for f in ("entity_extraction", "relationship_extraction")]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert all("candidate registered" in " ".join(o.split()) for o in outputs), outputs
    with stack.engine.connect() as conn:
        runs = conn.execute(select(OptimizationRun.status, OptimizationRun.lease_owner)).all()
        names = conn.execute(select(PromptVariant.family, PromptVariant.name)
                             .where(PromptVariant.status == "candidate")).all()
    assert [r.status for r in runs] == ["done", "done"]
    assert len({owner for _, owner in runs}) == 2  # two holders
    assert sorted(names) == [("entity_extraction", "DSPY_A"), ("relationship_extraction", "DSPY_A")]
    logs = [(stack.workdir / f"{w}.log").read_text() for w in ("opt1", "opt2")]
    assert all("optimize_run" in log and "succeeded" in log for log in logs), "each worker ran one optimization"
    assert "evaluate_chunk" in (stack.workdir / "scorer.log").read_text()


def pool_children(pid: int) -> list[int]:
    """Child processes of ``pid``, from /proc (no procps needed)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def kill_pool(worker) -> None:
    """SIGKILL the worker's pool processes (the ones running its tasks), as an OOM kill would; the
    worker's main process lives on and sees the loss."""
    children = []
    for _ in range(50):
        children = pool_children(worker.pid)
        if children:
            break
        time.sleep(0.1)
    assert children, "the worker has a pool process"
    for child in children:
        os.kill(child, signal.SIGKILL)


def test_a_killed_worker_resumes_from_its_checkpoint(stack, tmp_path):
    setup_stack(stack, tmp_path)
    optimizer = stack.start_worker("opt", queues="optimize")
    stack.start_worker("scorer", queues="evaluate", concurrency=2)
    follower = subprocess.Popen(optimize_cmd("entity_extraction"), cwd=ROOT, env=stack.env(),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    trials = select(func.count()).select_from(OptimizationTrial)
    stack.wait_for(lambda: scalar(stack, trials) >= 3, 240, "three trials checkpointed")
    # The process running the task dies; the worker's main process sees the loss and gives the
    # message back (acks_late + reject_on_worker_lost).
    at_kill = scalar(stack, trials)
    kill_pool(optimizer)
    out = follower.communicate(timeout=600)[0]
    assert follower.returncode == 0, out
    with stack.engine.connect() as conn:
        run = conn.execute(select(OptimizationRun.status, OptimizationRun.lease_token)).one()
        numbers = conn.execute(select(OptimizationTrial.trial).order_by(OptimizationTrial.trial)).scalars().all()
        candidates = conn.execute(select(func.count()).select_from(PromptVariant)
                                  .where(PromptVariant.status == "candidate")).scalar_one()
    assert run.status == "done" and run.lease_token >= 2, (run.status, run.lease_token, out)
    assert numbers == list(range(len(numbers))) and len(numbers) > at_kill  # resumed, none scored twice
    assert candidates == 1
    assert "WorkerLostError" in (stack.workdir / "opt.log").read_text()


SEND_TWICE = """
import json, sys
from tasks.optimize import optimize_run
run_id = int(sys.argv[1])
results = [optimize_run.delay(run_id), optimize_run.delay(run_id)]
print(json.dumps([r.get(timeout=300) for r in results]))
"""


def test_a_redelivered_job_does_not_run_twice(stack, tmp_path):
    setup_stack(stack, tmp_path)
    stack.start_worker("a", queues="optimize")
    stack.start_worker("b", queues="optimize")
    stack.start_worker("scorer", queues="evaluate", concurrency=2)
    created = python(stack, "from shared.db import get_engine\nfrom shared.settings import get_settings\n"
                            "from shared.optimize.start import start_optimization\n"
                            "print(start_optimization(get_engine(), get_settings(), family='entity_extraction', "
                            "model='m', optimizer='demos', dataset='conll04', n_train=8, n_val=6))")
    run_id = int(created.strip().splitlines()[-1])
    run = subprocess.run([sys.executable, "-c", SEND_TWICE, str(run_id)], cwd=ROOT, env=stack.env(),
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    first, second = json.loads(run.stdout.strip().splitlines()[-1])
    # One copy ran the optimization; the other found the lease held and sent itself again for later.
    assert sorted([first["status"], second["status"]]) == ["done", "held"], (first, second)
    done = first if first["status"] == "done" else second
    assert done["candidate"]
    with stack.engine.connect() as conn:
        numbers = conn.execute(select(OptimizationTrial.trial).order_by(OptimizationTrial.trial)).scalars().all()
        candidates = conn.execute(select(func.count()).select_from(PromptVariant)
                                  .where(PromptVariant.status == "candidate")).scalar_one()
    assert numbers == list(range(len(numbers))) and candidates == 1
    # The re-sent copy later finds the run finished and does nothing.
    stack.wait_for(lambda: sum(((stack.workdir / f"{w}.log").read_text().count("succeeded") for w in "ab")) >= 3,
                   60, "the re-sent copy to finish")
    with stack.engine.connect() as conn:
        assert conn.execute(select(OptimizationTrial.trial).order_by(OptimizationTrial.trial)).scalars().all() == numbers
        assert conn.execute(select(func.count()).select_from(PromptVariant)
                            .where(PromptVariant.status == "candidate")).scalar_one() == 1
