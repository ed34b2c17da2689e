"""What every collector is: a session per target (one long-lived connection) and collectors on it.

The daemon owns the schedule and the timeouts; a collector only knows how to ask its server and turn the
answer into a :class:`~dbwatch.model.Snapshot`. A collector raises on failure; the daemon turns the
exception into a failed snapshot, so a collector never has to build one itself.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import random
import re
import urllib.parse
from dataclasses import dataclass
from typing import ClassVar

from dbwatch.model import MetricFamily, Snapshot, Target, gauge

logger = logging.getLogger(__name__)


class CollectorError(Exception):
    """A collection failed for a reason worth showing to the user as is (no traceback, no secrets)."""


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
    """One long-lived connection to a target, shared by that target's collectors.

    Collectors of one target take turns on the connection (``lock``); reconnection backs off
    exponentially with jitter so a dead server is not hammered.

    The session is also the one place where collectors of one target share data:
    ``slow_samples`` (class id -> :class:`SlowSample`) is filled by the slowlog collector and read by the
    PostgreSQL index advisor, which costs the samples' literal statements. It holds at most
    :data:`MAX_SLOW_SAMPLES` entries (see :meth:`keep_slow_samples`).
    """

    min_backoff: ClassVar[float] = 1.0
    max_backoff: ClassVar[float] = 60.0

    def __init__(self, target: Target) -> None:
        self.target = target
        self.lock = asyncio.Lock()
        self._failures = 0
        self._next_attempt = 0.0
        self.slow_samples: dict[str, SlowSample] = {}

    def keep_slow_samples(self, samples: list[SlowSample]) -> None:
        """Leave the newest samples for the other collectors of this target; the oldest go past the cap."""
        for sample in samples:
            self.slow_samples.pop(sample.class_id, None)
            self.slow_samples[sample.class_id] = sample  # re-inserted: dict order is oldest first
        while len(self.slow_samples) > MAX_SLOW_SAMPLES:
            del self.slow_samples[next(iter(self.slow_samples))]

    def backoff_remaining(self, now: float) -> float:
        return max(0.0, self._next_attempt - now)

    def record_failure(self, now: float) -> None:
        self._failures += 1
        delay = min(self.max_backoff, self.min_backoff * 2 ** (self._failures - 1))
        self._next_attempt = now + delay * random.uniform(0.5, 1.0)

    def record_success(self) -> None:
        self._failures = 0
        self._next_attempt = 0.0

    def check_backoff(self, now: float, last_error: str) -> None:
        """Refuse to reconnect before the backoff has passed (the server is not hammered while down)."""
        wait = self.backoff_remaining(now)
        if wait > 0:
            raise CollectorError(f"reconnect backoff: next attempt in {wait:.1f}s (last error: {last_error})")

    def scrub(self, text: str, endpoint: str, password: str | None = None) -> str:
        """Error text without secrets: never the DSN as written (it becomes ``endpoint``), never a password,
        whether the one read from the environment or file, or one written into a URI."""
        dsn = self.target.dsn
        if dsn:
            text = text.replace(dsn, endpoint)
        text = _URI_PASSWORD.sub(r"\1***@", text)
        for secret in (password, dsn_password(dsn)):
            if secret:
                text = text.replace(secret, "***")
        return text


_URI_PASSWORD = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):[^@\s]*@")


def dsn_password(dsn: str) -> str | None:
    """The password written into a DSN, if any (the config refuses them; old files may still hold one)."""
    try:
        return urllib.parse.urlsplit(dsn).password
    except ValueError:
        return None

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the connection; must not raise."""

    @abc.abstractmethod
    async def invalidate(self) -> None:
        """Drop a connection that may be in an unknown state (after a timeout or a network error)."""


class Collector(abc.ABC):
    """Collects one aspect of one target. Subclasses set ``name`` and implement :meth:`collect`."""

    name: ClassVar[str]
    #: the ``<engine>_up`` metric this collector answers for, if any (exported as 0 when it fails)
    up_metric: ClassVar[str | None] = None

    def __init__(self, target: Target, session: Session) -> None:
        self.target = target
        self.session = session
        self.settings = target.collectors[self.name]

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
