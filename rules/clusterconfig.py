"""The ``clusters:`` section of the config: per cluster, how failover is judged and what may be done about it.

Lives with the rules (like :class:`~dbwatch.rules.spec.RulesConfig`) because the failover rules read it; the
agent reads the same objects to act. Everything is off unless written: no ``clusters:`` entry means the
defaults below (3 probes, 1 MiB maximum lag, action ``none``, dry run).
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from dbwatch.model.configtypes import Duration, StrictModel

__all__ = ["ByteSize", "ClusterConfig", "FailoverConfig", "parse_bytes"]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKMGT]i?B|B)?\s*$")
# PostgreSQL's units (and Patroni's bytes): 1kB = 1024 B; the IEC spellings mean the same.
_SIZE_UNITS = {"B": 1, "kB": 1024, "KB": 1024, "KiB": 1024, "MB": 1024**2, "MiB": 1024**2,
               "GB": 1024**3, "GiB": 1024**3, "TB": 1024**4, "TiB": 1024**4}


def parse_bytes(value: Any) -> int:
    """``"1MB"`` → 1048576; a bare number is bytes (as Patroni's ``maximum_lag_on_failover``)."""
    if isinstance(value, bool):
        raise ValueError(f'expected a size like "1MB" or a number of bytes, got {value!r}')
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"expected a non-negative size, got {value!r}")
        return int(value)
    if isinstance(value, str) and (match := _SIZE.match(value)) and (match.group(2) or "B") in _SIZE_UNITS:
        return int(float(match.group(1)) * _SIZE_UNITS[match.group(2) or "B"])
    raise ValueError(f'expected a size like "1MB", "512kB" or a number of bytes, got "{value}"')


ByteSize = Annotated[int, BeforeValidator(parse_bytes)]

Action = Literal["none", "pg_promote", "patroni", "command"]


class FailoverConfig(StrictModel):
    """When a failover is recommended, and what the agent may do about it."""

    probes: int = Field(default=3, ge=1, le=30)  # the agent keeps 40 snapshots per collector
    probe_interval: Duration = Field(default=5.0, gt=0)
    maximum_lag_on_failover: ByteSize = 1024 * 1024
    action: Action = "none"
    dry_run: bool = True
    cooldown: Duration = Field(default=600.0, ge=0)
    patroni_url: str | None = None
    command: list[str] = Field(default_factory=list)
    timeout: Duration = Field(default=30.0, gt=0)

    @field_validator("patroni_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parsed = urllib.parse.urlsplit(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError('expected a URL like "http://10.0.0.5:8008"')
        return value.rstrip("/")

    @model_validator(mode="after")
    def _action(self) -> "FailoverConfig":
        if self.action == "patroni" and not self.patroni_url:
            raise ValueError("patroni_url: required when action is patroni")
        if self.action == "command" and not self.command:
            raise ValueError("command: required when action is command (a list: program and arguments)")
        if self.command and self.action != "command":
            raise ValueError(f"command: only used with action: command (action is {self.action})")
        return self


class ClusterConfig(StrictModel):
    failover: FailoverConfig = Field(default_factory=FailoverConfig)
