"""Posting alerts to ``PROMPTLOOP_ALERT_WEBHOOK_URL``: once when they fire, once when they resolve.

Posting never runs inside the check: ``post_pending`` picks the alerts whose firing or resolution the
webhook has not acknowledged yet (a 2xx answer), and posts each in its own daemon thread, so a webhook
that hangs or fails delays neither the caller nor the other alerts; an alert not acknowledged stays
unposted and is tried again on the next call. A Redis lease per alert (longer than two posts' timeouts)
keeps two callers (two beats' ticks, a check's prompt post and the retry tick) from posting the same
alert at once; the ``fire_posted`` / ``resolve_posted`` flags, set by a conditional update after a 2xx,
keep it from being posted again. A process killed between the answer and the update posts it again.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
import uuid

import redis
from sqlalchemy import Engine, or_, select, update

from ..models import Alert, AlertRule
from ..settings import Settings

log = logging.getLogger(__name__)

LEASE_PREFIX = "promptloop:alert:post:"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_COLUMNS = (Alert.id, Alert.scope, Alert.status, Alert.value, Alert.threshold, Alert.message, Alert.fired_at,
            Alert.resolved_at, Alert.fire_posted, Alert.resolve_posted, AlertRule.name.label("rule"),
            AlertRule.metric_name, AlertRule.comparison, AlertRule.window_minutes)


def payload(row, kind: str) -> dict:
    """The JSON body posted for ``kind`` ("fired" or "resolved")."""
    family, variant, model = row.scope.split("|", 2)
    return {"event": kind, "alert_id": row.id, "rule": row.rule, "metric_name": row.metric_name,
            "comparison": row.comparison, "threshold": row.threshold, "value": row.value,
            "window_minutes": row.window_minutes,
            "family": None if family == "-" else family, "variant": variant, "model": model,
            "message": row.message, "status": row.status,
            "fired_at": row.fired_at.isoformat() if row.fired_at else None,
            "resolved_at": row.resolved_at.isoformat() if row.resolved_at else None}


_UNPOSTED = or_(Alert.fire_posted.is_(False), (Alert.status == "resolved") & Alert.resolve_posted.is_(False))


def unposted(engine: Engine, limit: int = 20) -> list[int]:
    """Alerts whose firing, or resolution, the webhook has not acknowledged; oldest first."""
    with engine.connect() as conn:
        return list(conn.scalars(select(Alert.id).where(_UNPOSTED).order_by(Alert.id).limit(limit)))


def _still_unposted(engine: Engine, alert_id: int) -> bool:
    with engine.connect() as conn:
        return conn.scalar(select(Alert.id).where(Alert.id == alert_id, _UNPOSTED)) is not None


def send(url: str, body: dict, timeout: float) -> bool:
    """POST ``body`` as JSON; True on a 2xx answer within ``timeout`` seconds."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "promptloop"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return 200 <= answer.status < 300
    except Exception as exc:  # refused, timed out, 4xx/5xx (HTTPError), bad URL: all "not posted"
        log.warning("alert webhook %s failed: %s", url, exc)
        return False


def deliver(engine: Engine, settings: Settings, alert_id: int) -> dict:
    """Post what the webhook lacks of one alert (its firing, then its resolution); returns what was posted."""
    posted = {"fired": False, "resolved": False}
    with engine.connect() as conn:
        row = conn.execute(select(*_COLUMNS).join(AlertRule, AlertRule.id == Alert.rule_id)
                           .where(Alert.id == alert_id)).one_or_none()
    if row is None:
        return posted
    for kind, flag, due in (("fired", Alert.fire_posted, not row.fire_posted),
                            ("resolved", Alert.resolve_posted, row.status == "resolved" and not row.resolve_posted)):
        if not due:
            continue
        if not send(settings.alert_webhook_url, payload(row, kind), settings.alert_webhook_timeout_s):
            break  # the resolution waits for the firing to get through
        with engine.begin() as conn:
            conn.execute(update(Alert).where(Alert.id == alert_id, flag.is_(False)).values({flag.key: True}))
        posted[kind] = True
        log.info("alert %s: %s posted to the webhook", alert_id, kind)
    return posted


def _leased(engine: Engine, r: redis.Redis, settings: Settings, alert_id: int, token: str) -> None:
    try:
        deliver(engine, settings, alert_id)
    except Exception:
        log.exception("posting alert %s failed", alert_id)
    finally:
        _release(r, alert_id, token)


def _release(r: redis.Redis, alert_id: int, token: str) -> None:
    try:
        r.eval(_RELEASE, 1, f"{LEASE_PREFIX}{alert_id}", token)
    except redis.RedisError:
        pass  # the lease expires by itself


def post_pending(engine: Engine, r: redis.Redis, settings: Settings, wait: bool = False,
                 limit: int = 20) -> list[int]:
    """Start posting every unposted alert nobody is posting now; returns their ids at once.

    Each alert is posted in its own daemon thread (``wait`` joins them, for tests and the CLI).
    Nothing is posted, and nothing marked, while no webhook URL is set.
    """
    if not settings.alert_webhook_url:
        return []
    lease_ms = int((2 * settings.alert_webhook_timeout_s + 10) * 1000)
    started, threads = [], []
    for alert_id in unposted(engine, limit):
        token = uuid.uuid4().hex
        if not r.set(f"{LEASE_PREFIX}{alert_id}", token, nx=True, px=lease_ms):
            continue  # another caller is posting it right now
        if not _still_unposted(engine, alert_id):  # posted (and its lease let go) since the query above
            _release(r, alert_id, token)
            continue
        thread = threading.Thread(target=_leased, args=(engine, r, settings, alert_id, token),
                                  name=f"alert-webhook-{alert_id}", daemon=True)
        thread.start()
        started.append(alert_id)
        threads.append(thread)
    if wait:
        for thread in threads:
            thread.join()
    return started
