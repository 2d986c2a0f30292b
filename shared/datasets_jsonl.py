"""A user's own labelled examples: JSONL, one object per line, stored as evaluation examples.

Each line holds the family's input fields (``FIELDS``), optionally a ``reference`` (an object shaped
as the family's metrics expect, ``REFERENCES``, or text: a summary, an answer, LightRAG-format
extraction rows) and an ``id``. Every line is checked before anything is stored; each error names its
line. Lines are keyed on their ``id`` or on a hash of their inputs, so importing a file again adds
only what is new.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from sqlalchemy import Engine

from .datasets import LOADERS, _row, store_rows
from .models import KIND_MAX, NAME_MAX

#: family -> (required input fields, optional input fields with their defaults)
FIELDS = {
    "entity_extraction": (("input_text",), {}),
    "relationship_extraction": (("input_text",), {}),
    "document_analysis": (("document",), {}),
    "summarization": (("description_list",), {"description_type": "Document", "description_name": ""}),
    "query_processing": (("query",), {}),
    "answer_generation": (("query", "context_data"), {}),
    "context_compression": (("query", "context_data"), {}),
    "question_reformulation": (("query",), {}),
}
_PAIRS, _TRIPLES, _TEXTS = "[[name, type], ...]", "[[head, tail, type], ...]", "[text, ...]"
#: family -> {reference key: shape}; keys ending in "?" are optional. query_processing takes none.
REFERENCES = {
    "entity_extraction": {"entities": _PAIRS, "relations?": _TRIPLES},
    "relationship_extraction": {"entities": _PAIRS, "relations": _TRIPLES},
    "document_analysis": {"entities": _PAIRS, "relations?": _TRIPLES},
    "summarization": {"summaries": _TEXTS},
    "answer_generation": {"answers": _TEXTS},
    "context_compression": {"answers": _TEXTS, "supporting": _TEXTS},
    "question_reformulation": {"answers": _TEXTS},
}
#: How many errors are listed before the rest are only counted.
MAX_ERRORS = 20
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class JsonlError(ValueError):
    """The file cannot be imported; ``str()`` lists the errors, each with its line."""


def _shape_ok(value, shape: str) -> bool:
    if not isinstance(value, list):
        return False
    if shape == _TEXTS:
        return all(isinstance(v, str) for v in value)
    sizes = (2,) if shape == _PAIRS else (2, 3)
    return all(isinstance(v, list) and len(v) in sizes and all(isinstance(x, str) for x in v) for v in value)


def _reference(family: str, value) -> dict | None:
    """The stored reference for ``value``; ValueError saying what is wrong with it."""
    if value is None:
        return None
    shapes = REFERENCES.get(family)
    if shapes is None:
        raise ValueError(f"{family} takes no reference (its metrics need none); drop \"reference\"")
    if isinstance(value, str) or (isinstance(value, list) and _TEXTS in shapes.values()):
        texts = [value] if isinstance(value, str) else value
        if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise ValueError("\"reference\" text must not be empty")
        if family in ("summarization", "answer_generation", "question_reformulation"):
            return {next(iter(shapes)): texts}
        from .evaluation import reference_from_text  # LightRAG-format rows, a supporting passage

        return reference_from_text(family, "\n".join(texts))
    if not isinstance(value, dict):
        raise ValueError(f"\"reference\" must be an object or text, got {type(value).__name__}")
    known = {k.rstrip("?"): s for k, s in shapes.items()}
    extra = sorted(set(value) - set(known))
    if extra:
        raise ValueError(f"\"reference\" has unknown keys {', '.join(extra)}; {family} takes {_describe(shapes)}")
    for key, shape in shapes.items():
        name = key.rstrip("?")
        if name not in value and not key.endswith("?"):
            raise ValueError(f"\"reference\" needs \"{name}\": {shape}")
        if name in value and not _shape_ok(value[name], shape):
            raise ValueError(f"\"reference\".\"{name}\" must be {shape}")
    return value


def _describe(shapes: dict) -> str:
    return ", ".join(f"\"{k.rstrip('?')}\": {s}" + (" (optional)" if k.endswith("?") else "") for k, s in shapes.items())


def _example(family: str, obj) -> tuple[dict, dict | None, str | None]:
    """(input fields, reference, id) of one parsed line; ValueError saying what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    required, optional = FIELDS[family]
    allowed = {*required, *optional, "reference", "id"}
    extra = sorted(set(obj) - allowed)
    if extra:
        raise ValueError(f"unknown fields {', '.join(extra)}; {family} takes {', '.join(required)}"
                         + (f" (optional: {', '.join(optional)})" if optional else "") + ", reference, id")
    missing = [f for f in required if f not in obj]
    if missing:
        raise ValueError(f"{family} needs {', '.join(missing)} (text); this line has {', '.join(obj) or 'nothing'}")
    fields = {}
    for name in (*required, *optional):
        value = obj.get(name, optional.get(name))
        if not isinstance(value, str):
            raise ValueError(f"\"{name}\" must be text, got {type(value).__name__}")
        if name in required and not value.strip():
            raise ValueError(f"\"{name}\" is empty")
        fields[name] = value
    ext = obj.get("id")
    if ext is not None and (isinstance(ext, bool) or not isinstance(ext, (str, int)) or not str(ext).strip()
                            or len(str(ext)) > NAME_MAX):
        raise ValueError(f"\"id\" must be a non-empty text or integer of at most {NAME_MAX} characters")
    return fields, _reference(family, obj.get("reference")), None if ext is None else str(ext)


def check_name(name: str) -> None:
    if not _NAME.match(name) or len(name) > KIND_MAX:
        raise ValueError(f"dataset name {name!r}: use letters, digits, '.', '_' or '-', at most {KIND_MAX} characters")
    if name in LOADERS:
        raise ValueError(f"dataset name {name!r} belongs to the public dataset; choose another with --name")


def read_jsonl(path: Path, family: str, dataset: str) -> list[dict]:
    """Every line of ``path`` as an evaluation-example row; ``JsonlError`` listing each bad line."""
    if family not in FIELDS:
        raise ValueError(f"unknown prompt family {family!r}; known: {', '.join(FIELDS)}")
    check_name(dataset)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}")
    rows, errors, seen = [], [], {}
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
                if not line.strip():
                    continue
                if "\x00" in line or "\\u0000" in line:
                    raise ValueError("contains a NUL character, which the database cannot store")
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"not JSON ({exc.msg} at column {exc.colno})") from None
                fields, reference, ext = _example(family, obj)
            except UnicodeDecodeError:
                errors.append(f"{path}:{number}: not UTF-8 text")
                continue
            except ValueError as exc:
                errors.append(f"{path}:{number}: {exc}")
                continue
            ext = ext or "sha256:" + hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]
            if ext in seen:
                what = "id" if obj.get("id") is not None else "inputs"
                errors.append(f"{path}:{number}: the same {what} as line {seen[ext]}")
                continue
            seen[ext] = number
            rows.append(_row(dataset, "user", family, ext, fields, reference))
    if errors:
        more = f"\n... and {len(errors) - MAX_ERRORS} more" if len(errors) > MAX_ERRORS else ""
        raise JsonlError(f"{len(errors)} bad lines in {path}, nothing imported:\n" + "\n".join(errors[:MAX_ERRORS]) + more)
    if not rows:
        raise JsonlError(f"no examples in {path}: expected one JSON object per line")
    return rows


def import_jsonl(engine: Engine, path: Path, family: str, dataset: str) -> tuple[int, int]:
    """Validate then store ``path``'s examples as dataset ``dataset``; (rows read, rows added)."""
    rows = read_jsonl(path, family, dataset)
    return len(rows), store_rows(engine, rows)
