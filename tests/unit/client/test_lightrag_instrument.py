"""``instrument``: LightRAG's ``llm_model_func`` reports every call, timeouts included."""

import asyncio
import json

import fakeredis
import pytest

from promptloop_client import wire
from promptloop_client.lightrag import instrument

EXTRACTION = "You are a Knowledge Graph Specialist responsible for extracting entities and relationships"


def events(server):
    entries = fakeredis.FakeRedis(server=server).xrange(wire.STREAM)
    return [json.loads(line) for _, f in entries for line in f[b"b"].split(b"\n")]


def test_a_call_that_times_out_in_wait_for_counts_as_failed(client, server):
    async def slow_llm(prompt, system_prompt=None, history_messages=None, **kwargs):
        await asyncio.sleep(10)
        return "never"

    llm = instrument(slow_llm, client, model="3b")

    async def lightrag_call():  # as LightRAG's worker wraps each LLM call
        return await asyncio.wait_for(llm("text", system_prompt=EXTRACTION), timeout=0.05)

    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(lightrag_call())
    client.flush(5)
    (metric,) = events(server)
    assert (metric["family"], metric["success"]) == ("entity_extraction", False)


def test_a_successful_call_still_reports_success_and_an_example(client, server):
    async def llm_func(prompt, system_prompt=None, history_messages=None, **kwargs):
        return "entity<|#|>Alice"

    llm = instrument(llm_func, client, model="3b")
    assert asyncio.run(llm("text", system_prompt=EXTRACTION)) == "entity<|#|>Alice"
    client.flush(5)
    metric, example = events(server)
    assert metric["success"] is True and example["output"] == "entity<|#|>Alice"


def test_a_quality_callback_scores_each_answer_and_a_broken_one_sends_none(client, server):
    async def llm_func(prompt, system_prompt=None, history_messages=None, **kwargs):
        return prompt

    def quality(family, prompt, system_prompt, result):
        assert family == "entity_extraction"
        return {"good": 0.75, "bad": 7.0}.get(result) if result != "boom" else 1 / 0

    llm = instrument(llm_func, client, model="3b", sample_rate=0, quality=quality)
    for text in ("good", "bad", "boom", "other"):
        assert asyncio.run(llm(text, system_prompt=EXTRACTION)) == text  # the call is never disturbed
    client.flush(5)
    assert [m.get("quality") for m in events(server)] == [0.75, None, None, None]


def test_a_feedback_callback_rates_each_answer_for_the_variant_that_served_it(client, server):
    async def llm_func(prompt, system_prompt=None, history_messages=None, **kwargs):
        return prompt

    def feedback(family, prompt, system_prompt, result):
        return {"good": 1.0, "poor": 0.25, "bad": -3}.get(result) if result != "boom" else 1 / 0

    llm = instrument(llm_func, client, model="3b", variant="DSPY_B", sample_rate=0, feedback=feedback)
    for text in ("good", "poor", "bad", "boom", "other"):
        assert asyncio.run(llm(text, system_prompt=EXTRACTION)) == text
    client.flush(5)
    rated = [e for e in events(server) if e["kind"] == "feedback"]
    assert [(e["variant"], e["model"], e["score"]) for e in rated] == [("DSPY_B", "3b", 1.0), ("DSPY_B", "3b", 0.25)]
    assert sum(e["kind"] == "metric" for e in events(server)) == 5
