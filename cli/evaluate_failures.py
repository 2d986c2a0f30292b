"""Why an evaluation's examples failed: the most common error per variant x model, and what to do about it."""

from __future__ import annotations

import re

from sqlalchemy import Engine, func, select

_HOST_PORT = r"([\w.\-]+|\[[0-9a-f:]+\]):(\d+)"
_REFUSED = re.compile(rf"(?:connect(?:ing)? to|at|host)\s+(?:proxy\s+)?{_HOST_PORT}.{{0,80}}?refused", re.I | re.S)


def error_hint(error: str) -> str | None:
    """What to do about an example's error, in a few words; None when the error says it already."""
    text = error or ""
    low = text.lower()
    refused = _REFUSED.search(text)
    if refused or "connection refused" in low:
        where = f"{refused.group(1)}:{refused.group(2)}" if refused else "the LM server"
        if refused and refused.group(2) == "11434":
            return (f"connection refused at {where} — is Ollama running (`ollama serve`)? "
                    "or set PROMPTLOOP_MODELS to models that answer")
        return (f"connection refused at {where} — is the LM server running? "
                "check PROMPTLOOP_LM_API_BASE and PROMPTLOOP_MODELS")
    if "name or service not known" in low or "getaddrinfo" in low or "nodename nor servname" in low:
        return "the LM server's host name does not resolve: check PROMPTLOOP_LM_API_BASE"
    if "no model configured for" in low:
        return "a worker lacks this model key: give the workers the same PROMPTLOOP_MODELS as this shell"
    if "not found" in low and "model" in low and ("pull" in low or "404" in low or "notfound" in low):
        return "the LM server does not have this model: pull it (`ollama pull NAME`) or fix PROMPTLOOP_MODELS"
    if "authentication" in low or "api key" in low or "api_key" in low or " 401" in low:
        return "the LM provider refused the credentials: set its API key in the workers' environment"
    if "chunk time limit" in low or "soft time limit" in low:
        return "scoring ran out of time: a faster model, a smaller --batch-size or PROMPTLOOP_CHUNK_TIME_LIMIT_S"
    if "timed out" in low or "timeout" in low:
        return "the LM did not answer in time: is its server overloaded or the model too large?"
    if "killed its worker" in low:
        return "scoring crashed the worker's process (out of memory?): see the worker's log"
    return None


def _short(error: str | None, limit: int = 300) -> str:
    line = " ".join((error or "unknown error").split())
    return line if len(line) <= limit else line[:limit - 1] + "…"


def failures(engine: Engine, batch_id: int) -> list[dict]:
    """Per variant x model of the batch: examples, failures, the most common error and its count."""
    from shared.models import EvaluationScore, PromptVariant

    with engine.connect() as conn:
        rows = conn.execute(
            select(EvaluationScore.variant_id, PromptVariant.name, PromptVariant.family, PromptVariant.model,
                   EvaluationScore.ok, EvaluationScore.error, func.count().label("n"))
            .join(PromptVariant, PromptVariant.id == EvaluationScore.variant_id)
            .where(EvaluationScore.batch_id == batch_id)
            .group_by(EvaluationScore.variant_id, PromptVariant.name, PromptVariant.family, PromptVariant.model,
                      EvaluationScore.ok, EvaluationScore.error)).all()
    out: dict[int, dict] = {}
    for r in rows:
        v = out.setdefault(r.variant_id, {"variant": r.name, "family": r.family, "model": r.model, "n": 0,
                                          "failed": 0, "error": None, "error_count": 0})
        v["n"] += r.n
        if not r.ok:
            v["failed"] += r.n
            if r.n > v["error_count"]:
                v["error"], v["error_count"] = r.error, r.n
    return sorted(out.values(), key=lambda v: (v["family"], v["model"], v["variant"]))


def print_failures(console, engine: Engine, batch_id: int) -> bool:
    """Print why examples failed, per variant x model; True when nothing at all was scored."""
    rows = failures(engine, batch_id)
    failed = [r for r in rows if r["failed"]]
    for r in failed:
        hint = error_hint(r["error"] or "")
        console.print(f"{r['variant']} × {r['model']} ({r['family']}): {r['failed']} of {r['n']} failed"
                      + (f" — {hint}" if hint else ""), highlight=False, markup=False)
        console.print(f"  most common error ({r['error_count']}×): {_short(r['error'])}",
                      highlight=False, markup=False)
    nothing = bool(rows) and all(r["failed"] == r["n"] for r in rows)
    if nothing:
        console.print("[red]nothing was scored: every example failed (the reasons are above)[/red]")
    return nothing
