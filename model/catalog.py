"""The metric catalog's vocabulary: what a family a collector (or the agent) can emit is called, its type,
help and labels, declared once so that docs/metrics.md is generated from it and the tests check every family
a collection really emits against it.

A spec's name is a metric name, or a template for a set of names that share everything but one part:
``pg_stat_database_<column>`` with the complete list of ``values`` (``closed``), or
``mysql_global_status_<variable>`` for any value (``open=True``, ``values`` are examples), or
``process_*``. An optional ``[_bytes|_seconds]`` in a template is a suffix some names have.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from dbwatch.model.metrics import MetricType

G, C, I, U = MetricType.GAUGE, MetricType.COUNTER, MetricType.INFO, MetricType.UNTYPED


@dataclass(frozen=True)
class MetricSpec:
    """One family (or a template of families) in the catalog."""

    name: str
    type: MetricType | None  # None: several types (``process_*``, prometheus-client's own)
    help: str
    labels: tuple[str, ...] = ()
    collector: str = ""  # the collector emitting it ("agent" for the process itself)
    values: tuple[str, ...] = ()  # what a template's placeholder takes: all of them, or examples when open
    open: bool = False

    @property
    def is_template(self) -> bool:
        return "<" in self.name or self.name.endswith("*")

    @cached_property
    def names(self) -> frozenset[str]:
        """Every name a closed spec stands for (empty for an open template)."""
        if not self.is_template:
            return frozenset({self.name})
        if self.open or self.name.endswith("*"):
            return frozenset()
        base = re.sub(r"\[[^\]]*\]", "", self.name)
        return frozenset(re.sub(r"<\w+>", value, base) for value in self.values)

    @cached_property
    def prefix(self) -> str | None:
        """The fixed start of an open template's names (``mysql_global_status_``), else None."""
        if self.is_template and (self.open or self.name.endswith("*")):
            return re.split(r"[<*]", self.name, maxsplit=1)[0]
        return None

    def matches(self, name: str) -> bool:
        if self.prefix is not None:
            return name.startswith(self.prefix)
        return name in self.names


def find(specs: tuple[MetricSpec, ...] | list[MetricSpec], name: str) -> MetricSpec | None:
    """The spec that declares ``name``: an exact or closed one first, an open template otherwise."""
    exact = [s for s in specs if s.prefix is None and s.matches(name)]
    if exact:
        return exact[0]
    # The longest prefix wins: mysql_global_status_commands_total is its own spec, not the template's.
    open_ = sorted((s for s in specs if s.prefix is not None and s.matches(name)),
                   key=lambda s: len(s.prefix or ""), reverse=True)
    return open_[0] if open_ else None
