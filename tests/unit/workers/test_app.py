"""The Celery app: JSON only, every task routed to a declared queue, task names stable."""

import pickle

import pytest
from kombu.exceptions import ContentDisallowed
from kombu.serialization import loads

import tasks.control  # noqa: F401  registers the tasks
import tasks.evaluate  # noqa: F401
import tasks.ingest  # noqa: F401
import tasks.monitor  # noqa: F401
import tasks.optimize  # noqa: F401
import tasks.realtime  # noqa: F401
import tasks.replacement  # noqa: F401
from workers.app import app
from workers.queues import ROUTES, Queue

# Renaming a task strands the messages already queued under the old name: change this list on purpose.
TASK_NAMES = ["tasks.control.check_rollouts", "tasks.control.publish_rollouts", "tasks.evaluate.evaluate_chunk",
              "tasks.evaluate.finish_batch", "tasks.ingest.drain_events",
              "tasks.monitor.check_alerts", "tasks.monitor.cleanup", "tasks.monitor.post_alerts",
              "tasks.optimize.optimize_all_families", "tasks.optimize.optimize_family", "tasks.optimize.optimize_run",
              "tasks.realtime.after_optimization", "tasks.realtime.record_validation", "tasks.realtime.tick",
              "tasks.replacement.validate_and_deploy"]


def test_registered_task_names_are_stable():
    assert sorted(n for n in app.tasks if n.startswith("tasks.")) == TASK_NAMES


def test_pickle_is_refused():
    assert app.conf.accept_content == ["json"] and app.conf.task_serializer == "json"
    payload = pickle.dumps({"x": 1})
    with pytest.raises(ContentDisallowed):
        loads(payload, "application/x-python-serialize", "binary", accept=app.conf.accept_content)


def test_every_task_routes_to_a_declared_queue():
    declared = {q.name for q in app.conf.task_queues}
    assert declared == {q.value for q in Queue}
    for name in TASK_NAMES:
        route = app.amqp.router.route({}, name)
        assert route["queue"].name in declared
        assert route["queue"].name == ROUTES[name.rsplit(".", 1)[0] + ".*"]["queue"]


def test_acks_late_only_on_idempotent_tasks():
    assert tasks.ingest.drain_events.acks_late is True


def test_redis_waits_longer_than_an_optimization_before_handing_its_task_to_another_worker():
    from shared.settings import load_settings
    from workers.app import make_app

    default = make_app(load_settings())
    assert default.conf.broker_transport_options["visibility_timeout"] == 2 * 30 * 60 + 600  # kombu's 1 h was below
    long_runs = make_app(load_settings(PROMPTLOOP_OPTIMIZATION_TIMEOUT_MINUTES=90))
    assert long_runs.conf.broker_transport_options["visibility_timeout"] == 2 * 90 * 60 + 600  # past the hard stop
    chosen = make_app(load_settings(PROMPTLOOP_VISIBILITY_TIMEOUT_S=600))
    assert chosen.conf.broker_transport_options["visibility_timeout"] == 600
