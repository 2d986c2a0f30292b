"""The demo's environment: fast settings, the drifting scripted model, CoNLL04 traffic and gold."""

from __future__ import annotations

import json
from pathlib import Path

MODEL = "1.5b"


def demo_env(data_dir: Path, redis_url: str) -> dict[str, str]:
    """Settings for the demo's processes: a private SQLite file and Redis, seconds instead of hours."""
    flag = data_dir / "model-drifted"
    return {
        "PROMPTLOOP_DATA_DIR": str(data_dir), "DATABASE_URL": "", "REDIS_URL": redis_url,
        "PROMPTLOOP_MODELS": json.dumps({MODEL: f"scripted/drift?flag={flag}"}),
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
