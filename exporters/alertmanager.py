"""The Alertmanager receiver, API v2 (``POST /api/v2/alerts``): the body dbwatch pushes to a real Alertmanager.

A firing alert is posted with ``endsAt`` a few resend intervals ahead (as Prometheus does), and re-posted
before that runs out; if the agent dies, Alertmanager resolves the alert by itself instead of paging
about it forever. A resolved alert is posted with ``endsAt`` = the time it resolved.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Sequence

from pydantic import Field, model_validator

from dbwatch.exporters.receiver import HttpReceiver, Url, rfc3339, starts_at
from dbwatch.model import Alert, AlertState
from dbwatch.model.configtypes import Duration

__all__ = ["ENDS_AT_FACTOR", "AlertmanagerReceiver", "am_alert", "am_payload", "refresh_ends_at"]

#: a firing alert's endsAt is this many resend intervals after it is sent (Prometheus uses 4 too)
ENDS_AT_FACTOR = 4


class AlertmanagerReceiver(HttpReceiver):
    """Alertmanager API v2. Alertmanager does routing, grouping, repeats, silences and inhibition itself;
    dbwatch re-posts firing alerts every ``resend_interval`` with ``endsAt`` a few intervals ahead, so an
    agent that dies leaves alerts that resolve on their own instead of firing forever."""

    #: Alertmanager users see what dbwatch muted (annotation ``dbwatch_silenced_by``) and may page on it themselves
    forwards_silenced: ClassVar[bool] = True

    type: Literal["alertmanager"]
    url: Url
    resend_interval: Duration = Field(default=60.0, gt=0, le=3600)

    @model_validator(mode="before")
    @classmethod
    def _no_repeat(cls, data: Any) -> Any:
        if isinstance(data, dict) and "repeat_interval" in data:
            raise ValueError(
                "repeat_interval: not for Alertmanager receivers; dbwatch re-posts every resend_interval "
                "(default 1m) and Alertmanager's own route sets how often people are notified"
            )
        return data

    @property
    def resend_every(self) -> float:
        return self.resend_interval

    def payloads(self, alerts: Sequence[Alert], external_url: str) -> list[Any]:
        return [am_payload(alerts, external_url)]

    def target_url(self) -> str:
        return self.url.rstrip("/") + "/api/v2/alerts"

    def prepare(self, body: Any, now: float) -> Any:
        return refresh_ends_at(body, now, self.resend_interval)


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
