"""An exported candidate, loaded with ``PROMPTS.update``, is what a stock LightRAG sends and parses."""

import asyncio
import hashlib
import json

import numpy as np
from lightrag import LightRAG
from lightrag.prompt import PROMPTS
from lightrag.utils import EmbeddingFunc, Tokenizer

from shared.lm import follow_prompt
from shared.optimize.driver import run_optimization
from shared.optimize.promptset import export_lightrag
from shared.optimize.start import start_optimization
from shared.families.template import PromptTemplate
from shared.models import PromptVariant
from tests.unit.shared.families.test_lightrag_baselines import Words, assert_same_messages

TEXT = "John Wilkes Booth , who assassinated President Lincoln , was an actor ."


def run_lightrag(tmp_path, prompts: dict, text: str = TEXT) -> tuple[list, dict]:
    """Insert TEXT into a stock LightRAG whose PROMPTS were updated; (calls to the LLM, graph entities)."""
    calls = []

    async def llm(prompt, system_prompt=None, history_messages=None, **kwargs):
        calls.append((system_prompt, prompt))
        messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + \
                   [{"role": "user", "content": prompt}]
        return follow_prompt(messages)

    async def embed(texts):
        return np.array([[b / 255 for b in hashlib.sha256(t.encode()).digest()] for t in texts], dtype=np.float32)

    async def run():
        rag = LightRAG(working_dir=str(tmp_path), llm_model_func=llm,
                       embedding_func=EmbeddingFunc(embedding_dim=32, func=embed, max_token_size=8192),
                       tokenizer=Tokenizer("words", Words()), entity_extract_max_gleaning=0)
        await rag.initialize_storages()
        await rag.ainsert(text)
        labels = await rag.get_graph_labels()
        await rag.finalize_storages()
        return labels

    saved = {k: (list(v) if isinstance(v, list) else v) for k, v in PROMPTS.items()}
    PROMPTS.update(prompts)
    try:
        labels = asyncio.run(run())
    finally:
        PROMPTS.clear()
        PROMPTS.update(saved)
    return calls, labels


def test_the_exported_candidate_is_sent_by_lightrag_and_parsed(env, tmp_path):
    settings, engine = env
    run_id = start_optimization(engine, settings, family="entity_extraction", model="m", optimizer="demos",
                                dataset="conll04", n_train=4, n_val=4, optimizer_options={"candidates": 3}, seed=1)
    out = run_optimization(engine, settings, run_id)
    with engine.connect() as conn:
        template = PromptTemplate.from_json(conn.execute(
            PromptVariant.__table__.select().where(PromptVariant.id == out["candidate"])).one().template)
    exported = json.loads(json.dumps(export_lightrag(template)))  # as `variants export --lightrag` writes it

    calls, labels = run_lightrag(tmp_path / "optimized", exported)
    system, user = next((s, p) for s, p in calls if s and "Knowledge Graph Specialist" in s)
    assert_same_messages(template.render(input_text=TEXT),
                         [{"role": "system", "content": system}, {"role": "user", "content": user}])
    # The scripted model answers this prompt in LightRAG's format, and LightRAG's parser took its rows.
    assert {"John Wilkes Booth", "President Lincoln"} <= set(labels)
    assert "Knowledge Graph Specialist" not in labels

    # The stock prompt, for contrast: no worked example, so the scripted model invents an entity.
    # (LightRAG remembers documents per process: the contrast uses another text.)
    calls, labels = run_lightrag(tmp_path / "stock", {}, text=TEXT.replace("actor", "actor in Washington"))
    assert "<Input Text>" not in next(s for s, _ in calls if s and "Knowledge Graph Specialist" in s)
    assert "Knowledge Graph Specialist" in labels  # the invented entity the scripted model adds without examples
