"""Mistyped values get one sentence naming what exists (subprocesses on the embedded database, Redis down)."""

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.unit.cli.runner import cli_runner

ROOT = Path(__file__).resolve().parents[3]
FAMILIES = ("entity_extraction, relationship_extraction, summarization, query_processing, document_analysis, "
            "answer_generation, context_compression, question_reformulation")


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    """An initialized data dir with one old production example and a user's dataset ``mine``."""
    tmp = tmp_path_factory.mktemp("says-why")
    run = cli_runner(tmp, {"3b": "scripted/extract"})

    assert run("init")[0] == 0
    from shared.db import make_engine
    from shared.models import ProductionExample

    with make_engine(f"sqlite:///{tmp / 'promptloop.db'}").begin() as conn:
        conn.execute(ProductionExample.__table__.insert().values(
            event_id="e1", ts=datetime.now(timezone.utc) - timedelta(hours=48), family="entity_extraction",
            model="3b", variant="baseline", input="Ada Lovelace met Charles Babbage.", output="x"))
    (tmp / "mine.jsonl").write_text(json.dumps({"input_text": "Ada Lovelace met Charles Babbage."}) + "\n")
    assert run("datasets", "import-jsonl", str(tmp / "mine.jsonl"), "--family", "entity_extraction")[0] == 0
    return run


@pytest.mark.parametrize("args, sentence", [
    (["--family", "nope"], f"--family: unknown prompt family 'nope'; known: {FAMILIES}"),
    (["--dataset", "nope"], "unknown dataset 'nope'; imported: mine (import your own with "
                            "`promptloop datasets import-jsonl FILE --family F --name NAME`)"),
    (["--dataset", "xquad"], "dataset 'xquad' is not imported yet: run `promptloop datasets import --name xquad`"),
    (["--variants", "nope"], "--variants: no live variant named 'nope'; live: baseline"),
    (["--teacher", "7b"], "--teacher '7b' is not a model key; PROMPTLOOP_MODELS has 3b"),
    (["--dataset", "mine", "--limit", "0"], "--limit must be at least 1 (dataset examples per family), got 0"),
    (["--dataset", "mine", "--limit", "-3"], "--limit must be at least 1 (dataset examples per family), got -3"),
    (["--limit", "5"], "--limit counts dataset examples per family: add --dataset NAME"),
])
def test_evaluate_filters_name_the_known_values(cli, args, sentence):
    code, out = cli("evaluate", *args)
    assert code == 2 and sentence in out and "Traceback" not in out, out
    assert len(out.strip().splitlines()) == 1  # checked before anything runs


@pytest.mark.parametrize("args, reason", [
    (["--hours", "1"], "no production examples in the last 1 h (--hours); no --dataset given"),
    (["--hours", "72", "--family", "summarization"],
     "no production examples in the last 72 h (--hours) from models 3b (--models) of family summarization "
     "(--family); no --dataset given"),
    (["--hours", "72", "--min-text-length", "500"],
     "no production examples in the last 72 h (--hours) from models 3b (--models) with inputs of 500+ characters "
     "(--min-text-length); no --dataset given"),
    (["--hours", "1", "--dataset", "mine", "--family", "summarization"],
     "no production examples in the last 1 h (--hours); dataset mine has no examples of family summarization "
     "(it has entity_extraction)"),
])
def test_nothing_to_evaluate_says_which_filter_emptied_the_set(cli, args, reason):
    code, out = cli("evaluate", *args)
    assert code == 1 and f"nothing to evaluate: {reason}" in out and "Traceback" not in out, out


def test_a_model_without_variants_says_to_run_init(cli):
    code, out = cli("evaluate", "--dataset", "mine", "--models", "new",
                    PROMPTLOOP_MODELS=json.dumps({"3b": "scripted/extract", "new": "scripted/echo"}))
    assert code == 1 and "nothing to evaluate: no live variants for models new (--models) of entity_extraction: " \
                         "run `promptloop init` with these models in PROMPTLOOP_MODELS" in out


def test_negative_numbers_reach_the_value_check(cli):
    code, out = cli("metrics", "baseline", "3b", "-5")
    assert code == 2 and out.strip() == "latency_ms must be a finite number >= 0, got -5.0"
    code, out = cli("feedback", "baseline", "3b", "-0.1")
    assert code == 2 and out.strip() == "score must be a number in 0..1, got -0.1"
    code, out = cli("metrics", "baseline", "3b", "5", "--quality", "-0.5")
    assert code == 2 and out.strip() == "quality must be a number in 0..1, got -0.5"
    code, out = cli("metrics", "baseline", "3b", "5", "--bogus")  # still an unknown option, not a value
    assert code == 2 and "No such option: --bogus" in out and "Traceback" not in out


def test_metrics_family_must_be_known(cli):
    code, out = cli("metrics", "baseline", "3b", "5", "--family", "nope")
    assert code == 2 and out.strip() == f"unknown prompt family 'nope'; known: {FAMILIES}"


def test_replaying_a_dead_letter_that_does_not_exist(cli):
    code, out = cli("dead-letters", "--replay", "--id", "999")
    assert code == 2 and out.strip() == "no dead letter with id 999; `promptloop dead-letters` lists them"


def test_status_prints_lag_as_a_number_or_unknown(cli, redis_server):
    import redis

    r = redis.Redis.from_url(redis_server.url)
    _, out = cli("status", REDIS_URL=redis_server.url)
    assert "0 entries, 0 pending, lag 0," in out and "None" not in out
    ids = [r.xadd("promptloop:events", {"e": b"{}"}) for _ in range(3)]
    _, out = cli("status", REDIS_URL=redis_server.url)
    assert "3 entries, 0 pending, lag 3," in out  # no ingest group yet: all of them are still to be read
    r.xgroup_create("promptloop:events", "promptloop-ingest", id="0")
    r.xreadgroup("promptloop-ingest", "c", {"promptloop:events": ">"}, count=1)
    r.xdel("promptloop:events", ids[1])  # a deleted entry after the last delivered one: Redis can't tell the lag
    _, out = cli("status", REDIS_URL=redis_server.url)
    assert "2 entries, 1 pending, lag unknown," in out and "None" not in out
