"""postgres_exporter's ``queries.yaml`` read as the exporter reads it, with every problem on a line of its own.

The format (the exporter's ``--extend.query-path``)::

    pg_replication:                      # namespace: the metrics are <namespace>_<column>
      query: "SELECT ... AS lag"
      master: true                       # only on the target's own database, not on every discovered one
      cache_seconds: 30                  # re-run at most this often; between runs the last result is served
      runonserver: ">=10.0.0 <16.0.0"    # server versions it runs on (semver ranges, || for "or")
      metrics:
        - lag:
            usage: "GAUGE"               # LABEL COUNTER GAUGE MAPPEDMETRIC DURATION HISTOGRAM DISCARD
            description: "Replication lag behind master in seconds"

A file the exporter accepts is accepted unchanged. A problem is reported as
``<namespace>.<field>: <what was expected>`` (``pg_x.metrics[2].state.usage: expected one of ...``), all of
them at once, so ``dbwatch validate`` can list them.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import yaml

__all__ = ["USAGES", "Column", "CustomQuery", "QueryFileError", "VersionRange", "load_queries", "parse_queries",
           "read_yaml", "sample_value"]

USAGES = ("LABEL", "COUNTER", "GAUGE", "MAPPEDMETRIC", "DURATION", "HISTOGRAM", "DISCARD")
_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_QUERY_KEYS = {"query", "metrics", "master", "cache_seconds", "runonserver"}
_COLUMN_KEYS = {"usage", "description", "mapping"}
_COMPARATOR = re.compile(r"^(>=|<=|!=|==|=|>|<)?v?(\d+|x|X|\*)(?:\.(\d+|x|X|\*))?(?:\.(\d+|x|X|\*))?$")


class QueryFileError(Exception):
    """A queries file that cannot be used: ``problems`` holds one line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    usage: str
    description: str
    mapping: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class VersionRange:
    """A semver range as the exporter's ``runonserver`` writes it: alternatives (``||``) of comparators
    that must all hold. Empty: every version."""

    alternatives: tuple[tuple[tuple[str, tuple[int, ...]], ...], ...]

    def matches(self, version: tuple[int, int, int]) -> bool:
        if not self.alternatives:
            return True
        return any(all(_compare(version, op, bound) for op, bound in alt) for alt in self.alternatives)


@dataclass(frozen=True, slots=True)
class CustomQuery:
    namespace: str
    query: str
    columns: tuple[Column, ...]
    master: bool = False
    cache_seconds: float = 0.0
    runonserver: VersionRange = VersionRange(())


def load_queries(path: str) -> tuple[CustomQuery, ...]:
    """The queries of the file at ``path``; raises :class:`QueryFileError` listing every problem."""
    queries, problems = _queries(read_yaml(path))
    if problems:
        raise QueryFileError(path, problems)
    return queries


def parse_queries(text: str) -> tuple[tuple[CustomQuery, ...], list[str]]:
    """The queries of a queries.yaml text, and the problems found (one line each)."""
    try:
        raw = yaml_text(text)
    except QueryFileError as exc:
        return (), exc.problems
    return _queries(raw)


def read_yaml(path: str) -> Any:
    """The parsed YAML of the file at ``path`` (any queries file); raises :class:`QueryFileError` with one
    line when the file cannot be read or is not YAML."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise QueryFileError(path, [f"cannot read the file: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise QueryFileError(path, ["not UTF-8 text"]) from None
    try:
        return yaml_text(text)
    except QueryFileError as exc:
        raise QueryFileError(path, exc.problems) from None


def yaml_text(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise QueryFileError("", [f"{where}not valid YAML ({getattr(exc, 'problem', None) or exc})"]) from None


def _queries(raw: Any) -> tuple[tuple[CustomQuery, ...], list[str]]:
    if raw is None:
        return (), []
    if not isinstance(raw, dict):
        return (), ["(top level): expected a mapping of query names to queries"]
    queries: list[CustomQuery] = []
    problems: list[str] = []
    for namespace, body in raw.items():
        query = _query(str(namespace), body, problems)
        if query is not None:
            queries.append(query)
    return tuple(queries), problems


def _query(namespace: str, body: Any, problems: list[str]) -> CustomQuery | None:
    before = len(problems)
    if not _NAME.match(namespace):
        problems.append(f"{namespace}: the name becomes a metric name prefix: letters, digits and _ only")
    if not isinstance(body, dict):
        problems.append(f"{namespace}: expected a mapping with query and metrics")
        return None
    for key in sorted(set(map(str, body)) - _QUERY_KEYS):
        problems.append(f"{namespace}.{key}: unknown key (expected {', '.join(sorted(_QUERY_KEYS))})")
    sql = body.get("query")
    if not isinstance(sql, str) or not sql.strip():
        problems.append(f"{namespace}.query: required: the SQL to run, as a string")
    master = body.get("master", False)
    if not isinstance(master, bool):
        problems.append(f"{namespace}.master: expected true or false, got {master!r}")
    cache = body.get("cache_seconds", 0)
    if isinstance(cache, bool) or not isinstance(cache, (int, float)) or cache < 0:
        problems.append(f"{namespace}.cache_seconds: expected a number of seconds >= 0, got {cache!r}")
        cache = 0
    runonserver = _version_range(namespace, body.get("runonserver", ""), problems)
    columns = _columns(namespace, body.get("metrics"), problems)
    if len(problems) > before:
        return None
    return CustomQuery(namespace=namespace, query=str(sql), columns=columns, master=bool(master),
                       cache_seconds=float(cache), runonserver=runonserver)


def _columns(namespace: str, metrics: Any, problems: list[str]) -> tuple[Column, ...]:
    if not isinstance(metrics, list) or not metrics:
        problems.append(f"{namespace}.metrics: required: a list of columns, each with a usage")
        return ()
    columns, seen = [], set()
    for i, item in enumerate(metrics):
        where = f"{namespace}.metrics[{i}]"
        if not isinstance(item, dict) or len(item) != 1:
            problems.append(f"{where}: expected one column name mapped to its usage and description")
            continue
        [(name, spec)] = item.items()
        name, where = str(name), f"{where}.{name}"
        if not _NAME.match(name):
            problems.append(f"{where}: the column name becomes part of a metric name: letters, digits and _ only")
        if name in seen:
            problems.append(f"{where}: column listed twice")
        seen.add(name)
        if not isinstance(spec, dict):
            problems.append(f"{where}: expected a mapping with usage and description")
            continue
        for key in sorted(set(map(str, spec)) - _COLUMN_KEYS):
            problems.append(f"{where}.{key}: unknown key (expected usage, description or mapping)")
        usage = str(spec.get("usage", "")).upper()
        if usage not in USAGES:
            problems.append(f"{where}.usage: expected one of {', '.join(USAGES)}, got {spec.get('usage')!r}")
        description = spec.get("description", "")
        if not isinstance(description, str):
            problems.append(f"{where}.description: expected a string")
        mapping = spec.get("mapping") or {}
        if usage == "MAPPEDMETRIC" and not mapping:
            problems.append(f"{where}.mapping: required for MAPPEDMETRIC: the column's values mapped to numbers")
        if not isinstance(mapping, dict) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in mapping.values()):
            problems.append(f"{where}.mapping: expected a mapping of values to numbers")
            mapping = {}
        columns.append(Column(name=name, usage=usage, description=str(description or ""),
                              mapping={str(k): float(v) for k, v in mapping.items()}))
    return tuple(columns)


def sample_value(raw: Any) -> float | None:
    """postgres_exporter's conversion of a column to a sample value (NULL is NaN); None when it is not a
    number. dbwatch's own format (:mod:`.custom_queries`) uses it too, skipping NULL first."""
    if raw is None:
        return math.nan
    if isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, (int, float, Decimal)):
        return float(raw)
    if isinstance(raw, datetime.datetime):
        return raw.timestamp()
    if isinstance(raw, datetime.timedelta):
        return raw.total_seconds()
    if isinstance(raw, (str, bytes)):
        try:
            return float(raw)
        except ValueError:
            return None
    return None


def _version_range(namespace: str, text: Any, problems: list[str]) -> VersionRange:
    if not isinstance(text, str):
        problems.append(f"{namespace}.runonserver: expected a version range like \">=10.0.0\", got {text!r}")
        return VersionRange(())
    alternatives = []
    for part in filter(None, (p.strip() for p in text.split("||"))):
        alt = []
        for token in part.split():
            match = _COMPARATOR.match(token)
            if match is None:
                problems.append(f"{namespace}.runonserver: cannot read {token!r} "
                                f"(expected comparisons like \">=10.0.0 <16.0.0\", alternatives joined by ||)")
                return VersionRange(())
            op = {"": "=", "==": "="}.get(match.group(1) or "", match.group(1) or "=")
            bound = tuple(int(n) for n in match.groups()[1:] if n is not None and n.isdigit())
            alt.append((op, bound))
        alternatives.append(tuple(alt))
    return VersionRange(tuple(alternatives))


def _compare(version: tuple[int, int, int], op: str, bound: tuple[int, ...]) -> bool:
    # A partial bound ("10", "10.x") compares only the parts it gives: "=10" is every 10.y.z.
    mine = version[: len(bound)]
    return {"=": mine == bound, "!=": mine != bound, ">": mine > bound, ">=": mine >= bound,
            "<": mine < bound, "<=": mine <= bound}[op]
