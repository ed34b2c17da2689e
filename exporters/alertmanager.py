"""Alertmanager API v2 (``POST /api/v2/alerts``): the body dbwatch pushes to a real Alertmanager.

A firing alert is posted with ``endsAt`` a few resend intervals ahead (as Prometheus does), and re-posted
before that runs out; if the agent dies, Alertmanager resolves the alert by itself instead of paging
about it forever. A resolved alert is posted with ``endsAt`` = the time it resolved.
"""

from __future__ import annotations

from typing import Any, Sequence

from dbwatch.model import Alert, AlertState
from dbwatch.exporters.webhook import rfc3339, starts_at

__all__ = ["ENDS_AT_FACTOR", "am_alert", "am_payload", "refresh_ends_at"]

#: a firing alert's endsAt is this many resend intervals after it is sent (Prometheus uses 4 too)
ENDS_AT_FACTOR = 4


def am_alert(alert: Alert, generator_url: str = "") -> dict[str, Any]:
    """One alert in API v2 form. A firing alert has no ``endsAt`` yet: it is set when it is sent."""
    body: dict[str, Any] = {
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": rfc3339(starts_at(alert)),
        "generatorURL": generator_url,
    }
    if alert.state == AlertState.RESOLVED:
        body["endsAt"] = rfc3339(alert.resolved_at)
    return body


def am_payload(alerts: Sequence[Alert], external_url: str = "") -> list[dict[str, Any]]:
    generator = external_url.rstrip("/") + "/api/v1/alerts" if external_url else ""
    return [am_alert(a, generator) for a in alerts]


def refresh_ends_at(body: list[dict[str, Any]], now: float, resend_interval: float) -> list[dict[str, Any]]:
    """The body to send at ``now``: firing alerts end ``ENDS_AT_FACTOR`` resend intervals from now.

    Computed at send time, not when the notification was queued, so one delivered late (after an
    Alertmanager outage) does not arrive already expired.
    """
    ends = rfc3339(now + ENDS_AT_FACTOR * resend_interval)
    return [alert if "endsAt" in alert else {**alert, "endsAt": ends} for alert in body]
