"""What rules conclude about a target, and the alerts those conclusions live as."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Mapping


class FindingKind(StrEnum):
    ALERT = "alert"
    RECOMMENDATION = "recommendation"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Finding:
    """What a rule concluded about a target."""

    rule: str
    target: str
    kind: FindingKind
    severity: Severity
    summary: str
    description: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    evidence: Mapping[str, Any] = field(default_factory=dict)
    value: float | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.rule, self.target, self.labels)


def fingerprint(rule: str, target: str, labels: Mapping[str, str]) -> str:
    """A stable identity for deduplication: the same rule, target and labels always hash alike."""
    text = "\x1f".join([rule, target, *(f"{k}={labels[k]}" for k in sorted(labels))])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def now() -> float:
    return time.time()


class AlertState(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(slots=True)
class Alert:
    """A finding's life: pending until its ``for`` has passed, then firing, then resolved once.

    ``labels`` always hold ``alertname``, ``severity`` and ``target`` plus the rule's own labels;
    ``annotations`` hold the rendered ``summary`` and ``description``.
    """

    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    state: AlertState
    value: float | None
    active_since: float  # when the condition first held (pending began)
    fired_at: float | None = None
    resolved_at: float | None = None
    last_seen: float | None = None  # last evaluation in which the condition held

    @property
    def name(self) -> str:
        return self.labels["alertname"]

    @property
    def target(self) -> str:
        return self.labels["target"]

    @property
    def severity(self) -> str:
        return self.labels["severity"]
