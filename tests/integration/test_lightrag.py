"""A real LightRAG instance, with a scripted LLM, emits events through the client into SQL."""

import subprocess
import sys

import pytest
from sqlalchemy import select

from shared.models import MetricEvent, ProductionExample

from .conftest import ROOT

pytestmark = pytest.mark.integration


def test_lightrag_insert_and_query_events_reach_sql(stack, tmp_path):
    pytest.importorskip("lightrag")
    stack.start_worker()
    stack.start_beat()
    run = subprocess.run([sys.executable, str(ROOT / "client/examples/lightrag_monitored.py"), "--offline",
                          "--model", "7b", "--working-dir", str(tmp_path / "rag")],
                         env=stack.env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "University of Paris" in run.stdout and "'dropped': 0" in run.stdout

    wanted = {"entity_extraction", "query_processing", "answer_generation"}

    def families():
        with stack.engine.connect() as conn:
            return set(conn.execute(select(MetricEvent.family).where(MetricEvent.model == "7b")).scalars())

    stack.wait_for(lambda: wanted <= families(), 60, f"metric events of {wanted}")
    with stack.engine.connect() as conn:
        examples = conn.execute(select(ProductionExample.family, ProductionExample.input, ProductionExample.output)).all()
    extraction = [e for e in examples if e.family == "entity_extraction"]
    assert extraction and "Marie Curie worked at the University of Paris" in extraction[0].input
    assert "<|COMPLETE|>" in extraction[0].output
    answers = [e for e in examples if e.family == "answer_generation"]
    assert answers and "Where did Marie Curie work?" in answers[0].input
