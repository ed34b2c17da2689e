"""Metric families in the shape of the Prometheus exposition: what collectors produce and exporters render."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Iterable


class MetricType(StrEnum):
    GAUGE = "gauge"
    COUNTER = "counter"
    INFO = "info"  # a gauge of value 1 whose labels carry the information
    UNTYPED = "untyped"


LabelValues = tuple[str, ...]

#: label values seen lately, each kept once: a fleet's targets repeat them (databases, schemas and tables of the
#: same application, commands, states) and every collection reads them anew from its driver. Bounded: emptied
#: when full, after which a value is shared again from its next sighting.
_SHARED: dict[str, str] = {}
SHARED_MAX = 200_000


def shared_labels(values: LabelValues) -> LabelValues:
    """``values`` with each string the one already held for an equal value (for label sets seen for the first
    time: agent/jobs.py and the per-table collector keep the tuples of label sets they saw before)."""
    if len(_SHARED) >= SHARED_MAX:
        _SHARED.clear()
    return tuple(map(_SHARED.setdefault, values, values))


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
        values = labelvalues if type(labelvalues) is tuple else tuple(labelvalues)
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {len(values)} values")
        for v in values:  # strings as they come (most do): no generator per sample, which was its cost
            if type(v) is not str:
                values = tuple("" if v is None else str(v) for v in values)
                break
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
