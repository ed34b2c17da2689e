"""The plain webhook receiver: Alertmanager's webhook payload, version "4", optionally HMAC-signed.

Any receiver written for Alertmanager (chat bridges, ticket bots, runbooks) understands dbwatch unchanged.
Alerts due together are grouped by ``group_by`` labels, one request per group.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Iterable, Literal, Sequence

from pydantic import Field, model_validator

from dbwatch.exporters.receiver import (
    ZERO_TIME, HttpReceiver, Url, group_alerts, one_of, read_secret, rfc3339, starts_at,
)
from dbwatch.model import Alert, AlertState
from dbwatch.model.configtypes import Duration

__all__ = ["SIGNATURE_HEADER", "WebhookReceiver", "alert_body", "group_key", "sign", "webhook_payload"]

SIGNATURE_HEADER = "X-Dbwatch-Signature"


class WebhookReceiver(HttpReceiver):
    """Alertmanager's webhook payload (version "4"), so any Alertmanager webhook receiver understands it."""

    type: Literal["webhook"]
    url: Url
    repeat_interval: Duration = Field(default=4 * 3600.0, gt=0)
    group_by: list[str] = Field(default_factory=list)
    max_alerts: int = Field(default=0, ge=0)  # 0: no limit; above it the rest is counted in truncatedAlerts
    hmac_secret_env: str | None = None
    hmac_secret_file: str | None = None

    @model_validator(mode="after")
    def _secret(self) -> "WebhookReceiver":
        one_of(self, "hmac_secret_env", "hmac_secret_file", required=False)
        return self

    @property
    def resend_every(self) -> float:
        return self.repeat_interval

    def payloads(self, alerts: Sequence[Alert], external_url: str) -> list[Any]:
        return [webhook_payload(self.name, group, labels, external_url, self.max_alerts)
                for labels, group in group_alerts(alerts, self.group_by)]

    def target_url(self) -> str:
        return self.url

    def extra_headers(self, data: bytes) -> dict[str, str]:
        headers = super().extra_headers(data)
        secret = read_secret(self.hmac_secret_env, self.hmac_secret_file)
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, data)
        return headers


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


def group_key(receiver: str, group_labels: dict[str, str]) -> str:
    """Like Alertmanager's: the route, then the group's labels; stable for one group of one receiver."""
    labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(group_labels.items()))
    return f'{{}}/{{receiver="{_escape(receiver)}"}}:{{{labels}}}'


def sign(secret: str, body: bytes) -> str:
    """The value of :data:`SIGNATURE_HEADER`: ``sha256=`` and the hex HMAC-SHA256 of the exact body bytes."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


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
