"""Prompt templates: what a prompt variant *is*, stored as JSON in ``prompt_variants.template``.

A template is a system message and a user message written with ``str.format`` fields naming the
family's inputs (``{input_text}``, ``{query}``...). Literal braces are doubled, as LightRAG's are.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass, field

_FIELD = re.compile(r"(?<!\{)\{([a-z_]+)\}(?!\})")


def fill(template: str, **values) -> str:
    """Substitute only the named fields, leaving other fields and doubled braces for a later ``format``."""
    def sub(match):
        name = match.group(1)
        if name not in values:
            return match.group(0)
        return str(values[name]).replace("{", "{{").replace("}", "}}")

    return _FIELD.sub(sub, template)


@dataclass(frozen=True)
class PromptTemplate:
    system: str
    user: str
    #: The LightRAG ``PROMPTS`` values this template was rendered from (LightRAG-backed families), so
    #: ``PROMPTS.update(template.lightrag)`` makes a stock LightRAG send it; None for promptloop's own.
    lightrag: dict | None = field(default=None, compare=False, hash=False)

    def fields(self) -> set[str]:
        """The input fields the template expects."""
        names = set()
        for text in (self.system, self.user):
            names |= {name for _, name, _, _ in string.Formatter().parse(text) if name}
        return names

    def render(self, **inputs) -> list[dict]:
        """Chat messages for one example; a missing input raises ``KeyError`` naming it."""
        messages = [{"role": "system", "content": self.system.format(**inputs)}] if self.system else []
        return messages + [{"role": "user", "content": self.user.format(**inputs)}]

    def to_json(self) -> str:
        data = {"system": self.system, "user": self.user}
        if self.lightrag is not None:
            data["lightrag"] = self.lightrag
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "PromptTemplate":
        data = json.loads(text)
        return cls(system=data.get("system", ""), user=data["user"], lightrag=data.get("lightrag"))
