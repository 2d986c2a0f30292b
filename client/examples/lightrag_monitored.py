"""LightRAG emitting promptloop events during ``insert`` and ``query``.

    python client/examples/lightrag_monitored.py               # Ollama: qwen2.5:3b + nomic-embed-text
    python client/examples/lightrag_monitored.py --offline     # scripted LLM and embeddings, no network

Events go to ``REDIS_URL`` (default redis://localhost:6379/0); a promptloop worker stores them.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import tempfile

import numpy as np
from lightrag import LightRAG, QueryParam
from lightrag.prompt import PROMPTS
from lightrag.utils import EmbeddingFunc, Tokenizer

from promptloop_client import Client
from promptloop_client.lightrag import instrument

TEXT = ("Marie Curie worked at the University of Paris, where she met Pierre Curie. "
        "Together they discovered polonium, named after Poland.")
QUESTION = "Where did Marie Curie work?"


async def scripted_llm(prompt, system_prompt=None, history_messages=None, keyword_extraction=False, **kwargs):
    """A deterministic stand-in for a model, answering each LightRAG prompt in the format it asks for."""
    if "expert keyword extractor" in prompt:
        return '{"high_level_keywords": ["research"], "low_level_keywords": ["Marie Curie", "Paris"]}'
    if system_prompt and "extracting entities and relationships" in system_prompt:
        d, done = PROMPTS["DEFAULT_TUPLE_DELIMITER"], PROMPTS["DEFAULT_COMPLETION_DELIMITER"]
        return "\n".join([
            f"entity{d}Marie Curie{d}person{d}Physicist who worked at the University of Paris.",
            f"entity{d}University of Paris{d}organization{d}University where Marie Curie worked.",
            f"relation{d}Marie Curie{d}University of Paris{d}employment{d}Marie Curie worked there.",
            done,
        ])
    return "Marie Curie worked at the University of Paris."


class WordTokenizer:
    """Whitespace tokens with a growing vocabulary: LightRAG's default tokenizer (tiktoken) downloads
    its vocabulary at first use, which an offline machine cannot."""

    def __init__(self):
        self.ids: dict[str, int] = {}
        self.words: list[str] = []

    def encode(self, text):
        for word in text.split():
            if word not in self.ids:
                self.ids[word] = len(self.words)
                self.words.append(word)
        return [self.ids[w] for w in text.split()]

    def decode(self, tokens):
        return " ".join(self.words[t] for t in tokens)


async def hash_embedding(texts):
    return np.array([[b / 255 for b in hashlib.sha256(t.encode()).digest()] for t in texts], dtype=np.float32)


def build_rag(working_dir: str, client: Client, offline: bool, model: str) -> LightRAG:
    if offline:
        return LightRAG(working_dir=working_dir, llm_model_func=instrument(scripted_llm, client, model=model),
                        embedding_func=EmbeddingFunc(embedding_dim=32, func=hash_embedding, max_token_size=8192),
                        tokenizer=Tokenizer("words", WordTokenizer()))
    from lightrag.llm.ollama import ollama_embed, ollama_model_complete

    return LightRAG(
        working_dir=working_dir,
        llm_model_func=instrument(ollama_model_complete, client, model=model),
        llm_model_name=os.environ.get("OLLAMA_MODEL", "qwen2.5:3b"),
        embedding_func=EmbeddingFunc(embedding_dim=768, max_token_size=8192,
                                     func=lambda texts: ollama_embed(texts, embed_model="nomic-embed-text")),
    )


async def main(offline: bool, model: str, working_dir: str) -> None:
    client = Client(os.environ.get("REDIS_URL", "redis://localhost:6379/0"))
    rag = build_rag(working_dir, client, offline, model)
    await rag.initialize_storages()
    try:
        await rag.ainsert(TEXT)
        print(await rag.aquery(QUESTION, param=QueryParam(mode="hybrid", enable_rerank=False)))
    finally:
        await rag.finalize_storages()
    await client.aclose(10)
    print("promptloop client:", client.stats())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offline", action="store_true", help="scripted LLM and embeddings")
    parser.add_argument("--model", default="3b", help="model key reported with each event")
    parser.add_argument("--working-dir", default=None)
    args = parser.parse_args()
    asyncio.run(main(args.offline, args.model, args.working_dir or tempfile.mkdtemp(prefix="lightrag-")))
