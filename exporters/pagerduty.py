"""The PagerDuty receiver: Events API v2, one ``trigger`` per firing alert and one ``resolve``, deduplicated
by the alert's fingerprint.

The routing key is a secret: it is added to the event when it is sent (:meth:`PagerDutyReceiver.prepare`),
never stored in the outbox.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

from pydantic import Field, model_validator

from dbwatch.exporters.receiver import Receiver, Url, one_of, read_secret, rfc3339, starts_at
from dbwatch.model import Alert, AlertState
from dbwatch.model.configtypes import Duration

__all__ = ["PAGERDUTY_EVENTS_URL", "PagerDutyReceiver", "pagerduty_event"]

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
_PD_SEVERITIES = {"critical": "critical", "error": "error", "warning": "warning", "info": "info"}


class PagerDutyReceiver(Receiver):
    """PagerDuty Events API v2: one trigger per alert, one resolve, ``dedup_key`` = the alert's fingerprint."""

    type: Literal["pagerduty"]
    routing_key_env: str | None = None
    routing_key_file: str | None = None
    url: Url = PAGERDUTY_EVENTS_URL
    repeat_interval: Duration = Field(default=4 * 3600.0, gt=0)

    @model_validator(mode="after")
    def _key(self) -> "PagerDutyReceiver":
        one_of(self, "routing_key_env", "routing_key_file", required=True)
        return self

    @property
    def resend_every(self) -> float:
        return self.repeat_interval

    def payloads(self, alerts: Sequence[Alert], external_url: str) -> list[Any]:
        return [pagerduty_event(alert, external_url) for alert in alerts]

    def target_url(self) -> str:
        return self.url

    def prepare(self, body: Any, now: float) -> Any:
        return {"routing_key": read_secret(self.routing_key_env, self.routing_key_file) or "", **body}


def pagerduty_event(alert: Alert, client_url: str = "") -> dict[str, Any]:
    """A PagerDuty Events API v2 event: ``trigger`` while firing, ``resolve`` once; deduplicated by fingerprint.

    Without ``routing_key``: that is a secret, added when the event is sent.
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
