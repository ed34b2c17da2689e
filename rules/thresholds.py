"""Evaluating one threshold rule over one target's recent snapshots.

The semantics follow PromQL where a name is shared, with two deliberate differences stated here:
``rate``/``increase`` use the first and last samples inside the window without extrapolation (the history
holds every collection, so nothing is missing at the edges), and a counter reset (a value lower than the
previous one) counts the new value as the increase since the reset, as Prometheus does.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Protocol, Sequence

from dbwatch.model import MetricFamily
from dbwatch.rules.spec import TEMPLATE, Selector, ThresholdRule

__all__ = ["MetricHistory", "RuleEvaluationError", "Series", "evaluate_rule", "info_labels", "render_template"]

LabelKey = tuple[tuple[str, str], ...]

OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
}


class RuleEvaluationError(Exception):
    """The rule cannot be evaluated on this target's data (e.g. a ratio whose join is ambiguous)."""


class MetricHistory(Protocol):
    def latest(self, metric: str) -> MetricFamily | None:
        """The metric in the newest snapshot of the collector that exports it (None when absent there)."""

    def window(self, metric: str, seconds: float, now: float) -> Sequence[tuple[float, MetricFamily]]:
        """The metric in every snapshot that started within the last ``seconds``, oldest first."""


@dataclass(frozen=True, slots=True)
class Series:
    labels: Mapping[str, str]
    value: float


def evaluate_rule(rule: ThresholdRule, history: MetricHistory, now: float) -> list[Series]:
    """The series for which the rule's condition holds now, with their values."""
    values = _select(rule, history, now)
    if rule.divide_by is not None:
        values = _divide(values, _select(rule.divide_by, history, now))
    compare = OPS[rule.op]
    return [Series(dict(key), value) for key, value in sorted(values.items())
            if not math.isnan(value) and compare(value, rule.threshold)]


def info_labels(rule: ThresholdRule, labels: Mapping[str, str], history: MetricHistory) -> dict[str, str]:
    """The labels of ``rule.info`` that describe the alert of the series with ``labels`` (empty: none matches)."""
    if rule.info is None or (family := history.latest(rule.info.metric)) is None:
        return {}
    for key, _ in _samples(family):
        found = dict(key)
        if all(found.get(name, "") == labels.get(name, "") for name in rule.info.join):
            return {name: found.get(name, "") for name in rule.info.labels}
    return {}


def _select(selector: Selector, history: MetricHistory, now: float) -> dict[LabelKey, float]:
    # Series are told apart by (label names, label values) as the families hold them: a window's families
    # share their label-value tuples (agent/jobs.py), so no per-sample key is built; the few selected series
    # get their LabelKey at the end.
    if selector.function == "value":
        family = history.latest(selector.metric)
        values: dict[LabelKey, float] = {}
        if family is not None:
            names, keep = family.labelnames, _matcher(selector, family.labelnames)
            for labelvalues, value in family.samples:
                if keep is None or keep(labelvalues):
                    values[tuple(zip(names, labelvalues))] = value
    else:
        points: dict[tuple[tuple[str, ...], tuple[str, ...]], list[tuple[float, float]]] = {}
        for at, family in history.window(selector.metric, selector.effective_window, now):
            names, keep = family.labelnames, _matcher(selector, family.labelnames)
            for labelvalues, value in family.samples:
                if keep is None or keep(labelvalues):
                    points.setdefault((names, labelvalues), []).append((at, value))
        values = {}
        for (names, labelvalues), series in points.items():
            result = (_predict(series, now + (selector.horizon or 0.0)) if selector.function == "predict_linear"
                      else _over_time(selector.function, series))
            if result is not None:
                values[tuple(zip(names, labelvalues))] = result
    if selector.aggregate is not None:
        values = _aggregate(values, selector.aggregate, selector.by)
    return values


_Keep = Callable[[tuple[str, ...]], bool]
_MATCHERS: dict[tuple[int, tuple[str, ...]], tuple[Selector, _Keep | None]] = {}


def _matcher(selector: Selector, names: tuple[str, ...]) -> _Keep | None:
    """Whether a sample's label values (in the order of ``names``) match the selector; None: all do. Made once
    per selector and label names (a label a family does not have is the empty string, as in PromQL)."""
    key = (id(selector), names)
    cached = _MATCHERS.get(key)
    if cached is not None and cached[0] is selector:
        return cached[1]
    if len(_MATCHERS) > 10_000:  # reloaded rules leave theirs behind
        _MATCHERS.clear()
    equal = [(names.index(n) if n in names else None, v) for n, v in selector.match.items()]
    regexes = [(names.index(n) if n in names else None, re.compile(p)) for n, p in selector.match_re.items()]
    keep: _Keep | None = None
    if equal or regexes:
        def keep(values: tuple[str, ...]) -> bool:
            if any((values[i] if i is not None else "") != v for i, v in equal):
                return False
            return all(rx.fullmatch(values[i] if i is not None else "") for i, rx in regexes)
    _MATCHERS[key] = (selector, keep)
    return keep


def _samples(family: MetricFamily) -> Iterable[tuple[LabelKey, float]]:
    names = family.labelnames
    for labelvalues, value in family.samples:
        yield tuple(zip(names, labelvalues)), value


def _predict(points: list[tuple[float, float]], at: float) -> float | None:
    """The least-squares line through the window's samples, read at ``at`` (PromQL's predict_linear)."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread <= 0:
        return None
    slope = sum((t - mean_t) * (v - mean_v) for t, v in points) / spread
    return mean_v + slope * (at - mean_t)


def _over_time(function: str, points: list[tuple[float, float]]) -> float | None:
    values = [v for _, v in points]
    if function == "max":
        return max(values)
    if function == "min":
        return min(values)
    if function == "avg":
        return sum(values) / len(values)
    if len(points) < 2:
        return None  # a change needs two samples
    if function == "delta":
        return values[-1] - values[0]
    increase = 0.0
    for previous, current in zip(values, values[1:]):
        increase += current - previous if current >= previous else current  # a reset restarts from 0
    if function == "increase":
        return increase
    elapsed = points[-1][0] - points[0][0]
    return increase / elapsed if elapsed > 0 else None  # rate


def _aggregate(values: dict[LabelKey, float], how: str, by: Sequence[str]) -> dict[LabelKey, float]:
    groups: dict[LabelKey, list[float]] = {}
    for key, value in values.items():
        labels = dict(key)
        group = tuple((name, labels.get(name, "")) for name in sorted(by))
        groups.setdefault(group, []).append(value)
    reduce: dict[str, Callable[[list[float]], float]] = {
        "sum": sum, "max": max, "min": min, "avg": lambda v: sum(v) / len(v), "count": len,
    }
    return {group: float(reduce[how](vals)) for group, vals in groups.items()}


def _divide(numerator: dict[LabelKey, float], denominator: dict[LabelKey, float]) -> dict[LabelKey, float]:
    """Join each numerator series with the denominator series that agrees on the denominator's labels."""
    if not numerator or not denominator:
        return {}
    names = {name for key in denominator for name, _ in key}
    index: dict[LabelKey, float] = {}
    for key, value in denominator.items():
        if key in index:
            raise RuleEvaluationError(f"divide_by: several series share the labels {dict(key)}")
        index[key] = value
    out: dict[LabelKey, float] = {}
    for key, value in numerator.items():
        labels = dict(key)
        if not names <= labels.keys():
            raise RuleEvaluationError(
                f"divide_by: its labels {sorted(names)} are not all on the divided series ({sorted(labels)}); "
                "aggregate one side with by"
            )
        join = tuple((name, labels[name]) for name in sorted(names))
        divisor = index.get(join)
        if divisor:  # missing or zero: no ratio, as in PromQL (x/0 is not an alert)
            out[key] = value / divisor
    return out


# -- templates ----------------------------------------------------------------------------------------


def render_template(template: str, labels: Mapping[str, str], value: float | None) -> str:
    def replace(match: re.Match[str]) -> str:
        label, function = match.group(2), match.group(3)
        if label is not None:
            return labels.get(label, "")
        if value is None:
            return ""
        return _humanize(value, function)

    return TEMPLATE.sub(replace, template)


def _humanize(value: float, function: str | None) -> str:
    if function == "humanizePercentage":
        return f"{value * 100:.4g}%"
    if function == "humanizeDuration":
        return _duration(value)
    if function == "humanize":
        for size, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(value) >= size:
                return f"{value / size:.4g}{suffix}"
        return f"{value:.4g}"
    return f"{value:g}"


def _duration(seconds: float) -> str:
    """Prometheus' humanizeDuration: ``1h 2m 3s`` above a minute, ``1.5s`` or ``250ms`` below."""
    if seconds == 0:
        return "0s"
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    if seconds < 1:
        return f"{sign}{seconds * 1000:.4g}ms"
    if seconds < 60:
        return f"{sign}{seconds:.4g}s"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{u}" for n, u in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return sign + " ".join(parts)
