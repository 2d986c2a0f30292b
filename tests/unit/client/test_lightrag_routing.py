"""``instrument(..., router=...)``: each LightRAG call is sent as the routed variant and reported as it."""

import asyncio
import json

import fakeredis
import pytest

from promptloop_client import Router, wire
from promptloop_client.lightrag import instrument

from .test_lightrag_instrument import events
from .test_template_inversion import MARKER, PROMPTS, TEXT, candidate, context, extraction_call, sanitize


def publish(server, percentage, cand=True, template=None):
    spec = {"incumbent": {"name": "baseline", "template": None},
            "candidate": {"name": "DSPY_A", "template": template or {"system": "", "user": "", "lightrag": candidate()}}
            if cand else None, "percentage": percentage, "salt": "rollout-1"}
    r = fakeredis.FakeRedis(server=server)
    r.set(wire.ROLLOUT_STATE_KEY, json.dumps({"version": 1, "routes": {"entity_extraction": {"3b": spec}}}))
    r.incr(wire.ROLLOUT_VERSION_KEY)


@pytest.fixture
def router(server):
    rt = Router(fakeredis.FakeRedis(server=server), refresh_interval=3600)
    yield rt
    rt.close()


class Recorder:
    def __init__(self):
        self.calls = []

    async def __call__(self, prompt, system_prompt=None, history_messages=None, **kwargs):
        self.calls.append((prompt, system_prompt, history_messages, kwargs))
        return "entity<|#|>Marie Curie<|#|>person<|#|>A physicist.\n<|COMPLETE|>"


def call(llm, text=TEXT, **kwargs):
    system, user = extraction_call(text=text)
    return asyncio.run(llm(user, system_prompt=system, **kwargs))


def test_a_call_on_the_candidate_is_sent_the_candidates_prompt_and_reported_as_it(client, server, router):
    publish(server, 1.0)
    router.refresh()
    rec = Recorder()
    call(instrument(rec, client, model="3b", router=router, sample_rate=1.0), hashing_kv="kept")
    (prompt, system, history, kwargs), = rec.calls
    want_system, want_user = extraction_call({**PROMPTS, **candidate()})
    assert (system, prompt, history, kwargs) == (want_system, want_user, None, {"hashing_kv": "kept"})
    client.flush(5)
    metric, example = events(server)
    assert metric["variant"] == example["variant"] == "DSPY_A" and MARKER in example["input"]


def test_at_zero_percent_or_without_a_state_lightrag_s_prompt_goes_out_as_baseline(client, server, router):
    rec = Recorder()
    llm = instrument(rec, client, model="3b", variant="mine", router=router)
    call(llm)  # nothing published: the default, the instrument's variant
    publish(server, 0.0)
    router.refresh()
    call(llm)
    system, user = extraction_call()
    assert [(c[0], c[1]) for c in rec.calls] == [(user, system)] * 2
    client.flush(5)
    assert [e["variant"] for e in events(server) if "input" not in e] == ["mine", "baseline"]


def test_gleaning_stays_on_the_chunks_variant_even_if_the_state_changes_between(client, server, router):
    publish(server, 1.0)
    router.refresh()
    rec = Recorder()
    llm = instrument(rec, client, model="3b", router=router, sample_rate=0)
    system, user = extraction_call()
    asyncio.run(llm(user, system_prompt=system))
    publish(server, 0.0)  # a rollback lands between a chunk's first call and its gleaning
    router.refresh()
    cont = sanitize(PROMPTS["entity_continue_extraction_user_prompt"].format(**context()))
    history = [{"role": "user", "content": user}, {"role": "assistant", "content": "entity<|#|>x"}]
    asyncio.run(llm(cont, system_prompt=system, history_messages=history))
    first, glean = rec.calls
    assert MARKER in glean[1] and glean[0] == cont
    assert glean[2][0]["content"] == first[0] != user  # the replayed first message is the candidate's
    call(llm)  # the chunk's next first call sees the rollback
    assert MARKER not in rec.calls[-1][1]
    client.flush(5)
    assert [e["variant"] for e in events(server)] == ["DSPY_A", "DSPY_A", "baseline"]


def test_a_routing_key_function_routes_by_document(client, server, router):
    publish(server, 0.5)
    router.refresh()
    doc = next(d for d in (f"doc-{i}" for i in range(100))
               if router.select_variant("entity_extraction", "3b", d).candidate)
    seen = []

    def by_document(family, values, prompt):
        seen.append(values["input_text"][:11])
        return doc

    rec = Recorder()
    llm = instrument(rec, client, model="3b", router=router, routing_key=by_document)
    for i in range(6):
        call(llm, text=f"Chunk {i:05d}. " + TEXT)
    assert all(MARKER in c[1] for c in rec.calls) and seen[0] == "Chunk 00000"


def test_an_unrecognised_prompt_is_sent_as_it_is_and_reported_as_the_instruments_variant(client, server, router):
    publish(server, 1.0)
    router.refresh()
    rec = Recorder()
    system = "You are a Knowledge Graph Specialist responsible for extracting entities and relationships. Custom."
    asyncio.run(instrument(rec, client, model="3b", variant="mine", router=router)("Text: abc", system_prompt=system))
    assert rec.calls[0][:2] == ("Text: abc", system)
    client.flush(5)
    assert events(server)[0]["variant"] == "mine"


def test_a_candidate_that_does_not_render_falls_back_to_the_incumbent(client, server, router):
    bad = dict(candidate(), entity_extraction_system_prompt="{no_such_field}")
    publish(server, 1.0, template={"system": "", "user": "", "lightrag": bad})
    router.refresh()
    rec = Recorder()
    call(instrument(rec, client, model="3b", router=router, sample_rate=0))
    assert rec.calls[0][:2] == extraction_call()[::-1]
    client.flush(5)
    assert events(server)[0]["variant"] == "baseline"


class BrokenRouter:
    def select_variant(self, *args):
        raise RuntimeError("boom")


@pytest.mark.parametrize("key_fn", [None, lambda family, values, prompt: 1 / 0])
def test_routing_errors_never_break_the_call(client, server, key_fn):
    rec = Recorder()
    llm = instrument(rec, client, model="3b", variant="mine", router=BrokenRouter(), routing_key=key_fn, sample_rate=0)
    assert call(llm).endswith("<|COMPLETE|>")
    assert rec.calls[0][:2] == extraction_call()[::-1]
    client.flush(5)
    assert events(server)[0]["variant"] == "mine"
