"""The helpers every test shares: one collection, waiting until something holds, a free port, the catalog.

- :func:`collect` runs one collection as the daemon would (minus the schedule) and fails the test when the
  collection emitted a family the metric catalog (collectors/catalog_*.py) does not declare, with its type
  and labels: every collector test keeps the catalog, and so docs/metrics.md, complete.
- :func:`wait_until` (in a coroutine) and :func:`wait_for` (in plain code or a thread) poll a predicate until
  it returns something true, and return that; both take ``(predicate, timeout, what)``.
  :func:`collect_until` collects until a snapshot satisfies a condition.
- :func:`free_port`: a free loopback port for a throwaway server.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import time
from typing import Any, Callable, TypeVar

from dbwatch.agent import catalog as agent_catalog
from dbwatch.collectors import catalog
from dbwatch.model import Snapshot
from dbwatch.model.catalog import MetricSpec

T = TypeVar("T")


class TimedOut(AssertionError):
    """What :func:`wait_until` and :func:`wait_for` fail a test with."""


async def collect(collector: Any, store: Any | None = None) -> Snapshot:
    """One collection by ``collector`` into a fresh snapshot, checked against the catalog; put into ``store``
    (a SnapshotStore) when one is given."""
    target = collector.target
    snapshot = Snapshot(target=target.name, engine=target.engine, collector=collector.name, started_at=time.time())
    await collector.collect(snapshot)
    assert_declared(snapshot)
    if store is not None:
        store.put(snapshot)
    return snapshot


def assert_declared(snapshot: Snapshot) -> None:
    """Every family of ``snapshot`` is in the catalog of its engine and collector, with its type and labels.

    ``dbwatch_target_up`` and ``dbwatch_collector_effective_interval_seconds`` are the agent's own (the daemon
    adds them to the snapshots)."""
    own = ("dbwatch_target_up", "dbwatch_collector_effective_interval_seconds")
    families = [f for f in snapshot.families if f.name not in own]
    problems = catalog.undeclared(snapshot.engine, snapshot.collector, families)
    assert not problems, "the metric catalog is missing what a collection emitted:\n" + "\n".join(problems)


async def collect_until(collector: Any, condition: Callable[[Snapshot], Any], timeout: float = 10.0,
                        what: str = "the condition") -> Snapshot:
    """Collect until a snapshot satisfies ``condition``; return that snapshot."""
    last: list[Snapshot] = []

    async def attempt() -> Snapshot | None:
        snapshot = await collect(collector)
        last[:] = [snapshot]
        return snapshot if condition(snapshot) else None

    try:
        return await wait_until(attempt, timeout, what, interval=0.1)
    except TimedOut as exc:
        raise TimedOut(f"{exc}; the last collection's facts: {last[0].facts if last else {}}") from None


async def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll ``predicate`` (a function or a coroutine function) until it returns something true; return it.
    Fails the test after ``timeout`` seconds, naming ``what`` it waited for."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimedOut(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """:func:`wait_until` for plain (not async) code: blocks the thread between polls."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimedOut(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def catalog_specs() -> list[MetricSpec]:
    """Every family dbwatch declares: the collectors' and the agent's own."""
    return [*catalog.all_families(), *agent_catalog.FAMILIES]


def declared(name: str) -> bool:
    """Whether ``name`` is a metric dbwatch declares (exactly, or through a template). Templates of names the
    user chooses (``<namespace>_<column>`` of custom queries) declare nothing a shipped rule may rely on."""
    return any(spec.matches(name) for spec in catalog_specs() if spec.prefix != "")
