"""A real LightRAG (scripted LLM) serves a candidate's prompt to a sticky share of its chunks, read
from rollout state in a real redis-server; events carry the variant that served each call."""

import asyncio
import json
import math
import re
import shutil
import time
import uuid

import pytest

lightrag = pytest.importorskip("lightrag")

from lightrag import LightRAG  # noqa: E402
from lightrag.prompt import PROMPTS  # noqa: E402
from lightrag.utils import EmbeddingFunc, Tokenizer  # noqa: E402

from promptloop_client import Client, Router, wire  # noqa: E402
from promptloop_client.lightrag import instrument  # noqa: E402

from ..unit.client.test_template_inversion import MARKER, candidate  # noqa: E402
from .conftest import ROOT  # noqa: E402

pytestmark = pytest.mark.integration

import sys  # noqa: E402

sys.path.insert(0, str(ROOT / "client" / "examples"))
from lightrag_monitored import WordTokenizer, hash_embedding  # noqa: E402

SALT = "rollout-7"
DOCS = [f"Document {i}: Person{i} works at Lab{i} in City{i}, studying topic {i * 7 % 13}." for i in range(48)]
D, DONE = PROMPTS["DEFAULT_TUPLE_DELIMITER"], PROMPTS["DEFAULT_COMPLETION_DELIMITER"]


class ScriptedLLM:
    """Answers extraction prompts for the document they carry; records (doc, initial or gleaning, system, prompt,
    history) for every extraction call."""

    def __init__(self):
        self.calls = []

    async def __call__(self, prompt, system_prompt=None, history_messages=None, **kwargs):
        if not (system_prompt and "extracting entities and relationships" in system_prompt):
            return "Summary."
        text = history_messages[0]["content"] if history_messages else prompt
        doc = int(re.search(r"Document (\d+):", text).group(1))
        self.calls.append((doc, bool(history_messages), system_prompt, prompt, history_messages))
        if history_messages:
            return DONE
        return "\n".join([f"entity{D}Person{doc}{D}person{D}A researcher.",
                          f"entity{D}Lab{doc}{D}organization{D}A lab.",
                          f"relation{D}Person{doc}{D}Lab{doc}{D}employment{D}Works there.", DONE])

    def served(self) -> dict:
        """doc -> set of "candidate"/"incumbent" its calls were sent (both calls of a chunk included)."""
        out = {}
        for doc, _, system, _, _ in self.calls:
            out.setdefault(doc, set()).add("candidate" if MARKER in system else "incumbent")
        return out


def publish(r, percentage, cand=True, version=None):
    spec = {"incumbent": {"name": "baseline", "template": None},
            "candidate": {"name": "DSPY_A", "template": {"system": "", "user": "", "lightrag": candidate()}}
            if cand else None, "percentage": percentage, "salt": SALT}
    r.set(wire.ROLLOUT_STATE_KEY, json.dumps({"version": 1, "routes": {"entity_extraction": {"7b": spec}}}))
    return r.incr(wire.ROLLOUT_VERSION_KEY)


def insert(workdir, llm, docs, client=None, router=None):
    async def run():
        func = llm if client is None else instrument(llm, client, model="7b", router=router, sample_rate=0)
        # each instance its own workspace: LightRAG keeps document status in process-wide shared data
        rag = LightRAG(working_dir=str(workdir), workspace=uuid.uuid4().hex, llm_model_func=func,
                       embedding_func=EmbeddingFunc(embedding_dim=32, func=hash_embedding, max_token_size=8192),
                       tokenizer=Tokenizer("words", WordTokenizer()))
        await rag.initialize_storages()
        try:
            await rag.ainsert(docs)
        finally:
            await rag.finalize_storages()

    asyncio.run(run())
    shutil.rmtree(workdir, ignore_errors=True)
    assert set(llm.served()) == {int(re.search(r"Document (\d+):", d).group(1)) for d in docs}, "chunks not extracted"


def stream_variants(r) -> list:
    lines = [json.loads(line) for _, f in r.xrange(wire.STREAM) for line in f[b"b"].split(b"\n")]
    return [e["variant"] for e in lines if e.get("family") == "entity_extraction"]


@pytest.fixture
def setup(redis_server):
    import redis

    r = redis.Redis.from_url(redis_server.url)
    client = Client(redis_server.url, flush_interval=0.02)
    router = Router(redis_server.url, refresh_interval=0.1)
    yield r, client, router
    router.close()
    client.close(5)


def test_a_quarter_of_chunks_get_the_candidate_stickily_and_a_rollback_stops_it(setup, tmp_path, redis_server):
    r, client, router = setup
    version = publish(r, 0.25)
    router.refresh()

    first = ScriptedLLM()
    insert(tmp_path / "a", first, DOCS, client, router)
    served = first.served()
    assert set(served) == set(range(len(DOCS)))
    assert all(len(v) == 1 for v in served.values()), "a chunk's calls (first, gleaning) on two variants"
    on_candidate = {d for d, v in served.items() if v == {"candidate"}}
    assert on_candidate == {i for i, text in enumerate(DOCS) if wire.serves_candidate(text, SALT, 0.25)}
    n = len(DOCS)
    assert abs(len(on_candidate) - n / 4) <= 3 * math.sqrt(n * 0.25 * 0.75), len(on_candidate)
    assert sum(1 for c in first.calls if c[1]) >= n  # gleaning ran, on the same variant as its chunk
    for doc, gleaning, system, prompt, history in first.calls:
        if gleaning:
            assert ("(candidate)" in history[0]["content"]) == (doc in on_candidate)

    second = ScriptedLLM()
    insert(tmp_path / "b", second, DOCS, client, router)
    assert second.served() == served  # the same chunk, the same variant, in another LightRAG instance

    client.flush(10)
    variants = stream_variants(r)
    assert variants.count("DSPY_A") == sum(MARKER in c[2] for c in first.calls + second.calls) > 0
    assert set(variants) == {"DSPY_A", "baseline"}

    # a rollback: once the background refresh has read it, no chunk gets the candidate
    version = publish(r, 0.25, cand=False)
    deadline = time.monotonic() + 5
    while router.stats()["version"] != str(version) and time.monotonic() < deadline:
        time.sleep(0.05)
    third = ScriptedLLM()
    insert(tmp_path / "c", third, DOCS, client, router)
    assert all(v == {"incumbent"} for v in third.served().values())


def test_zero_percent_serves_none_and_an_emptied_redis_keeps_the_last_state(setup, tmp_path, redis_server):
    r, client, router = setup
    publish(r, 0.0)
    router.refresh()
    llm = ScriptedLLM()
    insert(tmp_path / "a", llm, DOCS[:12], client, router)
    assert all(v == {"incumbent"} for v in llm.served().values())

    publish(r, 1.0)
    router.refresh()
    redis_server.stop()  # restarted empty: the router keeps serving what it read
    shutil.rmtree(redis_server.directory)
    redis_server.start()
    assert router.refresh() is True and r.get(wire.ROLLOUT_VERSION_KEY) is None
    llm = ScriptedLLM()
    insert(tmp_path / "b", llm, DOCS[:6], client, router)
    assert all(v == {"candidate"} for v in llm.served().values())


def test_the_candidate_is_sent_exactly_as_lightrag_with_its_prompts_would_send_it(setup, tmp_path, monkeypatch):
    r, client, router = setup
    publish(r, 1.0)
    router.refresh()
    routed = ScriptedLLM()
    insert(tmp_path / "a", routed, DOCS[:4], client, router)
    for key, value in candidate().items():
        monkeypatch.setitem(PROMPTS, key, value)
    stock = ScriptedLLM()
    insert(tmp_path / "b", stock, DOCS[:4])  # a LightRAG whose PROMPTS are the candidate's, not routed
    key = lambda c: (c[0], c[1])  # noqa: E731
    assert sorted(routed.calls, key=key) == sorted(stock.calls, key=key)
