"""The Prometheus exposition of the latest snapshots, rendered once per collection and served from memory.

Each new snapshot re-renders only its own (target, collector) fragment: per family, the sample lines with
``target`` and the target's configured labels in front. A scrape joins the fragments so that every family
has one ``# HELP``/``# TYPE`` header followed by all its samples (Prometheus wants them contiguous), and the
joined body is cached until the store changes. The text is written by hand: prometheus-client costs about
6 µs per series, too slow to render 100k series in a scrape; its ProcessCollector still provides the
process_* metrics, which are few.
"""

from __future__ import annotations

import platform
import time
from typing import Callable, Iterable, Iterator, Mapping, Protocol

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_latest_openmetrics

from dbwatch.model import MetricFamily, MetricType, Snapshot

__all__ = ["Exposition", "TEXT_CONTENT_TYPE", "OPENMETRICS_CONTENT_TYPE", "wants_openmetrics", "render_families"]

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

Provider = Callable[[], Iterable[MetricFamily]]


class JobFigures(Protocol):
    target: str
    collector: str
    runs: int
    errors: int
    last_duration: float | None
    last_success: float | None


class SnapshotSource(Protocol):
    """What the exposition reads of the agent's store (structural: exporters never import the daemon)."""

    generation: int

    def subscribe(self, listener: Callable[[Snapshot], None]) -> None: ...
    def latest(self, target: str, collector: str) -> Snapshot | None: ...
    def latest_all(self) -> Iterator[Snapshot]: ...
    def stats(self) -> list[JobFigures]: ...


def wants_openmetrics(accept: str | None) -> bool:
    return bool(accept) and "application/openmetrics-text" in accept  # type: ignore[operator]


class Exposition:
    def __init__(self, store: SnapshotSource, version: str) -> None:
        self.store = store
        self.version = version
        self._labels: dict[str, dict[str, str]] = {}  # target -> labels put on each of its samples
        self._fragments: dict[tuple[str, str], dict[str, tuple[MetricFamily, str]]] = {}
        self._providers: list[Provider] = [self._self_metrics]
        self._cache: dict[bool, tuple[int, bytes]] = {}
        self._generation = 0
        self._process = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self._process)
        store.subscribe(self._on_snapshot)

    def set_target_labels(self, labels: Mapping[str, Mapping[str, str]]) -> None:
        """The targets' configured labels; targets no longer present lose their fragments."""
        self._labels = {name: {"target": name, **own} for name, own in labels.items()}
        for key in [k for k in self._fragments if k[0] not in labels]:
            del self._fragments[key]
        for snapshot in self.store.latest_all():
            if snapshot.target in labels:
                self._on_snapshot(snapshot)
        self._generation += 1

    def add_provider(self, provider: Provider) -> None:
        """A source of a few families computed at scrape time (alerts, notification queues)."""
        self._providers.append(provider)

    def render(self, openmetrics: bool = False) -> bytes:
        """The whole body of a scrape. The snapshot part is cached; providers are cheap and always fresh."""
        key = self.store.generation + self._generation
        cached = self._cache.get(openmetrics)
        if cached is None or cached[0] != key:
            cached = (key, self._join(openmetrics).encode())
            self._cache[openmetrics] = cached
        live = render_families(
            [fam for provider in self._providers for fam in provider()], openmetrics
        )
        process = (generate_latest_openmetrics if openmetrics else generate_latest)(self._process)
        if openmetrics:
            process = process.removesuffix(b"# EOF\n")
        return cached[1] + live.encode() + process + (b"# EOF\n" if openmetrics else b"")

    # -- snapshots to fragments ---------------------------------------------------------------------

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        prefix = self._labels.get(snapshot.target) or {"target": snapshot.target}
        fragments: dict[str, tuple[MetricFamily, str]] = {}
        for family in snapshot.families:
            fragments[family.name] = (family, _render_samples(family, prefix))
        self._fragments[(snapshot.target, snapshot.collector)] = fragments
        self._generation += 1

    def _join(self, openmetrics: bool) -> str:
        by_name: dict[str, list[tuple[MetricFamily, str]]] = {}
        for fragments in self._fragments.values():
            for name, entry in fragments.items():
                by_name.setdefault(name, []).append(entry)
        parts = []
        for name in sorted(by_name):
            entries = by_name[name]
            parts.append(_header(entries[0][0], openmetrics))
            parts.extend(body for _, body in entries)
        return "".join(parts)

    def _self_metrics(self) -> list[MetricFamily]:
        now = time.time()
        build = MetricFamily("dbwatch_build_info", MetricType.GAUGE, "dbwatch's version and Python's.",
                             ("version", "python"))
        build.add((self.version, platform.python_version()), 1)
        job = ("target", "collector")
        duration = MetricFamily("dbwatch_collector_duration_seconds", MetricType.GAUGE,
                                "How long the last collection took.", job)
        runs = MetricFamily("dbwatch_collector_runs_total", MetricType.COUNTER, "Collections run.", job)
        errors = MetricFamily("dbwatch_collector_errors_total", MetricType.COUNTER, "Collections that failed.", job)
        success = MetricFamily("dbwatch_collector_last_success_timestamp_seconds", MetricType.GAUGE,
                               "When the last successful collection ended (Unix time).", job)
        age = MetricFamily("dbwatch_collect_age_seconds", MetricType.GAUGE,
                           "Seconds since the last collection ended, successful or not.", job)
        for stats in self.store.stats():
            labels = (stats.target, stats.collector)
            duration.add(labels, stats.last_duration)
            runs.add(labels, stats.runs)
            errors.add(labels, stats.errors)
            success.add(labels, stats.last_success)
            latest = self.store.latest(stats.target, stats.collector)
            if latest is not None:
                age.add(labels, max(0.0, now - latest.started_at - latest.duration))
        return [build, duration, runs, errors, success, age]


def render_families(
    families: Iterable[MetricFamily], openmetrics: bool = False, labels: Mapping[str, str] | None = None
) -> str:
    """Families to exposition text (each family whole: header, then samples)."""
    return "".join(_header(f, openmetrics) + _render_samples(f, labels or {}) for f in families)


def _header(family: MetricFamily, openmetrics: bool) -> str:
    name, kind = family.name, family.type
    if openmetrics:
        name, kind = _openmetrics_name_and_type(family)
    elif kind is MetricType.INFO:
        kind = MetricType.GAUGE
    text = family.help.replace("\\", "\\\\").replace("\n", "\\n")
    return f"# HELP {name} {text}\n# TYPE {name} {kind.value if kind is not MetricType.UNTYPED else _untyped(openmetrics)}\n"


def _untyped(openmetrics: bool) -> str:
    return "unknown" if openmetrics else "untyped"


def _openmetrics_name_and_type(family: MetricFamily) -> tuple[str, MetricType | str]:
    # OpenMetrics wants counter samples to end in _total and info samples in _info. Names kept for
    # compatibility with the exporters (counters without _total) are declared `unknown` so that the
    # sample names stay exactly what dashboards query.
    if family.type is MetricType.COUNTER:
        if family.name.endswith("_total"):
            return family.name[: -len("_total")], MetricType.COUNTER
        return family.name, MetricType.UNTYPED
    if family.type is MetricType.INFO:
        if family.name.endswith("_info"):
            return family.name[: -len("_info")], MetricType.INFO
        return family.name, MetricType.GAUGE
    return family.name, family.type


def _render_samples(family: MetricFamily, labels: Mapping[str, str]) -> str:
    name = family.name
    names = family.labelnames
    # A sample's own label wins over a target label of the same name (it says more about the series).
    prefix = _label_prefix({k: v for k, v in labels.items() if k not in names})
    lines = []
    if not names:
        head = f"{name}{{{prefix}}} " if prefix else f"{name} "
        for _, value in family.samples:
            lines.append(head + _format_value(value))
    else:
        sep = "," if prefix else ""
        for values, value in family.samples:
            pairs = ",".join(f'{k}="{_escape(v)}"' for k, v in zip(names, values))
            lines.append(f"{name}{{{prefix}{sep}{pairs}}} {_format_value(value)}")
    return "\n".join(lines) + "\n" if lines else ""


def _label_prefix(labels: Mapping[str, str]) -> str:
    return ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())


def _escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def _format_value(value: float) -> str:
    # As prometheus-client writes them: integers as "1.0", special values as +Inf/-Inf/NaN.
    if value != value:
        return "NaN"
    if value == float("inf"):
        return "+Inf"
    if value == float("-inf"):
        return "-Inf"
    return repr(float(value))
