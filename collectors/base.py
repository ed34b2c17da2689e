"""What every collector is: a session per target (one long-lived connection) and collectors on it.

The session template (connect, bound, back off, scrub, :class:`CollectorError`) is in
:mod:`dbwatch.collectors.session`; an engine's session supplies only its driver calls.

The daemon owns the schedule and the timeouts; a collector only knows how to ask its server and turn the
answer into a :class:`~dbwatch.model.Snapshot`. A collector raises on failure; the daemon turns the
exception into a failed snapshot, so a collector never has to build one itself.
"""

from __future__ import annotations

import abc
import asyncio
import contextvars
import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Callable, ClassVar, Generic, TypeVar

from dbwatch.collectors.turns import Turns
from dbwatch.model import MetricFamily, Snapshot, Target, gauge
from dbwatch.model.options import CollectorOptions

logger = logging.getLogger(__name__)

#: Set (by the daemon, agent/jobs.py) in the task of a target's main collector: the one its ``up`` comes from
#: gets the session's next turn before the other collectors waiting for it.
FIRST_IN_TURN: contextvars.ContextVar[bool] = contextvars.ContextVar("dbwatch_first_in_turn", default=False)


class CollectorError(Exception):
    """A collection failed for a reason worth showing to the user as is (no traceback, no secrets).

    ``overloaded``: the server did not answer in time (a connection attempt that timed out, or the reconnect
    backoff that followed one), which the daemon answers by asking it less often, as it does for a collection
    that timed out. ``asked``: the server was asked at all (a reconnect backoff refuses without asking, so it
    lengthens the collector's interval but does not count against the server's gate, agent/pressure.py)."""

    def __init__(self, message: str, overloaded: bool = False, asked: bool = True) -> None:
        super().__init__(message)
        self.overloaded = overloaded
        self.asked = asked


@dataclass(frozen=True, slots=True)
class SlowSample:
    """One slow-log query class's latest sample statement (literals kept), as shared on the session."""

    class_id: str
    fingerprint: str
    sample: str  # the slowest statement of the class in its interval, literals and all (facts only, never labels)
    count: int
    query_time_total: float  # seconds, over the interval the sample comes from
    query_time_max: float
    db: str
    seen_at: float  # when the slowlog collector left it here (time.time())


#: samples a session keeps at most (the most recently seen classes win)
MAX_SLOW_SAMPLES = 200


class Session(abc.ABC):
    """What a target's collectors share: one connection (see :class:`~dbwatch.collectors.session.DriverSession`,
    the template every engine's session fills in) and the data they leave for each other.

    Collectors of one target take turns (``async with session.lock``); only the holder of the lock may use
    the connection, so no collector ever runs on a connection another one dropped.

    ``slow_samples`` (class id -> :class:`SlowSample`) is filled by the slowlog collector and read by the
    PostgreSQL index advisor, which costs the samples' literal statements. It holds at most
    :data:`MAX_SLOW_SAMPLES` entries (see :meth:`keep_slow_samples`).
    """

    def __init__(self, target: Target) -> None:
        self.target = target
        self.lock = SessionLock(self.released)
        self.slow_samples: dict[str, SlowSample] = {}

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the connection; must not raise."""

    @abc.abstractmethod
    async def invalidate(self) -> None:
        """Drop a connection that may be in an unknown state (after a timeout or a network error)."""

    async def promote(self, timeout: float) -> tuple[bool, str]:
        """Make this replica its cluster's primary (a failover action): ``(promoted, what happened)``. Only
        engines whose registry entry names a ``promote_action`` override it."""
        raise CollectorError(f"dbwatch cannot promote a {self.target.engine} target")

    def released(self, error: type[BaseException] | None) -> None:
        """The lock's holder left, by ``error`` if it left by an exception; runs before the next collector
        gets the lock (the template drops a connection abandoned mid-use here)."""

    def keep_slow_samples(self, samples: list[SlowSample]) -> None:
        """Leave the newest samples for the other collectors of this target; the oldest go past the cap."""
        for sample in samples:
            self.slow_samples.pop(sample.class_id, None)
            self.slow_samples[sample.class_id] = sample  # re-inserted: dict order is oldest first
        while len(self.slow_samples) > MAX_SLOW_SAMPLES:
            del self.slow_samples[next(iter(self.slow_samples))]


class SessionLock:
    """A session's turn: one holder at a time, and the lock knows which task holds it.

    Knowing the holder lets the session refuse its connection to anyone else, and lets a holder that leaves
    abnormally (cancelled by the daemon's timeout, or a bug) have its connection dropped *before* the next
    collector gets in: a connection abandoned mid-reply is never handed on.

    Turns are taken in order, except that a task with :data:`FIRST_IN_TURN` set (the target's main collector)
    goes before the others waiting: on a congested server, whether the target is up is known first.
    """

    def __init__(self, on_release: Callable[[type[BaseException] | None], None]) -> None:
        self._busy = False
        self._turns = Turns()
        self._holder: asyncio.Task[Any] | None = None
        self._on_release = on_release

    async def __aenter__(self) -> None:
        if self.held():
            raise RuntimeError("a session's lock is not re-entrant: its holder already has the connection")
        if self._busy or self._turns:
            turn = self._turns.wait(FIRST_IN_TURN.get())
            try:
                await turn
            except BaseException:
                if turn.done() and not turn.cancelled():
                    self._hand_on()  # handed the turn just as we were cancelled: pass it on
                else:
                    self._turns.remove(turn)
                raise
        else:
            self._busy = True
        self._holder = asyncio.current_task()

    async def __aexit__(self, error: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            self._on_release(error)
        finally:
            self._holder = None
            self._hand_on()

    def _hand_on(self) -> None:
        """The turn passes to the next waiter directly (nobody can jump in between), or the lock is free."""
        self._busy = self._turns.grant_next()

    def held(self) -> bool:
        """Whether the running task holds the lock."""
        return self._holder is not None and self._holder is asyncio.current_task()

    def locked(self) -> bool:
        return self._busy


S = TypeVar("S", bound=Session)
O = TypeVar("O", bound=CollectorOptions)


class Collector(abc.ABC, Generic[S, O]):
    """Collects one aspect of one target. Subclasses set ``name`` and ``options_model`` and implement
    :meth:`collect`; ``Collector[PostgresSession, StatementsOptions]`` types ``self.session`` and
    ``self.options``."""

    name: ClassVar[str]
    #: the ``<engine>_up`` metric this collector answers for, if any (exported as 0 when it fails)
    up_metric: ClassVar[str | None] = None
    #: whether one-shot commands (``dbwatch check``, ``dbwatch advise``) run it: False for a collector that
    #: only starts long background work for the daemon (a restore drill), which a one-shot run would cancel
    one_shot: ClassVar[bool] = True
    #: the collector's options and their defaults (``CollectorOptions`` itself: it has none)
    options_model: type[O]

    def __init__(self, target: Target, session: S) -> None:
        self.target = target
        self.session = session
        self.settings = target.collectors[self.name]
        # The config hands over an instance of options_model; validating it again returns it as it is.
        self.options: O = self.options_model.model_validate(self.settings.options or {})

    @abc.abstractmethod
    async def collect(self, snapshot: Snapshot) -> None:
        """Fill ``snapshot`` (families, facts, notes, version) or raise."""

    def failed_families(self) -> list[MetricFamily]:
        """What a failed collection still exports: the up metric at 0, so 'down' is never silent."""
        if self.up_metric is None:
            return []
        fam = gauge(self.up_metric, "Whether the last collection could reach the server (1 = yes).")
        fam.add((), 0)
        return [fam]
