"""dbwatch's own custom-query format, the same on every SQL engine, read with every problem on a line of its own.

A list of queries, inline under the ``queries`` collector's ``queries:`` or in the YAML file its
``queries_file:`` names (a list, or a mapping with a ``queries:`` list)::

    - name: orders_backlog                # letters, digits and _; labels dbwatch_custom_query_* series
      query: >                            # one read-only statement
        SELECT region, count(*) AS waiting FROM orders WHERE state = 'new' GROUP BY region
      interval: 1m                        # optional: re-run at most this often (default: every collection)
      timeout: 5s                         # optional: at most the target's statement timeout
      metrics:
        - name: app_orders_waiting        # the metric's full name
          value: waiting                  # the column holding the number
          type: gauge                     # gauge (default) or counter
          help: Orders not picked up yet
          labels: [region]                # columns whose text labels the series

A problem is reported as ``<query name>.<field>: <what was expected>`` (``orders_backlog.metrics[0].value:
required ...``), all of them at once, so ``dbwatch validate`` can list them. Durations read as everywhere in
the configuration (``30s``, ``1m30s`` or a number of seconds).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dbwatch.collectors.pg_custom_parse import QueryFileError, read_yaml
from dbwatch.model.configtypes import parse_duration

__all__ = ["METRIC_TYPES", "MetricSpec", "QuerySpec", "load_query_file", "parse_query_list"]

METRIC_TYPES = ("gauge", "counter")
_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_METRIC = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_QUERY_KEYS = ("name", "query", "metrics", "interval", "timeout")
_METRIC_KEYS = ("name", "value", "type", "help", "labels")


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    value: str  # the column holding the number
    type: str  # gauge or counter
    help: str
    labels: tuple[str, ...]  # the columns whose text labels the series


@dataclass(frozen=True, slots=True)
class QuerySpec:
    name: str
    query: str
    metrics: tuple[MetricSpec, ...]
    interval: float = 0.0  # 0: every collection
    timeout: float = 0.0  # 0: the target's statement timeout


def load_query_file(path: str) -> tuple[QuerySpec, ...]:
    """The queries of the file at ``path``; raises :class:`QueryFileError` listing every problem."""
    raw = read_yaml(path)
    if isinstance(raw, dict) and set(raw) == {"queries"}:
        raw = raw["queries"]
    queries, problems = parse_query_list(raw)
    if problems:
        raise QueryFileError(path, problems)
    return queries


def parse_query_list(raw: Any) -> tuple[tuple[QuerySpec, ...], list[str]]:
    """The queries of a parsed YAML list, and the problems found (one line each, naming query and field)."""
    if raw is None:
        return (), []
    if not isinstance(raw, list):
        return (), ["(top level): expected a list of queries, each with name, query and metrics"]
    queries: list[QuerySpec] = []
    problems: list[str] = []
    seen: set[str] = set()
    metric_names: dict[str, str] = {}
    for index, body in enumerate(raw):
        query = _query(index, body, problems)
        if query is None:
            continue
        if query.name in seen:
            problems.append(f"{query.name}.name: another query has this name")
        seen.add(query.name)
        for i, metric in enumerate(query.metrics):
            other = metric_names.setdefault(metric.name, query.name)
            if other != query.name:
                problems.append(f"{query.name}.metrics[{i}].name: {metric.name} is already a metric of query {other}")
        queries.append(query)
    return tuple(queries), problems


def _query(index: int, body: Any, problems: list[str]) -> QuerySpec | None:
    if not isinstance(body, dict):
        problems.append(f"queries[{index}]: expected a mapping with name, query and metrics")
        return None
    before = len(problems)
    name = body.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(f"queries[{index}].name: required: letters, digits and _ (it labels the query's "
                        f"dbwatch_custom_query_* series), got {name!r}")
        name = f"queries[{index}]"
    for key in sorted(set(map(str, body)) - set(_QUERY_KEYS)):
        problems.append(f"{name}.{key}: unknown key (expected {', '.join(_QUERY_KEYS)})")
    sql = body.get("query")
    if not isinstance(sql, str) or not sql.strip():
        problems.append(f"{name}.query: required: the SQL to run, as a string")
    interval = _seconds(name, "interval", body.get("interval", 0), problems)
    timeout = _seconds(name, "timeout", body.get("timeout", 0), problems)
    metrics = _metrics(name, body.get("metrics"), problems)
    if len(problems) > before:
        return None
    return QuerySpec(name=name, query=str(sql).strip(), metrics=metrics, interval=interval, timeout=timeout)


def _seconds(name: str, key: str, value: Any, problems: list[str]) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        problems.append(f"{name}.{key}: {exc}")
        return 0.0


def _metrics(name: str, raw: Any, problems: list[str]) -> tuple[MetricSpec, ...]:
    if not isinstance(raw, list) or not raw:
        problems.append(f"{name}.metrics: required: a list of metrics, each with name and value")
        return ()
    out: list[MetricSpec] = []
    for i, item in enumerate(raw):
        where = f"{name}.metrics[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: expected a mapping with name, value, type, help and labels")
            continue
        for key in sorted(set(map(str, item)) - set(_METRIC_KEYS)):
            problems.append(f"{where}.{key}: unknown key (expected {', '.join(_METRIC_KEYS)})")
        metric = item.get("name")
        if not isinstance(metric, str) or not _METRIC.match(metric):
            problems.append(f"{where}.name: required: a Prometheus metric name (letters, digits, _ and :), "
                            f"got {metric!r}")
        value = item.get("value")
        if not isinstance(value, str) or not value:
            problems.append(f"{where}.value: required: the column holding the number, got {value!r}")
        kind = item.get("type", "gauge")
        if kind not in METRIC_TYPES:
            problems.append(f"{where}.type: expected one of {', '.join(METRIC_TYPES)}, got {kind!r}")
        help = item.get("help", "")
        if not isinstance(help, str):
            problems.append(f"{where}.help: expected a string, got {help!r}")
        labels = item.get("labels", [])
        if not isinstance(labels, list) or not all(isinstance(c, str) and _NAME.match(c) for c in labels):
            problems.append(f"{where}.labels: expected a list of column names (letters, digits and _), "
                            f"got {labels!r}")
            labels = []
        elif value in labels:
            problems.append(f"{where}.labels: {value} is the value column; it cannot be a label too")
        elif len(set(labels)) != len(labels):
            problems.append(f"{where}.labels: a column is listed twice")
        out.append(MetricSpec(name=str(metric), value=str(value), type=str(kind),
                              help=help if isinstance(help, str) and help else f"Custom query {name}: {value}",
                              labels=tuple(labels)))
    return tuple(out)
