"""The README's main job: `promptloop demo` on a fresh data directory (SQLite, its own redis-server)."""

import os
import subprocess
import sys

import pytest

from shared.local import free_port

from .conftest import ROOT

pytestmark = pytest.mark.integration


def test_demo_ingests_its_burst_and_reports(tmp_path, redis_server):
    port = free_port()  # nothing listens there: the demo must start redis-server itself
    env = {**os.environ, "PROMPTLOOP_DATA_DIR": str(tmp_path / "data"), "REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    env.pop("DATABASE_URL", None)
    run = subprocess.run([sys.executable, "-m", "cli.main", "demo", "--events", "1000"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = " ".join(run.stdout.split())
    assert "started redis-server" in out and "all events ingested" in out
    assert "1000 metrics, 100 feedback, 50 examples, 3 dead letters" in out
    assert "workers 1 live" in out
