"""A person who mistypes or points at a dead service gets one sentence, never a traceback (subprocesses)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def run(tmp_path):
    def run(*args, **env):
        full = {**os.environ, "PROMPTLOOP_DATA_DIR": str(tmp_path), "REDIS_URL": "redis://127.0.0.1:1/0", **env}
        full.pop("DATABASE_URL", None) if "DATABASE_URL" not in env else None
        full.pop("PROMPTLOOP_DEBUG", None)
        done = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=full, capture_output=True,
                              text=True, timeout=120)
        return done.returncode, done.stdout + done.stderr
    return run


def test_a_variable_that_is_not_json_is_named(run):
    code, out = run("status", PROMPTLOOP_MODELS="notjson")
    assert code == 2 and "PROMPTLOOP_MODELS must be JSON" in out and "Traceback" not in out
    assert len(out.strip().splitlines()) == 1  # piped: one line, not wrapped at 80 columns


def test_status_before_init_says_run_init(run):
    code, out = run("status")
    assert "the database has no schema yet: run `promptloop init` first" in out
    assert "no such table" not in out and "Traceback" not in out


def test_a_worker_on_an_older_schema_says_run_init(run, tmp_path):
    from shared.db import make_engine
    from shared.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(make_engine(url), "0005")
    code, out = run("worker", DATABASE_URL=url)
    assert code == 2 and "schema revision 0005" in out and "run `promptloop init` to migrate it" in out
    assert "Traceback" not in out


def test_an_unreachable_database_is_one_sentence_without_its_password(run):
    url = "postgresql://someone:s3cret@127.0.0.1:1/nothing"
    code, out = run("init", DATABASE_URL=url)
    assert code == 1 and "Traceback" not in out
    assert "cannot use the database at postgresql+psycopg://someone:***@127.0.0.1:1/nothing" in out
    assert "check DATABASE_URL" in out and "s3cret" not in out and len(out.strip().splitlines()) == 1
    code, out = run("--debug", "init", DATABASE_URL=url)
    assert code == 1 and "Traceback" in out  # for those who want it


def test_a_bad_option_value_is_refused_before_anything_runs(run):
    assert run("init")[0] == 0
    code, out = run("evaluate", "--batch-size", "0")
    assert code == 2 and "--batch-size" in out and "Traceback" not in out
