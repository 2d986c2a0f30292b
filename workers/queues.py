"""Queue names, in one place. ``deploy/`` and ``docker-compose.yml`` start workers on these names;
renaming one strands the messages already waiting in it."""

from enum import Enum


class Queue(str, Enum):
    #: Draining the event stream into SQL: short, frequent, I/O bound.
    INGEST = "ingest"
    #: Scoring prompt variants over production examples: many LM calls, fanned out in chunks.
    EVALUATE = "evaluate"
    #: DSPy optimization runs: long (minutes), few at a time.
    OPTIMIZE = "optimize"
    #: Scheduling decisions: alert checks, rollout steps, triggers. Kept apart so that a flood of
    #: evaluation work never delays a rollback.
    CONTROL = "control"


#: Task-name prefix -> queue; every task module under ``tasks/`` is routed by its name.
ROUTES = {
    "tasks.ingest.*": {"queue": Queue.INGEST.value},
    "tasks.evaluate.*": {"queue": Queue.EVALUATE.value},
    "tasks.optimize.*": {"queue": Queue.OPTIMIZE.value},
    # Validating a candidate scores it (LM calls, minutes): with the optimizations, not the control tasks.
    "tasks.replacement.*": {"queue": Queue.OPTIMIZE.value},
    "tasks.control.*": {"queue": Queue.CONTROL.value},
    # The real-time optimizer's decisions and follow-ups are short; the work they send goes to optimize.
    "tasks.realtime.*": {"queue": Queue.CONTROL.value},
    "tasks.monitor.*": {"queue": Queue.CONTROL.value},
}
