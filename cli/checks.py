"""Checking what a person typed before anything runs: negative numbers as values, family names.

Light on purpose (no DSPy, no SQL): ``cli.main`` imports it at start-up.
"""

from __future__ import annotations

import re

from typer.core import TyperCommand

#: The prompt families (``shared.families.PromptFamily``, which imports DSPy; a test keeps them equal).
FAMILY_NAMES = ("entity_extraction", "relationship_extraction", "summarization", "query_processing",
                "document_analysis", "answer_generation", "context_compression", "question_reformulation")

_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|nan)$", re.I)


class NumbersAreValues(TyperCommand):
    """A command whose arguments may be negative numbers: ``metrics v m -5`` passes -5 to the value check.

    Click reads any word starting with ``-`` as an option ("No such option: -5"). With
    ``ignore_unknown_options`` it passes unknown ones on as arguments; this class lets only negative
    numbers through that way, and still refuses an unknown ``--option``.
    """

    def __init__(self, *args, **kwargs):
        kwargs["context_settings"] = {**(kwargs.get("context_settings") or {}), "ignore_unknown_options": True}
        super().__init__(*args, **kwargs)

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        # Typer vendors its own click: compare by duck type, fail through the context (its exception types).
        options = {name: p for p in self.get_params(ctx) if getattr(p, "param_type_name", "") == "option"
                   for name in (*p.opts, *p.secondary_opts)}
        takes_value = False
        for arg in args:
            if arg == "--":
                break
            if takes_value:
                takes_value = False
                continue
            if arg.startswith("-") and len(arg) > 1 and not _NUMBER.match(arg):
                name, has_value, _ = arg.partition("=")
                option = options.get(name)
                if option is None:
                    ctx.fail(f"No such option: {name}")
                takes_value = not getattr(option, "is_flag", False) and not getattr(option, "count", False) \
                    and not has_value
        return super().parse_args(ctx, args)


def unknown_family(names: list[str] | None) -> str | None:
    """A sentence naming the unknown families among ``names`` and the known ones; None if all are known."""
    unknown = [n for n in names or [] if n not in FAMILY_NAMES]
    if not unknown:
        return None
    what = "family" if len(unknown) == 1 else "families"
    return f"unknown prompt {what} {', '.join(map(repr, unknown))}; known: {', '.join(FAMILY_NAMES)}"
