"""The ``receivers:`` and ``notifications:`` sections of the configuration.

A receiver is a place alerts are sent to (webhook, Alertmanager, Slack, PagerDuty) with its own route
(``match``), group wait and repeat interval. The ``type`` key selects the model, so an error names the
receiver's own keys. Secrets are never part of the model: a receiver names the environment variable or
file that holds one (``*_env`` / ``*_file``) and it is read when a request is made, so it can rotate and
never reaches a log line, an error message or a ``repr``.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from typing import Annotated, Any, Literal, Sequence, Union

from pydantic import AfterValidator, Discriminator, Field, Tag, TypeAdapter, field_validator, model_validator

from dbwatch.model.configtypes import Duration, StrictModel

__all__ = [
    "AlertmanagerReceiver",
    "BasicAuth",
    "NotificationsConfig",
    "PagerDutyReceiver",
    "ReceiverConfig",
    "SecretError",
    "SlackReceiver",
    "WebhookReceiver",
    "check_unique_names",
    "parse_receivers",
    "read_secret",
]

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
_RECEIVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
#: headers dbwatch sets itself; letting the config override them would break signing or dedup
_RESERVED_HEADERS = {"content-type", "content-length", "idempotency-key", "x-dbwatch-signature", "authorization", "host"}


class SecretError(Exception):
    """A secret's environment variable is unset or its file unreadable. The message names only where."""


def read_secret(env: str | None, file: str | None) -> str | None:
    """The secret from ``env`` or ``file`` (read each time, so a rotated secret is picked up)."""
    if env:
        value = os.environ.get(env)
        if not value:
            raise SecretError(f"environment variable {env} is not set")
        return value
    if file:
        try:
            with open(file, encoding="utf-8") as fh:
                return fh.read().strip()
        except OSError as exc:
            raise SecretError(f"cannot read secret file {file}: {exc.strerror}") from None
    return None


def _one_of(model: Any, *names: str, required: bool) -> None:
    given = [n for n in names if getattr(model, n) is not None]
    if len(given) > 1:
        raise ValueError(f"give only one of {', '.join(names)}")
    if required and not given:
        raise ValueError(f"needs one of {', '.join(names)}")


def _check_url(value: str | None) -> str | None:
    if value is None:
        return None
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError('expected an http(s) URL like "http://127.0.0.1:9000/hook"')
    if parsed.password is not None:
        raise ValueError("holds a password; use basic_auth with password_env or password_file instead")
    return value


Url = Annotated[str, AfterValidator(_check_url)]


class BasicAuth(StrictModel):
    username: str
    password_env: str | None = None
    password_file: str | None = None

    @model_validator(mode="after")
    def _password(self) -> "BasicAuth":
        _one_of(self, "password_env", "password_file", required=True)
        return self

    def credentials(self) -> tuple[str, str]:
        return self.username, read_secret(self.password_env, self.password_file) or ""


class _Receiver(StrictModel):
    name: str
    #: route: every given label must equal (alertname, severity, target or any of the alert's labels)
    match: dict[str, str] = Field(default_factory=dict)
    #: alerts that start firing within this time of the first one go out together
    group_wait: Duration = 0.0
    timeout: Duration = Field(default=10.0, gt=0)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _RECEIVER_NAME.match(value):
            raise ValueError(f"expected a name of letters, digits and _.- , got {value!r}")
        return value

    def matches(self, labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match.items())

    @property
    def resend_every(self) -> float:
        """How long after a firing notification it is sent again while the alert keeps firing."""
        raise NotImplementedError


class _HttpReceiver(_Receiver):
    headers: dict[str, str] = Field(default_factory=dict)
    basic_auth: BasicAuth | None = None

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _HEADER_NAME.match(name):
                raise ValueError(f"expected HTTP header names, got {name!r}")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header {name} is set by dbwatch and cannot be overridden")
        return value


class WebhookReceiver(_HttpReceiver):
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
        _one_of(self, "hmac_secret_env", "hmac_secret_file", required=False)
        return self

    @property
    def resend_every(self) -> float:
        return self.repeat_interval

    def hmac_secret(self) -> str | None:
        return read_secret(self.hmac_secret_env, self.hmac_secret_file)

    def target_url(self) -> str:
        return self.url


class AlertmanagerReceiver(_HttpReceiver):
    """Alertmanager API v2. Alertmanager does routing, grouping, repeats, silences and inhibition itself;
    dbwatch re-posts firing alerts every ``resend_interval`` with ``endsAt`` a few intervals ahead, so an
    agent that dies leaves alerts that resolve on their own instead of firing forever."""

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

    def target_url(self) -> str:
        return self.url.rstrip("/") + "/api/v2/alerts"


class SlackReceiver(_Receiver):
    """A Slack incoming webhook; its URL is a secret, so it comes from ``url_env`` or ``url_file``."""

    type: Literal["slack"]
    url_env: str | None = None
    url_file: str | None = None
    repeat_interval: Duration = Field(default=4 * 3600.0, gt=0)
    group_by: list[str] = Field(default_factory=list)
    max_alerts: int = Field(default=20, ge=0)

    @model_validator(mode="after")
    def _url(self) -> "SlackReceiver":
        _one_of(self, "url_env", "url_file", required=True)
        return self

    @property
    def resend_every(self) -> float:
        return self.repeat_interval

    def target_url(self) -> str:
        url = read_secret(self.url_env, self.url_file) or ""
        try:
            _check_url(url)
        except ValueError:
            raise SecretError(f"the Slack webhook URL from {self.url_env or self.url_file} is not an http(s) URL") from None
        return url


class PagerDutyReceiver(_Receiver):
    """PagerDuty Events API v2: one trigger per alert, one resolve, ``dedup_key`` = the alert's fingerprint."""

    type: Literal["pagerduty"]
    routing_key_env: str | None = None
    routing_key_file: str | None = None
    url: Url = PAGERDUTY_EVENTS_URL
    repeat_interval: Duration = Field(default=4 * 3600.0, gt=0)

    @model_validator(mode="after")
    def _key(self) -> "PagerDutyReceiver":
        _one_of(self, "routing_key_env", "routing_key_file", required=True)
        return self

    @property
    def resend_every(self) -> float:
        return self.repeat_interval

    def routing_key(self) -> str:
        return read_secret(self.routing_key_env, self.routing_key_file) or ""

    def target_url(self) -> str:
        return self.url


_TYPES = {"webhook": WebhookReceiver, "alertmanager": AlertmanagerReceiver, "slack": SlackReceiver,
          "pagerduty": PagerDutyReceiver}
# Tags start with "tagged-union" so that error paths (configtypes.yaml_path) leave them out: the user
# reads "receivers[0].url", not "receivers[0].webhook.url".
_TAG = "tagged-union-"


def _receiver_tag(data: Any) -> str | None:
    kind = data.get("type") if isinstance(data, dict) else getattr(data, "type", None)
    return _TAG + kind if kind in _TYPES else None


ReceiverConfig = Annotated[
    Union[tuple(Annotated[model, Tag(_TAG + kind)] for kind, model in _TYPES.items())],  # type: ignore[misc]
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


def check_unique_names(receivers: Sequence[Any]) -> None:
    seen: set[str] = set()
    for index, receiver in enumerate(receivers):
        if receiver.name in seen:
            raise ValueError(f"receivers[{index}].name: {receiver.name!r} is already the name of another receiver")
        seen.add(receiver.name)


_RECEIVERS = TypeAdapter(list[ReceiverConfig])


def parse_receivers(data: list[dict[str, Any]]) -> list[ReceiverConfig]:
    """Validate a ``receivers:`` list on its own (for tests and tools); the config does it in place."""
    receivers = _RECEIVERS.validate_python(data)
    check_unique_names(receivers)
    return receivers
