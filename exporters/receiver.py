"""What every receiver is: a configured destination that builds its own messages and sends them.

A receiver (webhook, Alertmanager, Slack, PagerDuty, one class each) is both the validated ``receivers:``
entry and the object the notifier hands alerts to. The notifier owns deciding, queueing and retrying; a
receiver answers two questions:

- :meth:`Receiver.payloads`: which bodies to queue for these alerts, one outbox row each. A body is plain
  JSON and never holds a secret, because it is written to disk.
- :meth:`Receiver.send`: deliver one queued body. Secrets (tokens, HMAC keys, passwords) are read from
  their environment variable or file here, at each request, so they can rotate and never reach the outbox,
  a log line or a ``repr``.

Adding a receiver is one subclass with a ``type`` literal, ``payloads`` and ``target_url`` (and ``prepare``
when its body depends on the time of sending), plus its entry in :data:`~dbwatch.exporters.receivers.ReceiverConfig`.
"""

from __future__ import annotations

import abc
import datetime as dt
import json
import os
import re
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Sequence

from pydantic import AfterValidator, Field, field_validator, model_validator

from dbwatch.model import Alert
from dbwatch.model.configtypes import Duration, StrictModel

if TYPE_CHECKING:  # aiohttp is imported where a request is sent: loading a config must stay fast
    import aiohttp

__all__ = [
    "BasicAuth", "HttpReceiver", "Receiver", "SecretError", "Sent", "Url", "ZERO_TIME", "check_url", "group_alerts",
    "one_of", "read_secret", "rfc3339", "starts_at",
]

ZERO_TIME = "0001-01-01T00:00:00Z"  # what Alertmanager writes for "no end yet"
_RECEIVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
#: headers dbwatch sets itself; letting the config override them would break signing or dedup
_RESERVED_HEADERS = {"content-type", "content-length", "idempotency-key", "x-dbwatch-signature", "authorization", "host"}
_ANSWER_BYTES = 65536  # the answer is not needed; a little is read so the connection can be reused


class SecretError(Exception):
    """A secret's environment variable is unset or its file unreadable. The message names only where."""


@dataclass(frozen=True, slots=True)
class Sent:
    """The receiver's answer to one request: its HTTP status and its ``Retry-After`` header, if any."""

    status: int
    retry_after: str | None


class Receiver(StrictModel, abc.ABC):
    """A ``receivers:`` entry: its route (``match``), how long new alerts wait to be grouped, the request
    timeout; each type adds its destination and message format."""

    #: whether alerts muted by a dbwatch silence still go to it (noted in an annotation), as to Alertmanager
    forwards_silenced: ClassVar[bool] = False

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
    @abc.abstractmethod
    def resend_every(self) -> float:
        """How long after a firing notification it is sent again while the alert keeps firing."""

    @abc.abstractmethod
    def payloads(self, alerts: Sequence[Alert], external_url: str) -> list[Any]:
        """The bodies to queue for ``alerts`` (all due together), each one request; JSON-ready, no secrets."""

    @abc.abstractmethod
    def target_url(self) -> str:
        """Where requests go (read at each request when the URL itself is a secret)."""

    def prepare(self, body: Any, now: float) -> Any:
        """The queued body as sent at ``now``: what depends on the time of sending, or on a secret."""
        return body

    def extra_headers(self, data: bytes) -> dict[str, str]:
        """Headers of the request carrying ``data``, besides Content-Type and Idempotency-Key."""
        return {}

    def auth(self) -> aiohttp.BasicAuth | None:
        return None

    async def send(self, http: aiohttp.ClientSession, body: Any, key: str, now: float) -> Sent:
        """POST one queued body. ``key`` (the outbox row's) goes in ``Idempotency-Key``, so a request
        repeated after a crash can be recognised. Raises on timeouts, connection and secret errors."""
        data = json.dumps(self.prepare(body, now), separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": key, **self.extra_headers(data)}
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with http.post(self.target_url(), data=data, headers=headers, auth=self.auth(), timeout=timeout,
                             allow_redirects=False) as response:
            await response.content.read(_ANSWER_BYTES)
            return Sent(response.status, response.headers.get("Retry-After"))


class BasicAuth(StrictModel):
    username: str
    password_env: str | None = None
    password_file: str | None = None

    @model_validator(mode="after")
    def _password(self) -> "BasicAuth":
        one_of(self, "password_env", "password_file", required=True)
        return self

    def credentials(self) -> tuple[str, str]:
        return self.username, read_secret(self.password_env, self.password_file) or ""


class HttpReceiver(Receiver):
    """A receiver whose URL is not a secret, with configurable headers and basic auth."""

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

    def extra_headers(self, data: bytes) -> dict[str, str]:
        return dict(self.headers)

    def auth(self) -> aiohttp.BasicAuth | None:
        import aiohttp

        return aiohttp.BasicAuth(*self.basic_auth.credentials()) if self.basic_auth is not None else None


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


def one_of(model: Any, *names: str, required: bool) -> None:
    given = [n for n in names if getattr(model, n) is not None]
    if len(given) > 1:
        raise ValueError(f"give only one of {', '.join(names)}")
    if required and not given:
        raise ValueError(f"needs one of {', '.join(names)}")


def check_url(value: str | None) -> str | None:
    if value is None:
        return None
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError('expected an http(s) URL like "http://127.0.0.1:9000/hook"')
    if parsed.password is not None:
        raise ValueError("holds a password; use basic_auth with password_env or password_file instead")
    return value


Url = Annotated[str, AfterValidator(check_url)]


def rfc3339(ts: float | None) -> str:
    if ts is None:
        return ZERO_TIME
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def starts_at(alert: Alert) -> float:
    return alert.fired_at if alert.fired_at is not None else alert.active_since


def group_alerts(alerts: Sequence[Alert], group_by: Sequence[str]) -> list[tuple[dict[str, str], list[Alert]]]:
    """Alerts by the values of the ``group_by`` labels, in the order each group first appears."""
    groups: dict[tuple[str, ...], list[Alert]] = {}
    for alert in alerts:
        groups.setdefault(tuple(alert.labels.get(k, "") for k in group_by), []).append(alert)
    return [(dict(zip(group_by, values)), group) for values, group in groups.items()]
