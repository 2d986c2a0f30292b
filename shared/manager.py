"""The seed's Python facade, ``get_dspy_phase2_manager``, over the real services.

    manager = get_dspy_phase2_manager({"enable_automatic_optimization": True,
                                       "performance_degradation_threshold": 0.15,
                                       "optimization_interval_hours": 24})
    await manager.initialize()                 # migrate the database, register the baselines
    await manager.start_production_mode()      # a worker on every queue and beat, as child processes
    await manager.add_production_feedback("DSPY_A", "3b", 0.85, "quality")
    await manager.add_production_metrics("DSPY_B", "7b", 1200, True)
    status = await manager.get_system_status()
    recommendations = await manager.get_deployment_recommendations()

Nothing runs in this process but the calls: events go through ``promptloop_client.Client`` to the Redis
stream the workers drain; status and recommendations are read from the same SQL database and Redis;
decisions are taken by the workers and beat. ``config`` holds ``OptimizationConfig`` fields (or
environment variable names such as ``REDIS_URL``); they apply to this manager's settings and to the
processes ``start_production_mode`` starts, not to workers that were already running (set their
environment: ``DSPY_AUTO_OPTIMIZE``, ``DSPY_PERFORMANCE_THRESHOLD``...).
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

from .config import OptimizationConfig
from .settings import Settings, load_settings

#: OptimizationConfig field -> the environment variable the services read it from.
CONFIG_ENV = {
    "enable_automatic_optimization": "DSPY_AUTO_OPTIMIZE",
    "performance_degradation_threshold": "DSPY_PERFORMANCE_THRESHOLD",
    "feedback_volume_threshold": "DSPY_FEEDBACK_THRESHOLD",
    "optimization_interval_hours": "PROMPTLOOP_OPTIMIZATION_INTERVAL_HOURS",
    "max_concurrent_optimizations": "PROMPTLOOP_MAX_CONCURRENT_OPTIMIZATIONS",
    "min_confidence_for_deployment": "PROMPTLOOP_MIN_CONFIDENCE",
    "rollback_on_failure": "PROMPTLOOP_ROLLBACK_ON_FAILURE",
    "optimization_timeout_minutes": "PROMPTLOOP_OPTIMIZATION_TIMEOUT_MINUTES",
}


def config_overrides(config: dict | OptimizationConfig | None) -> dict:
    """The configuration keyed by environment variable name (validated: an unknown key or a bad value raises)."""
    if config is None:
        return {}
    items = config.model_dump() if isinstance(config, OptimizationConfig) else dict(config)
    OptimizationConfig(**{k: v for k, v in items.items() if k in CONFIG_ENV})  # the seed's validation
    unknown = [k for k in items if k not in CONFIG_ENV and not k.isupper()]
    if unknown:
        raise ValueError(f"unknown configuration {unknown}: use OptimizationConfig fields ({', '.join(CONFIG_ENV)}) "
                         "or environment variable names")
    # An environment variable's JSON text ('{"3b": "ollama_chat/qwen2.5:3b"}') is read as the environment would.
    return {CONFIG_ENV.get(k, k): json.loads(v) if isinstance(v, str) and v[:1] in ("{", "[") else v
            for k, v in items.items()}


def config_env(config: dict | OptimizationConfig | None) -> dict[str, str]:
    """The configuration as the environment of the processes the manager starts."""
    def text(v):
        if isinstance(v, bool):
            return str(v).lower()
        return json.dumps(v) if isinstance(v, (dict, list)) else str(v)
    return {k: text(v) for k, v in config_overrides(config).items()}


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value.isoformat() if isinstance(value, datetime) else value


class DSPyPhase2Manager:
    def __init__(self, settings: Settings, env: dict[str, str] | None = None):
        self.settings, self.env = settings, env or {}
        self.config: OptimizationConfig = settings.optimization
        self._client = None
        self._services = None

    @property
    def engine(self):
        from .db import make_engine

        if not hasattr(self, "_engine"):
            self._engine = make_engine(self.settings.sqlalchemy_url)
        return self._engine

    @property
    def client(self):
        if self._client is None:
            from promptloop_client import Client

            self._client = Client(self.settings.redis_url)
        return self._client

    async def initialize(self) -> dict:
        """Create or upgrade the schema and register the baselines for every model (safe to repeat)."""
        def run():
            from .evaluation import register_baselines
            from .migrate import current, upgrade

            upgrade(self.engine)
            added = register_baselines(self.engine, list(self.settings.models))
            return {"revision": current(self.engine), "baselines_added": added}
        return await asyncio.to_thread(run)

    async def start_production_mode(self, worker: bool = True, beat: bool = True, concurrency: int = 2) -> dict:
        """Start a worker on every queue and beat as child processes (stopped by ``stop_production_mode``);
        {name: pid}. Where deploy/ already runs them, don't call this."""
        from .services import Services

        if self._services is None:
            self._services = Services(self.settings, self.env)
            return await asyncio.to_thread(self._services.start, worker, beat, concurrency=concurrency)
        return {name: p.pid for name, p in self._services.procs.items()}

    async def stop_production_mode(self) -> None:
        if self._services is not None:
            await asyncio.to_thread(self._services.stop)
            self._services = None

    async def add_production_feedback(self, variant: str, model: str, feedback_score: float,
                                      feedback_type: str = "quality") -> None:
        """A user's 0..1 rating, onto the event stream (buffered; never blocks, raises only on bad arguments)."""
        self.client.feedback(variant, model, feedback_score, feedback_type)

    async def add_production_metrics(self, variant: str, model: str, latency_ms: float, success: bool = True,
                                     quality: float | None = None, family: str | None = None, **extra) -> None:
        """One call's outcome, onto the event stream."""
        self.client.metric(variant, model, latency_ms, success, quality=quality, family=family, **extra)

    async def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the buffered events are in Redis; False if they could not all be sent in time."""
        return await asyncio.to_thread(self.client.flush, timeout)

    async def get_system_status(self) -> dict:
        from .system_status import system_status

        return _jsonable(await asyncio.to_thread(system_status, self.engine, self.settings, self._services))

    async def get_deployment_recommendations(self, days_back: float = 7) -> dict:
        """Pending recommendations (validated, waiting for a person) and candidates that beat their incumbent
        in evaluations (not validated yet)."""
        def run():
            from .realtime.recommendations import list_recommendations
            from .rollout.replacement import candidate_dict, identify_replacement_candidates

            return {"recommendations": list_recommendations(self.engine),
                    "candidates": [candidate_dict(c) for c in identify_replacement_candidates(self.engine, days_back)]}
        return _jsonable(await asyncio.to_thread(run))

    async def close(self) -> None:
        if self._client is not None:
            await asyncio.to_thread(self._client.close, 5)
            self._client = None
        await self.stop_production_mode()


def get_dspy_phase2_manager(config: dict | OptimizationConfig | None = None) -> DSPyPhase2Manager:
    """A manager whose settings are the environment's with ``config`` applied."""
    return DSPyPhase2Manager(load_settings(**config_overrides(config)), config_env(config))
