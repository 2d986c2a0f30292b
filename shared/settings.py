"""One validated settings object, read from the environment (the seed's variables and ours).

Invalid values stop the process at start-up with a message naming the variable; secrets (database
passwords, Redis credentials) come only from the environment, never from files in the repository.
"""

from __future__ import annotations

import functools
from pathlib import Path

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from .config import AlertConfig, OptimizationConfig


class SettingsError(ValueError):
    """The environment holds a value promptloop cannot run with."""


def _default_data_dir() -> Path:
    return Path.home() / ".promptloop"


def _default_datasets_dir() -> Path:
    # The labeled sets handed to the team sit beside the checkout; they are never copied into it.
    return Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"


class Settings(BaseSettings):
    """Everything configurable, each field bound to exactly one environment variable."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    # The seed design's variables.
    dspy_enabled: bool = Field(True, alias="DSPY_ENABLED")
    dspy_phase2_enabled: bool = Field(True, alias="DSPY_PHASE2_ENABLED")
    auto_optimize: bool = Field(True, alias="DSPY_AUTO_OPTIMIZE")
    performance_threshold: float = Field(0.15, gt=0, lt=1, alias="DSPY_PERFORMANCE_THRESHOLD")
    feedback_threshold: int = Field(50, ge=1, alias="DSPY_FEEDBACK_THRESHOLD")
    alert_latency_ms: float = Field(5000, gt=0, alias="DSPY_ALERT_LATENCY")
    alert_success_rate: float = Field(0.9, ge=0, le=1, alias="DSPY_ALERT_SUCCESS_RATE")

    # Services.
    redis_url: str = Field("redis://localhost:6379/0", alias="REDIS_URL")
    #: Empty means a SQLite file in the data directory (the embedded default).
    database_url: str = Field("", alias="DATABASE_URL")
    data_dir: Path = Field(default_factory=_default_data_dir, alias="PROMPTLOOP_DATA_DIR")
    datasets_dir: Path = Field(default_factory=_default_datasets_dir, alias="PROMPTLOOP_DATASETS_DIR")

    # Ingest.
    #: Stream entries read per XREADGROUP and stored in one transaction. A producer's entry holds up
    #: to 500 events, so a batch holds up to 25,000 events under load (and a few when traffic is light).
    ingest_batch_size: int = Field(50, ge=1, le=10_000, alias="PROMPTLOOP_INGEST_BATCH")
    #: An entry delivered this many times without being stored goes to the dead letters.
    ingest_max_deliveries: int = Field(5, ge=1, alias="PROMPTLOOP_MAX_DELIVERIES")
    #: A consumer's unacknowledged entries are taken over after this long without progress.
    #: Too low and a slow but alive worker's batch is processed twice (harmless, just wasted work).
    ingest_reclaim_idle_ms: int = Field(60_000, ge=100, alias="PROMPTLOOP_RECLAIM_IDLE_MS")
    ingest_max_event_bytes: int = Field(256 * 1024, ge=1024, alias="PROMPTLOOP_MAX_EVENT_BYTES")
    #: One drain task reads for at most this long, then re-enqueues itself if a backlog remains.
    ingest_drain_budget_s: float = Field(10.0, gt=0, alias="PROMPTLOOP_DRAIN_BUDGET_S")
    #: A drain that runs out of entries waits this long for more before it ends.
    ingest_idle_wait_ms: int = Field(250, ge=0, le=10_000, alias="PROMPTLOOP_DRAIN_IDLE_WAIT_MS")
    #: At most this many drain loops run at once across all workers.
    ingest_parallel: int = Field(4, ge=1, le=64, alias="PROMPTLOOP_INGEST_PARALLEL")
    #: How often beat asks for a drain.
    drain_interval_s: float = Field(1.0, gt=0, alias="PROMPTLOOP_DRAIN_INTERVAL_S")

    # Language models.
    #: Model key -> LiteLLM model string ("ollama_chat/qwen2.5:3b", "openai/<alias>" with an API base...),
    #: or "scripted/<behaviour>" for the deterministic LMs tests and benchmarks use. JSON in the env.
    models: dict[str, str] = Field(
        default_factory=lambda: {"1.5b": "ollama_chat/qwen2.5:1.5b", "3b": "ollama_chat/qwen2.5:3b",
                                 "7b": "ollama_chat/qwen2.5:7b"},
        alias="PROMPTLOOP_MODELS")
    #: Base URL for the LM server (Ollama: http://localhost:11434); empty means LiteLLM's default.
    lm_api_base: str = Field("", alias="PROMPTLOOP_LM_API_BASE")
    lm_max_tokens: int = Field(1024, ge=16, le=32_768, alias="PROMPTLOOP_LM_MAX_TOKENS")
    #: Where ``promptloop models fetch`` keeps verified GGUF files ("local/<name>" model strings).
    models_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "promptloop" / "models",
                             alias="PROMPTLOOP_MODELS_DIR")
    #: Context window for in-process GGUF models (LightRAG's extraction prompt alone is ~1,800 tokens).
    local_n_ctx: int = Field(4096, ge=512, le=131_072, alias="PROMPTLOOP_LOCAL_N_CTX")
    #: CPU threads of an in-process GGUF model (0: one per core). On a machine shared with other busy
    #: processes, fewer threads than cores avoids llama.cpp's threads spinning while they wait for a core.
    local_threads: int = Field(0, ge=0, le=512, alias="PROMPTLOOP_LOCAL_THREADS")

    # Optimization.
    #: Family -> optimizer name ("demos", "gepa", "mipro", "prune", "rules"), JSON; families not named use "gepa".
    optimizers: dict[str, str] = Field(
        default_factory=lambda: {"entity_extraction": "demos", "relationship_extraction": "demos"},
        alias="PROMPTLOOP_OPTIMIZERS")
    #: Model key that proposes instructions and reflects on failures (MIPROv2, GEPA); empty: the target model.
    proposer_model: str = Field("", alias="PROMPTLOOP_PROPOSER_MODEL")
    #: LM calls one optimization may spend (scoring, proposals and validation together).
    optimize_budget_calls: int = Field(300, ge=1, alias="PROMPTLOOP_OPTIMIZE_BUDGET_CALLS")
    #: How long an optimization's lease lives without renewal; a killed worker's run resumes after it.
    optimize_lease_s: float = Field(120.0, ge=5, alias="PROMPTLOOP_OPTIMIZE_LEASE_S")
    #: Search and validation examples per run.
    optimize_train: int = Field(20, ge=1, alias="PROMPTLOOP_OPTIMIZE_TRAIN")
    optimize_val: int = Field(20, ge=1, alias="PROMPTLOOP_OPTIMIZE_VAL")

    # Safe replacement.
    #: Held-out examples a candidate and the incumbent are compared on (paired) before deployment.
    validation_examples: int = Field(30, ge=2, alias="PROMPTLOOP_VALIDATION_EXAMPLES")
    #: Confidence (paired bootstrap) that the candidate is better, needed to deploy it (the seed's 0.8).
    min_confidence_for_deployment: float = Field(0.8, ge=0, le=1, alias="PROMPTLOOP_MIN_CONFIDENCE")
    #: A candidate metric may fall this far below the incumbent's on validation (absolute, 0..1 metrics).
    validation_tolerance: float = Field(0.02, ge=0, le=1, alias="PROMPTLOOP_VALIDATION_TOLERANCE")
    #: How long each rollout step (10, 25, 50, 75 %) holds before it may be promoted.
    rollout_hold_s: float = Field(3600.0, ge=0, alias="PROMPTLOOP_ROLLOUT_HOLD_S")
    #: How often beat checks running rollouts and republishes their state to Redis.
    rollout_check_s: float = Field(15.0, gt=0, alias="PROMPTLOOP_ROLLOUT_CHECK_S")
    #: Live calls each arm needs before the gate decides anything.
    rollout_min_samples: int = Field(50, ge=2, alias="PROMPTLOOP_ROLLOUT_MIN_SAMPLES")
    #: Roll back automatically when the live gate says "worse" (off: pause the rollout instead).
    rollback_on_failure: bool = Field(True, alias="PROMPTLOOP_ROLLBACK_ON_FAILURE")

    # The real-time optimizer (the seed's OptimizationConfig, bound to the environment).
    #: Minimum hours between two automatic optimizations of the same family x model (the cooldown).
    optimization_interval_hours: float = Field(24.0, gt=0, alias="PROMPTLOOP_OPTIMIZATION_INTERVAL_HOURS")
    max_concurrent_optimizations: int = Field(3, ge=1, alias="PROMPTLOOP_MAX_CONCURRENT_OPTIMIZATIONS")
    optimization_timeout_minutes: float = Field(30.0, gt=0, alias="PROMPTLOOP_OPTIMIZATION_TIMEOUT_MINUTES")
    #: Seconds Redis waits before it hands a task that was taken but not acknowledged to another worker
    #: (the worker died without giving it back). Past it, a copy of a task still running starts elsewhere:
    #: keep it above the longest optimization or validation (a run's hard stop is twice its time budget,
    #: ``budget_minutes`` where a run sets one). 0: twice the optimization timeout plus 10 min, at least 1 h.
    visibility_timeout_s: float = Field(0.0, ge=0, alias="PROMPTLOOP_VISIBILITY_TIMEOUT_S")
    #: The recent window compared with the family's baseline (the window before it) for degradation.
    degradation_window_minutes: float = Field(15.0, gt=0, alias="PROMPTLOOP_DEGRADATION_WINDOW_MINUTES")
    degradation_baseline_hours: float = Field(24.0, gt=0, alias="PROMPTLOOP_DEGRADATION_BASELINE_HOURS")

    # Monitoring.
    #: How often beat evaluates alert rules and the optimizer's triggers.
    monitor_interval_s: float = Field(30.0, gt=0, alias="PROMPTLOOP_MONITOR_INTERVAL_S")
    #: Alerts are POSTed here as JSON when they fire and when they resolve; empty: not posted.
    alert_webhook_url: str = Field("", alias="PROMPTLOOP_ALERT_WEBHOOK_URL")
    alert_webhook_timeout_s: float = Field(5.0, gt=0, alias="PROMPTLOOP_ALERT_WEBHOOK_TIMEOUT_S")
    #: Events and production examples older than this are deleted (0: keep everything).
    retention_days: float = Field(30.0, ge=0, alias="PROMPTLOOP_RETENTION_DAYS")

    def optimizer_for(self, family: str) -> str:
        return self.optimizers.get(family, "gepa")

    @field_validator("models")
    @classmethod
    def _model_keys(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("name at least one model")
        for key, model in value.items():
            if not key or not model or "/" not in model:
                raise ValueError(f"{key!r}: {model!r} is not a LiteLLM model string like 'ollama_chat/qwen2.5:3b', "
                                 "'local/<gguf name or path>' or 'scripted/<behaviour>'")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_driver(cls, value: str) -> str:
        if not value:
            return value
        try:
            url = make_url(value)
        except Exception as exc:
            raise ValueError(f"not a database URL ({exc})") from None
        if url.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
            # One driver everywhere: psycopg 3 (COPY support, no separate C build).
            url = url.set(drivername="postgresql+psycopg")
        if url.drivername not in ("postgresql+psycopg", "sqlite", "sqlite+pysqlite"):
            raise ValueError("use postgresql+psycopg://... or sqlite:///...")
        return url.render_as_string(hide_password=False)

    @property
    def sqlalchemy_url(self) -> str:
        """``DATABASE_URL``, or the embedded SQLite file."""
        return self.database_url or f"sqlite:///{self.data_dir / 'promptloop.db'}"

    @property
    def visibility_timeout(self) -> float:
        """``visibility_timeout_s``, or when 0, past a default run's hard stop (twice its budget) by 10 min,
        and at least an hour."""
        return self.visibility_timeout_s or max(3600.0, 2 * 60 * self.optimization_timeout_minutes + 600)

    @property
    def optimization(self) -> OptimizationConfig:
        """The seed's ``OptimizationConfig`` with the environment's overrides applied."""
        return OptimizationConfig(
            enable_automatic_optimization=self.auto_optimize,
            performance_degradation_threshold=self.performance_threshold,
            feedback_volume_threshold=self.feedback_threshold,
            min_confidence_for_deployment=self.min_confidence_for_deployment,
            rollback_on_failure=self.rollback_on_failure,
            optimization_interval_hours=self.optimization_interval_hours,
            max_concurrent_optimizations=self.max_concurrent_optimizations,
            optimization_timeout_minutes=self.optimization_timeout_minutes,
        )

    @property
    def alerts(self) -> list[AlertConfig]:
        """The seed's default alerts, with thresholds from the environment."""
        return [
            AlertConfig(metric_name="latency_mean", threshold=self.alert_latency_ms, comparison="greater_than",
                        window_minutes=5, min_samples=10),
            AlertConfig(metric_name="success_rate", threshold=self.alert_success_rate, comparison="less_than",
                        window_minutes=5, min_samples=10),
        ]


_JSON_EXAMPLES = {"PROMPTLOOP_MODELS": '{"1.5b": "ollama_chat/qwen2.5:1.5b"}',
                  "PROMPTLOOP_OPTIMIZERS": '{"entity_extraction": "demos"}'}


def load_settings(**overrides) -> Settings:
    """Read and validate the environment; raise ``SettingsError`` naming each bad variable."""
    from pydantic_settings import SettingsError as SourceError

    try:
        return Settings(**overrides)
    except SourceError as exc:  # a JSON variable that is not JSON: pydantic-settings names only the field
        field_name = str(exc).split('"')[1] if '"' in str(exc) else ""
        info = Settings.model_fields.get(field_name)
        name = info.alias if info is not None and info.alias else field_name or "a variable"
        raise SettingsError(f"invalid configuration: {name} must be JSON, e.g. "
                            f"{name}='{_JSON_EXAMPLES.get(name, '{}')}'") from None
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"])
            problems.append(f"{name}={err.get('input')!r}: {err['msg']}")
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None


@functools.cache
def get_settings() -> Settings:
    """The process's settings, loaded once."""
    return load_settings()
