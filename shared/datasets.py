"""Importing the labeled public datasets as evaluation sets (``eval_examples``), from any folder.

CoNLL04 -> entity_extraction, relationship_extraction, document_analysis; SciTLDR -> summarization;
XQuAD and HotpotQA -> answer_generation and question_reformulation (HotpotQA, with its supporting
facts, also -> context_compression). Importing twice adds nothing: rows are keyed on
(dataset, family, external id). The files themselves are never copied.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, func, select
from sqlalchemy.dialects import postgresql, sqlite

from .models import EvalExample

Row = dict


def _row(dataset: str, split: str, family: str, external_id: str, fields: dict, reference: dict) -> Row:
    return {"dataset": dataset, "split": split, "family": family, "external_id": external_id,
            "input": json.dumps(fields, ensure_ascii=False), "reference": json.dumps(reference, ensure_ascii=False)}


def conll04(folder: Path) -> Iterator[Row]:
    for split in ("train", "dev"):
        path = folder / "conll04" / f"conll04_{split}.json"
        if not path.exists():
            continue
        for i, doc in enumerate(json.loads(path.read_text())):
            tokens = doc["tokens"]
            text = " ".join(tokens)
            entities = [[" ".join(tokens[e["start"]:e["end"]]), e["type"]] for e in doc["entities"]]
            relations = [[entities[r["head"]][0], entities[r["tail"]][0], r["type"]] for r in doc["relations"]]
            ref = {"entities": entities, "relations": relations}
            ext = f"{split}-{doc.get('orig_id', i)}-{i}"
            yield _row("conll04", split, "entity_extraction", ext, {"input_text": text}, ref)
            yield _row("conll04", split, "relationship_extraction", ext, {"input_text": text}, ref)
            yield _row("conll04", split, "document_analysis", ext, {"document": text}, ref)


def scitldr(folder: Path) -> Iterator[Row]:
    path = folder / "summarization" / "scitldr_A.shared.jsonl"
    if not path.exists():
        return
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        doc = json.loads(line)
        fields = {"description_type": "Paper", "description_name": doc.get("title") or doc["paper_id"],
                  "description_list": " ".join(doc["source"])}
        yield _row("scitldr", "test", "summarization", doc["paper_id"], fields, {"summaries": doc["target"]})


def xquad(folder: Path) -> Iterator[Row]:
    path = folder / "qa" / "xquad.en.shared.json"
    if not path.exists():
        return
    for article in json.loads(path.read_text())["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                answers = [a["text"] for a in qa["answers"]]
                ref = {"answers": answers}
                yield _row("xquad", "test", "answer_generation", qa["id"],
                           {"query": qa["question"], "context_data": paragraph["context"]}, ref)
                yield _row("xquad", "test", "question_reformulation", qa["id"], {"query": qa["question"]}, ref)


def hotpotqa(folder: Path) -> Iterator[Row]:
    path = folder / "qa" / "hotpotqa_100.shared.json"
    if not path.exists():
        return
    for item in json.loads(path.read_text()):
        paragraphs = {title: sentences for title, sentences in item["context"]}
        context = "\n\n".join(f"{title}\n{''.join(sentences)}" for title, sentences in item["context"])
        supporting = [paragraphs[t][i] for t, i in item["supporting_facts"]
                      if t in paragraphs and i < len(paragraphs[t])]
        ref = {"answers": [item["answer"]], "supporting": supporting}
        qc = {"query": item["question"], "context_data": context}
        yield _row("hotpotqa", "train", "answer_generation", item["_id"], qc, ref)
        yield _row("hotpotqa", "train", "context_compression", item["_id"], qc, ref)
        yield _row("hotpotqa", "train", "question_reformulation", item["_id"], {"query": item["question"]}, ref)


LOADERS = {"conll04": conll04, "scitldr": scitldr, "xquad": xquad, "hotpotqa": hotpotqa}
#: The files each loader reads (any of them), relative to the datasets folder.
FILES = {"conll04": ("conll04/conll04_train.json", "conll04/conll04_dev.json"),
         "scitldr": ("summarization/scitldr_A.shared.jsonl",), "xquad": ("qa/xquad.en.shared.json",),
         "hotpotqa": ("qa/hotpotqa_100.shared.json",)}
#: The expected layout, for people.
LAYOUT = {"conll04": "conll04/conll04_{train,dev}.json", "scitldr": FILES["scitldr"][0],
          "xquad": FILES["xquad"][0], "hotpotqa": FILES["hotpotqa"][0]}


def _present(folder: Path, name: str) -> bool:
    return any((folder / f).exists() for f in FILES[name])


def store_rows(engine: Engine, rows: list[Row]) -> int:
    """Insert evaluation examples, skipping those already there (same dataset, family, external id); rows added."""
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(EvalExample.__table__).on_conflict_do_nothing(
        index_elements=["dataset", "family", "external_id"])
    count = select(func.count()).select_from(EvalExample)
    with engine.begin() as conn:  # rowcount of an executemany is -1 on psycopg: count instead
        before = conn.execute(count).scalar_one()
        for i in range(0, len(rows), 1000):
            conn.execute(stmt, rows[i:i + 1000])
        return conn.execute(count).scalar_one() - before


def where_data_is_looked_for() -> str:
    """How to point ``datasets import`` at the data (for a folder that holds none of it)."""
    return (f"point at your copy with --path FOLDER or PROMPTLOOP_DATASETS_DIR=FOLDER, laid out as "
            f"{', '.join(LAYOUT.values())}; or import your own examples with "
            "`promptloop datasets import-jsonl FILE --family F`")


def import_datasets(engine: Engine, folder: Path, names: list[str] | None = None) -> dict[str, int]:
    """Load the named datasets (default: all found) from ``folder``; returns rows added per dataset.

    ``FileNotFoundError`` saying where data is looked for when the folder is missing or a named
    dataset's file is not in it, or when it holds none of the datasets.
    """
    folder = Path(folder)
    unknown = set(names or []) - set(LOADERS)
    if unknown:
        raise ValueError(f"unknown datasets {sorted(unknown)}; known: {sorted(LOADERS)}")
    if not folder.is_dir():
        raise FileNotFoundError(f"no dataset folder at {folder}: {where_data_is_looked_for()}")
    missing = [n for n in names or [] if not _present(folder, n)]
    if missing:
        raise FileNotFoundError(f"no {', '.join(LAYOUT[n] for n in missing)} in {folder}: "
                                f"{where_data_is_looked_for()}")
    found = [n for n in names or list(LOADERS) if _present(folder, n)]
    if not found:
        raise FileNotFoundError(f"none of the datasets is in {folder}: {where_data_is_looked_for()}")
    return {name: store_rows(engine, list(LOADERS[name](folder))) for name in found}
