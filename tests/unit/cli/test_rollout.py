"""``promptloop rollout`` as a person runs it: a subprocess on the embedded database, Redis down."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def add_better_candidate(data_dir) -> int:
    from shared.db import make_engine
    from shared.families import get_family
    from shared.optimize.promptset import rebuild
    from shared.optimize.variants import register_candidate
    from tests.unit.shared.rollout.conftest import DEMOS, FAMILY

    engine = make_engine(f"sqlite:///{data_dir / 'promptloop.db'}")
    with engine.begin() as conn:
        return register_candidate(conn, FAMILY, "m", rebuild(FAMILY, get_family(FAMILY).baseline(), demos=DEMOS), 1)


def test_start_validates_deploys_and_an_operator_acts_with_a_reason(cli):
    run, data_dir = cli
    variant = add_better_candidate(data_dir)
    code, out = run("rollout", "start", str(variant), "--hold", "60")
    assert code == 0, out
    assert "pass paired: confidence" in out and "rollout 1 started at 10%" in out
    assert "Redis at redis://127.0.0.1:1/0 is unreachable" in out and "Traceback" not in out
    code, out = run("rollout", "status")
    assert code == 0 and "DSPY_A" in out and "running" in out and "10%" in out
    code, out = run("rollout", "promote", "1", "--reason", "canary looks fine")
    assert code == 0 and "rollout 1: running at 25%" in out
    code, out = run("rollout", "status", "1")
    assert "canary looks fine" in out and "operator" in out


def test_mistakes_get_one_sentence(cli):
    run, data_dir = cli
    code, out = run("rollout", "pause", "99", "--reason", "x")
    assert code == 2 and "no rollout 99" in out and "Traceback" not in out
    code, out = run("rollout", "rollback", "1")
    assert code == 2 and "--reason" in out and "Traceback" not in out
    code, out = run("rollout", "start", "1")  # the active baseline is not a candidate
    assert code == 2 and "is active, not a candidate" in out and "Traceback" not in out
