"""Language models by model key, and a shared cache of their answers.

``settings.models`` maps keys ("1.5b", "3b", "7b") to LiteLLM model strings; calls go through DSPy's
``dspy.LM`` (temperature 0). ``local/<name or path>`` runs a GGUF file in this process with
``llama-cpp-python`` (``promptloop models fetch`` gets the offline Qwen2.5-Coder models), and
``scripted/<behaviour>`` names a deterministic LM for tests and benchmarks. Every answer is cached in SQL (``lm_cache``), shared by all workers, so re-scoring the
same variant on the same example costs nothing.

An LM has a ``name``, ``params`` (part of the cache key), ``reply(messages) -> Reply`` (the answer's
text and any reasoning the model sent beside it) and ``complete(messages) -> str`` (the text alone).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from .models import LMCacheEntry
from .optimize.demos import mention_context
from .settings import Settings


# LiteLLM otherwise fetches its model cost map from the internet on first use (retrying for ~8 s on an
# offline machine); the copy it ships is enough, since promptloop never bills by it.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


class LMError(RuntimeError):
    """The LM could not answer (unreachable, refused, timed out); the example is recorded as failed."""


@dataclass(frozen=True)
class Reply:
    """One answer: the text that is scored, and the reasoning a reasoning model sent beside it."""

    text: str
    reasoning: str | None = None


def as_reply(answer, model: str) -> Reply:
    """What ``dspy.LM`` returned, as a ``Reply``.

    DSPy returns a string, or a dict when the model sent more than text: ``{"text": ...,
    "reasoning_content": ...}`` from reasoning models (DeepSeek-R1, Qwen3 thinking). Its text is None
    when the model spent its tokens reasoning and never answered: that is a failed call, not an answer.
    """
    if isinstance(answer, str):
        return Reply(answer)
    if not isinstance(answer, dict):
        raise LMError(f"{model}: unexpected answer type {type(answer).__name__}")
    reasoning = answer.get("reasoning_content")
    reasoning = str(reasoning) if reasoning else None
    if not isinstance(answer.get("text"), str):
        raise LMError(f"{model}: no text in the answer (reasoning only: {(reasoning or '')[:300]!r})")
    return Reply(answer["text"], reasoning)


def storable(text: str | None) -> str | None:
    """Text PostgreSQL can store: it refuses NUL characters, which carry nothing in an answer."""
    return text.replace("\x00", "") if text else text


class _TextOnly:
    def complete(self, messages: list[dict]) -> str:
        """The answer's text alone."""
        return self.reply(messages).text


@dataclass
class LiteLLM(_TextOnly):
    """Any LiteLLM model string, called through ``dspy.LM``."""

    model: str
    api_base: str = ""
    max_tokens: int = 1024
    _lm: object = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.model

    @property
    def params(self) -> dict:
        return {"temperature": 0.0, "max_tokens": self.max_tokens}

    def reply(self, messages: list[dict]) -> Reply:
        import dspy

        if self._lm is None:
            # promptloop caches in SQL (shared across workers); DSPy's own per-machine cache stays off.
            self._lm = dspy.LM(self.model, cache=False, api_base=self.api_base or None, **self.params)
        try:
            answer = self._lm(messages=messages)[0]
        except Exception as exc:  # LiteLLM raises many provider-specific types
            raise LMError(f"{self.model}: {type(exc).__name__}: {exc}") from exc
        return as_reply(answer, self.model)


_LLAMAS: dict[tuple[str, int], object] = {}
_LLAMA_LOCK = threading.Lock()


@dataclass
class LocalGGUF(_TextOnly):
    """A GGUF model run in process by llama-cpp-python (one copy per worker process, loaded on first use).

    Build llama-cpp-python with ``CMAKE_ARGS="-DGGML_NATIVE=OFF"`` on these machines: the native build
    uses AMX instructions and crashes on the first generation (LOCAL_LM.md).
    """

    spec: str
    path: Path
    n_ctx: int = 4096
    max_tokens: int = 1024
    #: CPU threads (0: one per core); not part of the cache key, since it does not change the answer.
    threads: int = 0

    @property
    def name(self) -> str:
        return self.spec

    @property
    def params(self) -> dict:
        return {"temperature": 0.0, "max_tokens": self.max_tokens, "n_ctx": self.n_ctx}

    def _llama(self):
        key = (str(self.path), self.n_ctx)
        if key not in _LLAMAS:
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise LMError("local models need llama-cpp-python: CMAKE_ARGS=-DGGML_NATIVE=OFF "
                              "pip install 'promptloop[local]'") from exc
            if not self.path.exists():
                raise LMError(f"{self.path} is missing: run `promptloop models fetch`")
            _LLAMAS[key] = Llama(model_path=str(self.path), n_ctx=self.n_ctx, n_threads=self.threads or os.cpu_count(),
                                 chat_format="chatml", verbose=False)
        return _LLAMAS[key]

    def reply(self, messages: list[dict]) -> Reply:
        with _LLAMA_LOCK:  # a Llama instance serves one generation at a time
            llama = self._llama()
            try:
                out = llama.create_chat_completion(messages=messages, temperature=0.0, max_tokens=self.max_tokens)
            except ValueError as exc:  # e.g. the prompt does not fit the context window
                raise LMError(f"{self.spec}: {exc}") from exc
        return Reply(out["choices"][0]["message"]["content"] or "")


_CAPITALIZED = re.compile(r"\b[A-Z][a-zA-Z]+(?:\s+[A-Z][a-zA-Z]+)*")
_INPUT_TEXT = re.compile(r"---Input Text---\s*```\n(.*?)\n```", re.S)


@dataclass
class ScriptedLM(_TextOnly):
    """Deterministic LMs, named ``scripted/<behaviour>?latency_ms=50&fail_on=TEXT``.

    - ``extract``: LightRAG-format entity rows for the capitalized phrases of the input text (a crude
      but real extractor, so metrics move), then the completion delimiter;
    - ``echo``: the last user message;
    - ``hash``: a short text derived from a hash of the messages.
    - ``follow``: an extractor whose answer depends on the prompt the way a small model's does
      (``follow_prompt``), so a better prompt really scores better in tests of the optimizers;
    - ``reflect``: a proposal model that turns the feedback it is shown into a rule (``reflect_on``);
    - ``propose``: a proposal model that answers DSPy's instruction-proposal prompts (MIPROv2's
      ``GroundedProposer``) in DSPy's chat-adapter format (``propose_on``).
    - ``drift?flag=PATH``: a model that drifts (the demo's): while the file PATH does not exist it
      extracts cleanly whatever the prompt; once it exists it answers like ``follow`` (a prompt
      without worked examples then gets an invented entity and no completion delimiter).
    ``max_prompt_chars`` (with ``follow``): a prompt longer than that overwhelms it and it forgets the
    completion delimiter (what pruning an instruction can cure). ``latency_ms`` sleeps before
    answering (benchmarks); ``fail_on`` raises ``LMError`` for prompts containing that text (tests
    of failure handling); ``crash_on`` kills its own process with SIGKILL (a model that takes its
    worker down: out of memory, a native crash); ``hang_on`` never answers (a call stuck on a dead
    connection), until a signal interrupts it.
    """

    spec: str
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        parsed = urlparse(self.spec)
        self.behaviour = parsed.path.split("/", 1)[1]
        query = parse_qs(parsed.query)
        self.latency_s = float(query.get("latency_ms", ["0"])[0]) / 1000
        self.fail_on = query.get("fail_on", [None])[0]
        self.crash_on = query.get("crash_on", [None])[0]
        self.hang_on = query.get("hang_on", [None])[0]
        self.flag = query.get("flag", [None])[0]
        self.max_prompt_chars = int(query.get("max_prompt_chars", ["0"])[0])
        if self.behaviour not in ("extract", "echo", "hash", "follow", "reflect", "propose", "drift"):
            raise ValueError(f"unknown scripted LM behaviour {self.behaviour!r} in {self.spec!r}")

    @property
    def name(self) -> str:
        return self.spec

    def reply(self, messages: list[dict]) -> Reply:
        return Reply(self._answer(messages))

    def _answer(self, messages: list[dict]) -> str:
        if self.latency_s:
            time.sleep(self.latency_s)
        prompt = "\n".join(m["content"] for m in messages)
        if self.fail_on and self.fail_on in prompt:
            raise LMError(f"scripted failure: prompt contains {self.fail_on!r}")
        if self.crash_on and self.crash_on in prompt:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.hang_on and self.hang_on in prompt:
            time.sleep(24 * 3600)
        if self.behaviour == "echo":
            return messages[-1]["content"]
        if self.behaviour == "hash":
            return "answer " + hashlib.sha256(prompt.encode()).hexdigest()[:12]
        if self.behaviour == "follow":
            answer = follow_prompt(messages)
            if self.max_prompt_chars and len(prompt) > self.max_prompt_chars:
                answer = answer.removesuffix("\n<|COMPLETE|>")
            return answer
        if self.behaviour == "drift":
            return follow_prompt(messages) if self.flag and os.path.exists(self.flag) else _clean_rows(messages)
        if self.behaviour == "reflect":
            return reflect_on(messages)
        if self.behaviour == "propose":
            return propose_on(messages)
        match = _INPUT_TEXT.search(messages[-1]["content"])
        text = match.group(1) if match else messages[-1]["content"]
        names = list(dict.fromkeys(_CAPITALIZED.findall(text)))
        rows = [f"entity<|#|>{n}<|#|>other<|#|>{n} appears in the text." for n in names]
        return "\n".join(rows + ["<|COMPLETE|>"])


def _clean_rows(messages: list[dict]) -> str:
    """A well-behaved extractor: one row per capitalized phrase, the delimiter when the prompt shows it."""
    prompt = "\n".join(m["content"] for m in messages)
    match = _INPUT_TEXT.search(messages[-1]["content"])
    text = match.group(1) if match else messages[-1]["content"]
    rows = [f"entity<|#|>{n}<|#|>other<|#|>{n} appears in the text." for n in dict.fromkeys(_CAPITALIZED.findall(text))]
    return "\n".join(rows + (["<|COMPLETE|>"] if "<|COMPLETE|>" in prompt else []))


def _last_demo_says_nothing(prompt: str) -> bool:
    """Whether every entity row of the prompt's last worked example is the "... named in the text." filler."""
    if "<Input Text>" not in prompt:
        return False
    last = prompt.rsplit("<Input Text>", 1)[1]
    rows = [line for line in last.splitlines() if line.startswith("entity<|#|>")]
    return bool(rows) and all(line.endswith("named in the text.") for line in rows)


def follow_prompt(messages: list[dict]) -> str:
    """A scripted small model: worked examples in the prompt teach it; their absence shows.

    - no worked example (``<Input Text>`` blocks) in the prompt: it adds an entity the text never names
      and forgets the completion delimiter (LightRAG rejects the answer);
    - one: clean rows, but it still forgets the delimiter;
    - two or more: clean rows and the delimiter — and it types people as ``Person``;
    - the delimiter is written only if the prompt itself shows it (a prompt that dropped
      ``{completion_delimiter}`` gets none);
    - a task-guidance section that asks for the completion delimiter, or to extract "never the
      extractor", is obeyed;
    - it describes entities as the last worked example does: after one whose every entity is "X is a
      person named in the text." it says only that; otherwise it quotes the words around the name.
    """
    prompt = "\n".join(m["content"] for m in messages)
    demos = prompt.count("<Input Text>")
    guidance = prompt.split("---Task Guidance---", 1)[1].split("\n\n", 1)[0].lower() if "---Task Guidance---" in prompt else ""
    match = _INPUT_TEXT.search(messages[-1]["content"])
    text = match.group(1) if match else messages[-1]["content"]
    names = list(dict.fromkeys(_CAPITALIZED.findall(text)))
    filler = _last_demo_says_nothing(prompt)
    rows = [f"entity<|#|>{n}<|#|>{'person' if demos >= 2 else 'other'}<|#|>"
            + (f"{n} is named in the text." if filler else f"{mention_context(n, text) or n}.") for n in names]
    if demos == 0 and "never the extractor" not in guidance:
        rows.append("entity<|#|>Knowledge Graph Specialist<|#|>other<|#|>The one extracting.")
    if (demos >= 2 or "completion delimiter" in guidance) and "<|COMPLETE|>" in prompt:
        rows.append("<|COMPLETE|>")
    return "\n".join(rows)


def reflect_on(messages: list[dict]) -> str:
    """A scripted proposal model: the rules the feedback in its prompt calls for, in a fenced block."""
    prompt = "\n".join(m["content"] for m in messages)
    rules = []
    if "completion delimiter" in prompt:
        rules.append("Always end the answer with the completion delimiter line.")
    if "should not have been extracted" in prompt:
        rules.append("Extract only entities the text names; never the extractor itself.")
    return "```\n" + (" ".join(rules) or "Extract every named entity.") + "\n```"


_OUTPUT_FIELDS = re.compile(r"Your output fields are:\n(.*?)\nAll interactions", re.S)


def propose_on(messages: list[dict]) -> str:
    """A scripted proposal model for DSPy's signatures: every output field the prompt asks for, answered.

    The instruction it proposes (``proposed_instruction``) depends on what the proposal prompt shows,
    the way a real proposer's does: a prompting tip makes it ask for the completion delimiter, worked
    examples (task demos) make it rule out extracting the extractor; with neither it stays generic.
    """
    system = messages[0]["content"] if messages[0]["role"] == "system" else ""
    block = _OUTPUT_FIELDS.search(system)
    fields = re.findall(r"^\d+\. `(\w+)`", block.group(1), re.M) if block else []
    user = messages[-1]["content"]
    rules = []
    if re.search(r"\[\[ ## tip ## \]\]\n\S", user):
        rules.append("Always end the answer with the completion delimiter line.")
    demos = re.search(r"\[\[ ## task_demos ## \]\]\n(.*?)\n", user)
    if demos and demos.group(1).strip() and not demos.group(1).startswith("No task demos"):
        rules.append("Extract only entities the text names; never the extractor itself.")
    answers = {"proposed_instruction": " ".join(rules) or "Extract every named entity in the text."}
    other = "Short news sentences that name people, organizations and places."  # summaries, descriptions
    parts = [f"[[ ## {name} ## ]]\n{answers.get(name, other)}" for name in fields]
    return "\n\n".join(parts + ["[[ ## completed ## ]]"])


def get_lm(model_key: str, settings: Settings):
    """The LM configured for ``model_key``; ``ValueError`` naming the configured keys otherwise."""
    try:
        spec = settings.models[model_key]
    except KeyError:
        raise ValueError(f"no model configured for {model_key!r}; PROMPTLOOP_MODELS has "
                         f"{', '.join(settings.models)}") from None
    if spec.startswith("scripted/"):
        return ScriptedLM(spec)
    if spec.startswith("local/"):
        return LocalGGUF(spec, local_model_path(spec, settings), n_ctx=settings.local_n_ctx,
                         max_tokens=settings.lm_max_tokens, threads=settings.local_threads)
    return LiteLLM(spec, api_base=settings.lm_api_base, max_tokens=settings.lm_max_tokens)


def local_model_path(spec: str, settings: Settings) -> Path:
    """The GGUF file of a ``local/<path.gguf or known name>`` spec (``ValueError`` for an unknown name)."""
    from .localmodels import model_path

    target = spec.split("/", 1)[1]
    return Path(target) if target.endswith(".gguf") else model_path(settings.models_dir, target)


def cache_key(lm, messages: list[dict]) -> str:
    payload = json.dumps({"model": lm.name, "params": lm.params, "messages": messages}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def cached_replies(engine: Engine, keys: list[str]) -> dict[str, Reply]:
    """The cached answers among ``keys`` (one query for a whole chunk)."""
    if not keys:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(select(LMCacheEntry.key, LMCacheEntry.response, LMCacheEntry.reasoning)
                            .where(LMCacheEntry.key.in_(keys)))
        return {key: Reply(response, reasoning) for key, response, reasoning in rows}


def cache_lookup(engine: Engine, keys: list[str]) -> dict[str, str]:
    """The cached answers' texts among ``keys``."""
    return {key: reply.text for key, reply in cached_replies(engine, keys).items()}


def cache_insert(engine: Engine):
    """The statement that stores answers (rows from ``cache_row``), keeping the first one stored for a key."""
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(LMCacheEntry.__table__).on_conflict_do_nothing(index_elements=["key"])


def cache_row(key: str, lm, reply: Reply) -> dict:
    return {"key": key, "model": lm.name[:200], "response": storable(reply.text), "reasoning": storable(reply.reasoning)}


def cached_complete(engine: Engine, lm, messages: list[dict]) -> tuple[str, bool]:
    """The LM's answer, from the shared cache when this exact call was made before; (text, was_cached)."""
    key = cache_key(lm, messages)
    hit = cache_lookup(engine, [key]).get(key)
    if hit is not None:
        return hit, True
    reply = lm.reply(messages)
    with engine.begin() as conn:
        conn.execute(cache_insert(engine), cache_row(key, lm, reply))
    return reply.text, False
