"""The Slack receiver: an incoming webhook, one message per group of alerts (severity, name, target, summary).

The webhook's URL is itself the credential, so it comes from ``url_env`` or ``url_file`` and is read at
each request.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

from pydantic import Field, model_validator

from dbwatch.exporters.receiver import Receiver, SecretError, check_url, group_alerts, one_of, read_secret
from dbwatch.model import Alert, AlertState
from dbwatch.model.configtypes import Duration

__all__ = ["SlackReceiver", "slack_message"]

_SLACK_ICONS = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":large_blue_circle:"}


class SlackReceiver(Receiver):
    """A Slack incoming webhook; its URL is a secret, so it comes from ``url_env`` or ``url_file``."""

    type: Literal["slack"]
    url_env: str | None = None
    url_file: str | None = None
    repeat_interval: Duration = Field(default=4 * 3600.0, gt=0)
    group_by: list[str] = Field(default_factory=list)
    max_alerts: int = Field(default=20, ge=0)

    @model_validator(mode="after")
    def _url(self) -> "SlackReceiver":
        one_of(self, "url_env", "url_file", required=True)
        return self

    @property
    def resend_every(self) -> float:
        return self.repeat_interval

    def payloads(self, alerts: Sequence[Alert], external_url: str) -> list[Any]:
        return [slack_message(self.name, group, self.max_alerts) for _, group in group_alerts(alerts, self.group_by)]

    def target_url(self) -> str:
        url = read_secret(self.url_env, self.url_file) or ""
        try:
            check_url(url)
        except ValueError:
            raise SecretError(f"the Slack webhook URL from {self.url_env or self.url_file} is not an http(s) URL") from None
        return url


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


def _slack_line(alert: Alert) -> str:
    icon = ":white_check_mark:" if alert.state == AlertState.RESOLVED else _SLACK_ICONS.get(alert.severity, ":grey_question:")
    summary = alert.annotations.get("summary", "")
    return f"{icon} *{alert.severity}* `{alert.name}` on `{alert.target}`" + (f": {summary}" if summary else "")
