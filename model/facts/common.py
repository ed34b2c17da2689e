"""Engine-neutral facts: what every engine's main collector says in the same words, so rules need no
per-engine code to read it.

- :class:`ReplicationLink`: the server's role and its link to its upstream (PostgreSQL's WAL receiver, a
  MySQL/MariaDB replication channel, Redis' master link), put by the main collectors of engines that
  replicate that way.
- :class:`Summary`: the few key numbers ``dbwatch check`` prints for a collection.
- :class:`FactList`: the base of every fact that is a list of things (one type holding a tuple).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Iterator, Mapping, TypeVar

__all__ = ["FactList", "PRIMARY", "REPLICA", "UNKNOWN", "ReplicationLink", "Summary"]

PRIMARY, REPLICA, UNKNOWN = "primary", "replica", "unknown"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FactList(Generic[T]):
    """A list of things as one fact: subclass it per item type (``class Replicas(FactList[Replica])``) so
    that each list has its own type to be stored and looked up by. Iterates, indexes and sizes like its tuple."""

    items: tuple[T, ...] = ()

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> T:
        return self.items[index]


@dataclass(frozen=True, slots=True)
class ReplicationLink:
    """A server's role and its replication link, as the server itself reports them (never the config)."""

    role: str  # PRIMARY | REPLICA | UNKNOWN
    link_up: bool | None = None  # a replica: receiving from its upstream
    link_state: str = ""  # the server's word: streaming, stopped, Connecting, down...
    link_error: str = ""  # the server's error text, where it keeps one
    error_hint: str = ""  # where to look when the server keeps no error text (shown when link_error is empty)
    lag_seconds: float | None = None
    lag_bytes: float | None = None
    upstream: tuple[str, int] | None = None  # (host, port) of the upstream as the replica names it
    replay_paused: bool = False
    writable: bool = False


@dataclass(frozen=True, slots=True)
class Summary:
    """A collection's key numbers for ``dbwatch check`` (name -> number or short text)."""

    numbers: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.numbers[name]
