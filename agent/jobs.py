"""One target's session and collectors, and the one way a collection is run: bounded, never raising.

Both ``dbwatch run`` (on a schedule) and ``dbwatch check`` (once) collect through :meth:`TargetJobs.collect`,
so a timeout, an unreachable server or a bug in a collector always ends the same way: a failed snapshot
with the error kept, and the daemon carries on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from dbwatch.agent.logs import redact
from dbwatch.model import MetricFamily, SecretUnavailable, Snapshot, Target, gauge
from dbwatch.collectors.base import Collector, CollectorError, Session
from dbwatch.collectors.engines import engine

logger = logging.getLogger(__name__)


class TargetJobs:
    def __init__(self, target: Target) -> None:
        spec = engine(target.engine)
        self.target = target
        self.session: Session = spec.session(target)
        self.collectors: dict[str, Collector[Any, Any]] = {
            name: spec.collectors[name](target, self.session) for name in target.collectors
        }
        self._last_error: dict[str, str | None] = {}
        self._notes: dict[str, set[str]] = {}

    @property
    def up_collector(self) -> str:
        """The collector whose success means the target is up: the engine's main collector (``<engine>_up``),
        or the first one when the configuration turned that off."""
        main = engine(self.target.engine).main_collector
        return main if main in self.collectors else next(iter(self.collectors))

    async def collect(self, name: str) -> Snapshot:
        collector = self.collectors[name]
        timeout = self.target.collectors[name].timeout
        snapshot = Snapshot(
            target=self.target.name, engine=self.target.engine, collector=name, started_at=time.time()
        )
        began = time.monotonic()
        try:
            await asyncio.wait_for(collector.collect(snapshot), timeout)
        except TimeoutError:
            # A connection the collector was using when it was cancelled is dropped by the session before the
            # next collector gets the lock; one it was not using (it waited for its turn) stays.
            snapshot.ok, snapshot.error = False, f"timed out after {timeout:g}s"
        except (CollectorError, SecretUnavailable) as exc:
            snapshot.ok, snapshot.error = False, redact(str(exc))
        except Exception as exc:  # a bug in a collector must not stop the daemon
            snapshot.ok, snapshot.error = False, redact(f"internal error: {type(exc).__name__}: {exc}")
            logger.exception("collector %s failed unexpectedly", name, extra={"target": self.target.name})
        snapshot.duration = time.monotonic() - began
        if not snapshot.ok:
            snapshot.families = collector.failed_families()
        if name == self.up_collector:
            snapshot.families.append(_target_up(snapshot.ok))
        self._log_transition(name, snapshot)
        return snapshot

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


def _target_up(ok: bool) -> MetricFamily:
    """One name for "reachable" across engines (``pg_up``, ``mysql_up``, ... say it per engine), for TargetDown."""
    family = gauge("dbwatch_target_up", "Whether the target's last collection by its main collector succeeded (1 = yes).")
    family.add((), 1 if ok else 0)
    return family
