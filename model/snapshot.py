"""What one collection of one target by one collector produced, and the typed facts it carries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from dbwatch.model.metrics import MetricFamily

__all__ = ["FactError", "FactMissing", "FactWrongType", "Snapshot"]

F = TypeVar("F")


class FactError(Exception):
    """A fact a rule needs cannot be read. ``reason`` is the label rules' error counter carries."""

    reason = "fact"

    def __init__(self, kind: type, where: str) -> None:
        super().__init__(self._message(kind.__name__, where))
        self.kind = kind

    @staticmethod
    def _message(name: str, where: str) -> str:
        return f"{name} in {where}"


class FactMissing(FactError):
    """No successful snapshot carries the fact (a collector that should produce it did not)."""

    reason = "missing"

    @staticmethod
    def _message(name: str, where: str) -> str:
        return f"no {name} fact in {where}"


class FactWrongType(FactError):
    """The fact stored under a type is not an instance of it (only a hand-built facts dict can do that)."""

    reason = "wrong_type"

    @staticmethod
    def _message(name: str, where: str) -> str:
        return f"the {name} fact in {where} is of another type"


@dataclass(slots=True)
class Snapshot:
    """What one collection of one target by one collector produced. A failed collection is one too.

    Facts are frozen dataclasses declared in :mod:`dbwatch.model.facts`, one per type: collectors
    ``put(fact)``, readers ask ``fact(SomeFact)``. A list of things is one fact type holding a tuple.
    """

    target: str
    engine: str
    collector: str
    started_at: float
    duration: float = 0.0
    ok: bool = True
    families: list[MetricFamily] = field(default_factory=list)
    facts: dict[type, Any] = field(default_factory=dict)
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    version: str | None = None
    #: False for a collection no rule reads over time and too big to keep 40 of (per-table statistics):
    #: the store then keeps only the latest of that collector
    keep_history: bool = True

    _index: tuple[list[MetricFamily], int, dict[str, MetricFamily]] | None = field(
        default=None, repr=False, compare=False)

    def put(self, *facts: object) -> None:
        """Keep each fact under its own type (a second fact of one type replaces the first)."""
        for fact in facts:
            self.facts[type(fact)] = fact

    def fact(self, kind: type[F]) -> F | None:
        """The fact of type ``kind``, or None when this snapshot carries none.

        Raises :class:`FactWrongType` when what is stored under ``kind`` is not one.
        """
        value = self.facts.get(kind)
        if value is None or isinstance(value, kind):
            return value
        raise FactWrongType(kind, f"{self.collector} of {self.target}")

    def need(self, kind: type[F]) -> F:
        """The fact of type ``kind``; :class:`FactMissing` when this snapshot carries none."""
        value = self.fact(kind)
        if value is None:
            raise FactMissing(kind, f"{self.collector} of {self.target}")
        return value

    def has(self, kind: type) -> bool:
        return kind in self.facts

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
