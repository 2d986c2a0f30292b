"""Data a user can bring: `datasets import` says where it looks, `datasets import-jsonl` checks every line
(subprocesses on the embedded database)."""

import json
import sqlite3
from pathlib import Path

import pytest

from tests.unit.cli.runner import cli_runner

ROOT = Path(__file__).resolve().parents[3]
WHERE = ("point at your copy with --path FOLDER or PROMPTLOOP_DATASETS_DIR=FOLDER, laid out as "
         "conll04/conll04_{train,dev}.json, summarization/scitldr_A.shared.jsonl, qa/xquad.en.shared.json, "
         "qa/hotpotqa_100.shared.json; or import your own examples with `promptloop datasets import-jsonl FILE --family F`")


@pytest.fixture
def cli(tmp_path):
    run = cli_runner(tmp_path, {"3b": "scripted/extract"})

    assert run("init")[0] == 0
    return run


def rows(tmp_path, dataset):
    with sqlite3.connect(tmp_path / "promptloop.db") as conn:
        return conn.execute("SELECT family, external_id, input, reference FROM eval_examples WHERE dataset = ? "
                            "ORDER BY id", (dataset,)).fetchall()


def test_import_says_where_it_looks_and_how_to_point_elsewhere(cli, tmp_path):
    code, out = cli("datasets", "import", PROMPTLOOP_DATASETS_DIR=str(tmp_path / "nowhere"))
    assert code == 2 and out.strip() == f"no dataset folder at {tmp_path / 'nowhere'}: {WHERE}"
    (tmp_path / "empty").mkdir()
    code, out = cli("datasets", "import", "--path", str(tmp_path / "empty"))
    assert code == 2 and out.strip() == f"none of the datasets is in {tmp_path / 'empty'}: {WHERE}"
    (tmp_path / "some" / "conll04").mkdir(parents=True)
    (tmp_path / "some" / "conll04" / "conll04_dev.json").write_text("[]")
    code, out = cli("datasets", "import", "--path", str(tmp_path / "some"), "--name", "xquad")
    assert code == 2 and out.strip() == f"no qa/xquad.en.shared.json in {tmp_path / 'some'}: {WHERE}"
    code, out = cli("datasets", "import", "--path", str(tmp_path / "some"))
    assert code == 0 and out.strip() == "conll04: 0 examples added"  # what is there, nothing claimed about the rest


def test_jsonl_examples_are_stored_for_evaluate_and_importing_again_adds_nothing(cli, tmp_path):
    lines = [{"input_text": "Ada Lovelace met Charles Babbage.", "reference": {"entities": [["Ada Lovelace", "person"]]}},
             {"input_text": "Marie Curie was born in Warsaw.", "id": 7},
             {"input_text": "Alan Turing studied at Cambridge.",
              "reference": "(entity<|#|>Alan Turing<|#|>person<|#|>A mathematician.)"}]
    path = tmp_path / "people.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    code, out = cli("datasets", "import-jsonl", str(path), "--family", "entity_extraction")
    assert code == 0 and out.strip() == ("people: 3 entity_extraction examples read, 3 added (evaluate them with "
                                         "`promptloop evaluate --dataset people --family entity_extraction`)")
    stored = rows(tmp_path, "people")
    assert [json.loads(i) for _, _, i, _ in stored] == [{"input_text": line["input_text"]} for line in lines]
    assert json.loads(stored[0][3]) == {"entities": [["Ada Lovelace", "person"]]}
    assert stored[1][1] == "7" and json.loads(stored[1][3]) is None
    assert json.loads(stored[2][3])["entities"] == [["Alan Turing", "person"]]  # LightRAG rows, parsed
    code, out = cli("datasets", "import-jsonl", str(path), "--family", "entity_extraction")
    assert code == 0 and "3 entity_extraction examples read, 0 added" in out

    (tmp_path / "answers.jsonl").write_text(json.dumps({"query": "Capital of France?", "context_data": "Paris is.",
                                                        "reference": "Paris"}) + "\n")
    code, out = cli("datasets", "import-jsonl", str(tmp_path / "answers.jsonl"), "--family", "answer_generation",
                    "--name", "qa-mine")
    assert code == 0 and "qa-mine: 1 answer_generation examples read, 1 added" in out
    assert json.loads(rows(tmp_path, "qa-mine")[0][3]) == {"answers": ["Paris"]}


def test_every_bad_line_is_named_and_nothing_is_stored(cli, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join([
        b'{"input_text": "fine"}',
        b'{"text": "wrong field"}',
        b'{"input_text": 5}',
        b"not json at all",
        b"[1, 2]",
        b'{"input_text": "x", "reference": {"entities": [["only a name"]]}}',
        b'{"input_text": "y", "reference": {"answers": ["a"]}}',
        b'{"input_text": "fine"}',
        b'{"input_text": "caf\xe9"}',
        b'{"input_text": "   "}',
    ]) + b"\n")
    code, out = cli("datasets", "import-jsonl", str(path), "--family", "entity_extraction")
    assert code == 2 and "Traceback" not in out
    assert out.strip().splitlines() == [
        f"9 bad lines in {path}, nothing imported:",
        f"{path}:2: unknown fields text; entity_extraction takes input_text, reference, id",
        f'{path}:3: "input_text" must be text, got int',
        f"{path}:4: not JSON (Expecting value at column 1)",
        f"{path}:5: expected a JSON object, got list",
        f'{path}:6: "reference"."entities" must be [[name, type], ...]',
        f'{path}:7: "reference" has unknown keys answers; entity_extraction takes "entities": [[name, type], ...], '
        '"relations": [[head, tail, type], ...] (optional)',
        f"{path}:8: the same inputs as line 1",
        f"{path}:9: not UTF-8 text",
        f'{path}:10: "input_text" is empty',
    ]
    assert rows(tmp_path, "bad") == []
    code, out = cli("evaluate", "--dataset", "bad")
    assert code == 2 and "unknown dataset 'bad'" in out


@pytest.mark.parametrize("args, sentence", [
    (["nothere.jsonl", "--family", "entity_extraction"], "no file at nothere.jsonl"),
    (["empty.jsonl", "--family", "entity_extraction"], "no examples in empty.jsonl: expected one JSON object per line"),
    (["empty.jsonl", "--family", "nope"], "unknown prompt family 'nope'; known: entity_extraction,"),
    (["empty.jsonl", "--family", "summarization", "--name", "conll04"],
     "dataset name 'conll04' belongs to the public dataset; choose another with --name"),
    (["empty.jsonl", "--family", "summarization", "--name", "a b"],
     "dataset name 'a b': use letters, digits, '.', '_' or '-', at most 64 characters"),
])
def test_file_family_and_name_are_checked(cli, tmp_path, args, sentence):
    (tmp_path / "empty.jsonl").write_text("\n")
    code, out = cli("datasets", "import-jsonl", *[str(tmp_path / a) if a.endswith(".jsonl") else a for a in args])
    assert code == 2 and "Traceback" not in out
    assert sentence.replace("nothere.jsonl", str(tmp_path / "nothere.jsonl")).replace(
        "empty.jsonl", str(tmp_path / "empty.jsonl")) in out
