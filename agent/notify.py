"""Notifications: decide what each receiver must be told, queue it durably, deliver it with retries.

The daemon calls :meth:`Notifier.update` after every evaluation with every current alert (firing, and
the ones that just resolved). For each receiver whose route matches, the notifier decides — from what
it has already queued for that receiver and alert, kept in SQLite — whether a firing notification is due
(new, or its repeat interval has passed) or a resolve (once). New firing alerts wait ``group_wait``
so that alerts firing together go out as one message. What is due is written to the outbox in one
transaction with that memory, before anything is sent.

One delivery task per receiver takes that receiver's rows in order, one request at a time, so a slow or
dead receiver delays only itself. A request has a timeout; a failure is retried with exponential backoff
and jitter until ``max_age``, then recorded as failed (metric and log). Every request carries the row's
``Idempotency-Key``; a crash between a 2xx and its "delivered" mark sends it again with the same key.

An alert muted by a silence (:attr:`Notifier.silenced_by`, agent/silences.py) is neither queued nor remembered
for a receiver while the silence lasts, so it goes out as a new alert once the silence ends and it still
fires; a resolve still reaches a receiver told of the alert before. Receivers that ``forwards_silenced``
(Alertmanager) get it anyway, annotated ``dbwatch_silenced_by``, at once when that changes.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import dataclasses
import random
import time
from pathlib import Path
from typing import Callable, Sequence

import aiohttp

from dbwatch.agent import __version__
from dbwatch.model import Alert, AlertState, MetricFamily, counter, gauge
from dbwatch.agent.outbox import Notification, Notified, Outbox
from dbwatch.exporters.receiver import Receiver, SecretError
from dbwatch.exporters.receivers import NotificationsConfig

__all__ = ["Notifier"]

logger = logging.getLogger(__name__)

OUTBOX_FILE = "outbox.db"
POLL = 1.0  # longest a delivery task sleeps before looking at the clock again (the clock may be a test's)
TICK = 0.5  # how often waiting groups are checked between evaluations
PRUNE_EVERY = 3600.0
_RETRYABLE_4XX = {408, 425, 429}
_RESULTS = ("sent", "retried", "failed")
SILENCED_BY = "dbwatch_silenced_by"  # the annotation naming the silence, on alerts forwarded while silenced


class Notifier:
    def __init__(
        self,
        receivers: Sequence[Receiver],
        state_path: str | Path,
        clock: Callable[[], float] = time.time,
        *,
        settings: NotificationsConfig | None = None,
        external_url: str = "",
    ) -> None:
        """``state_path`` is the state directory (the outbox is ``outbox.db`` in it) or a ``.db`` file."""
        path = Path(state_path)
        self.outbox = Outbox(path if path.suffix == ".db" else path / OUTBOX_FILE)
        self.clock = clock
        self.settings = settings or NotificationsConfig()
        self.external_url = external_url
        self.receivers: dict[str, Receiver] = {r.name: r for r in receivers}
        self._memory: dict[tuple[str, str], Notified] = self.outbox.memory()
        self._waiting: dict[tuple[str, str], float] = {}  # new firing alerts in their group wait: since when
        self._last_alerts: list[Alert] = []
        self._wake: dict[str, asyncio.Event] = collections.defaultdict(asyncio.Event)
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._retiring: set[str] = set()  # receivers whose task ends after its request in flight
        self._ticker: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._stopping = False
        self._counts: collections.Counter[tuple[str, str]] = collections.Counter()
        #: the id of the silence muting a firing alert with these labels now, or None (set by agent/alerting.py)
        self.silenced_by: Callable[[dict[str, str]], str | None] = lambda labels: None
        self._noted: dict[tuple[str, str], str | None] = {}  # the silence last sent to forwarding receivers

    # -- what the daemon calls ----------------------------------------------------------------------

    def update(self, alerts: Sequence[Alert], now: float | None = None) -> None:
        """Queue what each receiver must be told about ``alerts`` (all current ones) at ``now``."""
        now = self.clock() if now is None else now
        self._last_alerts = list(alerts)
        if not self.receivers:  # an agent only scraped (no receivers) asks no silence about its alerts
            return
        silenced = {a.fingerprint: s for a in alerts if a.state == AlertState.FIRING
                    and (s := self.silenced_by(a.labels)) is not None}
        due = {name: batch for name, r in self.receivers.items()
               if (batch := self._due(r, alerts, now, silenced))}
        if not due:
            return
        queued_at = self.clock()  # delivery deadlines run on the notifier's clock, decisions on ``now``
        with self.outbox.transaction():
            for name, batch in due.items():
                self._enqueue(self.receivers[name], batch, queued_at, silenced)
                for alert in batch:
                    status = "resolved" if alert.state == AlertState.RESOLVED else "firing"
                    notified = Notified(status, alert.fired_at, now)
                    self.outbox.remember(name, alert.fingerprint, notified)
        for name, batch in due.items():
            for alert in batch:
                status = "resolved" if alert.state == AlertState.RESOLVED else "firing"
                self._memory[(name, alert.fingerprint)] = Notified(status, alert.fired_at, now)
            self._wake[name].set()

    async def start(self) -> None:
        """Start one delivery task per receiver; rows left pending by an earlier run go first."""
        self._stopping = False
        self._session = aiohttp.ClientSession(headers={"User-Agent": f"dbwatch/{__version__}"})
        self._prune()
        for name in self.receivers:
            self._start_worker(name)
        orphans = set(self.outbox.pending_counts()) - set(self.receivers)
        for name in sorted(orphans):
            logger.warning("notifications queued for receiver %s stay queued: it is no longer configured", name,
                           extra={"receiver": name})
        self._ticker = asyncio.create_task(self._tick(), name="notify-ticker")

    async def stop(self, grace: float = 5.0) -> None:
        """Let requests in flight finish for up to ``grace`` seconds; what is left stays queued."""
        self._stopping = True
        for event in self._wake.values():
            event.set()
        if self._ticker is not None:
            self._ticker.cancel()  # it only flushes group waits; what it would send is rebuilt after a restart
        tasks = [*self._workers.values(), *([self._ticker] if self._ticker else [])]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()
        self._ticker = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        self.outbox.close()

    async def reconfigure(self, receivers: Sequence[Receiver]) -> None:
        """Apply a reloaded ``receivers:`` list: changed and removed receivers' tasks are restarted or ended."""
        wanted = {r.name: r for r in receivers}
        for name in list(self._workers):
            if wanted.get(name) != self.receivers.get(name):
                await self._retire(name, self._workers.pop(name))
        self.receivers = wanted
        self._waiting = {k: v for k, v in self._waiting.items() if k[0] in wanted}
        if self._session is not None and not self._stopping:
            for name in wanted:
                if name not in self._workers:
                    self._start_worker(name)

    def metrics(self) -> list[MetricFamily]:
        total = counter("dbwatch_notifications_total", "Notification requests by receiver and result "
                        "(sent: delivered; retried: failed, will be retried; failed: given up).",
                        ("receiver", "result"))
        failed = counter("dbwatch_notifications_failed_total",
                         "Notifications given up on after their maximum age or a permanent error.", ("receiver",))
        queued = gauge("dbwatch_notification_queue_length", "Notifications in the outbox not yet delivered.",
                       ("receiver",))
        oldest = gauge("dbwatch_notification_queue_oldest_age_seconds",
                       "Age of the oldest notification in the outbox not yet delivered (0 when none).",
                       ("receiver",))
        pending, since, now = self.outbox.pending_counts(), self.outbox.oldest_pending(), self.clock()
        for name in sorted(self.receivers):
            for result in _RESULTS:
                total.add((name, result), self._counts[(name, result)])
            failed.add((name,), self._counts[(name, "failed")])
            queued.add((name,), pending.get(name, 0))
            oldest.add((name,), max(0.0, now - since[name]) if name in since else 0.0)
        return [total, failed, queued, oldest]

    async def drain(self, timeout: float) -> bool:
        """Wait until nothing is queued for a configured receiver (for tests and a graceful stop)."""
        deadline = time.monotonic() + timeout
        while any(name in self.receivers for name in self.outbox.pending_counts()):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    # -- deciding what is due -------------------------------------------------------------------------

    def _due(self, receiver: Receiver, alerts: Sequence[Alert], now: float,
             silenced: dict[str, str] | None = None) -> list[Alert]:
        silenced = silenced or {}
        due: list[Alert] = []
        new: list[Alert] = []
        firing: set[tuple[str, str]] = set()
        for alert in alerts:
            if not receiver.matches(alert.labels):
                continue
            key = (receiver.name, alert.fingerprint)
            told = self._memory.get(key)
            if alert.state == AlertState.FIRING:
                silence = silenced.get(alert.fingerprint)
                if silence is not None and not receiver.forwards_silenced:
                    continue  # muted: not remembered either, so it is new to this receiver when the silence ends
                firing.add(key)
                if told is None or told.status == "resolved" or _new_episode(told, alert):
                    self._waiting.setdefault(key, now)
                    new.append(alert)
                elif (now - told.last_sent_at >= receiver.resend_every
                      or self._noted.get(key, silence) != silence):
                    due.append(alert)
            elif alert.state == AlertState.RESOLVED and told is not None and told.status == "firing":
                due.append(alert)
        for key in [k for k in self._waiting if k[0] == receiver.name and k not in firing]:
            del self._waiting[key]  # resolved (or gone) before its first notification: nothing to say
        if new and min(self._waiting[(receiver.name, a.fingerprint)] for a in new) + receiver.group_wait <= now:
            for alert in new:
                del self._waiting[(receiver.name, alert.fingerprint)]
            due = new + due
        return due

    def _enqueue(self, receiver: Receiver, alerts: list[Alert], now: float, silenced: dict[str, str]) -> None:
        if receiver.forwards_silenced:
            for alert in alerts:
                if alert.state == AlertState.RESOLVED:
                    self._noted.pop((receiver.name, alert.fingerprint), None)
                else:
                    self._noted[(receiver.name, alert.fingerprint)] = silenced.get(alert.fingerprint)
            alerts = [dataclasses.replace(a, annotations={**a.annotations, SILENCED_BY: silenced[a.fingerprint]})
                      if a.fingerprint in silenced else a for a in alerts]
        for body in receiver.payloads(alerts, self.external_url):
            self.outbox.enqueue(receiver.name, {"body": body}, now)

    # -- delivering -------------------------------------------------------------------------------------

    def _start_worker(self, name: str) -> None:
        self._workers[name] = asyncio.create_task(self._deliver_all(name), name=f"notify-{name}")

    async def _retire(self, name: str, task: asyncio.Task[None]) -> None:
        """End a receiver's delivery task without cutting a request in flight: cancelled mid-request, a
        notification the receiver already has would be sent again by the next task."""
        self._retiring.add(name)
        self._wake[name].set()
        receiver = self.receivers.get(name)
        try:
            _, pending = await asyncio.wait({task}, timeout=(receiver.timeout if receiver else 10.0) + 1.0)
            for late in pending:
                late.cancel()
            await asyncio.gather(task, return_exceptions=True)
        finally:
            self._retiring.discard(name)

    async def _deliver_all(self, name: str) -> None:
        wake = self._wake[name]
        while not self._stopping and name not in self._retiring:
            wake.clear()
            try:
                row = self.outbox.next_pending(name)
                now = self.clock()
                if row is None:
                    await _wait(wake, 30.0)
                elif row.next_attempt_at > now:
                    await _wait(wake, min(POLL, row.next_attempt_at - now))
                else:
                    await self._deliver(self.receivers[name], row)
            except Exception:  # the outbox itself failing (disk full, locked): report, keep going
                logger.exception("delivery to %s hit an internal error; trying again", name, extra={"receiver": name})
                await asyncio.sleep(POLL)

    async def _deliver(self, receiver: Receiver, row: Notification) -> None:
        name = receiver.name
        assert self._session is not None
        try:
            sent = await receiver.send(self._session, row.payload["body"], row.key, self.clock())
            status, retry_after = sent.status, _retry_after(sent.retry_after, self.settings.max_backoff)
            error = None if 200 <= status < 300 else f"HTTP {status}"
            retryable = status >= 500 or status in _RETRYABLE_4XX
        except asyncio.TimeoutError:
            error, retryable, retry_after = f"no answer within {receiver.timeout:g}s", True, None
        except aiohttp.ClientConnectionError as exc:
            error, retryable, retry_after = _connection_error(exc), True, None
        except (aiohttp.ClientError, SecretError, ValueError) as exc:
            error, retryable, retry_after = _short_error(exc), True, None
        now = self.clock()
        attempt = row.attempts + 1
        if error is None:
            self.outbox.mark_delivered(row.id, now)
            self._counts[(name, "sent")] += 1
            logger.debug("notification %s delivered to %s (attempt %d)", row.key, name, attempt, extra={"receiver": name})
            return
        delay = retry_after if retry_after is not None else self._backoff(attempt)
        if not retryable or now + delay - row.created_at > self.settings.max_age:
            self.outbox.mark_failed(row.id, now, error)
            self._counts[(name, "failed")] += 1
            why = "permanent error" if not retryable else f"still failing after {now - row.created_at:.0f}s"
            logger.error("notification %s to %s given up after %d attempt(s) (%s): %s",
                         row.key, name, attempt, why, error, extra={"receiver": name})
            return
        self.outbox.mark_retry(row.id, now + delay, error)
        self._counts[(name, "retried")] += 1
        logger.warning("notification %s to %s failed (attempt %d): %s; retrying in %.1fs",
                       row.key, name, attempt, error, delay, extra={"receiver": name})

    def _backoff(self, attempt: int) -> float:
        """Exponential with jitter: half of the step is fixed, half random, so retries spread out."""
        step = min(self.settings.max_backoff, self.settings.min_backoff * 2.0 ** min(attempt - 1, 30))
        return step / 2 + random.uniform(0, step / 2)

    # -- housekeeping -----------------------------------------------------------------------------------

    async def _tick(self) -> None:
        last_prune = time.monotonic()
        while not self._stopping:
            await asyncio.sleep(TICK)
            now = self.clock()
            if any(since + self.receivers[r].group_wait <= now for (r, _), since in self._waiting.items()):
                self.update(self._last_alerts, now)
            if time.monotonic() - last_prune >= PRUNE_EVERY:
                last_prune = time.monotonic()
                self._prune()

    def _prune(self) -> None:
        longest = max((r.resend_every for r in self.receivers.values()), default=0.0)
        removed = self.outbox.prune(self.clock(), self.settings.retention, max(self.settings.retention, 2 * longest))
        self._memory = self.outbox.memory()
        if removed:
            logger.info("pruned %d finished notification(s) from the outbox", removed)


def _new_episode(told: Notified, alert: Alert) -> bool:
    """The alert fired again after a resolve this receiver never heard of (e.g. while the agent was down)."""
    return told.fired_at is not None and alert.fired_at is not None and abs(alert.fired_at - told.fired_at) > 1.0


async def _wait(event: asyncio.Event, timeout: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout=max(0.0, timeout))
    except asyncio.TimeoutError:
        pass


def _retry_after(value: str | None, cap: float) -> float | None:
    if value and value.strip().isdigit():
        return min(float(value.strip()), cap)
    return None


def _connection_error(exc: aiohttp.ClientConnectionError) -> str:
    # The receiver's name is in the log line already; the URL may hold a token, so it is left out.
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect ({exc.os_error.strerror or type(exc.os_error).__name__})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    return f"connection error ({type(exc).__name__})"


def _short_error(exc: Exception) -> str:
    if isinstance(exc, SecretError):
        return str(exc)  # names the variable or file, never the value
    return type(exc).__name__
