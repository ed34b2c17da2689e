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
    return {
        "alerts": [_alert(a, silenced_by) for a in alerts],
        "notifications": [_notification(n) for n in sources.notifications(NOTIFICATIONS_SHOWN)],
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
    found: list[str] = []

    def walk(value: Any) -> None:
        if len(found) >= 5:
            return
        if isinstance(value, dict):
            labels = value.get("labels")
            if isinstance(labels, dict) and "alertname" in labels:
                state = value.get("status") or ("resolved" if value.get("endsAt") and "status" not in value else "")
                found.append(" ".join(p for p in (str(state), labels["alertname"], "on",
                                                  str(labels.get("target", "?"))) if p))
                return
            if "event_action" in value:  # PagerDuty: the summary says it, a resolve names only the key
                summary = (value.get("payload") or {}).get("summary") or f"resolve {value.get('dedup_key', '')}"
                found.append(f"{value['event_action']}: {summary}" if "payload" in value else summary)
                return
            for child in value.values():
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)

    walk(payload.get("body") if isinstance(payload, dict) else payload)
    return "; ".join(found) or "(no alert in the body)"


def _alert(alert: Alert, silenced_by: Any) -> dict[str, Any]:
    silence = silenced_by(alert.labels) if silenced_by is not None and alert.state != AlertState.RESOLVED else None
    return {
        "fingerprint": alert.fingerprint, "name": alert.name, "target": alert.target, "state": str(alert.state),
        "severity": alert.severity, "labels": dict(alert.labels), "summary": alert.annotations.get("summary", ""),
        "description": alert.annotations.get("description", ""), "value": alert.value,
        "active_since": alert.active_since, "fired_at": alert.fired_at, "resolved_at": alert.resolved_at,
        "silenced_by": silence,
    }


def _notification(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "receiver": row["receiver"], "status": row["status"], "attempts": row["attempts"],
            "created_at": row["created_at"], "finished_at": row["finished_at"], "last_error": row["last_error"],
            "summary": notification_summary(row["payload"])}
