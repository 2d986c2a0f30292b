"""Instrument a LightRAG deployment: wrap the ``llm_model_func`` handed to ``LightRAG(...)``.

Every LLM call LightRAG makes (extraction during ``insert``, keyword extraction and answering during
``query``, description summaries while merging) emits a metric event tagged with its prompt family,
and a sampled input/output example. Nothing here imports LightRAG: calls are recognised by the
opening lines of LightRAG's own prompts.

With a ``router`` (``promptloop_client.Router``) each call is also routed: the variant the rollout
state selects for it is sent in place of LightRAG's own prompt (see ``lightrag_routing``), and its
events carry that variant's name.
"""

from __future__ import annotations

import functools
import time

from .client import _name
from .lightrag_routing import LightRAGRouting
from .monitor import ASYNC_FAILURES, log, report_call

#: (marker in the system prompt or prompt, family): the first match wins.
LIGHTRAG_MARKERS = (
    ("responsible for extracting entities and relationships", "entity_extraction"),
    ("expert keyword extractor", "query_processing"),
    ("proficient in data curation and synthesis", "summarization"),
    ("synthesizing information from a provided knowledge base", "answer_generation"),
)


def classify_lightrag_call(prompt: str, system_prompt: str | None) -> str:
    """The prompt family of one LightRAG LLM call ("other" for prompts it does not know)."""
    head = f"{(system_prompt or '')[:400]}\n{prompt[:400]}"
    for marker, family in LIGHTRAG_MARKERS:
        if marker in head:
            return family
    return "other"


def instrument(llm_model_func, client, model: str, variant: str = "baseline", *, sample_rate: float | None = None,
               classify=classify_lightrag_call, router=None, routing_key=None, prompts=None, quality=None,
               feedback=None):
    """Return an async ``llm_model_func`` that reports each call to ``client`` and otherwise behaves the same.

    ``model`` is the model key ("1.5b", "3b", "7b"); ``variant`` the prompt variant in use.

    ``router``: route each call to the variant the rollout state selects (the default routing key is
    the chunk's text for extraction, the entity name for summaries, the query for keywords and
    answers); ``routing_key(family, values, prompt)`` may return another key (a document id), None
    for the default. ``prompts``: the ``PROMPTS`` LightRAG renders from (default: ``lightrag.prompt``'s,
    imported at the first routed call). A routing failure never fails the call: LightRAG's own prompt
    is sent and reported as ``variant``.

    ``quality(family, prompt, system_prompt, result)``: a 0..1 score of a successful call's answer (a
    format check, a comparison with a known answer...) sent with its metric, or None; an exception or
    a value outside 0..1 sends none.

    ``feedback(family, prompt, system_prompt, result)``: the same kind of callback for a rating known
    when the call returns (a user's verdict shown with the answer, a judge run inline); its 0..1 value
    goes out as a feedback event for the variant that served the call. Ratings that come later are sent
    with ``client.feedback(variant, model, score)``.
    """
    _name(model, "model")
    _name(variant, "variant")
    rate = client.example_sample_rate if sample_rate is None else sample_rate
    routing = None if router is None else LightRAGRouting(router, model, variant, routing_key=routing_key,
                                                          prompts=prompts)

    @functools.wraps(llm_model_func)
    async def wrapper(prompt, system_prompt=None, history_messages=None, **kwargs):
        try:
            family = classify(prompt, system_prompt)
        except Exception:
            family = "other"
        served = variant
        if routing is not None:
            try:
                prompt, system_prompt, history_messages, served = routing.route(
                    family, prompt, system_prompt, history_messages)
            except Exception:  # LightRAG's own prompt goes out, reported as such
                log.debug("promptloop routing failed", exc_info=True)
        started = time.perf_counter()
        try:
            result = await llm_model_func(prompt, system_prompt=system_prompt, history_messages=history_messages,
                                          **kwargs)
        except ASYNC_FAILURES:  # a timeout (CancelledError inside asyncio.wait_for) is a failed call too
            report_call(client, family, served, model, started, False, None, None, rate)
            raise
        seen = f"{system_prompt}\n\n{prompt}" if system_prompt else prompt
        report_call(client, family, served, model, started, True, seen, result, rate,
                    _score(quality, family, prompt, system_prompt, result))
        rating = _score(feedback, family, prompt, system_prompt, result)
        if rating is not None:
            try:
                client.feedback(served, model, rating)
            except Exception:  # never the host's problem
                log.debug("promptloop feedback failed", exc_info=True)
        return result

    return wrapper


def _score(quality, family, prompt, system_prompt, result) -> float | None:
    if quality is None:
        return None
    try:
        value = quality(family, prompt, system_prompt, result)
        return float(value) if value is not None and 0.0 <= float(value) <= 1.0 else None
    except Exception:
        log.debug("promptloop quality callback failed", exc_info=True)
        return None
