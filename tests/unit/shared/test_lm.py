"""Model keys resolve to LMs; scripted LMs are deterministic; local models fail with a clear reason."""

import pytest

from shared.lm import LiteLLM, LMError, LocalGGUF, ScriptedLM, get_lm
from shared.settings import load_settings


def settings(tmp_path, **models):
    return load_settings(PROMPTLOOP_MODELS=models, PROMPTLOOP_MODELS_DIR=str(tmp_path))


def test_model_keys_resolve_by_kind(tmp_path):
    s = settings(tmp_path, a="ollama_chat/qwen2.5:3b", b="scripted/echo", c="local/1.5b", d="local/x/model.gguf")
    assert isinstance(get_lm("a", s), LiteLLM) and get_lm("a", s).name == "ollama_chat/qwen2.5:3b"
    assert isinstance(get_lm("b", s), ScriptedLM)
    local = get_lm("c", s)
    assert isinstance(local, LocalGGUF) and local.path == tmp_path / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    assert str(get_lm("d", s).path) == "x/model.gguf"
    with pytest.raises(ValueError, match="PROMPTLOOP_MODELS has a, b, c, d"):
        get_lm("13b", s)


def test_a_local_model_that_is_not_there_says_what_to_do(tmp_path):
    lm = get_lm("c", settings(tmp_path, c="local/1.5b"))
    with pytest.raises(LMError, match="promptloop models fetch|llama-cpp-python"):
        lm.complete([{"role": "user", "content": "hi"}])


def test_scripted_lms_are_deterministic_and_can_fail_on_purpose():
    lm = ScriptedLM("scripted/hash?fail_on=BOOM")
    messages = [{"role": "user", "content": "same"}]
    assert lm.complete(messages) == lm.complete(messages)
    with pytest.raises(LMError, match="BOOM"):
        lm.complete([{"role": "user", "content": "a BOOM here"}])
    with pytest.raises(ValueError, match="behaviour"):
        ScriptedLM("scripted/oracle")


def test_bad_model_strings_fail_at_start_up(tmp_path):
    from shared.settings import SettingsError

    with pytest.raises(SettingsError, match="PROMPTLOOP_MODELS"):
        settings(tmp_path, a="qwen2.5")


def test_a_reasoning_models_answer_is_its_text_and_its_reasoning(monkeypatch):
    """DSPy returns {"text", "reasoning_content"} when the model sends reasoning: callers get the text."""
    from shared.lm import LiteLLM

    from .openai_stub import REASONING, reasoning_server

    monkeypatch.setenv("OPENAI_API_KEY", "stub")
    messages = [{"role": "user", "content": "Ada Lovelace met Charles Babbage ."}]
    with reasoning_server() as url:
        lm = LiteLLM("openai/stub-reasoner", api_base=url)
        text = lm.complete(messages)
        reply = lm.reply(messages)
        with pytest.raises(LMError, match="no text"):  # it thought, and never answered
            lm.reply([{"role": "user", "content": "Havana"}])
    assert text == reply.text and text.startswith("entity<|#|>Ada Lovelace")
    assert reply.reasoning == REASONING
