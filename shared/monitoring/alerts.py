"""Alert rules as data (the seed's ``AlertConfig``), checked against windowed metrics.

An alert is one incident of a rule on one family x variant x model (its scope). It fires once, when
the rule starts to hold, and resolves once, when it stops: firing inserts a row whose unique
``open_key`` ("rule id|scope") makes a second firing of the same incident impossible, however many
checks run at once; resolving clears ``open_key`` with a conditional update only one check can win.

A rule holds for a scope when the window has at least ``min_samples`` samples and the metric is on
the alerting side of the threshold. Fewer samples change nothing (an open alert stays open), except
none at all: a scope that went quiet resolves. Checking never posts anything: ``webhook`` does that.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from ..config import AlertConfig
from ..models import Alert, AlertRule
from ..settings import Settings
from .metrics import METRICS, window_metrics

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "default "
_OPS = {"greater_than": ">", "less_than": "<", "greater_equal": ">=", "less_equal": "<="}


def add_rule(engine: Engine, name: str, config: AlertConfig, family: str | None = None,
             model: str | None = None) -> int:
    """Store a rule (all families / models when None); returns its id."""
    if config.metric_name not in METRICS:
        raise ValueError(f"metric_name must be one of {', '.join(METRICS)}, not {config.metric_name!r}")
    with engine.begin() as conn:
        return conn.execute(AlertRule.__table__.insert().values(
            name=name, family=family, model=model, enabled=True, **config.model_dump())).inserted_primary_key[0]


def set_enabled(engine: Engine, name: str, enabled: bool) -> bool:
    with engine.begin() as conn:
        return conn.execute(update(AlertRule).where(AlertRule.name == name).values(enabled=enabled)).rowcount == 1


def sync_default_rules(engine: Engine, settings: Settings) -> None:
    """The seed's default rules (``Settings.alerts``), created once and kept at the environment's values."""
    with engine.connect() as conn:
        existing = {r.name: r for r in conn.execute(select(*AlertRule.__table__.c)
                                                  .where(AlertRule.name.startswith(DEFAULT_PREFIX)))}
    for config in settings.alerts:
        name, values = DEFAULT_PREFIX + config.metric_name, config.model_dump()
        row = existing.get(name)
        if row is None:
            try:
                add_rule(engine, name, config)
            except IntegrityError:
                pass  # another check created it at the same moment
        elif any(getattr(row, k) != v for k, v in values.items()):
            with engine.begin() as conn:
                conn.execute(update(AlertRule).where(AlertRule.id == row.id).values(**values))


def rules(engine: Engine, enabled_only: bool = True) -> list:
    """The rules as rows (attribute access: name, metric_name, threshold, ...), oldest first."""
    query = select(*AlertRule.__table__.c).order_by(AlertRule.id)
    if enabled_only:
        query = query.where(AlertRule.enabled.is_(True))
    with engine.connect() as conn:
        return list(conn.execute(query))


def scope_of(row: dict) -> str:
    return f"{row['family'] or '-'}|{row['variant']}|{row['model']}"


def _holds(rule, row: dict) -> bool | None:
    """True / False on enough samples; None when the window has too few to say."""
    samples, value = row[METRICS[rule.metric_name]], row[rule.metric_name]
    if samples < rule.min_samples or value is None:
        return None
    return AlertConfig(metric_name=rule.metric_name, threshold=rule.threshold, comparison=rule.comparison,
                       window_minutes=rule.window_minutes, min_samples=rule.min_samples).breached(value)


def _message(rule, row: dict, value: float) -> str:
    return (f"{rule.name}: {rule.metric_name} {value:.4g} {_OPS.get(rule.comparison, rule.comparison)} "
            f"{rule.threshold:g} over {rule.window_minutes:g} min ({row[METRICS[rule.metric_name]]} samples) "
            f"on {row['family'] or '-'} / {row['variant']} / {row['model']}")


def _fire(engine: Engine, rule, scope: str, row: dict, now: datetime) -> int | None:
    value = float(row[rule.metric_name])
    try:
        with engine.begin() as conn:
            alert_id = conn.execute(Alert.__table__.insert().values(
                rule_id=rule.id, scope=scope, open_key=f"{rule.id}|{scope}", status="firing", value=value,
                threshold=rule.threshold, message=_message(rule, row, value), fired_at=now,
                fire_posted=False, resolve_posted=False)).inserted_primary_key[0]
    except IntegrityError:
        return None  # already firing: this incident fired before, or another check fired it just now
    log.warning("alert %s fired: %s", alert_id, _message(rule, row, value))
    return alert_id


def _resolve(engine: Engine, alert_id: int, why: str, now: datetime) -> bool:
    with engine.begin() as conn:
        done = conn.execute(update(Alert).where(Alert.id == alert_id, Alert.open_key.is_not(None))
                            .values(status="resolved", open_key=None, resolved_at=now)).rowcount == 1
    if done:
        log.warning("alert %s resolved: %s", alert_id, why)
    return done


def check(engine: Engine, settings: Settings, now: datetime | None = None) -> dict:
    """Evaluate every enabled rule once: {"fired": [alert ids], "resolved": [alert ids], "firing": n}."""
    now = now or datetime.now(timezone.utc)
    sync_default_rules(engine, settings)
    active = rules(engine)
    with engine.connect() as conn:
        open_rows = list(conn.execute(select(Alert.id, Alert.rule_id, Alert.scope).where(Alert.open_key.is_not(None))))
    fired, resolved, windows = [], [], {}
    by_rule = {r.id: r for r in active}
    for alert_id, rule_id, _ in open_rows:
        if rule_id not in by_rule and _resolve(engine, alert_id, "its rule is disabled or gone", now):
            resolved.append(alert_id)
    for rule in active:
        if rule.metric_name not in METRICS:
            log.error("alert rule %s names an unknown metric %r; skipped", rule.name, rule.metric_name)
            continue
        key = (rule.window_minutes, rule.family, rule.model)
        if key not in windows:
            windows[key] = window_metrics(engine, rule.window_minutes, now, rule.family, rule.model)
        rows = {scope_of(r): r for r in windows[key]}
        for scope, row in rows.items():
            if _holds(rule, row) and (alert_id := _fire(engine, rule, scope, row, now)) is not None:
                fired.append(alert_id)
        for alert_id, rule_id, scope in open_rows:
            if rule_id != rule.id:
                continue
            row = rows.get(scope)
            if row is None or row[METRICS[rule.metric_name]] == 0:
                why = f"no samples on {scope} in the last {rule.window_minutes:g} min"
            elif _holds(rule, row) is False:
                why = f"{rule.metric_name} back to {row[rule.metric_name]:.4g} on {scope}"
            else:
                continue
            if _resolve(engine, alert_id, why, now):
                resolved.append(alert_id)
    with engine.connect() as conn:
        firing = len(conn.execute(select(Alert.id).where(Alert.open_key.is_not(None))).all())
    return {"fired": fired, "resolved": resolved, "firing": firing}


def recent_alerts(engine: Engine, limit: int = 10) -> list[dict]:
    """Firing alerts first, then the newest resolved ones, with their rule's name."""
    query = (select(Alert.id, AlertRule.name.label("rule"), Alert.scope, Alert.status, Alert.value, Alert.threshold,
                    Alert.message, Alert.fired_at, Alert.resolved_at, Alert.fire_posted, Alert.resolve_posted)
             .join(AlertRule, AlertRule.id == Alert.rule_id)
             .order_by(Alert.open_key.is_(None), Alert.id.desc()).limit(limit))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]
