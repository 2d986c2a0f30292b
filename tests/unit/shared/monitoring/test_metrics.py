"""Windowed metrics per family x variant x model, computed in SQL."""

from shared.monitoring.metrics import window_metrics

from .conftest import NOW, ago, calls, feedback


def by_key(rows):
    return {(r["family"], r["variant"], r["model"]): r for r in rows}


def test_count_success_latency_mean_and_nearest_rank_p95(db):
    _, engine = db
    # 1..100 ms shuffled; 10 failures; quality on half the calls; 5+5 tokens each.
    lats = [((i * 37) % 100) + 1 for i in range(100)]
    calls(engine, lats, success=[i >= 10 for i in range(100)], quality=[0.8 if i % 2 else None for i in range(100)],
          tokens=5)
    (row,) = window_metrics(engine, 5, now=NOW)
    assert (row["family"], row["variant"], row["model"]) == ("entity_extraction", "baseline", "m")
    assert row["count"] == 100
    assert row["success_rate"] == 0.9 and abs(row["error_rate"] - 0.1) < 1e-12
    assert row["latency_mean"] == 50.5
    assert row["latency_p95"] == 95.0  # nearest rank: the 95th of 100 sorted values
    assert row["quality_n"] == 50 and abs(row["quality_mean"] - 0.8) < 1e-12
    assert row["tokens_in"] == row["tokens_out"] == 500 and row["tokens_mean"] == 10 and row["tokens_n"] == 100
    assert row["feedback_n"] == 0 and row["feedback_mean"] is None


def test_p95_of_a_small_window_is_an_observed_value(db):
    _, engine = db
    calls(engine, [100, 200, 300])
    assert window_metrics(engine, 5, now=NOW)[0]["latency_p95"] == 300.0  # ceil(0.95 * 3) = 3rd


def test_groups_by_family_variant_model_and_the_window_drops_older_calls(db):
    _, engine = db
    calls(engine, [100] * 4)
    calls(engine, [300] * 2, variant="DSPY_A")
    calls(engine, [500] * 3, model="7b")
    calls(engine, [700] * 5, family="summarization")
    calls(engine, [9000] * 50, ts=ago(minutes=6))  # outside a 5-minute window
    rows = by_key(window_metrics(engine, 5, now=NOW))
    assert {k: (r["count"], r["latency_mean"]) for k, r in rows.items()} == {
        ("entity_extraction", "baseline", "m"): (4, 100.0),
        ("entity_extraction", "DSPY_A", "m"): (2, 300.0),
        ("entity_extraction", "baseline", "7b"): (3, 500.0),
        ("summarization", "baseline", "m"): (5, 700.0)}
    assert by_key(window_metrics(engine, 10, now=NOW))[("entity_extraction", "baseline", "m")]["count"] == 54


def test_family_and_model_filters(db):
    _, engine = db
    calls(engine, [100] * 2)
    calls(engine, [100] * 3, family="summarization", model="7b")
    assert [r["count"] for r in window_metrics(engine, 5, now=NOW, family="summarization")] == [3]
    assert [r["count"] for r in window_metrics(engine, 5, now=NOW, model="m")] == [2]


def test_feedback_joins_every_family_of_its_variant_and_model_and_stands_alone_without_calls(db):
    _, engine = db
    calls(engine, [100] * 2)
    calls(engine, [100] * 2, family="summarization")
    feedback(engine, [0.2, 0.4, 0.6])
    feedback(engine, [1.0, 0.0], variant="DSPY_B")  # no calls of DSPY_B in the window
    feedback(engine, [0.0] * 9, ts=ago(minutes=30))  # too old
    rows = by_key(window_metrics(engine, 5, now=NOW))
    for fam in ("entity_extraction", "summarization"):
        r = rows[(fam, "baseline", "m")]
        assert r["feedback_n"] == 3 and abs(r["feedback_mean"] - 0.4) < 1e-12
    alone = rows[(None, "DSPY_B", "m")]
    assert alone["count"] == 0 and alone["feedback_n"] == 2 and alone["feedback_mean"] == 0.5
    assert (None, "DSPY_B", "m") not in by_key(window_metrics(engine, 5, now=NOW, family="summarization"))


def test_an_empty_window_has_no_rows(db):
    _, engine = db
    assert window_metrics(engine, 5, now=NOW) == []
