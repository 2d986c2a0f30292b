"""``demo --model``: a model that cannot run here is refused in one sentence before anything starts."""

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
