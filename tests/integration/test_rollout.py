"""Rollouts on real services: redis-server, PostgreSQL, worker and beat processes, live traffic routed by
the client's Router and ingested by the workers; beat promotes or rolls back on that evidence."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid

import psycopg
import pytest
from promptloop_client import Client, Router
from sqlalchemy import select, update

from shared.evaluation import register_baselines
from shared.families import get_family
from shared.models import PromptBackup, PromptVariant, Rollout
from shared.optimize.promptset import with_guidance
from shared.optimize.variants import register_candidate
from shared.rollout.state import STEPS, get, start_rollout, transitions

pytestmark = pytest.mark.integration

FAMILY = "entity_extraction"


class Traffic:
    """Calls routed by a real Router, reported through a real Client: quality per variant name."""

    def __init__(self, redis_url: str, quality: dict[str, float], rate: float = 400):
        self.router = Router(redis_url, refresh_interval=0.2)
        self.client = Client(redis_url, flush_interval=0.05)
        self.quality, self.rate = quality, rate
        self.served: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def _run(self):
        rng = random.Random(0)
        while not self._stop.is_set():
            for _ in range(20):
                chosen = self.router.select_variant(FAMILY, "m", str(uuid.uuid4()))
                self.served[chosen.name] = self.served.get(chosen.name, 0) + 1
                q = float(rng.random() < self.quality.get(chosen.name, 0.5))
                self.client.metric(chosen.name, "m", rng.lognormvariate(6.5, 0.2), True, q, family=FAMILY)
            time.sleep(20 / self.rate)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)
        self.client.close(5)
        self.router.close()


@pytest.fixture
def rollout_stack(stack):
    stack.extra_env.update(PROMPTLOOP_MODELS=json.dumps({"m": "scripted/follow"}), PROMPTLOOP_ROLLOUT_CHECK_S="0.5",
                           PROMPTLOOP_ROLLOUT_MIN_SAMPLES="30")
    register_baselines(stack.engine, ["m"], [FAMILY])
    candidate = with_guidance(FAMILY, get_family(FAMILY).baseline(), "Name every entity the text names.")
    with stack.engine.begin() as conn:
        baseline = conn.execute(select(PromptVariant.id).where(PromptVariant.family == FAMILY)).scalar_one()
        cand = register_candidate(conn, FAMILY, "m", candidate, baseline)
        conn.execute(update(PromptVariant).where(PromptVariant.id == cand).values(status="validated"))
    rollout_id = start_rollout(stack.engine, cand, hold_s=1.5)
    return stack, rollout_id, baseline, cand


def wait_finished(stack, rollout_id, timeout=150):
    return stack.wait_for(lambda: get(stack.engine, rollout_id).status in ("promoted", "rolled_back"),
                          timeout, f"rollout {rollout_id} to finish")


def variant_rows(engine):
    with engine.connect() as conn:
        return {r.id: (r.name, r.status, r.template) for r in conn.execute(select(PromptVariant))}


def test_a_better_candidate_is_promoted_step_by_step_and_becomes_active(rollout_stack):
    stack, rollout_id, baseline, cand = rollout_stack
    stack.start_worker("w1")
    stack.start_beat()
    with Traffic(stack.redis.url, {"baseline": 0.55, "DSPY_A": 0.85}) as traffic:
        wait_finished(stack, rollout_id)
        steps = transitions(stack.engine, rollout_id)
        assert get(stack.engine, rollout_id).status == "promoted", [t.reason for t in steps]
        assert [t.to_percentage for t in steps] == list(STEPS)
        assert [t.action for t in steps] == ["deploy"] + ["promote"] * 4
        assert all(t.actor == "beat" and "quality significantly better" in t.reason for t in steps[1:])
        rows = variant_rows(stack.engine)
        assert rows[cand][1] == "active" and rows[baseline][1] == "retired"
        # Producers see the promotion: every call now gets the new active variant.
        time.sleep(1.0)
        served_before = dict(traffic.served)
        time.sleep(1.0)
    assert traffic.served.get("baseline", 0) == served_before.get("baseline", 0)
    assert traffic.served["DSPY_A"] > served_before["DSPY_A"]


def test_a_worse_candidate_is_rolled_back_and_the_original_prompt_restored(rollout_stack):
    stack, rollout_id, baseline, cand = rollout_stack
    original = variant_rows(stack.engine)[baseline][2]
    stack.start_worker("w1")
    stack.start_beat()
    with Traffic(stack.redis.url, {"baseline": 0.60, "DSPY_A": 0.30}) as traffic:
        wait_finished(stack, rollout_id)
        r = get(stack.engine, rollout_id)
        assert r.status == "rolled_back" and r.percentage == 0.0
        assert transitions(stack.engine, rollout_id)[-1].actor == "beat"
        rows = variant_rows(stack.engine)
        assert rows[baseline][1:] == ("active", original) and rows[cand][1] == "rolled_back"
        time.sleep(1.0)  # the router's cache refreshes
        on_candidate = traffic.served.get("DSPY_A", 0)
        time.sleep(1.0)
    assert traffic.served.get("DSPY_A", 0) == on_candidate  # no call reaches the candidate any more
    with stack.engine.connect() as conn:
        backup = conn.execute(select(PromptBackup.template).where(PromptBackup.id == r.backup_id)).scalar_one()
    assert backup == original


def test_two_beats_never_double_promote(rollout_stack):
    stack, rollout_id, baseline, cand = rollout_stack
    stack.start_worker("w1", concurrency=2)
    stack.start_worker("w2", concurrency=2)
    stack.start_beat()
    stack.start_beat("beat2")
    with Traffic(stack.redis.url, {"baseline": 0.55, "DSPY_A": 0.85}):
        wait_finished(stack, rollout_id)
    steps = transitions(stack.engine, rollout_id)
    assert [t.to_percentage for t in steps] == list(STEPS), [(t.version, t.action, t.reason) for t in steps]
    assert [t.version for t in steps] == [1, 2, 3, 4, 5]
    logs = {p.name: p.read_text() for p in stack.workdir.glob("beat*.log")}
    assert all("check-rollouts" in text for text in logs.values()) and len(logs) == 2  # both really ticked


def test_a_worker_killed_mid_transition_leaves_the_rollout_consistent(rollout_stack, pg_url):
    stack, rollout_id, baseline, cand = rollout_stack
    worker = stack.start_worker("w1")
    stack.start_beat()
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with Traffic(stack.redis.url, {"baseline": 0.55, "DSPY_A": 0.85}):
        stack.wait_for(lambda: get(stack.engine, rollout_id).step == 3, 120, "the rollout to reach 75%")
        # Hold the candidate's row: the last promotion retires the incumbent, then blocks on this lock
        # in the middle of its transaction. Kill the worker there.
        # (pg_stat_activity is read on its own autocommit connection: inside a transaction it is a snapshot.)
        with psycopg.connect(dsn) as lock, psycopg.connect(dsn, autocommit=True) as watch:
            lock.execute("SELECT 1 FROM prompt_variants WHERE id = %s FOR UPDATE", (cand,))
            stack.wait_for(lambda: watch.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE 'UPDATE prompt_variants%'").fetchone()[0] > 0, 60, "a transition blocked mid-way")
            stack.kill(worker)
            lock.rollback()
        r = get(stack.engine, rollout_id)
        rows = variant_rows(stack.engine)
        # Nothing of the killed transition was applied: still at 75%, incumbent active, candidate rolling out.
        assert (r.status, r.step, r.version) == ("running", 3, 4)
        assert rows[baseline][1] == "active" and rows[cand][1] == "rolling_out"
        stack.start_worker("w2")
        wait_finished(stack, rollout_id)
    steps = transitions(stack.engine, rollout_id)
    assert [t.to_percentage for t in steps] == list(STEPS)
    rows = variant_rows(stack.engine)
    assert rows[cand][1] == "active" and rows[baseline][1] == "retired"
    with stack.engine.connect() as conn:
        assert conn.execute(select(Rollout.open_key).where(Rollout.id == rollout_id)).scalar_one() is None
