"""What one collection of one target by one collector produced."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dbwatch.model.metrics import MetricFamily


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
