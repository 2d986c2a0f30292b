"""The demo's environment: fast settings, its model (the drifting scripted one or a real one), CoNLL04
traffic and gold."""

from __future__ import annotations

import json
import re
from pathlib import Path

MODEL = "1.5b"


def demo_model(value: str | None, data_dir: Path) -> tuple[str, str]:
    """(model key, model spec) for ``demo --model VALUE``: none -> the drifting scripted model; a local
    model's short name ("1.5b", "0.5b") -> its GGUF file; anything else is a model string as in
    ``PROMPTLOOP_MODELS`` (``ollama_chat/qwen2.5:3b``, ``local/PATH.gguf``...), keyed by the size it
    names ("3b") or ``model``. ``ValueError`` (one sentence) for an unknown short name."""
    from shared.localmodels import ALIASES, resolve

    if value is None:
        return MODEL, f"scripted/drift?flag={drift_flag(data_dir)}"
    if "/" not in value:
        if value not in ALIASES:
            raise ValueError(f"unknown model {value!r}: give a local model ({', '.join(ALIASES)}; see "
                             "`promptloop models list`) or a model string such as ollama_chat/qwen2.5:3b")
        return value, f"local/{resolve(value).name}"
    size = re.search(r"(?<![\d.])(0\.5|1\.5|3|7|14|32)b\b", value.lower())
    return (f"{size.group(1)}b" if size else "model"), value


def demo_env(data_dir: Path, redis_url: str, model: tuple[str, str] | None = None) -> dict[str, str]:
    """Settings for the demo's processes: a private SQLite file and Redis, seconds instead of hours.
    With a real ``model`` (key, spec) the samples are smaller and the optimization starts on feedback
    volume (a real model does not drift on cue; see ``cli.demo_loop``)."""
    key, spec = model or demo_model(None, data_dir)
    env = {
        "PROMPTLOOP_DATA_DIR": str(data_dir), "DATABASE_URL": "", "REDIS_URL": redis_url,
        "PROMPTLOOP_MODELS": json.dumps({key: spec}),
        "PROMPTLOOP_OPTIMIZERS": json.dumps({"entity_extraction": "demos"}),
        "DSPY_AUTO_OPTIMIZE": "true",
        # Rollouts: a check every second, 5 s per step, 10 calls per arm before any verdict.
        "PROMPTLOOP_ROLLOUT_CHECK_S": "1", "PROMPTLOOP_ROLLOUT_HOLD_S": "5", "PROMPTLOOP_ROLLOUT_MIN_SAMPLES": "10",
        # Monitoring and triggers: every 2 s, degradation judged on the last 30 s against the hour before.
        "PROMPTLOOP_MONITOR_INTERVAL_S": "2", "PROMPTLOOP_DEGRADATION_WINDOW_MINUTES": "0.5",
        "PROMPTLOOP_DEGRADATION_BASELINE_HOURS": "1", "PROMPTLOOP_OPTIMIZATION_INTERVAL_HOURS": "1",
        # A small optimization and validation (the scripted model answers at once).
        "PROMPTLOOP_OPTIMIZE_TRAIN": "6", "PROMPTLOOP_OPTIMIZE_VAL": "6", "PROMPTLOOP_OPTIMIZE_BUDGET_CALLS": "120",
        "PROMPTLOOP_VALIDATION_EXAMPLES": "20",
    }
    if not spec.startswith("scripted/drift"):
        env.update({
            # Users rate answers (the demo's gold score as their feedback): 10 ratings start an optimization.
            "DSPY_FEEDBACK_THRESHOLD": "10",
            # A real model answers in seconds to minutes: fewer calls per verdict, a smaller search.
            "PROMPTLOOP_ROLLOUT_MIN_SAMPLES": "5", "PROMPTLOOP_OPTIMIZE_TRAIN": "4", "PROMPTLOOP_OPTIMIZE_VAL": "4",
            "PROMPTLOOP_OPTIMIZE_BUDGET_CALLS": "40", "PROMPTLOOP_VALIDATION_EXAMPLES": "8",
            "PROMPTLOOP_OPTIMIZATION_TIMEOUT_MINUTES": "120", "PROMPTLOOP_LM_MAX_TOKENS": "512",
            # Three copies of a local model share the cores: one thread each (0: all cores).
            "PROMPTLOOP_LOCAL_THREADS": "1",
        })
    return env


def drift_flag(data_dir: Path) -> Path:
    return data_dir / "model-drifted"


def conll_sentences(datasets_dir: Path, limit: int = 400) -> list[tuple[str, dict]]:
    """CoNLL04 training sentences (never the dev sentences validation holds out) with gold entities."""
    rows = json.loads((datasets_dir / "conll04" / "conll04_train.json").read_text())[:limit]
    out = []
    for s in rows:
        tokens = s["tokens"]
        ents = [[" ".join(tokens[e["start"]:e["end"]]), e["type"]] for e in s["entities"]]
        out.append((" ".join(tokens), {"entities": ents, "relations": []}))
    return out
