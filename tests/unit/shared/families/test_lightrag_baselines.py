"""The LightRAG-derived baselines are byte for byte what LightRAG sends its model."""

import asyncio
import hashlib

import numpy as np
import pytest
from lightrag import LightRAG, QueryParam
from lightrag.prompt import PROMPTS
from lightrag.utils import EmbeddingFunc, Tokenizer

from shared.families import PromptFamily, get_family

TEXT = "Marie Curie worked at the University of Paris, where she met Pierre Curie."
QUESTION = "Where did Marie Curie work?"


class Words:
    def __init__(self):
        self.vocab: list[str] = []

    def encode(self, text):
        ids = []
        for w in text.split():
            if w not in self.vocab:
                self.vocab.append(w)
            ids.append(self.vocab.index(w))
        return ids

    def decode(self, ids):
        return " ".join(self.vocab[i] for i in ids)


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    calls = []

    async def llm(prompt, system_prompt=None, history_messages=None, **kwargs):
        calls.append((system_prompt, prompt))
        if "expert keyword extractor" in prompt:
            return '{"high_level_keywords": ["work"], "low_level_keywords": ["Marie Curie"]}'
        if system_prompt and "extracting entities" in system_prompt:
            d = PROMPTS["DEFAULT_TUPLE_DELIMITER"]
            return f"entity{d}Marie Curie{d}person{d}A physicist.\n{PROMPTS['DEFAULT_COMPLETION_DELIMITER']}"
        return "At the University of Paris."

    async def embed(texts):
        return np.array([[b / 255 for b in hashlib.sha256(t.encode()).digest()] for t in texts], dtype=np.float32)

    async def run():
        rag = LightRAG(working_dir=str(tmp_path_factory.mktemp("rag")), llm_model_func=llm,
                       embedding_func=EmbeddingFunc(embedding_dim=32, func=embed, max_token_size=8192),
                       tokenizer=Tokenizer("words", Words()), entity_extract_max_gleaning=0)
        await rag.initialize_storages()
        await rag.ainsert(TEXT)
        await rag.aquery(QUESTION, param=QueryParam(mode="hybrid", enable_rerank=False))
        await rag.finalize_storages()

    asyncio.run(run())
    return calls


def assert_same_messages(ours: list[dict], theirs: list[dict]) -> None:
    """Equal messages, or a failure that shows where the texts part."""
    for a, b in zip(ours, theirs):
        if a != b:
            i = next((i for i, (x, y) in enumerate(zip(a["content"], b["content"])) if x != y),
                     min(len(a["content"]), len(b["content"])))
            pytest.fail(f"{a['role']} differs at {i}:\nours   {a['content'][i - 80:i + 80]!r}\n"
                        f"theirs {b['content'][i - 80:i + 80]!r}")
    assert len(ours) == len(theirs)


def test_extraction_baseline_is_lightrags_prompt(captured):
    system, user = next((s, p) for s, p in captured if s and "extracting entities" in s)
    messages = get_family(PromptFamily.ENTITY_EXTRACTION).baseline().render(input_text=TEXT)
    assert_same_messages(messages, [{"role": "system", "content": system}, {"role": "user", "content": user}])


def test_keywords_baseline_is_lightrags_prompt(captured):
    prompt = next(p for s, p in captured if "expert keyword extractor" in p)
    assert get_family(PromptFamily.QUERY_PROCESSING).baseline().render(query=QUESTION)[0]["content"] == prompt


def test_answer_baseline_is_lightrags_prompt_up_to_its_context(captured):
    system, user = next((s, p) for s, p in captured if s and "knowledge base" in s)
    context = system.split("---Context---\n\n", 1)[1].removesuffix("\n")  # the template adds that newline
    messages = get_family(PromptFamily.ANSWER_GENERATION).baseline().render(query=QUESTION, context_data=context)
    assert_same_messages(messages, [{"role": "system", "content": system}, {"role": "user", "content": QUESTION}])


def test_production_prompts_give_back_the_family_inputs(captured):
    system, user = next((s, p) for s, p in captured if s and "extracting entities" in s)
    assert get_family("entity_extraction").inputs(f"{system}\n\n{user}") == {"input_text": TEXT}
    keywords = next(p for s, p in captured if "expert keyword extractor" in p)
    assert get_family("query_processing").inputs(keywords) == {"query": QUESTION}
    system, user = next((s, p) for s, p in captured if s and "knowledge base" in s)
    fields = get_family("answer_generation").inputs(f"{system}\n\n{user}")
    assert fields["query"] == QUESTION and "Marie Curie" in fields["context_data"]


def test_extraction_renders_the_guidance_of_the_prompts_it_is_given():
    from shared.families import lightrag_baselines as lb

    guidance = "- Person: a named human.\n- Other: anything else."
    template = lb.extraction({**PROMPTS, "default_entity_types_guidance": guidance})
    system = template.render(input_text=TEXT)[0]["content"]
    assert guidance in system and PROMPTS["default_entity_types_guidance"].strip() not in system
