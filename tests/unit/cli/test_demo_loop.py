"""`promptloop demo`: a model that cannot run here is refused in one sentence before anything starts, and its
timeline loses no step."""

from cli.demo_loop import _unusable


def test_a_model_string_is_not_checked_here():
    assert _unusable("3b", "ollama_chat/qwen2.5:3b") is None


def test_a_gguf_path_is_checked_as_a_path(tmp_path):
    missing = tmp_path / "qwen2.5-3b.gguf"
    assert _unusable("3b", f"local/{missing}") == (f"the local model {missing} is not here ({missing}): "
                                                   "give the path of a GGUF file")
    missing.write_bytes(b"GGUF")
    problem = _unusable("3b", f"local/{missing}")
    assert problem is None or problem.startswith("local models need llama-cpp-python")


def test_a_local_model_not_fetched_says_how_to_fetch_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTLOOP_MODELS_DIR", str(tmp_path))
    problem = _unusable("0.5b", "local/qwen2.5-coder-0.5b-instruct-q4_k_m")
    assert problem.endswith("run `promptloop models fetch 0.5b` first") and str(tmp_path) in problem


def test_a_row_committed_after_a_later_stamped_one_is_printed_late_not_lost(tmp_path):
    import time
    from datetime import datetime, timedelta, timezone

    from shared.db import make_engine
    from shared.migrate import upgrade
    from shared.models import Alert, AlertRule

    from cli.demo_loop import _wait

    engine = make_engine(f"sqlite:///{tmp_path / 'demo.db'}")
    upgrade(engine)
    t0 = datetime(2026, 12, 1, 6, 38, tzinfo=timezone.utc)

    def fire(message: str, seconds: int) -> None:
        with engine.begin() as conn:
            conn.execute(Alert.__table__.insert().values(rule_id=1, scope=message, status="firing", value=0.5,
                                                         threshold=0.6, message=message,
                                                         fired_at=t0 + timedelta(seconds=seconds)))

    with engine.begin() as conn:
        conn.execute(AlertRule.__table__.insert().values(id=1, name="q", metric_name="quality", threshold=0.6,
                                                         comparison="lt", window_minutes=0.5, min_samples=1))
    printed: list[str] = []

    class Console:
        def print(self, line: str) -> None:
            printed.append(line)

    shown: list = []
    fire("later: run finished", 28)
    _wait(engine, Console(), lambda: True, time.monotonic() + 5, shown, t0)
    fire("earlier: alert committed late", 25)  # stamped before the row already printed
    _wait(engine, Console(), lambda: True, time.monotonic() + 5, shown, t0)
    assert [line.split("  ")[-1] for line in printed] == ["later: run finished", "earlier: alert committed late"]
