"""LightRAG's extraction output, read by LightRAG's own parser.

An output is *format compliant* when it ends with the completion delimiter and LightRAG accepts every
record line as an entity or a relation. The parser is LightRAG's (``lightrag.operate``), so the judgement
moves with the installed LightRAG version rather than with a copy of its rules.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import threading
from dataclasses import dataclass, field

from lightrag.operate import _process_extraction_result
from lightrag.prompt import PROMPTS

TUPLE_DELIMITER = PROMPTS["DEFAULT_TUPLE_DELIMITER"]
COMPLETION_DELIMITER = PROMPTS["DEFAULT_COMPLETION_DELIMITER"]


@dataclass
class ParsedExtraction:
    """What LightRAG would store from one output, and how well-formed the output was."""

    entities: list[tuple[str, str]] = field(default_factory=list)  # (name, type)
    relations: list[tuple[str, str]] = field(default_factory=list)  # (source, target)
    records: int = 0  # record lines in the output
    accepted: int = 0  # records LightRAG turned into an entity or a relation
    completed: bool = False  # the completion delimiter is present
    descriptions: dict[str, str] = field(default_factory=dict)  # entity name -> its (first) description

    @property
    def compliant(self) -> bool:
        return self.completed and self.records > 0 and self.accepted >= self.records

    @property
    def record_validity(self) -> float:
        return min(1.0, self.accepted / self.records) if self.records else 0.0


_local = threading.local()
_parsing: contextvars.ContextVar[bool] = contextvars.ContextVar("promptloop_parsing", default=False)


class _QuietWhileParsing(logging.Filter):
    """Drop LightRAG's format warnings about outputs we parse on purpose; its other logs pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _parsing.get()


logging.getLogger("lightrag").addFilter(_QuietWhileParsing())


def _run(coro):
    """Run LightRAG's coroutine on this thread's own loop (``asyncio.run`` costs ~1 ms a call in set-up)."""
    loop = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = _local.loop = asyncio.new_event_loop()
    return loop.run_until_complete(coro)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: setattr(_local, "loop", None))


def _record_lines(output: str) -> int:
    lines = output.replace(COMPLETION_DELIMITER, "\n").replace(COMPLETION_DELIMITER.lower(), "\n").splitlines()
    return sum(1 for line in lines if line.strip())


def parse_extraction(output: str) -> ParsedExtraction:
    """Parse one extraction output with LightRAG's parser (quietly: its format warnings are our metric).

    Synchronous; call it from worker code, not from inside a running event loop.
    """
    token = _parsing.set(True)
    try:
        nodes, edges = _run(_process_extraction_result(
            output, "eval", 0, tuple_delimiter=TUPLE_DELIMITER, completion_delimiter=COMPLETION_DELIMITER,
            warn_on_missing_completion_delimiter=False))
    finally:
        _parsing.reset(token)
    entities = [(name, rows[0]["entity_type"]) for name, rows in nodes.items()]
    relations = [(src, tgt) for (src, tgt) in edges]
    accepted = sum(len(rows) for rows in nodes.values()) + sum(len(rows) for rows in edges.values())
    descriptions = {name: rows[0].get("description") or "" for name, rows in nodes.items()}
    return ParsedExtraction(entities, relations, _record_lines(output), accepted, COMPLETION_DELIMITER in output,
                            descriptions)
