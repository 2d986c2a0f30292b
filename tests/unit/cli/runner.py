"""Running ``promptloop`` as a person does: a subprocess on its own data directory (SQLite, Redis down)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def cli_runner(data_dir: Path, models: dict, **env):
    """``run(*args, **extra_env) -> (exit code, stdout + stderr)`` with ``models`` as PROMPTLOOP_MODELS."""
    base = {**os.environ, "PROMPTLOOP_DATA_DIR": str(data_dir), "REDIS_URL": "redis://127.0.0.1:1/0",
            "PROMPTLOOP_MODELS": json.dumps(models), **env}
    base.pop("DATABASE_URL", None)
    base.pop("PROMPTLOOP_DEBUG", None)

    def run(*args, **extra):
        done = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env={**base, **extra},
                              capture_output=True, text=True, timeout=120)
        return done.returncode, done.stdout + done.stderr

    return run
