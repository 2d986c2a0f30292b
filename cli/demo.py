"""``promptloop demo``: the whole ingest path on one machine, with a burst of LightRAG-like traffic.

The traffic is synthetic but shaped like production: CoNLL04 sentences (real text) as extraction
inputs, their gold entities as outputs in LightRAG's tuple format, latencies and success rates that
grow with model size. It exists to exercise the pipeline, not to measure prompt quality.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import redis
from rich.console import Console
from rich.progress import Progress

from shared.settings import Settings

MODELS = {"1.5b": (900.0, 0.82), "3b": (1600.0, 0.90), "7b": (3200.0, 0.96)}
VARIANTS = {"baseline": 0.62, "DSPY_A": 0.71, "DSPY_B": 0.66}
FAMILIES = ("entity_extraction", "relationship_extraction", "answer_generation", "query_processing")
FALLBACK_SENTENCES = [
    "Marie Curie worked at the University of Paris , where she met Pierre Curie .",
    "The Eiffel Tower is located in Paris , the capital of France .",
]


def load_sentences(datasets_dir: Path, limit: int = 200) -> list[dict]:
    """CoNLL04 training sentences with their gold entities, or two built-in ones if absent."""
    path = datasets_dir / "conll04" / "conll04_train.json"
    if not path.exists():
        return [{"tokens": s.split(), "entities": []} for s in FALLBACK_SENTENCES]
    return json.loads(path.read_text())[:limit]


def as_lightrag_output(sentence: dict, complete: bool) -> str:
    """Gold entities written the way LightRAG's extraction prompt asks the model to write them."""
    lines = []
    for ent in sentence["entities"]:
        name = " ".join(sentence["tokens"][ent["start"]:ent["end"]])
        lines.append(f"entity<|#|>{name}<|#|>{ent['type']}<|#|>{name} is mentioned in the text.")
    return "\n".join(lines + (["<|COMPLETE|>"] if complete else []))


def send_burst(client, sentences: list[dict], n_metrics: int, rng: random.Random) -> dict:
    """Emit metrics, feedback (1 per 10 metrics) and examples (1 per 20); returns counts per kind."""
    counts = {"metric": 0, "feedback": 0, "example": 0}
    for i in range(n_metrics):
        model = rng.choice(list(MODELS))
        variant = rng.choice(list(VARIANTS))
        median, success_rate = MODELS[model]
        latency = rng.lognormvariate(0, 0.35) * median
        ok = rng.random() < success_rate
        client.metric(variant, model, round(latency, 1), ok, quality=round(min(1.0, rng.betavariate(6, 3)), 3),
                      tokens_in=rng.randint(1500, 2200), tokens_out=rng.randint(50, 400), family=rng.choice(FAMILIES))
        counts["metric"] += 1
        if i % 10 == 0:
            score = min(1.0, max(0.0, rng.gauss(VARIANTS[variant], 0.15)))
            client.feedback(variant, model, round(score, 3), rng.choice(["quality", "relevance", "format"]))
            counts["feedback"] += 1
        if i % 20 == 0:
            sentence = rng.choice(sentences)
            text = " ".join(sentence["tokens"])
            complete = ok and not (model == "1.5b" and rng.random() < 0.4)
            client.example("entity_extraction", model, variant, text, as_lightrag_output(sentence, complete),
                           reference=as_lightrag_output(sentence, True), latency_ms=round(latency, 1))
            counts["example"] += 1
    return counts


def run_demo(console: Console, s: Settings, n_metrics: int, datasets: str | None) -> int:
    """Start what is missing, send the burst, wait for ingest, print status. Returns an exit code."""
    from promptloop_client import Client

    from cli.report import print_status
    from cli.runtime import ensure_local_redis, spawn, stop
    from shared.db import get_engine
    from shared.migrate import upgrade
    from shared.status import totals

    s.data_dir.mkdir(parents=True, exist_ok=True)
    redis_server = ensure_local_redis(s)
    if redis_server:
        console.print(f"started redis-server on {s.redis_url} (data in {redis_server.directory})")
    engine = get_engine(s)
    upgrade(engine)
    console.print(f"database ready: {engine.url.render_as_string(hide_password=True)}")
    worker = spawn(["worker", "-c", "1", "-Q", "ingest,control", "-n", "demo@%h"], s, "worker")
    beat = spawn(["beat"], s, "beat")
    console.print(f"started a worker (pid {worker.pid}) and beat (pid {beat.pid}); logs in {s.data_dir / 'logs'}")
    try:
        before = totals(engine)
        sentences = load_sentences(Path(datasets) if datasets else s.datasets_dir)
        client = Client(s.redis_url)
        started = time.perf_counter()
        counts = send_burst(client, sentences, n_metrics, random.Random(7))
        # Three malformed entries, as a buggy producer might write them: they must end as dead letters.
        r = redis.Redis.from_url(s.redis_url)
        r.xadd(client.stream, {"e": b"{not json"})
        r.xadd(client.stream, {"e": json.dumps({"v": 1, "kind": "feedback", "event_id": "x", "ts": 0}).encode()})
        r.xadd(client.stream, {"payload": b"wrong field"})
        client.close(10)
        sent = sum(counts.values())
        console.print(f"sent {sent} events ({counts}) + 3 malformed; client stats {client.stats()}")
        expected = {"metrics": before["metrics"] + counts["metric"], "feedback": before["feedback"] + counts["feedback"],
                    "examples": before["examples"] + counts["example"], "dead_letters": before["dead_letters"] + 3}
        with Progress(console=console) as progress:
            task = progress.add_task("ingesting", total=sent + 3)
            deadline = time.monotonic() + 180
            while True:
                now = totals(engine)
                done = sum(now[k] - before[k] for k in now)
                progress.update(task, completed=done)
                if all(now[k] >= expected[k] for k in expected) or time.monotonic() > deadline:
                    break
                time.sleep(0.25)
        elapsed = time.perf_counter() - started
        ok = all(now[k] == expected[k] for k in expected)
        console.print(f"{'all' if ok else 'NOT all'} events ingested in {elapsed:.1f}s "
                      f"({done / elapsed:.0f} events/s end to end, worker start-up included)")
        print_status(console, s, 1.0)
        return 0 if ok else 1
    finally:
        stop(beat)
        stop(worker)
        if redis_server:
            redis_server.stop()
