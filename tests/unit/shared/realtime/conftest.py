"""The rollout tests' database (baselines on model "m", a better and an equal candidate) serves here too."""

from tests.unit.shared.rollout.conftest import rollout_env  # noqa: F401  (a fixture, re-exported)
