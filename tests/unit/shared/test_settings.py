"""Settings: the seed's variables, defaults, and start-up errors that name the variable."""

import pytest

from shared.config import AlertConfig, OptimizationConfig
from shared.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("DSPY_ENABLED", "DSPY_PHASE2_ENABLED", "DSPY_AUTO_OPTIMIZE", "DSPY_PERFORMANCE_THRESHOLD",
                 "DSPY_FEEDBACK_THRESHOLD", "DSPY_ALERT_LATENCY", "DSPY_ALERT_SUCCESS_RATE", "REDIS_URL",
                 "DATABASE_URL", "PROMPTLOOP_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_the_seeds_and_sqlite_is_embedded(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTLOOP_DATA_DIR", str(tmp_path))
    s = load_settings()
    assert s.optimization == OptimizationConfig()
    assert s.sqlalchemy_url == f"sqlite:///{tmp_path / 'promptloop.db'}"
    assert s.redis_url == "redis://localhost:6379/0"
    latency, success = s.alerts
    assert (latency.metric_name, latency.threshold, latency.comparison) == ("latency_mean", 5000, "greater_than")
    assert (success.metric_name, success.threshold, success.comparison) == ("success_rate", 0.9, "less_than")


def test_seed_variables_are_read(monkeypatch):
    monkeypatch.setenv("DSPY_AUTO_OPTIMIZE", "false")
    monkeypatch.setenv("DSPY_PERFORMANCE_THRESHOLD", "0.2")
    monkeypatch.setenv("DSPY_FEEDBACK_THRESHOLD", "80")
    monkeypatch.setenv("DSPY_ALERT_LATENCY", "3000")
    monkeypatch.setenv("DSPY_ALERT_SUCCESS_RATE", "0.95")
    monkeypatch.setenv("DSPY_PHASE2_ENABLED", "0")
    s = load_settings()
    assert s.optimization.enable_automatic_optimization is False
    assert s.optimization.performance_degradation_threshold == 0.2
    assert s.optimization.feedback_volume_threshold == 80
    assert [a.threshold for a in s.alerts] == [3000, 0.95]
    assert s.dspy_phase2_enabled is False


@pytest.mark.parametrize("name, value", [
    ("DSPY_PERFORMANCE_THRESHOLD", "1.5"),
    ("DSPY_FEEDBACK_THRESHOLD", "0"),
    ("DSPY_ALERT_LATENCY", "fast"),
    ("DSPY_ALERT_SUCCESS_RATE", "2"),
    ("DSPY_AUTO_OPTIMIZE", "maybe"),
    ("REDIS_URL", "http://localhost:6379"),
    ("DATABASE_URL", "mysql://x@y/z"),
])
def test_invalid_values_fail_naming_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        load_settings()


def test_plain_postgresql_urls_use_psycopg3(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:secret@db:5432/promptloop")
    assert load_settings().sqlalchemy_url == "postgresql+psycopg://u:secret@db:5432/promptloop"


def test_seed_config_objects_validate():
    with pytest.raises(ValueError):
        OptimizationConfig(min_confidence_for_deployment=1.2)
    with pytest.raises(ValueError):
        AlertConfig(metric_name="latency_mean", threshold=1, comparison="bigger")
    alert = AlertConfig(metric_name="quality_mean", threshold=0.7, comparison="less_than", window_minutes=10,
                        min_samples=20)
    assert alert.breached(0.6) and not alert.breached(0.7)
