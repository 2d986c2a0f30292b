"""Serve a routed variant's prompt in place of the one LightRAG rendered for a call.

LightRAG renders each prompt from its ``PROMPTS`` dict; a variant's template carries the ``PROMPTS``
values that make a stock LightRAG send it (``template["lightrag"]``). For one call, ``LightRAGRouting``
recovers the values LightRAG filled in (``inversion``: input text, language, delimiters, record
limits, examples...), asks the router which variant serves the call, and renders that variant's
``PROMPTS`` values with the same values, building its examples block as ``lightrag.operate`` does.

Covered (each a ``Shape``): entity extraction in text and JSON mode, its gleaning (continue) calls
(same variant as the chunk's first call; ``history_messages[0]`` re-rendered too), description
summaries, keyword extraction, and answers (``rag_response`` / ``naive_rag_response`` as the system
prompt). A call no shape matches (a custom ``system_prompt`` passed to a query, a prompt file with
other fields) is sent as LightRAG rendered it, and so is a call whose ``PROMPTS`` keys the selected
variant does not define (JSON-mode extraction for a text-mode variant, naive answers for a
``rag_response`` variant): its incumbent serves if it can, else LightRAG's own prompt.

Known limits: LightRAG's LLM response cache is keyed on the prompt LightRAG rendered, before this
module replaces it, so a chunk whose extraction is already cached gets the cached answer whatever
variant is selected (and no LLM call, so no event). Recovering the values costs about 0.1 ms a call
(regexes over the prompt; the system prompt's values are cached), nothing beside an LLM call.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

from .inversion import invert, render_like

_TEXT_EXAMPLES = ("entity_extraction_examples", True,
                  ("tuple_delimiter", "completion_delimiter", "entity_types_guidance", "language"))
_JSON_EXAMPLES = ("entity_extraction_json_examples", True, ())


class Shape(NamedTuple):
    """Which ``PROMPTS`` keys rendered one kind of LightRAG call."""

    system: Optional[str]  # the system prompt's key (None: no system prompt)
    prompt: Optional[str]  # the prompt's key (None: the prompt is the user's query itself)
    history: Optional[str] = None  # the key of ``history_messages[0]`` (gleaning replays the first call)
    examples: Optional[tuple] = None  # (list key, right-strip each, fields the joined block is formatted with)
    key: str = "input_text"  # the value that is the default routing key

    def keys(self) -> tuple:
        own = (self.system, self.prompt, self.history, self.examples[0] if self.examples else None)
        return tuple(k for k in own if k)


SHAPES = {
    "entity_extraction": (
        Shape("entity_extraction_system_prompt", "entity_extraction_user_prompt", examples=_TEXT_EXAMPLES),
        Shape("entity_extraction_system_prompt", "entity_continue_extraction_user_prompt",
              "entity_extraction_user_prompt", _TEXT_EXAMPLES),
        Shape("entity_extraction_json_system_prompt", "entity_extraction_json_user_prompt", examples=_JSON_EXAMPLES),
        Shape("entity_extraction_json_system_prompt", "entity_continue_extraction_json_user_prompt",
              "entity_extraction_json_user_prompt", _JSON_EXAMPLES),
    ),
    "summarization": (Shape(None, "summarize_entity_descriptions", key="description_name"),),
    "query_processing": (Shape(None, "keywords_extraction", examples=("keywords_extraction_examples", False, ()),
                               key="query"),),
    "answer_generation": (Shape("rag_response", None, key="query"), Shape("naive_rag_response", None, key="query")),
}

#: Families with follow-up calls that must stay on their first call's variant.
GLEANING_FAMILIES = frozenset(f for f, shapes in SHAPES.items() if any(s.history for s in shapes))


class Routed(NamedTuple):
    prompt: str
    system_prompt: Optional[str]
    history_messages: Optional[list]
    variant: str  # the variant that serves the call (for its events)


def _merge(into: dict, values: Optional[dict]) -> bool:
    if values is None:
        return False
    for name, value in values.items():
        if into.setdefault(name, value) != value:
            return False  # two parts disagree on a value: not this shape
    return True


def recover(shapes, prompts, prompt, system_prompt, history_messages, system_cache: dict):
    """(shape, values) of the first shape whose templates rendered this call, else None."""
    first_user = None
    if history_messages and isinstance(history_messages[0], dict) and history_messages[0].get("role") == "user":
        first_user = history_messages[0].get("content")
    for shape in shapes:
        if (shape.system is None) != (system_prompt is None) or (shape.history and not isinstance(first_user, str)):
            continue
        values = {} if shape.prompt else {"query": prompt}
        if shape.prompt and not _merge(values, invert(prompts[shape.prompt], prompt)):
            continue
        if shape.history and not _merge(values, invert(prompts[shape.history], first_user)):
            continue
        if shape.system:
            cache_key = (prompts[shape.system], system_prompt)
            if cache_key not in system_cache:  # the system prompt is the same for a whole insert
                if len(system_cache) > 16:
                    system_cache.clear()
                system_cache[cache_key] = invert(prompts[shape.system], system_prompt)
            if not _merge(values, system_cache[cache_key]):
                continue
        return shape, values
    return None


def render(shape: Shape, values: dict, prompts, lightrag, prompt, system_prompt, history_messages):
    """(prompt, system_prompt, history_messages) as ``PROMPTS.update(lightrag)`` would have them;
    raises when the variant does not cover this call or does not render."""
    if not isinstance(lightrag, dict) or not any(k in lightrag for k in shape.keys()):
        raise ValueError("the variant defines none of this call's PROMPTS keys")
    values = dict(values)
    if shape.examples and shape.examples[0] in lightrag:
        key, rstrip, fields = shape.examples
        items = lightrag[key]
        if not isinstance(items, list) or not all(isinstance(e, str) for e in items):
            raise ValueError(f"{key} must be a list of strings")
        block = "\n".join(e.rstrip() if rstrip else e for e in items)
        values["examples"] = block.format(**{f: values[f] for f in fields}) if fields else block

    def part(key, original):
        template = lightrag.get(key, prompts[key])
        if not isinstance(template, str):
            raise ValueError(f"{key} must be a string")
        return render_like(template, values, original)

    new_prompt = part(shape.prompt, prompt) if shape.prompt else prompt
    new_system = part(shape.system, system_prompt) if shape.system else system_prompt
    new_history = history_messages
    if shape.history:
        first = history_messages[0]
        content = part(shape.history, first["content"])
        if content != first["content"]:
            new_history = [{**first, "content": content}, *history_messages[1:]]
    return new_prompt, new_system, new_history


class LightRAGRouting:
    """Route LightRAG's calls for one ``model`` through ``router``; see the module's docstring.

    ``routing_key(family, values, prompt)`` may return the key (e.g. a document id) instead of the
    shape's default value (the chunk's text for extraction); None falls back to that default.
    """

    def __init__(self, router, model: str, variant: str, *, routing_key: Optional[Callable] = None,
                 prompts=None, memo_size: int = 4096):
        self.router, self.model, self.variant = router, model, variant
        self.routing_key = routing_key
        self._prompts = prompts
        self._system_cache: dict = {}
        self._memo: dict = {}  # (family, hash of the routing key) -> Selection of a chunk's first call
        self._memo_size = memo_size

    @property
    def prompts(self):
        if self._prompts is None:
            from lightrag.prompt import PROMPTS  # only in LightRAG's process, when a call is routed

            self._prompts = PROMPTS
        return self._prompts

    def route(self, family: str, prompt, system_prompt, history_messages) -> Routed:
        """The call as the selected variant sends it. Raises on a failure of its own (the caller then
        sends LightRAG's prompt as it is)."""
        unchanged = Routed(prompt, system_prompt, history_messages, self.variant)
        shapes = SHAPES.get(family)
        if not shapes or not isinstance(prompt, str):
            return unchanged
        prompts = self.prompts
        found = recover(shapes, prompts, prompt, system_prompt, history_messages, self._system_cache)
        if found is None:
            return unchanged
        shape, values = found
        key = self.routing_key(family, values, prompt) if self.routing_key is not None else None
        if key is None:
            key = values[shape.key]
        elif not isinstance(key, (str, bytes)):
            key = str(key)  # a document id given as a number
        memo_key = (family, hash(key))
        selection = self._memo.get(memo_key) if shape.history else None
        if selection is None:
            selection = self.router.select_variant(family, self.model, key, self.variant)
        if family in GLEANING_FAMILIES and not shape.history:  # remembered for the chunk's gleaning calls
            if len(self._memo) >= self._memo_size:
                self._memo.pop(next(iter(self._memo), None), None)
            self._memo[memo_key] = selection
        for choice in (selection, self.router.incumbent(family, self.model, self.variant)):
            if choice.template is None:  # "use your own prompt"
                return Routed(prompt, system_prompt, history_messages, choice.name)
            try:
                sent = render(shape, values, prompts, choice.template.get("lightrag"), prompt, system_prompt,
                              history_messages)
            except Exception:
                continue  # a candidate that fails to render: its incumbent serves
            return Routed(*sent, choice.name)
        return unchanged
