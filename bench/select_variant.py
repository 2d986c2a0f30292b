"""``select_variant`` from the router's cache, per call, beside a bare dict lookup in the same run.

    .venv/bin/python bench/select_variant.py [--calls 200000] [--key-bytes 2000]

Publishes a rollout state (fakeredis, or ``--redis-url``), lets a ``Router`` read it, then times, on
one thread, the best of 5 rounds of ``--calls`` calls each:

1. a bare dict lookup (``routes.get((family, model))``): the floor of any cached answer;
2. ``select_variant`` for a family x model that is not rolling out (no hashing);
3. ``select_variant`` at 25% with routing keys of ``--key-bytes`` bytes (a chunk of text), the
   common case: encode the key, crc32 it, pick the share;
4. ``wire.serves_candidate`` on the same keys, for reference (what the router inlines).

Target (issue 8): <= 5 us per call for a typical key. The ratio to the dict lookup is printed so that
numbers from a noisy machine still compare.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "client"))

from promptloop_client import Router, wire  # noqa: E402

TEMPLATE = {"system": "---Role---\nYou are a Knowledge Graph Specialist...", "user": "{input_text}"}
STATE = {"version": 1, "routes": {
    "entity_extraction": {"3b": {"incumbent": {"name": "baseline", "template": TEMPLATE},
                                 "candidate": {"name": "DSPY_A", "template": TEMPLATE},
                                 "percentage": 0.25, "salt": "rollout-1"}},
    "summarization": {"3b": {"incumbent": {"name": "baseline", "template": TEMPLATE}, "candidate": None,
                             "percentage": 0, "salt": "rollout-2"}}}}


def keys(count: int, size: int) -> list[str]:
    base = "Marie Curie worked at the University of Paris, where she met Pierre Curie. "
    return [(f"chunk {i}: " + base * (size // len(base) + 1))[:size] for i in range(count)]


def per_call_ns(fn, calls: int, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter_ns()
        fn(calls)
        best = min(best, time.perf_counter_ns() - started)
    return best / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--key-bytes", type=int, default=2000)
    parser.add_argument("--redis-url", default=None, help="a real Redis (default: fakeredis)")
    args = parser.parse_args()

    if args.redis_url:
        import redis

        conn = redis.Redis.from_url(args.redis_url)
    else:
        import fakeredis

        conn = fakeredis.FakeRedis()
    conn.set(wire.ROLLOUT_STATE_KEY, json.dumps(STATE))
    conn.incr(wire.ROLLOUT_VERSION_KEY)
    router = Router(conn, refresh_interval=3600)
    assert router.stats()["routes"] == 2, router.stats()

    pool = keys(1024, args.key_bytes)
    mask = len(pool) - 1
    routes = {("entity_extraction", "3b"): "route", ("summarization", "3b"): "route"}
    select = router.select_variant

    def bare_dict(n):
        for i in range(n):
            routes.get(("entity_extraction", "3b"))
            pool[i & mask]

    def not_rolling(n):
        for i in range(n):
            select("summarization", "3b", pool[i & mask])

    def rolling(n):
        for i in range(n):
            select("entity_extraction", "3b", pool[i & mask])

    def contract(n):
        for i in range(n):
            wire.serves_candidate(pool[i & mask], "rollout-1", 0.25)

    share = sum(select("entity_extraction", "3b", k).candidate for k in pool) / len(pool)
    floor = per_call_ns(bare_dict, args.calls)
    print(f"routing keys: {len(pool)} distinct, {args.key_bytes} bytes; candidate share at 25%: {share:.3f}")
    print(f"{'bare dict lookup':<40}{floor:>9.0f} ns/call")
    for name, fn in (("select_variant, no rollout", not_rolling), ("select_variant at 25%", rolling),
                     ("wire.serves_candidate (reference)", contract)):
        ns = per_call_ns(fn, args.calls)
        print(f"{name:<40}{ns:>9.0f} ns/call  {ns / 1000:6.2f} us  x{ns / floor:5.1f} the dict lookup")
    router.close()


if __name__ == "__main__":
    main()
