"""``promptloop recommendations`` as a person runs it (subprocess, embedded database, Redis down), and
``promptloop start``/``evaluate --optimize`` registered with their options."""

from pathlib import Path

from tests.unit.cli.test_rollout import add_better_candidate

ROOT = Path(__file__).resolve().parents[3]


def recommend(data_dir, variant: int) -> None:
    """What the workers do with DSPY_AUTO_OPTIMIZE off: validate, then keep it as a recommendation."""
    from shared.db import make_engine
    from shared.realtime.followup import follow_up_candidate, record_validation
    from shared.rollout.replacement import validate_candidate
    from shared.settings import load_settings

    engine = make_engine(f"sqlite:///{data_dir / 'promptloop.db'}")
    settings = load_settings(DATABASE_URL=str(engine.url), PROMPTLOOP_MODELS={"m": "scripted/follow"})
    follow_up_candidate(engine, variant, False,
                        lambda cid, deploy: record_validation(engine, validate_candidate(engine, settings, cid)), "test")
    engine.dispose()


def test_recommendations_list_deploy_and_mistakes(cli):
    run, data_dir = cli
    code, out = run("recommendations")
    assert code == 0 and "no recommendations pending" in out
    recommend(data_dir, add_better_candidate(data_dir))
    code, out = run("recommendations")
    assert code == 0 and "DSPY_A" in out and "pending" in out and "DSPY_AUTO_OPTIMIZE" in out, out
    code, out = run("recommendations", "--dismiss", "1")
    assert code == 2 and "--dismiss needs --reason" in out
    code, out = run("recommendations", "--deploy", "7")
    assert code == 1 and "no recommendation 7" in out and "Traceback" not in out
    code, out = run("recommendations", "--deploy", "1", "--hold-s", "60")
    assert code == 0 and "rollout 1 started" in out and "unreachable" in out and "Traceback" not in out, out
    code, out = run("recommendations", "--dismiss", "1", "--reason", "late")
    assert code == 1 and "is deployed, not pending" in out
    code, out = run("recommendations", "--all")
    assert code == 0 and "deployed" in out
    code, out = run("rollout", "status")
    assert "DSPY_A" in out and "running" in out


def test_new_verbs_and_options_are_registered():
    from typer.testing import CliRunner

    from cli.main import app

    runner = CliRunner()
    start = runner.invoke(app, ["start", "--help"], env={"COLUMNS": "200"})
    assert start.exit_code == 0 and "--no-beat" in start.output and "--queues" in start.output
    evaluate = runner.invoke(app, ["evaluate", "--help"], env={"COLUMNS": "200"})
    assert "--optimize" in evaluate.output and "--deploy" in evaluate.output
