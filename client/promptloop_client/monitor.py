"""The ``monitored`` decorator: one metric event per call, plus a sampled input/output example."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import random
import time

from .client import _name

log = logging.getLogger("promptloop_client")


def first_text_argument(args: tuple, kwargs: dict) -> str | None:
    """The call's input as LLM functions take it: ``prompt=`` or the first string argument."""
    if isinstance(kwargs.get("prompt"), str):
        return kwargs["prompt"]
    for arg in args:
        if isinstance(arg, str):
            return arg
    return None


def report_call(client, family: str, variant: str, model: str, started: float, ok: bool, input_text, result,
                sample_rate: float, quality: float | None = None) -> None:
    """Emit the metric for one finished call and, sampled, its input/output example. Never raises."""
    try:
        latency_ms = (time.perf_counter() - started) * 1000.0
        client.metric(variant, model, latency_ms, ok, quality=quality, family=family)
        if ok and isinstance(result, str) and input_text is not None and sample_rate > 0 \
                and random.random() < sample_rate:
            client.example(family, model, variant, input_text, result, latency_ms=latency_ms)
    except Exception:
        client._internal_error()
        log.debug("promptloop monitoring failed", exc_info=True)


#: What ends an awaited call as a failure. ``CancelledError`` is not an ``Exception``: it is how
#: ``asyncio.wait_for`` (LightRAG's LLM timeout) and task cancellation stop a call, and a call that
#: timed out failed; leaving it out would make timeouts vanish from the success rate.
ASYNC_FAILURES = (Exception, asyncio.CancelledError)


def monitored(client, family: str, variant: str, model: str, *, sample_rate: float | None = None,
              input_of=first_text_argument):
    """Wrap a sync or async function so that each call reports to ``client``.

    The wrapped function's result and exceptions pass through untouched; reporting problems are
    counted in ``client.stats()["internal_errors"]`` and never reach the caller.
    """
    _name(family, "family")
    _name(variant, "variant")
    _name(model, "model")
    rate = client.example_sample_rate if sample_rate is None else sample_rate

    def report(started: float, ok: bool, args: tuple, kwargs: dict, result) -> None:
        try:
            text = input_of(args, kwargs) if ok else None
        except Exception:
            client._internal_error()
            return
        report_call(client, family, variant, model, started, ok, text, result, rate)

    def decorate(func):
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args, **kwargs):
                started = time.perf_counter()
                try:
                    result = await func(*args, **kwargs)
                except ASYNC_FAILURES:
                    report(started, False, args, kwargs, None)
                    raise
                report(started, True, args, kwargs, result)
                return result

            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                result = func(*args, **kwargs)
            except Exception:
                report(started, False, args, kwargs, None)
                raise
            report(started, True, args, kwargs, result)
            return result

        return wrapper

    return decorate
