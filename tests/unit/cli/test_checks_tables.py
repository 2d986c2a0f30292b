"""The tables behind the CLI's sentences agree with what they describe (in process)."""

import json

import pytest

from cli.checks import FAMILY_NAMES
from cli.evaluate_failures import error_hint
from shared.datasets_jsonl import FIELDS, REFERENCES
from shared.localmodels import LocalModel, _Meter


def test_the_family_names_are_the_families():
    from shared.families import PromptFamily

    assert FAMILY_NAMES == tuple(f.value for f in PromptFamily) and set(FIELDS) == set(FAMILY_NAMES)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_jsonl_fields_are_what_the_family_reads_and_renders(family):
    from shared.families import get_family

    f = get_family(family)
    required, optional = FIELDS[family]
    fields = {**{name: f"value of {name}" for name in required}, **optional}
    assert f.inputs(json.dumps(fields)) == fields  # stored as JSON, read back unchanged
    rendered = json.dumps(f.baseline().render(**fields))
    assert all(f"value of {name}" in rendered for name in required)
    if family in REFERENCES:  # a reference of the documented shape scores
        ref = {k.rstrip("?"): [["Ada", "person"]] if "name" in s else [["a", "b", "c"]] if "head" in s else ["x"]
               for k, s in REFERENCES[family].items()}
        assert "overall" in f.score("anything", fields, ref)


@pytest.mark.parametrize("error, hint", [
    ("LMError: ollama_chat/qwen2.5:3b: LMTransportError: [ollama_chat/qwen2.5:3b] failed to connect to "
     "127.0.0.1:11434: [Errno 111] Connection refused",
     "connection refused at 127.0.0.1:11434 — is Ollama running (`ollama serve`)? or set PROMPTLOOP_MODELS to "
     "models that answer"),
    ("LMError: openai/x: APIConnectionError: Cannot connect to host localhost:8000 ssl:default [Connection refused]",
     "connection refused at localhost:8000 — is the LM server running? check PROMPTLOOP_LM_API_BASE and "
     "PROMPTLOOP_MODELS"),
    ("ValueError: no model configured for '7b'; PROMPTLOOP_MODELS has 3b",
     "a worker lacks this model key: give the workers the same PROMPTLOOP_MODELS as this shell"),
    ("LMError: ollama_chat/qwen9: NotFoundError: model 'qwen9' not found, try pulling it first",
     "the LM server does not have this model: pull it (`ollama pull NAME`) or fix PROMPTLOOP_MODELS"),
    ("chunk time limit (1500 s) reached before this example was scored",
     "scoring ran out of time: a faster model, a smaller --batch-size or PROMPTLOOP_CHUNK_TIME_LIMIT_S"),
    ("chunk killed its worker 3 times while scoring this example",
     "scoring crashed the worker's process (out of memory?): see the worker's log"),
    ("LMError: scripted failure: prompt contains 'x'", None),
])
def test_error_hints(error, hint):
    assert error_hint(error) == hint


def test_the_download_meter_reads_pips_raw_progress():
    model = LocalModel("m", "p-part", 3, "1", 3_000_000, "0" * 64)
    seen = []
    meter = _Meter(model, lambda done, total: seen.append((done, total)))
    for line in ["Collecting p-part1==1", "  Downloading http://x/p_part1-1-py3-none-any.whl (1.0 MB)",
                 "Progress 0 of 1000000", "Progress 600000 of 1000000", "Progress 1000000 of 1000000",
                 "Saved ./p_part1-1-py3-none-any.whl", "  Using cached http://x/p_part2-1-py3-none-any.whl (1.0 MB)",
                 "  Downloading http://x/p_part3-1-py3-none-any.whl (1.0 MB)", "Progress 500000 of 1000000"]:
        meter.line(line)
    assert [d for d, _ in seen] == [0, 0, 600_000, 1_000_000, 2_000_000, 2_000_000, 2_500_000]
    assert {t for _, t in seen} == {3_000_000}
