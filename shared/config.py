"""The seed design's configuration objects, validated: ``OptimizationConfig`` and ``AlertConfig``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Comparison = Literal["greater_than", "less_than", "greater_equal", "less_equal"]


class OptimizationConfig(BaseModel):
    """When optimizations are triggered and when their results may be deployed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enable_automatic_optimization: bool = True
    #: A relative drop this large (0.15 = 15%) against the incumbent's baseline triggers optimization.
    performance_degradation_threshold: float = Field(0.15, gt=0, lt=1)
    #: This many new feedback items for one variant x model trigger optimization.
    feedback_volume_threshold: int = Field(50, ge=1)
    #: Minimum hours between two optimizations of the same family x model.
    optimization_interval_hours: float = Field(24, gt=0)
    max_concurrent_optimizations: int = Field(3, ge=1)
    min_confidence_for_deployment: float = Field(0.8, ge=0, le=1)
    rollback_on_failure: bool = True
    optimization_timeout_minutes: float = Field(30, gt=0)


class AlertConfig(BaseModel):
    """Fire when ``metric_name`` over the last ``window_minutes`` compares to ``threshold`` as stated.

    The alert stays quiet until the window holds ``min_samples`` events, so one slow call at night
    does not page anyone.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric_name: str = Field(min_length=1)
    threshold: float
    comparison: Comparison = "greater_than"
    window_minutes: float = Field(5, gt=0)
    min_samples: int = Field(10, ge=1)

    def breached(self, value: float) -> bool:
        """Whether ``value`` is on the alerting side of the threshold."""
        return {
            "greater_than": value > self.threshold,
            "less_than": value < self.threshold,
            "greater_equal": value >= self.threshold,
            "less_equal": value <= self.threshold,
        }[self.comparison]
