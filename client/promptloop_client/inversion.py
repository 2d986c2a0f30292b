"""Recover the values a ``str.format`` template was filled with, from the text it rendered.

Each ``{field}`` of the template becomes a named regex group (a field repeated later, a backreference
to it), literal text is matched as it is, and the whole text must match. The values found are checked
by rendering the template again: ``invert`` answers only values that give back the text exactly
(or its ``strip()``: LightRAG strips most prompts before sending them).
"""

from __future__ import annotations

import re
import string
from typing import Optional

_MAX_PATTERNS = 128
_patterns: dict = {}


class UnsupportedTemplate(ValueError):
    """A template with fields this module cannot invert (positional, indexed, with a format spec)."""


def compile_template(template: str, stripped: bool = True) -> "re.Pattern":
    """The regex that matches what ``template.format(...)`` renders (``stripped``: or its ``strip()``); cached."""
    pattern = _patterns.get((template, stripped))
    if pattern is None:
        if len(_patterns) >= _MAX_PATTERNS:
            _patterns.clear()
        pattern = _patterns[template, stripped] = re.compile(_regex(template, stripped), re.DOTALL)
    return pattern


def _regex(template: str, stripped: bool) -> str:
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise UnsupportedTemplate(f"not a str.format template: {exc}") from None
    out, seen = [r"\s*" if stripped else ""], set()
    last = len(parts) - 1
    for i, (literal, name, spec, conversion) in enumerate(parts):
        if stripped and i == 0:
            literal = literal.lstrip()
        if stripped and i == last and name is None:
            literal = literal.rstrip()
        out.append(re.escape(literal))
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise UnsupportedTemplate(f"field {{{name}}} is not a plain named field")
        out.append(f"(?P={name})" if name in seen else f"(?P<{name}>.*?)")
        seen.add(name)
    out.append(r"\s*" if stripped else "")
    return "".join(out)


def fields(template: str) -> set:
    """The named fields of a ``str.format`` template."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def invert(template: str, text: str) -> Optional[dict]:
    """``{field: value}`` such that ``template.format(**values)`` is ``text`` (or strips to it);
    None when ``text`` was not rendered from ``template`` or the template cannot be inverted."""
    try:
        # text with whitespace at an end was not stripped: match it exactly (a value keeps its own
        # trailing newline); text without may have been
        match = compile_template(template, text == text.strip()).fullmatch(text)
    except (UnsupportedTemplate, re.error, RecursionError):
        return None
    if match is None:
        return None
    values = match.groupdict()
    rendered = template.format(**values)
    if rendered != text and rendered.strip() != text:
        return None
    return values


def render_like(template: str, values: dict, original: str) -> str:
    """``template.format(**values)``, stripped when ``original`` was (as LightRAG sends prompts)."""
    text = template.format(**values)
    return text.strip() if original == original.strip() else text
