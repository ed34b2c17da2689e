"""The ``receivers:`` and ``notifications:`` sections of the configuration.

A receiver is a place alerts are sent to (webhook, Alertmanager, Slack, PagerDuty): one class each, a
:class:`~dbwatch.exporters.receiver.Receiver` that is both its configuration and its sender. The ``type``
key selects the class, so an error names the receiver's own keys. Secrets are never part of the model:
a receiver names the environment variable or file that holds one (``*_env`` / ``*_file``) and it is read
when a request is made, so it can rotate and never reaches a log line, an error message or a ``repr``.
"""

from __future__ import annotations

from typing import Annotated, Any, Sequence, Union

from pydantic import Discriminator, Field, Tag, TypeAdapter, model_validator

from dbwatch.exporters.alertmanager import AlertmanagerReceiver
from dbwatch.exporters.pagerduty import PagerDutyReceiver
from dbwatch.exporters.receiver import Receiver
from dbwatch.exporters.slack import SlackReceiver
from dbwatch.exporters.webhook import WebhookReceiver
from dbwatch.model.configtypes import Duration, StrictModel

__all__ = ["NotificationsConfig", "ReceiverConfig", "check_unique_names", "parse_receivers"]

# Tags start with "tagged-union" so that error paths (configtypes.yaml_path) leave them out: the user
# reads "receivers[0].url", not "receivers[0].webhook.url".
_TAG = "tagged-union-"
#: the receiver classes by their ``type``; a new receiver is one class here and one line in ReceiverConfig
_TYPES: dict[str, type[Receiver]] = {"webhook": WebhookReceiver, "alertmanager": AlertmanagerReceiver,
                                     "slack": SlackReceiver, "pagerduty": PagerDutyReceiver}


def _receiver_tag(data: Any) -> str | None:
    kind = data.get("type") if isinstance(data, dict) else getattr(data, "type", None)
    return _TAG + kind if kind in _TYPES else None


ReceiverConfig = Annotated[
    Union[
        Annotated[WebhookReceiver, Tag(_TAG + "webhook")],
        Annotated[AlertmanagerReceiver, Tag(_TAG + "alertmanager")],
        Annotated[SlackReceiver, Tag(_TAG + "slack")],
        Annotated[PagerDutyReceiver, Tag(_TAG + "pagerduty")],
    ],
    Discriminator(
        _receiver_tag,
        custom_error_type="receiver_type",
        custom_error_message=f"type: expected one of {', '.join(_TYPES)}",
    ),
]


class NotificationsConfig(StrictModel):
    """How the outbox retries: exponential backoff with jitter between the two bounds, until ``max_age``."""

    max_age: Duration = Field(default=24 * 3600.0, gt=0)
    min_backoff: Duration = Field(default=1.0, gt=0)
    max_backoff: Duration = Field(default=300.0, gt=0)
    retention: Duration = Field(default=7 * 86400.0, gt=0)  # delivered and failed rows are kept this long

    @model_validator(mode="after")
    def _bounds(self) -> "NotificationsConfig":
        if self.min_backoff > self.max_backoff:
            raise ValueError("min_backoff must not exceed max_backoff")
        return self


def check_unique_names(receivers: Sequence[Receiver]) -> None:
    seen: set[str] = set()
    for index, receiver in enumerate(receivers):
        if receiver.name in seen:
            raise ValueError(f"receivers[{index}].name: {receiver.name!r} is already the name of another receiver")
        seen.add(receiver.name)


_RECEIVERS: TypeAdapter[list[ReceiverConfig]] = TypeAdapter(list[ReceiverConfig])


def parse_receivers(data: list[dict[str, Any]]) -> list[ReceiverConfig]:
    """Validate a ``receivers:`` list on its own (for tests and tools); the config does it in place."""
    receivers = _RECEIVERS.validate_python(data)
    check_unique_names(receivers)
    return receivers
