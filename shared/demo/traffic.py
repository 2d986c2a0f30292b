"""Production traffic for the demo: a real LightRAG instance inserting CoNLL04 sentences.

Its ``llm_model_func`` is the demo's model (by default ``scripted/drift``: clean until the demo flips
its flag; with ``--model`` a real one, local or any LiteLLM string) wrapped by
``promptloop_client.lightrag.instrument`` with a Router, so each chunk's extraction call is routed to
the variant the rollout state selects and reported with the variant that served it. The quality sent
with each call is the family's own score of the answer against the sentence's gold entities (the demo
knows them; in production a format check or a user's rating plays this part); with ``rate=True`` the
same score also goes out as the user's feedback on the answer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import threading
import uuid
from pathlib import Path

import numpy as np

FAMILY = "entity_extraction"


class ByteTokenizer:
    """UTF-8 bytes as tokens: reversible, needs no vocabulary (LightRAG's default tokenizer downloads
    one at first use) and holds no state, so LightRAG's concurrent pipeline can share it."""

    def encode(self, text):
        return list(text.encode("utf-8"))

    def decode(self, tokens):
        return bytes(tokens).decode("utf-8", errors="ignore")


async def hash_embedding(texts):
    return np.array([[b / 255 for b in hashlib.sha256(t.encode()).digest()] for t in texts], dtype=np.float32)


class Traffic:
    """Inserts batches of sentences into LightRAG in a background thread until ``stop()``."""

    def __init__(self, workdir: Path, redis_url: str, model_key: str, lm, sentences: list[tuple[str, dict]],
                 batch: int = 16, rate: bool = False):
        self.workdir, self.redis_url, self.model_key, self.lm = workdir, redis_url, model_key, lm
        self.sentences, self.batch, self.rate = sentences, batch, rate
        self.gold = {text: ref for text, ref in sentences}
        self.calls = 0
        self._last = None  # ((prompt, answer), quality) of the latest scored answer
        self._scorer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="demo-score")
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True, name="demo-traffic")

    def start(self) -> "Traffic":
        self._thread.start()
        return self

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _quality(self, family, prompt, system_prompt, result):
        from shared.families.scoring import entity_extraction
        from shared.lm import _INPUT_TEXT

        match = _INPUT_TEXT.search(prompt)
        text = match.group(1).strip().split(" [lap ")[0] if match else None
        if family != FAMILY or text not in self.gold:
            return None
        # The family's scoring runs LightRAG's parser, which runs its own event loop: not in LightRAG's.
        score = self._scorer.submit(entity_extraction, result, {"input_text": text},
                                    self.gold[text]).result()["overall"]
        self._last = ((prompt, result), score)
        return score

    def _rating(self, family, prompt, system_prompt, result):
        """The user's rating: the quality just computed for this same answer (instrument asks right after)."""
        last = self._last
        return last[1] if last is not None and last[0] == (prompt, result) else None

    async def _llm(self, prompt, system_prompt=None, history_messages=None, **kwargs):
        messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + \
            list(history_messages or []) + [{"role": "user", "content": prompt}]
        self.calls += 1
        return (await asyncio.to_thread(self.lm.reply, messages)).text  # a real model blocks for seconds

    async def _run(self) -> None:
        from lightrag import LightRAG
        from lightrag.utils import EmbeddingFunc, Tokenizer
        from promptloop_client import Client, Router
        from promptloop_client.lightrag import instrument

        client, router = Client(self.redis_url, flush_interval=0.05), Router(self.redis_url, refresh_interval=0.5)
        llm = instrument(self._llm, client, model=self.model_key, router=router, quality=self._quality,
                         feedback=self._rating if self.rate else None, sample_rate=0.2)
        rag = LightRAG(working_dir=str(self.workdir), workspace=uuid.uuid4().hex, llm_model_func=llm,
                       embedding_func=EmbeddingFunc(embedding_dim=32, func=hash_embedding, max_token_size=8192),
                       tokenizer=Tokenizer("bytes", ByteTokenizer()), entity_extract_max_gleaning=0,
                       max_parallel_insert=min(8, self.batch),
                       enable_llm_cache=False, enable_llm_cache_for_entity_extract=False)
        # LightRAG logs every document at INFO: thousands of lines that would bury the demo's timeline.
        logging.getLogger("lightrag").setLevel(logging.WARNING)
        await rag.initialize_storages()
        i = 0
        try:
            while not self._stop.is_set():
                lap = i // len(self.sentences)  # LightRAG skips a text it has seen: mark each lap's copy
                docs = [self.sentences[(i + k) % len(self.sentences)][0] + (f" [lap {lap}]" if lap else "")
                        for k in range(self.batch)]
                ids = [f"doc-{i + k}" for k in range(self.batch)]
                i += self.batch
                try:
                    await rag.ainsert(docs, ids=ids)
                except Exception as exc:  # keep going: the demo is about what promptloop sees
                    self.errors.append(repr(exc))
        finally:
            await rag.finalize_storages()
            await client.aclose(10)
            router.close()
