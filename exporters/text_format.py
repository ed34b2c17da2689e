"""The text formats' writing (Prometheus text 0.0.4 and OpenMetrics 1.0), by hand: prometheus-client costs
about 6 µs per series, too slow for a fleet's collections. Used by the exposition (exporters/prometheus.py,
exporters/target_exposition.py) and wherever families are printed."""

from __future__ import annotations

import functools
from operator import itemgetter
from typing import Iterable, Mapping

from dbwatch.model import LabelValues, MetricFamily, MetricType

__all__ = ["PairsCache", "escape", "first", "header", "header_bytes", "number", "render_families", "render_samples"]

#: repr() of the special floats -> as prometheus-client writes them (other values: repr, integers as "1.0")
_SPECIAL_VALUES = {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}

def render_families(
    families: Iterable[MetricFamily], openmetrics: bool = False, labels: Mapping[str, str] | None = None
) -> str:
    """Families to exposition text (each family whole: header, then samples)."""
    return "".join(header(f, openmetrics) + render_samples(f, labels or {}) for f in families)


def header(family: MetricFamily, openmetrics: bool) -> str:
    name, kind = family.name, family.type
    if openmetrics:
        name, kind = _openmetrics_name_and_type(family)
    elif kind is MetricType.INFO:
        kind = MetricType.GAUGE
    text = family.help.replace("\\", "\\\\").replace("\n", "\\n")
    return f"# HELP {name} {text}\n# TYPE {name} {kind.value if kind is not MetricType.UNTYPED else _untyped(openmetrics)}\n"


def header_bytes(family: MetricFamily, openmetrics: bool) -> bytes:
    """:func:`header` encoded, made once per family name, type and help (a scrape writes a few hundred per
    target, the same ones every time)."""
    return _header_bytes(family.name, family.type, family.help, openmetrics)


@functools.lru_cache(maxsize=16384)
def _header_bytes(name: str, kind: MetricType, help: str, openmetrics: bool) -> bytes:
    return header(MetricFamily(name, kind, help), openmetrics).encode()


def _untyped(openmetrics: bool) -> str:
    return "unknown" if openmetrics else "untyped"


def _openmetrics_name_and_type(family: MetricFamily) -> tuple[str, MetricType]:
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


#: label names -> label values -> their rendered pairs (``a="1",b="2"``), shared by the families of a collection
PairsCache = dict[tuple[str, ...], dict[LabelValues, str]]
#: the key under which a collection's PairsCache also keeps its label prefixes (label names -> prefix)
_PREFIX: tuple[str, ...] = ("\x00prefix",)


def render_samples(family: MetricFamily, labels: Mapping[str, str], pairs_cache: PairsCache | None = None,
                    end: str = "\n") -> str:
    """The sample lines of ``family``, each ended by ``end`` (a timestamp and the newline, or the newline)."""
    samples = family.samples
    if not samples:
        return ""
    name = family.name
    names = family.labelnames
    # A sample's own label wins over a target label of the same name (it says more about the series).
    # Rendered once per label-name set of a collection (most of a collection's families have the same one).
    prefixes = pairs_cache.setdefault(_PREFIX, {}) if pairs_cache is not None else {}
    prefix = prefixes.get(names)
    if prefix is None:
        prefix = prefixes[names] = _label_prefix({k: v for k, v in labels.items() if k not in names})
    # One comprehension per family and the number written inline: this loop renders tens of thousands of
    # per-table samples per collection, where a function call per sample is most of the cost.
    # Each distinct value is written once (repr of a float is most of a line's cost; a family of per-table
    # counters holds few distinct values).
    if not names:
        head = f"{name}{{{prefix}}} " if prefix else f"{name} "
        if len(samples) == 1:  # most of a server-wide collection: one family, one number
            return f"{head}{number(samples[0][1])}{end}"
    special = _SPECIAL_VALUES
    text = {v: special.get(r, r) for v in set(map(_second, samples)) for r in (repr(float(v)),)}
    if not names:
        return "".join([f"{head}{text[v]}{end}" for _, v in samples])
    rendered = (pairs_cache if pairs_cache is not None else {}).setdefault(names, {})
    for values, _ in samples:
        if values not in rendered:
            rendered[values] = ",".join(f'{k}="{escape(v)}"' for k, v in zip(names, values))
    head = f"{name}{{{prefix}," if prefix else f"{name}{{"
    return "".join([f"{head}{rendered[values]}}} {text[v]}{end}" for values, v in samples])


def _label_prefix(labels: Mapping[str, str]) -> str:
    return ",".join(f'{k}="{escape(v)}"' for k, v in labels.items())


def escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


first, _second = itemgetter(0), itemgetter(1)

def number(value: float) -> str:
    """A sample value as _render_samples writes it."""
    text = repr(float(value))
    return _SPECIAL_VALUES.get(text, text)
