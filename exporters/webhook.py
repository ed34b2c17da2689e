"""Message formats for HTTP receivers: the plain webhook, Slack and PagerDuty.

The plain webhook body is Alertmanager's webhook payload, version "4", so any receiver written for
Alertmanager (chat bridges, ticket bots, runbooks) understands dbwatch unchanged. These functions are
pure: alerts in, a JSON-ready body out; sending, retrying and remembering live in ``agent.notify``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from typing import Any, Iterable, Sequence

from dbwatch.model import Alert, AlertState

__all__ = [
    "SIGNATURE_HEADER",
    "ZERO_TIME",
    "alert_body",
    "pagerduty_event",
    "rfc3339",
    "sign",
    "slack_message",
    "webhook_payload",
    "with_routing_key",
]

SIGNATURE_HEADER = "X-Dbwatch-Signature"
ZERO_TIME = "0001-01-01T00:00:00Z"  # what Alertmanager writes for "no end yet"
_PD_SEVERITIES = {"critical": "critical", "error": "error", "warning": "warning", "info": "info"}
_SLACK_ICONS = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":large_blue_circle:"}


def rfc3339(ts: float | None) -> str:
    if ts is None:
        return ZERO_TIME
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def starts_at(alert: Alert) -> float:
    return alert.fired_at if alert.fired_at is not None else alert.active_since


def alert_body(alert: Alert, generator_url: str = "") -> dict[str, Any]:
    """One alert as Alertmanager's webhook shows it."""
    resolved = alert.state == AlertState.RESOLVED
    return {
        "status": "resolved" if resolved else "firing",
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": rfc3339(starts_at(alert)),
        "endsAt": rfc3339(alert.resolved_at) if resolved else ZERO_TIME,
        "generatorURL": generator_url,
        "fingerprint": alert.fingerprint,
    }


def webhook_payload(
    receiver: str,
    alerts: Sequence[Alert],
    group_labels: dict[str, str],
    external_url: str = "",
    max_alerts: int = 0,
) -> dict[str, Any]:
    """Alertmanager's webhook payload, version "4", for one group of alerts."""
    shown = list(alerts) if not max_alerts else list(alerts)[:max_alerts]
    generator = external_url.rstrip("/") + "/api/v1/alerts" if external_url else ""
    return {
        "version": "4",
        "groupKey": group_key(receiver, group_labels),
        "truncatedAlerts": len(alerts) - len(shown),
        "status": "firing" if any(a.state != AlertState.RESOLVED for a in alerts) else "resolved",
        "receiver": receiver,
        "groupLabels": dict(group_labels),
        "commonLabels": _common(a.labels for a in alerts),
        "commonAnnotations": _common(a.annotations for a in alerts),
        "externalURL": external_url,
        "alerts": [alert_body(a, generator) for a in shown],
    }


def group_key(receiver: str, group_labels: dict[str, str]) -> str:
    """Like Alertmanager's: the route, then the group's labels; stable for one group of one receiver."""
    labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(group_labels.items()))
    return f'{{}}/{{receiver="{_escape(receiver)}"}}:{{{labels}}}'


def sign(secret: str, body: bytes) -> str:
    """The value of :data:`SIGNATURE_HEADER`: ``sha256=`` and the hex HMAC-SHA256 of the exact body bytes."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def slack_message(receiver: str, alerts: Sequence[Alert], max_alerts: int = 20) -> dict[str, Any]:
    """A Slack incoming-webhook message: one line per alert, severity, name, target and summary."""
    firing = [a for a in alerts if a.state != AlertState.RESOLVED]
    resolved = [a for a in alerts if a.state == AlertState.RESOLVED]
    parts = []
    if firing:
        parts.append(f"*[FIRING:{len(firing)}]* dbwatch → {receiver}")
        parts.extend(_slack_line(a) for a in firing[:max_alerts or None])
    if resolved:
        parts.append(f"*[RESOLVED:{len(resolved)}]* dbwatch → {receiver}")
        parts.extend(_slack_line(a) for a in resolved[:max_alerts or None])
    hidden = sum(max(0, len(group) - max_alerts) for group in (firing, resolved)) if max_alerts else 0
    if hidden:
        parts.append(f"… and {hidden} more")
    return {"text": "\n".join(parts)}


def pagerduty_event(alert: Alert, client_url: str = "") -> dict[str, Any]:
    """A PagerDuty Events API v2 event: ``trigger`` while firing, ``resolve`` once; deduplicated by fingerprint.

    Without ``routing_key``: that is a secret, added when the event is sent (see :func:`with_routing_key`),
    so it is never stored in the outbox.
    """
    if alert.state == AlertState.RESOLVED:
        return {"event_action": "resolve", "dedup_key": alert.fingerprint}
    summary = alert.annotations.get("summary") or f"{alert.name} on {alert.target}"
    event: dict[str, Any] = {
        "event_action": "trigger",
        "dedup_key": alert.fingerprint,
        "payload": {
            "summary": f"[{alert.severity}] {alert.name} on {alert.target}: {summary}"[:1024],
            "source": alert.target,
            "severity": _PD_SEVERITIES.get(alert.severity, "error"),
            "timestamp": rfc3339(starts_at(alert)),
            "class": alert.name,
            "custom_details": {
                "labels": dict(alert.labels),
                "annotations": dict(alert.annotations),
                "value": alert.value,
            },
        },
        "client": "dbwatch",
    }
    if client_url:
        event["client_url"] = client_url
    return event


def with_routing_key(event: dict[str, Any], routing_key: str) -> dict[str, Any]:
    return {"routing_key": routing_key, **event}


def _slack_line(alert: Alert) -> str:
    icon = ":white_check_mark:" if alert.state == AlertState.RESOLVED else _SLACK_ICONS.get(alert.severity, ":grey_question:")
    summary = alert.annotations.get("summary", "")
    return f"{icon} *{alert.severity}* `{alert.name}` on `{alert.target}`" + (f": {summary}" if summary else "")


def _common(maps: Iterable[dict[str, str]]) -> dict[str, str]:
    common: dict[str, str] | None = None
    for labels in maps:
        if common is None:
            common = dict(labels)
        else:
            common = {k: v for k, v in common.items() if labels.get(k) == v}
    return common or {}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
