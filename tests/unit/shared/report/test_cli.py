"""``promptloop report`` as a user runs it: a subprocess on the embedded SQLite of PROMPTLOOP_DATA_DIR."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]


def promptloop(data_dir, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PROMPTLOOP_DATABASE_URL")}
    env.update(PROMPTLOOP_DATA_DIR=str(data_dir), COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=240)


def test_report_before_init_says_to_run_init(tmp_path):
    out = promptloop(tmp_path, "report")
    assert out.returncode == 2 and "promptloop init" in out.stdout + out.stderr


def test_report_after_init_writes_the_page_and_says_where(tmp_path):
    assert promptloop(tmp_path, "init").returncode == 0
    out = promptloop(tmp_path, "report", "--out", str(tmp_path / "rep"))
    assert out.returncode == 0, out.stdout + out.stderr
    page = tmp_path / "rep" / "report.html"
    assert f"report written to {page.resolve()}" in out.stdout
    assert "No metric events yet" in page.read_text() and "none (no data yet)" in out.stdout
    default = promptloop(tmp_path, "report", "--hours", "2")
    assert default.returncode == 0 and str(tmp_path / "report" / "report.html") in default.stdout
    assert promptloop(tmp_path, "report", "--hours", "0").returncode == 2
