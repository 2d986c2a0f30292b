"""The test PostgreSQL server keeps its log, and a test that finds it dead fails with that log (a pytest run
in a subprocess, with this suite's fixtures)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.local import PG_BIN

ROOT = Path(__file__).resolve().parents[3]

INNER = '''
import os, signal
import psycopg
from sqlalchemy.engine import make_url


def test_the_server_dies_mid_test(pg_url, pg_server):
    url = make_url(pg_url)
    with psycopg.connect(host=url.host, port=url.port, user=url.username, dbname=url.database) as conn:
        data = conn.execute("SHOW data_directory").fetchone()[0]
    postmaster = int(open(os.path.join(data, "postmaster.pid")).readline())
    os.kill(postmaster, signal.SIGQUIT)  # immediate shutdown: the postmaster logs why it stops
    pg_server.proc.wait(30)


def test_a_later_test_is_told_too(pg_url):
    pass
'''


@pytest.mark.skipif(not (PG_BIN / "initdb").exists(), reason="PostgreSQL 15 not installed")
def test_a_dead_server_fails_the_test_with_its_log(tmp_path):
    (tmp_path / "test_inner.py").write_text(INNER)
    # The inner run is about the fixture's report, not CI's gating (CI=true turns skips into failures
    # and the session's teardown would report the dead server a second time).
    env = {k: v for k, v in os.environ.items() if k not in ("PROMPTLOOP_TEST_DATABASE_URL", "CI")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-q", "-p", "no:cacheprovider",
                           "--basetemp", str(tmp_path / "base"), str(tmp_path / "test_inner.py")],
                          cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert "ERROR at teardown of test_the_server_dies_mid_test" in out, out[-3000:]
    assert "the test PostgreSQL server died (exit status" in out
    assert "database system is ready to accept connections" in out  # the server's own log, from its start
    assert "received immediate shutdown request" in out  # ... to why it stopped
    assert "ERROR at setup of test_a_later_test_is_told_too" in out and "the test PostgreSQL server is dead" in out
    assert out.count("received immediate shutdown request") == 1  # the log once, then pointers to it
    log = next((tmp_path / "base").glob("pg*/postgres.log"))
    assert "immediate shutdown" in log.read_text()  # kept on disk
