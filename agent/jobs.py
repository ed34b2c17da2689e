"""One target's session and collectors, and the one way a collection is run: bounded, never raising.

Both ``dbwatch run`` (on a schedule) and ``dbwatch check`` (once) collect through :meth:`TargetJobs.collect`,
so a timeout, an unreachable server or a bug in a collector always ends the same way: a failed snapshot
with the error kept, and the daemon carries on.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any, Mapping, Sequence

from dbwatch.agent.logs import redact
from dbwatch.agent.pressure import ServerGate
from dbwatch.model import MetricFamily, SecretUnavailable, Snapshot, Target, gauge
from dbwatch.model.metrics import LabelValues, shared_labels
from dbwatch.collectors.base import FIRST_IN_TURN, Collector, CollectorError, Session
from dbwatch.collectors.engines import engine

logger = logging.getLogger(__name__)

BACKOFF_CAP = 4  # a collector whose collections keep timing out runs at most this many times less often
# ... and, unless configured slower, at least this often: its samples (timestamped) stay well within
# Prometheus' 5-minute lookback, so that a down target's `up` 0 does not vanish from queries.
BACKOFF_CEILING = 120.0


#: how long a snapshot in the store's history keeps its metric families, unless the daemon says otherwise; after
#: it, only the families whose own horizon is longer (a rule reads them over a longer window) stay
FAMILY_HORIZON = 600.0
AGING_MAX = 64  # snapshots tracked per collector at most (the store keeps 40: older ones are gone from it anyway)


class TargetJobs:
    def __init__(self, target: Target, family_horizon: float = FAMILY_HORIZON, gate: ServerGate | None = None,
                 history_metrics: Mapping[str, float] | None = None, history_facts: frozenset[type] | None = None
                 ) -> None:
        spec = engine(target.engine)
        self.target = target
        #: the server's gate (agent/pressure.py): collections of all its targets in flight at once, adaptive
        self.gate = gate
        self._place: asyncio.Future[None] | None = None  # the target's place at the gate, taken or being taken
        self._place_users = 0  # collections of the target using it
        self.session: Session = spec.session(target)
        self.collectors: dict[str, Collector[Any, Any]] = {
            name: spec.collectors[name](target, self.session) for name in target.collectors
        }
        self._last_error: dict[str, str | None] = {}
        self._notes: dict[str, set[str]] = {}
        # An overloaded server is not asked harder: consecutive timed-out collections per collector double
        # its effective interval (up to BACKOFF_CAP times the configured one); a success resets it.
        self._timeouts: dict[str, int] = {}
        self._next_due: dict[str, float] = {}  # time.monotonic() before which a scheduled run is skipped
        # The last successful snapshot per collector, whose unchanged families and samples the next one shares.
        self._previous: dict[str, Snapshot] = {}
        # Snapshots (per collector, oldest first) whose families are kept until they are older than the horizon.
        self.family_horizon = family_horizon
        #: the families rules read over time, each with how long it is read (seconds; None: all, for the horizon),
        #: and the fact types rules read over time (None: all): a snapshot older than a newer successful one (or
        #: than the newest two) keeps only these; the newest successful one is where the rest is read
        self.history_metrics = history_metrics
        self.history_facts = history_facts
        self._aging: dict[str, list[Snapshot]] = {}  # lists: they hold few (agent/store.py says why)
        #: snapshots past the horizon that still hold a family some rule reads over a longer window
        self._lasting: dict[str, list[Snapshot]] = {}

    def effective_interval(self, name: str) -> float:
        """The interval collector ``name`` runs at now: the configured one, longer while its server times out."""
        interval = self.target.collectors[name].interval
        factor: int = min(BACKOFF_CAP, 2 ** self._timeouts.get(name, 0))
        return max(interval, min(interval * factor, BACKOFF_CEILING))

    def due(self, name: str) -> bool:
        """Whether a scheduled run of ``name`` should collect, or skip because the collector is backing off, or
        because it is not the main collector and its server's main collections queue for places (it is deferred,
        agent/pressure.py, and backs off as if it had timed out, without asking the server anything)."""
        now = time.monotonic()
        if now < self._next_due.get(name, 0.0):
            return False
        gate = self.gate
        if gate is not None and name != self.up_collector and gate.defers():
            self._back_off(name, now, True)
            return False
        return True

    @property
    def up_collector(self) -> str:
        """The collector whose success means the target is up: the engine's main collector (``<engine>_up``),
        or the first one when the configuration turned that off."""
        main = engine(self.target.engine).main_collector
        return main if main in self.collectors else next(iter(self.collectors))

    def one_shot(self) -> list[str]:
        """The collectors a one-shot command runs, in order (not those that only start daemon background work)."""
        return [name for name, collector in self.collectors.items() if collector.one_shot]

    async def collect(self, name: str) -> Snapshot:
        collector = self.collectors[name]
        timeout = self.target.collectors[name].timeout
        snapshot = Snapshot(
            target=self.target.name, engine=self.target.engine, collector=name, started_at=time.time()
        )
        began = time.monotonic()
        overloaded = False
        asked = True  # whether the server was asked (a reconnect backoff refuses without asking)
        holding = [False]  # whether the collection held a place at its server's gate when it ended
        try:
            # asyncio.timeout, not wait_for: no second task per collection (a fleet runs ~250 a second)
            async with asyncio.timeout(timeout):
                await self._gated(collector, snapshot, holding, name == self.up_collector)
        except TimeoutError:
            # A connection the collector was using when it was cancelled is dropped by the session before the
            # next collector gets the lock; one it was not using (it waited for its turn) stays.
            snapshot.ok, snapshot.error = False, f"timed out after {timeout:g}s"
            overloaded = True
        except (CollectorError, SecretUnavailable) as exc:
            snapshot.ok, snapshot.error = False, redact(str(exc))
            # A handshake that timed out, or PostgreSQL cancelling the query at 80 % of the timeout.
            overloaded = getattr(exc, "overloaded", False) or "statement timeout" in snapshot.error
            asked = getattr(exc, "asked", True)
        except Exception as exc:  # a bug in a collector must not stop the daemon
            snapshot.ok, snapshot.error = False, redact(f"internal error: {type(exc).__name__}: {exc}")
            logger.exception("collector %s failed unexpectedly", name, extra={"target": self.target.name})
        snapshot.duration = time.monotonic() - began
        if self.gate is not None:
            if snapshot.ok:
                self.gate.succeeded()
            elif overloaded and asked and holding[0]:  # the server was asked and did not answer in time: ask it less
                self.gate.timed_out(began)
        if not snapshot.ok:
            snapshot.families = collector.failed_families()
        if name == self.up_collector:
            snapshot.families.append(_target_up(snapshot.ok))
        self._pace(name, began, snapshot.ok, overloaded)
        snapshot.families.append(_effective_interval(name, self.effective_interval(name)))
        self._share(name, snapshot)
        self._log_transition(name, snapshot)
        return snapshot

    def _share(self, name: str, snapshot: Snapshot) -> None:
        """Keep the history the store holds small: families shared with the previous collection; older
        collections keep only what rules read over time, and nothing once older than any rule's window (a
        fleet's 40 snapshots per collector were most of the agent's memory)."""
        if not snapshot.keep_history:
            return
        aging = self._aging.setdefault(name, [])
        aging.append(snapshot)
        if len(aging) > 2:  # the one that just became third newest (its facts: if a newer one succeeded)
            self._thin(aging[-3], aging[-1].ok or aging[-2].ok)
            if not aging[-3].families:  # nothing left to drop at the horizon: not held here any longer
                del aging[-3]
        now = snapshot.started_at
        while len(aging) > 2 and (now - aging[0].started_at >= self.family_horizon or len(aging) > AGING_MAX):
            if self._past_horizon(older := aging.pop(0), now):
                self._lasting.setdefault(name, []).append(older)
        lasting = self._lasting.get(name)
        while lasting and not self._past_horizon(lasting[0], now, drop=len(lasting) > AGING_MAX):
            del lasting[0]
        if not snapshot.ok:
            return
        previous = self._previous.get(name)
        self._previous[name] = snapshot
        if previous is None:
            for family in snapshot.families:
                _share_labels(family)
        else:
            if share_unchanged(previous.families, snapshot.families):
                snapshot.families = previous.families  # nothing changed: not even a list of its own
            for kind, fact in snapshot.facts.items():  # facts are frozen: an equal one is the same one
                prior = previous.facts.get(kind)
                if prior is not None and prior is not fact and _equal(prior, fact):
                    snapshot.facts[kind] = prior
        if len(aging) > 1:  # the newest successful collection is this one: the one before is history now
            self._thin(aging[-2], True)

    def _past_horizon(self, older: Snapshot, now: float, drop: bool = False) -> bool:
        """``older`` is past the horizon: it keeps only the families a rule reads over a window it is still
        within (none with ``drop``). Whether it kept any."""
        keep = self.history_metrics
        age = now - older.started_at
        left = [] if drop or keep is None else [f for f in older.families if age < keep.get(f.name, 0.0)]
        if len(left) != len(older.families):
            _set_families(older, left)
        return bool(left)

    def _thin(self, older: Snapshot, facts: bool) -> None:
        """``older`` keeps only the families (and, with ``facts``, the fact types) rules read over time."""
        if self.history_metrics is not None:
            keep = self.history_metrics
            _set_families(older, [family for family in older.families if family.name in keep])
        if facts and self.history_facts is not None:
            kinds = self.history_facts
            older.facts = {kind: fact for kind, fact in older.facts.items() if kind in kinds}

    async def _gated(self, collector: Collector[Any, Any], snapshot: Snapshot, holding: list[bool],
                     urgent: bool) -> None:
        FIRST_IN_TURN.set(urgent)  # set at every run, in the task that runs this collection
        if self.gate is None:
            holding[0] = True
            await collector.collect(snapshot)
            return
        await self._enter(urgent)
        try:
            holding[0] = True
            await collector.collect(snapshot)
        finally:
            self._leave()

    async def _enter(self, urgent: bool) -> None:
        """Share the target's place at its server's gate: the first collection in asks for it, the others of
        the target in flight meanwhile use the same one (they take turns on the session anyway). The main
        collector's request is urgent (agent/pressure.py), also when it finds another one's waiting."""
        assert self.gate is not None
        self._place_users += 1
        try:
            if self._place is None:
                self._place = self.gate.request(urgent)
            elif urgent and not self._place.done():
                self.gate.promote(self._place)
            await asyncio.shield(self._place)
        except BaseException:
            self._leave()
            raise

    def _leave(self) -> None:
        self._place_users -= 1
        if self._place_users or self._place is None:
            return
        place, self._place = self._place, None
        if self.gate is not None:
            self.gate.withdraw(place)  # given back when granted, out of the queue when not

    def _pace(self, name: str, began: float, ok: bool, overloaded: bool) -> None:
        if ok and name == self.up_collector:
            # The server answers again: every collector of the target is back to its interval at once.
            self._timeouts.clear()
            self._next_due.clear()
        elif ok:
            self._timeouts.pop(name, None)
            self._next_due.pop(name, None)
        elif overloaded or name in self._timeouts:
            # Another failure while backing off (the session's reconnect backoff, a refused connection) keeps
            # the pace it has: only an answer brings the interval back.
            self._back_off(name, began, overloaded)

    def _back_off(self, name: str, began: float, overloaded: bool) -> None:
        doublings = self._timeouts.get(name, 0)
        if overloaded and 2 ** doublings < BACKOFF_CAP:
            self._timeouts[name] = doublings + 1
        interval = self.target.collectors[name].interval
        # Half an interval of slack: the scheduler's ticks carry jitter, and the run due at the tick
        # ``effective interval`` after this one must not be skipped for being a little early.
        self._next_due[name] = began + self.effective_interval(name) - interval / 2

    async def close(self) -> None:
        await self.session.close()

    def _log_transition(self, name: str, snapshot: Snapshot) -> None:
        # One line when a collector starts failing and one when it recovers, not one per interval: while it
        # keeps failing its error may change wording (a reconnect backoff counts down), so that is debug.
        previous = self._last_error.get(name)
        extra = {"target": self.target.name, "collector": name}
        if snapshot.error is not None and previous is None:
            logger.warning("collector %s failed: %s", name, snapshot.error, extra=extra)
        elif snapshot.error is not None and snapshot.error != previous:
            logger.debug("collector %s still failing: %s", name, snapshot.error, extra=extra)
        elif snapshot.error is None and previous is not None:
            logger.info("collector %s recovered", name, extra=extra)
        known = self._notes.get(name, set())
        for note in snapshot.notes:
            if note not in known:
                logger.info("collector %s: %s", name, note, extra=extra)
        self._notes[name] = set(snapshot.notes)
        self._last_error[name] = snapshot.error


def share_unchanged(old: list[MetricFamily], new: list[MetricFamily]) -> bool:
    """Make ``new`` (a collection's families) reuse what it has in common with ``old`` (the same collector's
    previous ones): a family equal to the old one becomes the old object, and in a family that changed, the
    samples (and label values) that did not change are the old objects.

    The store keeps ~40 snapshots per collector for the rules; most of a collection (settings, info labels,
    gauges at rest) is the same as the one before, so the history then costs little more than its latest.
    Families are never changed once collected, which makes sharing them safe. Label values seen for the first
    time become the strings other targets' equal values are (a fleet repeats them). Returns whether ``new`` is
    now made of ``old``'s families, in the same order."""
    before = {family.name: family for family in old}
    same = len(old) == len(new)
    for i, family in enumerate(new):
        prior = before.get(family.name)
        if prior is None or prior.labelnames != family.labelnames or prior.type is not family.type:
            same = False
            _share_labels(family)
            continue
        samples, prior_samples = family.samples, prior.samples
        if len(samples) == 1 and len(prior_samples) == 1 and samples[0][0] == prior_samples[0][0]:
            # One series, as most of a server-wide collection's families are: no tuples or dicts built.
            value = samples[0][1]
            if value == prior_samples[0][1] and prior.help == family.help:
                new[i] = prior
                same = same and old[i] is prior
            else:
                family.samples = ((prior_samples[0][0], value),)  # type: ignore[assignment]
                same = False
            continue
        frozen = _freeze(family, samples)
        if tuple(prior.samples) == frozen and prior.help == family.help:  # tuple() of a tuple: itself
            new[i] = prior
            same = same and old[i] is prior
            continue
        same = False
        by_labels = {sample[0]: sample for sample in prior.samples}
        shared = []
        for sample in family.samples:
            kept = by_labels.get(sample[0])
            if kept is None:
                shared.append((shared_labels(sample[0]), sample[1]))
            elif kept[1] == sample[1]:
                shared.append(kept)
            else:
                shared.append((kept[0], sample[1]))
        _freeze(family, shared)
    return same


def _freeze(family: MetricFamily, samples: Sequence[tuple[LabelValues, float]]
            ) -> tuple[tuple[LabelValues, float], ...]:
    """A collected family's samples become a tuple: it is never changed once collected (what the store and the
    exposition rely on), a tuple takes 40 bytes less than a list appended to (a fleet keeps ~300,000 families),
    and one of label tuples and floats is not tracked by the cyclic collector, which then walks less at each
    full collection. The family's type still says list, for the collectors that build it."""
    frozen = samples if type(samples) is tuple else tuple(samples)
    family.samples = frozen  # type: ignore[assignment]
    return frozen


def _share_labels(family: MetricFamily) -> None:
    """The family's label values, seen for the first time, become the strings other targets' equal ones are;
    its samples are frozen (:func:`_freeze`)."""
    if family.labelnames:
        _freeze(family, [(shared_labels(labels), value) for labels, value in family.samples])
    else:
        _freeze(family, family.samples)


def _set_families(snapshot: Snapshot, families: list[MetricFamily]) -> None:
    """Thin a snapshot of the history (a new list: a later snapshot may share the old one)."""
    snapshot.families = families
    snapshot._index = None  # the lookup cache of families it may no longer have (model/snapshot.py)


def _equal(a: object, b: object) -> bool:
    try:
        return bool(a == b)
    except Exception:  # a fact whose comparison fails is simply not shared
        return False


@functools.lru_cache(maxsize=4096)
def _effective_interval(name: str, seconds: float) -> MetricFamily:
    """One family per collector and interval, shared by every collection (never changed once made): the next
    collection's is the same object, which nothing then compares, renders or keeps again."""
    family = gauge("dbwatch_collector_effective_interval_seconds",
                   "The interval the collector runs at now: the configured one, or longer while the server times out.",
                   ("collector",))
    family.add((name,), seconds)
    return family


@functools.lru_cache(maxsize=2)
def _target_up(ok: bool) -> MetricFamily:
    """One name for "reachable" across engines (``pg_up``, ``mysql_up``, ... say it per engine), for TargetDown
    (the two families shared by every collection, as :func:`_effective_interval`'s)."""
    family = gauge("dbwatch_target_up", "Whether the target's last collection by its main collector succeeded (1 = yes).")
    family.add((), 1 if ok else 0)
    return family
