"""The shared vocabulary of dbwatch: targets, metric families, snapshots and findings.

Every room of the agent (collectors, rules, exporters, the daemon) speaks these types and nothing else;
this module imports nothing from the rest of the package.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Iterable, Mapping


class MetricType(StrEnum):
    GAUGE = "gauge"
    COUNTER = "counter"
    INFO = "info"  # a gauge of value 1 whose labels carry the information
    UNTYPED = "untyped"


LabelValues = tuple[str, ...]


@dataclass(slots=True)
class MetricFamily:
    """One metric name with its samples, in the shape of the Prometheus exposition.

    Samples are kept as ``(label values, value)`` pairs aligned with ``labelnames`` rather than as one
    object per sample: a PostgreSQL collection produces tens of thousands of them.
    """

    name: str
    type: MetricType
    help: str
    labelnames: tuple[str, ...] = ()
    samples: list[tuple[LabelValues, float]] = field(default_factory=list)

    def add(self, labelvalues: Iterable[Any], value: float | int | None) -> None:
        """Append a sample; ``None`` values (a NULL from the server) are skipped, not exported as 0."""
        if value is None:
            return
        values = tuple("" if v is None else str(v) for v in labelvalues)
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {len(values)} values")
        self.samples.append((values, float(value)))

    def value(self, **labels: str) -> float | None:
        """The value of the first sample whose labels include ``labels`` (for rules and tests)."""
        for labelvalues, value in self.samples:
            if all(labelvalues[self.labelnames.index(k)] == v for k, v in labels.items() if k in self.labelnames):
                return value
        return None


def gauge(name: str, help: str, labelnames: Iterable[str] = ()) -> MetricFamily:
    return MetricFamily(name, MetricType.GAUGE, help, tuple(labelnames))


def counter(name: str, help: str, labelnames: Iterable[str] = ()) -> MetricFamily:
    return MetricFamily(name, MetricType.COUNTER, help, tuple(labelnames))


def info(name: str, help: str, labelnames: Iterable[str] = ()) -> MetricFamily:
    return MetricFamily(name, MetricType.INFO, help, tuple(labelnames))


@dataclass(frozen=True, slots=True)
class Target:
    """One endpoint to watch. ``dsn`` never holds the password: that is resolved at connect time."""

    name: str
    engine: str
    dsn: str
    labels: Mapping[str, str]
    collectors: Mapping[str, "CollectorSettings"]
    password_env: str | None = None
    password_file: str | None = None
    cluster: str | None = None  # the replication cluster it belongs to, when configured (``cluster: NAME``)
    backups: tuple["BackupSpec", ...] = ()  # the configured backup sources (``backups:``)

    def password(self) -> str | None:
        """Read the secret from the environment or a file, each time (credentials rotate).

        Raises :class:`SecretUnavailable` (naming the file, never its content) when the file cannot be read.
        """
        if self.password_env:
            return os.environ.get(self.password_env)
        if self.password_file:
            try:
                with open(self.password_file, encoding="utf-8") as fh:
                    return fh.read().rstrip("\r\n")
            except OSError as exc:
                raise SecretUnavailable(f"cannot read password_file {self.password_file} ({exc.strerror})") from None
        return None


class SecretUnavailable(Exception):
    """A target's password could not be read: a configuration problem, reported like a failed connection."""


@dataclass(frozen=True, slots=True)
class BackupSpec:
    """One configured backup source of a target (``backups:``), read by the backup collector.

    ``command`` is an argv list that replaces the default command of the source's type (never run by a
    shell); ``rpo`` is how old the newest good backup may get before ``BackupTooOld``, in seconds.
    """

    name: str
    type: str  # files | pgbackrest | barman | walg
    rpo: float
    timeout: float
    path: str | None = None
    stanza: str | None = None
    config: str | None = None
    repo: int | None = None
    server: str | None = None
    env_file: str | None = None
    command: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CollectorSettings:
    interval: float
    timeout: float
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Snapshot:
    """What one collection of one target by one collector produced. A failed collection is one too."""

    target: str
    engine: str
    collector: str
    started_at: float
    duration: float = 0.0
    ok: bool = True
    families: list[MetricFamily] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    version: str | None = None

    _index: tuple[list[MetricFamily], int, dict[str, MetricFamily]] | None = field(
        default=None, repr=False, compare=False)

    def family(self, name: str) -> MetricFamily | None:
        """The family called ``name`` (rules look up a few of a snapshot's dozens, many times).

        The index is rebuilt whenever ``families`` is another list or has grown; with a name present twice
        the first one wins, as a linear search would have it.
        """
        cached = self._index
        if cached is not None and cached[0] is self.families and cached[1] == len(self.families):
            index = cached[2]
        else:
            index = {}
            for fam in self.families:
                index.setdefault(fam.name, fam)
            self._index = (self.families, len(self.families), index)
        return index.get(name)


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
