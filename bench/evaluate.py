"""Evaluation throughput: examples/s on 1 vs 2 worker processes with an LM of fixed latency, and the
framework's own cost per example.

    .venv/bin/python bench/evaluate.py [--examples 200] [--latency-ms 50]

Starts redis-server and PostgreSQL, imports CoNLL04 from the shared datasets (PROMPTLOOP_DATASETS_DIR),
and scores LightRAG's extraction baseline on the first N sentences with a scripted LM that sleeps
``latency_ms`` per call. Each run uses its own LM name, so no run is served from another's cache.

1. one worker process (``promptloop worker -c 1``): examples/s;
2. two worker processes (two ``promptloop worker -c 1`` nodes): examples/s and the ratio to (1);
3. overhead: the same chunk code in this process with a 0 ms LM — everything but the LM call
   (template, cache lookup and write, scoring with LightRAG's parser, result rows) — in ms per example,
   and as a share of the LM latency; and, end to end on one worker, 1/rate minus the LM latency
   (adds Celery dispatch, the chord and progress polling).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.local import PostgresServer, RedisServer, free_port  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description="promptloop evaluation benchmark")
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=20, help="examples per chunk (the CLI's default)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="promptloop-bench-eval-"))
    redis_server = RedisServer(workdir / "redis", free_port()).start()
    pg = PostgresServer(workdir / "pg", free_port()).start()
    lat = args.latency_ms
    models = {"one": f"scripted/extract?latency_ms={lat}&run=one", "two": f"scripted/extract?latency_ms={lat}&run=two",
              "zero": "scripted/extract?run=zero"}
    os.environ.update(REDIS_URL=redis_server.url, DATABASE_URL=pg.url, PROMPTLOOP_DATA_DIR=str(workdir),
                      PROMPTLOOP_MODELS=json.dumps(models))
    # Imported after the environment is set: the Celery app reads it at import.
    from shared.datasets import import_datasets
    from shared.db import get_engine
    from shared.evaluation import (batch_progress, create_evaluation_batch, dataset_examples, find_variants,
                                   register_baselines, run_evaluation_chunk)
    from shared.migrate import upgrade
    from shared.settings import get_settings
    from tasks.evaluate import dispatch_batch

    settings = get_settings()
    engine = get_engine(settings)
    upgrade(engine)
    import_datasets(engine, settings.datasets_dir, ["conll04"])
    register_baselines(engine, list(models), ["entity_extraction"])
    examples = dataset_examples(engine, ["entity_extraction"], ["conll04"], args.examples)
    procs: list[subprocess.Popen] = []

    def start_worker(name: str) -> None:
        log = open(workdir / f"{name}.log", "ab")
        procs.append(subprocess.Popen([sys.executable, "-m", "cli.main", "worker", "-Q", "evaluate", "-c", "1",
                                       "-n", f"{name}@%h", "--loglevel", "WARNING"], cwd=ROOT, env=os.environ.copy(),
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def stop_workers() -> None:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(60)
        procs.clear()

    def timed_run(model: str) -> float:
        variants = find_variants(engine, ["entity_extraction"], [model])
        batch_id, chunks = create_evaluation_batch(engine, examples, variants, args.batch_size)
        started = time.perf_counter()
        dispatch_batch(batch_id, chunks)
        while batch_progress(engine, batch_id)[2] != "done":
            time.sleep(0.02)
        return len(examples) / (time.perf_counter() - started)

    try:
        start_worker("solo")
        time.sleep(5)  # worker start-up is not part of the measurement
        rate_one = timed_run("one")
        stop_workers()
        start_worker("left")
        start_worker("right")
        time.sleep(5)
        rate_two = timed_run("two")
        stop_workers()
        variant = find_variants(engine, ["entity_extraction"], ["zero"])[0]
        batch_id, chunks = create_evaluation_batch(engine, examples, [variant], args.batch_size)
        started = time.perf_counter()
        for c in chunks:
            run_evaluation_chunk(engine, settings, batch_id, c["variant_id"], c["examples"])
        overhead_ms = (time.perf_counter() - started) / len(examples) * 1000
    finally:
        stop_workers()
        pg.stop()
        redis_server.stop()

    print(f"\npromptloop evaluation bench: {len(examples)} CoNLL04 sentences, LightRAG extraction baseline, "
          f"LM latency {lat} ms, chunks of {args.batch_size}, {os.cpu_count()} cores\n")
    print(f"{'measure':<52}{'value':>12}{'ratio':>14}")
    print(f"{'1 worker process (examples/s)':<52}{rate_one:>12.1f}{rate_one * lat / 1000:>10.2f} of ideal")
    print(f"{'2 worker processes (examples/s)':<52}{rate_two:>12.1f}{rate_two / rate_one:>11.2f}x of 1")
    print(f"{'framework overhead per example (ms, 0 ms LM)':<52}{overhead_ms:>12.2f}"
          f"{overhead_ms / lat * 100:>11.1f}% of LM")
    end_to_end = 1000 / rate_one - lat
    print(f"{'  end to end on 1 worker: 1/rate - LM latency (ms)':<52}{end_to_end:>12.2f}"
          f"{end_to_end / lat * 100:>11.1f}% of LM")


if __name__ == "__main__":
    main()
