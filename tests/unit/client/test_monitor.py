"""The ``monitored`` decorator on sync and async functions."""

import asyncio
import json

import fakeredis
import pytest

from promptloop_client import Client, wire


@pytest.fixture
def server():
    return fakeredis.FakeServer()


@pytest.fixture
def client(server):
    c = Client(connection=fakeredis.FakeRedis(server=server), flush_interval=0.01, example_sample_rate=1.0)
    yield c
    c.close(1)


def events(server):
    entries = fakeredis.FakeRedis(server=server).xrange(wire.STREAM)
    return [json.loads(line) for _, f in entries for line in f[b"b"].split(b"\n")]


def test_sync_call_reports_metric_and_example(client, server):
    @client.monitored("entity_extraction", "baseline", "3b")
    def llm(prompt, system_prompt=None):
        return prompt.upper()

    assert llm("hello") == "HELLO"
    client.flush(5)
    metric, example = events(server)
    assert metric["kind"] == "metric" and metric["success"] is True and metric["family"] == "entity_extraction"
    assert metric["latency_ms"] >= 0
    assert example["input"] == "hello" and example["output"] == "HELLO" and example["variant"] == "baseline"


def test_async_failure_is_reported_and_re_raised(client, server):
    @client.monitored("answer_generation", "DSPY_A", "7b")
    async def llm(prompt):
        raise TimeoutError("model timed out")

    with pytest.raises(TimeoutError):
        asyncio.run(llm("q"))
    client.flush(5)
    (metric,) = events(server)
    assert metric["success"] is False and metric["variant"] == "DSPY_A"


def test_sampling_zero_sends_no_examples(client, server):
    @client.monitored("summarization", "baseline", "1.5b", sample_rate=0.0)
    def summarize(prompt):
        return "short"

    for _ in range(5):
        summarize("long text")
    client.flush(5)
    assert [e["kind"] for e in events(server)] == ["metric"] * 5


def test_reporting_problems_never_reach_the_host(client, server):
    @client.monitored("summarization", "baseline", "1.5b", input_of=lambda a, k: 1 / 0)
    def summarize(prompt):
        return "short"

    assert summarize("x") == "short"
    assert client.stats()["internal_errors"] == 1


def test_bad_decorator_arguments_fail_at_decoration(client):
    with pytest.raises(ValueError):
        client.monitored("", "baseline", "3b")


def test_a_timeout_is_reported_as_a_failed_call_then_re_raised(client, server):
    """LightRAG bounds LLM calls with ``asyncio.wait_for``: the timeout cancels the call inside."""
    @client.monitored("answer_generation", "baseline", "7b")
    async def llm(prompt):
        await asyncio.sleep(10)
        return "too late"

    async def call():
        return await asyncio.wait_for(llm("q"), 0.05)

    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(call())
    client.flush(5)
    (metric,) = events(server)
    assert metric["success"] is False and 40 <= metric["latency_ms"] < 5_000


def test_a_cancelled_call_is_reported_as_failed_and_stays_cancelled(client, server):
    @client.monitored("summarization", "baseline", "3b")
    async def llm(prompt):
        await asyncio.sleep(10)

    async def cancel_it():
        task = asyncio.ensure_future(llm("q"))
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return task.cancelled()

    assert asyncio.run(cancel_it()) is True
    client.flush(5)
    assert [(e["kind"], e["success"]) for e in events(server)] == [("metric", False)]
