"""Real-time monitoring (the seed's §2): windowed metrics, alert rules and alerts, the webhook,
health checks, retention, and beat's slot keys. Plain functions; ``tasks.monitor`` runs them on beat."""

from .alerts import add_rule, check, recent_alerts
from .health import health
from .metrics import METRICS, window_metrics
from .retention import cleanup

__all__ = ["METRICS", "add_rule", "check", "cleanup", "health", "recent_alerts", "window_metrics"]
