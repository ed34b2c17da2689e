"""The alerts page: firing, pending and recently resolved alerts, the notifications sent, the silences.

Silences belong to agent/silences.py (its store, ``/api/v1/silences``, and the notifier that holds back what
they match); this only shows them, in the Alertmanager v2 shape that API speaks.
"""

from __future__ import annotations

from typing import Any

from dbwatch.agent.console.sources import Sources
from dbwatch.model import Alert, AlertState

__all__ = ["NOTIFICATIONS_SHOWN", "alerts_page", "notification_summary", "silence_list"]

NOTIFICATIONS_SHOWN = 100
_ORDER = {AlertState.FIRING: 0, AlertState.PENDING: 1, AlertState.RESOLVED: 2}


def alerts_page(sources: Sources) -> dict[str, Any]:
    alerts = sorted(sources.alerts(), key=lambda a: (_ORDER[a.state], a.target, a.name, a.fingerprint))
    store = sources.silences()
    silenced_by = getattr(store, "silenced_by", None)
    notifications = [_notification(n) for n in sources.notifications(NOTIFICATIONS_SHOWN)]
    return {
        "alerts": [_alert(a, silenced_by, notifications) for a in alerts],
        "notifications": notifications,
        "silences": silence_list(sources),
        "silences_available": sources.silences() is not None,
    }


def silence_list(sources: Sources) -> list[dict[str, Any]]:
    """The silences in the API's shape (``GET /api/v1/silences``): active, then pending, then expired."""
    store = sources.silences()
    if store is None:
        return []
    try:
        found = store.as_json()
    except Exception:  # the page must not fail because the silences store did
        return []
    return [item for item in found if isinstance(item, dict)]


def notification_summary(payload: Any) -> str:
    """What a notification said, in a few words, whatever the receiver's format: ``firing Name on target``."""
    return "; ".join(m["text"] for m in mentions(payload)[:5]) or "(no alert in the body)"


def mentions(payload: Any) -> list[dict[str, str]]:
    """The alerts a notification's body speaks of: ``{"text", "state", "alertname", "target", "key"}`` each
    (``key``: PagerDuty's dedup key, which is the alert's fingerprint)."""
    found: list[dict[str, str]] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            labels = value.get("labels")
            if isinstance(labels, dict) and "alertname" in labels:
                state = str(value.get("status") or ("resolved" if value.get("endsAt") else "firing"))
                name, target = str(labels["alertname"]), str(labels.get("target", "?"))
                found.append({"text": f"{state} {name} on {target}", "state": state, "alertname": name,
                              "target": target, "key": ""})
                return
            if "event_action" in value:  # PagerDuty: the summary says it, a resolve names only the key
                summary = (value.get("payload") or {}).get("summary") or f"resolve {value.get('dedup_key', '')}"
                found.append({"text": f"{value['event_action']}: {summary}" if "payload" in value else summary,
                              "state": str(value["event_action"]), "alertname": "", "target": "",
                              "key": str(value.get("dedup_key", ""))})
                return
            for child in value.values():
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)

    walk(payload.get("body") if isinstance(payload, dict) else payload)
    return found


def _history(alert: Alert, notifications: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The alert's life, oldest first: pending, fired, each notification about it (among those shown), resolved."""
    events: list[dict[str, Any]] = [{"at": alert.active_since, "what": "pending"}]
    if alert.fired_at is not None:
        events.append({"at": alert.fired_at, "what": "fired"})
    for row in notifications:
        for m in row["about"]:
            if m["key"] == alert.fingerprint or (m["alertname"] == alert.name and m["target"] == alert.target):
                events.append({"at": row["created_at"], "what": f"{m['state']} sent to {row['receiver']}",
                               "status": row["status"]})
                break
    if alert.resolved_at is not None:
        events.append({"at": alert.resolved_at, "what": "resolved"})
    return sorted(events, key=lambda e: e["at"])


def _alert(alert: Alert, silenced_by: Any, notifications: list[dict[str, Any]]) -> dict[str, Any]:
    silence = silenced_by(alert.labels) if silenced_by is not None and alert.state != AlertState.RESOLVED else None
    return {
        "fingerprint": alert.fingerprint, "name": alert.name, "target": alert.target, "state": str(alert.state),
        "severity": alert.severity, "labels": dict(alert.labels), "summary": alert.annotations.get("summary", ""),
        "description": alert.annotations.get("description", ""), "value": alert.value,
        "active_since": alert.active_since, "fired_at": alert.fired_at, "resolved_at": alert.resolved_at,
        "silenced_by": silence,
        "history": _history(alert, notifications),
    }


def _notification(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "receiver": row["receiver"], "status": row["status"], "attempts": row["attempts"],
            "created_at": row["created_at"], "finished_at": row["finished_at"], "last_error": row["last_error"],
            "summary": notification_summary(row["payload"]),
            "about": [{k: v for k, v in m.items() if k != "text"} for m in mentions(row["payload"])]}
