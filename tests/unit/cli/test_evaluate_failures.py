"""`promptloop evaluate` says why (subprocesses on a real redis-server and worker, embedded database): a batch
abandoned by --timeout is cancelled, a user's JSONL examples are evaluated, every example failing prints
the most common error with what to do and exits 1."""

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.local import RedisServer, ServiceError, free_port

ROOT = Path(__file__).resolve().parents[3]
DOWN = free_port()  # nothing listens here: an LM server that is not running
MODELS = {"3b": "scripted/extract", "bad": "scripted/extract?fail_on=%20", "down": "ollama_chat/qwen2.5:3b"}
LINES = [{"input_text": "Ada Lovelace worked with Charles Babbage in London.",
          "reference": {"entities": [["Ada Lovelace", "person"], ["Charles Babbage", "person"], ["London", "location"]]}},
         {"input_text": "Marie Curie was born in Warsaw."},
         {"input_text": "Alan Turing studied at Cambridge.", "id": "turing", "reference": {"entities": [["Alan Turing", "Peop"]]}}]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evaluate")
    try:
        redis = RedisServer(tmp / "redis", free_port()).start()
    except ServiceError as exc:
        pytest.skip(str(exc))
    env = {**os.environ, "PROMPTLOOP_DATA_DIR": str(tmp), "REDIS_URL": redis.url, "COLUMNS": "200",
           "PROMPTLOOP_MODELS": json.dumps(MODELS), "PROMPTLOOP_LM_API_BASE": f"http://127.0.0.1:{DOWN}"}
    env.pop("DATABASE_URL", None)
    env.pop("PROMPTLOOP_DEBUG", None)

    def run(*args):
        done = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=300)
        return done.returncode, done.stdout + done.stderr

    assert run("init")[0] == 0
    (tmp / "mine.jsonl").write_text("".join(json.dumps(line) + "\n" for line in LINES))
    code, out = run("datasets", "import-jsonl", str(tmp / "mine.jsonl"), "--family", "entity_extraction")
    assert code == 0 and "mine: 3 entity_extraction examples read, 3 added" in out, out
    state = {"run": run, "tmp": tmp, "env": env, "worker": None}
    yield state
    if state["worker"] is not None:
        os.killpg(state["worker"].pid, 15)
        state["worker"].wait(30)
    redis.stop()


def start_worker(stack):
    log = open(stack["tmp"] / "worker.log", "ab")
    stack["worker"] = subprocess.Popen([sys.executable, "-m", "cli.main", "worker", "-Q", "evaluate", "-c", "1",
                                        "-n", "ev@%h"], cwd=ROOT, env=stack["env"], stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)


def scores(stack, batch_id: int) -> int:
    with sqlite3.connect(stack["tmp"] / "promptloop.db") as conn:
        return conn.execute("SELECT count(*) FROM evaluation_scores WHERE batch_id = ?", (batch_id,)).fetchone()[0]


def test_a_batch_abandoned_by_timeout_is_cancelled_and_never_scored(stack):
    run = stack["run"]
    code, out = run("evaluate", "--dataset", "mine", "--models", "3b", "--timeout", "1")
    assert code == 1 and "Traceback" not in out
    assert "batch 1 cancelled after 1s with 0/3 items done (its queued chunks will be skipped): no worker " \
           "consumes the 'evaluate' queue; start one with `promptloop worker -Q evaluate`" in out
    code, out = run("status")
    assert "evaluation batch 1: cancelled, 0/3 items" in out

    start_worker(stack)  # takes batch 1's chunk first (FIFO), skips it, then scores batch 2
    code, out = run("evaluate", "--dataset", "mine", "--models", "3b", "--timeout", "120")
    assert code == 0 and "evaluation batch 2" in out and "Traceback" not in out, out
    assert "baseline" in out and "failed" not in out
    assert scores(stack, 2) == 3 and scores(stack, 1) == 0  # the user's JSONL examples, scored; batch 1 never


def test_every_example_failing_prints_the_reason_and_exits_1(stack):
    run = stack["run"]
    if stack["worker"] is None:
        start_worker(stack)
    code, out = run("evaluate", "--dataset", "mine", "--models", "bad", "--timeout", "120")
    assert code == 1 and "Traceback" not in out, out
    assert "baseline × bad (entity_extraction): 3 of 3 failed" in out
    assert "most common error (3×): LMError: scripted failure: prompt contains ' '" in out
    assert out.strip().endswith("nothing was scored: every example failed (the reasons are above)")


def test_an_lm_server_that_is_down_is_named_with_what_to_do(stack):
    run = stack["run"]
    if stack["worker"] is None:
        start_worker(stack)
    started = time.monotonic()
    code, out = run("evaluate", "--dataset", "mine", "--models", "down", "--limit", "1", "--timeout", "200")
    assert code == 1 and "Traceback" not in out, out
    assert (f"baseline × down (entity_extraction): 1 of 1 failed — connection refused at 127.0.0.1:{DOWN} — "
            "is the LM server running? check PROMPTLOOP_LM_API_BASE and PROMPTLOOP_MODELS") in out
    assert "nothing was scored" in out and time.monotonic() - started < 200
