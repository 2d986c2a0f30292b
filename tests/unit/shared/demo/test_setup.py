"""The demo's model choice: the drifting scripted model by default, a real one with ``--model``."""

import json

import pytest

from shared.demo.setup import demo_env, demo_model
from shared.settings import load_settings


def test_no_model_is_the_drifting_scripted_one(tmp_path):
    assert demo_model(None, tmp_path) == ("1.5b", f"scripted/drift?flag={tmp_path / 'model-drifted'}")


@pytest.mark.parametrize("value, expected", [
    ("1.5b", ("1.5b", "local/qwen2.5-coder-1.5b-instruct-q4_k_m")),
    ("0.5b", ("0.5b", "local/qwen2.5-coder-0.5b-instruct-q4_k_m")),
    ("ollama_chat/qwen2.5:3b", ("3b", "ollama_chat/qwen2.5:3b")),
    ("ollama_chat/qwen2.5:7b-instruct", ("7b", "ollama_chat/qwen2.5:7b-instruct")),
    ("openai/my-server-model", ("model", "openai/my-server-model")),
])
def test_a_model_is_a_local_short_name_or_a_model_string_keyed_by_its_size(tmp_path, value, expected):
    assert demo_model(value, tmp_path) == expected


def test_an_unknown_short_name_says_what_to_give(tmp_path):
    with pytest.raises(ValueError, match=r"unknown model '3b': give a local model \(1.5b, 0.5b"):
        demo_model("3b", tmp_path)


def test_a_real_model_gets_feedback_triggers_and_smaller_samples_the_scripted_one_does_not(tmp_path, monkeypatch):
    real = demo_env(tmp_path, "redis://127.0.0.1:1/0", ("3b", "ollama_chat/qwen2.5:3b"))
    scripted = demo_env(tmp_path, "redis://127.0.0.1:1/0")
    assert json.loads(real["PROMPTLOOP_MODELS"]) == {"3b": "ollama_chat/qwen2.5:3b"}
    assert real["DSPY_FEEDBACK_THRESHOLD"] == "10" and "DSPY_FEEDBACK_THRESHOLD" not in scripted
    assert int(real["PROMPTLOOP_ROLLOUT_MIN_SAMPLES"]) < int(scripted["PROMPTLOOP_ROLLOUT_MIN_SAMPLES"])
    for env in (real, scripted):  # both are settings the validated settings object accepts
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        load_settings()
