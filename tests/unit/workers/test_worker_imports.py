"""What a worker imports depends on its queues: an ingest-only worker never loads DSPy, LightRAG or
LiteLLM (seconds of start-up and ~190 MB per process that draining the stream never uses).

Each case runs in a fresh interpreter, because this test process has long since imported everything.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("dspy", "lightrag", "litellm")

# What `promptloop worker -Q QUEUES` does up to the point where it would connect to the broker:
# import the CLI, then build Celery's worker, which imports the app's task modules (``include``) and
# sends ``worker_init``. The broker URL points nowhere: nothing here may need a connection.
PROBE = """
import json, sys
import cli.main
from workers.app import app

app.Worker(queues=sys.argv[1].split(","), concurrency=1, pool_cls="solo", loglevel="WARNING", quiet=True)
print(json.dumps({"heavy": sorted(m for m in sys.argv[2].split(",") if m in sys.modules),
                  "tasks": sorted(n for n in app.tasks if n.startswith("tasks."))}))
"""


def start_worker_in_fresh_interpreter(queues: str) -> dict:
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0"}
    done = subprocess.run([sys.executable, "-c", PROBE, queues, ",".join(HEAVY)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_an_ingest_worker_never_imports_dspy_lightrag_or_litellm():
    from tests.unit.workers.test_app import TASK_NAMES

    seen = start_worker_in_fresh_interpreter("ingest")
    assert seen["heavy"] == []
    # Lazy imports must not cost a registration: every task is still known by its name.
    assert seen["tasks"] == TASK_NAMES


@pytest.mark.parametrize("queues", ["evaluate", "ingest,evaluate,optimize,control"])
def test_an_evaluating_worker_loads_them_before_forking(queues):
    # Loaded once in the parent, the modules are shared by every prefork child (copy on write)
    # instead of being imported again by each child on its first task.
    seen = start_worker_in_fresh_interpreter(queues)
    assert {"dspy", "lightrag"} <= set(seen["heavy"])
