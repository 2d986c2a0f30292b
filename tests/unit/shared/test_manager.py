"""The seed's facade: its configuration becomes the services' environment; it works against the database
with Redis down, reporting each part's state instead of raising."""

import asyncio

import pytest

from shared.manager import CONFIG_ENV, config_env, get_dspy_phase2_manager


def test_the_seed_configuration_maps_to_the_environment_the_services_read():
    env = config_env({"enable_automatic_optimization": False, "performance_degradation_threshold": 0.2,
                      "optimization_interval_hours": 6, "REDIS_URL": "redis://h:1/0"})
    assert env == {"DSPY_AUTO_OPTIMIZE": "false", "DSPY_PERFORMANCE_THRESHOLD": "0.2",
                   "PROMPTLOOP_OPTIMIZATION_INTERVAL_HOURS": "6", "REDIS_URL": "redis://h:1/0"}
    with pytest.raises(ValueError, match="unknown configuration"):
        config_env({"auto": True})
    with pytest.raises(ValueError, match="performance_degradation_threshold"):
        config_env({"performance_degradation_threshold": 2})
    from shared.config import OptimizationConfig
    from shared.settings import Settings

    assert set(CONFIG_ENV) == set(OptimizationConfig.model_fields)
    aliases = {f.alias for f in Settings.model_fields.values()}
    assert set(CONFIG_ENV.values()) <= aliases


def test_manager_initializes_and_reports_with_redis_down(tmp_path):
    manager = get_dspy_phase2_manager({"enable_automatic_optimization": False, "max_concurrent_optimizations": 1,
                                       "REDIS_URL": "redis://127.0.0.1:1/0", "PROMPTLOOP_DATA_DIR": str(tmp_path),
                                       "DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
                                       "PROMPTLOOP_MODELS": '{"m": "scripted/follow"}'})
    assert manager.settings.auto_optimize is False and manager.config.max_concurrent_optimizations == 1

    async def flow():
        init = await manager.initialize()
        await manager.add_production_feedback("DSPY_A", "m", 0.85, "quality")  # buffered, never raises
        await manager.add_production_metrics("DSPY_B", "m", 1200, True)
        with pytest.raises(ValueError):
            await manager.add_production_metrics("DSPY_B", "m", -1, True)
        return init, await manager.get_system_status(), await manager.get_deployment_recommendations()

    init, status, recs = asyncio.run(flow())
    assert init["baselines_added"] == 8 and init["revision"]
    assert "error" in status["stream"] and status["workers"] == {"error": "broker unreachable"}
    assert status["database"]["metrics"] == 0 and status["optimizations"] == [] and status["rollouts"] == []
    assert status["config"]["enable_automatic_optimization"] is False
    assert recs == {"recommendations": [], "candidates": []}
    assert manager.client.stats()["buffered"] == 2
    manager.client.close(0)
