"""The CLI's argument handling, exit codes and messages (fakeredis and SQLite)."""

from pathlib import Path

import fakeredis
import pytest
from typer.testing import CliRunner

import cli.main as main
import cli.report as report
from promptloop_client import Client
from shared import rediscon

runner = CliRunner()


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTLOOP_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    server = fakeredis.FakeServer()
    monkeypatch.setattr(main, "_client", lambda s: Client(connection=fakeredis.FakeRedis(server=server),
                                                          flush_interval=0.01))
    monkeypatch.setattr(rediscon, "_client", fakeredis.FakeRedis(server=server))
    monkeypatch.setattr(report, "live_workers", lambda timeout=1.0: ["w1@host"])
    import shared.db

    monkeypatch.setattr(shared.db, "_engine", None)
    return server


HEAD = sorted(p.name for p in (Path(__file__).parents[3] / "shared" / "migrations" / "versions").glob("0*.py"))[-1][:4]


def test_init_migrates_and_can_repeat(env):
    for _ in range(2):
        result = runner.invoke(main.app, ["init"])
        assert result.exit_code == 0, result.output
        assert f"at revision {HEAD}" in result.output


def test_feedback_and_metrics_reach_the_stream(env):
    assert runner.invoke(main.app, ["feedback", "DSPY_A", "3b", "0.85", "quality"]).exit_code == 0
    assert runner.invoke(main.app, ["metrics", "DSPY_B", "7b", "1200", "--failed"]).exit_code == 0
    entries = fakeredis.FakeRedis(server=env).xrange("promptloop:events")
    assert len(entries) == 2 and b'"success":false' in entries[1][1][b"b"]


@pytest.mark.parametrize("args, message", [
    (["feedback", "DSPY_A", "3b", "1.5"], "score must be a number in 0..1"),
    (["metrics", "--", "DSPY_A", "3b", "-5"], "latency_ms must be a finite number >= 0"),
])
def test_wrong_values_exit_2_with_the_reason(env, args, message):
    result = runner.invoke(main.app, args)
    assert result.exit_code == 2 and message in result.output


def test_a_bad_environment_variable_is_named(env, monkeypatch):
    monkeypatch.setenv("DSPY_ALERT_SUCCESS_RATE", "1.7")
    result = runner.invoke(main.app, ["status"])
    assert result.exit_code == 2 and "DSPY_ALERT_SUCCESS_RATE" in result.output


def test_status_reports_stream_database_and_workers(env):
    runner.invoke(main.app, ["init"])
    result = runner.invoke(main.app, ["status"])
    assert result.exit_code == 0, result.output
    assert "0 metrics, 0 feedback, 0 examples, 0 dead letters" in result.output
    assert "1 live: w1@host" in result.output


def test_worker_refuses_an_unmigrated_database(env):
    result = runner.invoke(main.app, ["worker"])
    assert result.exit_code == 2 and "promptloop init" in result.output
